"""ClickHouse unreachable for 60 s mid-stream: consumption pauses, memory stays bounded, no loss.

A worker runs in this process on the Tansu broker with a store whose every
write *and* read raises for 60 s once the worker has processed part of a
simulated stream that is already all published (so there is always more to
consume). During the outage the worker

* takes no new batch: the events it handled grow by at most the batches
  already in its agents' hands, then stay flat (Faust's stream buffers fill
  and it stops fetching), with no rebalance (the consumer thread keeps
  heart-beating);
* retries with exponential backoff bounded by ``DOSSIER_FLUSH_RETRY_MAX_S``
  what the store refuses: a flush (each failed flush counted in
  ``dossier_stream_clickhouse_flush_failures_total``), or the read of stored
  states when the outage meets the first batch of a source (feedback and
  unit reports come later in the stream than the first dossiers);
* keeps its resident memory under a ceiling;

and when the store comes back it catches up, and every (unit, day, counter)
equals the simulator's truth, the report equals an in-memory replay, every
dead letter is logged once, and ``reconcile`` finds no difference.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from dossier_stream.core.periods import monthly_report
from dossier_stream.core.registry import UnitRegistry
from dossier_stream.core.topics import load_catalog
from dossier_stream.core.workdays import WorkCalendar
from dossier_stream.settings import Settings
from dossier_stream.sim.simulate import SimConfig, Simulation, simulate
from dossier_stream.store.sink import ClickHouseStore, connect
from dossier_stream.stream.embedded import EmbeddedBroker
from dossier_stream.stream.runner import Worker, create_topics, produce_lines
from streamharness import (
    GroupWatch,
    counter_mismatches,
    reconcile,
    replay,
    report_mismatches,
)

pytestmark = pytest.mark.integration

_LOG = logging.getLogger(__name__)
PERIOD = monthly_report(2024, 10)
OUTAGE_S = 60.0
RETRY_MIN_S, RETRY_MAX_S = 0.5, 5.0
BATCH = 2_000
RSS_GROWTH_LIMIT_MB = 150.0  # during the outage, over the resident size when it began


class _UnreachableStore(ClickHouseStore):
    """The chdb store; every write and read raises while ``down`` says so."""

    def __init__(self, dsn: str) -> None:
        super().__init__(connect(dsn))
        self.down_until = 0.0
        self.refused = 0
        self.refused_writes = 0  # a flush stops at its first refused write: one per failed flush

    def _gate(self, *, write: bool = False) -> None:
        if time.monotonic() < self.down_until:
            self.refused += 1
            self.refused_writes += write
            raise ConnectionError("ClickHouse is unreachable (test outage)")

    def write_counters(self, rows: Any) -> int:
        self._gate(write=True)
        return super().write_counters(rows)

    def write_rows(self, table: str, columns: Any, rows: Any) -> int:
        self._gate(write=True)
        return super().write_rows(table, columns, rows)

    def write_dead_letters(self, rows: Any) -> int:
        self._gate(write=True)
        return super().write_dead_letters(rows)

    def source_states(self, table: str, source: str) -> list[bytes]:
        self._gate()
        return super().source_states(table, source)

    def source_counters(self, source: str) -> Any:
        self._gate()
        return super().source_counters(source)


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS in /proc/self/status")


@pytest.fixture(scope="module")
def sim(registry: UnitRegistry, calendar: WorkCalendar) -> Simulation:
    config = SimConfig(period=PERIOD, seed=31, dossiers=30_000, feedback=1_000, invalid_rate=0.002)
    return simulate(config, registry, calendar)


def test_a_60_s_clickhouse_outage_pauses_consumption_and_loses_nothing(
    tmp_path: Path, registry: UnitRegistry, calendar: WorkCalendar, sim: Simulation
) -> None:
    catalog = load_catalog()
    dsn = f"chdb://{tmp_path / 'ch'}"
    store = _UnreachableStore(dsn)
    store.migrate()
    samples: list[dict[str, float]] = []
    with EmbeddedBroker(tmp_path / "tansu.log") as broker:
        settings = Settings(
            bootstrap_servers=broker.bootstrap,
            clickhouse_dsn=SecretStr(dsn),
            data_dir=tmp_path / "data",
            app_id="outage-test",
            metrics_port=0,
            metrics_host="127.0.0.1",
            batch_size=BATCH,
            flush_retry_min_s=RETRY_MIN_S,
            flush_retry_max_s=RETRY_MAX_S,
        )

        async def scenario() -> dict[str, Any]:
            await create_topics(settings, catalog)
            await produce_lines(settings, catalog, sim.lines, source="outage-test")
            worker = Worker(settings, catalog, registry, calendar, store)
            await worker.start()
            try:
                stats = worker.processor.stats
                deadline = time.monotonic() + 180
                while worker.processor.stats.events_in < len(sim.lines) // 4:
                    assert time.monotonic() < deadline, worker.processor.stats
                    await asyncio.sleep(0.05)
                rebalances = worker.rebalances
                began, rss0 = time.monotonic(), _rss_mb()
                store.down_until = began + OUTAGE_S
                handled0 = worker.processor.stats.events_in
                while time.monotonic() < store.down_until:
                    stats = worker.processor.stats
                    samples.append({
                        "t": time.monotonic() - began,
                        "handled": stats.events_in - handled0,
                        "rss": _rss_mb(),
                        "buffered": len(worker.sink),
                    })  # fmt: skip
                    await asyncio.sleep(0.5)
                came_back = time.monotonic()
                caught_up = await worker.wait_for(len(sim.lines), timeout=300)
                # the worker's own dead letters are logged from the dead-letter topic after
                while store.count("dead_letters") < sim.invalid:
                    assert time.monotonic() - came_back < 300, store.count("dead_letters")
                    await asyncio.sleep(0.2)
                failures = worker.metrics.registry.get_sample_value(
                    "dossier_stream_clickhouse_flush_failures_total"
                )
                return {
                    "caught_up": caught_up,
                    "catch_up_s": time.monotonic() - came_back,
                    "rebalances_during": worker.rebalances - rebalances,
                    "rss0": rss0,
                    "failures": failures,
                    "stats": worker.processor.stats.to_json(),
                }
            finally:
                await worker.stop()

        try:
            outcome = asyncio.run(scenario())
        except BaseException:
            store.close()
            raise
    late = [s for s in samples if s["t"] >= 5]  # once the batches in hand are folded
    outcome["handled_during"] = max(s["handled"] for s in samples)
    outcome["handled_after_5s"] = (late[0]["handled"], late[-1]["handled"])
    outcome["rss_peak"] = max(s["rss"] for s in samples)
    outcome["refused"] = store.refused
    outcome["refused_writes"] = store.refused_writes
    _LOG.warning("outage test: %s", outcome)
    print(f"outage test: {outcome}")
    try:
        assert outcome["caught_up"], outcome
        assert outcome["rebalances_during"] == 0, outcome
        # at most the batches the four agents held when it began, then nothing more
        assert outcome["handled_during"] <= 4 * BATCH, outcome
        assert late[0]["handled"] == late[-1]["handled"], outcome
        assert outcome["rss_peak"] - outcome["rss0"] < RSS_GROWTH_LIMIT_MB, outcome
        # bounded backoff: ~15 waits of 0.5, 1, 2, 4, 5, 5 ... s per retrying agent, whether
        # the outage met a flush or a read of stored states
        assert 5 <= outcome["refused"] <= 4 * (2 + OUTAGE_S / RETRY_MAX_S + 4), outcome
        assert (outcome["failures"] or 0) == outcome["refused_writes"], outcome
        engine = replay(sim.lines, registry, calendar)
        assert counter_mismatches(store, sim.truth) == []
        assert report_mismatches(store, engine, registry, PERIOD) == []
        assert store.count("dead_letters") == sim.invalid
    finally:
        store.close()
    result = reconcile({"DOSSIER_CLICKHOUSE_DSN": dsn}, tmp_path, "2024-10")
    assert result["summary"]["differences"] == 0, result["differences"][:20]


def test_a_worker_stopped_during_an_outage_commits_nothing_it_did_not_store(
    tmp_path: Path, registry: UnitRegistry, calendar: WorkCalendar
) -> None:
    """Stopping while ClickHouse is down returns promptly, and the next worker loses nothing.

    The batch in hand is held back: its offsets are never committed, so the
    worker started after the outage reads it again and every figure is exact.
    """
    sim = simulate(
        SimConfig(period=PERIOD, seed=37, dossiers=3_000, feedback=100), registry, calendar
    )
    catalog = load_catalog()
    dsn = f"chdb://{tmp_path / 'ch'}"
    store = _UnreachableStore(dsn)
    store.migrate()
    with EmbeddedBroker(tmp_path / "tansu.log") as broker:
        settings = Settings(
            bootstrap_servers=broker.bootstrap,
            clickhouse_dsn=SecretStr(dsn),
            data_dir=tmp_path / "data",
            app_id="outage-stop-test",
            metrics_port=0,
            metrics_host="127.0.0.1",
            batch_size=500,
            flush_retry_min_s=RETRY_MIN_S,
            flush_retry_max_s=30.0,  # the stop must not wait the backoff out
        )

        async def scenario() -> tuple[float, int]:
            await create_topics(settings, catalog)
            stats = await produce_lines(settings, catalog, sim.lines, source="outage-stop-test")
            inputs = {t: n for t, n in stats.per_topic.items() if t != catalog.deadletter.name}
            first = Worker(settings, catalog, registry, calendar, store)
            await first.start()
            deadline = time.monotonic() + 120
            while first.processor.stats.events_in < 1_000:
                assert time.monotonic() < deadline, first.processor.stats
                await asyncio.sleep(0.05)
            store.down_until = time.monotonic() + 3600  # down, and it stays down
            await asyncio.sleep(3)  # the agents are in their retry loops
            t0 = time.monotonic()
            await asyncio.wait_for(first.stop(), 60)
            stop_s = time.monotonic() - t0
            held = first.processor.stats.events_in
            store.down_until = 0.0
            second = Worker(settings, catalog, registry, calendar, store)
            await second.start()
            try:
                async with GroupWatch(broker.bootstrap, settings.app_id, inputs) as watch:
                    while not (await watch.poll() and watch.done()):
                        assert time.monotonic() - t0 < 240, watch.per_topic()
                        await asyncio.sleep(0.5)
                while len(second.sink) or store.count("dead_letters") < sim.invalid:
                    assert time.monotonic() - t0 < 240, store.count("dead_letters")
                    await asyncio.sleep(0.2)
            finally:
                await second.stop()
            return stop_s, held

        try:
            stop_s, held = asyncio.run(scenario())
            print(f"stop during an outage: {stop_s:.1f} s, {held} events handled before")
            assert stop_s < 20
            assert counter_mismatches(store, sim.truth) == []
            engine = replay(sim.lines, registry, calendar)
            assert report_mismatches(store, engine, registry, PERIOD) == []
            assert store.count("dead_letters") == sim.invalid
        finally:
            store.close()
