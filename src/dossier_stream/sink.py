"""ClickHouse storage: migrations, a batching writer, and the report reads.

Written once against clickhouse-connect's client interface, so the same code
drives the embedded engine (``chdb:///path``) and a ClickHouse server
(``http(s)://user:password@host:8123/database``).

Idempotence: the worker writes *absolute* totals, never increments.
``unit_day_counters`` holds, per source partition, the current total of each
(unit, day, counter); ``dossier_facts`` one row per dossier with its latest
state. Both are ``ReplacingMergeTree(version)`` tables whose version is the
write time in nanoseconds, and reads use ``FINAL``: writing the same figures
again, after a replay or a restart, replaces rows instead of adding to them.
Dead letters are keyed by their source (topic, partition, offset).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlsplit

from dossier_stream.counters import CounterKey
from dossier_stream.views import MIGRATION as VIEWS_MIGRATION

if TYPE_CHECKING:
    from clickhouse_connect.driver.client import Client

__all__ = [
    "MIGRATIONS",
    "BatchingSink",
    "ClickHouseStore",
    "FlushHook",
    "SinkBackpressure",
    "connect",
]

_LOG = logging.getLogger(__name__)

MIGRATIONS: Final[tuple[tuple[int, str, tuple[str, ...]], ...]] = (
    (
        1,
        "counters, facts, reports, dead letters",
        (
            """CREATE TABLE IF NOT EXISTS unit_day_counters (
                source LowCardinality(String),
                unit_code LowCardinality(String),
                day Date,
                counter LowCardinality(String),
                value Int64,
                version UInt64
            ) ENGINE = ReplacingMergeTree(version)
            ORDER BY (source, unit_code, day, counter)""",
            """CREATE TABLE IF NOT EXISTS dossier_facts (
                dossier_id String,
                source LowCardinality(String),
                unit_code LowCardinality(String),
                received_at Nullable(DateTime64(6, 'Asia/Ho_Chi_Minh')),
                due_at Nullable(DateTime64(6, 'Asia/Ho_Chi_Minh')),
                channel LowCardinality(String),
                online_service_level LowCardinality(String),
                fee_required UInt8,
                reused_digital_data UInt8,
                paid_online UInt8,
                paid_cashless UInt8,
                paid_cash UInt8,
                has_component_files UInt8,
                has_result_files UInt8,
                supplement_requests UInt16,
                completed_at Nullable(DateTime64(6, 'Asia/Ho_Chi_Minh')),
                effective_due Nullable(DateTime64(6, 'Asia/Ho_Chi_Minh')),
                on_time Nullable(UInt8),
                result_e_signed UInt8,
                withdrawn_at Nullable(DateTime64(6, 'Asia/Ho_Chi_Minh')),
                state String,
                version UInt64
            ) ENGINE = ReplacingMergeTree(version)
            ORDER BY dossier_id""",
            """CREATE TABLE IF NOT EXISTS feedback_facts (
                feedback_id String,
                source LowCardinality(String),
                unit_code LowCardinality(String),
                due_at Nullable(DateTime64(6, 'Asia/Ho_Chi_Minh')),
                resolved_at Nullable(DateTime64(6, 'Asia/Ho_Chi_Minh')),
                state String,
                version UInt64
            ) ENGINE = ReplacingMergeTree(version)
            ORDER BY feedback_id""",
            """CREATE TABLE IF NOT EXISTS unit_reports (
                unit_code LowCardinality(String),
                period_start Date,
                period_end Date,
                received_total UInt64,
                event_id String,
                version UInt64
            ) ENGINE = ReplacingMergeTree(version)
            ORDER BY (unit_code, period_start, period_end)""",
            """CREATE TABLE IF NOT EXISTS dead_letters (
                topic LowCardinality(String),
                partition Int32,
                offset Int64,
                reason String,
                code LowCardinality(String),
                detail String,
                value String,
                logged_at DateTime64(3, 'UTC')
            ) ENGINE = ReplacingMergeTree
            ORDER BY (topic, partition, offset)""",
        ),
    ),
    VIEWS_MIGRATION,
)
"""``(version, description, statements)``; applied in order, once each."""


FlushHook = Callable[[int, float, BaseException | None], object]
"""Called after each flush that had rows to write: ``(rows written, seconds, error or None)``."""


class SinkBackpressure(RuntimeError):
    """The writer's buffer is full: stop consuming until a flush succeeds."""


def connect(dsn: str) -> Client:
    """A clickhouse-connect client for ``chdb:///path`` or an ``http(s)://`` DSN.

    The database of an ``http(s)`` DSN must exist; with ``chdb`` the default
    database is used and the path is created (``chdb:///abs/path`` is
    absolute, ``chdb://relative/path`` is relative to the working directory).
    """
    import clickhouse_connect  # noqa: PLC0415

    parts = urlsplit(dsn)
    if parts.scheme == "chdb":
        from pathlib import Path  # noqa: PLC0415

        # chdb:///abs/path is absolute, chdb://rel/path relative to the working directory
        path = Path(parts.netloc + parts.path).resolve()
        path.mkdir(parents=True, exist_ok=True)
        return clickhouse_connect.get_client(dsn=f"chdb://{path}")
    return clickhouse_connect.get_client(dsn=dsn)


def _version() -> int:
    return time.time_ns()


class ClickHouseStore:
    """Schema, writes and reads of dossier-stream's ClickHouse tables.

    Args:
        client: a clickhouse-connect client (see :func:`connect`).
    """

    def __init__(self, client: Client) -> None:
        self.client = client
        self._lock = threading.Lock()

    def close(self) -> None:
        """Close the client; with chdb this releases the engine, whose path is
        one per process (a second path can be opened only after closing)."""
        self.client.close()

    def migrate(self) -> list[int]:
        """Apply the migrations not applied yet; return their versions."""
        with self._lock:
            self.client.command(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version UInt32, "
                "description String, applied_at DateTime64(3, 'UTC')) "
                "ENGINE = MergeTree ORDER BY version"
            )
            done = {
                r[0] for r in self.client.query("SELECT version FROM schema_migrations").result_rows
            }
            applied = []
            for version, description, statements in MIGRATIONS:
                if version in done:
                    continue
                for sql in statements:
                    self.client.command(sql)
                self.client.insert(
                    "schema_migrations",
                    [(version, description, datetime.now().astimezone())],
                    column_names=["version", "description", "applied_at"],
                )
                applied.append(version)
            return applied

    def insert_versioned(
        self, table: str, rows: Iterable[tuple[object, ...]], column_names: list[str]
    ) -> int:
        """Insert rows into a ``ReplacingMergeTree(version)`` table, stamping a new version."""
        version = _version()
        data = [(*row, version) for row in rows]
        if data:
            with self._lock:
                self.client.insert(table, data, column_names=[*column_names, "version"])
        return len(data)

    def write_counters(self, rows: Iterable[tuple[str, str, date, str, int]]) -> int:
        """Upsert ``(source, unit, day, counter, absolute value)`` rows."""
        version = _version()
        data = [(*row, version) for row in rows]
        if data:
            with self._lock:
                self.client.insert(
                    "unit_day_counters",
                    data,
                    column_names=["source", "unit_code", "day", "counter", "value", "version"],
                )
        return len(data)

    def write_rows(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> int:
        """Insert rows into one of the fact tables (versions are added here)."""
        if not rows:
            return 0
        version = _version()
        with self._lock:
            self.client.insert(
                table, [(*r, version) for r in rows], column_names=[*columns, "version"]
            )
        return len(rows)

    def write_dead_letters(self, rows: Sequence[Sequence[Any]]) -> int:
        """Insert dead-letter rows (topic, partition, offset, reason, code, detail, value, at)."""
        if not rows:
            return 0
        with self._lock:
            self.client.insert(
                "dead_letters",
                list(rows),
                column_names=[
                    "topic",
                    "partition",
                    "offset",
                    "reason",
                    "code",
                    "detail",
                    "value",
                    "logged_at",
                ],
            )
        return len(rows)

    # ---------------------------------------------------------------- reads
    def counters(self, start: date, end: date) -> dict[CounterKey, int]:
        """Per-(unit, day, counter) totals over every source, for days in [start, end]."""
        rows = self.client.query(
            "SELECT unit_code, day, counter, sum(value) FROM unit_day_counters FINAL "
            "WHERE day BETWEEN {start:Date} AND {end:Date} "
            "GROUP BY unit_code, day, counter HAVING sum(value) != 0",
            parameters={"start": start, "end": end},
        ).result_rows
        return {(u, d, c): int(v) for u, d, c, v in rows}

    def day_span(self) -> list[date]:
        """The first and last day with counts (empty when there are none)."""
        row = self.client.query(
            "SELECT min(day), max(day), count() FROM unit_day_counters FINAL WHERE value != 0"
        ).result_rows[0]
        return [] if not row[2] else [row[0], row[1]]

    def source_counters(self, source: str) -> dict[CounterKey, int]:
        """The totals last written for one source partition."""
        rows = self.client.query(
            "SELECT unit_code, day, counter, value FROM unit_day_counters FINAL "
            "WHERE source = {source:String} AND value != 0",
            parameters={"source": source},
        ).result_rows
        return {(u, d, c): int(v) for u, d, c, v in rows}

    def reported_totals(self, start: date, end: date) -> dict[tuple[str, date, date], int]:
        """``unit.reported_totals`` for exactly the period [start, end]."""
        rows = self.client.query(
            "SELECT unit_code, period_start, period_end, received_total FROM unit_reports FINAL "
            "WHERE period_start = {start:Date} AND period_end = {end:Date}",
            parameters={"start": start, "end": end},
        ).result_rows
        return {(u, s, e): int(n) for u, s, e, n in rows}

    def open_states(self, at: datetime) -> list[bytes]:
        """Encoded states of dossiers received by ``at``, not completed or withdrawn by then."""
        rows = self.client.query(
            "SELECT state FROM dossier_facts FINAL "
            "WHERE received_at <= {at:DateTime64(6)} "
            "AND (completed_at IS NULL OR completed_at > {at:DateTime64(6)}) "
            "AND (withdrawn_at IS NULL OR withdrawn_at > {at:DateTime64(6)})",
            parameters={"at": at},
        ).result_rows
        return [r[0].encode() if isinstance(r[0], str) else r[0] for r in rows]

    def source_states(self, table: str, source: str) -> list[bytes]:
        """Encoded states last written for one source partition (for recovery)."""
        if table not in {"dossier_facts", "feedback_facts"}:
            raise ValueError(f"not a fact table: {table}")
        rows = self.client.query(
            f"SELECT state FROM {table} FINAL WHERE source = {{source:String}}",
            parameters={"source": source},
        ).result_rows
        return [r[0].encode() if isinstance(r[0], str) else r[0] for r in rows]

    def dead_letters(self, reason: str | None = None, limit: int = 1000) -> list[dict[str, Any]]:
        """Logged dead letters, newest first, optionally of one reason code."""
        where = "WHERE code = {code:String}" if reason else ""
        result = self.client.query(
            f"SELECT topic, partition, offset, reason, code, detail, value, logged_at "
            f"FROM dead_letters FINAL {where} ORDER BY logged_at DESC LIMIT {{limit:UInt32}}",
            parameters={"code": reason or "", "limit": limit},
        )
        return [dict(zip(result.column_names, row, strict=True)) for row in result.result_rows]

    def count(self, table: str) -> int:
        """Rows of one of our tables (after replacement)."""
        if table not in {
            "unit_day_counters",
            "dossier_facts",
            "feedback_facts",
            "unit_reports",
            "dead_letters",
        }:
            raise ValueError(f"not a dossier-stream table: {table}")
        return int(self.client.query(f"SELECT count() FROM {table} FINAL").result_rows[0][0])


class BatchingSink:
    """Buffers rows per table and writes them in one insert per table per flush.

    ``add`` buffers, ``flush`` writes everything buffered (call it by size or
    by time: :meth:`due`), ``write`` is the storage call. When more than
    ``max_rows`` are waiting because writes keep failing, ``add`` raises
    :class:`SinkBackpressure` so the caller pauses consumption instead of
    exhausting memory.

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
        self._counters: dict[tuple[str, str, date, str], int] = {}
        self._facts: dict[str, dict[Any, Sequence[Any]]] = {}
        self._columns: dict[str, Sequence[str]] = {}
        self._dead: list[Sequence[Any]] = []
        self._last_flush = time.monotonic()

    def __len__(self) -> int:
        return len(self._counters) + sum(len(v) for v in self._facts.values()) + len(self._dead)

    def add_counter(self, source: str, key: CounterKey, total: int) -> None:
        """Buffer the new absolute total of (source, unit, day, counter)."""
        self._check()
        self._counters[(source, key[0], key[1], key[2])] = total

    def add_fact(self, table: str, columns: Sequence[str], key: Any, row: Sequence[Any]) -> None:
        """Buffer the latest row of ``key`` in a fact table."""
        self._check()
        self._columns[table] = columns
        self._facts.setdefault(table, {})[key] = row

    def add_dead_letter(self, row: Sequence[Any]) -> None:
        """Buffer one dead-letter row."""
        self._check()
        self._dead.append(row)

    def _check(self) -> None:
        if len(self) >= self.max_rows * 4:
            raise SinkBackpressure(
                f"{len(self)} rows wait for ClickHouse; pausing until a flush succeeds"
            )

    def due(self) -> bool:
        """Whether a flush is due by size or by time."""
        return len(self) >= self.max_rows or (
            len(self) > 0 and time.monotonic() - self._last_flush >= self.interval_s
        )

    def flush(self) -> int:
        """Write everything buffered; on failure the buffer is kept for the next try."""
        if self.on_flush is None or not len(self):
            return self._write([0])
        written = [0]
        t0 = time.perf_counter()
        try:
            rows = self._write(written)
        except Exception as exc:
            self.on_flush(written[0], time.perf_counter() - t0, exc)
            raise
        self.on_flush(rows, time.perf_counter() - t0, None)
        return rows

    def _write(self, written: list[int]) -> int:
        """Write the buffers; ``written[0]`` counts rows as tables succeed."""
        if self._counters:
            written[0] += self.store.write_counters(
                (s, u, d, c, v) for (s, u, d, c), v in self._counters.items()
            )
            self._counters = {}
        for table in list(self._facts):
            written[0] += self.store.write_rows(
                table, self._columns[table], list(self._facts[table].values())
            )
            del self._facts[table]
        if self._dead:
            written[0] += self.store.write_dead_letters(self._dead)
            self._dead = []
        self._last_flush = time.monotonic()
        rows = written[0]
        if rows:
            _LOG.debug("flushed %s rows to ClickHouse", rows)
        return rows
