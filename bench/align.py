"""``python -m bench.align``: how far apart the co-partitioned topics are read, and what it costs.

The four ``dossier.*`` topics are co-partitioned: a dossier's ``received``
(``dossier.submissions.v1``) and its later events (``dossier.progress.v1``,
payments, digitization) sit on the same partition number of four topics. The
consumer fetches up to ``max_partition_fetch_bytes`` per topic-partition per
round (equal *bytes*, not equal time), so the topics with fewer bytes race
ahead. This tool publishes the scale scenario's tiled input
(:func:`bench.scale.produce_tiled`) for each size, runs the real worker (batch
runtime) on it in this process and records:

* the **skew**: for every dossier record handed to the worker, how many tiles
  (of the base month, 35 days apart) it is behind the furthest tile already
  handed over on the same partition number (any ``dossier.*`` topic): mean,
  95th percentile and largest, and the same in record-timestamp milliseconds;
* the **read-backs**: calls of ``loads_dossier`` by the dossier state store
  (a state read back from RocksDB after it left the LRU) and counter totals
  read from RocksDB (``CounterStore._read`` that reached the database);
* main-thread CPU and process CPU per event (from the first record fetched
  to the end; the machine is shared, CPU is what counts).

Each size gets fresh topics, a fresh consumer group and a fresh store. The
alignment setting (``DOSSIER_ALIGN_MS``) is read from the environment like
the worker's other settings, so before/after is ``DOSSIER_ALIGN_MS=0`` vs the
default.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import json
import re
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

__all__ = ["main"]

_TILE = re.compile(rb'"dossier_id":"T(\d+)-')


def _tile(value: bytes | None) -> int:
    m = _TILE.search(value or b"")
    return int(m.group(1)) if m else 0


class _Skew:
    """Per dossier record: tiles and ms behind the furthest one handed on its partition."""

    def __init__(self) -> None:
        self.front_tile: dict[int, int] = {}
        self.front_ts: dict[int, int] = {}
        self.behind_tiles: list[int] = []
        self.behind_ms: list[int] = []
        self.calls = 0

    def see(self, records: list[Any]) -> None:
        self.calls += 1
        for r in records:
            if not r.topic.startswith("dossier.") or "deadletter" in r.topic:
                continue
            p = r.partition
            tile, ts = _tile(r.value), r.timestamp
            front = self.front_tile.get(p, -1)
            if tile > front:
                self.front_tile[p] = front = tile
            self.behind_tiles.append(front - tile)
            fts = self.front_ts.get(p, ts)
            if ts > fts:
                self.front_ts[p] = fts = ts
            else:
                self.front_ts.setdefault(p, ts)
            self.behind_ms.append(fts - ts)

    def summary(self) -> dict[str, Any]:
        def stats(values: list[int]) -> dict[str, float]:
            if not values:
                return {}
            s = sorted(values)
            return {
                "mean": sum(s) / len(s),
                "p50": s[len(s) // 2],
                "p95": s[int(len(s) * 0.95)],
                "max": s[-1],
                "share_behind": 1 - bisect.bisect_right(s, 0) / len(s),
            }

        return {
            "records": len(self.behind_tiles),
            "getmany_calls": self.calls,
            "tiles_behind": stats(self.behind_tiles),
            "ms_behind": stats(self.behind_ms),
        }


class _Counts:
    """Patches the stores (this process only) to count their read-backs."""

    def __init__(self) -> None:
        from dossier_stream.store import counterstore, statestore  # noqa: PLC0415

        self.loads = self.counter_reads = 0
        inner_loads = getattr(statestore, "loads_dossier")  # noqa: B009

        def loads(raw: bytes) -> Any:
            self.loads += 1
            return inner_loads(raw)

        setattr(statestore, "loads_dossier", loads)  # noqa: B010
        inner_read = counterstore.CounterStore._read

        def read(store: Any, key: Any) -> int:
            if key in store._written:
                self.counter_reads += 1
            return int(inner_read(store, key))

        setattr(counterstore.CounterStore, "_read", read)  # noqa: B010


async def _run_worker(settings: Any, expected: int, counts: _Counts) -> dict[str, Any]:
    from dossier_stream.core.registry import UnitRegistry  # noqa: PLC0415
    from dossier_stream.core.topics import load_catalog  # noqa: PLC0415
    from dossier_stream.core.workdays import WorkCalendar  # noqa: PLC0415
    from dossier_stream.store.views import write_units  # noqa: PLC0415
    from dossier_stream.stream.runner import Worker, open_store  # noqa: PLC0415

    registry, calendar = UnitRegistry.load_default(), WorkCalendar.default()
    store = open_store(settings)
    write_units(store, registry)
    worker = Worker(settings, load_catalog(), registry, calendar, store)
    skew = _Skew()
    guard = worker.app.guard
    inner = guard.getmany
    marks: dict[str, float] = {}

    async def getmany(consumer: Any, timeout_ms: int, max_records: int) -> list[Any]:
        got: list[Any] = await inner(consumer, timeout_ms, max_records)
        if got and not marks:
            marks.update(t0=time.monotonic(), cpu0=time.process_time(), main0=time.thread_time())
            marks["loads0"], marks["reads0"] = counts.loads, counts.counter_reads
        skew.see(got)
        return got

    guard.getmany = getmany
    await worker.start()
    deadline = time.monotonic() + 3600
    try:
        while time.monotonic() < deadline:
            await asyncio.sleep(0.2)
            if worker.processor.stats.events_in >= expected and len(worker.sink) == 0:
                break
        end = time.monotonic(), time.process_time(), time.thread_time()
        n = int(worker.processor.stats.events_in)
    finally:
        await worker.stop()
        store.close()
    assert threading.current_thread() is threading.main_thread()
    return {
        "events": n,
        "complete": n >= expected,
        "wall_s": end[0] - marks["t0"],
        "cpu_us_per_event": (end[1] - marks["cpu0"]) / max(n, 1) * 1e6,
        "main_cpu_us_per_event": (end[2] - marks["main0"]) / max(n, 1) * 1e6,
        "loads_dossier": counts.loads - int(marks["loads0"]),
        "counter_reads": counts.counter_reads - int(marks["reads0"]),
        "skew": skew.summary(),
        "getmany_calls_holding": getattr(worker.app.aligner, "held_total", None),
    }


def main(argv: list[str] | None = None) -> int:
    """Publish, consume and report for each size; one JSON line per size."""
    parser = argparse.ArgumentParser(prog="python -m bench.align", description=__doc__)
    parser.add_argument("--sizes", default="300000,1200000", help="events per run, comma-separated")
    parser.add_argument("--events", type=int, default=300_000, help="the base month's events")
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args(argv)
    from pydantic import SecretStr  # noqa: PLC0415

    from bench.scale import produce_tiled  # noqa: PLC0415
    from bench.workload import delete_topics, simulate_events  # noqa: PLC0415
    from dossier_stream.core.registry import UnitRegistry  # noqa: PLC0415
    from dossier_stream.core.topics import load_catalog  # noqa: PLC0415
    from dossier_stream.core.workdays import WorkCalendar  # noqa: PLC0415
    from dossier_stream.settings import Settings  # noqa: PLC0415
    from dossier_stream.stream.embedded import EmbeddedBroker  # noqa: PLC0415
    from dossier_stream.stream.runner import create_topics  # noqa: PLC0415

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="dossier-align-"))
    workdir.mkdir(parents=True, exist_ok=True)
    catalog = load_catalog()
    lines = simulate_events(args.events, UnitRegistry.load_default(), WorkCalendar.default())
    counts = _Counts()
    broker = EmbeddedBroker(workdir / "tansu.log")
    broker.start()
    try:
        for size in (int(s) for s in args.sizes.split(",")):
            base = Settings(
                bootstrap_servers=broker.bootstrap, clickhouse_dsn=SecretStr("chdb://unused")
            )

            async def fresh(base: Any = base) -> None:
                await delete_topics(base.bootstrap_servers)
                await create_topics(base, catalog)

            asyncio.run(fresh())
            t0 = time.monotonic()
            produced = asyncio.run(produce_tiled(base, catalog, lines, size))
            produce_s = time.monotonic() - t0
            run_dir = workdir / f"run-{size}"
            settings = Settings(
                bootstrap_servers=broker.bootstrap,
                clickhouse_dsn=SecretStr(f"chdb://{(run_dir / 'clickhouse').resolve()}"),
                app_id=f"bench-align-{size}",
                data_dir=run_dir,
                metrics_port=0,
                log_level="WARNING",
            )
            res = asyncio.run(_run_worker(settings, size, counts))
            res.update(
                size=size,
                produce_s=round(produce_s, 1),
                per_topic=produced["per_topic"],
                align_ms=getattr(settings, "align_ms", None),
            )
            print(json.dumps(res), flush=True)
    finally:
        broker.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
