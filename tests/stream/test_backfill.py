"""Backfill with several worker processes: the figures equal the in-memory replay.

:func:`~dossier_stream.stream.backfill.run_backfill` starts two real
``dossier-stream worker`` processes in one consumer group over a published
backlog, serving the chdb store from the test process while they run. When it
returns, every (unit, day, counter) equals the simulator's truth, the report
read from ClickHouse equals an in-memory replay of the same lines, every
dead letter is logged once and every dossier has one fact row.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from pydantic import SecretStr

from dossier_stream.core.periods import monthly_report
from dossier_stream.core.registry import UnitRegistry
from dossier_stream.core.topics import load_catalog
from dossier_stream.core.workdays import WorkCalendar
from dossier_stream.settings import Settings
from dossier_stream.sim.simulate import SimConfig, simulate
from dossier_stream.store.sink import ClickHouseStore, connect
from dossier_stream.stream.backfill import run_backfill
from dossier_stream.stream.embedded import EmbeddedBroker
from dossier_stream.stream.runner import create_topics, produce_lines
from streamharness import counter_mismatches, replay, report_mismatches

pytestmark = pytest.mark.integration

PERIOD = monthly_report(2024, 10)


def test_two_processes_backfill_exactly(
    tmp_path: Path, registry: UnitRegistry, calendar: WorkCalendar
) -> None:
    sim = simulate(
        SimConfig(period=PERIOD, seed=18, dossiers=6_000, feedback=300), registry, calendar
    )
    catalog = load_catalog()
    path = tmp_path / "ch"
    with EmbeddedBroker(tmp_path / "tansu.log") as broker:
        settings = Settings(
            bootstrap_servers=broker.bootstrap,
            clickhouse_dsn=SecretStr(f"chdb://{path}"),
            app_id="backfill-test",
        )
        asyncio.run(create_topics(settings, catalog))
        stats = asyncio.run(produce_lines(settings, catalog, sim.lines, source="backfill-test"))
        result = run_backfill(
            settings, catalog, processes=2, workdir=tmp_path / "work", timeout_s=600
        )
    assert result.messages == stats.sent - stats.unroutable
    logs = [log.read_text("utf-8", errors="replace") for log in result.logs]
    assert all("partitions assigned:" in text for text in logs), logs
    engine = replay(sim.lines, registry, calendar)
    store = ClickHouseStore(connect(f"chdb://{path}"))
    try:
        assert counter_mismatches(store, sim.truth) == []
        assert report_mismatches(store, engine, registry, PERIOD) == []
        assert store.count("dead_letters") == sim.invalid
        assert store.count("dossier_facts") == len(engine.dossiers)
    finally:
        store.close()
