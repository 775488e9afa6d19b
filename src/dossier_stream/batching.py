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
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any

from dossier_stream.counters import CounterKey

if TYPE_CHECKING:
    from dossier_stream.sink import ClickHouseStore

__all__ = ["BatchingSink", "FlushHook", "SinkBackpressure"]

_LOG = logging.getLogger(__name__)

FlushHook = Callable[[int, float, BaseException | None], object]
"""Called after each flush that had rows to write: ``(rows written, seconds, error or None)``."""


class SinkBackpressure(RuntimeError):
    """The writer's buffer is full: stop consuming until a flush succeeds."""


@dataclass(slots=True)
class _Buffers:
    """Rows waiting for ClickHouse; facts are ``{table: {key: (source, row)}}``."""

    counters: dict[tuple[str, str, date, str], int] = field(default_factory=dict)
    facts: dict[str, dict[Any, tuple[str, Sequence[Any]]]] = field(default_factory=dict)
    dead: list[Sequence[Any]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.counters) + sum(len(v) for v in self.facts.values()) + len(self.dead)

    def merge_newer(self, newer: _Buffers) -> None:
        """Add ``newer``'s rows into these; on the same key ``newer`` wins."""
        self.counters.update(newer.counters)
        for table, rows in newer.facts.items():
            self.facts.setdefault(table, {}).update(rows)
        self.dead.extend(newer.dead)


class BatchingSink:
    """Buffers rows per table and writes them in one insert per table per flush.

    ``add_*`` buffer (from the event loop), ``flush`` writes everything
    buffered (from any thread; call it by size or by time: :meth:`due`).
    When ``4 * max_rows`` rows are waiting, ``add_*`` raise
    :class:`SinkBackpressure`: the worker flushes by size within a batch, so
    this is a last safeguard against exhausting memory, not flow control.

    Rows of the same key replace each other in the buffer (the latest wins),
    which is what the absolute-total tables want.

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
        store: ClickHouseStore,
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

    def __len__(self) -> int:
        with self._lock:
            return len(self._buf)

    def add_counter(self, source: str, key: CounterKey, total: int) -> None:
        """Buffer the new absolute total of (source, unit, day, counter)."""
        with self._lock:
            self._check()
            self._buf.counters[(source, key[0], key[1], key[2])] = total

    def add_fact(
        self, table: str, columns: Sequence[str], key: Any, row: Sequence[Any], *, source: str = ""
    ) -> None:
        """Buffer the latest row of ``key`` in a fact table (``source``: its partition)."""
        with self._lock:
            self._check()
            self._columns[table] = columns
            self._buf.facts.setdefault(table, {})[key] = (source, row)

    def add_dead_letter(self, row: Sequence[Any]) -> None:
        """Buffer one dead-letter row."""
        with self._lock:
            self._check()
            self._buf.dead.append(row)

    def _check(self) -> None:
        if len(self._buf) >= self.max_rows * 4:
            raise SinkBackpressure(
                f"{len(self._buf)} rows wait for ClickHouse; pausing until a flush succeeds"
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
            before = len(buf)
            buf.counters = {k: v for k, v in buf.counters.items() if k[0] not in gone}
            for table, rows in buf.facts.items():
                buf.facts[table] = {k: sr for k, sr in rows.items() if sr[0] not in gone}
            return before - len(buf)

    def flush(self) -> int:
        """Write everything buffered; on failure the unwritten rows are kept for the next try.

        Returns:
            The number of rows written.
        """
        with self._flushing:
            with self._lock:
                pending, self._buf = self._buf, _Buffers()
                columns = dict(self._columns)
            if not len(pending):
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
        if pending.counters:
            _LOG.debug("writing %s rows to unit_day_counters", len(pending.counters))
            written[0] += self.store.write_counters(
                (s, u, d, c, v) for (s, u, d, c), v in pending.counters.items()
            )
            pending.counters = {}
        for table in list(pending.facts):
            rows = [row for _, row in pending.facts[table].values()]
            _LOG.debug("writing %s rows to %s", len(rows), table)
            written[0] += self.store.write_rows(table, columns[table], rows)
            del pending.facts[table]
        if pending.dead:
            _LOG.debug("writing %s rows to dead_letters", len(pending.dead))
            written[0] += self.store.write_dead_letters(pending.dead)
            pending.dead = []
