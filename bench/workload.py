"""The benchmark's workload: simulated events, and producing them at a steady rate.

The events are the simulator's (:func:`dossier_stream.sim.simulate.simulate`) for
Hải Phòng's tháng 10/2024 with random per-unit volumes, about four events per
dossier in publish order, with its 1 % exact duplicates and 0.2 % invalid
lines. The throughput scenarios read them after
:func:`dossier_stream.stream.runner.produce_lines` published them; the freshness
scenario publishes a slice of them at a fixed rate with :func:`paced_produce`,
which remembers when each event was handed to the producer.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import orjson

from dossier_stream.core.periods import monthly_report
from dossier_stream.core.registry import UnitRegistry
from dossier_stream.core.topics import TopicCatalog
from dossier_stream.core.workdays import WorkCalendar

__all__ = ["PacedRun", "delete_topics", "paced_produce", "route", "simulate_events"]

_EVENTS_PER_DOSSIER = 3.9
"""A little under what the simulator makes (≈ 4.0), so one pass is usually enough."""

_KEY_FIELD = {"dossier": "dossier_id", "feedback": "feedback_id", "unit": "unit_code"}


def simulate_events(
    count: int, registry: UnitRegistry, calendar: WorkCalendar, *, seed: int = 0
) -> list[bytes]:
    """The first ``count`` lines (in publish order) of a simulated month.

    Args:
        count: how many lines.
        registry: unit registry.
        calendar: working-day calendar.
        seed: the simulator's seed.
    """
    from dossier_stream.sim.simulate import SimConfig, simulate  # noqa: PLC0415

    dossiers = max(100, int(count / _EVENTS_PER_DOSSIER) + 1)
    while True:
        config = SimConfig(period=monthly_report(2024, 10), seed=seed, dossiers=dossiers)
        lines = simulate(config, registry, calendar).lines
        if len(lines) >= count:
            return lines[:count]
        dossiers = int(dossiers * count / max(len(lines), 1) * 1.05) + 1


def route(raw: bytes, catalog: TopicCatalog) -> tuple[str | None, bytes | None, str | None]:
    """Topic, key and event id of a line (topic ``None`` when no topic carries it)."""
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None, None, None
    if not isinstance(obj, dict):
        return None, None, None
    event_id = obj.get("event_id") if isinstance(obj.get("event_id"), str) else None
    event_type = obj.get("event_type")
    if not isinstance(event_type, str):
        return None, None, event_id
    try:
        topic = catalog.topic_for(event_type)
    except KeyError:
        return None, None, event_id
    key = obj.get(_KEY_FIELD[topic.split(".", 1)[0]])
    return topic, key.encode() if isinstance(key, str) else None, event_id


@dataclass
class PacedRun:
    """What :func:`paced_produce` sent.

    Attributes:
        sent: messages sent.
        seconds: from the first send to the last.
        sent_at: Unix time each event id was handed to the producer (its first send).
        repeated: event ids sent more than once (duplicates: left out of freshness).
    """

    sent: int = 0
    seconds: float = 0.0
    sent_at: dict[str, float] = field(default_factory=dict)
    repeated: set[str] = field(default_factory=set)


async def paced_produce(
    bootstrap: str, catalog: TopicCatalog, lines: list[bytes], rate: float
) -> PacedRun:
    """Publish ``lines`` to their topics at ``rate`` messages per second.

    Routing is that of ``dossier-stream produce``: by ``event_type``, keyed by
    the dossier, feedback or unit id; a line no topic carries goes to the
    dead-letter topic with the producer's headers (so the worker counts it).
    The time stamped per event is taken right after ``send`` accepted it, so
    the producer's linger (5 ms) counts against freshness.
    """
    from aiokafka import AIOKafkaProducer  # noqa: PLC0415

    routed = [(route(raw, catalog), raw) for raw in lines]
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, acks=1)
    await producer.start()
    run = PacedRun()
    dead = catalog.deadletter.name
    pending: list[asyncio.Future[Any]] = []
    t0 = time.monotonic()
    try:
        for n, ((topic, key, event_id), raw) in enumerate(routed):
            ahead = t0 + n / rate - time.monotonic()
            if ahead > 0:
                await asyncio.sleep(ahead)
            if topic is None:
                headers = [
                    ("reason", b"unroutable"), ("code", b"unroutable"),
                    ("detail", b"no topic carries this line's event_type"),
                    ("source_topic", b"bench"), ("source_partition", b"0"),
                    ("source_offset", str(n).encode()), ("origin", b"producer"),
                ]  # fmt: skip
                pending.append(await producer.send(dead, raw, headers=headers))
            else:
                pending.append(await producer.send(topic, raw, key=key))
            now = time.time()
            if event_id is not None:
                if event_id in run.sent_at:
                    run.repeated.add(event_id)
                else:
                    run.sent_at[event_id] = now
            run.sent += 1
            if len(pending) >= 1000:
                await asyncio.gather(*pending)
                pending = []
        await asyncio.gather(*pending)
        run.seconds = time.monotonic() - t0
    finally:
        await producer.stop()
    return run


async def delete_topics(bootstrap: str, names: list[str] | None = None) -> list[str]:
    """Delete the topics of ``names`` that exist (every topic when ``None``); return them."""
    from aiokafka.admin import AIOKafkaAdminClient  # noqa: PLC0415

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        listed = await admin.list_topics()
        existing = [t for t in listed if names is None or t in set(names)]
        if existing:
            await admin.delete_topics(existing)
        for _ in range(100):  # wait until the broker no longer lists them
            if not set(existing) & set(await admin.list_topics()):
                break
            await asyncio.sleep(0.05)
        return existing
    finally:
        await admin.close()
