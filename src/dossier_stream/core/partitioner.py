"""The project's partitioner: which partition of a topic a key belongs to.

``produce`` publishes every event keyed by its key field (``dossier_id``,
``feedback_id`` or ``unit_code``) with this partitioner, and the worker uses
it to tell a correctly keyed message (it arrived on the partition its key
belongs to) from a mis-keyed one, which it re-publishes to the family's
repartition topic (:mod:`dossier_stream.stream.rekey`). It is Kafka's default
for keyed records, the Java client's (and aiokafka's, kafka-python's):
``murmur2(key) & 0x7fffffff`` modulo the partition count, on the key's UTF-8
bytes. Plain Python (about 2 µs for a dossier id), no Kafka client
imported, so the core can use it.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Final

__all__ = ["murmur2", "partition_for"]

_SEED: Final = 0x9747B28C
_M: Final = 0x5BD1E995
_MASK: Final = 0xFFFFFFFF
_WORDS: dict[int, Callable[[bytes], tuple[int, ...]]] = {}  # unpackers of n little-endian words


def murmur2(data: bytes) -> int:
    """MurmurHash2 of ``data`` as Kafka's Java client computes it (an unsigned 32-bit int)."""
    length = len(data)
    h = (_SEED ^ length) & _MASK
    words = length >> 2
    if words:
        unpack = _WORDS.get(words)
        if unpack is None:
            unpack = _WORDS[words] = struct.Struct(f"<{words}I").unpack_from
        for word in unpack(data):
            k = (word * _M) & _MASK
            k ^= k >> 24
            h = ((h * _M) & _MASK) ^ ((k * _M) & _MASK)
    end = words << 2
    extra = length & 3
    if extra >= 3:
        h ^= data[end + 2] << 16
    if extra >= 2:
        h ^= data[end + 1] << 8
    if extra >= 1:
        h ^= data[end]
        h = (h * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    h ^= h >> 15
    return h


def partition_for(key: str, partitions: int) -> int:
    """The partition of a topic with ``partitions`` partitions that ``key`` belongs to."""
    return (murmur2(key.encode()) & 0x7FFFFFFF) % partitions
