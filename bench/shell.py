"""The batch runtime's shell without a broker: ``python -m bench.shell``.

What the real worker (:class:`~dossier_stream.stream.ingest.BatchConsumer`)
does per batch *beyond* the fold, measured without Kafka. The benchmark's
workload is routed as ``produce`` publishes it (topic by ``event_type``,
partition by :func:`~dossier_stream.core.partitioner.partition_for` of the
key, so the re-keying check passes for every message) and cut into batches
of ``--batch`` messages, each grouped by partition as ``getmany`` returns
them. Then, on a fresh chdb store with the worker's RocksDB stores, metrics
and live figures (a real :class:`~dossier_stream.stream.runner.Worker`,
never started: no consumer, no producer, commits and publishes go nowhere):

* ``--mode fold``: what ``python -m bench.pipeline`` times: the processor's
  ``handle`` in chunks of 500 and one flush per batch, on prepared ``Message``\\ s;
* ``--mode shell``: ``BatchConsumer._handle`` on aiokafka ``ConsumerRecord``\\ s:
  the ``Message``\\ s built, ``recover``, the fold, ``on_handled``
  (``Metrics.observe``, ``LiveFigures.update``), the flush, the commit, and
  the batch's objects freed.

It prints process CPU per event (the first batch, which opens the stores, left
out; in ``shell`` mode its steps' CPU is printed apart) and, in ``shell``
mode, the part of it spent in each step (the fold,
``Metrics.observe``, ``LiveFigures.update``, the flush; the rest is the
shell's own: building messages, freeing the batch, the commit). Run both
modes, alternated: the shell's cost per event is the difference. The last
line is ``cpu_us_per_event=<x>``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import orjson
from aiokafka.structs import ConsumerRecord, TopicPartition

from dossier_stream.core.partitioner import partition_for
from dossier_stream.core.topics import TopicCatalog

__all__ = ["main", "records_of"]

_KEY_FIELD = {"dossier": "dossier_id", "feedback": "feedback_id", "unit": "unit_code"}
_CHUNK = 500
_TRACE_GC = bool(__import__("os").environ.get("BENCH_TRACE_GC"))


def records_of(lines: Sequence[bytes], catalog: TopicCatalog) -> list[tuple[Any, ...]]:
    """The fields of the records a consumer reads of what ``produce`` publishes.

    Unroutable lines are left out; each tuple is the arguments of a ``ConsumerRecord``.
    """
    out: list[tuple[Any, ...]] = []
    offsets: dict[tuple[str, int], int] = {}
    partitions = {t.name: t.partitions for t in catalog.topics}
    stamp = int(time.time() * 1000)
    for raw in lines:
        try:
            obj = orjson.loads(raw)
            topic = catalog.topic_for(obj["event_type"])
        except (orjson.JSONDecodeError, KeyError, TypeError):
            continue
        key = obj.get(_KEY_FIELD[topic.split(".", 1)[0]])
        if not isinstance(key, str):
            continue
        p = partition_for(key, partitions[topic])
        offset = offsets.get((topic, p), 0)
        offsets[(topic, p)] = offset + 1
        k = key.encode()
        out.append((topic, p, offset, stamp, 0, k, raw, None, len(k), len(raw), []))
    return out


def _batches(records: list[Any], size: int) -> list[list[Any]]:
    """Batches of ``size`` records, each grouped by partition (as ``getmany`` returns them)."""
    out = []
    for i in range(0, len(records), size):
        chunk = records[i : i + size]
        by_tp: dict[tuple[str, int], list[Any]] = {}
        for r in chunk:
            by_tp.setdefault((r[0], r[1]), []).append(r)
        out.append([r for group in by_tp.values() for r in group])
    return out


class _Timed:
    """Wraps a callable and sums the process CPU it takes."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn, self.cpu = fn, 0.0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        c0 = time.process_time()
        try:
            return self.fn(*args, **kwargs)
        finally:
            self.cpu += time.process_time() - c0


class _Delegate:
    """An object's attributes, through an instance whose own attributes can be replaced.

    The compiled classes (``scripts/compile``: the processor, the sink, the live figures)
    are native: their methods cannot be replaced on an instance, so the timers replace
    them on this stand-in, which the worker and its consumer are given instead.
    """

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def __len__(self) -> int:  # a special method is looked up on the type, not forwarded
        return len(self.inner)


class _GcTimer:
    """A ``gc.callbacks`` entry summing the process CPU of the collections."""

    def __init__(self) -> None:
        self.cpu, self.runs, self._start = 0.0, 0, 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._start = time.process_time()
        else:
            spent = time.process_time() - self._start
            self.cpu += spent
            self.runs += 1
            if _TRACE_GC:
                print(f"  gc gen{info['generation']} {spent * 1e3:.1f} ms {info['collected']}")


class _NoBroker:
    """Stands for the consumer and the producer: commits and sends go nowhere.

    ``getmany`` hands out ``batches`` one by one, as aiokafka ``ConsumerRecord``\\ s
    built then (their building is left out of :meth:`cpu`, which runs from the
    second batch fetched), then stops the loop.
    """

    def __init__(self, batches: list[list[tuple[Any, ...]]]) -> None:
        self.batches, self.fetched = batches, 0
        self.app: Any = None
        self.on_second: Callable[[], object] = lambda: None
        self.timed, self._c0, self._left_out = 0, 0.0, 0.0

    def cpu(self) -> float:
        """Process CPU from the second batch fetched to now, record building left out."""
        return time.process_time() - self._c0 - self._left_out

    async def getmany(self, timeout_ms: int, max_records: int) -> dict[Any, list[Any]]:
        del timeout_ms, max_records
        c0 = time.process_time()
        if self.fetched == 1:
            self.on_second()
            self._c0 = time.process_time()
        if self.fetched == len(self.batches):
            self.app.should_stop = True  # the loop ends after the batch in hand
            return {}
        fields = self.batches[self.fetched]
        self.batches[self.fetched] = []
        self.fetched += 1
        got: dict[Any, list[Any]] = {}
        for f in fields:
            tp = TopicPartition(f[0], f[1])
            got.setdefault(tp, []).append(ConsumerRecord(*f))
        if self.fetched > 1:
            self.timed += len(fields)
            self._left_out += time.process_time() - c0
        return got

    async def commit(self, offsets: Any) -> None:
        del offsets

    async def send(self, *args: Any, **kwargs: Any) -> asyncio.Future[None]:
        del args, kwargs
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


def _worker(workdir: Path, batches: list[list[tuple[Any, ...]]]) -> Any:
    from pydantic import SecretStr  # noqa: PLC0415

    from bench.scenarios import bench_metrics  # noqa: PLC0415
    from dossier_stream.core.registry import UnitRegistry  # noqa: PLC0415
    from dossier_stream.core.topics import load_catalog  # noqa: PLC0415
    from dossier_stream.core.workdays import WorkCalendar  # noqa: PLC0415
    from dossier_stream.settings import Settings  # noqa: PLC0415
    from dossier_stream.store.views import write_units  # noqa: PLC0415
    from dossier_stream.stream.runner import Worker, open_store  # noqa: PLC0415

    settings = Settings(
        bootstrap_servers="localhost:1",
        clickhouse_dsn=SecretStr(f"chdb://{(workdir / 'clickhouse').resolve()}"),
        app_id="bench-shell",
        data_dir=workdir,
        metrics_port=0,
        metrics_host="127.0.0.1",
        log_level="WARNING",
    )
    registry, calendar = UnitRegistry.load_default(), WorkCalendar.default()
    store = open_store(settings)
    write_units(store, registry)
    metrics = bench_metrics(10**12, track_ids=False)
    worker = Worker(settings, load_catalog(), registry, calendar, store, metrics=metrics)
    metrics.count = lambda: worker.processor.stats.events_in
    app = worker.app
    app.consumer = app.producer = _NoBroker(batches)
    app.consumer.app = app
    catalog = worker.catalog
    app.processor.rekeyer.set_partitions({t.name: t.partitions for t in catalog.topics})
    return worker


async def _run(
    worker: Any,
    batches: list[list[tuple[Any, ...]]],
    mode: str,
    timers: dict[str, _Timed],
    collector: _GcTimer,
) -> tuple[float, int]:
    """CPU seconds and messages of every batch but the first (which opens the stores)."""
    from dossier_stream.stream.processor import Message  # noqa: PLC0415

    app, processor, sink = worker.app, worker.processor, worker.sink
    if mode == "shell":
        app.consumer.on_second = lambda: _reset(timers, collector, report=True)
        await app._run()
        return app.consumer.cpu(), app.consumer.timed
    cpu, timed = 0.0, 0
    for n in range(len(batches)):
        msgs = [Message(f[0], f[1], f[2], f[6], f[5], f[3]) for f in batches[n]]
        batches[n] = []
        c0 = time.process_time()
        for start in range(0, len(msgs), _CHUNK):
            processor.handle(msgs[start : start + _CHUNK])
            if len(sink) >= sink.max_rows:
                sink.flush()
        sink.flush()
        size = len(msgs)
        del msgs
        if n:
            cpu += time.process_time() - c0
            timed += size
        else:  # the first batch opens the stores: left out, as by bench.pipeline
            _reset(timers, collector)
    return cpu, timed


def _reset(timers: dict[str, _Timed], collector: _GcTimer, *, report: bool = False) -> None:
    if report:  # the first batch's steps (stores opened, sources recovered and summed)
        print("first batch: " + ", ".join(f"{n} {t.cpu * 1e3:.1f} ms" for n, t in timers.items()))
    for t in timers.values():
        t.cpu = 0.0
    collector.cpu, collector.runs = 0.0, 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run one mode and print process CPU per event."""
    parser = argparse.ArgumentParser(prog="python -m bench.shell", description=__doc__)
    parser.add_argument("--events", type=int, default=60_000, help="simulated lines")
    parser.add_argument("--batch", type=int, default=20_000, help="messages per batch")
    parser.add_argument("--mode", choices=("fold", "shell"), default="shell")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lines", type=Path, help="JSONL of simulated lines (written if missing)")
    args = parser.parse_args(argv)

    from bench.workload import simulate_events  # noqa: PLC0415
    from dossier_stream.core.registry import UnitRegistry  # noqa: PLC0415
    from dossier_stream.core.topics import load_catalog  # noqa: PLC0415
    from dossier_stream.core.workdays import WorkCalendar  # noqa: PLC0415

    if args.lines is not None and args.lines.exists():
        lines = args.lines.read_bytes().splitlines()[: args.events]
    else:
        lines = simulate_events(
            args.events, UnitRegistry.load_default(), WorkCalendar.default(), seed=args.seed
        )
        if args.lines is not None:
            args.lines.write_bytes(b"\n".join(lines) + b"\n")
    batches = _batches(records_of(lines, load_catalog()), args.batch)
    del lines
    with tempfile.TemporaryDirectory(prefix="bench-shell-") as tmp:
        worker = _worker(Path(tmp), batches)
        timers: dict[str, _Timed] = {}
        if args.mode == "shell":
            # stand-ins wherever the worker and its consumer hold them (the compiled
            # classes' methods cannot be replaced on their instances)
            processor, metrics = _Delegate(worker.processor), _Delegate(worker.metrics)
            live, sink = _Delegate(worker.live), _Delegate(worker.sink)
            worker.app.processor, worker.app.sink = processor, sink
            worker.metrics, worker.live = metrics, live
            for name, obj, attr in (
                ("fold", processor, "handle"),
                ("recover", processor, "recover"),
                ("observe", metrics, "observe"),
                ("live", live, "update"),
                ("flush", sink, "flush"),
            ):
                timers[name] = _Timed(getattr(obj, attr))
                setattr(obj, attr, timers[name])
        worker.collector.start()  # the worker's policy (runner.Worker.start)
        collector = _GcTimer()
        gc.callbacks.append(collector)
        cpu, timed = asyncio.run(_run(worker, batches, args.mode, timers, collector))
        stats = worker.processor.stats
        print(
            f"{stats.events_in} events in batches of {args.batch} ({args.mode}): "
            f"{stats.valid} applied, {stats.duplicates} duplicates, "
            f"{stats.deadletter} dead letters"
        )
        if timed:
            for name, t in timers.items():
                print(f"{name:<8} {t.cpu / timed * 1e6:8.2f} µs/event")
            print(f"gc       {collector.cpu / timed * 1e6:8.2f} µs/event ({collector.runs} runs)")
            print(f"cpu_us_per_event={cpu / timed * 1e6:.2f}")
        worker.processor.close()
        worker.live.close()
        worker.store.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
