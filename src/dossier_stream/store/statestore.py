"""A dossier state store on disk: RocksDB (rocksdict) behind a write-back LRU of decoded states.

:class:`DossierStore` is a ``MutableMapping[str, DossierState]`` that an
:class:`~dossier_stream.core.engine.Engine` takes as its ``dossiers`` store in
place of a ``dict``. A million open dossiers in a ``dict`` hold about
1,4 KB of Python objects each; here each one is a row of bytes in RocksDB
(:func:`~dossier_stream.store.codec.dumps_dossier`, ~260 B, lz4-compressed on
disk), and memory holds only

* the LRU of the most recently used decoded states (``cache_entries``),
  so the fold's ``get`` and ``set`` of one dossier, whose events arrive
  close together, rarely decode and rarely encode;
* RocksDB's memtables (``write_buffer_bytes`` each, two at most, and all
  the stores' together within ``memtable_budget_bytes``) and one block cache
  shared by every store of the process (``block_cache_bytes``).

The store is a *cache* of ``dossier_facts`` in ClickHouse, rebuilt on every
start (the processor's recovery), never trusted across restarts. So writes
skip RocksDB's write-ahead log and never sync, :func:`open_dossier_store`
clears whatever an earlier run left behind, and the LRU is *write-back*:

* a ``set`` only puts the state in the LRU and marks it dirty (no encoding);
  a key the LRU holds keeps its place there (recency is that of reads and
  of new keys: the fold's ``get`` of a key, just before its ``set``, moved
  it last already, and one move per event is enough);
* a dirty state is encoded and written to RocksDB when the LRU evicts it,
  the oldest few at a time in one ``WriteBatch`` (measured 1,1-1,8 against
  2,3-2,5 µs per row for single ``put`` calls), or on :meth:`DossierStore.flush`
  and :meth:`DossierStore.close`; a clean state (decoded from RocksDB and
  not set since) is simply dropped;
* a dossier's events, which arrive close together, thus cost one encode
  for the whole burst instead of one per event; a crash loses the dirty
  states, as it loses the rest of the store, and recovery rebuilds them.

Every live key is in the LRU, in RocksDB, or both, and the LRU's state is
the latest (RocksDB may hold an older one of a dirty key), so a read always
sees the latest write. ``len()`` is a kept count, O(1): a ``set`` of a key
not in the LRU checks RocksDB once, unless the store's
:class:`~dossier_stream.store.keyfilter.KeyFilter` of the keys it ever wrote
says it cannot be there (most new dossiers), or the ``get`` just before
found it nowhere (the fold's ``get`` then
``set`` of a new dossier needs no second look-up). Iteration first flushes
the dirty states, then walks RocksDB in key order, so no key comes twice.

Measured (``python -m bench --scenarios open-dossiers``, ``python -m
bench.store_ops``, CPU time on a shared 2-core machine): a million open
dossiers take 94 B of RSS each here against 1.377 B in a ``dict``. The
fold's ``get`` + ``set`` of a dossier in the LRU costs about 0,5-1 µs (it was
7,5-10,7 µs when every ``set`` encoded and wrote through; a ``dict``: 0,2 µs);
over a stream with 6 events per dossier, 1,0-1,6 µs per event (5-6 µs
before). A dossier pays one encode (~3 µs) and one batched write when it
leaves the LRU, so a new dossier's first fold (~7 µs) and a fold that misses
the LRU (33-45 µs, mostly :func:`~dossier_stream.store.codec.loads_dossier`, ~12-25
µs, and the RocksDB get, ~7 µs) cost what they did before.

Example::

    store = open_dossier_store(Path("/var/cache/dossier-stream"), "dossier:3")
    engine = Engine(registry, calendar, dossiers=store)
    ...
    store.destroy()  # when the partition is revoked
"""

from __future__ import annotations

import functools
import itertools
import re
import shutil
from collections import OrderedDict
from collections.abc import ItemsView, Iterator, MutableMapping, ValuesView
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Final, TypeVar, cast, overload

from dossier_stream.core.lifecycle import DossierState
from dossier_stream.store.codec import dumps_dossier, loads_dossier
from dossier_stream.store.keyfilter import KeyFilter

try:
    from rocksdict import (
        BlockBasedIndexType,
        BlockBasedOptions,
        Cache,
        DBCompactionStyle,
        DBCompressionType,
        Options,
        Rdict,
        ReadOptions,
        WriteBatch,
        WriteBufferManager,
        WriteOptions,
    )
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "dossier_stream.store.statestore needs the 'rocksdict' package (RocksDB for Python): "
        "`pip install rocksdict`, or reinstall dossier-stream, which depends on it"
    ) from exc

__all__ = [
    "DEFAULT_CACHE_ENTRIES",
    "FLUSH_BATCH",
    "DossierStore",
    "RocksTuning",
    "open_dossier_store",
    "open_rocks",
    "rocks_options",
    "rocks_read_options",
    "rocks_write_options",
    "shared_block_cache",
    "store_directory",
]

DEFAULT_CACHE_ENTRIES: Final = 10_000
"""Decoded states kept in the LRU: about 13 MB (≈ 1,3 KB each); ``DOSSIER_STATE_CACHE_ENTRIES``."""

_EVICT_GROUP: Final = 64
"""Most states evicted at once (their dirty ones in one ``WriteBatch``)."""
FLUSH_BATCH: Final = 1_024
"""Rows per ``WriteBatch`` of :meth:`DossierStore.flush` by default (bounds its bytes)."""

_T = TypeVar("_T")
_MIB: Final = 1 << 20
_UNSAFE: Final = re.compile(r"[^A-Za-z0-9_.-]")
# No UTF-8 string starts with (or contains) the byte 0xFF, so [b"", b"\xff")
# covers every key the store can hold.
_ALL_KEYS_END: Final = b"\xff"


@dataclass(frozen=True, slots=True)
class RocksTuning:
    """RocksDB settings of a :class:`DossierStore` (the defaults are measured, see bench/).

    Attributes:
        block_cache_bytes: LRU block cache for reads, shared by every store
            of the process made with the same size.
        write_buffer_bytes: size of one memtable; at most two per store.
        compression: ``"lz4"``, ``"zstd"``, ``"snappy"`` or ``"none"``.
        bloom_bits_per_key: full bloom filter bits per key (point gets and
            existence checks of new dossiers skip the data blocks).
        max_open_files: bound on the table files RocksDB keeps open.
        background_jobs: flush and compaction threads.
        memtable_budget_bytes: the memtables of every store of the process
            made with the same budget together (one RocksDB write buffer
            manager): past it, the store being written flushes its
            memtable. Without it each store may hold two full memtables,
            and a worker has one or two stores per source.
        compaction: ``"universal"`` (each row rewritten a few times as the
            store grows) or ``"level"`` (RocksDB's default: a store below
            its first level's size keeps everything in its last level and
            rewrites it at every compaction, about twice the CPU from 6
            million events on; bench/README).
        index_in_cache: index and filter blocks inside the block cache,
            charged to ``block_cache_bytes`` (partitioned: a two-level
            index and partitioned filters, whose top levels and level 0's
            blocks stay pinned), so the table readers' memory is bounded
            by the cache instead of growing with the keys (≈ 3,5 MB per
            million keys outside it).
        key_filter_bytes: most bytes of a store's in-memory
            :class:`~dossier_stream.store.keyfilter.KeyFilter`; past it the
            filter stops growing and answers "maybe" more often (never
            wrongly), ``0`` for no bound.
    """

    block_cache_bytes: int = 16 * _MIB
    write_buffer_bytes: int = 16 * _MIB
    compression: str = "lz4"
    bloom_bits_per_key: int = 10
    max_open_files: int = 256
    background_jobs: int = 2
    memtable_budget_bytes: int = 64 * _MIB
    compaction: str = "universal"
    index_in_cache: bool = True
    key_filter_bytes: int = 0


@functools.lru_cache(maxsize=8)
def shared_block_cache(capacity: int) -> Cache:
    """One block cache per size per process, shared by the stores that use it."""
    return Cache(capacity)


@functools.lru_cache(maxsize=8)
def _write_buffer_manager(budget: int) -> WriteBufferManager:
    """One write buffer manager per budget per process, shared by the stores that use it."""
    return WriteBufferManager(budget, False)  # flush past the budget, never stall writers


def _compression(name: str) -> DBCompressionType:
    kinds = {
        "lz4": DBCompressionType.lz4,
        "zstd": DBCompressionType.zstd,
        "snappy": DBCompressionType.snappy,
        "none": DBCompressionType.none,
    }
    if name not in kinds:
        raise ValueError(f"unknown compression {name!r}; one of {sorted(kinds)}")
    return kinds[name]()


def rocks_options(tuning: RocksTuning) -> Options:
    """RocksDB options for a rebuildable cache of byte keys and byte values."""
    opts = Options(raw_mode=True)  # keys and values are plain bytes, no type tags
    opts.create_if_missing(True)
    opts.set_max_open_files(tuning.max_open_files)
    opts.set_max_background_jobs(tuning.background_jobs)
    opts.set_write_buffer_size(tuning.write_buffer_bytes)
    opts.set_max_write_buffer_number(2)
    opts.set_write_buffer_manager(_write_buffer_manager(tuning.memtable_budget_bytes))
    opts.set_compression_type(_compression(tuning.compression))
    opts.set_keep_log_file_num(2)
    if tuning.compaction == "universal":
        opts.set_compaction_style(DBCompactionStyle.universal())
    elif tuning.compaction != "level":
        raise ValueError(f"unknown compaction {tuning.compaction!r}; level or universal")
    table = BlockBasedOptions()
    table.set_block_cache(shared_block_cache(tuning.block_cache_bytes))
    table.set_bloom_filter(tuning.bloom_bits_per_key, False)  # full (not block-based) filter
    if tuning.index_in_cache:
        # Outside the cache, index and filter blocks take ~3,5 MB per million
        # keys and grow with the store. Whole, inside a 16 MiB cache, they were
        # evicted by data blocks and a point get reloaded a file's whole index
        # (~1 ms instead of ~10 µs); partitioned, a get loads one partition of
        # a few KiB, and the top levels (one entry per partition) stay pinned.
        table.set_index_type(BlockBasedIndexType.two_level_index_search())
        table.set_partition_filters(True)
        table.set_cache_index_and_filter_blocks(True)
        table.set_pin_top_level_index_and_filter(True)
        table.set_pin_l0_filter_and_index_blocks_in_cache(True)
    opts.set_block_based_table_factory(table)
    return opts


def rocks_write_options() -> WriteOptions:
    """No write-ahead log, no sync: the store is rebuilt from ClickHouse after a crash."""
    wo = WriteOptions()
    wo.sync = False
    # rocksdict's stub declares ``disable_wal`` a method; at run time it is a
    # writable property (rocksdict 0.3.29), so it is set by name.
    field = "disable_wal"
    setattr(wo, field, True)
    return wo


def rocks_read_options() -> ReadOptions:
    """Reads without checksum verification: the store is a cache, rebuilt if torn."""
    ro = ReadOptions()
    ro.set_verify_checksums(False)  # a cache: a torn block is rebuilt, not repaired
    return ro


def open_rocks(path: Path, tuning: RocksTuning) -> Rdict:
    """A raw-mode RocksDB at ``path`` with :class:`RocksTuning`'s options, no WAL, no sync.

    The options of a rebuildable cache (see the module's docstring): the
    block cache and the memtable budget are shared by every store of the
    process opened with the same sizes.
    """
    path.mkdir(parents=True, exist_ok=True)
    db = Rdict(str(path), rocks_options(tuning))
    db.set_write_options(rocks_write_options())
    db.set_read_options(rocks_read_options())
    return db


def _raw_keys(db: Rdict) -> Iterator[bytes]:
    """The keys of a raw-mode ``Rdict``: bytes (its stub types them as any key type)."""
    return cast("Iterator[bytes]", db.keys())


def _raw_items(db: Rdict) -> Iterator[tuple[bytes, bytes]]:
    """The ``(key, value)`` pairs of a raw-mode ``Rdict``: both bytes."""
    return cast("Iterator[tuple[bytes, bytes]]", db.items())


class _Values(ValuesView[DossierState]):
    """The states of a :class:`DossierStore`, decoded lazily in key order."""

    def __init__(self, store: DossierStore) -> None:
        super().__init__(store)
        self._store = store

    def __iter__(self) -> Iterator[DossierState]:
        for _, state in self._store._scan():
            yield state


class _Items(ItemsView[str, DossierState]):
    """The ``(dossier_id, state)`` pairs of a :class:`DossierStore`, in key order."""

    def __init__(self, store: DossierStore) -> None:
        super().__init__(store)
        self._store = store

    def __iter__(self) -> Iterator[tuple[str, DossierState]]:
        return self._store._scan()


class DossierStore(MutableMapping[str, DossierState]):
    """Dossier states by dossier id in RocksDB, the recently used ones decoded in a write-back LRU.

    Args:
        path: the RocksDB directory (created if missing). What it already
            holds is kept and counted once (a key scan); use
            :func:`open_dossier_store` for a fresh store.
        cache_entries: decoded states kept in memory (at least 1). When a
            state joins a full LRU, the oldest ``cache_entries // 16``
            (1 to 64) leave it, the dirty ones written in one batch.
        tuning: RocksDB settings (:class:`RocksTuning` defaults if ``None``).
        flush_batch: most states per ``WriteBatch`` of :meth:`flush` (at least 1).

    A ``set`` stays in the LRU, dirty, until the LRU evicts it or
    :meth:`flush` or :meth:`close` writes it; :meth:`destroy` drops it.
    Iteration (keys, :meth:`values`, :meth:`items`) first flushes, then runs
    in key order over RocksDB and decodes each state not in the LRU: a full
    scan of a million dossiers decodes a million states, one at a time,
    never all at once.
    """

    def __init__(
        self,
        path: Path | str,
        *,
        cache_entries: int = DEFAULT_CACHE_ENTRIES,
        tuning: RocksTuning | None = None,
        flush_batch: int = FLUSH_BATCH,
    ) -> None:
        if cache_entries < 1:
            raise ValueError(f"cache_entries must be at least 1, not {cache_entries}")
        if flush_batch < 1:
            raise ValueError(f"flush_batch must be at least 1, not {flush_batch}")
        self.flush_batch = flush_batch
        self.path = Path(path)
        self.cache_entries = cache_entries
        self.tuning = tuning or RocksTuning()
        self._db = open_rocks(self.path, self.tuning)
        self._lru: OrderedDict[str, DossierState] = OrderedDict()
        self._dirty: set[str] = set()  # LRU keys whose state RocksDB lacks or holds older
        self._group = max(1, min(_EVICT_GROUP, cache_entries // 16))
        self._absent: str | None = None  # the last key a get found nowhere
        # every key ever written to RocksDB: a key it never saw is not there (no look-up)
        self._written = KeyFilter(max_bytes=self.tuning.key_filter_bytes)
        self._count = 0
        for kb in _raw_keys(self._db):
            self._written.add(kb.decode())
            self._count += 1
        self._closed = False

    # ------------------------------------------------------------ mapping
    def __len__(self) -> int:
        return self._count

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str):
            return False
        return key in self._lru or self._stored(key)

    def __getitem__(self, key: str) -> DossierState:
        state = self._lookup(key)
        if state is None:
            raise KeyError(key)
        return state

    @overload
    def get(self, key: str, /) -> DossierState | None: ...
    @overload
    def get(self, key: str, default: DossierState, /) -> DossierState: ...
    @overload
    def get(self, key: str, default: _T, /) -> DossierState | _T: ...
    def get(self, key: str, default: object = None, /) -> object:
        """The state of ``key``, or ``default``; a decoded state joins the LRU."""
        state = self._lookup(key)
        return default if state is None else state

    def __setitem__(self, key: str, state: DossierState) -> None:
        lru = self._lru
        if key in lru:  # a live key: no count to change
            lru[key] = state  # keeps its place: the fold's get just moved it last
            self._dirty.add(key)
            return
        if key == self._absent:  # the get just before found it nowhere
            self._absent = None
            self._count += 1
        elif not self._stored(key):
            self._count += 1
        self._dirty.add(key)
        self._remember(key, state)

    def __delitem__(self, key: str) -> None:
        lru = self._lru
        if key in lru:
            del lru[key]
            self._dirty.discard(key)
        elif not self._stored(key):
            raise KeyError(key)
        self._db.delete(key.encode())  # a dirty new key leaves a tombstone of nothing: harmless
        self._count -= 1

    def __iter__(self) -> Iterator[str]:
        self.flush()
        for kb in _raw_keys(self._db):
            yield kb.decode()

    def values(self) -> ValuesView[DossierState]:
        """The states, decoded lazily (an LRU entry is used as is)."""
        return _Values(self)

    def items(self) -> ItemsView[str, DossierState]:
        """``(dossier_id, state)`` pairs, decoded lazily."""
        return _Items(self)

    def clear(self) -> None:
        """Remove every state (one range delete, not one delete per key)."""
        self._db.delete_range(b"", _ALL_KEYS_END)
        self._written = KeyFilter(max_bytes=self.tuning.key_filter_bytes)
        self._lru.clear()
        self._dirty.clear()
        self._absent = None
        self._count = 0

    def flush(self) -> int:
        """Encode and write every dirty state to RocksDB; they stay in the LRU, clean.

        The rows go to RocksDB's memtable like any write (this is not a flush
        of the memtable to disk), in batches of at most ``flush_batch``.

        Returns:
            How many states were written.
        """
        dirty = self._dirty
        if not dirty:
            return 0
        lru, db, written = self._lru, self._db, self._written
        keys = list(dirty)
        step = self.flush_batch
        for start in range(0, len(keys), step):
            batch = WriteBatch(raw_mode=True)
            for key in keys[start : start + step]:
                batch.put(key.encode(), dumps_dossier(lru[key]))
                written.add(key)
            db.write(batch)  # the store's write options: no WAL, no sync
        dirty.clear()
        return len(keys)

    # ------------------------------------------------------------ lifetime
    def close(self) -> None:
        """Write the dirty states and close RocksDB (idempotent); the directory stays."""
        if not self._closed:
            self.flush()
            self._closed = True
            self._lru.clear()
            self._db.close()

    def destroy(self) -> None:
        """Close, without writing the dirty states, and remove the directory."""
        self._lru.clear()
        self._dirty.clear()
        self.close()
        shutil.rmtree(self.path, ignore_errors=True)

    def __enter__(self) -> DossierStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"DossierStore({str(self.path)!r}, {self._count} states, "
            f"{len(self._lru)}/{self.cache_entries} decoded, {len(self._dirty)} dirty)"
        )

    # ------------------------------------------------------------ internals
    def _lookup(self, key: str) -> DossierState | None:
        """The LRU's state, else RocksDB's decoded (remembered clean), else ``None``."""
        lru = self._lru
        state = lru.get(key)
        if state is not None:
            lru.move_to_end(key)
            return state
        raw: bytes | None = self._db.get(key.encode()) if key in self._written else None
        if raw is None:
            self._absent = key
            return None
        state = loads_dossier(raw)
        self._remember(key, state)
        return state

    def _stored(self, key: str) -> bool:
        """Whether RocksDB holds ``key`` (the key filter answers most misses in memory)."""
        return key in self._written and self._db.get(key.encode()) is not None

    def _remember(self, key: str, state: DossierState) -> None:
        """Put a state not in the LRU at its end; evict the oldest if it is full."""
        lru = self._lru
        lru[key] = state
        excess = len(lru) - self.cache_entries
        if excess > 0:  # more than 1 only after an eviction failed
            self._evict(max(excess, self._group))

    def _evict(self, count: int) -> None:
        """Drop the ``count`` oldest LRU states, writing the dirty ones in one batch.

        They are encoded and written before they leave the LRU, so an encoder
        that fails loses nothing (the LRU stays over its size until the next
        eviction that works).
        """
        lru, dirty = self._lru, self._dirty
        victims = list(itertools.islice(lru.items(), count))
        batch: WriteBatch | None = None
        for key, state in victims:
            if key in dirty:
                if batch is None:
                    batch = WriteBatch(raw_mode=True)
                batch.put(key.encode(), dumps_dossier(state))
                self._written.add(key)
        if batch is not None:
            self._db.write(batch)  # the store's write options: no WAL, no sync
        for key, _ in victims:
            del lru[key]
            dirty.discard(key)

    def _scan(self) -> Iterator[tuple[str, DossierState]]:
        """Flush, then ``(key, state)`` in key order, an LRU state used as is."""
        self.flush()
        lru = self._lru
        for kb, raw in _raw_items(self._db):
            key = kb.decode()
            state = lru.get(key)
            yield key, state if state is not None else loads_dossier(raw)


def store_directory(directory: Path, source: str) -> Path:
    """The directory of ``source``'s store: ``dossier:3`` → ``directory / "dossier-3"``."""
    return directory / _UNSAFE.sub("-", source)


def open_dossier_store(
    directory: Path,
    source: str,
    *,
    cache_entries: int = DEFAULT_CACHE_ENTRIES,
    tuning: RocksTuning | None = None,
) -> DossierStore:
    """A fresh, empty store for one source, under ``directory``.

    Whatever an earlier run left in the source's directory is removed first:
    the store is a cache of ClickHouse, refilled by recovery on every start.

    Args:
        directory: where the stores of this worker live (created if missing).
        source: the source name (``dossier:3``); see :func:`store_directory`.
        cache_entries: decoded states kept in memory.
        tuning: RocksDB settings.
    """
    path = store_directory(directory, source)
    if path.exists():
        shutil.rmtree(path)
    return DossierStore(path, cache_entries=cache_entries, tuning=tuning)
