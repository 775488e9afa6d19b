"""A rebalance in the middle of a fetch skips nothing: members come and go under a live feed.

The batch runtime collects a batch over several ``getmany`` calls. A
rebalance may begin while one of them waits for records: the group's
revocation bumps the runtime's epoch, the new assignment starts at the
committed offsets, and the ``getmany`` still waiting returns records of the
*new* assignment. The runtime drops such a batch (it was begun before the
rebalance), but aiokafka has already moved those partitions' positions past
its records: unless the positions are put back to the committed offsets,
the next batch starts after them and commits past events never folded.

One in-process worker folds a simulated month published as a paced live
feed by kafka-python (keyed by dossier id), while a second member joins the
group and leaves it again, several times: every join and leave is a
rebalance that finds the worker waiting for the feed. Once the group has
committed every message, every (unit, day, counter) equals the simulator's
truth.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.coordinator.assignors.range import RangePartitionAssignor

from dossier_stream.core.periods import monthly_report
from dossier_stream.core.registry import UnitRegistry
from dossier_stream.core.topics import load_catalog
from dossier_stream.core.workdays import WorkCalendar
from dossier_stream.settings import Settings
from dossier_stream.sim.simulate import SimConfig, simulate
from dossier_stream.store.sink import ClickHouseStore
from dossier_stream.stream.embedded import EmbeddedBroker
from dossier_stream.stream.runner import Worker, create_topics, open_store
from foreignproducer import Sent, publish
from streamharness import GroupWatch, counter_mismatches

pytestmark = pytest.mark.integration

PERIOD = monthly_report(2024, 10)
APP_ID = "rebalance-midfetch"
CELLS = [(None, "dossier_id")]
CHUNKS = 60  # the month, published in this many paced chunks
PAUSE_S = 0.1
VISITS = 4  # times the second member joins and leaves
LIMIT_S = 180.0


def test_a_rebalance_during_a_fetch_skips_no_event(
    tmp_path: Path,
    registry: UnitRegistry,
    calendar: WorkCalendar,
    caplog: pytest.LogCaptureFixture,
) -> None:
    sim = simulate(
        SimConfig(period=PERIOD, seed=5, dossiers=1_500, feedback=50), registry, calendar
    )
    lines = sim.lines
    with EmbeddedBroker(tmp_path / "tansu.log") as broker:
        settings = Settings(
            bootstrap_servers=broker.bootstrap,
            clickhouse_dsn=f"chdb://{tmp_path / 'ch'}",  # type: ignore[arg-type]
            data_dir=tmp_path / "data",
            app_id=APP_ID,
            metrics_port=0,
            session_timeout_s=6.0,
        )
        store = open_store(settings)
        try:
            caplog.set_level(logging.INFO, logger="dossier_stream.stream.ingest")
            worker = asyncio.run(_scenario(settings, store, lines, registry, calendar))
            mismatches = counter_mismatches(store, sim.truth)
        finally:
            store.close()
    drops = caplog.text.count("dropped a batch fetched before a rebalance")
    assert mismatches == [], (drops, len(mismatches), mismatches[:5])
    assert worker.app.rebalancing_count > VISITS, worker.app.rebalancing_count


async def _scenario(
    settings: Settings, store: ClickHouseStore, lines: list[bytes], registry: UnitRegistry,
    calendar: WorkCalendar,
) -> Worker:  # fmt: skip
    catalog = load_catalog()
    bootstrap = settings.bootstrap_servers
    await create_topics(settings, catalog)
    worker = Worker(settings, catalog, registry, calendar, store)
    sent = Sent()
    done = threading.Event()

    def feed() -> None:
        step = -(-len(lines) // CHUNKS)
        try:
            for lo in range(0, len(lines), step):
                hi = min(lo + step, len(lines))
                part = publish(bootstrap, catalog, lines[lo:hi], CELLS, [0] * (hi - lo))
                sent.placed += [(t, p, i + lo) for t, p, i in part.placed]
                time.sleep(PAUSE_S)
        finally:
            done.set()

    await worker.start()
    try:
        feeder = threading.Thread(target=feed, daemon=True)
        feeder.start()
        for _ in range(VISITS):  # each visit: a rebalance on joining, another on leaving
            await _visit(settings, list(catalog.input_topics))
        await asyncio.to_thread(feeder.join, LIMIT_S)
        assert done.is_set() and len(sent.placed) == len(lines)
        inputs = dict(Counter(t for t, _, _ in sent.placed if t != catalog.deadletter.name))
        started = time.monotonic()
        async with GroupWatch(bootstrap, APP_ID, inputs) as watch:
            await watch.poll()
            while not watch.done():
                assert time.monotonic() - started < LIMIT_S, watch.per_topic()
                await asyncio.sleep(0.5)
                await watch.poll()
        assert await worker.wait_for(0, timeout=30)  # the sink is empty
    finally:
        await worker.stop()
    return worker


async def _visit(settings: Settings, topics: list[str]) -> None:
    """A second member joins the group, stays a moment, and leaves (no commit)."""
    other = AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers,
        group_id=settings.app_id,
        enable_auto_commit=False,
        partition_assignment_strategy=(RangePartitionAssignor,),
        session_timeout_ms=int(settings.session_timeout_s * 1000),
        heartbeat_interval_ms=1000,
    )
    other.subscribe(topics)
    await other.start()
    try:
        deadline = time.monotonic() + 20
        while not other.assignment() and time.monotonic() < deadline:
            await other.getmany(timeout_ms=200)  # joins; what it fetches is not committed
        await asyncio.sleep(0.5)
    finally:
        await other.stop()
    await asyncio.sleep(1.0)
