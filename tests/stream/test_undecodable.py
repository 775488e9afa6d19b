"""A partition carrying a batch nobody can decode never stalls the others, and is not skipped.

On the embedded broker, events are published as ``produce`` does, then a
raw produce request (kafka-python's record-batch encoder, sent as is)
appends to ``dossier.payments.v1[0]`` a batch with a wrong CRC — or one
flagged gzip whose payload is not gzip (its CRC right, so the broker stores
it) — followed by more events on that partition. The worker counts every
event of every other partition and those of the bad partition before the
bad batch, holds the bad partition at the bad batch's offset (nothing after
it counted, nothing committed past it), says so once per back-off step in
its log with the topic, partition, offset and cause, keeps the partition's
lag above 0 and sets ``dossier_stream_partition_undecodable`` to 1, the
metric the ``DossierStreamPartitionUndecodable`` alert fires on (its
promtool test is in ``deploy/prometheus/rules_test.yml``).
"""

from __future__ import annotations

import asyncio
import logging
import re
from pathlib import Path

import orjson
import pytest

from dossier_stream.core.partitioner import partition_for
from dossier_stream.core.periods import monthly_report
from dossier_stream.core.registry import UnitRegistry
from dossier_stream.core.topics import load_catalog
from dossier_stream.core.workdays import WorkCalendar
from dossier_stream.settings import Settings
from dossier_stream.sim.simulate import SimConfig, simulate
from dossier_stream.stream.embedded import EmbeddedBroker
from dossier_stream.stream.runner import Worker, create_topics, open_store, produce_lines
from foreignproducer import corrupt_batch, send_raw_batch
from streamharness import replay, report_mismatches

pytestmark = pytest.mark.integration

BAD = ("dossier.payments.v1", 0)


def _sample(worker: Worker, name: str) -> dict[tuple[str, str], float]:
    return {
        (s.labels["topic"], s.labels["partition"]): s.value
        for family in worker.metrics.registry.collect()
        if family.name == name
        for s in family.samples
    }


@pytest.mark.parametrize("kind", ["crc", "gzip"])
def test_an_undecodable_batch_holds_its_partition_and_only_it(
    tmp_path: Path,
    broker: EmbeddedBroker,
    registry: UnitRegistry,
    calendar: WorkCalendar,
    caplog: pytest.LogCaptureFixture,
    kind: str,
) -> None:
    period = monthly_report(2024, 10)
    lines = simulate(SimConfig(period=period, seed=5, dossiers=800), registry, calendar).lines
    on_bad = [
        line
        for line in lines
        if b'"dossier.payment"' in line
        and partition_for(orjson.loads(line)["dossier_id"], 6) == BAD[1]
    ]
    assert len(on_bad) > 10
    catalog = load_catalog()
    settings = Settings(
        bootstrap_servers=broker.bootstrap,
        clickhouse_dsn=f"chdb://{tmp_path / 'ch'}",  # type: ignore[arg-type]
        data_dir=tmp_path / "data",
        app_id="undecodable-test",
        metrics_port=0,
        flush_retry_min_s=0.5,
        flush_retry_max_s=1.0,
    )
    store = open_store(settings)
    caplog.set_level(logging.ERROR, logger="dossier_stream.stream.holds")

    async def scenario() -> tuple[
        int, Worker, dict[tuple[str, str], float], dict[tuple[str, str], float], int
    ]:
        from aiokafka import AIOKafkaProducer
        from aiokafka.admin import AIOKafkaAdminClient
        from aiokafka.structs import TopicPartition

        await create_topics(settings, catalog)
        await produce_lines(settings, catalog, lines)
        bad_offset = await send_raw_batch(
            broker.bootstrap, *BAD, corrupt_batch([b"x1", b"x2", b"x3"], kind)
        )
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap)
        await producer.start()
        try:  # after the bad batch: events that must wait behind it
            for line in on_bad[:5]:
                await producer.send_and_wait(BAD[0], line, partition=BAD[1])
        finally:
            await producer.stop()
        worker = Worker(settings, catalog, registry, calendar, store)
        await worker.start()
        try:
            assert await worker.wait_for(len(lines), timeout=180), worker.processor.stats
            await asyncio.sleep(4)  # a few back-off steps: still held, nothing more counted
            await worker.refresh_metrics()
            lag = _sample(worker, "dossier_stream_consumer_lag_messages")
            held = _sample(worker, "dossier_stream_partition_undecodable")
            assert worker.app.held_partitions == {BAD: bad_offset}
        finally:
            await worker.stop()
        admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap)
        await admin.start()
        try:
            got = await admin.list_consumer_group_offsets(
                settings.app_id, partitions=[TopicPartition(*BAD)]
            )
        finally:
            await admin.close()
        return bad_offset, worker, lag, held, got[TopicPartition(*BAD)].offset

    try:
        bad_offset, worker, lag, held, committed = asyncio.run(scenario())
        mismatches = report_mismatches(store, replay(lines, registry, calendar), registry, period)
    finally:
        store.close()
    stats = worker.processor.stats
    assert stats.events_in == len(lines)  # every other event, none behind the bad batch
    assert mismatches == []
    assert bad_offset > 0 and committed == bad_offset  # held there, not skipped
    assert lag[(BAD[0], str(BAD[1]))] >= 5 + 1
    assert held == {(BAD[0], str(BAD[1])): 1.0}
    pattern = re.compile(rf"{re.escape(BAD[0])}:{BAD[1]} cannot be decoded at offset {bad_offset} ")
    steps = [r.getMessage() for r in caplog.records if pattern.search(r.getMessage())]
    assert len(steps) >= 2, steps  # once per back-off step, with what to do
    assert "nothing is skipped" in steps[0]
    assert ("CorruptRecordException" if kind == "crc" else "gzip") in steps[0].lower() or (
        "Corrupt" in steps[0]
    )
