"""The benchmark's scenarios, each in its own process: ``python -m bench.scenarios NAME CONFIG``.

``CONFIG`` is a JSON file written by :mod:`bench.cli`; the last line printed
on stdout is ``BENCH_RESULT {json}``. A process of its own per scenario keeps
peak RSS (``ru_maxrss``) the scenario's own and keeps Faust's process-global
state (its app, sensors, loop) apart.

Scenarios:

* ``ceiling``: a plain aiokafka consumer (fresh group) decoding every value
  with orjson; timed from ``start()`` returned (group joined, partitions
  assigned) to the last value decoded.
* ``faust-bare``: a Faust agent with stock settings (only the session timeout
  lowered to 6 s; the web port moved to a free one and the data dir into the
  run directory, so runs do not collide) iterating ``async for`` over the raw
  values and doing nothing else.
* ``faust-bare-no-monitor`` and ``faust-take`` (ablations, only when asked
  for): the same without Faust's Monitor sensor, and with batches
  (``take_events``) instead of ``async for`` per event.
* ``naive``: a straightforward Faust agent, one event at a time: ``group_by``
  unit (a repartition topic, keyed by an orjson look-up of ``unit_code``),
  ``parse_event`` (pydantic) per event, one Faust Table update per valid event.
* ``dossier-stream``: the real :class:`dossier_stream.stream.runner.Worker` with an
  embedded ClickHouse (chdb) in the run directory, until every event is
  processed and its counters flushed. Its result also has ``cpu_s`` and
  ``cpu_us_per_event``: the process CPU (every thread) from ``start()``
  returned to that last flush, which a shared machine disturbs less than wall time;
  ``gc_s`` and ``gc_passes``: the part of it the garbage collector's passes took.
* ``freshness``: the real worker again; prints ``READY`` once started, reads
  ``SENT <n>`` on stdin, and records when each event id became visible in
  ClickHouse (the end of the flush that wrote it).
* ``freshness-ceiling`` (an ablation, only when asked for): the same live
  feed read by a plain aiokafka consumer — the broker's own latency.
* ``open-dossiers``: RSS of ``count`` open dossier states loaded into the
  RocksDB state store, and into the worker's processor's store in a child
  process for comparison (``open-templates`` writes the states it copies;
  both live in :mod:`bench.open_dossiers`).

The Faust scenarios and the worker are timed from the first message the
consumer hands to a stream (a Faust sensor's ``on_message_in``) to the last
event seen (to the end of the flush that stored the last counters for the
worker). Each is "done" when it has seen the expected number of messages,
never when end offsets say so (Tansu reports them short).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from bench.baselines import (
    ceiling,
    faust_bare,
    faust_crash,
    first_message_sensor,
    freshness_ceiling,
    naive,
)
from bench.launch import RESULT_PREFIX
from bench.measure import Progress, cpu_delta, peak_rss, thread_cpu, wait_done
from dossier_stream import compiled_modules

__all__ = ["SCENARIOS", "bench_metrics", "main"]

_LOG = logging.getLogger("bench.scenarios")


# ------------------------------------------------------------- the worker
def bench_metrics(target: int, track_ids: bool) -> Any:
    """The worker's :class:`~dossier_stream.stream.metrics.Metrics`, also stamping flushes.

    With ``track_ids``, ``visible`` maps each event id to the Unix time of the
    end of the first flush that *started after* its batch was handled: the
    worker reports a batch (``on_handled`` → :meth:`observe`) once its rows
    are buffered and before it flushes them, and a flush writes everything
    buffered when it starts (the start is the end minus the duration the
    flush hook gets). That holds if flushes ever move to a thread and agents
    interleave. ``done_at`` is the monotonic time of the first flush after
    which ``count()`` reached ``target``.
    """
    from dossier_stream.stream.metrics import Metrics  # noqa: PLC0415

    class BenchMetrics(Metrics):
        def __init__(self) -> None:
            super().__init__()
            self.count: Callable[[], int] = lambda: 0
            self.on_done: Callable[[], None] = lambda: None
            self.flush_s = 0.0  # wall of the flushes until done_at
            self.flushes = 0
            self.target = target
            self.done_at: float | None = None
            self.done_cpu: float | None = None  # time.process_time() at done_at
            self.pending: list[tuple[float, list[str]]] = []  # (handled at, event ids)
            self.visible: dict[str, float] = {}

        def observe(self, handled: Iterable[Any], *, now: float | None = None) -> None:
            handled = list(handled)
            super().observe(handled, now=now)
            if track_ids:
                ids = [h.outcome.event.event_id for h in handled if h.outcome.event is not None]
                if ids:
                    self.pending.append((time.time(), ids))

        def observe_flush(self, rows: int, seconds: float, error: BaseException | None) -> None:
            super().observe_flush(rows, seconds, error)
            if self.done_at is None:
                self.flush_s += seconds
                self.flushes += 1
            if error is not None:
                return
            if track_ids:
                end = time.time()
                began = end - seconds
                kept = []
                for at, ids in self.pending:
                    if at <= began:
                        for event_id in ids:
                            self.visible.setdefault(event_id, end)
                    else:
                        kept.append((at, ids))
                self.pending = kept
            if self.done_at is None and self.count() >= self.target:
                self.mark_done()

        def mark_done(self) -> None:
            """The last counters are stored: stamp the time, the CPU, and ``on_done``."""
            self.done_at = time.monotonic()
            self.done_cpu = time.process_time()
            self.on_done()

    return BenchMetrics()


def _worker(cfg: dict[str, Any], metrics: Any) -> Any:
    """The real worker on the configured broker, ClickHouse (chdb) in the run directory."""
    from pydantic import SecretStr  # noqa: PLC0415

    from dossier_stream.core.registry import UnitRegistry  # noqa: PLC0415
    from dossier_stream.core.topics import load_catalog  # noqa: PLC0415
    from dossier_stream.core.workdays import WorkCalendar  # noqa: PLC0415
    from dossier_stream.settings import Settings  # noqa: PLC0415
    from dossier_stream.store.views import write_units  # noqa: PLC0415
    from dossier_stream.stream.runner import Worker, open_store  # noqa: PLC0415

    workdir = Path(cfg["workdir"])
    settings = Settings(
        bootstrap_servers=cfg["bootstrap"],
        clickhouse_dsn=SecretStr(f"chdb://{(workdir / 'clickhouse').resolve()}"),
        app_id=cfg["group"],
        data_dir=workdir,
        metrics_port=0,
        metrics_host="127.0.0.1",
        log_level="WARNING",
        runtime=cfg.get("runtime", "batch"),
    )
    registry, calendar = UnitRegistry.load_default(), WorkCalendar.default()
    store = open_store(settings)
    write_units(store, registry)  # as `dossier-stream worker` does at start
    worker = Worker(settings, load_catalog(), registry, calendar, store, metrics=metrics)
    metrics.count = lambda: worker.processor.stats.events_in
    return worker


class _CollectorTime:
    """A ``gc.callbacks`` entry: process CPU of the garbage collector's passes."""

    def __init__(self) -> None:
        self.spent: list[tuple[float, float]] = []  # (end, seconds) of each pass
        self._start = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        del info
        now = time.process_time()
        if phase == "start":
            self._start = now
        else:
            self.spent.append((now, now - self._start))

    def until(self, end: float | None) -> tuple[float, int]:
        """Seconds (process CPU) and number of the passes ended by ``end`` (all: ``None``)."""
        kept = [s for at, s in self.spent if end is None or at <= end]
        return sum(kept), len(kept)


class _Window:
    """Where the measured window's time went: threads, the broker, the waits for records.

    Snapshots each thread's CPU (per thread name) of the worker's process and,
    when the broker's pid is known (``cfg["broker_pid"]``: the embedded broker
    runs on the same machine), of the broker's, at the window's start and at
    :meth:`close`; and wraps the batch runtime's ``getmany`` (its
    :class:`~dossier_stream.stream.holds.PartitionGuard`) to add up the wall
    time the worker spends awaiting records, and how many it got per call.
    With the batch runtime the window starts when the first records are
    fetched (the start of the scenario's events/s); otherwise at ``start()``.
    """

    def __init__(self, worker: Any, metrics: Any, broker_pid: int | None) -> None:
        self.metrics = metrics
        self.broker_pid = broker_pid
        self._start()
        self.closed: dict[str, Any] | None = None
        self.fetch_s = 0.0
        self.fetches = self.empty = self.records = 0
        guard = getattr(worker.app, "guard", None)
        if guard is not None:
            inner = guard.getmany

            async def timed(consumer: Any, timeout_ms: int, max_records: int) -> list[Any]:
                t = time.monotonic()
                got: list[Any] = await inner(consumer, timeout_ms, max_records)
                if not self.records:  # the window starts with the first records fetched
                    if got:
                        self._start()
                        self.records = len(got)
                    return got
                self.fetch_s += time.monotonic() - t
                self.fetches += 1
                self.records += len(got)
                self.empty += not got
                return got

            guard.getmany = timed

    def _start(self) -> None:
        self.t0 = time.monotonic()
        self.threads0 = thread_cpu()
        self.broker0 = thread_cpu(self.broker_pid) if self.broker_pid else {}

    def close(self) -> None:
        """The window ends (first call only)."""
        if self.closed is not None:
            return
        wall = time.monotonic() - self.t0
        threads = cpu_delta(thread_cpu(), self.threads0)
        broker = cpu_delta(thread_cpu(self.broker_pid), self.broker0) if self.broker_pid else {}
        self.closed = {
            "window_s": wall,
            "threads_cpu_s": threads,
            "broker_cpu_s": round(sum(broker.values()), 2) if self.broker_pid else None,
            "broker_threads_cpu_s": broker,
            "flush_s": self.metrics.flush_s,
            "flushes": self.metrics.flushes,
            "fetch_wait_s": self.fetch_s,
            "fetches": self.fetches,
            "fetches_empty": self.empty,
            "records_per_fetch": self.records / max(self.fetches, 1),
        }


async def dossier_stream(cfg: dict[str, Any]) -> dict[str, Any]:
    """The real worker, from the first event to the last counter flushed to ClickHouse."""
    started = time.monotonic()
    progress = Progress(cfg["expected"])
    metrics = bench_metrics(cfg["expected"], track_ids=False)
    worker = _worker(cfg, metrics)
    if cfg.get("runtime") == "faust":
        first_message_sensor(worker.app, progress)
    await worker.start()
    ready = time.monotonic()
    ready_cpu = time.process_time()
    window = _Window(worker, metrics, cfg.get("broker_pid"))
    metrics.on_done = window.close
    collector = _CollectorTime()
    gc.callbacks.append(collector)
    memlog = os.environ.get("BENCH_MEMORY_LOG")  # see bench/memlog.py
    if memlog:
        from bench.memlog import sample_every  # noqa: PLC0415

        sampler = asyncio.ensure_future(sample_every(worker, Path(memlog)))
    from bench.memlog import Watch  # noqa: PLC0415

    watch = Watch.from_env(worker.store)  # BENCH_MEMORY_WATCH, see bench/memlog.py

    def count() -> int:
        n = int(worker.processor.stats.events_in)
        if progress.first is None:  # the batch runtime stamps its first fetched message
            progress.first = getattr(worker.app, "first_message_at", None)
        if metrics.done_at is None and n >= progress.expected and len(worker.sink) == 0:
            metrics.mark_done()  # the last batches had nothing to write
        if metrics.done_at is not None:
            progress.last = metrics.done_at
            progress.done.set()
        return n

    try:
        await wait_done(progress, cfg, count, lambda: faust_crash(worker.app))
        window.close()  # no-op when done: closed by the last flush
        stats = worker.processor.stats
        progress.seen = stats.events_in
    finally:
        if memlog:
            from bench.memlog import chdb_memory, sample  # noqa: PLC0415

            sampler.cancel()
            with contextlib.suppress(Exception), Path(memlog).open("a") as fh:
                fh.write(json.dumps({**sample(worker), **chdb_memory(worker.store)}) + "\n")
        if watch is not None:
            watch.close()
        await worker.stop()
        worker.store.close()
    name = "dossier-stream-faust" if cfg.get("runtime") == "faust" else "dossier-stream"
    # process CPU (every thread: the event loop, chdb's, RocksDB's) from start() returned
    # to the flush that stored the last counters: the machine is shared, CPU is what counts
    cpu_s = (metrics.done_cpu if metrics.done_cpu is not None else time.process_time()) - ready_cpu
    gc.callbacks.remove(collector)
    gc_s, gc_passes = collector.until(metrics.done_cpu)
    return progress.result(
        name,
        ready,
        started,
        pipeline=stats.to_json(),
        cpu_s=cpu_s,
        cpu_us_per_event=cpu_s / max(progress.seen, 1) * 1e6,
        gc_s=gc_s,
        gc_passes=gc_passes,
        window=window.closed,
    )


async def dossier_stream_faust(cfg: dict[str, Any]) -> dict[str, Any]:
    """The real worker on its Faust runtime (``DOSSIER_RUNTIME=faust``), as ``dossier-stream``."""
    return await dossier_stream({**cfg, "runtime": "faust"})


async def freshness(cfg: dict[str, Any]) -> dict[str, Any]:
    """The worker fed live: when did each event id become visible in ClickHouse."""
    started = time.monotonic()
    metrics = bench_metrics(10**12, track_ids=True)
    worker = _worker(cfg, metrics)
    await worker.start()
    print("READY", flush=True)
    loop = asyncio.get_running_loop()
    line = await loop.run_in_executor(None, sys.stdin.readline)
    sent = int(line.split()[1]) if line.startswith("SENT ") else 0
    deadline = time.monotonic() + cfg["timeout_s"]
    try:
        while time.monotonic() < deadline:
            if worker.processor.stats.events_in >= sent and len(worker.sink) == 0:
                break
            await asyncio.sleep(0.05)
        stats = worker.processor.stats
    finally:
        await worker.stop()
        worker.store.close()
    out = Path(cfg["workdir"]) / "visible.json"
    out.write_bytes(json.dumps(metrics.visible).encode())
    return {
        "scenario": "freshness",
        "events": stats.events_in,
        "expected": sent,
        "complete": stats.events_in >= sent,
        "start_s": time.monotonic() - started,
        "visible_file": str(out),
        "peak_rss_bytes": peak_rss(),
        "pipeline": stats.to_json(),
    }


# ------------------------------------------------------------ open dossiers
def open_templates(cfg: dict[str, Any]) -> dict[str, Any]:
    """Write open dossier states of a simulated month (see :mod:`bench.open_dossiers`)."""
    from bench.open_dossiers import open_templates as run  # noqa: PLC0415

    return run(cfg)


def open_dossiers(cfg: dict[str, Any]) -> dict[str, Any]:
    """RSS per open dossier in a state store (see :mod:`bench.open_dossiers`)."""
    from bench.open_dossiers import open_dossiers as run  # noqa: PLC0415

    return run(cfg)


def _curve(name: str, cfg: dict[str, Any]) -> dict[str, Any]:
    """A scenario of :mod:`bench.curve` (the backfill, the year report)."""
    import bench.curve  # noqa: PLC0415

    result: dict[str, Any] = getattr(bench.curve, name)(cfg)
    return result


SCENARIOS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "ceiling": ceiling,
    "faust-bare": faust_bare,
    "faust-bare-no-monitor": functools.partial(faust_bare, variant="faust-bare-no-monitor"),
    "faust-take": functools.partial(faust_bare, variant="faust-take"),
    "naive": naive,
    "dossier-stream": dossier_stream,
    "dossier-stream-faust": dossier_stream_faust,
    "freshness": freshness,
    "freshness-ceiling": freshness_ceiling,
    "open-templates": open_templates,
    "open-dossiers": open_dossiers,
    "backfill": lambda cfg: _curve("backfill", cfg),
    "year-report": lambda cfg: _curve("year_report", cfg),
}


def main(argv: list[str] | None = None) -> int:
    """Run one scenario: ``NAME CONFIG.json``; print ``BENCH_RESULT {json}``."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2 or args[0] not in SCENARIOS:
        print(f"usage: python -m bench.scenarios {{{','.join(SCENARIOS)}}} CONFIG.json")
        return 2
    name, config = args
    cfg = json.loads(Path(config).read_text("utf-8"))
    logging.basicConfig(
        level=cfg.get("log_level", "WARNING"),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    outcome = SCENARIOS[name](cfg)
    result = asyncio.run(outcome) if asyncio.iscoroutine(outcome) else outcome
    # how many modules ran compiled (0: interpreted, a stale build or none, see summary)
    result.setdefault("compiled_modules", len(compiled_modules()))
    print(RESULT_PREFIX + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
