"""Co-partitioned topics read in step (:mod:`dossier_stream.stream.align`), on the real broker.

Records are published with explicit timestamps to partition 0 of three
``dossier.*`` topics (one source, ``dossier:0``) so that the same span of
time takes very different numbers of bytes per topic — what makes a plain
consumer race through the small topics. A real aiokafka consumer then reads
them through an :class:`Aligner`, and every call is checked against what the
aligner promises: no partition of the source runs more than the bound (plus
one step of its records) ahead of a partition that still has records. A
caught-up, empty or paused partition never stalls the others, the aligner
never pauses anything itself, and the worker's figures stay exact when it
holds partitions back all the time.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest

from dossier_stream.core.periods import monthly_report
from dossier_stream.core.registry import UnitRegistry
from dossier_stream.core.topics import load_catalog
from dossier_stream.core.workdays import WorkCalendar
from dossier_stream.settings import Settings
from dossier_stream.sim.simulate import SimConfig, simulate
from dossier_stream.stream.align import HELD_BUFFER_BACKOFF_S, Aligner
from dossier_stream.stream.embedded import EmbeddedBroker
from dossier_stream.stream.processor import source_of
from dossier_stream.stream.runner import Worker, create_topics, open_store, produce_lines
from streamharness import replay, report_mismatches

pytestmark = pytest.mark.integration

T0 = 1_700_000_000_000
"""The first record timestamp (ms)."""
SMALL, BIG, THIRD = "dossier.payments.v1", "dossier.progress.v1", "dossier.submissions.v1"


async def _publish(bootstrap: str, topic: str, stamps: list[int], size: int) -> None:
    """One record per timestamp on ``topic``'s partition 0, each ``size`` bytes."""
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    await producer.start()
    try:
        sent = [
            await producer.send(topic, b"x" * size, partition=0, timestamp_ms=ts) for ts in stamps
        ]
        await asyncio.gather(*sent)
    finally:
        await producer.stop()


def _publish_kafka_python(bootstrap: str, topic: str, stamps: list[int], size: int) -> None:
    """:func:`_publish` with kafka-python, an independent client (blocking: run in a thread)."""
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, acks=1)
    try:
        sent = [producer.send(topic, b"x" * size, partition=0, timestamp_ms=ts) for ts in stamps]
        producer.flush()
        for future in sent:
            future.get(timeout=60)
    finally:
        producer.close()


async def _consumer(bootstrap: str, topics: list[str]) -> Any:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=100,
        max_partition_fetch_bytes=1024 * 1024,
    )
    await consumer.start()
    consumer.assign([TopicPartition(t, 0) for t in topics])
    return consumer


async def _read_all(
    source: Any, consumer: Any, stamps: dict[str, list[int]], *, timeout_s: float = 60.0
) -> list[int]:
    """Read every record of ``stamps``' topics (partition 0); the lead after each call.

    The lead: how far (ms) the newest record handed so far is ahead of the
    oldest record not handed yet (of any topic): 0 for a read in timestamp order.
    """
    newest = 0
    done: dict[str, int] = dict.fromkeys(stamps, 0)
    leads: list[int] = []
    deadline = time.monotonic() + timeout_s
    while any(done[t] < len(stamps[t]) for t in stamps):
        assert time.monotonic() < deadline, f"stalled at {done}"
        got = await source.getmany(timeout_ms=200, max_records=5_000)
        assert not consumer.paused()  # the aligner holds partitions back without pausing
        for tp, records in got.items():
            assert records[0].offset == done[tp.topic]  # nothing skipped, nothing twice
            done[tp.topic] = records[-1].offset + 1
            newest = max(newest, records[-1].timestamp)
        unread = [stamps[t][done[t]] for t in stamps if done[t] < len(stamps[t])]
        leads.append(max(0, newest - min(unread)) if unread and newest else 0)
    return leads


@pytest.mark.parametrize("big_client", ["aiokafka", "kafka-python"])
def test_skewed_topics_are_read_in_step(
    broker: EmbeddedBroker, worker_settings: Callable[..., Settings], big_client: str
) -> None:
    """The same minute in 6.000 small records and in 300 big ones: read side by side.

    The big topic is also published by kafka-python: the clocks are the record
    timestamps an upstream client wrote, not only those our own producer writes.
    """
    settings = worker_settings()
    small = [T0 + i * 10 for i in range(6_000)]  # 10 ms apart: 60 s
    big = [T0 + i * 200 for i in range(300)]  # 200 ms apart: 60 s, 10 times the bytes
    stamps = {SMALL: small, BIG: big}

    async def scenario(aligned: bool) -> tuple[list[int], int]:
        consumer = await _consumer(broker.bootstrap, [SMALL, BIG])
        aligner = Aligner(consumer, 1_000, source_of, step=20)
        if aligned:
            aligner.started()  # as the worker does once its consumer has started
            assert aligner.fetch_backoff_s == HELD_BUFFER_BACKOFF_S
        try:
            leads = await _read_all(aligner if aligned else consumer, consumer, stamps)
        finally:
            await consumer.stop()
        return leads, aligner.held_total

    async def publish() -> None:
        await create_topics(settings, load_catalog())
        await _publish(broker.bootstrap, SMALL, small, 100)
        if big_client == "aiokafka":
            await _publish(broker.bootstrap, BIG, big, 20_000)
        else:
            await asyncio.to_thread(_publish_kafka_python, broker.bootstrap, BIG, big, 20_000)

    asyncio.run(publish())
    plain, _ = asyncio.run(scenario(aligned=False))
    aligned, held = asyncio.run(scenario(aligned=True))
    # a step of 20 records is at most 20 × 200 ms = 4 s of the big topic's time
    assert max(aligned) <= 1_000 + 20 * 200, max(aligned)
    assert held > 0
    assert max(plain) > 20_000, max(plain)  # what the aligner prevents: a third of the span


def test_the_fetch_backoff_is_shortened_only_where_there_is_one() -> None:
    class Fetcher:
        _prefetch_backoff = 0.1  # aiokafka's default

    class Consumer:
        _fetcher = Fetcher()

    aligner = Aligner(Consumer(), 1_000, source_of)
    assert aligner.fetch_backoff_s is None  # not before the consumer has started
    aligner.started()
    assert aligner.fetch_backoff_s == HELD_BUFFER_BACKOFF_S == Consumer._fetcher._prefetch_backoff
    other = Aligner(object(), 1_000, source_of)  # a consumer without aiokafka's fetcher
    other.started()
    assert other.fetch_backoff_s is None


def test_a_caught_up_or_empty_partition_never_stalls_the_others(
    broker: EmbeddedBroker, worker_settings: Callable[..., Settings]
) -> None:
    """An old, short topic read to its end and an empty one hold nothing back."""
    settings = worker_settings()
    old = [T0 + i for i in range(10)]
    late = [T0 + 3_600_000 + i * 10 for i in range(2_000)]  # an hour later
    stamps = {SMALL: old, BIG: late, THIRD: []}

    async def scenario() -> tuple[float, int, list[int]]:
        await create_topics(settings, load_catalog())
        await _publish(broker.bootstrap, SMALL, old, 100)
        await _publish(broker.bootstrap, BIG, late, 100)
        consumer = await _consumer(broker.bootstrap, [SMALL, BIG, THIRD])
        aligner = Aligner(consumer, 1_000, source_of, step=50)
        try:
            started = time.monotonic()
            leads = await _read_all(aligner, consumer, stamps, timeout_s=30)
            return time.monotonic() - started, aligner.held_total, leads
        finally:
            await consumer.stop()

    took, held, leads = asyncio.run(scenario())
    assert leads[-1] == 0
    # 2.000 records, 50 a call: no wait behind the old topic once it is read (caught up)
    assert took < 10, took
    assert held <= 5, held  # held only while the old topic still had records


def test_a_paused_partition_is_no_floor(
    broker: EmbeddedBroker, worker_settings: Callable[..., Settings]
) -> None:
    """A partition the undecodable guard paused, records left, never holds its source."""
    from aiokafka import TopicPartition

    settings = worker_settings()
    old = [T0 + i for i in range(1_000)]
    late = [T0 + 3_600_000 + i for i in range(1_000)]

    async def scenario() -> tuple[int, int, int]:
        await create_topics(settings, load_catalog())
        await _publish(broker.bootstrap, SMALL, old, 100)
        await _publish(broker.bootstrap, BIG, late, 100)
        consumer = await _consumer(broker.bootstrap, [SMALL, BIG])
        aligner = Aligner(consumer, 1_000, source_of, step=100)
        read = {SMALL: 0, BIG: 0}
        try:
            while not read[SMALL] or not read[BIG]:  # both clocks known
                got = await aligner.getmany(timeout_ms=200, max_records=100)
                for tp, records in got.items():
                    read[tp.topic] += len(records)
            assert read[SMALL] < len(old)  # records left: a floor, were it not paused
            consumer.pause(TopicPartition(SMALL, 0))  # as the guard holds a bad batch
            deadline = time.monotonic() + 20
            while read[BIG] < len(late) and time.monotonic() < deadline:
                got = await aligner.getmany(timeout_ms=200, max_records=100)
                for tp, records in got.items():
                    read[tp.topic] += len(records)
            small_read = read[SMALL]
            consumer.resume(TopicPartition(SMALL, 0))  # and resumes it after its back-off
            while read[SMALL] < len(old) and time.monotonic() < deadline:
                got = await aligner.getmany(timeout_ms=200, max_records=100)
                for tp, records in got.items():
                    read[tp.topic] += len(records)
            return small_read, read[BIG], read[SMALL]
        finally:
            await consumer.stop()

    small_while_paused, big, small = asyncio.run(scenario())
    assert big == len(late)  # the paused one held nothing back
    assert small_while_paused < len(old)
    assert small == len(old)  # resumed by its owner, read to its end


def test_a_sought_partition_holds_nothing_until_read_again(
    broker: EmbeddedBroker, worker_settings: Callable[..., Settings]
) -> None:
    """Seeking (a rewound batch, the guard's restore) and a rebalance forget the clocks."""
    from aiokafka import TopicPartition

    settings = worker_settings()

    async def scenario() -> tuple[dict[Any, int], dict[Any, int], dict[Any, int]]:
        await create_topics(settings, load_catalog())
        await _publish(broker.bootstrap, SMALL, [T0 + i for i in range(100)], 100)
        await _publish(broker.bootstrap, BIG, [T0 + 3_600_000 + i for i in range(100)], 100)
        consumer = await _consumer(broker.bootstrap, [SMALL, BIG])
        aligner = Aligner(consumer, 1_000, source_of, step=10)
        try:
            while len(aligner.clocks) < 2:
                await aligner.getmany(timeout_ms=200, max_records=10)
            before = dict(aligner.clocks)
            aligner.seek(TopicPartition(BIG, 0), 0)
            after_seek = dict(aligner.clocks)
            aligner.forget()
            return before, after_seek, dict(aligner.clocks)
        finally:
            await consumer.stop()

    before, after_seek, after_forget = asyncio.run(scenario())
    assert set(before) == {TopicPartition(SMALL, 0), TopicPartition(BIG, 0)}
    assert set(after_seek) == {TopicPartition(SMALL, 0)}
    assert after_forget == {}


def test_figures_stay_exact_when_partitions_are_held_back_all_the_time(
    worker_settings: Callable[..., Settings],
    broker: EmbeddedBroker,
    registry: UnitRegistry,
    calendar: WorkCalendar,
) -> None:
    """The worker with a 1 ms bound (holds at every call) stores what a replay computes."""
    period = monthly_report(2024, 10)
    lines = simulate(SimConfig(period=period, seed=11, dossiers=600), registry, calendar).lines
    catalog = load_catalog()
    settings = worker_settings(app_id="align-test", align_ms=1)
    store = open_store(settings)

    async def scenario() -> Worker:
        await create_topics(settings, catalog)
        for start in range(0, len(lines), 500):  # published over time: timestamps apart
            await produce_lines(settings, catalog, lines[start : start + 500])
            await asyncio.sleep(0.02)
        worker = Worker(settings, catalog, registry, calendar, store)
        await worker.start()
        try:
            assert await worker.wait_for(len(lines), timeout=180), worker.processor.stats
        finally:
            await worker.stop()
        return worker

    try:
        worker = asyncio.run(scenario())
        mismatches = report_mismatches(store, replay(lines, registry, calendar), registry, period)
    finally:
        store.close()
    assert worker.processor.stats.events_in == len(lines)
    assert worker.app.aligner is not None and worker.app.aligner.held_total > 0
    assert mismatches == []
