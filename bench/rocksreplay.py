"""The state and counter stores' work alone, replayed to tens of millions of events: RocksDB's cost.

``python -m bench.rocksreplay record --out F [--lines L]`` runs
:mod:`bench.flat` over the first three tiles of the month (900.000 events)
with every call the fold makes on the dossier and counter stores recorded
(``get``, ``set`` of a state; ``accumulate``, ``get``, ``trim`` of the
counters), batch by batch.

``python -m bench.rocksreplay replay F --events N [--segment S] [options]``
replays them on fresh stores (the worker's :class:`DossierStore` and
:class:`CounterStore`, the settings' caches and tunings), tiles 0-2 as
recorded, and tile ``k`` ≥ 3 as tile 2 moved as :mod:`bench.scale` moves it
(dossier ids ``T<j>-`` → ``T<j+k-2>-``, days back ``(k-2)`` × 35), so the
stores see the same gets, sets, evictions, trims and read-backs the fold
makes at ``N`` events without the parse, the fold or chdb. A state set is
one of the recorded encoded states (a pool, picked by the key's CRC).

Per segment it prints µs per event of CPU: the process, the main thread,
RocksDB's threads (``rocksdb:*``: flushes, compactions), and the main
thread's CPU inside ``Rdict.get`` and ``Rdict.write``; the reads that found
a row or nothing; the table files per level; the memtables, block cache and
table readers. The options under test (``--compaction``, ``--dynamic``,
``--level-base``, ...) are set on top of the worker's (``statestore.rocks_options``).
"""

from __future__ import annotations

import argparse
import os
import pickle
import re
import resource
import shutil
import tempfile
import time
import zlib
from collections.abc import Iterator, MutableMapping, Sequence
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from rocksdict import DBCompactionStyle, DBCompressionType, Rdict

from dossier_stream.settings import Settings
from dossier_stream.store import codec, counterstore, statestore
from dossier_stream.stream.runner import rocks_tunings

__all__ = ["main"]

_TILE = 300_000
_DAYS = 35


# ------------------------------------------------------------------ record
class _Log:
    def __init__(self) -> None:
        self.batches: list[list[tuple[Any, ...]]] = [[]]
        self.pool: list[bytes] = []
        self.sets = 0

    def op(self, *op: Any) -> None:
        self.batches[-1].append(op)


class _RecStates(MutableMapping[str, Any]):
    def __init__(self, inner: Any, sid: int, log: _Log) -> None:
        self.inner, self.sid, self.log = inner, sid, log
        self._db, self._written = inner._db, inner._written

    def get(self, key: str, default: Any = None) -> Any:
        self.log.op("g", self.sid, key)
        return self.inner.get(key, default)

    def __getitem__(self, key: str) -> Any:
        self.log.op("g", self.sid, key)
        return self.inner[key]

    def __setitem__(self, key: str, value: Any) -> None:
        log = self.log
        log.op("s", self.sid, key)
        log.sets += 1
        if log.sets % 97 == 0 and len(log.pool) < 8192:
            log.pool.append(codec.dumps_dossier(value))
        self.inner[key] = value

    def __delitem__(self, key: str) -> None:
        self.log.op("d", self.sid, key)
        del self.inner[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.inner)

    def __len__(self) -> int:
        return len(self.inner)

    def __contains__(self, key: object) -> bool:
        return key in self.inner

    def values(self) -> Any:
        return self.inner.values()

    def items(self) -> Any:
        return self.inner.items()

    def flush(self) -> int:
        return int(self.inner.flush())

    def close(self) -> None:
        self.inner.close()

    def destroy(self) -> None:
        self.inner.destroy()


class _RecCounters(MutableMapping[Any, int]):
    def __init__(self, inner: Any, sid: int, log: _Log) -> None:
        self.inner, self.sid, self.log = inner, sid, log
        self._db, self._written = inner._db, inner._written

    def get(self, key: Any, default: Any = None) -> Any:
        self.log.op("cg", self.sid, key)
        return self.inner.get(key, default)

    def __getitem__(self, key: Any) -> int:
        self.log.op("cg", self.sid, key)
        return int(self.inner[key])

    def __setitem__(self, key: Any, value: int) -> None:
        self.log.op("cs", self.sid, key, value)
        self.inner[key] = value

    def __delitem__(self, key: Any) -> None:
        self.log.op("cs", self.sid, key, 0)
        del self.inner[key]

    def accumulate(self, delta: Any) -> None:
        self.log.op("a", self.sid, tuple(delta.items()))
        self.inner.accumulate(delta)

    def trim(self) -> int:
        self.log.op("t", self.sid)
        return int(self.inner.trim())

    def __iter__(self) -> Iterator[Any]:
        return iter(self.inner)

    def __len__(self) -> int:
        return len(self.inner)

    def __contains__(self, key: object) -> bool:
        return key in self.inner

    def items(self) -> Any:
        return self.inner.items()

    def flush(self) -> int:
        return int(self.inner.flush())

    def close(self) -> None:
        self.inner.close()

    def destroy(self) -> None:
        self.inner.destroy()


def record(out: Path, lines: Path | None, events: int, tile: int = _TILE) -> None:
    """Run bench.flat over ``events`` with the stores' calls recorded into ``out``.

    ``tile`` is the base month's events (bench.flat's ``--base``): the calls are
    kept per tile, and the replay moves the third tile as bench.scale moves it.
    """
    from bench import flat  # noqa: PLC0415

    log = _Log()
    sids: dict[str, int] = {}
    open_states, open_counters = statestore.open_dossier_store, counterstore.open_counter_store

    def states(directory: Path, source: str, **kw: Any) -> Any:
        sid = sids.setdefault(source, len(sids))
        return _RecStates(open_states(directory, source, **kw), sid, log)

    def counters(directory: Path, source: str, **kw: Any) -> Any:
        sid = sids.setdefault(source, len(sids))
        return _RecCounters(open_counters(directory, source, **kw), sid, log)

    statestore.open_dossier_store = states
    counterstore.open_counter_store = counters
    messages = flat.tiled_messages

    def tiled(*a: Any) -> Iterator[Any]:  # one list of calls per tile of the base month
        current = 0
        for n, message in messages(*a):
            if (n - 1) // tile > current:  # the flat loop ran the last tile's batches
                current = (n - 1) // tile
                log.batches.append([])
            yield n, message

    flat.tiled_messages = tiled  # type: ignore[assignment]
    argv = ["--events", str(events), "--segment", str(tile), "--base", str(tile)]
    if lines is not None:
        argv += ["--lines", str(lines)]
    flat.main(argv)
    if not log.batches[-1]:
        log.batches.pop()
    print("calls per tile:", [len(b) for b in log.batches])
    with out.open("wb") as fh:
        recording = {"batches": log.batches, "pool": log.pool, "sids": sids, "tile": tile}
        pickle.dump(recording, fh, protocol=5)
    print(
        f"recorded {len(log.batches)} batches, {sum(map(len, log.batches))} calls, "
        f"{len(log.pool)} states in the pool, sources {sids}"
    )


# ------------------------------------------------------------------ replay
class _Clock:
    """Counts and times a store's RocksDB gets and writes (a proxy in front of its ``Rdict``)."""

    def __init__(self) -> None:
        self.n = {"st_hit": 0, "st_miss": 0, "ct_hit": 0, "ct_miss": 0, "writes": 0}
        self.cpu = {"get": 0.0, "write": 0.0}

    def wrap(self, store: Any, kind: str) -> None:
        db, clock = store._db, self

        class Proxy:
            def get(self, key: bytes) -> Any:
                c = time.thread_time()
                raw = db.get(key)
                clock.cpu["get"] += time.thread_time() - c
                clock.n[kind + ("_miss" if raw is None else "_hit")] += 1
                return raw

            def write(self, batch: Any) -> None:
                c = time.thread_time()
                db.write(batch)
                clock.cpu["write"] += time.thread_time() - c
                clock.n["writes"] += 1

            def __getattr__(self, name: str) -> Any:
                return getattr(db, name)

        store._db = Proxy()


def _threads() -> tuple[float, float]:
    tick = os.sysconf("SC_CLK_TCK")
    rocks = other = 0.0
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/stat", encoding="ascii") as fh:
                stat = fh.read()
        except OSError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        cpu = (int(fields[11]) + int(fields[12])) / tick
        if name.startswith("rocksdb"):
            rocks += cpu
        else:
            other += cpu
    return rocks, other


_COMPRESSION = {
    "none": DBCompressionType.none,
    "lz4": DBCompressionType.lz4,
    "zstd": DBCompressionType.zstd,
    "snappy": DBCompressionType.snappy,
}


def _options(tuning: Any, args: argparse.Namespace) -> Any:
    """The worker's options for ``tuning`` with the variant's on top."""
    opts = statestore.rocks_options(tuning)
    if args.universal:
        opts.set_compaction_style(DBCompactionStyle.universal())
    if args.dynamic is not None:
        opts.set_level_compaction_dynamic_level_bytes(args.dynamic == "on")
    if args.level_base:
        opts.set_max_bytes_for_level_base(args.level_base << 20)
    if args.target_file:
        opts.set_target_file_size_base(args.target_file << 20)
    if args.num_levels:
        opts.set_num_levels(args.num_levels)
    if args.per_level:
        opts.set_compression_per_level([_COMPRESSION[x]() for x in args.per_level.split(",")])
    if args.l0_trigger:
        opts.set_level_zero_file_num_compaction_trigger(args.l0_trigger)
    if args.filters_for_hits:
        opts.set_optimize_filters_for_hits(True)
    if args.min_merge:
        opts.set_min_write_buffer_number_to_merge(args.min_merge)
    return opts


def _reopen(store: Any, tuning: Any, args: argparse.Namespace) -> None:
    """Close the store's fresh, empty RocksDB and open it again with the variant's options."""
    store._db.close()
    shutil.rmtree(store.path)
    store.path.mkdir(parents=True)
    db = Rdict(str(store.path), _options(tuning, args))
    db.set_write_options(statestore.rocks_write_options())
    db.set_read_options(statestore.rocks_read_options())
    store._db = db


def _levels(dbs: Sequence[Any]) -> str:
    total = [0] * 7
    for db in dbs:
        for n in range(7):
            total[n] += int(db.property_int_value(f"rocksdb.num-files-at-level{n}") or 0)
    while len(total) > 1 and total[-1] == 0:
        total.pop()
    return "/".join(map(str, total))


def _prop(dbs: Sequence[Any], name: str) -> int:
    return sum(int(db.property_int_value(name) or 0) for db in dbs)


def _moved(key: str, d: int, memo: dict[str, str]) -> str:
    out = memo.get(key)
    if out is None:
        m = re.match(r"T(\d+)-", key)
        out = f"T{int(m.group(1)) + d}-{key[m.end() :]}" if m else f"T{d}-{key}"
        memo[key] = out
    return out


def replay(args: argparse.Namespace) -> None:  # noqa: PLR0915
    """Replay the recording to ``args.events`` events and print one line per segment."""
    if not args.summary_from:
        args.summary_from = args.events // 2
    with args.recording.open("rb") as fh:
        rec = pickle.load(fh)
    batches: list[list[tuple[Any, ...]]] = rec["batches"]
    tiles = [[b] for b in batches]
    tile: int = rec.get("tile", _TILE)  # recordings made before the tile was kept: 300.000
    if len(tiles) < 3:
        raise SystemExit(
            f"the recording holds {len(tiles)} tiles: record three ({3 * tile} events)"
        )
    pool = [codec.loads_dossier(raw) for raw in rec["pool"]]
    settings = Settings()
    st_tuning, ct_tuning, _ = rocks_tunings(settings)
    if args.memtable_mib:
        from dataclasses import replace  # noqa: PLC0415

        st_tuning = replace(st_tuning, memtable_budget_bytes=args.memtable_mib << 20)
        ct_tuning = replace(ct_tuning, memtable_budget_bytes=args.memtable_mib << 20)
    if args.write_buffer_mib:
        from dataclasses import replace  # noqa: PLC0415

        st_tuning = replace(st_tuning, write_buffer_bytes=args.write_buffer_mib << 20)
        ct_tuning = replace(ct_tuning, write_buffer_bytes=args.write_buffer_mib << 20)
    if args.jobs:
        from dataclasses import replace  # noqa: PLC0415

        st_tuning = replace(st_tuning, background_jobs=args.jobs)
        ct_tuning = replace(ct_tuning, background_jobs=args.jobs)
    if args.compression:
        from dataclasses import replace  # noqa: PLC0415

        st_tuning = replace(st_tuning, compression=args.compression)
        ct_tuning = replace(ct_tuning, compression=args.compression)
    clock = _Clock()
    if args.workdir is not None:
        args.workdir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="rocksreplay-", dir=args.workdir))
    n_src = len(rec["sids"])
    states: list[Any] = []
    counters: list[Any] = []
    for i in range(n_src):
        s = statestore.open_dossier_store(
            tmp, f"s{i}", cache_entries=settings.state_cache_entries, tuning=st_tuning
        )
        c = counterstore.open_counter_store(
            tmp, f"s{i}", cache_entries=settings.counter_cache_entries, tuning=ct_tuning
        )
        _reopen(s, st_tuning, args)
        _reopen(c, ct_tuning, args)
        states.append(s)
        counters.append(c)
    st_dbs = [s._db for s in states]
    ct_dbs = [c._db for c in counters]
    for s in states:
        clock.wrap(s, "st")
    for c in counters:
        clock.wrap(c, "ct")
    cache = statestore.shared_block_cache(st_tuning.block_cache_bytes)
    print(
        f"replay of {args.recording.name}: {args.events} events, {n_src} sources, "
        f"variant {args.name}; tunings states {st_tuning}, counters {ct_tuning}",
        flush=True,
    )
    print(
        f"{'events':>9} {'cpu':>6} {'main':>6} {'get':>5} {'write':>5} {'rocks':>6} | "
        f"{'st_hit':>6} {'st_miss':>7} {'ct_hit':>6} {'ct_miss':>7} | sst levels st ; ct |"
        " memtables cache readers MiB | rss"
    )
    mark = {"cpu": time.process_time(), "main": time.thread_time(), "n": 0}
    mark["rocks"], _ = _threads()
    mark_cpu, mark_n = dict(clock.cpu), dict(clock.n)
    totals = {"cpu": 0.0, "main": 0.0, "get": 0.0, "write": 0.0, "rocks": 0.0, "n": 0}
    n_tiles = -(-args.events // tile)
    segment_tiles = max(1, args.segment // tile)
    for t in range(n_tiles):
        if t < 3:
            src, d = tiles[t], 0
        else:
            src, d = tiles[2], t - 2
        memo: dict[str, str] = {}
        shift = timedelta(days=_DAYS * d)
        days: dict[date, date] = {}

        def ck(
            key: Any, d: int = d, shift: timedelta = shift, days: dict[date, date] = days
        ) -> Any:
            if not d:
                return key
            u, day, name = key
            moved = days.get(day)
            if moved is None:
                moved = days[day] = day - shift
            return (u, moved, name)

        for batch in src:
            for op in batch:
                kind = op[0]
                if kind == "g":
                    key = _moved(op[2], d, memo) if d else op[2]
                    states[op[1]].get(key)
                elif kind == "s":
                    key = _moved(op[2], d, memo) if d else op[2]
                    states[op[1]][key] = pool[zlib.crc32(key.encode()) % len(pool)]
                elif kind == "a":
                    counters[op[1]].accumulate({ck(k): v for k, v in op[2]})
                elif kind == "t":
                    counters[op[1]].trim()
                elif kind == "cg":
                    counters[op[1]].get(ck(op[2]), 0)
                elif kind == "cs":
                    counters[op[1]][ck(op[2])] = op[3]
                elif kind == "d":
                    key = _moved(op[2], d, memo) if d else op[2]
                    del states[op[1]][key]
        done = (t + 1) * tile
        if (t + 1) % segment_tiles == 0 or t + 1 == n_tiles:
            cpu, main_cpu = time.process_time(), time.thread_time()
            rocks, _ = _threads()
            k = 1e6 / (done - mark["n"])
            dn = {x: clock.n[x] - mark_n[x] for x in clock.n}
            seg = {
                "cpu": cpu - mark["cpu"],
                "main": main_cpu - mark["main"],
                "get": clock.cpu["get"] - mark_cpu["get"],
                "write": clock.cpu["write"] - mark_cpu["write"],
                "rocks": rocks - mark["rocks"],
            }
            if mark["n"] >= args.summary_from:  # the summary's segments
                for x, v in seg.items():
                    totals[x] += v
                totals["n"] += done - mark["n"]
            dbs = st_dbs + ct_dbs
            print(
                f"{done:>9} {seg['cpu'] * k:6.2f} {seg['main'] * k:6.2f} {seg['get'] * k:5.2f}"
                f" {seg['write'] * k:5.2f} {seg['rocks'] * k:6.2f} | {dn['st_hit']:>6}"
                f" {dn['st_miss']:>7} {dn['ct_hit']:>6} {dn['ct_miss']:>7} |"
                f" {_levels(st_dbs)} ; {_levels(ct_dbs)} |"
                f" {_prop(dbs, 'rocksdb.cur-size-all-mem-tables') / 2**20:.0f}"
                f" {cache.get_usage() / 2**20:.0f}"
                f" {_prop(dbs, 'rocksdb.estimate-table-readers-mem') / 2**20:.1f} |"
                f" {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss >> 10}",
                flush=True,
            )
            mark.update(cpu=cpu, main=main_cpu, rocks=rocks, n=done)
            mark_cpu, mark_n = dict(clock.cpu), dict(clock.n)
    if totals["n"]:
        k = 1e6 / totals["n"]
        print(
            f"from {args.summary_from}: µs/event cpu {totals['cpu'] * k:.2f} "
            f"main {totals['main'] * k:.2f} "
            f"(get {totals['get'] * k:.2f} write {totals['write'] * k:.2f}) rocks "
            f"{totals['rocks'] * k:.2f}; disk {_du(tmp) / 2**20:.0f} MiB; wal "
            f"{sum(p.stat().st_size for p in tmp.rglob('*.log')) / 2**20:.1f} MiB",
            flush=True,
        )
    print(f"compactions: states {_compactions(st_dbs)}; counters {_compactions(ct_dbs)}")
    opts = sorted(tmp.glob("s0/OPTIONS-*"))
    if opts and args.show_options:
        print(opts[-1].read_text())
    for s in states:
        s.destroy()
    for c in counters:
        c.destroy()
    shutil.rmtree(tmp, ignore_errors=True)


def _count(text: str) -> float:
    """``2252K`` → 2.252.000 (RocksDB's key counts)."""
    scale = {"K": 1e3, "M": 1e6, "G": 1e9}.get(text[-1:], 1.0)
    return float(text.rstrip("KMG")) * scale


def _compactions(dbs: Sequence[Any]) -> str:
    """GB read and written (flushes included), keys merged, merge CPU, from ``rocksdb.stats``."""
    read = write = cpu = keys = 0.0
    for db in dbs:
        for line in str(db.property_value("rocksdb.stats") or "").splitlines():
            tok = line.split()
            if tok and tok[0] == "Sum" and len(tok) > 18:
                read += float(tok[5])
                write += float(tok[8])
                cpu += float(tok[15])
                keys += _count(tok[18])
                break
    return (
        f"read {read:.1f} GB written {write:.1f} GB, {keys / 1e6:.1f} M keys merged, "
        f"merge cpu {cpu:.0f} s"
    )


def _du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def main(argv: Sequence[str] | None = None) -> int:
    """``record`` or ``replay``."""
    parser = argparse.ArgumentParser(prog="python -m bench.rocksreplay", description=__doc__)
    sub = parser.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("record")
    r.add_argument("--out", type=Path, required=True)
    r.add_argument("--lines", type=Path)
    r.add_argument("--events", type=int, default=3 * _TILE, help="three tiles (default 900000)")
    r.add_argument(
        "--tile", type=int, default=_TILE, help="events of the base month (default 300000)"
    )
    p = sub.add_parser("replay")
    p.add_argument("recording", type=Path)
    p.add_argument("--events", type=int, default=9_000_000)
    p.add_argument("--segment", type=int, default=1_500_000)
    p.add_argument("--name", default="default")
    p.add_argument("--workdir", type=Path)
    p.add_argument("--universal", action="store_true")
    p.add_argument("--dynamic", choices=("on", "off"))
    p.add_argument("--level-base", type=int, default=0, help="max_bytes_for_level_base MiB")
    p.add_argument("--target-file", type=int, default=0, help="target_file_size_base MiB")
    p.add_argument("--num-levels", type=int, default=0)
    p.add_argument("--per-level", default="", help="compression per level: none,none,lz4,…")
    p.add_argument("--compression", default="")
    p.add_argument("--l0-trigger", type=int, default=0)
    p.add_argument("--filters-for-hits", action="store_true")
    p.add_argument("--min-merge", type=int, default=0)
    p.add_argument("--memtable-mib", type=int, default=0, help="the memtable budget")
    p.add_argument("--write-buffer-mib", type=int, default=0, help="one memtable's size")
    p.add_argument("--jobs", type=int, default=0, help="max_background_jobs")
    p.add_argument("--show-options", action="store_true")
    p.add_argument("--summary-from", type=int, default=0, help="events (default: half)")
    args = parser.parse_args(argv)
    if args.cmd == "record":
        record(args.out, args.lines, args.events, args.tile)
    else:
        replay(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
