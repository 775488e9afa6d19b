"""The scale curve without Kafka: the worker's batch loop over tiled input, split per segment.

``python -m bench.flat --events 3000000 [--segment 300000]`` tiles the
benchmark's month (:func:`bench.scale.tiled_lines`, streamed: the process
holds the base month and one batch, whatever ``--events``), routes each line
as ``produce`` does, and does with each batch of ``--batch`` messages what
the batch runtime does (:mod:`dossier_stream.stream.ingest`): the
processor's recovery of new sources, :meth:`Processor.handle` in chunks of
500 with a flush whenever the sink reaches its size, the live figures'
update, one flush; a live-figures snapshot every ``--snapshot-every``
batches (the worker takes one every 5 s: about every 4 batches at
16.000 events/s). The stores are the worker's: RocksDB dossier and counter
stores with the settings' caches and memtable budget, chdb in a temporary
directory.

For each segment of ``--segment`` events it prints, in µs per event of
**CPU time** (the machine is shared; wall time means little):

* ``fold``: the main thread in :meth:`Processor.handle` (parse, apply, the
  state and counter stores' reads and writes, the rows for the sink);
* ``flush``: the main thread in the sink's flushes (the rows to columns,
  chdb's insert as far as it runs on the calling thread);
* ``live``: the main thread in the live figures (update and snapshots)
  and the worker's garbage-collection sweeps (at the snapshots, as the
  worker's metrics refresher does them);
* ``rocks``: RocksDB's own threads (flushes of memtables, compactions);
* ``chdb``: every other thread (ClickHouse's merges, insert pipeline,
  background schedule pool), read per thread from ``/proc/self/task``;

and what explains them: the RocksDB point reads of the state and counter
stores (µs of wall and of CPU inside them per event, reads that found a
row, reads that found nothing), the entries of the live figures' index of
open dossiers, the peak RSS, the active parts of each chdb table and
chdb's merges (``system.events``), the table files per RocksDB level, and
the garbage collector's runs and CPU per generation (``gc.callbacks``).
The collector is the worker's (:class:`CollectorPolicy`: no automatic
collection, a full sweep every ``DOSSIER_GC_SWEEP_S`` s); ``--gc-auto
50000,20,100`` runs the worker's automatic collection of the third round
instead. ``--check`` prints the fingerprint of :mod:`bench.pipeline` at the
end (the same tables, the same dumps).
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import os
import pstats
import resource
import tempfile
import time
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import memsplit
from bench.pipeline import fingerprint
from bench.scale import tiled_lines
from dossier_stream.core.registry import UnitRegistry
from dossier_stream.core.topics import TopicCatalog, load_catalog
from dossier_stream.core.workdays import WorkCalendar
from dossier_stream.settings import Settings
from dossier_stream.store import counterstore, statestore
from dossier_stream.store.batching import BatchingSink
from dossier_stream.store.sink import ClickHouseStore, connect
from dossier_stream.stream.collector import CollectorPolicy
from dossier_stream.stream.livefigures import LiveFigures
from dossier_stream.stream.processor import Handled, Message, Processor, source_of
from dossier_stream.stream.runner import rocks_tunings

__all__ = ["main", "tiled_messages"]

_CHUNK = 500  # as stream.ingest
_TABLES = ("unit_day_counters", "dossier_facts", "feedback_facts", "unit_reports")


class _Gets:
    """Counts and times the RocksDB point reads of the stores (a proxy in front of each ``Rdict``).

    ``states``/``counters``: reads that found a row (a state decoded, a total read
    back); ``misses``: reads that found nothing (a new dossier's existence checks).
    """

    def __init__(self) -> None:
        self.hits = {"states": 0, "counters": 0}
        self.misses = {"states": 0, "counters": 0}
        self.seconds = {"states": 0.0, "counters": 0.0}
        self.cpu = {"states": 0.0, "counters": 0.0}  # of the seconds, CPU of the calling thread
        self.dbs: dict[str, list[Any]] = {"states": [], "counters": []}
        self.stores: list[Any] = []  # the stores themselves (their key filters)

    def levels(self, kind: str) -> str:
        """Table files per RocksDB level, over the stores of ``kind`` (``L0/L1/…``)."""
        total: list[int] = []
        for db in self.dbs[kind]:
            try:
                stats = str(db.property_value("rocksdb.levelstats") or "")
            except Exception:
                continue
            for line in stats.splitlines()[2:]:
                level, files = (int(x) for x in line.split()[:2])
                total.extend([0] * (level + 1 - len(total)))
                total[level] += files
        while len(total) > 1 and total[-1] == 0:
            total.pop()
        return "/".join(map(str, total))

    def wrap(self, store: Any, kind: str) -> Any:
        """Put a counting proxy in front of ``store``'s RocksDB handle; returns ``store``."""
        db, gets = store._db, self
        self.dbs[kind].append(db)
        self.stores.append(store)

        class Proxy:
            def get(self, key: bytes) -> Any:
                t, c = time.perf_counter(), time.thread_time()
                raw = db.get(key)
                gets.seconds[kind] += time.perf_counter() - t
                gets.cpu[kind] += time.thread_time() - c
                if raw is None:
                    gets.misses[kind] += 1
                else:
                    gets.hits[kind] += 1
                return raw

            def __getattr__(self, name: str) -> Any:
                return getattr(db, name)

        store._db = Proxy()
        return store


def _threads() -> dict[str, float]:
    """CPU seconds of this process's threads, by kind: ``main``, ``rocks``, ``other``."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {"main": 0.0, "rocks": 0.0, "other": 0.0}
    main = str(os.getpid())
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/stat", encoding="ascii") as fh:
                stat = fh.read()
        except OSError:
            continue  # a thread that just ended
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        cpu = (int(fields[11]) + int(fields[12])) / tick
        kind = "main" if tid == main else "rocks" if name.startswith("rocksdb") else "other"
        out[kind] += cpu
    return out


def _indexed(live: LiveFigures) -> int:
    """The live figures' open dossiers indexed (counted by hand for an older LiveFigures)."""
    if hasattr(live, "indexed"):
        return live.indexed()
    sources: dict[str, Any] = getattr(live, "_sources", {})
    return sum(len(s.index) + len(s.future) for s in sources.values())


class _GcClock:
    """The collector's runs, CPU and objects freed per generation (``gc.callbacks``)."""

    def __init__(self) -> None:
        self.runs = [0, 0, 0]
        self.seconds = [0.0, 0.0, 0.0]
        self.freed = 0
        self._start = 0.0
        gc.callbacks.append(self)

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._start = time.thread_time()
        else:
            g = info["generation"]
            self.runs[g] += 1
            self.seconds[g] += time.thread_time() - self._start
            self.freed += info["collected"]

    def snapshot(self) -> tuple[list[int], list[float], int]:
        return list(self.runs), list(self.seconds), self.freed


def _copy(
    gets: _Gets,
) -> tuple[dict[str, int], dict[str, int], dict[str, float], dict[str, float]]:
    return dict(gets.hits), dict(gets.misses), dict(gets.seconds), dict(gets.cpu)


def tiled_messages(
    base: Sequence[bytes], total: int, catalog: TopicCatalog, partitions: int
) -> Iterator[tuple[int, Message]]:
    """``(lines so far, message)``: the tiled lines routed as bench.pipeline does, streamed."""
    from bench.workload import route  # noqa: PLC0415

    offsets: dict[tuple[str, int], int] = {}
    for n, raw in enumerate(tiled_lines(base, total), 1):
        topic, key, _ = route(raw, catalog)
        if topic is None:
            continue
        p = zlib.crc32(key or b"") % (partitions if topic.startswith("dossier.") else 1)
        offset = offsets.get((topic, p), 0)
        offsets[(topic, p)] = offset + 1
        yield n, Message(topic, p, offset, raw)


def _chdb(store: ClickHouseStore) -> dict[str, int]:
    """Active parts per table, and chdb's merge counters so far (``system.events``)."""
    parts = store.client.query(
        "SELECT table, count() FROM system.parts WHERE active AND database = currentDatabase() "
        "GROUP BY table"
    ).result_rows
    out = {str(t): int(n) for t, n in parts}
    events = store.client.query(
        "SELECT event, value FROM system.events WHERE event IN ('Merge', 'MergedRows')"
    ).result_rows
    out.update({str(e): int(v) for e, v in events})
    return out


def _base_month(path: Path | None, events: int, seed: int) -> list[bytes]:
    from bench.workload import simulate_events  # noqa: PLC0415

    if path is not None and path.exists():
        return path.read_bytes().splitlines()[:events]
    lines = simulate_events(events, UnitRegistry.load_default(), WorkCalendar.default(), seed=seed)
    if path is not None:
        path.write_bytes(b"\n".join(lines) + b"\n")
    return lines


def main(argv: Sequence[str] | None = None) -> int:  # noqa: PLR0915
    """Run the curve and print one line per segment."""
    parser = argparse.ArgumentParser(prog="python -m bench.flat", description=__doc__)
    parser.add_argument("--events", type=int, default=3_000_000, help="tiled events in all")
    parser.add_argument("--segment", type=int, default=300_000, help="events per printed line")
    parser.add_argument("--base", type=int, default=300_000, help="events of the base month")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lines", type=Path, help="cache of the base month (JSONL)")
    parser.add_argument("--batch", type=int, default=20_000, help="messages per batch")
    parser.add_argument("--partitions", type=int, default=6, help="dossier partitions")
    parser.add_argument("--snapshot-every", type=int, default=4, help="batches per snapshot")
    parser.add_argument("--check", action="store_true", help="print the tables' fingerprint")
    parser.add_argument(
        "--live-spill",
        action="store_true",
        help="bound the live figures' index of open dossiers as the worker does (entries "
        "beyond DOSSIER_STATE_CACHE_ENTRIES per source spilled to RocksDB)",
    )
    parser.add_argument(
        "--profile",
        default="",
        help="segments (1-based, comma-separated) to run under cProfile: their top functions "
        "by own time are printed after them (the profiler slows them: their µs are not comparable)",
    )
    parser.add_argument(
        "--profile-out",
        type=Path,
        help="also write each profile here (a directory, made if missing): segment-N.prof",
    )
    parser.add_argument(
        "--gc-auto",
        default="",
        help="thresholds a,b,c: automatic garbage collection with them instead of the "
        "worker's policy (50000,20,100: the worker before the fourth round)",
    )
    parser.add_argument(
        "--compaction", default="", help="the stores' RocksDB compaction (level, universal)"
    )
    args = parser.parse_args(argv)

    settings = Settings()  # the worker's defaults, and DOSSIER_* from the environment
    registry, calendar, catalog = (
        UnitRegistry.load_default(),
        WorkCalendar.default(),
        load_catalog(),
    )
    base = _base_month(args.lines, args.base, args.seed)
    gets = _Gets()
    now = datetime.now(UTC)
    with tempfile.TemporaryDirectory(prefix="bench-flat-") as tmp:
        store = ClickHouseStore(connect(f"chdb://{Path(tmp).resolve() / 'ch'}"))
        store.migrate()
        sink = BatchingSink(store, max_rows=settings.flush_max_rows, interval_s=3600.0)
        st_tuning, ct_tuning, lv_tuning = rocks_tunings(settings)  # the worker's
        if args.compaction:
            st_tuning = replace(st_tuning, compaction=args.compaction)
            ct_tuning = replace(ct_tuning, compaction=args.compaction)
            lv_tuning = replace(lv_tuning, compaction=args.compaction)
        states = Path(tmp) / "states"
        processor = Processor(
            registry,
            calendar,
            catalog,
            sink,
            store,
            dossier_store=lambda s: gets.wrap(
                statestore.open_dossier_store(
                    states, s, cache_entries=settings.state_cache_entries, tuning=st_tuning
                ),
                "states",
            ),
            counter_store=lambda s: gets.wrap(
                counterstore.open_counter_store(
                    states, s, cache_entries=settings.counter_cache_entries, tuning=ct_tuning
                ),
                "counters",
            ),
        )
        if args.live_spill:  # as the worker with its states on disk (stream.runner)
            live = LiveFigures(
                registry,
                clock=lambda: now,
                spill=states / "live",
                index_entries=settings.state_cache_entries,
                tuning=lv_tuning,
            )
        else:
            live = LiveFigures(registry, clock=lambda: now)
        if args.gc_auto:  # automatic collection with these thresholds (the worker before)
            gc.set_threshold(*(int(x) for x in args.gc_auto.split(",")))
            gc.freeze()
        collector = CollectorPolicy(
            0.0 if args.gc_auto else settings.gc_sweep_s,
            release_s=settings.memory_release_s,
            release=store.release_memory,
        )
        collector.start()  # the worker's (runner.Worker.start)
        gcs = _GcClock()
        print(
            f"base {len(base)} lines, {args.events} events, batches of {args.batch}, "
            f"states {settings.state_cache_entries}, counters {settings.counter_cache_entries}, "
            f"flush {settings.flush_max_rows} rows, RocksDB cache {settings.rocksdb_cache_mib} "
            f"MiB (index in it: {st_tuning.index_in_cache}), key filters ≤ "
            f"{settings.key_filter_mib} MiB, memory released every {settings.memory_release_s} s"
        )
        print(
            f"{'lines':>9} {'wall':>6} {'cpu':>6} {'fold':>6} {'flush':>6} {'live':>6}"
            f" {'rocks':>6} {'chdb':>6} | {'st_get':>6} {'cpu':>5} {'hit':>6} {'miss':>6} |"
            f" {'ct_get':>6} {'cpu':>5} {'hit':>6} {'miss':>6} | {'open':>7} {'rss':>5}"
            f" {'parts':>11} {'merges':>6} {'merged':>9} gc (runs:µs/ev per generation)"
        )
        seg: dict[str, float] = {"fold": 0.0, "flush": 0.0, "live": 0.0}
        mark: dict[str, Any] = {"cpu": time.process_time(), "wall": time.perf_counter()}
        mark.update(_threads(), n=0)
        mark.update(gets=_copy(gets), chdb=_chdb(store), gc=gcs.snapshot())
        total_cpu, first = 0.0, True
        n = batches = 0
        batch: list[Message] = []
        messages = tiled_messages(base, args.events, catalog, args.partitions)

        def flush() -> None:
            t = time.thread_time()
            sink.flush()
            seg["flush"] += time.thread_time() - t

        def run(batch: list[Message]) -> None:
            nonlocal batches
            t = time.thread_time()
            processor.recover({source_of(m.topic, m.partition) for m in batch})
            handled: list[Handled] = []
            for start in range(0, len(batch), _CHUNK):
                handled += processor.handle(batch[start : start + _CHUNK])
                if len(sink) >= sink.max_rows:
                    seg["fold"] += time.thread_time() - t
                    flush()
                    t = time.thread_time()
            seg["fold"] += time.thread_time() - t
            t = time.thread_time()
            live.update(handled, processor.engines)
            batches += 1
            if batches % args.snapshot_every == 0:
                live.snapshot(processor.engines)
                collector.tick()  # as the worker's metrics refresher (its sweeps count in live)
            seg["live"] += time.thread_time() - t
            flush()

        def memory() -> dict[str, int]:
            sources = getattr(live, "_sources", {}).values()
            return memsplit.split(
                stores={
                    "st": gets.dbs["states"],
                    "ct": gets.dbs["counters"],
                    "lv": [s.db for s in sources if getattr(s, "db", None) is not None],
                },
                filters=[s._written for s in gets.stores]
                + [s.written for s in sources if hasattr(s, "written")],
                cache=statestore.shared_block_cache(st_tuning.block_cache_bytes),
                chdb_store=store,
                live=live,
            )

        def report(n: int) -> None:
            nonlocal total_cpu, first
            cpu, threads, now_gets, chdb = (
                time.process_time(),
                _threads(),
                _copy(gets),
                _chdb(store),
            )
            k = 1e6 / max(n - mark["n"], 1)
            old, was = mark["gets"], mark["chdb"]
            parts = "/".join(str(chdb.get(t, 0)) for t in _TABLES)
            rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss >> 10
            wall = time.perf_counter()
            cols = [
                f"{n:>9}",
                f"{(wall - mark['wall']) * k:6.1f}",
                f"{(cpu - mark['cpu']) * k:6.1f}",
            ]
            cols += [f"{seg[x] * k:6.1f}" for x in ("fold", "flush", "live")]
            cols += [f"{(threads[x] - mark[x]) * k:6.1f}" for x in ("rocks", "other")]
            for kind in ("states", "counters"):
                cols.append("|")
                cols.append(f"{(now_gets[2][kind] - old[2][kind]) * k:6.2f}")
                cols.append(f"{(now_gets[3][kind] - old[3][kind]) * k:5.2f}")
                cols += [f"{now_gets[i][kind] - old[i][kind]:>6}" for i in (0, 1)]
            cols += ["|", f"{_indexed(live):>7}", f"{rss:>5}", f"{parts:>11}"]
            cols += [
                f"{chdb.get(x, 0) - was.get(x, 0):>{w}}"
                for x, w in (("Merge", 6), ("MergedRows", 9))
            ]
            runs, gc_s, freed = gcs.snapshot()
            was_runs, was_s, was_freed = mark["gc"]
            cols += [
                "gc "
                + " ".join(
                    f"{r - w}:{(s - v) * k:.1f}"
                    for r, w, s, v in zip(runs, was_runs, gc_s, was_s, strict=True)
                )
                + f" freed {freed - was_freed}"
            ]
            cols += [f"sst {gets.levels('states')} {gets.levels('counters')}"]
            print(" ".join(cols), flush=True)
            print(memsplit.render(memory()), flush=True)
            if not first:
                total_cpu += cpu - mark["cpu"]
            first = False
            mark.update(
                cpu=cpu, wall=wall, **threads, n=n, gets=now_gets, chdb=chdb, gc=gcs.snapshot()
            )
            seg.update(fold=0.0, flush=0.0, live=0.0)

        boundary = args.segment
        profiled = {int(x) for x in args.profile.split(",") if x.strip()}
        prof = cProfile.Profile() if 1 in profiled else None
        if prof is not None:
            prof.enable()
        for n, message in messages:
            batch.append(message)
            if len(batch) >= args.batch:
                run(batch)
                batch = []
            if n >= boundary:
                if batch:
                    run(batch)
                    batch = []
                if prof is not None:
                    prof.disable()
                report(n)
                if prof is not None:
                    stats = pstats.Stats(prof)
                    if args.profile_out is not None:
                        args.profile_out.mkdir(parents=True, exist_ok=True)
                        stats.dump_stats(
                            args.profile_out / f"segment-{boundary // args.segment}.prof"
                        )
                    stats.sort_stats("tottime").print_stats(25)
                prof = cProfile.Profile() if boundary // args.segment + 1 in profiled else None
                if prof is not None:
                    prof.enable()
                boundary += args.segment
        n = args.events
        if batch:
            run(batch)
        if mark["n"] < n:
            report(n)
        if n > args.segment:
            per = total_cpu / (n - args.segment) * 1e6
            print(f"cpu after the first segment: {per:.1f} µs/event")
        collector.stop()
        gc.unfreeze()
        t = time.process_time()
        freed = gc.collect()
        print(
            f"a full collection at the end: {time.process_time() - t:.2f} s CPU, "
            f"{len(gc.get_objects())} objects tracked, {freed} freed"
        )
        if args.check:
            print(f"fingerprint {fingerprint(store)}")
        processor.close()
        if hasattr(live, "close"):
            live.close()
        store.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
