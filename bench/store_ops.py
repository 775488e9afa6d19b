"""Per-operation cost of the RocksDB dossier store: ``python -m bench.store_ops [N]``.

Loads ``N`` open dossier states (default 200.000) of a simulated month into a
:class:`~dossier_stream.store.statestore.DossierStore` in a temporary directory and
times, in µs per call (wall, and CPU time of the calling thread, steadier on a
shared machine):

* ``get`` of a state in the LRU (hit), and of one only in RocksDB (miss: a
  RocksDB get and a decode);
* ``set`` of a state the LRU holds;
* the Engine's fold, ``store[k] = store.get(k) or new``, on an LRU hit, on
  an LRU miss (a dossier evicted long ago), and on a new dossier;
* the fold over a stream of new dossiers with 6 events each, 1.000 dossiers
  in flight (their events close together, as in the worker's topics), per
  event;
* :meth:`~dossier_stream.store.statestore.DossierStore.flush` of the dirty states
  left, per state.

A ``dict`` gives the floor. The store is write-back: a ``set`` only marks the
LRU's state dirty, and a dirty state is encoded and written when the LRU
evicts it, so the evictions a fold causes are in its figure.

Measured on the 2-core shared machine (200.000 states, CPU µs per call, the
range of three runs each; *before*: the write-through store, which encoded and put
on every ``set``; wall time was 1,5-3 times the CPU time, the machine being
shared):

==========================================  ========  ==========  ==========
operation                                   dict      before      after
==========================================  ========  ==========  ==========
get + set, LRU hit (the fold)               0,2       7,5-8,0     0,5-1,0
get + set, LRU miss (RocksDB + decode)      0,9       42-45       33-45
get + set, new dossier                      0,4-0,5   5,9-9,0     6,2-7,6
fold, 6 events per new dossier (per event)  0,2-0,3   4,9-6,1     1,0-1,6
set, key in LRU                             0,7       8,8-9,8     1,0-1,4
==========================================  ========  ==========  ==========

A miss and a new dossier still pay one decode or one encode each: the
write-back store defers the encode to the eviction, it cannot skip it.
"""

from __future__ import annotations

import random
import sys
import tempfile
import time
from collections.abc import Callable, MutableMapping
from pathlib import Path

from bench.open_dossiers import open_state_templates
from dossier_stream.core.lifecycle import DossierState
from dossier_stream.store.codec import loads_dossier
from dossier_stream.store.statestore import DossierStore, open_dossier_store

__all__ = ["main"]

_BURST: int = 6
"""Events per dossier in the burst stream."""
_IN_FLIGHT: int = 1_000
"""Dossiers whose events interleave in the burst stream."""


def _states(count: int) -> list[DossierState]:
    import orjson  # noqa: PLC0415

    templates = open_state_templates(2_000)
    out = []
    for i in range(count):
        template = templates[i % len(templates)]
        prefix = template[1].rsplit("-", 1)[0]
        out.append(loads_dossier(orjson.dumps([template[0], f"{prefix}-{i:07d}", *template[2:]])))
    return out


def _time(label: str, keys: list[str], op: Callable[[str], object]) -> None:
    """µs per call, wall and CPU of this thread (steadier on a shared machine)."""
    t0, c0 = time.perf_counter(), time.thread_time()
    for key in keys:
        op(key)
    cpu = (time.thread_time() - c0) / len(keys) * 1e6
    wall = (time.perf_counter() - t0) / len(keys) * 1e6
    print(f"{label:<52} {wall:7.2f} µs wall {cpu:7.2f} µs CPU")


def _burst_stream(dossiers: int, rng: random.Random) -> list[str]:
    """``dossiers`` new ids, ``_BURST`` events each, shuffled within blocks in flight."""
    out: list[str] = []
    for start in range(0, dossiers, _IN_FLIGHT):
        block = [f"BURST-{i:07d}" for i in range(start, min(start + _IN_FLIGHT, dossiers))]
        events = block * _BURST
        rng.shuffle(events)
        out += events
    return out


def _measure(
    name: str, store: MutableMapping[str, DossierState], states: list[DossierState]
) -> None:
    by_id = {s.dossier_id: s for s in states}
    ids = list(by_id)
    t0 = time.perf_counter()
    for state in states:
        store[state.dossier_id] = state
    each = (time.perf_counter() - t0) / len(states) * 1e6
    print(f"{name}: load {len(states):,} states, {each:.2f} µs each")
    rng = random.Random(1)
    hot = ids[-5_000:]  # the most recently written: in the LRU
    old = ids[: len(ids) // 2]  # written long ago: evicted from the LRU
    cold = rng.sample(old, min(100_000, len(old)))
    cold_get, cold_fold = cold[::2], cold[1::2]
    fresh = [f"NEW-{i:07d}" for i in range(50_000)]
    bursts = _burst_stream(10_000, rng)
    template = states[0]

    def fold(key: str) -> None:  # the Engine's read, then its write
        store[key] = store.get(key) or template

    def warm() -> None:  # the cold gets evict the hot keys: read them back first
        for key in hot:
            store.get(key)

    _time(f"{name} get, LRU hit", hot * 10, store.get)
    _time(f"{name} get, LRU miss (RocksDB + decode)", cold_get, store.get)
    warm()
    _time(f"{name} set, key in LRU", hot * 10, lambda k: store.__setitem__(k, by_id[k]))
    _time(f"{name} get + set, LRU hit (the fold)", hot * 10, fold)
    _time(f"{name} get + set, LRU miss (RocksDB + decode)", cold_fold, fold)
    _time(f"{name} get + set, new dossier", fresh, fold)
    _time(f"{name} fold, {_BURST} events per new dossier", bursts, fold)
    # not isinstance: compiled (scripts/compile), DossierStore shares MutableMapping's ABC
    # registry, and a dict passes the check
    if type(store) is DossierStore:
        dirty = len(store._dirty)
        t0, c0 = time.perf_counter(), time.thread_time()
        written = store.flush()
        cpu = (time.thread_time() - c0) / max(written, 1) * 1e6
        wall = (time.perf_counter() - t0) / max(written, 1) * 1e6
        label = f"{name} flush of {dirty:,} dirty states, each"
        print(f"{label:<52} {wall:7.2f} µs wall {cpu:7.2f} µs CPU")


def main(argv: list[str] | None = None) -> int:
    """Time the store's operations against a dict."""
    args = sys.argv[1:] if argv is None else argv
    states = _states(int(args[0]) if args else 200_000)
    _measure("dict", {}, states)
    with tempfile.TemporaryDirectory() as tmp:
        store = open_dossier_store(Path(tmp), "dossier:0")
        try:
            _measure("rocksdb", store, states)
        finally:
            store.destroy()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
