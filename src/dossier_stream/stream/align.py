"""Co-partitioned topics read in step: partitions ahead by record timestamp wait.

The four ``dossier.*`` topics (and the family's repartition topic) are
co-partitioned: partition *n* of each holds the events of the same dossiers,
and the worker folds them into one source (``dossier:n``). aiokafka fetches up
to ``max_partition_fetch_bytes`` per topic-partition per round: equal *bytes*
per partition, not equal time. Reading a backlog (a backfill, a worker that
was down), the topics with fewer bytes race ahead in time, further the more is
read: a dossier's later events (``dossier.progress.v1``) arrive long after its
``dossier.received``, when its state has left the state store's LRU, and it is
read back from RocksDB, decoded, and another state evicted for it (the scale
benchmark's cost at 3 million events; see ``bench/README.md``).

Kafka Streams picks a task's records across its co-partitioned partitions by
timestamp. The batch runtime does the same with :class:`Aligner`, a view of
the consumer whose ``getmany`` reads only the partitions *in step*:

* each partition's **clock** is the greatest Kafka record timestamp it has
  handed over (the producer's create time, or the broker's append time; a
  record without one, ``-1``, leaves the clock as it is). The record
  timestamp, not the event's ``occurred_at``: it needs no decoding, and it is
  the order the events were published in, which is the order a backfill
  replays;
* within one source, a partition whose clock is more than ``bound_ms`` ahead
  of the **floor** is held back: ``getmany`` is asked for the other
  partitions only. The floor is the lowest clock among the source's
  partitions that still have records to hand over (position below the high
  watermark), are not paused, and have not kept the consumer waiting for
  nothing (``_STARVED_S`` of waits without a record: a partition that cannot
  be fetched does not stop the others for long). A partition caught up,
  empty, paused or not yet read (no clock) never holds another back, and the
  floor's own partition is never held: every source always has a partition
  to read;
* a held partition is **not paused**: aiokafka drops a paused partition's
  fetched records (to fetch them again on resume), while a partition left out
  of ``getmany`` keeps them, and the fetcher fetches nothing more for it
  until they are taken. So the holds of
  :class:`~dossier_stream.stream.holds.PartitionGuard` (undecodable batches:
  ``pause``/``resume``) and these are two separate mechanisms; a partition
  the guard paused is not a floor, so a held-undecodable partition never
  stops its source's others;
* the clocks are forgotten on a rebalance, and a partition's when it is
  sought (a rewound batch, the guard's restore): nothing is held until it
  has handed records again.

A held partition resumes as soon as the floor comes within ``bound_ms`` or
stops being a floor (caught up). One ``getmany`` hands over at most
:data:`STEP` records (aiokafka takes them from one fetched buffer after the
other, and a fetched buffer can hold tens of thousands of records: the
embedded broker answers a fetch with far more than
``max_partition_fetch_bytes``), so a partition overshoots the bound by at most
that many records before it is checked again; the batch loop calls
``getmany`` until its batch is full, as before.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Final

__all__ = ["Aligner"]

_STARVED_S: Final = 2.0
"""Seconds of waits a partition with records may go without handing any and stay a floor."""
_HOLD_WAIT_MS: Final = 50
"""Longest wait of a ``getmany`` while partitions are held (the floor may catch up meanwhile)."""
STEP: Final = 500
"""Most records one ``getmany`` hands over: how far a partition may overshoot before a check."""
HELD_BUFFER_BACKOFF_S: Final = 0.005
"""Longest a held partition's fetched buffer keeps the fetcher from its broker (aiokafka: 0,1 s)."""


class Aligner:
    """A view of the consumer that keeps each source's partitions within ``bound_ms``.

    Everything but :meth:`getmany`, :meth:`seek` and :meth:`seek_to_beginning`
    is the consumer's own (``pause``, ``assignment``, ``committed`` …), so the
    :class:`~dossier_stream.stream.holds.PartitionGuard` fetches through it.

    Args:
        consumer: the aiokafka consumer.
        bound_ms: how far ahead (record timestamp, ms) a partition may run of
            its source's floor before it is held back.
        source_of: the source of a topic partition, or ``None`` for a topic
            that is not aligned (the dead-letter topic).
        step: most records one ``getmany`` hands over (:data:`STEP`).
    """

    def __init__(
        self,
        consumer: Any,
        bound_ms: int,
        source_of: Callable[[str, int], str | None],
        *,
        step: int = STEP,
    ) -> None:
        self.consumer = consumer
        self.bound_ms = bound_ms
        self.step = step
        self.source_of = source_of
        self.clocks: dict[Any, int] = {}
        """Per partition: the greatest record timestamp handed over."""
        self.starved: dict[Any, float] = {}
        """Per partition: seconds waited as a floor since it last handed a record."""
        self.held: set[Any] = set()
        """The partitions left out of the last ``getmany``."""
        self.held_total = 0
        """``getmany`` calls that left a partition out (for the benchmark and the tests)."""
        self._sources: dict[Any, str | None] = {}
        self.fetch_backoff_s: float | None = None
        """aiokafka's prefetch backoff once :meth:`started` (``None``: none to set)."""

    def __getattr__(self, name: str) -> Any:
        return getattr(self.consumer, name)

    def started(self) -> None:
        """Once the consumer has started (its fetcher exists): :func:`_shorten_fetch_backoff`."""
        self.fetch_backoff_s = _shorten_fetch_backoff(self.consumer, HELD_BUFFER_BACKOFF_S)

    def forget(self) -> None:
        """Forget every clock (a rebalance: nothing is held until records come again)."""
        self.clocks.clear()
        self.starved.clear()
        self.held.clear()

    def rewound(self, tp: Any) -> None:
        """Forget ``tp``'s clock: it was sought back, its next records are older."""
        self.clocks.pop(tp, None)
        self.starved.pop(tp, None)
        self.held.discard(tp)

    def seek(self, tp: Any, offset: int) -> None:
        """The consumer's ``seek``, forgetting ``tp``'s clock."""
        self.rewound(tp)
        self.consumer.seek(tp, offset)

    async def seek_to_beginning(self, *partitions: Any) -> Any:
        """The consumer's ``seek_to_beginning``, forgetting the partitions' clocks."""
        for tp in partitions:
            self.rewound(tp)
        return await self.consumer.seek_to_beginning(*partitions)

    async def getmany(
        self, *partitions: Any, timeout_ms: int = 0, max_records: int | None = None
    ) -> dict[Any, list[Any]]:
        """The consumer's ``getmany`` over the partitions in step (all, if none is ahead).

        Explicit ``partitions`` (the guard's probe, one partition at a time)
        are read as asked.
        """
        consumer = self.consumer
        if partitions:
            got: dict[Any, list[Any]] = await consumer.getmany(
                *partitions, timeout_ms=timeout_ms, max_records=max_records
            )
            self._handed(got)
            return got
        held, floors = await self._ahead()
        self.held = held
        started = time.monotonic()
        step = self.step if max_records is None else min(max_records, self.step)
        if held:
            self.held_total += 1
            wanted = [tp for tp in consumer.assignment() if tp not in held]
            got = await consumer.getmany(
                *wanted, timeout_ms=min(timeout_ms, _HOLD_WAIT_MS), max_records=step
            )
        else:
            got = await consumer.getmany(timeout_ms=timeout_ms, max_records=step)
        waited = time.monotonic() - started
        for tp in floors:
            if not got.get(tp):
                self.starved[tp] = self.starved.get(tp, 0.0) + waited
        self._handed(got)
        return got

    def _handed(self, got: dict[Any, list[Any]]) -> None:
        clocks = self.clocks
        for tp, records in got.items():
            if records:
                ts = records[-1].timestamp
                if ts is not None and ts >= 0 and ts > clocks.get(tp, -1):
                    clocks[tp] = ts
                self.starved.pop(tp, None)

    def _source(self, tp: Any) -> str | None:
        try:
            return self._sources[tp]
        except KeyError:
            source = self._sources[tp] = self.source_of(tp.topic, tp.partition)
            return source

    async def _ahead(self) -> tuple[set[Any], list[Any]]:
        """The partitions to hold back now, and the floors they wait for."""
        bound, clocks_of = self.bound_ms, self.clocks
        by_source: dict[str, list[tuple[int, Any]]] = {}
        for tp in self.consumer.assignment():
            source = self._source(tp)
            if source is not None:  # no clock yet: behind all (a floor if it has records)
                by_source.setdefault(source, []).append((clocks_of.get(tp, -1), tp))
        held: set[Any] = set()
        floors: list[Any] = []
        for clocks in by_source.values():
            if len(clocks) < 2:
                continue
            clocks.sort(key=_first)
            if clocks[-1][0] - clocks[0][0] <= bound:
                continue  # in step: no position to look at
            for i, (clock, tp) in enumerate(clocks):
                if clocks[-1][0] - clock <= bound:
                    break  # no partition runs ahead of this floor: nothing held
                if await self._is_floor(tp):
                    floors.append(tp)
                    held.update(t for c, t in clocks[i + 1 :] if c - clock > bound)
                    break
        return held, floors

    async def _is_floor(self, tp: Any) -> bool:
        """Whether ``tp`` has records to hand over and can be waited for."""
        if self.starved.get(tp, 0.0) > _STARVED_S:
            return False
        consumer = self.consumer
        try:
            if tp in consumer.paused():
                return False
            highwater: int | None = consumer.highwater(tp)
            if highwater is None:
                return False
            position: int = await consumer.position(tp)
        except Exception:  # revoked meanwhile: it holds nothing back
            return False
        return position < highwater


def _first(item: tuple[int, Any]) -> int:
    return item[0]


def _shorten_fetch_backoff(consumer: Any, seconds: float) -> float | None:
    """Let a held partition's unread buffer delay the next fetch by ``seconds`` at most.

    aiokafka's fetcher sends no fetch request to a broker while any partition
    led by it holds a fetched buffer younger than its ``prefetch_backoff``
    (0,1 s, not a consumer option). A held partition keeps its buffer, so at
    the default every fetch of the floor, on the same broker, waited up to
    0,1 s (measured: +1,5 to +2 µs of fetch wait per event at 300.000). The
    same backoff spaces the retries of a partition whose fetch failed, so it
    is shortened, not removed (no busy loop against a failing broker).

    Returns:
        The backoff set, or ``None`` if the consumer has no such fetcher
        (another aiokafka version: the alignment still works, only slower).
    """
    fetcher = getattr(consumer, "_fetcher", None)
    if fetcher is None or not isinstance(getattr(fetcher, "_prefetch_backoff", None), float):
        return None
    fetcher._prefetch_backoff = min(fetcher._prefetch_backoff, seconds)
    return float(fetcher._prefetch_backoff)
