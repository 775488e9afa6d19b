"""What the worker's resident memory is made of, part by part (``python -m bench.flat`` prints it).

:func:`split` reads, between batches, each part that can grow with a run:

* ``rss``: the process's resident set now (``VmRSS``), of it ``anon`` and
  ``file`` (mapped files: chdb's library, the other shared objects), and the
  peak (``VmHWM``);
* ``py``: CPython's small-object allocator (pymalloc's arenas of 1 MiB,
  mapped outside glibc malloc; parsed from ``sys._debugmallocstats``), and
  the blocks allocated in them (``sys.getallocatedblocks``);
* ``malloc``: glibc malloc (``mallinfo2``): its heap (``arena``, every
  arena), its mapped blocks (``hblkhd``), and of the heap the bytes in use
  and the bytes freed but kept (``fordblks``) — RocksDB's memtables and
  table readers, Python's large objects, chdb's client side live here;
* ``rocks``: per kind of store (``st`` dossier states, ``ct`` counters,
  ``lv`` the live figures' spilled index), RocksDB's own accounting: table
  readers (index and filter blocks held outside the block cache), memtables,
  table files, keys (RocksDB's estimate); and the shared block cache's usage and pinned usage;
* ``filters``: the stores' in-memory key filters (:class:`KeyFilter`);
* ``chdb``: ClickHouse's tracked memory (``MemoryTracking``), its caches,
  and the primary keys of the active parts held in memory (``system.parts``).

Reading it costs about 50 ms (one ``_debugmallocstats`` to a temporary
file, a few RocksDB properties per store, two chdb queries): once per
segment, off the timed path.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
from collections.abc import Iterable
from typing import Any

from bench.memlog import chdb_memory, mallinfo

__all__ = ["render", "split"]

_MIB = 1 << 20


def _status() -> dict[str, int]:
    """``VmRSS``, ``RssAnon``, ``RssFile``, ``VmHWM`` of ``/proc/self/status``, bytes."""
    want = {"VmRSS": "rss", "RssAnon": "rss_anon", "RssFile": "rss_file", "VmHWM": "rss_peak"}
    out: dict[str, int] = {}
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            name, _, rest = line.partition(":")
            if name in want:
                out[want[name]] = int(rest.split()[0]) << 10
    return out


def _pymalloc() -> int:
    """Bytes of pymalloc's arenas now (``# arenas allocated current`` × arena size)."""
    with tempfile.TemporaryFile("w+") as fh:
        sys.stderr.flush()
        saved = os.dup(2)
        try:
            os.dup2(fh.fileno(), 2)
            sys._debugmallocstats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        fh.seek(0)
        text = fh.read()
    match = re.search(r"(\d+) arenas \* (\d+) bytes/arena", text)
    return int(match[1]) * int(match[2]) if match else 0


def _rocks(dbs: Iterable[Any]) -> dict[str, int]:
    """Table readers, memtables and table files summed over the RocksDB handles ``dbs``."""
    out = {"readers": 0, "memtables": 0, "files": 0, "keys": 0, "stores": 0}
    for db in dbs:
        with contextlib.suppress(Exception):  # a store closed meanwhile
            out["readers"] += int(db.property_int_value("rocksdb.estimate-table-readers-mem") or 0)
            out["memtables"] += int(db.property_int_value("rocksdb.cur-size-all-mem-tables") or 0)
            out["keys"] += int(db.property_int_value("rocksdb.estimate-num-keys") or 0)
            out["files"] += sum(
                int(db.property_int_value(f"rocksdb.num-files-at-level{n}") or 0) for n in range(7)
            )
            out["stores"] += 1
    return out


def _chdb(store: Any) -> dict[str, int]:
    """chdb's tracked memory and caches (:func:`bench.memlog.chdb_memory`), and its parts' keys."""
    mib = chdb_memory(store)
    pk = store.client.query(
        "SELECT sum(primary_key_bytes_in_memory_allocated), count() FROM system.parts WHERE active"
    ).result_rows[0]
    return {
        "chdb_tracked": int(mib.get("chdb_MemoryTracking_mib", 0) * _MIB),
        "chdb_caches": int(sum(v for k, v in mib.items() if k.endswith("CacheBytes_mib")) * _MIB),
        "chdb_pk": int(pk[0] or 0),
        "chdb_parts": int(pk[1] or 0),
    }


def split(
    *,
    stores: dict[str, list[Any]],
    filters: Iterable[Any],
    cache: Any,
    chdb_store: Any,
    live: Any,
) -> dict[str, int]:
    """One reading of every part (bytes; counts where named so).

    Args:
        stores: RocksDB handles by kind (``st``, ``ct``, ``lv``).
        filters: the key filters of every store (anything with ``nbytes``).
        cache: the shared RocksDB block cache (``get_usage``, ``get_pinned_usage``).
        chdb_store: the :class:`ClickHouseStore` (its ``client``).
        live: the live figures (``indexed()``, their sources' in-memory index).
    """
    out = _status()
    out["py_arenas"] = _pymalloc()
    out["py_blocks"] = sys.getallocatedblocks()
    out.update(mallinfo())
    for kind, dbs in stores.items():
        out.update({f"{kind}_{k}": v for k, v in _rocks(dbs).items()})
    out["cache_usage"] = int(cache.get_usage())
    out["cache_pinned"] = int(cache.get_pinned_usage())
    out["filters"] = sum(int(f.nbytes) for f in filters)
    out.update(_chdb(chdb_store))
    sources = getattr(live, "_sources", {}).values()
    out["live_memory"] = sum(len(s.index) + len(s.future) for s in sources)
    out["live_indexed"] = live.indexed() if hasattr(live, "indexed") else out["live_memory"]
    return out


def render(m: dict[str, int]) -> str:
    """One line of :func:`split`'s reading, in MiB (``M`` counts in millions)."""

    def mib(key: str) -> str:
        return f"{m.get(key, 0) / _MIB:.0f}"

    rocks = " ".join(
        f"{k} {mib(k + '_readers')}/{mib(k + '_memtables')}/{m.get(k + '_files', 0)}"
        f"/{m.get(k + '_keys', 0) / 1e6:.2f}M"
        for k in ("st", "ct", "lv")
    )
    return (
        f"  mem MiB: rss {mib('rss')} (anon {mib('rss_anon')} file {mib('rss_file')}"
        f" peak {mib('rss_peak')}) | py arenas {mib('py_arenas')}"
        f" blocks {m.get('py_blocks', 0) / 1e6:.2f}M | malloc heap {mib('malloc_heap')}"
        f" mmap {mib('malloc_mmap')} used {mib('malloc_used')} free {mib('malloc_free')}"
        f" | rocks readers/memtables/files/keys {rocks} cache {mib('cache_usage')}"
        f" pinned {mib('cache_pinned')} | filters {m.get('filters', 0) / _MIB:.1f}"
        f" | chdb tracked {mib('chdb_tracked')} caches {mib('chdb_caches')}"
        f" pk {m.get('chdb_pk', 0) / _MIB:.1f} parts {m.get('chdb_parts', 0)}"
        f" | live {m.get('live_memory', 0)} in memory of {m.get('live_indexed', 0)}"
    )
