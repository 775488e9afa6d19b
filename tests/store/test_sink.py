"""The ClickHouse store on chdb, and the same code against a server when one is given."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, cast
from zoneinfo import ZoneInfo

import pytest

from dossier_stream.core.periods import monthly_report
from dossier_stream.core.registry import UnitRegistry
from dossier_stream.core.topics import load_catalog
from dossier_stream.core.workdays import WorkCalendar
from dossier_stream.sim import testing as t
from dossier_stream.store.sink import (
    MIGRATIONS,
    BatchingSink,
    ClickHouseStore,
    CounterRows,
    SinkBackpressure,
    connect,
)
from dossier_stream.stream.processor import DOSSIER_FACT_COLUMNS, Processor

SERVER_REASON = (
    "no ClickHouse server: set DOSSIER_TEST_CLICKHOUSE_DSN=http://user:pass@host:8123/db to run "
    "this against one (Debian's clickhouse-server 18.16 is too old for clickhouse-connect; "
    "production is covered by docker-compose)"
)


def _exercise(store: ClickHouseStore, registry: UnitRegistry, calendar: WorkCalendar) -> None:
    assert store.migrate() in ([v for v, _, _ in MIGRATIONS], [])
    assert store.migrate() == []  # idempotent
    sink = BatchingSink(store, max_rows=1000, interval_s=1.0)
    proc = Processor(registry, calendar, load_catalog(), sink, store)
    from dossier_stream.stream.processor import Message

    evs = [t.received("D1", "HP-SO-TUPHAP"), t.completed("D1", "HP-SO-TUPHAP")]
    msgs = [
        Message("dossier.submissions.v1", 0, 0, t.encode(evs[0])),
        Message("dossier.progress.v1", 0, 0, t.encode(evs[1])),
    ]
    for _ in range(2):  # the same messages twice: figures unchanged
        proc.handle(msgs)
        sink.flush()
    p = monthly_report(2024, 10)
    counters = store.counters(p.start, p.end)
    assert counters[("HP-SO-TUPHAP", date(2024, 10, 3), "received")] == 1
    assert counters[("HP-SO-TUPHAP", date(2024, 10, 7), "completed")] == 1
    # a new processor recovers the partition's states from the facts table
    fresh = Processor(registry, calendar, load_catalog(), sink, store)
    fresh.recover(["dossier:0"])
    assert "D1" in fresh.engines["dossier:0"].dossiers
    assert fresh.engines["dossier:0"].counters == proc.engines["dossier:0"].counters


def test_store_on_chdb(tmp_path: Path, registry: UnitRegistry, calendar: WorkCalendar) -> None:
    store = ClickHouseStore(connect(f"chdb://{tmp_path / 'ch'}"))
    try:
        _exercise(store, registry, calendar)
    finally:
        store.close()


@pytest.mark.skipif("DOSSIER_TEST_CLICKHOUSE_DSN" not in os.environ, reason=SERVER_REASON)
def test_store_on_a_clickhouse_server(registry: UnitRegistry, calendar: WorkCalendar) -> None:
    _exercise(
        ClickHouseStore(connect(os.environ["DOSSIER_TEST_CLICKHOUSE_DSN"])), registry, calendar
    )


def test_buffer_bound_raises_backpressure(tmp_path: Path) -> None:
    store = ClickHouseStore(connect(f"chdb://{tmp_path / 'ch'}"))
    sink = BatchingSink(store, max_rows=2, interval_s=60)
    try:
        with pytest.raises(SinkBackpressure):
            for i in range(10):
                sink.add_counter("dossier:0", ("U", date(2024, 10, 1), f"c{i}"), i)
    finally:
        store.close()


# ------------------------------------------------------- columnar writes, bookkeeping
VN = ZoneInfo("Asia/Ho_Chi_Minh")
COUNTER_COLUMNS = ["source", "unit_code", "day", "counter", "value"]
LETTER_COLUMNS = [
    "id", "topic", "partition", "offset", "reason", "code", "detail", "value", "value_exact",
    "logged_at",
]  # fmt: skip


def _fact(i: int, at: datetime | None) -> tuple[Any, ...]:
    """A ``dossier_facts`` row with aware datetimes in several zones and ``None``s."""
    due = None if at is None else at + timedelta(days=3, microseconds=7)
    return (
        f"D{i}", "dossier:0", "U", at, due, "online", "full", 1, 0, 1, 0, 0, 1, 0, i % 3,
        [] if at is None else [at, due], [] if at is None else [1, 0],
        due, due, None if i % 2 else 1, 0, None, f'{{"id": "D{i}"}}',
    )  # fmt: skip


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ClickHouseStore]:
    s = ClickHouseStore(connect(f"chdb://{tmp_path / 'ch'}"))
    s.migrate()
    try:
        yield s
    finally:
        s.close()


def _dump(store: ClickHouseStore, sql: str) -> bytes:
    return store.client.raw_query(sql, fmt="TabSeparated")


def test_columnar_writes_store_what_the_clients_row_inserts_store(store: ClickHouseStore) -> None:
    """Every value type of the tables, against the client's own row-oriented insert."""
    base = datetime(2024, 10, 3, 8, 30, 15, 123456, tzinfo=UTC)
    zones = (UTC, VN, timezone(timedelta(hours=-5)))
    ats = [None, *(base.astimezone(z) + timedelta(hours=i) for i, z in enumerate(zones))]
    ats.append(datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC))  # before the epoch
    facts = [_fact(i, at) for i, at in enumerate(ats)]
    letters = [
        (
            f"id{i}",
            "t",
            0,
            i,
            "r",
            "c",
            "d",
            b"v\xff",
            1,
            (at or base) - timedelta(microseconds=1500),
        )
        for i, at in enumerate(ats)
    ]
    counters = [("dossier:0", "U", date(2024, 10, 3), f"c{i}", i - 2) for i in range(5)]
    store.write_rows("dossier_facts", DOSSIER_FACT_COLUMNS, facts)
    store.write_dead_letters(letters)
    store.write_counters(iter(counters))  # any iterable, as before
    client = store.client
    for table in ("dossier_facts", "dead_letters", "unit_day_counters"):
        client.command(f"CREATE TABLE ref_{table} AS {table}")
    client.insert("ref_dossier_facts", facts, column_names=list(DOSSIER_FACT_COLUMNS))
    client.insert("ref_dead_letters", letters, column_names=LETTER_COLUMNS)
    client.insert("ref_unit_day_counters", counters, column_names=COUNTER_COLUMNS)
    for table, order in (
        ("dossier_facts", "dossier_id"),
        ("dead_letters", "offset"),
        ("unit_day_counters", "counter"),
    ):
        mine = _dump(store, f"SELECT * EXCEPT version FROM {table} ORDER BY {order}")
        ref = _dump(store, f"SELECT * EXCEPT version FROM ref_{table} ORDER BY {order}")
        assert mine == ref and mine.count(b"\n") == 5
    (row,) = client.query(
        "SELECT received_at FROM dossier_facts WHERE dossier_id = 'D2'"
    ).result_rows
    assert row[0] == ats[2]  # the instant, to the microsecond


def test_naive_datetimes_are_left_to_the_client(store: ClickHouseStore) -> None:
    naive = datetime(2024, 10, 3, 8, 30, 15, 123456)  # noqa: DTZ001 - the point of the test
    store.write_rows("dossier_facts", DOSSIER_FACT_COLUMNS, [_fact(1, naive)])
    store.client.command("CREATE TABLE ref AS dossier_facts")
    store.client.insert("ref", [_fact(1, naive)], column_names=list(DOSSIER_FACT_COLUMNS))
    assert _dump(store, "SELECT * EXCEPT version FROM dossier_facts") == _dump(
        store, "SELECT * EXCEPT version FROM ref"
    )


def test_insert_contexts_are_made_once_per_table(
    store: ClickHouseStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    made: list[str] = []
    create = store.client.create_insert_context

    def counting(table: str, *args: Any, **kwargs: Any) -> Any:
        made.append(table)
        return create(table, *args, **kwargs)

    monkeypatch.setattr(store.client, "create_insert_context", counting)
    sink = BatchingSink(store, max_rows=100, interval_s=60)
    for n in range(3):
        sink.add_counter("dossier:0", ("U", date(2024, 10, 3), "received"), n)
        sink.add_fact("dossier_facts", DOSSIER_FACT_COLUMNS, "D1", _fact(n, None))
        assert sink.flush() == 2
    assert sorted(made) == ["dossier_facts", "unit_day_counters"]
    assert store.source_counters("dossier:0") == {("U", date(2024, 10, 3), "received"): 2}
    with pytest.raises(ValueError, match="values for"):
        store.write_rows("dossier_facts", DOSSIER_FACT_COLUMNS, [_fact(1, None)[:-1]])
    assert store.write_rows("dossier_facts", DOSSIER_FACT_COLUMNS, []) == 0


class _Recorder:
    """Stands in for the store's writes; fails while told to."""

    def __init__(self) -> None:
        self.fail = False
        self.rows: dict[str, list[Any]] = {}

    def _write(self, table: str, rows: Any) -> int:
        if self.fail:
            raise ConnectionError("down (test)")
        self.rows.setdefault(table, []).extend(rows)
        return len(rows)

    def write_counters(self, rows: Any) -> int:
        return self._write("unit_day_counters", list(rows))

    def write_rows(self, table: str, columns: Any, rows: Any) -> int:
        return self._write(table, rows)

    def write_dead_letters(self, rows: Any) -> int:
        return self._write("dead_letters", rows)


def _recount(sink: BatchingSink) -> int:
    buf = sink._buf
    return (
        sum(len(v) for v in buf.counters.values())
        + sum(len(v) for v in buf.facts.values())
        + len(buf.dead)
    )


def test_the_running_row_count_follows_every_change() -> None:
    rec = _Recorder()
    sink = BatchingSink(cast(ClickHouseStore, rec), max_rows=100, interval_s=60)
    day = date(2024, 10, 3)
    for total in range(3):  # the same keys again: replaced, counted once
        for source in ("dossier:0", "dossier:1"):
            sink.add_counter(source, ("U", day, "received"), total)
            sink.add_fact("dossier_facts", ("dossier_id",), source, (source,), source=source)
    sink.add_dead_letter(("t", 0, 0))
    assert len(sink) == _recount(sink) == 5
    assert sink.discard(["dossier:1"]) == 2
    assert len(sink) == _recount(sink) == 3
    rec.fail = True
    with pytest.raises(ConnectionError):
        sink.flush()
    assert len(sink) == _recount(sink) == 3  # put back
    sink.add_fact("dossier_facts", ("dossier_id",), "dossier:0", ("new",), source="dossier:0")
    sink.add_counter("dossier:2", ("U", day, "received"), 1)
    assert len(sink) == _recount(sink) == 4
    rec.fail = False
    assert sink.flush() == 4 and len(sink) == 0
    assert rec.rows["dossier_facts"] == [("new",)]
    assert rec.rows["unit_day_counters"] == [
        ("dossier:0", "U", day, "received", 2),
        ("dossier:2", "U", day, "received", 1),
    ]


def test_a_key_belongs_to_the_source_of_its_latest_row() -> None:
    """Discarding a source drops the keys whose latest row is its own, and only those."""
    rec = _Recorder()
    sink = BatchingSink(cast(ClickHouseStore, rec), max_rows=100, interval_s=60)
    day = date(2024, 10, 3)
    sink.add_facts("f", ("id",), [("A", ("a0",)), ("B", ("b0",))], source="s0")
    sink.add_facts("f", ("id",), iter([("B", ("b1",)), ("C", ("c1",))]), source="s1")
    sink.add_counters("s0", {("U", day, "received"): 1})
    sink.add_counters("s1", iter([(("U", day, "received"), 2)]))
    assert len(sink) == _recount(sink) == 5
    assert sink.discard(["s0"]) == 2  # A and s0's counter; B is s1's now
    assert len(sink) == _recount(sink) == 3
    rec.fail = True
    with pytest.raises(ConnectionError):
        sink.flush()
    sink.add_fact("f", ("id",), "C", ("c2",), source="s2")  # newer than what is put back
    assert sink.discard(["s1"]) == 2  # B and s1's counter; C is s2's now
    rec.fail = False
    assert sink.flush() == 1 and rec.rows == {"f": [("c2",)]}


def test_backpressure_counts_rows_not_replacements() -> None:
    sink = BatchingSink(cast(ClickHouseStore, _Recorder()), max_rows=1, interval_s=60)
    for total in range(20):  # one key, replaced: never more than one row waits
        sink.add_counter("dossier:0", ("U", date(2024, 10, 3), "received"), total)
    for i in range(3):
        sink.add_fact("f", ("id",), i, (i,))
    with pytest.raises(SinkBackpressure):
        sink.add_dead_letter(("t", 0, 0))
    assert len(sink) == 4


def test_a_lazy_fact_row_is_built_once_per_flush_and_again_after_a_failure() -> None:
    rec = _Recorder()
    sink = BatchingSink(cast(ClickHouseStore, rec), max_rows=100, interval_s=60)
    built: list[int] = []

    def lazy(version: int) -> Callable[[], tuple[Any, ...]]:
        def row() -> tuple[Any, ...]:
            built.append(version)
            return ("D1", version)

        return row

    for version in range(5):  # replaced 5 times before the flush
        sink.add_fact("dossier_facts", ("dossier_id", "v"), "D1", lazy(version))
    sink.add_fact("dossier_facts", ("dossier_id", "v"), "D2", ("D2", 0))  # plain rows still work
    assert built == [] and len(sink) == 2
    rec.fail = True
    with pytest.raises(ConnectionError):
        sink.flush()
    assert built == [4] and len(sink) == 2  # built for the failed write, kept unbuilt
    rec.fail = False
    assert sink.flush() == 2
    assert built == [4, 4]  # built again by the retry
    assert rec.rows["dossier_facts"] == [("D1", 4), ("D2", 0)]


def test_a_lazy_row_that_raises_fails_the_flush_and_keeps_the_table() -> None:
    rec = _Recorder()
    sink = BatchingSink(cast(ClickHouseStore, rec), max_rows=100, interval_s=60)
    sink.add_counter("dossier:0", ("U", date(2024, 10, 3), "received"), 1)

    def broken() -> tuple[Any, ...]:
        raise RuntimeError("cannot build (test)")

    sink.add_fact("dossier_facts", ("dossier_id",), "D1", broken)
    with pytest.raises(RuntimeError, match="cannot build"):
        sink.flush()
    assert len(sink) == 1 and "unit_day_counters" in rec.rows
    sink.add_fact("dossier_facts", ("dossier_id",), "D1", lambda: ("D1",))
    assert sink.flush() == 1 and rec.rows["dossier_facts"] == [("D1",)]


def test_counter_rows_read_as_rows_or_columns() -> None:
    totals = {
        "s": {("U", date(2024, 10, 3), "a"): 1, ("V", date(2024, 10, 4), "b"): 2},
        "t": {},
        "r": {("U", date(2024, 10, 3), "a"): 3},
    }
    rows = CounterRows(totals)
    assert len(rows) == 3
    assert list(rows) == [
        ("s", "U", date(2024, 10, 3), "a", 1),
        ("s", "V", date(2024, 10, 4), "b", 2),
        ("r", "U", date(2024, 10, 3), "a", 3),
    ]
    assert rows.columns() == [list(c) for c in zip(*rows, strict=True)]
    assert len(CounterRows({})) == 0 and CounterRows({"s": {}}).columns() == [[]] * 5


def test_the_sorting_keys_the_store_knows_are_the_schemas(store: ClickHouseStore) -> None:
    from dossier_stream.store.sink import SORTING_KEYS

    rows = store.client.query(
        "SELECT name, sorting_key FROM system.tables WHERE database = currentDatabase()"
    ).result_rows
    schema = {name: tuple(key.split(", ")) for name, key in rows}
    assert {t: schema[t] for t in SORTING_KEYS} == SORTING_KEYS


def test_rows_of_one_key_in_one_write_are_still_merged_on_insert(store: ClickHouseStore) -> None:
    """Distinct keys skip ClickHouse's merge of the inserted block; repeated keys keep it."""
    day = date(2024, 10, 3)
    store.write_counters([("dossier:0", "U", day, "received", n) for n in (1, 2)])
    store.write_rows("dossier_facts", DOSSIER_FACT_COLUMNS, [_fact(1, None), _fact(1, None)])
    letters = [("id7", "t", 0, 7, "r", "c", "d", b"v", 1, datetime(2024, 10, 3, tzinfo=UTC))] * 2
    store.write_dead_letters(letters)
    for table in ("unit_day_counters", "dossier_facts", "dead_letters"):  # without FINAL
        assert store.client.query(f"SELECT count() FROM {table}").result_rows == [(1,)]
    assert store.source_counters("dossier:0") == {("U", day, "received"): 2}
    sink = BatchingSink(store, max_rows=100, interval_s=60)
    sink.add_counter("dossier:0", ("U", day, "received"), 3)
    sink.add_fact("dossier_facts", DOSSIER_FACT_COLUMNS, "D2", _fact(2, None))
    assert sink.flush() == 2
    assert store.source_counters("dossier:0") == {("U", day, "received"): 3}
    assert store.count("dossier_facts") == 2


def test_migration_6_fills_the_supplement_columns_of_older_rows(tmp_path: Path) -> None:
    """Rows stored before migration 6 get ``supplement_at`` / ``_requested`` from their state."""
    from dossier_stream.core.lifecycle import DossierState, Supplement
    from dossier_stream.store.codec import dumps_dossier
    from dossier_stream.stream.processor import dossier_fact

    at = datetime(2024, 10, 2, 8, 0, 0, 123456, tzinfo=VN)
    sups = (Supplement(at, True, "e1"), Supplement(at + timedelta(days=2), False, "e2"))
    state = DossierState("D1", supplements=sups)
    store = ClickHouseStore(connect(f"chdb://{tmp_path / 'ch'}"))
    try:
        store.migrate(before=6)
        new = {"supplement_at", "supplement_requested"}
        old = [c for c in DOSSIER_FACT_COLUMNS if c not in new]
        row = dict(zip(DOSSIER_FACT_COLUMNS, dossier_fact(state, "dossier:0"), strict=True))
        assert row["state"] == dumps_dossier(state).decode()
        store.client.insert(
            "dossier_facts", [[row[c] for c in old] + [1]], column_names=[*old, "version"]
        )
        assert store.migrate() == [v for v, _, _ in MIGRATIONS if v >= 6]
        got = store.client.query(
            "SELECT supplement_at, supplement_requested FROM dossier_facts"
        ).result_rows
        assert [list(x) for x in got[0]] == [[s.at for s in sups], [1, 0]]
        # new rows carry the columns themselves, the same values
        store.write_rows("dossier_facts", DOSSIER_FACT_COLUMNS, [dossier_fact(state, "dossier:0")])
        got = store.client.query(
            "SELECT supplement_at, supplement_requested FROM dossier_facts FINAL"
        ).result_rows
        assert [list(x) for x in got[0]] == [[s.at for s in sups], [1, 0]]
    finally:
        store.close()


def test_bulk_adds_buffer_what_single_adds_do_and_hold_the_bound() -> None:
    day = date(2024, 10, 3)
    one, bulk = _Recorder(), _Recorder()
    singles = BatchingSink(cast(ClickHouseStore, one), max_rows=2, interval_s=60)
    batched = BatchingSink(cast(ClickHouseStore, bulk), max_rows=2, interval_s=60)
    totals = [(("U", day, "received"), 1), (("U", day, "online"), 2), (("U", day, "received"), 3)]
    rows = [("D1", ("D1", 1)), ("D2", lambda: ("D2", 2)), ("D1", ("D1", 3))]
    for key, total in totals:
        singles.add_counter("dossier:0", key, total)
    for key, row in rows:
        singles.add_fact("dossier_facts", ("dossier_id", "n"), key, row, source="dossier:0")
    batched.add_counters("dossier:0", totals)
    batched.add_facts("dossier_facts", ("dossier_id", "n"), rows, source="dossier:0")
    assert len(singles) == len(batched) == _recount(batched) == 4
    assert batched.discard(["dossier:9"]) == 0
    assert singles.flush() == batched.flush() == 4
    assert one.rows == bulk.rows
    assert bulk.rows["dossier_facts"] == [("D1", 3), ("D2", 2)]
    batched.add_counters("dossier:0", [((f"U{i}", day, "received"), i) for i in range(8)])
    with pytest.raises(SinkBackpressure):  # 4 x max_rows held: the bound holds for bulk adds
        batched.add_facts("dossier_facts", ("dossier_id",), [("D3", ("D3",))])
    with pytest.raises(SinkBackpressure):
        batched.add_counters("dossier:0", [(("U", day, "x"), 1)])


def test_the_embedded_engine_gives_its_freed_memory_back(store: ClickHouseStore) -> None:
    assert store.release_memory()  # SYSTEM JEMALLOC PURGE, accepted by chdb
    assert store.count("dossier_facts") == 0  # and the store works on


def test_the_processor_hands_its_counters_over_at_each_flush_once_per_batch(
    store: ClickHouseStore, registry: UnitRegistry, calendar: WorkCalendar
) -> None:
    """``handle`` buffers fact rows; the counters it moved go at the start of the next
    flush (a flush by size within a batch takes those folded so far), past the bound."""
    from dossier_stream.stream.processor import Message

    rec = _Recorder()
    sink = BatchingSink(cast(ClickHouseStore, rec), max_rows=1, interval_s=60)
    proc = Processor(registry, calendar, load_catalog(), sink, store)
    unit = "HP-SO-TUPHAP"
    received = [t.received(f"D{i}", unit) for i in range(2)]
    chunk = [Message("dossier.submissions.v1", 0, i, t.encode(e)) for i, e in enumerate(received)]
    proc.handle(chunk[:1])
    proc.handle(chunk[1:])
    assert len(sink) == 2 and "unit_day_counters" not in rec.rows  # the two facts only
    sink.add_fact("f", ("id",), 1, (1,))
    sink.add_fact("f", ("id",), 2, (2,))  # 4 x max_rows wait: the bound is reached
    with pytest.raises(SinkBackpressure):
        sink.add_counter("dossier:0", (unit, date(2024, 10, 3), "x"), 1)
    assert sink.flush() == 4 + len(rec.rows["unit_day_counters"])  # the hook is not bounded
    counters = proc.engines["dossier:0"].counters
    written = {(u, d, c): v for s, u, d, c, v in rec.rows["unit_day_counters"]}
    assert written == dict(counters.items()) and written[(unit, date(2024, 10, 3), "received")] == 2
    # the next flush hands over only the totals moved since the last one
    done = Message("dossier.progress.v1", 0, 0, t.encode(t.completed("D0", unit)))
    proc.handle([done])
    rec.rows.clear()
    assert sink.flush() == 1 + len(rec.rows["unit_day_counters"])
    assert {c for _, _, _, c, _ in rec.rows["unit_day_counters"]} >= {"completed"}
    rec.rows.clear()
    assert sink.flush() == 0 and rec.rows == {}  # nothing moved: nothing handed over twice
    # a released source's pending totals are dropped with it (its rows are discarded)
    proc.handle([Message("dossier.progress.v1", 0, 1, t.encode(t.completed("D1", unit)))])
    sink.discard(["dossier:0"])
    proc.release(["dossier:0"])
    assert sink.flush() == 0 and rec.rows == {}


def _compress_block(store: ClickHouseStore) -> dict[str, str]:
    """The tables' own ``max_compress_block_size`` (from ``SHOW CREATE``), where set."""
    import re

    out = {}
    for table in ("dossier_facts", "unit_day_counters"):
        create = str(store.client.command(f"SHOW CREATE TABLE {table}"))
        found = re.search(r"max_compress_block_size = (\d+)", create.replace("\\n", " "))
        if found:
            out[table] = found[1]
    return out


def test_the_large_tables_write_64_kib_blocks_fresh_and_migrated(tmp_path: Path) -> None:
    """Migration 7: ``max_compress_block_size`` of 64 KiB on a new store and on an older one.

    A merge holds a compressed block per part and column: the setting bounds
    what chdb's merges of the largest parts take (``python -m bench.merges``).
    """
    fresh = ClickHouseStore(connect(f"chdb://{tmp_path / 'fresh'}"))
    try:
        fresh.migrate()
        want = {"dossier_facts": "65536", "unit_day_counters": "65536"}
        assert _compress_block(fresh) == want
        merge_tree = fresh.client.query(
            "SELECT value FROM system.merge_tree_settings WHERE name = 'max_compress_block_size'"
        ).result_rows
        assert merge_tree[0][0] != "65536"  # the engine's default (0: 1 MiB) is left alone
    finally:
        fresh.close()
    older = ClickHouseStore(connect(f"chdb://{tmp_path / 'older'}"))
    try:
        older.migrate(before=7)
        assert _compress_block(older) == {}
        older.write_counters([("dossier:0", "U", date(2024, 10, 3), "received", 2)])
        assert older.migrate() == [v for v, _, _ in MIGRATIONS if v >= 7]
        assert _compress_block(older) == want
        assert older.source_counters("dossier:0") == {("U", date(2024, 10, 3), "received"): 2}
        assert older.migrate() == []
    finally:
        older.close()
