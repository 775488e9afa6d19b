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
                    headers = [("origin", b"producer"), ("code", b"unroutable"),
                               ("reason", b"unroutable"), ("source_topic", b"kafka-python"),
                               ("source_partition", b"0"), ("source_offset", str(i).encode())]  # fmt: skip
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
