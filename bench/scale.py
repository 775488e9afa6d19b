"""Scale input for the benchmark: one simulated month tiled over many months, streamed.

The simulator builds one month in memory (about 300.000 events for the
benchmark's city). Millions of events are made from it without ever holding
them: tile ``k`` is the base month with

* every ``event_id``, ``dossier_id`` and ``feedback_id`` prefixed ``T<k>-``
  (new dossiers, so the worker's states grow as they would over many months);
* every calendar date moved back by ``k`` × 35 days (five weeks: the weekdays,
  and so the working-day arithmetic, keep their shape; ``valid_from`` is empty
  for the era-2024 units, so older dates stay valid).

Tile 0 is the base month itself, unchanged. The lines are produced as they are made
(:func:`produce_tiled`), so the parent holds the base month plus the sends in
flight, whatever the total.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator, Sequence
from datetime import date, timedelta
from typing import Any

__all__ = ["TILE_DAYS", "produce_tiled", "shift_line", "tiled_lines"]

TILE_DAYS = 35
"""Days between two tiles (five weeks)."""

_DATE = re.compile(rb'"(\d{4}-\d{2}-\d{2})')
_IDS = re.compile(rb'"(event_id|dossier_id|feedback_id)":"')


def shift_line(line: bytes, k: int, cache: dict[bytes, bytes] | None = None) -> bytes:
    """Tile ``k`` of one line: ids prefixed ``T<k>-``, dates moved back ``k`` × 35 days.

    Args:
        line: a line of the base month (valid or not: bad lines stay bad).
        k: the tile; 0 returns ``line`` unchanged.
        cache: date strings already shifted for this ``k`` (a dict per tile).
    """
    if k == 0:
        return line
    shift = timedelta(days=TILE_DAYS * k)
    memo: dict[bytes, bytes] = {} if cache is None else cache

    def moved(m: re.Match[bytes]) -> bytes:
        text = m.group(1)
        out = memo.get(text)
        if out is None:
            try:
                out = (date.fromisoformat(text.decode()) - shift).isoformat().encode()
            except ValueError:  # not a real date (a bad line): left as it is
                out = text
            memo[text] = out
        return b'"' + out

    prefix = b'":"T%d-' % k
    return _IDS.sub(lambda m: b'"' + m.group(1) + prefix, _DATE.sub(moved, line))


def tiled_lines(base: Sequence[bytes], total: int) -> Iterator[bytes]:
    """The first ``total`` lines of the base month tiled (tile 0, 1, 2 …), one at a time."""
    if not base:
        return
    cache: dict[bytes, bytes] = {}
    for i in range(total):
        k, j = divmod(i, len(base))
        if j == 0:
            cache = {}
        yield shift_line(base[j], k, cache)


async def produce_tiled(
    settings: Any, catalog: Any, base: Sequence[bytes], total: int, *, window: int = 5_000
) -> dict[str, Any]:
    """Publish ``total`` tiled lines as ``produce`` routes them, streamed.

    One producer for the whole run, at most ``window`` sends in flight, and a
    long request timeout (five minutes): the embedded broker, on a loaded
    machine, may take longer than aiokafka's default 40 s to answer a big
    produce request, and a send that timed out cannot be retried without
    perhaps writing its messages twice (the scenario counts every message).

    Returns:
        ``{"sent", "unroutable", "per_topic", "bytes"}``.
    """
    from aiokafka import AIOKafkaProducer  # noqa: PLC0415

    from bench.workload import route  # noqa: PLC0415

    producer = AIOKafkaProducer(
        bootstrap_servers=settings.bootstrap_servers,
        linger_ms=5,
        max_batch_size=256 * 1024,
        max_request_size=2 * 1024 * 1024,
        request_timeout_ms=300_000,
        acks=1,
    )
    await producer.start()
    sent = unroutable = size = 0
    per_topic: dict[str, int] = {}
    dead = catalog.deadletter.name
    pending: list[asyncio.Future[Any]] = []
    try:
        for n, raw in enumerate(tiled_lines(base, total)):
            topic, key, _ = route(raw, catalog)
            if topic is None:
                unroutable += 1
                topic = dead
                headers = [
                    ("reason", b"unroutable"), ("code", b"unroutable"),
                    ("detail", b"no topic carries this line's event_type"),
                    ("source_topic", b"bench-scale"), ("source_partition", b"0"),
                    ("source_offset", str(n).encode()), ("origin", b"producer"),
                ]  # fmt: skip
                pending.append(await producer.send(dead, raw, headers=headers))
            else:
                pending.append(await producer.send(topic, raw, key=key))
            sent += 1
            size += len(raw)
            per_topic[topic] = per_topic.get(topic, 0) + 1
            if len(pending) >= window:
                await asyncio.gather(*pending)
                pending = []
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return {"sent": sent, "unroutable": unroutable, "per_topic": per_topic, "bytes": size}
