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
import resource
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

__all__ = ["main", "peak_rss"]

RESULT_PREFIX = "BENCH_RESULT "

_LOG = logging.getLogger("bench.scenarios")


def _peak_rss() -> int:
    """Peak resident set size of this process, in bytes.

    ``VmHWM`` of ``/proc/self/status``: the high-water mark of this process's
    own address space. ``ru_maxrss`` would not do: Linux carries it over
    ``fork`` + ``exec``, so a child reports its parent's peak when larger.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


peak_rss = _peak_rss


def thread_cpu(pid: int | str = "self") -> dict[str, float]:
    """CPU seconds (user + system) of each thread of ``pid``, summed per thread name.

    Read from ``/proc/<pid>/task/*/stat`` (Linux; empty elsewhere). Threads that
    ended are not counted: the caller takes differences over a window in which
    the worker's threads (the event loop, chdb's pools, RocksDB's) all live.
    """
    tick = os.sysconf("SC_CLK_TCK")
    out: dict[str, float] = {}
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/stat", encoding="utf-8", errors="replace") as fh:
                stat = fh.read()
        except OSError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        out[name] = out.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / tick
    return out


def _cpu_delta(after: dict[str, float], before: dict[str, float]) -> dict[str, float]:
    """``after`` − ``before`` per name, largest first (names new in ``after`` count whole)."""
    delta = {k: round(v - before.get(k, 0.0), 2) for k, v in after.items()}
    return dict(sorted(((k, v) for k, v in delta.items() if v > 0), key=lambda kv: -kv[1]))


def _rss() -> int:
    """Current resident set size of this process, in bytes."""
    with open("/proc/self/statm", encoding="ascii") as fh:
        pages = int(fh.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE")


class _Progress:
    """What a consumer saw and when (monotonic seconds)."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.seen = 0
        self.first: float | None = None
        self.last: float | None = None
        self.done = asyncio.Event()

    def result(self, name: str, ready: float, started: float, **extra: Any) -> dict[str, Any]:
        """The scenario's result record."""
        first = self.first if self.first is not None else ready
        last = self.last if self.last is not None else time.monotonic()
        seconds = max(last - first, 1e-9)
        return {
            "scenario": name,
            "events": self.seen,
            "expected": self.expected,
            "complete": self.seen >= self.expected,
            "seconds": seconds,
            "events_per_s": self.seen / seconds,
            "start_s": ready - started,
            "ready_to_last_s": last - ready,
            "peak_rss_bytes": _peak_rss(),
            **extra,
        }


async def _wait(
    progress: _Progress,
    cfg: dict[str, Any],
    count: Callable[[], int],
    crashed: Callable[[], object] = lambda: None,
) -> None:
    """Wait until done, a crash, the time limit, or ``idle_s`` without progress."""
    deadline = time.monotonic() + cfg["timeout_s"]
    last_n, last_change = -1, time.monotonic()
    while not progress.done.is_set():
        n = count()
        now = time.monotonic()
        if (reason := crashed()) is not None:
            raise RuntimeError(f"crashed at {n} of {progress.expected}: {reason!r}")
        if n != last_n:
            last_n, last_change = n, now
        elif now - last_change > cfg["idle_s"]:
            _LOG.warning("no progress for %.0f s at %s of %s", cfg["idle_s"], n, progress.expected)
            return
        if now > deadline:
            _LOG.warning("time limit: %s of %s", n, progress.expected)
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(progress.done.wait(), 0.05)


# ------------------------------------------------------------------ ceiling
async def ceiling(cfg: dict[str, Any]) -> dict[str, Any]:
    """A plain aiokafka consumer decoding every value with orjson."""
    import orjson  # noqa: PLC0415
    from aiokafka import AIOKafkaConsumer  # noqa: PLC0415

    started = time.monotonic()
    progress = _Progress(cfg["expected"])
    consumer = AIOKafkaConsumer(
        *cfg["topics"],
        bootstrap_servers=cfg["bootstrap"],
        group_id=cfg["group"],
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        session_timeout_ms=int(cfg["session_timeout_s"] * 1000),
        heartbeat_interval_ms=2000,
    )
    await consumer.start()
    ready = time.monotonic()
    progress.first = ready
    invalid = 0
    deadline = ready + cfg["timeout_s"]
    try:
        while progress.seen < progress.expected and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=200)
            for messages in batches.values():
                for msg in messages:
                    try:
                        orjson.loads(msg.value)
                    except orjson.JSONDecodeError:
                        invalid += 1
                progress.seen += len(messages)
        progress.last = time.monotonic()
    finally:
        await consumer.stop()
    return progress.result("ceiling", ready, started, not_json=invalid)


# ------------------------------------------------------------------- Faust
def _first_message_sensor(app: Any, progress: _Progress) -> None:
    """Add a Faust sensor that stamps the first message handed to a stream.

    It removes itself after that message (soon after: not while the sensors
    are being iterated), so it costs nothing per event afterwards.
    """
    import faust  # noqa: PLC0415

    class FirstMessage(faust.Sensor):
        def on_message_in(self, tp: Any, offset: int, message: Any) -> None:
            if progress.first is None:
                progress.first = time.monotonic()
                asyncio.get_running_loop().call_soon(app.sensors.remove, self)

    app.sensors.add(FirstMessage())


def _stock_app(cfg: dict[str, Any], **extra: Any) -> Any:
    """A Faust app with stock settings, but the session timeout, web port and data dir."""
    import faust  # noqa: PLC0415

    from dossier_stream.stream.app import patch_tansu_leave_group  # noqa: PLC0415
    from dossier_stream.stream.embedded import free_port  # noqa: PLC0415

    patch_tansu_leave_group()
    return faust.App(
        cfg["group"],
        broker=f"kafka://{cfg['bootstrap']}",
        broker_session_timeout=cfg["session_timeout_s"],
        web_port=free_port(),
        datadir=str(Path(cfg["workdir"]) / "faust"),
        **extra,
    )


def _faust_crash(app: Any) -> object:
    """Why the app or one of its agents crashed (``None`` while all is well)."""
    if getattr(app, "crash_reason", None) is not None:
        return app.crash_reason
    for agent in getattr(app, "agents", {}).values():
        for actor in getattr(agent, "_actors", ()):
            if getattr(actor, "crash_reason", None) is not None:
                return actor.crash_reason
    return None


async def _run_faust(
    name: str,
    cfg: dict[str, Any],
    app: Any,
    progress: _Progress,
    started: float,
    extra: Callable[[], dict[str, Any]] = dict,
    *,
    after_start: Callable[[], None] | None = None,
) -> dict[str, Any]:
    _first_message_sensor(app, progress)
    await app.start()
    ready = time.monotonic()
    if after_start is not None:
        after_start()
    try:
        if app.crash_reason:
            raise RuntimeError(f"the Faust app crashed at start: {app.crash_reason!r}")
        await _wait(progress, cfg, lambda: progress.seen, lambda: _faust_crash(app))
    finally:
        await app.stop()
    return progress.result(name, ready, started, **extra())


async def faust_bare(cfg: dict[str, Any], variant: str = "faust-bare") -> dict[str, Any]:
    """A stock Faust agent iterating over the events and doing nothing else.

    Variants (ablations, not run by default): ``faust-bare-no-monitor``
    removes Faust's default Monitor sensor once the app is started;
    ``faust-take`` takes batches (``take_events(2000, within=1.0)``, as the
    worker does) instead of one event at a time.
    """
    started = time.monotonic()
    progress = _Progress(cfg["expected"])
    app = _stock_app(cfg)
    topic = app.topic(*cfg["topics"], value_serializer="raw")

    def seen(n: int) -> None:
        progress.seen += n
        if progress.seen >= progress.expected and not progress.done.is_set():
            progress.last = time.monotonic()
            progress.done.set()

    async def bare(stream: Any) -> None:
        if variant == "faust-take":
            async for events in stream.take_events(2_000, within=1.0):
                seen(len(events))
        else:
            async for _value in stream:
                seen(1)

    app.agent(topic, name="bare")(bare)

    def drop_monitor() -> None:  # the app adds its Monitor when it starts
        app.sensors.remove(app.monitor)

    after_start = drop_monitor if variant == "faust-bare-no-monitor" else None
    return await _run_faust(variant, cfg, app, progress, started, after_start=after_start)


def _unit_of(value: bytes) -> str:
    """The ``unit_code`` of a raw event (``?`` when it has none): the ``group_by`` key."""
    import orjson  # noqa: PLC0415

    try:
        obj = orjson.loads(value)
    except orjson.JSONDecodeError:
        return "?"
    unit = obj.get("unit_code") if isinstance(obj, dict) else None
    return unit if isinstance(unit, str) else "?"


async def naive(cfg: dict[str, Any]) -> dict[str, Any]:
    """The straightforward Faust agent: group_by unit, pydantic per event, a Table update."""
    from dossier_stream.core.events import InvalidEvent, parse_event  # noqa: PLC0415

    started = time.monotonic()
    progress = _Progress(cfg["expected"])
    app = _stock_app(cfg)
    topic = app.topic(*cfg["topics"], value_serializer="raw")
    # the input spans several topics, so the repartition topic is named here
    by_unit = app.topic(
        f"{cfg['group']}-naive-unit-repartition", value_serializer="raw", internal=True
    )
    counts = app.Table("counts", default=int)
    invalid = [0]

    async def per_event(stream: Any) -> None:
        async for value in stream.group_by(_unit_of, name="unit", topic=by_unit):
            try:
                event = parse_event(value)
            except InvalidEvent:
                invalid[0] += 1
            else:
                counts[f"{event.unit_code}|{event.event_type}"] += 1
            progress.seen += 1
            if progress.seen >= progress.expected and not progress.done.is_set():
                progress.last = time.monotonic()
                progress.done.set()

    app.agent(topic, name="naive")(per_event)
    return await _run_faust("naive", cfg, app, progress, started, lambda: {"invalid": invalid[0]})


# ------------------------------------------------------------- the worker
def _bench_metrics(target: int, track_ids: bool) -> Any:
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
        threads = _cpu_delta(thread_cpu(), self.threads0)
        broker = _cpu_delta(thread_cpu(self.broker_pid), self.broker0) if self.broker_pid else {}
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
    progress = _Progress(cfg["expected"])
    metrics = _bench_metrics(cfg["expected"], track_ids=False)
    worker = _worker(cfg, metrics)
    if cfg.get("runtime") == "faust":
        _first_message_sensor(worker.app, progress)
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
        await _wait(progress, cfg, count, lambda: _faust_crash(worker.app))
        window.close()  # no-op when done: closed by the last flush
        stats = worker.processor.stats
        progress.seen = stats.events_in
    finally:
        if memlog:
            from bench.memlog import chdb_memory, sample  # noqa: PLC0415

            sampler.cancel()
            with contextlib.suppress(Exception), Path(memlog).open("a") as fh:
                fh.write(json.dumps({**sample(worker), **chdb_memory(worker.store)}) + "\n")
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
    metrics = _bench_metrics(10**12, track_ids=True)
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
        "peak_rss_bytes": _peak_rss(),
        "pipeline": stats.to_json(),
    }


async def freshness_ceiling(cfg: dict[str, Any]) -> dict[str, Any]:
    """A plain aiokafka consumer fed live: when did each event id arrive (the broker's floor)."""
    import orjson  # noqa: PLC0415
    from aiokafka import AIOKafkaConsumer  # noqa: PLC0415

    started = time.monotonic()
    consumer = AIOKafkaConsumer(
        *cfg["topics"],
        bootstrap_servers=cfg["bootstrap"],
        group_id=cfg["group"],
        auto_offset_reset="earliest",
        session_timeout_ms=int(cfg["session_timeout_s"] * 1000),
        heartbeat_interval_ms=2000,
    )
    await consumer.start()
    print("READY", flush=True)
    arrived: dict[str, float] = {}
    seen = 0
    sent: list[int] = []

    async def control() -> None:
        line = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        sent.append(int(line.split()[1]) if line.startswith("SENT ") else 0)

    task = asyncio.create_task(control())
    deadline = time.monotonic() + cfg["timeout_s"]
    try:
        while time.monotonic() < deadline and not (sent and seen >= sent[0]):
            batches = await consumer.getmany(timeout_ms=100)
            now = time.time()
            for messages in batches.values():
                seen += len(messages)
                for msg in messages:
                    try:
                        event_id = orjson.loads(msg.value).get("event_id")
                    except (orjson.JSONDecodeError, AttributeError):
                        continue
                    if isinstance(event_id, str):
                        arrived.setdefault(event_id, now)
    finally:
        task.cancel()
        await consumer.stop()
    out = Path(cfg["workdir"]) / "visible.json"
    out.write_bytes(json.dumps(arrived).encode())
    return {
        "scenario": "freshness-ceiling",
        "events": seen,
        "expected": sent[0] if sent else 0,
        "complete": bool(sent) and seen >= sent[0],
        "start_s": time.monotonic() - started,
        "visible_file": str(out),
        "peak_rss_bytes": _peak_rss(),
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
    print(RESULT_PREFIX + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
