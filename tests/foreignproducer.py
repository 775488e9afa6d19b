"""A producer from another client library (kafka-python), keyed and compressed as asked.

Used by the re-keying tests: upstream systems are not ours, so their events
are published with kafka-python (its own protocol code, its own murmur2
partitioner, its own codecs), never with aiokafka or ``produce``. Each line
goes to the topic its ``event_type`` names (as ``produce`` routes it); lines
no topic carries go to the dead-letter topic with ``produce``'s headers.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field

import orjson

from dossier_stream.core.topics import TopicCatalog

CODECS = (None, "gzip", "snappy", "lz4", "zstd")
"""kafka-python's ``compression_type`` values (``None``: uncompressed)."""
KEYS = ("dossier_id", "none", "unit_code", "random")
"""How a producer keys: the contract's key field, no key, the unit code, random bytes."""
_KEY_FIELD = {"dossier": "dossier_id", "feedback": "feedback_id", "unit": "unit_code"}


@dataclass
class Sent:
    """Where each line went: ``(topic, partition, line index)`` in send order."""

    placed: list[tuple[str, int, int]] = field(default_factory=list)


def key_of(line: bytes, topic: str, strategy: str) -> bytes | None:
    """The key a producer with ``strategy`` gives ``line`` (on ``topic``)."""
    if strategy == "none":
        return None
    if strategy == "random":
        return os.urandom(8)
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(obj, dict):
        return None
    name = _KEY_FIELD[topic.split(".", 1)[0]] if strategy == "dossier_id" else "unit_code"
    value = obj.get(name)
    return value.encode() if isinstance(value, str) else None


def topic_of(line: bytes, catalog: TopicCatalog) -> str | None:
    """The contract topic of a line (by its ``event_type``), or ``None``."""
    try:
        obj = orjson.loads(line)
        return catalog.topic_for(obj["event_type"])
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return None


def publish(
    bootstrap: str,
    catalog: TopicCatalog,
    lines: Sequence[bytes],
    cells: Sequence[tuple[str | None, str]],
    cell_of: Sequence[int],
) -> Sent:
    """Publish ``lines`` with kafka-python, line ``i`` as cell ``cells[cell_of[i]]``.

    One ``KafkaProducer`` per codec; a cell is ``(codec, key strategy)``.
    Blocking (run it in a thread from async code).
    """
    from kafka import KafkaProducer

    sent = Sent()
    dead = catalog.deadletter.name
    for codec in {c for c, _ in cells}:
        producer = KafkaProducer(
            bootstrap_servers=bootstrap, compression_type=codec, linger_ms=5, acks=1
        )
        futures = []
        try:
            for i, line in enumerate(lines):
                cell_codec, strategy = cells[cell_of[i]]
                if cell_codec != codec:
                    continue
                topic = topic_of(line, catalog)
                if topic is None:
                    headers = [
                        ("origin", b"producer"),
                        ("code", b"unroutable"),
                        ("reason", b"unroutable"),
                        ("source_topic", b"kafka-python"),
                        ("source_partition", b"0"),
                        ("source_offset", str(i).encode()),
                    ]
                    futures.append((i, producer.send(dead, line, headers=headers)))
                else:
                    key = key_of(line, topic, strategy)
                    futures.append((i, producer.send(topic, line, key=key)))
            producer.flush()
            for i, future in futures:
                meta = future.get(timeout=60)
                sent.placed.append((meta.topic, meta.partition, i))
        finally:
            producer.close()
    return sent


def corrupt_batch(values: Sequence[bytes], kind: str) -> bytes:
    """A v2 record batch (kafka-python's encoder) that no consumer can decode.

    Args:
        values: the records' values.
        kind: ``crc`` (a wrong CRC-32C) or ``gzip`` (flagged gzip, payload not
            gzip, CRC right: the broker stores it, the consumer's codec fails).
    """
    import struct
    import time

    from kafka.record._crc32c import crc as crc32c
    from kafka.record.default_records import DefaultRecordBatchBuilder

    builder = DefaultRecordBatchBuilder(
        magic=2, compression_type=0, is_transactional=False, producer_id=-1,
        producer_epoch=-1, base_sequence=-1, batch_size=1 << 20,
    )  # fmt: skip
    now = int(time.time() * 1000)
    for i, value in enumerate(values):
        builder.append(i, timestamp=now, key=None, value=value, headers=[])
    buf = bytearray(builder.build())
    if kind == "gzip":  # attributes (bytes 21-22): codec bits 0-2 = 1
        (attributes,) = struct.unpack(">h", buf[21:23])
        buf[21:23] = struct.pack(">h", (attributes & ~7) | 1)
    crc = crc32c(bytes(buf[21:]))  # the CRC covers the attributes to the end
    buf[17:21] = struct.pack(">I", crc ^ 0xFF if kind == "crc" else crc)
    return bytes(buf)


async def send_raw_batch(bootstrap: str, topic: str, partition: int, batch: bytes) -> int:
    """Append ``batch`` as is to ``topic[partition]`` with a raw produce request; its offset."""
    from aiokafka.client import AIOKafkaClient
    from aiokafka.protocol.produce import ProduceRequest
    from aiokafka.structs import TopicPartition

    client = AIOKafkaClient(bootstrap_servers=bootstrap)
    await client.bootstrap()
    try:
        await client.force_metadata_update()
        node = client.cluster.leader_for_partition(TopicPartition(topic, partition))
        request = ProduceRequest(
            required_acks=1, timeout=10_000, topics=[(topic, [(partition, batch)])],
            transactional_id=None,
        )  # fmt: skip
        response = await client.send(node, request)
        (_, partitions) = response.topics[0]
        _, error, offset, *_ = partitions[0]
        assert error == 0, f"the broker refused the batch: error {error}"
        return int(offset)
    finally:
        await client.close()
