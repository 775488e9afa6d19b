"""Native blocks built at C speed: the client's bytes, the client's values, on chdb and HTTP."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from clickhouse_connect.datatypes.registry import get_from_name
from clickhouse_connect.driver.insert import InsertContext
from clickhouse_connect.driver.transform import NativeTransform

from dossier_stream.store.codec import DOSSIER_FACT_COLUMNS
from dossier_stream.store.nativeblock import Unsupported, column_encoder, native_block
from dossier_stream.store.sink import ClickHouseStore, connect
from dossier_stream.store.storeserver import StoreServer

DT64 = "DateTime64(6, 'Asia/Ho_Chi_Minh')"
US = 1_728_000_000_123_456  # epoch microseconds of October 2024


def _clients_block(names: Sequence[str], types: Sequence[str], columns: list[Any]) -> bytes:
    """The Native block clickhouse-connect sends for these columns (its own insert path)."""
    context = InsertContext(
        "t", names, [get_from_name(t) for t in types], columns, column_oriented=True
    )
    body = b"".join(NativeTransform.build_insert(context))
    return body[body.index(b"\n") + 1 :]  # without the INSERT statement it puts in front


def _ours(names: Sequence[str], types: Sequence[str], columns: list[Any]) -> bytes:
    encoders = [column_encoder(t) for t in types]
    assert None not in encoders
    return native_block(names, types, encoders, columns)  # type: ignore[arg-type]


LONG = "đ" * 9_000  # 18 000 bytes: a three-byte length
WORDS = [f"w{i}" for i in range(300)]  # a LowCardinality dictionary wider than one byte

COLUMNS: list[tuple[str, list[Any]]] = [
    ("String", ["", "a", "đơn vị \t\n\\'\"", "x" * 127, "y" * 128, "z" * 16_383, LONG]),
    ("LowCardinality(String)", ["", "b", "a", "b", "", "đ", "a"]),
    ("LowCardinality(String)", [WORDS[i % 300] for i in range(7)]),
    ("UInt8", [0, 1, 255, True, False, 7, 0]),
    ("UInt16", [0, 65_535, 1, 2, 3, 4, 5]),
    ("UInt64", [0, 2**64 - 1, 1, 2, 3, 4, 5]),
    ("Int32", [0, -(2**31), 2**31 - 1, -1, 1, 2, 3]),
    ("Int64", [0, -(2**63), 2**63 - 1, -1, 1, 2, 3]),
    ("Date", [date(1970, 1, 1), date(2024, 10, 3), date(2149, 6, 6), *[date(2000, 2, 29)] * 4]),
    (DT64, [US, 0, -1, US + 1, 1, 2, 3]),
    ("DateTime64(3, 'UTC')", [US // 1000, 0, -1, 5, 1, 2, 3]),
    (f"Nullable({DT64})", [None, US, None, -1, 0, None, US]),
    ("Nullable(UInt8)", [None, 1, 0, None, True, 2, None]),
    (f"Array({DT64})", [[], [US], [US, -1, 0], [], [], [1, 2, 3, 4], [US]]),
    ("Array(UInt8)", [[], [1], [0, 1, True], (), [], [255], [0]]),
]


@pytest.mark.parametrize(("type_name", "column"), COLUMNS, ids=[t for t, _ in COLUMNS])
def test_a_column_is_the_bytes_the_client_writes(type_name: str, column: list[Any]) -> None:
    assert len(column) == 7
    assert _ours(["c"], [type_name], [column]) == _clients_block(["c"], [type_name], [column])


def test_a_block_of_every_column_and_a_wide_dictionary() -> None:
    names = [f"c{i}" for i in range(len(COLUMNS))]
    types = [t for t, _ in COLUMNS]
    columns = [c for _, c in COLUMNS]
    assert _ours(names, types, columns) == _clients_block(names, types, columns)
    words = [WORDS[i * 7 % 300] for i in range(1000)]  # 300 keys: two-byte indexes
    lc = ["LowCardinality(String)"]
    assert _ours(["w"], lc, [words]) == _clients_block(["w"], lc, [words])


@pytest.mark.parametrize(
    ("type_name", "column"),
    [
        (DT64, [US, datetime(2024, 10, 3, tzinfo=UTC)]),  # datetimes are the client's to convert
        (DT64, [US, True]),
        (DT64, [US, None]),  # None where no NULL may be
        (f"Nullable({DT64})", [None, 1.5]),
        ("String", ["a", b"b"]),  # bytes: the client's path
        ("String", ["a", None]),
        ("LowCardinality(String)", ["a", 1]),
        ("UInt8", [1, 256]),  # out of range: the client refuses it with its own error
        ("UInt8", [1, -1]),
        ("Int64", [2**63]),
        ("Date", [date(1969, 12, 31)]),
        ("Date", [datetime(2024, 10, 3, tzinfo=UTC)]),
        ("Array(UInt8)", [[1], "ab"]),
        ("Array(UInt8)", [[1], [None]]),
    ],
)
def test_values_outside_the_fast_path_are_refused(type_name: str, column: list[Any]) -> None:
    encoder = column_encoder(type_name)
    assert encoder is not None
    with pytest.raises((Unsupported, TypeError, OverflowError)):
        native_block(["c"], [type_name], [encoder], [column])


@pytest.mark.parametrize(
    "type_name",
    ["Float64", "Nullable(String)", "Array(LowCardinality(String))", "Map(String, UInt8)",
     "LowCardinality(Nullable(String))", "Decimal(10, 2)", "Tuple(UInt8)", "Array(String) "],
)  # fmt: skip
def test_other_types_have_no_fast_encoder(type_name: str) -> None:
    assert column_encoder(type_name) is None


def test_columns_of_different_lengths_are_refused() -> None:
    encoders = [column_encoder("UInt8")] * 2
    with pytest.raises(Unsupported):
        native_block(["a", "b"], ["UInt8", "UInt8"], encoders, [[1, 2], [1]])  # type: ignore[list-item]


# ------------------------------------------------------------ through the store
def _fact(i: int) -> tuple[Any, ...]:
    """A ``dossier_facts`` row as :func:`~dossier_stream.store.codec.dossier_fact` builds it."""
    at = None if i % 4 == 0 else US + i * 3_600_000_001 - 10**15 * (i % 3 == 2)
    due = None if at is None else at + 7
    sups = [] if i % 2 else [US + i, US - i]
    return (
        f"D{i}", f"dossier:{i % 2}", f"U{i % 3}", at, due, ("online", "", "đ")[i % 3],
        "full", i % 2, 1, 0, 1, 0, 1, 0, len(sups), sups, [1, 0][: len(sups)],
        None if i % 3 else due, due, None if i % 5 else 1, 0, None if i % 2 else US,
        f'[1,"D{i}",["đ\\n"]]',
    )  # fmt: skip


def _dump(store: ClickHouseStore, table: str) -> bytes:
    return store.client.raw_query(
        f"SELECT * EXCEPT version FROM {table} ORDER BY ALL", fmt="TabSeparated"
    )


def _the_fast_path_stores_what_the_client_stores(store: ClickHouseStore) -> None:
    store.migrate()
    client = store.client
    for table in ("dossier_facts", "unit_day_counters"):
        client.command(f"CREATE TABLE ref_{table} AS {table}")
    facts = [_fact(i) for i in range(40)]
    counters = [(f"dossier:{i % 2}", "U", date(2024, 10, 3), f"c{i}", i - 2) for i in range(30)]
    counters.append(("dossier:0", "đ", date(1970, 1, 1), "received", -(2**63)))
    client.insert("ref_dossier_facts", facts, column_names=list(DOSSIER_FACT_COLUMNS))
    client.insert(
        "ref_unit_day_counters",
        counters,
        column_names=["source", "unit_code", "day", "counter", "value"],
    )

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the client's insert was used")

    insert, client.insert = client.insert, refuse  # type: ignore[method-assign]
    try:
        assert store.write_rows("dossier_facts", DOSSIER_FACT_COLUMNS, facts) == 40
        assert store.write_counters(counters) == 31
    finally:
        client.insert = insert  # type: ignore[method-assign]
    for table in ("dossier_facts", "unit_day_counters"):
        mine = _dump(store, table)
        assert mine == _dump(store, f"ref_{table}") and mine.count(b"\n") in (40, 31)
    (row,) = client.query(
        "SELECT received_at FROM dossier_facts WHERE dossier_id = 'D1'"
    ).result_rows
    assert row[0] == datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=US + 3_600_000_001)
    # a value for the client's path (a naive datetime) still goes the client's way
    naive = (*facts[1][:3], datetime(2024, 10, 3, 8, 30), *facts[1][4:])  # noqa: DTZ001
    assert store.write_rows("dossier_facts", DOSSIER_FACT_COLUMNS, [naive]) == 1
    client.insert("ref_dossier_facts", [naive], column_names=list(DOSSIER_FACT_COLUMNS))
    final = "SELECT * EXCEPT version FROM {} FINAL ORDER BY ALL"
    assert client.raw_query(final.format("dossier_facts")) == client.raw_query(
        final.format("ref_dossier_facts")
    )


def test_on_chdb_the_fast_path_stores_what_the_client_stores(tmp_path: Path) -> None:
    store = ClickHouseStore(connect(f"chdb://{tmp_path / 'ch'}"))
    try:
        _the_fast_path_stores_what_the_client_stores(store)
    finally:
        store.close()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[StoreServer]:
    s = StoreServer(tmp_path / "ch")
    s.start()
    try:
        yield s
    finally:
        s.stop()


def test_over_http_the_fast_path_stores_what_the_client_stores(server: StoreServer) -> None:
    store = ClickHouseStore(connect(server.dsn))
    try:
        _the_fast_path_stores_what_the_client_stores(store)
    finally:
        store.close()
