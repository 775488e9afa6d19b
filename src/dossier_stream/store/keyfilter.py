"""Which keys a RocksDB store may hold: a Bloom filter in memory, so most misses skip RocksDB.

The state and counter stores look up keys that are not there all the time:
a new dossier's first event reads its state, and a counter total a batch
touches for the first time is read before it is added to. On the bench's
tiled input (``python -m bench.flat``, see bench/README.md) a RocksDB read
that found nothing took 3-15 µs of wall time, more as the stores grew, and
the reads took 1 µs of wall per event at 300.000 events, 5-19 µs from
600.000 on. :class:`KeyFilter` answers most of them in memory first (for
about the CPU those reads cost: what it saves is the wall time).

It is a Bloom filter of Python's ``hash()`` of each key written: a key it
has never seen is answered "absent" for sure (no false negative: every key
written is added before the write), a key it has seen, or one whose hash
bits happen to collide, is looked up in RocksDB as before. So it changes
what a store costs, never what it answers. Keys deleted from RocksDB stay
in the filter (a look-up then finds nothing, as before).

It grows by layers: each holds ``capacity`` keys at about 10 bits each
(three probes: about 1,7 % false positives), and the next one is twice as
big, so a store of n keys keeps ≈ 1,25 bytes per key and checks
log2(n / capacity) + 1 layers. ``hash()`` of a ``str`` is salted per
process: the filter is rebuilt with its store on every start, never saved.

``max_bytes`` bounds it: once a new layer would take the filter past it,
no layer is added and the last one takes every further key, so its
false-positive rate rises with the keys (about 2,7 % at twice its
capacity, 21 % at five times): more look-ups go to RocksDB, whose own
Bloom filters answer them, and still none is answered wrongly.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from datetime import date
from typing import Final

__all__ = ["DayFilters", "KeyFilter"]

_BITS_PER_KEY: Final = 10
_FULL: Final = 1 << 62  # the capacity of a filter at its ``max_bytes``: it never grows again


class KeyFilter:
    """A growing Bloom filter of hashable keys (no false negatives; ~1,7 % false positives).

    Args:
        capacity: keys of the first layer; each further layer holds twice
            the previous one.
        keys: keys to add at once (the keys a store already holds).
        max_bytes: bound on the layers' bytes (the first layer is always
            made); ``0`` for none.
    """

    __slots__ = ("_bits", "_capacity", "_count", "_layers", "_mask", "_max_bytes")

    def __init__(
        self, capacity: int = 1 << 18, keys: Iterable[Hashable] = (), *, max_bytes: int = 0
    ) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, not {capacity}")
        if max_bytes < 0:
            raise ValueError(f"max_bytes must be at least 0, not {max_bytes}")
        self._max_bytes = max_bytes
        self._capacity = capacity // 2  # the first _grow doubles it
        self._count = self._capacity = max(self._capacity, 1)
        self._layers: list[tuple[bytearray, int]] = []
        self._bits = bytearray()
        self._mask = 0
        for key in keys:
            self.add(key)

    def _grow(self) -> None:
        capacity = self._capacity * 2
        size = 1 << max(6, (capacity * _BITS_PER_KEY - 1).bit_length())  # bits, a power of 2
        if self._layers and self._max_bytes and self.nbytes + (size >> 3) > self._max_bytes:
            self._capacity = _FULL  # at the bound: the last layer takes every further key
            return
        self._capacity = capacity
        self._bits, self._mask = bytearray(size >> 3), size - 1
        self._layers.append((self._bits, self._mask))
        self._count = 0

    def add(self, key: Hashable) -> None:
        """Remember ``key``: from now on it may be in the store."""
        self.update((key,))

    def update(self, keys: Iterable[Hashable]) -> None:
        """Remember every key of ``keys``: :meth:`add` for each, in one call."""
        bits, mask, count, capacity = self._bits, self._mask, self._count, self._capacity
        for key in keys:
            if count >= capacity:
                self._count = count
                self._grow()
                bits, mask, count, capacity = self._bits, self._mask, 0, self._capacity
            count += 1
            h = hash(key)
            step = (h >> 29) | 1
            i = h & mask
            bits[i >> 3] |= 1 << (i & 7)
            i = (i + step) & mask
            bits[i >> 3] |= 1 << (i & 7)
            i = (i + step) & mask
            bits[i >> 3] |= 1 << (i & 7)
        self._count = count

    def __contains__(self, key: object) -> bool:
        """``False`` if ``key`` was never added; ``True`` if it was (or a hash collides)."""
        h = hash(key)
        step = (h >> 29) | 1
        for bits, mask in self._layers:
            i = h & mask
            if not bits[i >> 3] & (1 << (i & 7)):
                continue
            i = (i + step) & mask
            if not bits[i >> 3] & (1 << (i & 7)):
                continue
            i = (i + step) & mask
            if bits[i >> 3] & (1 << (i & 7)):
                return True
        return False

    @property
    def nbytes(self) -> int:
        """Bytes of the filter's bit arrays."""
        return sum(len(bits) for bits, _ in self._layers)

    def __repr__(self) -> str:
        return f"KeyFilter({len(self._layers)} layers, {self.nbytes} bytes)"


_DAY_CAPACITY: Final = 2_048
"""Keys of a day's first layer (4 KiB): a source's counters of one day are about 1.700."""


class DayFilters:
    """A :class:`KeyFilter` per day for keys ``(unit, day, counter)``, the least recently
    written days dropped beyond a bound.

    The counter store's keys come in days, and it is asked about recent ones.
    One bounded filter for every key fills up as the store grows (its false
    positives rose to ≈ 15 % at 12 million events of the bench's input, ≈ 66 %
    at 30 million); a filter per day keeps each day's rate at its own, and
    beyond ``max_bytes`` the filters of the days least recently written are
    dropped. A key of a dropped day is "maybe" (the store reads RocksDB, as
    for a false positive), and that day never gets a filter again (it would
    miss the keys written before): so no key written is ever answered absent.

    Args:
        max_bytes: bound on the filters' bytes together (the day being
            written keeps its filter whatever its size); ``0`` for none.
    """

    __slots__ = ("_by_day", "_dropped", "_max_bytes", "_nbytes")

    def __init__(self, *, max_bytes: int = 0) -> None:
        if max_bytes < 0:
            raise ValueError(f"max_bytes must be at least 0, not {max_bytes}")
        self._max_bytes = max_bytes
        self._by_day: dict[date, KeyFilter] = {}  # least recently written first
        self._dropped: set[date] = set()
        self._nbytes = 0

    def update(self, keys: Iterable[tuple[str, date, str]]) -> None:
        """Remember every key: from now on it may be in the store."""
        days: dict[date, list[tuple[str, date, str]]] = {}
        for key in keys:
            days.setdefault(key[1], []).append(key)
        by_day, dropped = self._by_day, self._dropped
        for day, some in days.items():
            if day in dropped:
                continue
            f = by_day.pop(day, None)
            if f is None:
                f = KeyFilter(_DAY_CAPACITY)
                f.update(some)
                self._nbytes += f.nbytes
            else:
                before = f.nbytes
                f.update(some)
                self._nbytes += f.nbytes - before
            by_day[day] = f  # now the most recently written
        while self._max_bytes and self._nbytes > self._max_bytes and len(by_day) > 1:
            oldest = next(iter(by_day))
            self._nbytes -= by_day.pop(oldest).nbytes
            dropped.add(oldest)

    def __contains__(self, key: object) -> bool:
        """``False`` only if ``key`` was never added (a ``(unit, day, counter)`` tuple)."""
        if not isinstance(key, tuple):
            return False
        f = self._by_day.get(key[1])
        if f is None:
            return key[1] in self._dropped
        return key in f

    @property
    def nbytes(self) -> int:
        """Bytes of the days' bit arrays."""
        return self._nbytes

    @property
    def days(self) -> int:
        """Days with a filter (the dropped ones apart)."""
        return len(self._by_day)

    def __repr__(self) -> str:
        kept, dropped = len(self._by_day), len(self._dropped)
        return f"DayFilters({kept} days, {dropped} dropped, {self._nbytes} bytes)"
