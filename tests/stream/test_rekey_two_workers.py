"""Mis-keyed input, two workers, one killed halfway with SIGKILL: the same figures.

kafka-python publishes a simulated month with four producers' habits at
once — lz4 with random keys, zstd without keys, gzip keyed by unit code,
uncompressed keyed by dossier id — so most messages arrive on a partition
their key does not belong to. Two real ``dossier-stream worker`` processes
share a store (``store-server``) and split the partitions, re-publishing
mis-keyed messages to the repartition topics, whose partitions are split
the same way. A third of the month is there before the workers start; the
rest arrives as a live feed, in paced chunks, and worker A is killed with
SIGKILL halfway through that feed, while both process (a backlog alone can
be folded and committed before the kill on a fast machine). A's
uncommitted input and repartition messages are read again by B (some
re-published twice, absorbed by the fold). Once every input and
repartition partition is committed to its end, every (unit, day, counter)
equals the simulator's truth and the report equals the in-memory replay.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from dossier_stream.core.periods import monthly_report
from dossier_stream.core.registry import UnitRegistry
from dossier_stream.core.topics import load_catalog
from dossier_stream.core.workdays import WorkCalendar
from dossier_stream.settings import Settings
from dossier_stream.sim.simulate import SimConfig, Simulation, simulate
from dossier_stream.store.sink import ClickHouseStore, connect
from dossier_stream.stream.embedded import EmbeddedBroker
from dossier_stream.stream.runner import create_topics
from foreignproducer import publish
from streamharness import (
    CLI,
    GroupWatch,
    WorkerProcess,
    counter_mismatches,
    partition_ends,
    replay,
    report_mismatches,
)

pytestmark = pytest.mark.integration

PERIOD = monthly_report(2024, 10)
CELLS = [("lz4", "random"), ("zstd", "none"), ("gzip", "unit_code"), (None, "dossier_id")]
LIMIT_S = 300.0
FEED_CHUNKS = 24  # the live part of the month, published in this many paced chunks
FEED_PAUSE_S = 0.25


class _Feed(threading.Thread):
    """Publishes ``lines[start:]`` in paced chunks (kafka-python, the cells' habits)."""

    def __init__(self, bootstrap: str, sim: Simulation, cell_of: list[int], start: int) -> None:
        super().__init__(daemon=True)
        self.bootstrap, self.sim, self.cell_of, self.start_at = bootstrap, sim, cell_of, start
        self.chunks_sent = 0
        self.placed: list[tuple[str, int, int]] = []
        self.error: BaseException | None = None

    def run(self) -> None:
        catalog = load_catalog()
        lines, cells = self.sim.lines, self.cell_of
        step = -(-(len(lines) - self.start_at) // FEED_CHUNKS)
        try:
            for lo in range(self.start_at, len(lines), step):
                hi = min(lo + step, len(lines))
                sent = publish(self.bootstrap, catalog, lines[lo:hi], CELLS, cells[lo:hi])
                self.placed += sent.placed
                self.chunks_sent += 1
                time.sleep(FEED_PAUSE_S)
        except BaseException as exc:  # reported by the test, not lost in the thread
            self.error = exc


def _store_server(path: Path, log: Path, cwd: Path) -> tuple[subprocess.Popen[bytes], str]:
    proc = subprocess.Popen(
        [*CLI, "store-server", "--path", str(path), "--port", "0"],
        cwd=cwd,
        env={**os.environ, "DOSSIER_LOG_LEVEL": "INFO"},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=log.open("wb"),
        start_new_session=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().decode().strip()
    assert line.startswith("DOSSIER_CLICKHOUSE_DSN=http://"), (line, log.read_text())
    return proc, line.split("=", 1)[1]


def test_mis_keyed_input_survives_a_killed_worker(
    tmp_path: Path, registry: UnitRegistry, calendar: WorkCalendar
) -> None:
    sim: Simulation = simulate(
        SimConfig(period=PERIOD, seed=33, dossiers=10_000, feedback=300), registry, calendar
    )
    server, dsn = _store_server(tmp_path / "ch", tmp_path / "store-server.log", tmp_path)
    try:
        with EmbeddedBroker(tmp_path / "tansu.log") as broker:
            rerouted = asyncio.run(_scenario(tmp_path, broker.bootstrap, dsn, sim))
        store = ClickHouseStore(connect(dsn))
        try:
            assert counter_mismatches(store, sim.truth) == []
            engine = replay(sim.lines, registry, calendar)
            assert report_mismatches(store, engine, registry, PERIOD) == []
            assert store.count("dossier_facts") == len(engine.dossiers)
        finally:
            store.close()
        assert rerouted > len(sim.lines) // 2, rerouted  # most of the input went through them
    finally:
        server.terminate()
        assert server.wait(60) == 0


async def _scenario(tmp_path: Path, bootstrap: str, dsn: str, sim: Simulation) -> int:
    catalog = load_catalog()
    app_id = "rekey-two-workers"
    await create_topics(Settings(bootstrap_servers=bootstrap), catalog)
    cell_of = [i % len(CELLS) for i in range(len(sim.lines))]
    backlog = len(sim.lines) // 3
    sent = await asyncio.to_thread(
        publish, bootstrap, catalog, sim.lines[:backlog], CELLS, cell_of[:backlog]
    )
    feed = _Feed(bootstrap, sim, cell_of, backlog)
    dead = catalog.deadletter.name
    repartition = [t.name for t in catalog.topics if t.repartition]

    def worker(name: str) -> WorkerProcess:
        env = {
            "DOSSIER_BOOTSTRAP_SERVERS": bootstrap,
            "DOSSIER_CLICKHOUSE_DSN": dsn,
            "DOSSIER_APP_ID": app_id,
            "DOSSIER_DATA_DIR": str(tmp_path / f"data-{name}"),
            "DOSSIER_METRICS_PORT": "0",
            "DOSSIER_METRICS_HOST": "127.0.0.1",
            "DOSSIER_LOG_LEVEL": "DEBUG",
            "DOSSIER_BATCH_SIZE": "2000",  # small batches: the kill meets uncommitted input
        }
        return WorkerProcess(env, tmp_path / f"worker-{name}.log", tmp_path)

    a, b = worker("a"), worker("b")
    try:
        a.start()
        await a.wait_line(lambda line: "partitions assigned:" in line, 120)
        b.start()
        await b.wait_line(lambda line: "partitions assigned:" in line, 120)
        feed.start()
        await b.wait_line(lambda line: "batching: flushed " in line, 120)
        while feed.chunks_sent < FEED_CHUNKS // 2:  # both fold the live feed
            assert feed.is_alive() and feed.error is None, feed.error
            await asyncio.sleep(0.01)
        a.kill()
        killed = time.monotonic()
        assert feed.is_alive(), "the feed ended before the kill"
        await asyncio.to_thread(feed.join, LIMIT_S)
        assert feed.error is None and not feed.is_alive(), feed.error
        placed = sent.placed + feed.placed
        assert len(placed) == len(sim.lines)
        inputs = dict(Counter(topic for topic, _, _ in placed if topic != dead))
        async with GroupWatch(bootstrap, app_id, inputs, [dead, *repartition]) as watch:
            await watch.poll()
            while not watch.done():  # every input message committed
                assert time.monotonic() - killed < LIMIT_S, watch.per_topic()
                assert b.alive, b.tail()
                await asyncio.sleep(0.5)
                await watch.poll()
            # then every re-published message folded: the repartition topics committed to their ends
            ends = await partition_ends(bootstrap, [*repartition, dead])
            while any(watch.committed.get(tp, 0) < end for tp, end in ends.items()):
                assert time.monotonic() - killed < LIMIT_S, (ends, watch.committed)
                assert b.alive, b.tail()
                await asyncio.sleep(0.5)
                await watch.poll()
        assert b.interrupt() == 0, b.tail()
        # B took A's partitions over, the repartition topics' included
        last = [line for line in b.log.read_text().splitlines() if "partitions assigned:" in line]
        every = {f"{t}:{n}" for t in repartition for n in range(catalog.get(t).partitions)}
        assert len(last) >= 2 and every <= set(last[-1].split()), last
        return sum(end for (topic, _), end in ends.items() if topic != dead)
    finally:
        for w in (a, b):
            if w.alive:
                w.kill()
