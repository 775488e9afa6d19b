"""Where a worker's memory goes while it runs: ``BENCH_MEMORY_LOG=FILE python -m bench ...``.

The ``dossier-stream`` scenario starts :func:`sample_every` when the variable
is set: every ``interval`` seconds one JSON line with the process's RSS split
by mapping kind (``/proc/self/smaps``: the glibc heap, anonymous mappings,
files), glibc malloc's own figures (``mallinfo2``: bytes in use and free
inside its arenas), Python's allocated blocks, and the sizes of what the
worker keeps per source (counter caches, decoded dossier states, the live
figures' index of open dossiers, the sink's buffer). :func:`chdb_memory`
asks the embedded ClickHouse for its own accounting at the end.

Between two lines, every 0,1 s, it reads the bytes of the fetched record
buffers the consumer holds (:func:`fetched_bytes`: a partition the aligner
holds back keeps its buffer), and each line carries the largest total seen
since the previous one (``fetched_max_mib``) and how many buffers then.

Those lines are written from the event loop, so nothing is seen while a
batch is folded or stored. ``BENCH_MEMORY_WATCH=FILE`` starts a
:class:`Watch` instead: a thread that every ``BENCH_MEMORY_WATCH_S`` seconds
(0,5) writes the resident size (``VmRSS``, ``VmHWM``), chdb's tracked memory
(all, merges') and the merges running (``system.merges``: table, rows,
memory, algorithm), whatever the event loop is doing: to tell a short peak
of the resident size apart (a merge, an insert, a fetch).
"""

from __future__ import annotations

import asyncio
import ctypes
import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

__all__ = ["Watch", "chdb_memory", "fetched_bytes", "mallinfo", "sample", "sample_every"]


_MALLINFO2 = (
    "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
    "fsmblks", "uordblks", "fordblks", "keepcost",
)  # fmt: skip


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in _MALLINFO2]


def mallinfo() -> dict[str, int]:
    """glibc's ``mallinfo2()`` in bytes: ``malloc_heap`` (its arenas), ``malloc_mmap``,
    ``malloc_used``, ``malloc_free`` (freed but kept); empty where the C library has none."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallinfo2.restype = _MallInfo2
        info = libc.mallinfo2()
    except (OSError, AttributeError):
        return {}
    return {
        "malloc_heap": int(info.arena),
        "malloc_mmap": int(info.hblkhd),
        "malloc_used": int(info.uordblks),
        "malloc_free": int(info.fordblks),
    }


def _mallinfo_mib() -> dict[str, int]:
    """:func:`mallinfo` in MiB, as :func:`sample` reports it."""
    return {
        {"malloc_heap": "malloc_arena_mib"}.get(k, k + "_mib"): v >> 20
        for k, v in mallinfo().items()
    }


def _smaps() -> dict[str, int]:
    """RSS (MiB) per mapping kind: ``heap``, ``anon`` (of which blocks ≥ 64 MiB), ``file``."""
    out = {"heap": 0, "anon": 0, "anon_big": 0, "file": 0}
    kind, size = "anon", 0
    try:
        with open("/proc/self/smaps", encoding="ascii", errors="replace") as fh:
            for line in fh:
                head = line.split(None, 6)
                if "-" in head[0] and not line.startswith(("Rss", "Size")) and ":" not in head[0]:
                    lo, hi = (int(x, 16) for x in head[0].split("-"))
                    size = hi - lo
                    path = head[5].strip() if len(head) > 5 else ""
                    kind = "file" if path.startswith("/") else "anon"
                    kind = "heap" if path == "[heap]" else kind
                elif head[0] == "Rss:":
                    kb = int(head[1])
                    out[kind] += kb
                    if kind == "anon" and size >= 64 << 20:
                        out["anon_big"] += kb
    except OSError:
        return {}
    return {f"rss_{k}_mib": v >> 10 for k, v in out.items()}


def sample(worker: Any) -> dict[str, Any]:
    """One sample of the process and of ``worker``'s per-source structures."""
    engines = worker.processor.engines.values()
    live = getattr(worker, "live", None)
    sources = getattr(live, "_sources", {}) if live is not None else {}
    return {
        "t": round(time.monotonic(), 1),
        "events_in": int(worker.processor.stats.events_in),
        **_smaps(),
        **_mallinfo_mib(),
        "py_blocks": sys.getallocatedblocks(),
        "counter_keys_in_memory": sum(
            getattr(e.counters, "cached", None) or len(e.counters) for e in engines
        ),
        "dossier_states_decoded": sum(len(getattr(e.dossiers, "_lru", ())) for e in engines),
        "live_open_indexed": live.indexed() if live is not None else 0,
        "live_open_in_memory": sum(len(s.index) + len(s.future) for s in sources.values()),
        "sink_rows": len(worker.sink),
    }


def fetched_bytes(worker: Any) -> tuple[int, int]:
    """Bytes and count of the record buffers fetched and not yet handed over.

    aiokafka's fetcher keeps one buffer per partition (``_records``, private:
    this is a measuring tool); ``size_in_bytes`` is the fetched response's
    part for that partition, held whole until the last record is taken.
    ``(0, 0)`` for a runtime without such a consumer (Faust).
    """
    consumer = getattr(getattr(worker, "app", None), "consumer", None)
    buffers = getattr(getattr(consumer, "_fetcher", None), "_records", None)
    if not buffers:
        return 0, 0
    total = 0
    for result in list(buffers.values()):
        records = getattr(getattr(result, "_partition_records", None), "_records", None)
        if records is not None:
            total += int(records.size_in_bytes())
    return total, len(buffers)


async def sample_every(worker: Any, path: Path, interval: float = 15.0) -> None:
    """Append a :func:`sample` to ``path`` every ``interval`` seconds (until cancelled)."""
    with path.open("a", encoding="utf-8") as fh:
        while True:
            most, count = fetched_bytes(worker)
            until = time.monotonic() + interval
            while time.monotonic() < until:
                await asyncio.sleep(0.1)
                now, n = fetched_bytes(worker)
                if now > most:
                    most, count = now, n
            chdb: dict[str, object]
            try:  # on the event loop, between flushes: the store is free
                chdb = dict(chdb_memory(worker.store))
            except Exception as exc:  # a sample is best effort
                chdb = {"chdb_error": str(exc)[:200]}
            fetched = {"fetched_max_mib": round(most / 2**20, 1), "fetched_buffers": count}
            fh.write(json.dumps({**sample(worker), **fetched, **chdb}) + "\n")
            fh.flush()


def chdb_memory(store: Any) -> dict[str, float]:
    """ClickHouse's own accounting (``system.metrics``: tracked total, merges, caches), MiB."""
    rows = store.client.query(
        "SELECT metric, value FROM system.metrics WHERE metric IN ('MemoryTracking', "
        "'MergesMutationsMemoryTracking', 'MarkCacheBytes', 'PrimaryIndexCacheBytes', "
        "'UncompressedCacheBytes', 'QueryConditionCacheBytes', 'CompiledExpressionCacheBytes')"
    ).result_rows
    return {f"chdb_{m}_mib": round(float(v) / (1 << 20), 1) for m, v in rows}


_STATUS: dict[str, str] = {
    "VmRSS:": "rss_mib",
    "VmHWM:": "hwm_mib",
    "RssAnon:": "rss_anon_mib",
    "RssFile:": "rss_file_mib",
}


def _status_mib() -> dict[str, int]:
    """``VmRSS``, ``VmHWM`` and the resident size's anonymous and file parts, MiB."""
    out: dict[str, int] = {}
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            name = line.split(None, 1)[0]
            if name in _STATUS:
                out[_STATUS[name]] = int(line.split()[1]) >> 10
    return out


class Watch(threading.Thread):
    """Samples the resident size, chdb's tracked memory and its merges from a thread.

    Each sample is one JSON line in ``path``: ``t`` (monotonic s), ``rss_mib``,
    ``hwm_mib``, ``rss_anon_mib``, ``rss_file_mib`` (the mapped files: chdb's
    library, mostly), glibc's arenas (:func:`mallinfo`), ``tracked_mib``,
    ``merges_tracked_mib`` and ``merges`` (a list of ``[table, rows read, MiB,
    algorithm, elapsed s]``). chdb's client is
    locked per query, so a sample waits while the worker inserts: ``waited_s``
    says how long (its resident size is read before and after).
    """

    def __init__(self, store: Any, path: Path, every: float = 0.5) -> None:
        super().__init__(daemon=True, name="bench-memory-watch")
        self.store, self.path, self.every = store, path, every
        self.halt = threading.Event()

    @classmethod
    def from_env(cls, store: Any) -> Watch | None:
        """A started watch writing to ``BENCH_MEMORY_WATCH``, or ``None`` when it is unset."""
        path = os.environ.get("BENCH_MEMORY_WATCH")
        if not path:
            return None
        watch = cls(store, Path(path), float(os.environ.get("BENCH_MEMORY_WATCH_S", "0.5")))
        watch.start()
        return watch

    def close(self) -> None:
        """Stop sampling and wait for the thread."""
        self.halt.set()
        self.join()

    def run(self) -> None:
        with self.path.open("a", encoding="utf-8") as fh:
            while not self.halt.wait(self.every):
                before = _status_mib()
                t0 = time.monotonic()
                try:
                    metrics = dict(
                        self.store.client.query(
                            "SELECT metric, value FROM system.metrics WHERE metric IN "
                            "('MemoryTracking', 'MergesMutationsMemoryTracking')"
                        ).result_rows
                    )
                    merges = self.store.client.query(
                        "SELECT table, rows_read, round(memory_usage / 1048576, 1), "
                        "merge_algorithm, round(elapsed, 1) FROM system.merges"
                    ).result_rows
                except Exception as exc:  # a sample is best effort (the store closing)
                    metrics, merges = {}, [("error", 0, 0.0, str(exc)[:80], 0.0)]
                line = {
                    "t": round(t0, 2),
                    **before,
                    "waited_s": round(time.monotonic() - t0, 2),
                    "rss_after_mib": _status_mib()["rss_mib"],
                    **_mallinfo_mib(),
                    "tracked_mib": int(metrics.get("MemoryTracking", 0)) >> 20,
                    "merges_tracked_mib": int(metrics.get("MergesMutationsMemoryTracking", 0))
                    >> 20,
                    "merges": [list(m) for m in merges],
                }
                fh.write(json.dumps(line, default=str) + "\n")
                fh.flush()
