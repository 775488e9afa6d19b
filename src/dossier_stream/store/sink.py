"""ClickHouse storage: migrations, the writes of the batching writer, and the reads.

Written once against clickhouse-connect's client interface, so the same code
drives the embedded engine (``chdb:///path``) and a ClickHouse server
(``http(s)://user:password@host:8123/database``).

Idempotence: the worker writes *absolute* totals, never increments.
``unit_day_counters`` holds, per source partition, the current total of each
(unit, day, counter); ``dossier_facts`` one row per dossier with its latest
state. Both are ``ReplacingMergeTree(version)`` tables whose version is the
write time in nanoseconds (never going back within a process), and reads use
``FINAL``: writing the same figures again, after a replay or a restart,
replaces rows instead of adding to them. Dead letters are keyed by their
own id (:mod:`dossier_stream.store.deadletters`). The batching writer is
:class:`~dossier_stream.store.batching.BatchingSink` (re-exported here).

Writes are column-oriented (``zip(*rows)``: no object per row,
little work for the garbage collector; the batching writer's
:class:`~dossier_stream.store.batching.CounterRows` give their columns directly),
through one insert context per (table, columns), kept: the column types are
read once. Aware datetimes bound for ``DateTime64`` columns become ticks here,
in integer arithmetic (the values the client computes); anything else is left
to the client.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlsplit

from dossier_stream.core.counters import CounterKey
from dossier_stream.store.batching import (
    BatchingSink,
    CounterRows,
    FactRow,
    FlushHook,
    SinkBackpressure,
)
from dossier_stream.store.deadletters import GRANULES_MIGRATION as DEAD_LETTERS_GRANULES
from dossier_stream.store.deadletters import MIGRATION as DEAD_LETTERS_MIGRATION
from dossier_stream.store.deadletters import DeadLetterTable
from dossier_stream.store.views import MIGRATION as VIEWS_MIGRATION
from dossier_stream.store.views import PREWHERE_MIGRATION as VIEWS_PREWHERE

if TYPE_CHECKING:
    from clickhouse_connect.driver.client import Client
    from clickhouse_connect.driver.insert import InsertContext

__all__ = [
    "MIGRATIONS",
    "SORTING_KEYS",
    "BatchingSink",
    "ClickHouseStore",
    "CounterRows",
    "FactRow",
    "FlushHook",
    "SinkBackpressure",
    "VersionClock",
    "connect",
]

_LOG = logging.getLogger(__name__)

_COMPRESS_BLOCK: Final = 65_536
"""``max_compress_block_size`` of the two large tables (migration 7; ClickHouse's default 1 MiB)."""

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
    (
        3,
        "unit_reports: source partition and event time (recovery of the report order)",
        (
            "ALTER TABLE unit_reports ADD COLUMN IF NOT EXISTS "
            "source LowCardinality(String) DEFAULT '' AFTER unit_code",
            "ALTER TABLE unit_reports ADD COLUMN IF NOT EXISTS "
            "occurred_at DateTime64(6, 'Asia/Ho_Chi_Minh') DEFAULT 0",
        ),
    ),
    (
        4,
        "dead_letters: replayed_at (set by deadletter replay on what it re-published)",
        (
            "ALTER TABLE dead_letters ADD COLUMN IF NOT EXISTS "
            "replayed_at Nullable(DateTime64(3, 'UTC'))",
        ),
    ),
    DEAD_LETTERS_MIGRATION,
    (
        6,
        "dossier_facts: supplement_at, supplement_requested (named columns for SQL readers)",
        (
            # older rows: from their state (codec v1: element 8 = supplements); new: the worker
            "ALTER TABLE dossier_facts ADD COLUMN IF NOT EXISTS supplement_at "
            "Array(DateTime64(6, 'Asia/Ho_Chi_Minh')) DEFAULT arrayMap(s -> "
            "fromUnixTimestamp64Micro(s.1, 'Asia/Ho_Chi_Minh'), JSONExtract(state, 8, "
            "'Array(Tuple(Int64, Bool, String))')) AFTER supplement_requests",
            "ALTER TABLE dossier_facts ADD COLUMN IF NOT EXISTS supplement_requested "
            "Array(UInt8) DEFAULT arrayMap(s -> toUInt8(s.2), JSONExtract(state, 8, "
            "'Array(Tuple(Int64, Bool, String))')) AFTER supplement_at",
            "ALTER TABLE dossier_facts MATERIALIZE COLUMN supplement_at SETTINGS mutations_sync=2",
            "ALTER TABLE dossier_facts MATERIALIZE COLUMN supplement_requested "
            "SETTINGS mutations_sync=2",
            "ALTER TABLE dossier_facts MODIFY COLUMN supplement_at REMOVE DEFAULT",
            "ALTER TABLE dossier_facts MODIFY COLUMN supplement_requested REMOVE DEFAULT",
        ),
    ),
    (
        7,
        "dossier_facts, unit_day_counters: 64 KiB compressed blocks (smaller merge buffers)",
        # a merge holds a block per part and column it reads or writes: with 64 KiB blocks
        # (1 MiB by default) chdb's merges of the largest parts take ~30 % less memory
        # (bench.merges); parts written before keep their blocks until merged again
        tuple(
            f"ALTER TABLE {table} MODIFY SETTING max_compress_block_size = {_COMPRESS_BLOCK}"
            for table in ("dossier_facts", "unit_day_counters")
        ),
    ),
    DEAD_LETTERS_GRANULES,
    VIEWS_PREWHERE,
)
"""``(version, description, statements)``; applied in order, once each."""

_COUNTER_COLUMNS: Final = ("source", "unit_code", "day", "counter", "value")
SORTING_KEYS: Final[Mapping[str, tuple[str, ...]]] = {
    "unit_day_counters": _COUNTER_COLUMNS[:4],
    "dossier_facts": ("dossier_id",),
    "feedback_facts": ("feedback_id",),
    "unit_reports": ("unit_code", "period_start", "period_end"),
    "dead_letters": ("id",),
}
"""The ``ORDER BY`` of the tables above (a test holds them to the schema)."""
_NO_INSERT_MERGE: Final = {"optimize_on_insert": 0}
"""For a block whose sorting keys are all distinct, the merge ClickHouse runs on an
inserted block (``optimize_on_insert``) changes nothing; skipping it saves ~20 % of
the insert's time in chdb."""


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


class VersionClock:
    """Versions of ``ReplacingMergeTree(version)`` rows: the wall clock in ns, but never
    going back within a process (a clock step back must not let an older row win)."""

    def __init__(self) -> None:
        self._last = 0
        self._lock = threading.Lock()

    def next(self) -> int:
        """The next version: now in ns, or one past the last one given if that is later."""
        with self._lock:
            self._last = max(time.time_ns(), self._last + 1)
            return self._last


_VERSIONS = VersionClock()


def _version() -> int:
    return _VERSIONS.next()


_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class _Insert:
    """A reusable column-oriented insert into some columns of one table.

    Attributes:
        context: the client's insert context (it holds the column types).
        ticks: ``(column index, tick, nullable)`` of each ``DateTime64``
            column of scale 0 to 6 (a tick is ``10 ** -scale`` s).
        key: the indexes of the table's sorting-key columns, when the insert
            has them all (:data:`SORTING_KEYS`).
    """

    context: InsertContext
    ticks: tuple[tuple[int, timedelta, bool], ...]
    key: tuple[int, ...] | None


def _columns(rows: Iterable[Sequence[Any]], width: int) -> list[Sequence[Any]]:
    """``rows`` of ``width`` values each as ``width`` columns (none when there are no rows).

    Raises:
        ValueError: a row has another number of values.
    """
    if not isinstance(rows, Sequence):
        rows = list(rows)
    widths = set(map(len, rows))
    if widths - {width}:
        raise ValueError(f"rows of {sorted(widths)} values for {width} columns")
    return list(zip(*rows, strict=True)) if rows else []  # tuples: a third cheaper than lists


def _to_ticks(column: Sequence[Any], tick: timedelta, nullable: bool) -> Sequence[Any]:
    """Aware datetimes as ``DateTime64`` ticks since the epoch (floored, as the client does).

    Any other column (naive datetimes, strings, ints, a ``None`` in a
    non-Nullable column) is returned as it is, for the client to convert or
    refuse exactly as it would have.
    """
    first = next((x for x in column if x is not None), None)
    if type(first) is not datetime:
        return column
    epoch = _EPOCH
    try:
        if nullable:
            return [None if x is None else (x - epoch) // tick for x in column]
        return [(x - epoch) // tick for x in column]
    except TypeError:
        return column


class ClickHouseStore(DeadLetterTable):
    """Schema, writes and reads of dossier-stream's ClickHouse tables.

    The reads and writes of ``dead_letters`` are those of :class:`DeadLetterTable`.

    Args:
        client: a clickhouse-connect client (see :func:`connect`).
    """

    def __init__(self, client: Client) -> None:
        self.client = client
        self._lock = threading.Lock()
        self._inserts: dict[tuple[str, tuple[str, ...]], _Insert] = {}

    def close(self) -> None:
        """Close the client; with chdb this releases the engine, whose path is
        one per process (a second path can be opened only after closing)."""
        self.client.close()

    def release_memory(self) -> bool:
        """Give the embedded engine's freed memory back to the system; whether it did.

        chdb's allocator (jemalloc, inside the process) keeps the pages that
        inserts and merges freed: 100-150 MiB of resident memory after a few
        large inserts, returned in ~30 ms of CPU by ``SYSTEM JEMALLOC PURGE``.
        A ClickHouse server (``http(s)://``) is left alone: its memory is not
        the worker's.
        """
        if type(self.client).__name__ != "ChdbClient":
            return False
        with self._lock:
            self.client.command("SYSTEM JEMALLOC PURGE")
        return True

    def migrate(self, *, before: int | None = None) -> list[int]:
        """Apply the migrations not applied yet; return their versions.

        Args:
            before: apply only the versions below this one (the store an older
                worker left: tests and ``bench.merges --schema-before``).
        """
        with self._lock:
            self._inserts.clear()  # the column types may change
            if not self.client.command("EXISTS TABLE schema_migrations"):  # a reader only reads
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
                if before is not None and version >= before:
                    break
                if version in done:
                    continue
                try:
                    for sql in statements:
                        self.client.command(sql)
                except Exception:
                    # two workers starting on a new store migrate at once: the other one's
                    # statements may make ours fail (a default already removed, say)
                    if not self._recorded_soon(version):
                        raise
                    continue
                self.client.insert(
                    "schema_migrations",
                    [(version, description, datetime.now().astimezone())],
                    column_names=["version", "description", "applied_at"],
                )
                applied.append(version)
            return applied

    def _recorded_soon(self, version: int, wait_s: float = 15.0) -> bool:
        """Whether another process records ``version`` as applied within ``wait_s``."""
        deadline = time.monotonic() + wait_s
        while True:
            rows = self.client.query(
                "SELECT count() FROM schema_migrations WHERE version = {v:UInt32}",
                parameters={"v": version},
            ).result_rows
            if rows[0][0]:
                _LOG.info("migration %s was applied by another process", version)
                return True
            if time.monotonic() > deadline:
                return False
            time.sleep(0.2)

    def _insert(
        self,
        table: str,
        column_names: Sequence[str],
        columns: list[Sequence[Any]],
        *,
        distinct: bool = False,
    ) -> None:
        """Insert ``columns`` (one sequence per name; converted in place) through a kept context.

        ``distinct``: the caller knows the rows' sorting keys are distinct
        (else they are checked, where the table's key is known).
        """
        key = (table, tuple(column_names))
        with self._lock:
            insert = self._inserts.get(key)
            if insert is None:
                insert = self._inserts[key] = self._prepare(table, key[1])
            if not distinct and insert.key is not None:
                keys = [columns[i] for i in insert.key]
                found = set(keys[0]) if len(keys) == 1 else set(zip(*keys, strict=True))
                distinct = len(found) == len(keys[0])
            insert.context.settings = dict(_NO_INSERT_MERGE) if distinct else {}
            for i, tick, nullable in insert.ticks:
                columns[i] = _to_ticks(columns[i], tick, nullable)
            try:
                self.client.insert(data=columns, context=insert.context)
            finally:
                insert.context.data = None  # reusable, whatever happened

    def _prepare(self, table: str, column_names: tuple[str, ...]) -> _Insert:
        """The insert context of ``column_names`` of ``table`` (reads their types once)."""
        from clickhouse_connect.datatypes.temporal import DateTime64  # noqa: PLC0415

        context = self.client.create_insert_context(table, column_names, column_oriented=True)
        ticks = tuple(
            (i, timedelta(microseconds=10 ** (6 - t.scale)), t.nullable)
            for i, t in enumerate(context.column_types)
            if isinstance(t, DateTime64) and t.scale <= 6
        )
        sorting = SORTING_KEYS.get(table, ())
        key = tuple(column_names.index(c) for c in sorting if c in column_names)
        return _Insert(context, ticks, key if sorting and len(key) == len(sorting) else None)

    def _insert_versioned(
        self,
        table: str,
        column_names: Sequence[str],
        columns: list[Sequence[Any]],
        *,
        distinct: bool = False,
    ) -> int:
        """Insert ``columns`` of ``column_names`` stamped with a new version; returns the rows."""
        n = len(columns[0]) if columns else 0
        if n:
            columns.append([_version()] * n)
            self._insert(table, [*column_names, "version"], columns, distinct=distinct)
        return n

    def insert_versioned(
        self, table: str, rows: Iterable[tuple[object, ...]], column_names: list[str]
    ) -> int:
        """Insert rows into a ``ReplacingMergeTree(version)`` table, stamping a new version."""
        return self._insert_versioned(table, column_names, _columns(rows, len(column_names)))

    def write_counters(self, rows: Iterable[tuple[str, str, date, str, int]]) -> int:
        """Upsert ``(source, unit, day, counter, absolute value)`` rows.

        Args:
            rows: the rows; a :class:`~dossier_stream.store.batching.CounterRows`
                (what the batching writer passes) is read by column.
        """
        distinct = isinstance(rows, CounterRows)  # keyed by the sorting key
        if isinstance(rows, CounterRows):
            columns: list[Sequence[Any]] = [*rows.columns()]
        else:
            columns = _columns(rows, len(_COUNTER_COLUMNS))
        return self._insert_versioned(
            "unit_day_counters", _COUNTER_COLUMNS, columns, distinct=distinct
        )

    def write_rows(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> int:
        """Insert rows into one of the fact tables (versions are added here)."""
        return self._insert_versioned(table, columns, _columns(rows, len(columns)))

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

    def has_counts(self, start: date, end: date) -> bool:
        """Whether a day in [start, end] has a count that is not zero (that period read only)."""
        rows = self.client.query(
            "SELECT count() FROM (SELECT 1 FROM unit_day_counters FINAL "
            "PREWHERE day BETWEEN {start:Date} AND {end:Date} WHERE value != 0 LIMIT 1)",
            parameters={"start": start, "end": end},
        ).result_rows
        return bool(rows[0][0])

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
            "WHERE period_start = {start:Date} AND period_end = {end:Date} AND deleted = 0",
            parameters={"start": start, "end": end},
        ).result_rows
        return {(u, s, e): int(n) for u, s, e, n in rows}

    def source_reports(self, source: str) -> list[tuple[str, date, date, int, str, datetime]]:
        """``(unit, start, end, total, event_id, occurred_at)`` last written for one source."""
        rows = self.client.query(
            "SELECT unit_code, period_start, period_end, received_total, event_id, occurred_at "
            "FROM unit_reports FINAL WHERE source = {source:String} AND deleted = 0",
            parameters={"source": source},
        ).result_rows
        return [(u, s, e, int(n), ev, at) for u, s, e, n, ev, at in rows]

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
