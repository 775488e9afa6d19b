"""The project's partitioner: which partition of a topic a key belongs to.

``produce`` publishes every event keyed by its key field (``dossier_id``,
``feedback_id`` or ``unit_code``) with this partitioner, and the worker uses
it to tell a correctly keyed message (it arrived on the partition its key
belongs to) from a mis-keyed one, which it re-publishes to the family's
repartition topic (:mod:`dossier_stream.stream.rekey`). It is Kafka's default
for keyed records, the Java client's (and aiokafka's, kafka-python's):
``murmur2(key) & 0x7fffffff`` modulo the partition count, on the key's UTF-8
bytes. Pure Python (compiled: ≈ 0,1 µs for a dossier id), no Kafka client
imported, so the core can use it. :class:`KeyOwner` is the worker's
re-keying check: the partition of an event's key, remembered per key.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from types import FunctionType
from typing import Any, Final

from mypy_extensions import i64

__all__ = ["KeyOwner", "murmur2", "murmur2_bytes", "murmur2_words", "partition_for"]

_SEED: Final = 0x9747B28C
_M: Final = 0x5BD1E995
_MASK: Final = 0xFFFFFFFF
_WORDS: dict[int, Callable[[bytes], tuple[int, ...]]] = {}  # unpackers of n little-endian words


def murmur2(data: bytes) -> int:
    """MurmurHash2 of ``data`` as Kafka's Java client computes it (an unsigned 32-bit int)."""
    if _NATIVE:
        return murmur2_bytes(data)
    return murmur2_words(data)


def murmur2_bytes(data: bytes) -> int:
    """:func:`murmur2` in native 64-bit integers, reading the words byte by byte.

    Compiled, it runs in C integers (≈ 60 ns for a 19-byte key, against ≈ 1,3 µs
    for :func:`murmur2_words`); every product is of two factors below 2**32 and
    2**31 (``_M``), so below 2**63: no ``i64`` overflows. Interpreted, it is the
    slower of the two (the words' unpacking is then one C call).
    """
    length: i64 = len(data)
    h: i64 = (_SEED ^ length) & _MASK
    end: i64 = length & -4
    i: i64 = 0
    while i < end:
        k: i64 = (
            i64(data[i])
            | (i64(data[i + 1]) << 8)
            | (i64(data[i + 2]) << 16)
            | (i64(data[i + 3]) << 24)
        )
        k = (k * _M) & _MASK
        k ^= k >> 24
        h = ((h * _M) & _MASK) ^ ((k * _M) & _MASK)
        i += 4
    extra: i64 = length & 3
    if extra >= 3:
        h ^= i64(data[end + 2]) << 16
    if extra >= 2:
        h ^= i64(data[end + 1]) << 8
    if extra >= 1:
        h ^= i64(data[end])
        h = (h * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    h ^= h >> 15
    return h


def murmur2_words(data: bytes) -> int:
    """:func:`murmur2` in Python integers, the words unpacked by :mod:`struct` (interpreted)."""
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


_NATIVE: Final = not isinstance(murmur2_bytes, FunctionType)
"""Whether this module runs compiled (mypyc): :func:`murmur2` then takes the native route."""


def partition_for(key: str, partitions: int) -> int:
    """The partition of a topic with ``partitions`` partitions that ``key`` belongs to."""
    return (murmur2(key.encode()) & 0x7FFFFFFF) % partitions


class KeyOwner:
    """``hasher(key(event), partitions)``, remembered for the last ``bound`` keys seen.

    The worker's re-keying check calls it once per message (a dossier's events
    hash once). A class of this compiled module, not a closure of the shell's,
    so that the compiled fold calls it in C (≈ 1.750 instructions per call for
    the closure it replaced).

    Args:
        key: the event's key (an attribute getter: ``dossier_id`` …).
        partitions: the partition count of the key's topics.
        bound: keys remembered; past it the memory is emptied at once (cheaper than an LRU).
        hasher: the partitioner (:func:`partition_for`; tests count its calls).
    """

    def __init__(
        self,
        key: Callable[[Any], str],
        partitions: int,
        *,
        bound: int = 1 << 16,
        hasher: Callable[[str, int], int] = partition_for,
    ) -> None:
        self.key = key
        self.partitions = partitions
        self.bound = bound
        self.hasher = hasher
        self.seen: dict[str, int] = {}

    def __call__(self, event: Any) -> int:
        """The partition ``event``'s key belongs to."""
        k = self.key(event)
        seen = self.seen
        p = seen.get(k)
        if p is None:
            if len(seen) >= self.bound:
                seen.clear()
            p = seen[k] = self.hasher(k, self.partitions)
        return p
