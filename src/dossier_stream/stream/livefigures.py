"""The worker's live per-unit figures, behind the per-unit gauges of :mod:`~.metrics`.

:class:`LiveFigures` keeps, for the sources (partitions) this worker owns,
the counter totals of the current period to date and the open dossiers, and
hands them out as a :class:`LiveSnapshot` (the metrics module documents what
each figure means). :mod:`dossier_stream.stream.metrics` re-exports every name here.

Cost. :meth:`LiveFigures.update` runs after every batch and
:meth:`LiveFigures.snapshot` every few seconds on the event loop, so neither
rescans what did not change (``python -m bench.metrics`` measures both):

* Counter totals: the counter changes of each applied event
  (``Outcome.delta``) that fall in the window are added to the worker's
  totals per unit and counter, one dict update per changed counter. A
  revoked source takes away its share, kept per source (what was loaded
  from its engine's counters plus every delta since: its engine's stores
  may be closed by then). Its units stay, at 0 if no other source
  has them (the gauges keep such series at 0 anyway). A snapshot makes the
  indicator figures of each unit from those totals: a few thousand numbers.
* Open dossiers: an open dossier whose facts all lie before the clock (its
  reception, every supplement request or receipt; no completion or
  withdrawal yet) is *settled*: it stays open until its state changes, and
  it is past due from one instant on: after its effective due time (due
  time plus the pauses so far); never while a supplement request is
  pending; at once after two or more requests (see
  :meth:`~dossier_stream.core.lifecycle.DossierState.is_open_past_due`). Each
  settled dossier is kept as one ``int``, that instant in microseconds and
  its unit packed together, in its source's index and, until the instant
  passes, in its source's heap; the counts per unit follow as dossiers
  come, change, close and pass their instant. A snapshot only pops the
  instants passed since the last one. A dossier with a fact later than the
  clock (clock skew, a test clock) is kept as its state and examined again
  at every snapshot until it settles or closes. Payments and digitisation
  never open, close or move the due time of a dossier, so their events
  touch no state here. When the clock goes back, everything is summed
  again, as on a new day.

Memory: about 80-100 bytes per open dossier in the index (a dict entry, the
``int``, a heap slot), and no reference to the states, so a state store on
disk is not pulled back into memory by the metrics. A worker whose states
are on disk also bounds the index (``spill``, ``index_entries``): after each
batch, the entries beyond ``index_entries`` per source (the oldest placed)
go to a RocksDB of the source's own, and a dossier's entry is looked up
there only when its dossier changes and a Bloom filter of the spilled ids
(:class:`~dossier_stream.store.keyfilter.KeyFilter`, ≈ 1,25 B per id) says it
may be there. The counts per unit stay in memory, so the figures are the
same; what stays in memory per spilled dossier is its bits in the filter.
Without it, a backfill of abandoned dossiers (the bench's tiled months leave
about 32.000 open per 300.000 events) grows the index without end.

The states' times are local (Asia/Ho_Chi_Minh, ``VN_TZ``), and so is the
clock here: aware datetimes with the same ``tzinfo`` compare and subtract
without asking it for offsets, which is most of what comparing them costs.
That equals comparing them in UTC, Asia/Ho_Chi_Minh having had one offset
since 1975.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from heapq import heapify, heappop, heappush
from itertools import islice
from operator import attrgetter
from pathlib import Path
from typing import Final, get_args

from rocksdict import Rdict, WriteBatch

from dossier_stream.core.counters import CounterKey
from dossier_stream.core.engine import Engine
from dossier_stream.core.events import DossierDigitized, DossierEvent, DossierPayment
from dossier_stream.core.indicators import INDICATORS, Indicator
from dossier_stream.core.lifecycle import DossierState
from dossier_stream.core.periods import Period, monthly_report
from dossier_stream.core.registry import UnitRegistry
from dossier_stream.core.workdays import VN_TZ
from dossier_stream.store.keyfilter import KeyFilter
from dossier_stream.store.statestore import RocksTuning, open_rocks, store_directory
from dossier_stream.stream.processor import Handled

__all__ = [
    "LIVE_INDICATORS",
    "IndicatorKey",
    "LiveFigures",
    "LiveSnapshot",
    "UnitLevel",
    "epoch_micros",
    "live_period",
]

LIVE_INDICATORS: Final[tuple[Indicator, ...]] = tuple(
    ind for ind in INDICATORS if ind.key != "synchronisation"
)
"""Indicators exported per unit (``synchronisation`` is not additive across workers)."""

UnitLevel = tuple[str, str]
"""``(unit code, level)``."""
IndicatorKey = tuple[str, str, str]
"""``(indicator, unit code, level)``."""

_OPENING_EVENTS: Final = frozenset(get_args(DossierEvent)) - {DossierPayment, DossierDigitized}
"""Dossier events that can open, close or move the due time of a dossier (not payments, files)."""
_DOSSIER_ID: Final = attrgetter("dossier_id")
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND: Final = timedelta(microseconds=1)
_LOCAL_REF: Final = datetime(1976, 1, 1, tzinfo=VN_TZ)
_LOCAL_REF_US: Final = (_LOCAL_REF - _EPOCH) // _MICROSECOND
_ALWAYS: Final = -1
"""Past-due instant (µs) of a dossier past due as soon as it is open."""
_NEVER: Final = 1 << 62
"""Past-due instant (µs) of a dossier that is never past due in its present state (paused)."""
_COMPACT_AT: Final = 1024
"""Rebuild a heap once it holds this many deleted entries and more than live ones."""


_SPILL_TUNING: Final = RocksTuning(write_buffer_bytes=4 << 20)
"""The spilled index's rows are small (an id and a few bytes): a 4 MiB memtable is plenty."""


def _fresh_rocks(path: Path, tuning: RocksTuning) -> Rdict:
    """An empty RocksDB at ``path`` (what an earlier run left there is removed)."""
    if path.exists():
        shutil.rmtree(path)
    return open_rocks(path, tuning)


def live_period(now: datetime) -> Period:
    """The city's monthly report period (15th → 14th) containing ``now``'s local day."""
    day = now.astimezone(VN_TZ).date()
    if day.day < 15:
        return monthly_report(day.year, day.month)
    year, month = (day.year + 1, 1) if day.month == 12 else (day.year, day.month + 1)
    return monthly_report(year, month)


def _utcnow() -> datetime:
    return datetime.now(UTC)


def epoch_micros(at: datetime) -> int:
    """Microseconds since the Unix epoch; fast for the local times the states hold.

    Two datetimes with the same ``tzinfo`` subtract without asking it for
    offsets (which is what costs). Asia/Ho_Chi_Minh has kept one offset
    since 1975, so from :data:`_LOCAL_REF` on the local difference is exact.
    """
    if at.tzinfo is VN_TZ and at.year > _LOCAL_REF.year:
        return _LOCAL_REF_US + (at - _LOCAL_REF) // _MICROSECOND
    return (at - _EPOCH) // _MICROSECOND


@dataclass(frozen=True, slots=True)
class LiveSnapshot:
    """The per-unit figures of one refresh.

    Attributes:
        period: the current monthly report period.
        window: its days up to today (what the indicator figures sum).
        indicators: ``(numerator, denominator)`` per (indicator, unit, level).
        open: open dossiers per (unit, level).
        past_due: open and past-due dossiers per (unit, level).
    """

    period: Period
    window: Period
    indicators: dict[IndicatorKey, tuple[int, int]] = field(default_factory=dict)
    open: dict[UnitLevel, int] = field(default_factory=dict)
    past_due: dict[UnitLevel, int] = field(default_factory=dict)


class _Source:
    """The open dossiers of one source (an engine).

    A settled open dossier is ``index[id] = instant << bits | unit``: the
    instant (µs) after which it is past due, and its unit's number. Its
    count is in ``open[unit]``, and in ``due[unit]`` once ``packed < limit``
    (the clock's packed instant); until then it is in ``heap``. A heap entry
    whose dossier changed or closed before its instant stays in the heap and
    is counted in ``removed`` (deleted lazily, when popped or compacted).
    """

    __slots__ = (
        "cap", "db", "due", "engine", "future", "garbage", "heap", "index", "named", "open",
        "path", "removed", "spilled", "written",
    )  # fmt: skip

    def __init__(
        self, engine: Engine, units: int, path: Path | None, cap: int, tuning: RocksTuning
    ) -> None:
        self.engine = engine
        # the index's oldest entries beyond ``cap`` go to a RocksDB of their own (``path``)
        self.path, self.cap = path, cap
        self.db = None if path is None else _fresh_rocks(path, tuning)
        # every id ever spilled: another one is not on disk
        self.written = KeyFilter(max_bytes=tuning.key_filter_bytes)
        self.spilled = 0
        self.named: dict[str, dict[str, int]] = {}  # its share of the window's totals
        self.index: dict[str, int] = {}
        self.future: dict[str, DossierState] = {}
        self.heap: list[int] = []
        self.removed: dict[int, int] = {}
        self.garbage = 0
        self.open = [0] * units
        self.due = [0] * units

    def take(self, did: str) -> int | None:
        """Remove ``did`` from the index (in memory or spilled); its packed value, if any."""
        old = self.index.pop(did, None)
        if old is not None or self.db is None or did not in self.written:
            return old
        key = did.encode()
        raw: bytes | None = self.db.get(key)
        if raw is None:
            return None
        self.db.delete(key)
        self.spilled -= 1
        return int.from_bytes(raw, "little", signed=True)

    def spill(self) -> None:
        """Write the index's oldest entries beyond ``cap`` to RocksDB and drop them from memory."""
        index, db = self.index, self.db
        excess = len(index) - self.cap
        if db is None or excess <= 0:
            return
        victims = list(islice(index.items(), excess))
        batch = WriteBatch(raw_mode=True)
        for did, packed in victims:
            batch.put(
                did.encode(), packed.to_bytes(packed.bit_length() // 8 + 1, "little", signed=True)
            )
            self.written.add(did)
            del index[did]
        db.write(batch)
        self.spilled += excess

    def close(self) -> None:
        """Drop what was spilled (the index is rebuilt from the states when needed)."""
        if self.db is not None:
            self.db.close()
            self.db = None
            if self.path is not None:
                shutil.rmtree(self.path, ignore_errors=True)

    def add(self, packed: int, mask: int, limit: int, never: int) -> None:
        unit = packed & mask
        self.open[unit] += 1
        if packed < limit:
            self.due[unit] += 1
        elif packed < never:
            heappush(self.heap, packed)

    def drop(self, packed: int, mask: int, limit: int, never: int) -> None:
        unit = packed & mask
        self.open[unit] -= 1
        if packed < limit:
            self.due[unit] -= 1
        elif packed < never:
            self.removed[packed] = self.removed.get(packed, 0) + 1
            self.garbage += 1
            if self.garbage >= _COMPACT_AT and 2 * self.garbage > len(self.heap):
                self._compact()

    def advance(self, mask: int, limit: int) -> None:
        """Count the dossiers whose past-due instant is before ``limit`` as past due."""
        heap, removed = self.heap, self.removed
        while heap and heap[0] < limit:
            packed = heappop(heap)
            left = removed.get(packed)
            if left is None:
                self.due[packed & mask] += 1
                continue
            self.garbage -= 1
            if left == 1:
                del removed[packed]
            else:
                removed[packed] = left - 1

    def _compact(self) -> None:
        removed, kept = self.removed, []
        for packed in self.heap:
            left = removed.get(packed)
            if left is None:
                kept.append(packed)
            elif left == 1:
                del removed[packed]
            else:
                removed[packed] = left - 1
        heapify(kept)
        self.heap, self.garbage = kept, 0


class LiveFigures:
    """Period-to-date counter totals and open dossiers of the sources this worker owns.

    A source (partition) seen for the first time, or handled by a new engine
    after a reassignment, is summed once from its engine's counters and
    states; after that :meth:`update` adds the counter changes and the
    dossier changes of each handled message (see the module docstring).
    When the local day changes (or the clock goes back) everything is
    summed again for the new window. Sources whose engine is gone (revoked)
    are dropped.

    Args:
        registry: the unit registry (labels are bounded by it).
        clock: the current time (injectable for tests); aware datetimes.
    """

    def __init__(
        self,
        registry: UnitRegistry,
        *,
        clock: Callable[[], datetime] | None = None,
        spill: Path | None = None,
        index_entries: int = 10_000,
        tuning: RocksTuning | None = None,
    ) -> None:
        if index_entries < 1:
            raise ValueError(f"index_entries must be at least 1, not {index_entries}")
        self.registry = registry
        self.clock = clock or _utcnow
        self.spill, self.index_entries = spill, index_entries
        self.tuning = tuning or _SPILL_TUNING
        self._keys: list[UnitLevel] = [(unit.code, unit.level) for unit in registry]
        self._unit_of = {code: n for n, (code, _) in enumerate(self._keys)}
        self._bits = max(len(self._keys).bit_length(), 1)
        self._mask = (1 << self._bits) - 1
        self._never = _NEVER << self._bits
        self._limit = 0
        self._period: Period | None = None
        self._window: Period | None = None
        self._sources: dict[str, _Source] = {}
        self._named: dict[str, dict[str, int]] = {}  # unit → counter → total over the sources

    def _roll(self, now: datetime) -> Period:
        """Start again on a new day (or when the clock went back); count what passed due.

        Args:
            now: the clock, in local time (see :meth:`_local_now`).
        """
        period = live_period(now)
        window = Period(period.start, now.date())
        limit = epoch_micros(now) << self._bits
        if window != self._window or limit < self._limit:
            self._period, self._window = period, window
            for src in self._sources.values():
                src.close()
            self._sources.clear()
            self._named.clear()
        self._limit = limit
        for src in self._sources.values():
            src.advance(self._mask, limit)
        return window

    def _local_now(self) -> datetime:
        """The clock in local time: the states' times compare with it without offset look-ups."""
        return self.clock().astimezone(VN_TZ)

    def _sync(self, engines: Mapping[str, Engine], window: Period, now: datetime) -> set[str]:
        """Drop revoked sources and load new ones; returns the sources just loaded."""
        named_all = self._named
        for source in [s for s, src in self._sources.items() if engines.get(s) is not src.engine]:
            # its share: what was loaded plus every delta since (its engine's counter
            # store may be closed already)
            gone = self._sources.pop(source)
            gone.close()
            for unit, share in gone.named.items():
                named = named_all[unit]
                for name, value in share.items():
                    named[name] -= value
        loaded = set()
        for source, engine in engines.items():
            if source in self._sources:
                continue
            path = None if self.spill is None else store_directory(self.spill, source)
            src = _Source(engine, len(self._keys), path, self.index_entries, self.tuning)
            self._sources[source] = src
            self._add_totals(engine.counters, window, src.named)
            for state in engine.dossiers.values():
                self._place(src, state.dossier_id, state, now)
                if len(src.index) >= 2 * src.cap:
                    src.spill()
            src.spill()
            loaded.add(source)
        return loaded

    def _add_totals(
        self, counters: Mapping[CounterKey, int], window: Period, share: dict[str, dict[str, int]]
    ) -> None:
        """Add the counters of the window's days to the totals and to a source's ``share``."""
        start, end, named_all = window.start, window.end, self._named
        for (unit, day, name), value in counters.items():
            if start <= day <= end:
                for totals in (named_all, share):
                    named = totals.get(unit)
                    if named is None:
                        named = totals[unit] = {}
                    named[name] = named.get(name, 0) + value

    def _place(self, src: _Source, did: str, state: DossierState | None, now: datetime) -> None:
        """Index a dossier that is not indexed: settled, ahead of the clock, or not at all."""
        if state is None or state.received is None:
            return
        rec, done, gone = state.received, state.completion, state.withdrawn_at
        if (done is not None and done.completed_at <= now) or (gone is not None and gone <= now):
            return  # closed
        unit = self._unit_of.get(rec.unit_code)
        if unit is None:
            return  # never counted: no label for an unregistered unit
        sups = state.supplements
        if (
            rec.received_at > now
            or done is not None
            or gone is not None
            or (sups and sups[-1].at > now)
        ):
            src.future[did] = state
            return
        if not sups:
            instant = epoch_micros(rec.due_at)
        elif state.paused_at(now):
            instant = _NEVER
        elif state.supplement_requests > 1:
            instant = _ALWAYS
        else:  # the pauses so far are final: every supplement is in the past
            instant = epoch_micros(rec.due_at + state.pause(now))
        packed = src.index[did] = instant << self._bits | unit
        src.add(packed, self._mask, self._limit, self._never)

    def indexed(self) -> int:
        """Open dossiers indexed now (settled, and ahead of the clock), over the sources."""
        return sum(len(s.index) + s.spilled + len(s.future) for s in self._sources.values())

    def close(self) -> None:
        """Drop every source and what it spilled to disk (the next call loads them again)."""
        for src in self._sources.values():
            src.close()
        self._sources.clear()
        self._named.clear()
        self._window = None

    def load(self, engines: Mapping[str, Engine]) -> None:
        """Sum the sources not summed yet (and drop the revoked ones) now.

        Call it right after new sources are recovered, before their first
        batch is folded (``Processor.on_recovered``): they are summed from
        the states just read, and that batch's changes are then added as
        every later batch's are. Otherwise :meth:`update` sums them after the
        batch, every state of the source then (a
        :class:`~dossier_stream.store.statestore.DossierStore`
        encodes and writes back each one it holds dirty, to scan them).
        """
        now = self._local_now()
        self._sync(engines, self._roll(now), now)

    def update(self, handled: Iterable[Handled], engines: Mapping[str, Engine]) -> None:
        """Add what a batch changed (call after every ``Processor.handle``)."""
        now = self._local_now()
        window = self._roll(now)
        loaded = self._sync(engines, window, now)
        sources, named_all = self._sources, self._named
        start, end = window.start, window.end
        mask, limit, never = self._mask, self._limit, self._never
        for item in handled:
            out = item.outcome
            if out.kind != "applied" or item.source in loaded:
                continue
            src = sources.get(item.source)
            if src is None:
                continue
            if out.delta:  # what _add_totals does, inline for speed
                for (unit, day, name), value in out.delta.items():
                    if start <= day <= end:
                        for totals in (named_all, src.named):
                            named = totals.get(unit)
                            if named is None:
                                named = totals[unit] = {}
                            named[name] = named.get(name, 0) + value
            event = out.event
            if type(event) in _OPENING_EVENTS:
                did: str = _DOSSIER_ID(event)
                old = src.take(did)
                if old is not None:
                    src.drop(old, mask, limit, never)
                elif src.future:
                    src.future.pop(did, None)
                self._place(src, did, src.engine.dossiers.get(did), now)
        for src in sources.values():
            src.spill()

    def snapshot(self, engines: Mapping[str, Engine]) -> LiveSnapshot:
        """The per-unit figures now."""
        now = self._local_now()
        window = self._roll(now)
        self._sync(engines, window, now)
        assert self._period is not None  # set by _roll
        indicators: dict[IndicatorKey, tuple[int, int]] = {}
        for unit, named in self._named.items():
            n = self._unit_of.get(unit)
            if n is None:
                continue  # no label for an unregistered unit
            level = self._keys[n][1]
            for ind in LIVE_INDICATORS:
                indicators[(ind.key, unit, level)] = (
                    named.get(ind.numerator, 0),
                    named.get(ind.denominator, 0),
                )
        srcs = self._sources.values()
        for src in srcs:
            for did, state in list(src.future.items()):
                del src.future[did]
                self._place(src, did, state, now)  # settled, closed, or still ahead
        keys = self._keys
        open_ = [sum(col) for col in zip(*(s.open for s in srcs), strict=True)] or [0] * len(keys)
        due = [sum(col) for col in zip(*(s.due for s in srcs), strict=True)] or [0] * len(keys)
        for src in srcs:
            for state in src.future.values():
                rec = state.received
                assert rec is not None  # _place checked it
                if rec.received_at <= now:
                    n = self._unit_of[rec.unit_code]
                    open_[n] += 1
                    due[n] += state.is_open_past_due(now)
        return LiveSnapshot(
            self._period,
            window,
            indicators,
            {keys[n]: count for n, count in enumerate(open_) if count},
            {keys[n]: count for n, count in enumerate(due) if count},
        )
