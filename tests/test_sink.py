"""The ClickHouse store on chdb, and the same code against a server when one is given."""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path

import pytest

from dossier_stream import testing as t
from dossier_stream.periods import monthly_report
from dossier_stream.processor import Processor
from dossier_stream.registry import UnitRegistry
from dossier_stream.sink import (
    MIGRATIONS,
    BatchingSink,
    ClickHouseStore,
    SinkBackpressure,
    connect,
)
from dossier_stream.topics import load_catalog
from dossier_stream.workdays import WorkCalendar

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
    from dossier_stream.processor import Message

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
