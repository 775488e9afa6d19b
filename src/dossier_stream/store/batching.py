"""The batching writer between the processor and ClickHouse.

:class:`BatchingSink` buffers rows per table (latest row per key) and writes
them in one insert per table per flush. It is what makes the worker's
"stored before acknowledged" rule hold:

* a flush takes the whole buffer *out* under a lock and writes it, so rows
  added meanwhile (another agent's batch, on the event loop, while the flush
  runs in a thread) go to the next flush and never to a half-written one;
* only one flush runs at a time, and a flush waits for the one in progress:
  when ``flush()`` returns, every row added before the call is stored (or
  the call raised) — whoever wrote them;
* a failed flush puts back what it could not write (rows added meanwhile are
  newer and win), so retrying ``flush()`` writes them; the tables it already
  wrote are not written twice;
* :meth:`BatchingSink.discard` drops the buffered rows of partitions this
  worker lost: their events were not acknowledged, the new owner re-reads
  them, and a late write of ours would replace its newer totals.

A fact row may be *lazy* (:data:`FactRow`): a zero-argument callable that
builds the row. It is called only when the row is written, by the flush (in
the flush's thread, outside the buffer lock), so a key replaced several times
between two flushes builds its row once. A lazy row that a failed flush puts
back is built again by the retry; a callable that raises fails the flush like
a failed write, and its table's rows are kept for the retry.

The sink counts the rows it holds as they are added, so ``len()``, the
backpressure check of ``add_*`` and :meth:`BatchingSink.due` cost O(1).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from itertools import repeat
from operator import itemgetter
from typing import Any, Protocol

from mypy_extensions import mypyc_attr  # declared in pyproject.toml (mypyc's decorators)

from dossier_stream.core.counters import CounterKey

__all__ = [
    "BatchingSink",
    "CounterRows",
    "FactRow",
    "FlushHook",
    "RowWriter",
    "SinkBackpressure",
]


class RowWriter(Protocol):
    """Where a flush writes (:class:`~.sink.ClickHouseStore` is one; tests may pass another)."""

    def write_counters(self, rows: Iterable[tuple[str, str, date, str, int]]) -> int:
        """Upsert absolute counter rows; return how many were written."""
        ...

    def write_rows(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> int:
        """Insert rows into a fact table; return how many."""
        ...

    def write_dead_letters(self, rows: Sequence[Sequence[Any]]) -> int:
        """Insert dead-letter rows; return how many."""
        ...


_LOG = logging.getLogger(__name__)

FlushHook = Callable[[int, float, BaseException | None], object]
"""Called after each flush that had rows to write: ``(rows written, seconds, error or None)``."""

FactRow = Sequence[Any] | Callable[[], Sequence[Any]]
"""A fact row, or a zero-argument callable that returns it when the row is written.

The callable runs at flush time, possibly in another thread and after later
events were folded: it should build the row from what it captured (an
immutable state), not from mutable state it looks up when called.
"""


@mypyc_attr(native_class=False)  # a compiled build: mypyc cannot subclass RuntimeError natively
class SinkBackpressure(RuntimeError):
    """The writer's buffer is full: stop consuming until a flush succeeds."""


CounterRow = tuple[str, str, date, str, int]
"""``(source, unit, day, counter, absolute total)``."""


class CounterRows:
    """Buffered counters as :data:`CounterRow` rows, without a tuple per row.

    What a flush hands to ``ClickHouseStore.write_counters``: the store reads
    :meth:`columns` straight from the buffer; anything else that iterates it
    gets the rows, built one by one (source by source).

    Args:
        totals: ``{source: {(unit, day, counter): total}}``.
    """

    __slots__ = ("_totals",)

    def __init__(self, totals: Mapping[str, Mapping[CounterKey, int]]) -> None:
        self._totals = totals

    def __len__(self) -> int:
        return sum(map(len, self._totals.values()))

    def __iter__(self) -> Iterator[CounterRow]:
        # a generator function, not a generator expression: mypyc builds a starred
        # expression's generator as a whole list
        for s, held in self._totals.items():
            for (unit, day, name), v in held.items():
                yield s, unit, day, name, v

    def columns(self) -> list[list[Any]]:
        """The five columns (source, unit, day, counter, total), in the rows' order."""
        columns: list[list[Any]] = [[], [], [], [], []]
        sources, units, days, names, values = columns
        for source, held in self._totals.items():
            sources += repeat(source, len(held))
            units += map(_UNIT, held)
            days += map(_DAY, held)
            names += map(_NAME, held)
            values += held.values()
        return columns


_UNIT, _DAY, _NAME = itemgetter(0), itemgetter(1), itemgetter(2)


@dataclass(slots=True)
class _Buffers:
    """Rows waiting for ClickHouse.

    Counters are ``{source: {(unit, day, counter): total}}`` (a source's
    totals go in with one ``dict.update``, no key built per counter), facts
    ``{table: {key: row}}`` and their sources ``{table: {key: source}}``
    (two ``dict.update`` calls, no tuple per row). ``n`` is the number of rows held:
    :class:`BatchingSink` keeps it as it adds rows, and :meth:`recount` sets
    it after bulk changes.
    """

    counters: dict[str, dict[CounterKey, int]] = field(default_factory=dict)
    facts: dict[str, dict[Any, FactRow]] = field(default_factory=dict)
    sources: dict[str, dict[Any, str]] = field(default_factory=dict)
    dead: list[Sequence[Any]] = field(default_factory=list)
    n: int = 0

    def __len__(self) -> int:
        return self.n

    def recount(self) -> int:
        """Count the rows held again (after a bulk change); returns the count."""
        self.n = (
            sum(map(len, self.counters.values()))
            + sum(map(len, self.facts.values()))
            + len(self.dead)
        )
        return self.n

    def merge_newer(self, newer: _Buffers) -> None:
        """Add ``newer``'s rows into these; on the same key ``newer`` wins."""
        for source, totals in newer.counters.items():
            self.counters.setdefault(source, {}).update(totals)
        for table, rows in newer.facts.items():
            self.facts.setdefault(table, {}).update(rows)
            self.sources.setdefault(table, {}).update(newer.sources[table])
        self.dead.extend(newer.dead)
        self.recount()


def _built(rows: Iterable[FactRow]) -> list[Sequence[Any]]:
    """The rows of a fact table, lazy rows built."""
    return [row() if callable(row) else row for row in rows]


_KEY = itemgetter(0)


class BatchingSink:
    """Buffers rows per table and writes them in one insert per table per flush.

    ``add_*`` buffer (from the event loop), ``flush`` writes everything
    buffered (from any thread; call it by size or by time: :meth:`due`).
    When ``4 * max_rows`` rows are waiting, ``add_*`` raise
    :class:`SinkBackpressure`: the worker flushes by size within a batch, so
    this is a last safeguard against exhausting memory, not flow control.

    Rows of the same key replace each other in the buffer (the latest wins),
    which is what the absolute-total tables want; a replaced row is counted
    once.

    Args:
        store: where rows go.
        max_rows: flush size (and a quarter of the backpressure bound).
        interval_s: flush interval.
        on_flush: timing hook (:data:`FlushHook`), e.g. for metrics; a flush
            with nothing buffered does not call it, a failed one does (with
            the error) before the error propagates.
    """

    def __init__(
        self,
        store: RowWriter,
        *,
        max_rows: int,
        interval_s: float,
        on_flush: FlushHook | None = None,
    ) -> None:
        self.store = store
        self.max_rows = max_rows
        self.interval_s = interval_s
        self.on_flush = on_flush
        self._buf = _Buffers()
        self._columns: dict[str, Sequence[str]] = {}
        self._lock = threading.Lock()  # guards the buffers
        self._flushing = threading.Lock()  # one flush at a time
        self._last_flush = time.monotonic()
        self._before_flush: list[Callable[[], object]] = []

    def before_flush(self, hook: Callable[[], object]) -> None:
        """Call ``hook`` at the start of every flush, before the buffers are taken.

        What it adds (e.g. the processor's counter totals, handed over once
        per batch rather than per chunk) is written by that flush, and is not
        subject to the backpressure bound (``add_counters(..., bounded=False)``):
        the flush is what relieves it. It runs in the flushing thread.
        """
        self._before_flush.append(hook)

    def __len__(self) -> int:
        return self._buf.n  # one attribute read: atomic under the GIL, no lock needed

    def add_counter(self, source: str, key: CounterKey, total: int) -> None:
        """Buffer the new absolute total of (source, unit, day, counter)."""
        with self._lock:
            buf = self._buf
            if buf.n >= self.max_rows * 4:
                raise self._full(buf.n)
            held = buf.counters.get(source)
            if held is None:
                held = buf.counters[source] = {}
            before = len(held)
            held[key] = total
            buf.n += len(held) - before

    def add_counters(
        self,
        source: str,
        totals: Mapping[CounterKey, int] | Iterable[tuple[CounterKey, int]],
        *,
        bounded: bool = True,
    ) -> None:
        """Buffer several new absolute totals of one source (one lock; as :meth:`add_counter`).

        Args:
            source: the source partition of the totals.
            totals: ``{(unit, day, counter): total}``, or its ``(key, total)``
                pairs (consumed under the lock, in one ``dict.update``).
            bounded: raise :class:`SinkBackpressure` when ``4 * max_rows`` rows
                wait (``False`` from a :meth:`before_flush` hook).
        """
        with self._lock:
            buf = self._buf
            if bounded and buf.n >= self.max_rows * 4:
                raise self._full(buf.n)
            held = buf.counters.get(source)
            if held is None:
                held = buf.counters[source] = {}
            before = len(held)
            held.update(totals)
            buf.n += len(held) - before

    def add_facts(
        self,
        table: str,
        columns: Sequence[str],
        rows: Iterable[tuple[Any, FactRow]],
        *,
        source: str = "",
    ) -> None:
        """Buffer the latest rows of several keys of one source (one lock; as :meth:`add_fact`).

        Args:
            table: the fact table.
            columns: its columns, in the order of the rows.
            rows: ``(key, row)`` pairs; a row may be lazy (:data:`FactRow`).
            source: the source partition of the rows (for :meth:`discard`).
        """
        with self._lock:
            buf = self._buf
            if buf.n >= self.max_rows * 4:
                raise self._full(buf.n)
            self._columns[table] = columns
            held = buf.facts.get(table)
            if held is None:
                held = buf.facts[table] = {}
                buf.sources[table] = {}
            pairs = rows if isinstance(rows, list | tuple) else list(rows)
            buf.sources[table].update(zip(map(_KEY, pairs), repeat(source)))
            before = len(held)
            try:
                held.update(pairs)
            finally:
                buf.n += len(held) - before

    def add_fact(
        self, table: str, columns: Sequence[str], key: Any, row: FactRow, *, source: str = ""
    ) -> None:
        """Buffer the latest row of ``key`` in a fact table.

        Args:
            table: the fact table.
            columns: its columns, in the order of the row (the store adds
                ``version``).
            key: the row's key in the table; a later row of the same key
                replaces this one.
            row: the row, or a zero-argument callable that returns it when
                the row is written (:data:`FactRow`).
            source: the source partition of the row (for :meth:`discard`).
        """
        self.add_facts(table, columns, ((key, row),), source=source)

    def add_dead_letter(self, row: Sequence[Any]) -> None:
        """Buffer one dead-letter row."""
        with self._lock:
            buf = self._buf
            if buf.n >= self.max_rows * 4:
                raise self._full(buf.n)
            buf.dead.append(row)
            buf.n += 1

    @staticmethod
    def _full(waiting: int) -> SinkBackpressure:
        return SinkBackpressure(
            f"{waiting} rows wait for ClickHouse; pausing until a flush succeeds"
        )

    def due(self) -> bool:
        """Whether a flush is due by size or by time."""
        n = len(self)
        return n >= self.max_rows or (
            n > 0 and time.monotonic() - self._last_flush >= self.interval_s
        )

    def discard(self, sources: Iterable[str]) -> int:
        """Drop the buffered counter and fact rows of ``sources``; returns how many."""
        gone = set(sources)
        with self._lock:
            buf = self._buf
            before = buf.n
            for source in gone:
                buf.counters.pop(source, None)
            for table, rows in buf.facts.items():
                sources = buf.sources[table]
                for key in [k for k, s in sources.items() if s in gone]:
                    del sources[key]
                    rows.pop(key, None)
            return before - buf.recount()

    def flush(self) -> int:
        """Write everything buffered; on failure the unwritten rows are kept for the next try.

        Lazy fact rows are built here (see the module docs).

        Returns:
            The number of rows written.
        """
        with self._flushing:
            for hook in self._before_flush:
                hook()
            with self._lock:
                pending, self._buf = self._buf, _Buffers()
                columns = dict(self._columns)
            if not pending.n:
                self._last_flush = time.monotonic()
                return 0
            written = [0]
            t0 = time.perf_counter()
            try:
                self._write(pending, columns, written)
            except Exception as exc:
                with self._lock:
                    pending.merge_newer(self._buf)
                    self._buf = pending
                if self.on_flush is not None:
                    self.on_flush(written[0], time.perf_counter() - t0, exc)
                raise
            self._last_flush = time.monotonic()
            if self.on_flush is not None:
                self.on_flush(written[0], time.perf_counter() - t0, None)
            _LOG.debug("flushed %s rows to ClickHouse", written[0])
            return written[0]

    def _write(
        self, pending: _Buffers, columns: dict[str, Sequence[str]], written: list[int]
    ) -> None:
        """Write ``pending`` table by table, removing what is written (``written[0]`` counts)."""
        counters = CounterRows(pending.counters)
        if len(counters):
            _LOG.debug("writing %s rows to unit_day_counters", len(counters))
            written[0] += self.store.write_counters(counters)
        pending.counters = {}
        for table in list(pending.facts):
            rows = _built(pending.facts[table].values())
            _LOG.debug("writing %s rows to %s", len(rows), table)
            written[0] += self.store.write_rows(table, columns[table], rows)
            del pending.facts[table], pending.sources[table]
        if pending.dead:
            _LOG.debug("writing %s rows to dead_letters", len(pending.dead))
            written[0] += self.store.write_dead_letters(pending.dead)
            pending.dead = []
