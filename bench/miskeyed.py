"""A fully mis-keyed workload: every event on a partition its key does not belong to.

``python -m bench --mis-keyed`` publishes the workload with this instead of
``produce``: each event keeps its key (as a producer with another
partitioner, librdkafka's CRC32 for one, would send it) but goes to the
partition after the one the project's partitioner gives it, so the worker
re-publishes every event of a topic with more than one partition to its
repartition topic and folds it from there (``unit.reports.v1`` has one
partition: nothing can be off it). Lines that no topic carries go through
``produce`` as usual (to the dead-letter topic).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import orjson

from dossier_stream.core.partitioner import partition_for
from dossier_stream.core.topics import TopicCatalog
from dossier_stream.settings import Settings
from dossier_stream.stream.runner import ProduceStats, produce_lines

__all__ = ["produce_mis_keyed"]


def _placed(raw: bytes, catalog: TopicCatalog) -> tuple[str, str] | None:
    """The topic and key of a line, or ``None`` when ``produce`` would dead-letter it."""
    try:
        obj = orjson.loads(raw)
        topic = catalog.topic_for(obj["event_type"])
        key = obj[catalog.get(topic).key]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return None
    return (topic, key) if isinstance(key, str) else None


async def produce_mis_keyed(
    settings: Settings, catalog: TopicCatalog, lines: Sequence[bytes], *, source: str = "bench"
) -> ProduceStats:
    """Publish ``lines``, each valid one on the partition after its key's (see the module)."""
    from aiokafka import AIOKafkaProducer  # noqa: PLC0415

    producer = AIOKafkaProducer(
        bootstrap_servers=settings.bootstrap_servers,
        linger_ms=5,
        max_batch_size=256 * 1024,
        max_request_size=2 * 1024 * 1024,
        **settings.kafka_options(),
    )
    await producer.start()
    stats = ProduceStats()
    rest: list[bytes] = []
    try:
        counts: dict[str, int] = {}
        pending: list[asyncio.Future[Any]] = []
        for raw in lines:
            placed = _placed(raw, catalog)
            if placed is None:
                rest.append(raw)
                continue
            topic, key = placed
            n = counts.get(topic)
            if n is None:
                n = counts[topic] = len(await producer.partitions_for(topic))
            partition = (partition_for(key, n) + 1) % n
            pending.append(await producer.send(topic, raw, key=key.encode(), partition=partition))
            stats.sent += 1
            stats.per_topic[topic] = stats.per_topic.get(topic, 0) + 1
            if len(pending) >= 5000:
                await asyncio.gather(*pending)
                pending = []
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    if rest:
        more = await produce_lines(settings, catalog, rest, source=source)
        stats.sent += more.sent
        stats.unroutable += more.unroutable
        for topic, n in more.per_topic.items():
            stats.per_topic[topic] = stats.per_topic.get(topic, 0) + n
    return stats
