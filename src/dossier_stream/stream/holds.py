"""Undecodable record batches: hold the bad partition, keep consuming the others.

A record batch that cannot be decoded — a CRC error, a codec the consumer
cannot read, a corrupt compressed payload — makes aiokafka's ``getmany``
raise for *every* partition: the records it had already drained from
healthy partitions in that call are lost to this process (their positions
moved on), and the bad partition's position even jumps past the good records
before the bad batch. Retrying the call stalls the worker forever. So the
batch runtime fetches through :class:`PartitionGuard`:

* it remembers, per partition, the next offset it handed over;
* when ``getmany`` raises a decoding error it seeks every assigned partition
  back to that offset (the committed one, or the beginning, for a partition
  it handed nothing of yet), so nothing drained and lost is skipped;
* it then drains partition by partition, one record per call, until the
  partition at fault raises on its own: that partition is sought back to the
  first offset not handed over (the bad batch) and *paused*, the others go
  on;
* after a back-off (``DOSSIER_FLUSH_RETRY_MIN_S`` doubling up to
  ``DOSSIER_FLUSH_RETRY_MAX_S``) it is resumed and read again: if it still
  cannot be decoded it is held again for the next step, with one log line
  per step naming the topic, partition, offset and cause, and what to do. It
  is never skipped: its lag stays and the ``DossierStreamPartitionUndecodable``
  alert fires on ``dossier_stream_partition_undecodable``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final

from aiokafka.errors import KafkaError

from dossier_stream.stream.durable import Backoff

__all__ = ["Held", "PartitionGuard", "is_undecodable"]

_LOG = logging.getLogger(__name__)
_PROBE_S: Final = 5.0
"""How long to look for the partition at fault after a decoding error."""
_DECODING: Final = ("CorruptRecordException", "UnsupportedCodecError")


def is_undecodable(exc: BaseException) -> bool:
    """Whether ``getmany`` raised because a fetched record batch cannot be decoded.

    aiokafka raises ``CorruptRecordException`` (CRC) or ``UnsupportedCodecError``;
    a codec library raises its own error on a corrupt payload (``BadGzipFile``,
    ``zlib.error``, …). Kafka's other errors (coordination, a stopped consumer)
    are not decoding errors.
    """
    if type(exc).__name__ in _DECODING:
        return True
    return (
        isinstance(exc, Exception)
        and not isinstance(exc, KafkaError | AssertionError)
        and (type(exc).__name__ != "ConsumerStoppedError")
    )


@dataclass(slots=True)
class Held:
    """A partition held at an offset it cannot decode."""

    offset: int
    cause: str
    failures: int
    until: float
    delays: Iterator[float]
    resumed: bool = False


class PartitionGuard:
    """Fetches for the batch runtime, isolating partitions that cannot be decoded.

    Args:
        backoff: the waits between two attempts at a held partition.
    """

    def __init__(self, backoff: Backoff) -> None:
        self.backoff = backoff
        self.held: dict[Any, Held] = {}
        self.next: dict[Any, int] = {}  # per partition: the next offset to hand over

    @property
    def held_offsets(self) -> Mapping[tuple[str, int], int]:
        """``{(topic, partition): offset}`` of the partitions held now (for the metrics)."""
        return {(tp.topic, tp.partition): h.offset for tp, h in self.held.items()}

    def forget(self) -> None:
        """Forget positions and holds (a rebalance: the new assignment starts afresh).

        A position must never run ahead of what was handed over and then
        handled or dropped for good: without one, a partition is restored to
        its committed offset, which may read again but never skips.
        """
        self.next.clear()
        self.held.clear()

    def forget_positions(self) -> None:
        """Forget the positions handed over (a batch dropped unread), keeping the holds."""
        self.next.clear()

    def rewound(self, tp: Any, offset: int) -> None:
        """Record that ``tp`` was sought back to ``offset``."""
        self.next[tp] = offset

    async def getmany(self, consumer: Any, timeout_ms: int, max_records: int) -> list[Any]:
        """Records of the fetchable partitions (``consumer.getmany``), holding bad ones."""
        if self.held:
            self._resume_due(consumer)
        try:
            got = await consumer.getmany(timeout_ms=timeout_ms, max_records=max_records)
        except Exception as exc:
            if not is_undecodable(exc):
                raise
            return await self._isolate(consumer, exc, max_records)
        return self._took(got)

    def _took(self, got: Mapping[Any, list[Any]]) -> list[Any]:
        records: list[Any] = []
        for tp, batch in got.items():
            if batch:
                self.next[tp] = batch[-1].offset + 1
                records += batch
                if tp in self.held:
                    held = self.held.pop(tp)
                    _LOG.warning(
                        "%s:%s decodes again from offset %s (held %s times); consuming it",
                        tp.topic, tp.partition, held.offset, held.failures,
                    )  # fmt: skip
        return records

    def _resume_due(self, consumer: Any) -> None:
        now = time.monotonic()
        for tp, held in self.held.items():
            if not held.resumed and held.until <= now:
                try:
                    consumer.resume(tp)
                except Exception as exc:  # revoked meanwhile
                    _LOG.debug("cannot resume %s: %s", tp, exc)
                held.resumed = True

    async def restore(self, consumer: Any, partitions: Iterable[Any] | None = None) -> None:
        """Seek assigned partitions back to the first offset not handed over.

        Args:
            consumer: the aiokafka consumer.
            partitions: the partitions to seek (those not assigned are left
                alone); every assigned one if ``None``. A partition with no
                position remembered goes to its committed offset, or to the
                beginning if it has none.
        """
        assigned = consumer.assignment()
        chosen = assigned if partitions is None else [tp for tp in partitions if tp in assigned]
        for tp in list(chosen):
            try:
                offset = self.next.get(tp)
                if offset is None:
                    committed = await consumer.committed(tp)
                    if committed is None:
                        await consumer.seek_to_beginning(tp)
                        continue
                    offset = committed
                consumer.seek(tp, offset)
            except Exception as exc:  # revoked meanwhile: its next owner reads it
                _LOG.debug("cannot restore the position of %s: %s", tp, exc)

    async def _isolate(self, consumer: Any, exc: Exception, max_records: int) -> list[Any]:
        """After a decoding error: restore positions, find and hold the partition at fault."""
        _LOG.debug("a fetched batch cannot be decoded (%s); looking for its partition", exc)
        await self.restore(consumer)
        records: list[Any] = []
        deadline = time.monotonic() + _PROBE_S
        while time.monotonic() < deadline:
            paused = consumer.paused()
            for tp in [tp for tp in consumer.assignment() if tp not in paused]:
                while len(records) < max_records:
                    try:
                        got = await consumer.getmany(tp, timeout_ms=0, max_records=1)
                    except Exception as err:
                        if not is_undecodable(err):
                            raise
                        await self._hold(consumer, tp, err)
                        return records
                    if not got.get(tp):
                        break
                    records += self._took(got)
            if len(records) >= max_records:
                break
            await asyncio.sleep(0.05)
        return records

    async def _hold(self, consumer: Any, tp: Any, exc: BaseException) -> None:
        """Pause ``tp`` at the first offset not handed over, until its next attempt."""
        offset = self.next.get(tp)
        if offset is None:
            offset = await consumer.committed(tp)
        if offset is None:
            offset = (await consumer.beginning_offsets([tp]))[tp]
        consumer.seek(tp, offset)
        consumer.pause(tp)
        held = self.held.get(tp)
        if held is None or held.offset != offset:
            held = self.held[tp] = Held(offset, "", 0, 0.0, self.backoff.delays())
        delay = next(held.delays)
        held.failures += 1
        held.cause = f"{type(exc).__name__}: {exc}"
        held.until = time.monotonic() + delay
        held.resumed = False
        _LOG.error(
            "%s:%s cannot be decoded at offset %s (%s, attempt %s): the partition is held "
            "there, nothing is skipped, the other partitions go on; trying again in %.1f s. "
            "A record batch there is corrupt or uses a codec this worker cannot read: fix the "
            "producer (its compression.type, its client library) or the broker, then the "
            "partition resumes by itself; the dossier_stream_partition_undecodable metric and "
            "the DossierStreamPartitionUndecodable alert show it meanwhile",
            tp.topic, tp.partition, offset, held.cause, held.failures, delay,
        )  # fmt: skip
