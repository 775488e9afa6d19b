"""The worker's fetches are bounded per partition (``DOSSIER_FETCH_MAX_KIB``), on the real broker.

A partition the aligner holds back keeps its fetched records until it is
read again; the embedded broker answers a fetch with up to ``fetch_max_bytes``
per partition and ignores ``max_partition_fetch_bytes``. These tests read the
size of a fetched buffer through aiokafka's public API: after a ``getmany`` of
one record, the fetcher fetches nothing more for that partition until its
buffer is taken, so the next ``getmany(timeout_ms=0)`` returns exactly the
rest of that buffer.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from dossier_stream.settings import Settings
from dossier_stream.stream.embedded import EmbeddedBroker
from dossier_stream.stream.ingest import consumer_options

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # `bench` is a top-level folder, not an installed package
    sys.path.insert(0, str(REPO))

from bench.memlog import fetched_bytes  # noqa: E402

pytestmark = pytest.mark.integration

TOPIC = "dossier.payments.v1"
RECORDS, SIZE = 12_000, 300
"""Records published to partition 0, and the bytes of each value (3,6 MB in all)."""


async def _publish(bootstrap: str) -> None:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    await producer.start()
    try:
        sent = [await producer.send(TOPIC, b"x" * SIZE, partition=0) for _ in range(RECORDS)]
        await asyncio.gather(*sent)
    finally:
        await producer.stop()


async def _buffers(options: dict[str, Any]) -> list[int]:
    """The records of each buffer fetched while the partition is read to its end."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    tp = TopicPartition(TOPIC, 0)
    consumer = AIOKafkaConsumer(**options)
    await consumer.start()
    try:
        consumer.assign([tp])
        sizes: list[int] = []
        read = 0
        while read < RECORDS:
            first = await consumer.getmany(tp, timeout_ms=10_000, max_records=1)
            assert first.get(tp), f"nothing fetched after {read} records"
            rest = await consumer.getmany(tp, timeout_ms=0)
            size = 1 + len(rest.get(tp, []))
            sizes.append(size)
            read += size
        assert read == RECORDS
        return sizes
    finally:
        await consumer.stop()


def _options(settings: Settings) -> dict[str, Any]:
    options = consumer_options(settings)
    options.pop("group_id")  # assigned by hand: no group
    return options


def test_worker_fetches_are_bounded_per_partition(
    broker: EmbeddedBroker, worker_settings: Callable[..., Settings]
) -> None:
    """64 KiB per fetch: no buffer holds more than that and one producer batch."""
    asyncio.run(_publish(broker.bootstrap))
    sizes = asyncio.run(_buffers(_options(worker_settings(fetch_max_kib=64))))
    # 64 KiB of values plus one producer batch (16 KiB) the broker does not split
    bound = (64 + 16) * 1024 // SIZE
    assert max(sizes) <= bound, sizes
    assert len(sizes) >= RECORDS * SIZE // (bound * SIZE)  # read in many fetches


def test_the_broker_ignores_the_per_partition_limit(
    broker: EmbeddedBroker, worker_settings: Callable[..., Settings]
) -> None:
    """Why the bound is ``fetch_max_bytes``: with only the per-partition limit, whole tiles come."""
    asyncio.run(_publish(broker.bootstrap))
    options = _options(worker_settings())
    del options["fetch_max_bytes"]  # aiokafka's default: 50 MiB per response
    options["max_partition_fetch_bytes"] = 64 * 1024
    sizes = asyncio.run(_buffers(options))
    assert max(sizes) > 4 * (64 + 16) * 1024 // SIZE, sizes


def test_memory_log_reads_the_fetched_buffers(
    broker: EmbeddedBroker, worker_settings: Callable[..., Settings]
) -> None:
    """``bench.memlog.fetched_bytes``: a buffer's bytes while it is held, nothing once dropped."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    asyncio.run(_publish(broker.bootstrap))
    options = _options(worker_settings(fetch_max_kib=64))

    async def read() -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]]:
        tp = TopicPartition(TOPIC, 0)
        consumer = AIOKafkaConsumer(**options)
        await consumer.start()
        try:
            consumer.assign([tp])
            worker = SimpleNamespace(app=SimpleNamespace(consumer=consumer))
            before = fetched_bytes(worker)
            await consumer.getmany(tp, timeout_ms=10_000, max_records=1)
            consumer.pause(tp)  # no further fetch: the buffer left is the one fetched
            held = fetched_bytes(worker)
            await consumer.getmany(tp, timeout_ms=0)  # paused: aiokafka drops its buffer
            return before, held, fetched_bytes(worker)
        finally:
            await consumer.stop()

    before, (held, buffers), after = asyncio.run(read())
    assert before == (0, 0)
    assert buffers == 1
    assert 64 * 1024 <= held <= (64 + 17) * 1024  # the bound, one batch over at most
    assert after == (0, 0)
    assert fetched_bytes(SimpleNamespace()) == (0, 0)  # no consumer (the Faust runtime)
