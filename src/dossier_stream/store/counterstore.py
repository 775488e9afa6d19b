"""A counter store on disk: RocksDB behind a bounded write-back cache of recent totals.

An :class:`~dossier_stream.core.engine.Engine` keeps the absolute total of
every ``(unit_code, day, counter)`` its source ever touched: in a ``dict``
that is about 116 B per key, and a backfill adds keys for every day it
crosses (≈ 134.000 per 300.000 events of the bench's tiled month), so the
worker's memory grew with its input. :class:`CounterStore` is a
``MutableMapping[CounterKey, int]`` the engine takes as its ``counters`` in
place of that ``dict``: every total lives in RocksDB (a key of ~30 bytes,
an 8-byte value), and memory holds only the totals read or written since
the last :meth:`CounterStore.trim`, at most ``cache_entries`` of them after it.

A batch needs only the totals of the keys it touches: the fold adds its
delta to a total (:meth:`~CounterStore.accumulate`, which
:func:`~dossier_stream.core.counters.accumulate` calls), all in the cache (a
plain ``dict`` in recency order: an added-to total is taken out and put
back at its end; the processor calls :meth:`~CounterStore.trim` once per
batch). A total not in the cache is read
from RocksDB, exactly as it was last written; an absent key is remembered
as 0. Most misses are keys of a new day, which RocksDB cannot hold: the
store keeps a :class:`~dossier_stream.store.keyfilter.DayFilters` of every
key it wrote (the days it ever wrote, and a Bloom filter per day, the least
recently written days' filters dropped beyond ``DOSSIER_KEY_FILTER_MIB``), so
a key of a day never written is answered without a look-up, and so is a new
key of a day already written (the bench's tiled months overlap in days:
324.000 such reads per 300.000 events) is answered without one too.
:meth:`~CounterStore.trim` writes the oldest entries beyond the cap to
RocksDB in one ``WriteBatch`` and drops them (a 0 is a delete: a counter
that reaches 0 is absent, as in the ``dict`` the engine keeps otherwise, where
:func:`~dossier_stream.core.counters.accumulate` drops it). Entries
are dropped least recently added to first (a ``get`` does not reorder):
dropping them in the order they entered the cache instead dropped totals
still in use, which the next batch read back from RocksDB. Every entry is
written when it leaves (it was read to be written, nearly always), so no
dirty set is kept.

Like the dossier store, it is a cache of ClickHouse rebuilt on every start
(the processor's recovery recomputes the counters from the stored states),
so RocksDB runs without write-ahead log or sync, and :func:`open_counter_store`
clears what an earlier run left.

Setting a key to 0 removes it; ``len()`` and iteration first write the
cache to RocksDB, then walk it (O(number of keys): recovery and the live
figures' loading of a source use them, not the fold).
"""

from __future__ import annotations

import itertools
import shutil
from collections.abc import Iterator, Mapping, MutableMapping
from datetime import date
from pathlib import Path
from typing import Final, TypeVar, cast, overload

from rocksdict import Rdict, WriteBatch

from dossier_stream.core.counters import CounterKey
from dossier_stream.store.keyfilter import DayFilters
from dossier_stream.store.statestore import RocksTuning, open_rocks, store_directory

__all__ = ["DEFAULT_COUNTER_CACHE", "CounterStore", "open_counter_store"]

DEFAULT_COUNTER_CACHE: Final = 10_000
"""Totals kept in memory after a trim, per source: about 1,2 MB (≈ 120 B each).

A batch of 20.000 messages over six dossier partitions touches some 3.000-4.000
keys per source (about one new key per event in the bench's tiled month).
"""

COUNTER_TUNING: Final = RocksTuning(write_buffer_bytes=4 << 20)
"""Counter rows are small: a 4 MiB memtable holds some 70.000 of them."""

_SEP: Final = "\x1f"  # unit separator: never in a unit code or a counter name
_T = TypeVar("_T")


def _encode(key: CounterKey) -> bytes:
    unit, day, name = key
    return f"{unit}{_SEP}{day.toordinal()}{_SEP}{name}".encode()


def _decode(raw: bytes) -> CounterKey:
    unit, ordinal, name = raw.decode().split(_SEP)
    return unit, date.fromordinal(int(ordinal)), name


def _value(raw: bytes) -> int:
    return int.from_bytes(raw, "little", signed=True)


def _raw(value: int) -> bytes:
    return value.to_bytes(8, "little", signed=True)


class CounterStore(MutableMapping[CounterKey, int]):
    """Counter totals by ``(unit_code, day, counter)`` in RocksDB, recent ones in a ``dict``.

    Args:
        path: the RocksDB directory (created if missing; what it holds is kept).
        cache_entries: totals kept in memory after :meth:`trim` (at least 1).
        tuning: RocksDB settings (:data:`COUNTER_TUNING` if ``None``).
    """

    def __init__(
        self,
        path: Path | str,
        *,
        cache_entries: int = DEFAULT_COUNTER_CACHE,
        tuning: RocksTuning | None = None,
    ) -> None:
        if cache_entries < 1:
            raise ValueError(f"cache_entries must be at least 1, not {cache_entries}")
        self.path = Path(path)
        self.cache_entries = cache_entries
        self.tuning = tuning or COUNTER_TUNING
        self._db: Rdict = open_rocks(self.path, self.tuning)
        self._cache: dict[CounterKey, int] = {}  # 0: known absent (or deleted, not yet written)
        # every key ever written to RocksDB, by day: a key of a day never written is not
        # there, nor one its day's Bloom filter never saw
        self._written = DayFilters(max_bytes=self.tuning.key_filter_bytes)
        keys = map(_decode, cast("Iterator[bytes]", self._db.keys()))
        while chunk := list(itertools.islice(keys, 65_536)):
            self._written.update(chunk)
        self._closed = False

    # ------------------------------------------------------------ mapping
    @overload
    def get(self, key: CounterKey, /) -> int | None: ...
    @overload
    def get(self, key: CounterKey, default: int, /) -> int: ...
    @overload
    def get(self, key: CounterKey, default: _T, /) -> int | _T: ...
    def get(self, key: CounterKey, default: object = None, /) -> object:
        """The total of ``key``, or ``default`` when it is absent (0)."""
        value = self._cache.get(key)
        if value is None:
            value = self._load(key)
        return value if value else default

    def __getitem__(self, key: CounterKey) -> int:
        value = self._cache.get(key)
        if value is None:
            value = self._load(key)
        if not value:
            raise KeyError(key)
        return value

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, tuple):
            return False
        return bool(self.get(cast("CounterKey", key), 0))

    def __setitem__(self, key: CounterKey, value: int) -> None:
        self._cache[key] = value

    def accumulate(self, delta: Mapping[CounterKey, int]) -> None:
        """Add ``delta`` into the totals, as :func:`~dossier_stream.core.counters.accumulate`.

        That function calls this method of a store it is given. Each key
        added to moves to the recent end of the cache, so :meth:`trim` drops
        the totals least recently added to, not those that entered first and
        are still in use (which it would read back from RocksDB).
        """
        cache = self._cache
        pop = cache.pop
        for key, value in delta.items():
            total = pop(key, None)
            cache[key] = (self._read(key) if total is None else total) + value

    def __delitem__(self, key: CounterKey) -> None:
        if not self.get(key, 0):
            raise KeyError(key)
        self._cache[key] = 0

    def pop(self, key: CounterKey, default: object = None, /) -> object:  # type: ignore[override]
        """Remove ``key``; its total, or ``default`` when it was absent."""
        value = self.get(key, 0)
        if not value:
            return default
        self._cache[key] = 0
        return value

    def __len__(self) -> int:
        self.flush()
        keys = cast("Iterator[bytes]", self._db.keys())
        return sum(1 for _ in keys)

    def __iter__(self) -> Iterator[CounterKey]:
        self.flush()
        for raw in cast("Iterator[bytes]", self._db.keys()):
            yield _decode(raw)

    def items(self) -> Iterator[tuple[CounterKey, int]]:  # type: ignore[override]
        """``(key, total)`` pairs in RocksDB's key order (after writing the cache)."""
        self.flush()
        for raw, value in cast("Iterator[tuple[bytes, bytes]]", self._db.items()):
            yield _decode(raw), _value(value)

    def clear(self) -> None:
        """Remove every total."""
        self._cache.clear()
        self._written = DayFilters(max_bytes=self.tuning.key_filter_bytes)
        self._db.delete_range(b"", b"\xff")  # keys are UTF-8: none starts with 0xFF

    # ------------------------------------------------------------ cache
    def trim(self) -> int:
        """Write the oldest totals beyond ``cache_entries`` to RocksDB and drop them.

        Returns:
            How many left the cache.
        """
        excess = len(self._cache) - self.cache_entries
        if excess <= 0:
            return 0
        victims = list(itertools.islice(self._cache.items(), excess))
        self._write(victims)
        cache = self._cache
        for key, _ in victims:
            del cache[key]
        return excess

    def flush(self) -> int:
        """Write every cached total to RocksDB (they stay cached); returns how many."""
        entries = list(self._cache.items())
        for start in range(0, len(entries), 4096):
            self._write(entries[start : start + 4096])
        return len(entries)

    @property
    def cached(self) -> int:
        """Totals now in memory."""
        return len(self._cache)

    # ------------------------------------------------------------ lifetime
    def close(self) -> None:
        """Write the cache and close RocksDB (idempotent); the directory stays."""
        if not self._closed:
            self.flush()
            self._closed = True
            self._cache.clear()
            self._db.close()

    def destroy(self) -> None:
        """Close without writing the cache, and remove the directory."""
        self._cache.clear()
        self.close()
        shutil.rmtree(self.path, ignore_errors=True)

    def __repr__(self) -> str:
        return f"CounterStore({str(self.path)!r}, {len(self._cache)}/{self.cache_entries} cached)"

    # ------------------------------------------------------------ internals
    def _load(self, key: CounterKey) -> int:
        value = self._cache[key] = self._read(key)
        return value

    def _read(self, key: CounterKey) -> int:
        """The total RocksDB holds for ``key`` (0 if none), without caching it."""
        if key not in self._written:  # RocksDB cannot hold it
            return 0
        raw: bytes | None = self._db.get(_encode(key))
        return 0 if raw is None else _value(raw)

    def _write(self, entries: list[tuple[CounterKey, int]]) -> None:
        if not entries:
            return
        batch = WriteBatch(raw_mode=True)
        put, delete = batch.put, batch.delete
        kept: list[CounterKey] = []
        for key, value in entries:
            if value:
                put(_encode(key), _raw(value))
                kept.append(key)
            else:
                delete(_encode(key))
        # known before they are written: the filters never miss a key RocksDB holds
        self._written.update(kept)
        self._db.write(batch)  # the store's write options: no WAL, no sync


def open_counter_store(
    directory: Path,
    source: str,
    *,
    cache_entries: int = DEFAULT_COUNTER_CACHE,
    tuning: RocksTuning | None = None,
) -> CounterStore:
    """A fresh, empty counter store for one source, under ``directory``.

    Whatever an earlier run left in the source's directory is removed first
    (the store is a cache of ClickHouse, refilled by recovery on every start).

    Args:
        directory: where the stores of this worker live (created if missing).
        source: the source name (``dossier:3``); its store is
            ``counters-dossier-3`` there.
        cache_entries: totals kept in memory after a trim.
        tuning: RocksDB settings.
    """
    path = store_directory(directory, f"counters:{source}")
    if path.exists():
        shutil.rmtree(path)
    return CounterStore(path, cache_entries=cache_entries, tuning=tuning)
