"""Two worker processes in one consumer group; one is killed; the other takes over exactly.

Two real ``dossier-stream worker`` processes share one store: chdb lets one
process open a data path, so ``dossier-stream store-server`` owns it and the
workers reach it with ``http://dossier:PASSWORD@127.0.0.1:PORT/default`` —
clickhouse-connect's HTTP client, the code path of a ClickHouse server, through
the server's authentication. The simulator publishes
about 160.000 events. Both workers join the group and split the partitions,
each partition number of the four co-partitioned ``dossier.*`` topics on one
worker (Faust's assignor; see ``table_standby_replicas`` in
:mod:`dossier_stream.stream.app`). Worker A is killed with SIGKILL while both
process; worker B is assigned every partition, reloads A's partitions'
states from the shared store (what stands in for standby replicas: there is
no changelog), and finishes. Then every (unit, day, counter) equals the
truth, the report equals an in-memory replay, every dead letter is logged
once, ``reconcile`` finds no difference; the takeover and the catch-up are
timed and no partition with unread messages goes 25 s without progress.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from dossier_stream.core.periods import monthly_report
from dossier_stream.core.registry import UnitRegistry
from dossier_stream.core.topics import TopicCatalog, load_catalog
from dossier_stream.core.workdays import WorkCalendar
from dossier_stream.settings import Settings
from dossier_stream.sim.simulate import SimConfig, Simulation, simulate
from dossier_stream.store.sink import ClickHouseStore, connect
from dossier_stream.stream.embedded import EmbeddedBroker
from dossier_stream.stream.runner import create_topics, produce_lines
from streamharness import (
    CLI,
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
STALL_LIMIT_S = 25.0
TAKEOVER_LIMIT_S = 30.0
CATCH_UP_LIMIT_S = 300.0
ASSIGNED = re.compile(r"partitions assigned: (.*)$")


@pytest.fixture(scope="module")
def sim(registry: UnitRegistry, calendar: WorkCalendar) -> Simulation:
    config = SimConfig(period=PERIOD, seed=47, dossiers=40_000, feedback=1_000)
    return simulate(config, registry, calendar)


STORE_PASSWORD = "two-workers-t0ken"
"""The store-server's password: workers, the checks and ``reconcile`` authenticate."""


def _store_server(path: Path, log: Path, cwd: Path) -> tuple[subprocess.Popen[bytes], str]:
    proc = subprocess.Popen(
        [*CLI, "store-server", "--path", str(path), "--port", "0"],
        cwd=cwd,
        env={
            **os.environ,
            "DOSSIER_LOG_LEVEL": "INFO",
            "DOSSIER_STORE_SERVER_PASSWORD": STORE_PASSWORD,
        },
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=log.open("wb"),
        start_new_session=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().decode().strip()
    assert line.startswith("DOSSIER_CLICKHOUSE_DSN=http://dossier:***@"), (line, log.read_text())
    dsn = line.split("=", 1)[1]
    with pytest.raises(Exception, match="Authentication failed"):  # the password is required
        connect(dsn.replace("dossier:***@", "")).close()
    return proc, dsn.replace("***", STORE_PASSWORD)


def _assignment(line: str) -> set[tuple[str, int]]:
    match = ASSIGNED.search(line)
    assert match is not None, line
    if match.group(1) == "none":
        return set()
    return {(tp.rsplit(":", 1)[0], int(tp.rsplit(":", 1)[1])) for tp in match.group(1).split()}


def _co_partitioned(assigned: set[tuple[str, int]], catalog: TopicCatalog) -> bool:
    """Each partition number of the dossier topics: on this worker for all five, or none."""
    topics = [*(t.name for t in catalog.dossier_topics), catalog.repartition_topic("dossier")]
    numbers = {p for t, p in assigned if t in topics}
    return all((t, p) in assigned for t in topics for p in numbers)


def test_a_killed_workers_partitions_and_state_move_to_the_other(
    tmp_path: Path, registry: UnitRegistry, calendar: WorkCalendar, sim: Simulation
) -> None:
    catalog = load_catalog()
    server, dsn = _store_server(tmp_path / "ch", tmp_path / "store-server.log", tmp_path)
    try:
        with EmbeddedBroker(tmp_path / "tansu.log") as broker:
            outcome = asyncio.run(_scenario(tmp_path, broker, catalog, dsn, sim))
        _LOG.warning("two workers: %s", outcome)
        print(f"two workers: {outcome}")
        assert outcome["co_partitioned"], outcome
        assert outcome["takeover_s"] < TAKEOVER_LIMIT_S, outcome
        assert outcome["stall"] < STALL_LIMIT_S, outcome

        engine = replay(sim.lines, registry, calendar)
        store = ClickHouseStore(connect(dsn))
        try:
            assert counter_mismatches(store, sim.truth) == []
            assert report_mismatches(store, engine, registry, PERIOD) == []
            assert store.count("dead_letters") == sim.invalid
            assert store.count("dossier_facts") == len(engine.dossiers)
        finally:
            store.close()
        result = reconcile({"DOSSIER_CLICKHOUSE_DSN": dsn}, tmp_path, "2024-10")
        assert result["summary"]["differences"] == 0, result["differences"][:20]
    finally:
        server.terminate()
        assert server.wait(60) == 0


async def _scenario(
    tmp_path: Path, broker: EmbeddedBroker, catalog: TopicCatalog, dsn: str, sim: Simulation
) -> dict[str, Any]:
    app_id = "two-workers-test"
    settings = Settings(bootstrap_servers=broker.bootstrap, app_id=app_id)
    await create_topics(settings, catalog)
    stats = await produce_lines(settings, catalog, sim.lines, source="two-workers-test")
    inputs = {t: n for t, n in stats.per_topic.items() if t != catalog.deadletter.name}
    ends = await partition_ends(broker.bootstrap, list(inputs))

    def worker(name: str) -> WorkerProcess:
        env = {
            "DOSSIER_BOOTSTRAP_SERVERS": broker.bootstrap,
            "DOSSIER_CLICKHOUSE_DSN": dsn,
            "DOSSIER_APP_ID": app_id,
            "DOSSIER_DATA_DIR": str(tmp_path / f"data-{name}"),
            "DOSSIER_METRICS_PORT": "0",
            "DOSSIER_METRICS_HOST": "127.0.0.1",
            "DOSSIER_LOG_LEVEL": "DEBUG",
            # batches of the old default: with 20.000 the two could be done before A is killed
            "DOSSIER_BATCH_SIZE": "2000",
        }
        return WorkerProcess(env, tmp_path / f"worker-{name}.log", tmp_path)

    a, b = worker("a"), worker("b")
    try:
        return await _kill_one(a, b, broker, catalog, app_id, inputs, ends)
    finally:
        for w in (a, b):
            if w.alive:
                w.kill()


async def _kill_one(
    a: WorkerProcess,
    b: WorkerProcess,
    broker: EmbeddedBroker,
    catalog: TopicCatalog,
    app_id: str,
    inputs: dict[str, int],
    ends: dict[tuple[str, int], int],
) -> dict[str, Any]:
    every = {(t, p) for t, p in ends} | {(catalog.deadletter.name, 0)}
    every |= {(t.name, p) for t in catalog.topics if t.repartition for p in range(t.partitions)}
    a.start()
    await a.wait_line(lambda line: "partitions assigned:" in line, 120)
    b.start()
    # the group settles with the partitions split between the two
    split: dict[str, set[tuple[str, int]]] = {}
    deadline = time.monotonic() + 120
    while not (split.get("a") and split.get("b") and split["a"] | split["b"] == every):
        assert time.monotonic() < deadline, split
        for name, w in (("a", a), ("b", b)):
            for line in w.new_lines():
                if "partitions assigned:" in line:
                    split[name] = _assignment(line)
        await asyncio.sleep(0.05)
    co_partitioned = all(_co_partitioned(s, catalog) for s in split.values())
    assert not split["a"] & split["b"], split
    await a.wait_line(lambda line: "batching: flushed " in line, 60)  # A stores on its own
    await b.wait_line(lambda line: "batching: flushed " in line, 60)
    async with GroupWatch(broker.bootstrap, app_id, inputs, [catalog.deadletter.name]) as watch:
        # killed by progress, not after a fixed sleep: a fast machine may finish in seconds
        total, deadline = sum(inputs.values()), time.monotonic() + 120
        while sum((await watch.poll()).values()) < total // 4:
            assert time.monotonic() < deadline and a.alive and b.alive, watch.per_topic()
            await asyncio.sleep(0.1)
        a.kill()
        killed = time.monotonic()
        await watch.poll()
        assert not watch.done(), "nothing was left when A was killed"
        line = await b.wait_line(
            lambda line: "partitions assigned:" in line and _assignment(line) == every,
            TAKEOVER_LIMIT_S + 30,
        )
        takeover = time.monotonic() - killed
        assert _assignment(line) == every
        while not watch.done():
            assert time.monotonic() - killed < CATCH_UP_LIMIT_S, watch.per_topic()
            assert b.alive, b.tail()
            await watch.poll()
            watch.track_stalls(time.monotonic(), True, ends)
            await asyncio.sleep(0.5)
        catch_up = time.monotonic() - killed
        dead = catalog.deadletter.name
        dead_end = (await partition_ends(broker.bootstrap, [dead]))[(dead, 0)]
        while (await watch.poll()).get((dead, 0), 0) < dead_end:
            assert time.monotonic() - killed < CATCH_UP_LIMIT_S, watch.committed
            await asyncio.sleep(0.5)
        assert b.interrupt() == 0, b.tail()
    recovered = [line for line in b.log.read_text().splitlines() if "recovered " in line]
    return {
        "split": {k: len(v) for k, v in split.items()},
        "co_partitioned": co_partitioned,
        "takeover_s": round(takeover, 1),
        "catch_up_s": round(catch_up, 1),
        "stall": round(watch.longest_stall, 1),
        "stalled": watch.stalled,
        "b_recoveries_after_kill": len(recovered),
    }
