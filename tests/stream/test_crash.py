"""Crash at any point: SIGKILL the worker process again and again, the figures do not move.

The real ``dossier-stream worker`` runs in its own process on the Tansu
broker, with its embedded ClickHouse (chdb) on disk. The simulator publishes
about 260.000 events of tháng 10/2024 (duplicates and invalid lines
included) and gives the ground truth. The worker is killed with SIGKILL

* during processing (a random moment after its first stored batch),
* during a ClickHouse flush (right after it logged that the counters are
  written and the facts are being written: between the two inserts),
* during a rebalance (as soon as partitions are assigned to it, before it
  has recovered or stored anything),

restarted each time, and finally left to catch up. Then every
(unit, day, counter) in ClickHouse equals the truth, the whole report equals
an in-memory replay of the same events (open past-due dossiers and the
units' own reports included), every dead letter is logged exactly once, and
``reconcile`` finds no difference. The final catch-up is timed and no
partition with unread messages may go 25 s without progress.
"""

from __future__ import annotations

import asyncio
import logging
import random
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
from dossier_stream.stream.embedded import EmbeddedBroker
from dossier_stream.stream.runner import create_topics, open_store, produce_lines
from streamharness import (
    GroupWatch,
    WorkerProcess,
    counter_mismatches,
    partition_ends,
    reconcile,
    replay,
    report_mismatches,
)

pytestmark = pytest.mark.integration

_LOG = logging.getLogger(__name__)
PERIOD = monthly_report(2024, 10)
PLAN = ("processing", "flush", "rebalance", "flush", "processing")
STALL_LIMIT_S = 25.0
CATCH_UP_LIMIT_S = 240.0


@pytest.fixture(scope="module")
def sim(registry: UnitRegistry, calendar: WorkCalendar) -> Simulation:
    config = SimConfig(
        period=PERIOD,
        seed=23,
        dossiers=65_000,
        feedback=2_000,
        duplicate_rate=0.01,
        invalid_rate=0.002,
    )
    return simulate(config, registry, calendar)


def _in_flush(lines: list[str]) -> bool:
    """Whether the last flush the log shows was started and not finished."""
    marks = [line for line in lines if "batching: writing " in line or "batching: flushed " in line]
    return bool(marks) and "batching: writing " in marks[-1]


async def _kill(
    worker: WorkerProcess, kind: str, rng: random.Random, watch: GroupWatch, share: float
) -> str:
    """Start the worker, kill it at a moment of ``kind``; returns what the kill hit.

    A processing or flush kill waits first until ``share`` of the input is
    committed, so the kills spread over the stream (and each restart has
    more stored state to recover).
    """
    worker.start()
    seen: list[str] = []

    def mark(pattern: str) -> Any:
        def match(line: str) -> bool:
            seen.append(line)
            return pattern in line

        return match

    if kind == "rebalance":
        await worker.wait_line(mark("partitions assigned:"), 120)
    else:
        total = sum(watch.sent.values())
        deadline = time.monotonic() + 300
        while sum((await watch.poll()).values()) < share * total:
            assert time.monotonic() < deadline and worker.alive, worker.tail()
            seen += worker.new_lines()
            await asyncio.sleep(0.2)
        if kind == "flush":
            await worker.wait_line(mark("rows to dossier_facts"), 60)
        else:
            await asyncio.sleep(rng.uniform(0.0, 2.0))
    worker.kill()
    seen += worker.new_lines()
    if kind == "flush":
        return "flush" if _in_flush(seen) else "processing (the flush ended first)"
    if kind == "rebalance":
        stored = any("batching: flushed " in line for line in seen)
        return "processing (it stored a batch first)" if stored else "rebalance"
    return kind


def test_sigkill_at_any_point_changes_no_figure(
    tmp_path: Path, registry: UnitRegistry, calendar: WorkCalendar, sim: Simulation
) -> None:
    rng = random.Random(6)
    catalog = load_catalog()
    dsn = f"chdb://{tmp_path / 'ch'}"
    app_id = "crash-test"
    with EmbeddedBroker(tmp_path / "tansu.log") as broker:
        env = {
            "DOSSIER_BOOTSTRAP_SERVERS": broker.bootstrap,
            "DOSSIER_CLICKHOUSE_DSN": dsn,
            "DOSSIER_APP_ID": app_id,
            "DOSSIER_DATA_DIR": str(tmp_path / "data"),
            "DOSSIER_METRICS_PORT": "0",
            "DOSSIER_METRICS_HOST": "127.0.0.1",
            "DOSSIER_LOG_LEVEL": "DEBUG",
        }
        settings = Settings(bootstrap_servers=broker.bootstrap, app_id=app_id)
        worker = WorkerProcess(env, tmp_path / "worker.log", tmp_path)

        async def scenario() -> dict[str, Any]:
            await create_topics(settings, catalog)
            stats = await produce_lines(settings, catalog, sim.lines, source="crash-test")
            inputs = {t: n for t, n in stats.per_topic.items() if t != catalog.deadletter.name}
            ends = await partition_ends(broker.bootstrap, list(inputs))
            kills: list[str] = []
            dead = catalog.deadletter.name
            async with GroupWatch(broker.bootstrap, app_id, inputs, [dead]) as watch:
                for n, kind in enumerate(PLAN, start=1):
                    share = n / (len(PLAN) + 2) + rng.uniform(-0.03, 0.03)
                    kills.append(await _kill(worker, kind, rng, watch, share))
                    await watch.poll()
                    assert not watch.done(), f"nothing left to process at kill {n}"
                left = sum(inputs.values()) - sum(watch.per_topic().values())
                worker.start()
                t0 = time.monotonic()
                assigned = False
                while not watch.done():
                    assert time.monotonic() - t0 < CATCH_UP_LIMIT_S, watch.per_topic()
                    assert worker.alive, worker.tail()
                    assigned = assigned or any(
                        "partitions assigned:" in line for line in worker.new_lines()
                    )
                    await watch.poll()
                    watch.track_stalls(time.monotonic(), assigned, ends)
                    await asyncio.sleep(0.5)
                catch_up = time.monotonic() - t0
                # the worker's own dead letters follow their input: all logged too
                dead_end = (await partition_ends(broker.bootstrap, [dead]))[(dead, 0)]
                while (await watch.poll()).get((dead, 0), 0) < dead_end:
                    assert time.monotonic() - t0 < CATCH_UP_LIMIT_S, watch.committed
                    await asyncio.sleep(0.5)
                assert worker.interrupt() == 0, worker.tail()
            return {
                "kills": kills,
                "left": left,
                "catch_up": catch_up,
                "stall": watch.longest_stall,
                "stalled": watch.stalled,
            }

        try:
            outcome = asyncio.run(scenario())
        finally:
            if worker.alive:
                worker.kill()
    _LOG.warning("crash test: %s", outcome)
    print(f"crash test: {outcome}")
    assert outcome["kills"].count("flush") >= 1, outcome
    assert outcome["kills"].count("rebalance") >= 1, outcome
    assert outcome["stall"] < STALL_LIMIT_S, outcome
    # after the last kill: start-up, recovery, then at least 1.000 events/s (~3.000 measured)
    assert outcome["catch_up"] < 30 + outcome["left"] / 1_000, outcome

    engine = replay(sim.lines, registry, calendar)
    store = open_store(Settings(clickhouse_dsn=SecretStr(dsn)))
    try:
        assert counter_mismatches(store, sim.truth) == []
        assert report_mismatches(store, engine, registry, PERIOD) == []
        assert store.count("dead_letters") == sim.invalid
        assert store.count("dossier_facts") == len(engine.dossiers)
        assert store.count("feedback_facts") == len(engine.feedback)
    finally:
        store.close()
    result = reconcile({"DOSSIER_CLICKHOUSE_DSN": dsn}, tmp_path, "2024-10")
    assert result["summary"]["differences"] == 0, result["differences"][:20]
