"""Publishing JSON Lines to the catalog's topics (``produce``, the demo, the benchmarks).

Each line goes to the topic of its ``event_type``, keyed by the family's key
field, on the partition :func:`~dossier_stream.core.partitioner.partition_for`
gives its key (:func:`key_partitioner`); a line no topic carries goes to the
dead-letter topic with the reason in its headers.

The lines are packed into record batches here, one open batch per
partition, and handed to aiokafka whole (``send_batch``) instead of one
``send`` per line: a future, a task callback and the partitioner's metadata
look-ups per message cost about three times the packing itself. What the
broker receives is the same: the same keys on the same partitions in the
same order within each partition, in record batches of at most the
producer's batch size. Across partitions the lines are at most
:data:`CHUNK` lines apart, as before: every open batch is submitted and
acknowledged each :data:`CHUNK` lines (which is also when ``progress``
hears of them), and a rate-limited feed submits a batch at most
:data:`LINGER_S` after its first line, as aiokafka's ``linger_ms`` did.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Final

import orjson

from dossier_stream.core.partitioner import partition_for
from dossier_stream.core.topics import TopicCatalog
from dossier_stream.settings import Settings
from dossier_stream.store.deadletters import letter_id

__all__ = [
    "CHUNK",
    "COMPRESSION_CODECS",
    "LINGER_S",
    "START_TIMEOUT_S",
    "ProduceStats",
    "key_partitioner",
    "produce_lines",
    "start_client",
]

COMPRESSION_CODECS: Final = ("none", "gzip", "snappy", "lz4", "zstd")
"""The record-batch codecs ``produce`` writes and the worker reads (Kafka's standard set)."""
START_TIMEOUT_S = 15.0
"""Longest wait for a Kafka client's first connection (an address that never answers)."""
CHUNK: Final = 5000
"""Lines between two acknowledgements (every open batch is submitted and awaited)."""
LINGER_S: Final = 0.005
"""Longest a rate-limited line waits in an open batch before it is submitted."""
_KEY_FIELD: Final = {"dossier": "dossier_id", "feedback": "feedback_id", "unit": "unit_code"}
_MEMO_MAX: Final = 250_000  # keys whose partition is remembered (a dossier has several events)


async def start_client(client: Any, settings: Settings) -> None:
    """``client.start()``, failing with ``KafkaConnectionError`` after :data:`START_TIMEOUT_S`."""
    from aiokafka.errors import KafkaConnectionError  # noqa: PLC0415

    try:
        await asyncio.wait_for(client.start(), START_TIMEOUT_S)
    except TimeoutError:
        raise KafkaConnectionError(
            f"no answer from {settings.bootstrap_servers} within {START_TIMEOUT_S:g} s"
        ) from None


@dataclass(slots=True)
class ProduceStats:
    """What ``produce`` sent where."""

    sent: int = 0
    unroutable: int = 0
    per_topic: dict[str, int] = field(default_factory=dict)


def key_partitioner(key: bytes | None, all_partitions: list[int], available: list[int]) -> int:
    """``produce``'s partitioner (aiokafka's signature): :func:`partition_for` of the key.

    The worker tells correctly keyed messages with the same function. A line
    without a key (invalid: the worker dead-letters it) goes to a random partition.
    """
    if key is None:
        return random.choice(available or all_partitions)
    return all_partitions[partition_for(key.decode(), len(all_partitions))]


def _route(raw: bytes, catalog: TopicCatalog) -> tuple[str | None, str | None]:
    """Topic and key of a line, or ``(None, None)`` when no topic carries it."""
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None, None
    if not isinstance(obj, dict) or not isinstance(obj.get("event_type"), str):
        return None, None
    try:
        topic = catalog.topic_for(obj["event_type"])
    except KeyError:
        return None, None
    key = obj.get(_KEY_FIELD[topic.split(".", 1)[0]])
    return topic, key if isinstance(key, str) else None


class _Outbox:
    """The open record batches, one per partition, and those submitted but not acknowledged."""

    def __init__(self, producer: Any, progress: Callable[[int], object] | None) -> None:
        self.producer = producer
        self.progress = progress
        self.open: dict[tuple[str, int], Any] = {}  # (topic, partition) -> BatchBuilder
        self.opened: float | None = None  # when the oldest open batch got its first line
        self.lines = 0  # lines since the last acknowledgement
        self.sent: list[asyncio.Future[Any]] = []
        self.partitions: dict[str, list[int]] = {}
        self.memo: dict[int, dict[str, int]] = {}  # partition count -> key -> partition

    async def partition(self, topic: str, key: str | None) -> int:
        """The partition of ``key`` on ``topic`` (as :func:`key_partitioner` chooses it)."""
        every = self.partitions.get(topic)
        if every is None:
            every = self.partitions[topic] = sorted(await self.producer.partitions_for(topic))
        if key is None:
            cluster = self.producer.client.cluster
            return key_partitioner(None, every, list(cluster.available_partitions_for_topic(topic)))
        memo = self.memo.setdefault(len(every), {})
        p = memo.get(key)
        if p is None:
            if len(memo) >= _MEMO_MAX:
                memo.clear()
            p = memo[key] = every[partition_for(key, len(every))]
        return p

    async def add(
        self, topic: str, partition: int, key: str | None, value: bytes, headers: Any = None
    ) -> None:
        """Append a line to its partition's open batch (submitting the batch when full)."""
        tp = (topic, partition)
        k = None if key is None else key.encode()
        headers = headers or []
        batch = self.open.get(tp)
        if batch is not None and batch.append(timestamp=None, key=k, value=value, headers=headers):
            self.lines += 1
            return
        if batch is not None:  # full
            await self._submit(tp)
        batch = self.open[tp] = self.producer.create_batch()
        if self.opened is None:
            self.opened = time.monotonic()
        batch.append(timestamp=None, key=k, value=value, headers=headers)  # always fits empty
        self.lines += 1

    async def _submit(self, tp: tuple[str, int]) -> None:
        batch = self.open.pop(tp)
        batch.close()  # sent now, not after aiokafka's linger
        self.sent.append(await self.producer.send_batch(batch, tp[0], partition=tp[1]))
        if not self.open:
            self.opened = None

    async def submit_all(self) -> None:
        """Submit every open batch."""
        for tp in list(self.open):
            await self._submit(tp)

    async def acknowledge(self) -> None:
        """Submit every open batch and wait until the broker has them all; report progress."""
        await self.submit_all()
        await asyncio.gather(*self.sent)
        self.sent = []
        if self.progress and self.lines:
            self.progress(self.lines)
        self.lines = 0

    async def pace(self, until: float) -> None:
        """Sleep until ``until`` (monotonic), submitting open batches that lingered enough."""
        while (now := time.monotonic()) < until:
            if self.opened is None:
                await asyncio.sleep(until - now)
            elif now >= self.opened + LINGER_S:
                await self.submit_all()
            else:
                await asyncio.sleep(min(until, self.opened + LINGER_S) - now)


async def produce_lines(
    settings: Settings,
    catalog: TopicCatalog,
    lines: Iterable[bytes],
    *,
    rate: float | None = None,
    source: str = "produce",
    progress: Callable[[int], object] | None = None,
    compression: str = "none",
) -> ProduceStats:
    """Publish JSONL lines to their topics by ``event_type``.

    A line whose ``event_type`` names a contract topic goes there even if it
    is otherwise invalid (the worker dead-letters it with its source offset);
    a line no topic carries goes straight to the dead-letter topic.

    Args:
        settings: broker settings.
        catalog: the topic catalog.
        lines: message values (any iterable: a simulated stream is sent as it is made).
        rate: at most this many messages per second (None: as fast as possible).
        source: a name recorded on dead letters of unroutable lines.
        progress: called with the number of lines the broker acknowledged since the last call.
        compression: the codec of the record batches (``none``, ``gzip``,
            ``snappy``, ``lz4``, ``zstd``; see :data:`COMPRESSION_CODECS`).
    """
    from aiokafka import AIOKafkaProducer  # noqa: PLC0415

    if compression not in COMPRESSION_CODECS:
        raise ValueError(f"unknown compression {compression!r}: one of {COMPRESSION_CODECS}")

    producer = AIOKafkaProducer(
        bootstrap_servers=settings.bootstrap_servers,
        partitioner=key_partitioner,
        linger_ms=5,
        max_batch_size=256 * 1024,
        max_request_size=2 * 1024 * 1024,
        compression_type=None if compression == "none" else compression,
        **settings.kafka_options(),
    )
    try:
        await start_client(producer, settings)
    except BaseException:
        await producer.stop()  # no "Unclosed AIOKafkaProducer" after a failed start
        raise
    stats = ProduceStats()
    per_topic = stats.per_topic
    dead = catalog.deadletter.name
    out = _Outbox(producer, progress)
    t0 = time.monotonic()
    try:
        for n, raw in enumerate(lines, start=1):
            topic, key = _route(raw, catalog)
            if topic is None:
                stats.unroutable += 1
                headers = [
                    ("id", letter_id("produce", source, n, raw).encode()),
                    ("reason", b"unroutable"), ("code", b"unroutable"),
                    ("detail", b"no topic carries this line's event_type"),
                    ("source_topic", source.encode()), ("source_partition", b"0"),
                    ("source_offset", str(n).encode()), ("origin", b"producer"),
                ]  # fmt: skip
                await out.add(dead, await out.partition(dead, None), None, raw, headers)
                topic = dead
            else:
                await out.add(topic, await out.partition(topic, key), key, raw)
            per_topic[topic] = per_topic.get(topic, 0) + 1
            if out.lines >= CHUNK:
                await out.acknowledge()
            if rate:
                await out.pace(t0 + n / rate)
        stats.sent = sum(per_topic.values())
        await out.acknowledge()
    finally:
        await producer.stop()
    return stats
