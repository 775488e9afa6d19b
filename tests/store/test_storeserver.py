"""``store-server``: the embedded ClickHouse behind ClickHouse's HTTP interface.

The clients are clickhouse-connect's HTTP client (what a worker uses with an
``http://`` DSN), never chdb: the server process owns the data path.
"""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path

import pytest

from dossier_stream.cli.storeserver import chdb_path
from dossier_stream.core.periods import monthly_report
from dossier_stream.core.registry import UnitRegistry
from dossier_stream.core.topics import load_catalog
from dossier_stream.core.workdays import VN_TZ, WorkCalendar
from dossier_stream.sim import testing as t
from dossier_stream.store.batching import BatchingSink
from dossier_stream.store.sink import ClickHouseStore, connect
from dossier_stream.store.storeserver import StoreServer
from dossier_stream.stream.processor import Message, Processor

HOSTILE = "x' OR 1=1 --\\ \t\n đơn vị `; DROP TABLE dossier_facts"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[StoreServer]:
    s = StoreServer(tmp_path / "ch")
    s.start()
    try:
        yield s
    finally:
        s.stop()


def test_the_store_works_through_the_server(
    server: StoreServer, registry: UnitRegistry, calendar: WorkCalendar
) -> None:
    with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/ping", timeout=10) as resp:
        assert resp.read() == b"Ok.\n"
    store = ClickHouseStore(connect(server.dsn))
    try:
        assert store.migrate() != []
        assert store.migrate() == []
        sink = BatchingSink(store, max_rows=10_000, interval_s=60)
        proc = Processor(registry, calendar, load_catalog(), sink, store)
        proc.handle([
            Message("dossier.submissions.v1", 0, 0, t.encode(t.received("D1", "HP-SO-TUPHAP"))),
            Message("dossier.progress.v1", 0, 0, t.encode(t.completed("D1", "HP-SO-TUPHAP"))),
        ])  # fmt: skip
        sink.flush()
        period = monthly_report(2024, 10)
        counters = store.counters(period.start, period.end)
        assert counters[("HP-SO-TUPHAP", date(2024, 10, 3), "received")] == 1
        # a new worker recovers the partition's states through the server
        fresh = Processor(registry, calendar, load_catalog(), sink, store)
        fresh.recover(["dossier:0"])
        assert fresh.engines["dossier:0"].counters == proc.engines["dossier:0"].counters
        assert len(sink) == 0
        # parameters arrive as values, whatever they contain
        assert store.source_counters(HOSTILE) == {}
        assert store.count("dossier_facts") == 1
    finally:
        store.close()


def test_inserts_of_many_blocks_compressed_or_not_and_errors(server: StoreServer) -> None:
    at = datetime(2024, 10, 14, 23, 59, 59, 123456, tzinfo=VN_TZ)
    for compress in (True, "gzip", "zstd", False):
        client = connect(f"{server.dsn}?compress={compress}")
        try:
            client.command("DROP TABLE IF EXISTS t")
            client.command(
                "CREATE TABLE t (s String, at DateTime64(6, 'Asia/Ho_Chi_Minh'), "
                "lc LowCardinality(String)) ENGINE = MergeTree ORDER BY s"
            )
            rows = [(HOSTILE, at, "a")] + [(str(i), at, "b") for i in range(70_000)]
            client.insert("t", rows, column_names=["s", "at", "lc"])  # two Native blocks
            got = client.query(
                "SELECT count(), countIf(s = {s:String}), min(at), max(lc) FROM t",
                parameters={"s": HOSTILE},
            ).result_rows
            assert got == [(70_001, 1, at, "b")], compress
        finally:
            client.close()
    client = connect(server.dsn)
    try:
        with pytest.raises(Exception, match="Code: 60"):
            client.query("SELECT * FROM no_such_table")
    finally:
        client.close()


def test_the_command_serves_until_stopped(tmp_path: Path) -> None:
    assert chdb_path("chdb:///abs/x") == Path("/abs/x")
    assert chdb_path("http://h:8123/db") is None
    proc = subprocess.Popen(
        [sys.executable, "-m", "dossier_stream", "store-server", "--path", str(tmp_path / "ch"),
         "--port", "0"],
        cwd=tmp_path, env={**os.environ, "DOSSIER_LOG_LEVEL": "WARNING"},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().decode().strip()
        assert line.startswith("DOSSIER_CLICKHOUSE_DSN=http://127.0.0.1:"), line
        client = connect(line.split("=", 1)[1])
        assert client.command("SELECT 41 + 1") == 42
        client.close()
    finally:
        proc.terminate()
        assert proc.wait(30) == 0
