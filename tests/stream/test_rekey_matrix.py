"""Exact figures whatever the upstream producer does: another client, any key, any codec.

One embedded broker; the events of a simulated month are published with
kafka-python (not aiokafka: its own protocol code, partitioner and codecs)
as 20 producers' worth of traffic, every (codec, key strategy) cell of
{none, gzip, snappy, lz4, zstd} x {dossier_id, none, unit_code, random}
carrying its share of the lines (line ``i`` goes to cell ``i % 20``, so one
dossier's events cross several cells, codecs and partitions). One worker
run folds them all, in each runtime (batch, then Faust). Then every
numerator and denominator of the report read from ClickHouse equals the
in-memory replay of the same lines, every message was folded once
(``events_in``), and the messages re-routed per topic are exactly those
that kafka-python put on a partition their key does not belong to - none of
the ``dossier_id`` cells (kafka-python's murmur2 is the project's
partitioner) - and the rerouted metric says the same.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from dossier_stream.core.engine import DeadLetter, Engine
from dossier_stream.core.partitioner import partition_for
from dossier_stream.core.registry import UnitRegistry
from dossier_stream.core.topics import TopicCatalog, load_catalog
from dossier_stream.core.workdays import WorkCalendar
from dossier_stream.settings import Settings
from dossier_stream.sim.simulate import SimConfig, Simulation, simulate
from dossier_stream.stream.embedded import EmbeddedBroker
from dossier_stream.stream.runner import Worker, create_topics, open_store
from foreignproducer import CODECS, KEYS, Sent, publish
from streamharness import replay, report_mismatches

pytestmark = pytest.mark.integration

CELLS = [(codec, key) for codec in CODECS for key in KEYS]


@pytest.fixture(scope="module")
def sim(registry: UnitRegistry, calendar: WorkCalendar) -> Simulation:
    from dossier_stream.core.periods import monthly_report

    config = SimConfig(
        period=monthly_report(2024, 10), seed=12, dossiers=2_500, feedback=200, invalid_rate=0.005
    )
    return simulate(config, registry, calendar)


def expected_rerouted(
    sent: Sent, lines: list[bytes], catalog: TopicCatalog, partitions: dict[str, int],
    registry: UnitRegistry, calendar: WorkCalendar,
) -> Counter[str]:  # fmt: skip
    """Per topic: the valid messages kafka-python put off the partition their key owns."""
    engine = Engine(registry, calendar, catalog=catalog)
    out: Counter[str] = Counter()
    for topic, partition, i in sent.placed:
        if topic == catalog.deadletter.name:
            continue
        event = engine.parse(lines[i], topic=topic)
        if isinstance(event, DeadLetter):
            continue
        key = getattr(event, catalog.get(topic).key)
        if partition_for(key, partitions[topic]) != partition:
            out[topic] += 1
    return out


@pytest.mark.parametrize("runtime", ["batch", "faust"])
def test_every_codec_and_key_strategy_gives_the_replayed_figures(
    runtime: str,
    worker_settings: Callable[..., Settings],
    broker: EmbeddedBroker,
    sim: Simulation,
    registry: UnitRegistry,
    calendar: WorkCalendar,
) -> None:
    from dossier_stream.core.periods import monthly_report

    catalog = load_catalog()
    lines = sim.lines
    cell_of = [i % len(CELLS) for i in range(len(lines))]
    settings = worker_settings(app_id="rekey-matrix", runtime=runtime)
    store = open_store(settings)

    async def scenario() -> tuple[Worker, Sent]:
        await create_topics(settings, catalog)
        sent = await asyncio.to_thread(publish, broker.bootstrap, catalog, lines, CELLS, cell_of)
        worker = Worker(settings, catalog, registry, calendar, store)
        await worker.start()
        try:
            assert await worker.wait_for(len(lines), timeout=240), worker.processor.stats
        finally:
            await worker.stop()
        return worker, sent

    try:
        worker, sent = asyncio.run(scenario())
        partitions = {t.name: t.partitions for t in catalog.topics}
        want = expected_rerouted(sent, lines, catalog, partitions, registry, calendar)
        stats = worker.processor.stats
        mismatches = report_mismatches(
            store, replay(lines, registry, calendar), registry, monthly_report(2024, 10)
        )
    finally:
        store.close()

    # every cell was really exercised: each (codec, key) published its share
    per_cell = Counter(CELLS[cell_of[i]] for _, _, i in sent.placed)
    assert set(per_cell) == set(CELLS) and min(per_cell.values()) > 100
    assert mismatches == []
    assert stats.events_in == len(lines)
    assert stats.deadletter == sim.invalid
    assert stats.rerouted_by_topic == dict(want)
    assert sum(want.values()) > len(lines) // 2  # most of the traffic was mis-keyed
    # kafka-python keyed by dossier_id lands where the project's partitioner says: no re-route
    keyed = {i for i, c in enumerate(cell_of) if CELLS[c][1] == "dossier_id"}
    engine = Engine(registry, calendar, catalog=catalog)
    for topic, partition, i in sent.placed:
        if i in keyed and topic.startswith("dossier.") and topic != catalog.deadletter.name:
            event = engine.parse(lines[i], topic=topic)
            if not isinstance(event, DeadLetter):
                assert partition_for(event.dossier_id, partitions[topic]) == partition
    metric = {
        s.labels["topic"]: s.value
        for family in worker.metrics.registry.collect()
        if family.name == "dossier_stream_rerouted"
        for s in family.samples
        if s.name.endswith("_total")
    }
    assert metric == {topic: float(n) for topic, n in want.items()}


@pytest.mark.parametrize("runtime", ["batch", "faust"])
def test_a_worker_without_repartition_topics_refuses_to_start(
    tmp_path: Path, broker: EmbeddedBroker, runtime: str
) -> None:
    """Topics created before the repartition topics existed: the worker says what to run."""
    import os
    import subprocess

    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    from streamharness import CLI

    catalog = load_catalog()

    async def old_topics() -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap)
        await admin.start()
        try:
            await admin.create_topics(
                [NewTopic(t.name, t.partitions, 1) for t in catalog.topics if not t.repartition]
            )
        finally:
            await admin.close()

    asyncio.run(old_topics())
    env = {
        **os.environ,
        "DOSSIER_BOOTSTRAP_SERVERS": broker.bootstrap,
        "DOSSIER_CLICKHOUSE_DSN": f"chdb://{tmp_path / 'ch'}",
        "DOSSIER_DATA_DIR": str(tmp_path / "data"),
        "DOSSIER_METRICS_PORT": "0",
        "DOSSIER_RUNTIME": runtime,
    }
    proc = subprocess.run(
        [*CLI, "worker"], cwd=tmp_path, env=env, capture_output=True, timeout=120, check=False
    )
    err = proc.stderr.decode()
    assert proc.returncode != 0
    assert "dossier.repartition.v1" in err and "do not exist" in err, err[-2000:]
    assert "topics create" in err and "Traceback" not in err
    assert "Traceback" not in err
