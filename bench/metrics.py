"""Micro-benchmark of the worker's metrics: ``python -m bench.metrics``.

No broker and no ClickHouse. The simulated month of ``python -m bench``
(:func:`bench.workload.simulate_events`) is routed to its topics and to
``--partitions`` sources the way ``produce`` keys it, and folded batch by
batch by one :class:`~dossier_stream.core.engine.Engine` per source, as the
worker's processor does (untimed). After each fold it times what the
worker's ``on_handled`` hook does with the batch (``Metrics.observe`` and
``LiveFigures.update``) and the flush hook (``Metrics.observe_flush``, one
flush per batch). Every ``--refresh-events`` events it times the gauge
refresh (``LiveFigures.snapshot`` + ``Metrics.set_live``), which the worker
runs every 5 s: 15.000 events is 5 s at 3.000 events/s. The objects the
fold made are moved out of the collector's sight (:func:`gc.freeze`) before
each timed call, so that a full collection they trigger is not charged to
the metrics. Times are CPU time of this process (:func:`time.process_time`):
other processes sharing the cores inflate them less than wall time, but
they still do (caches), so compare figures of one period, alternating.

The clock of the live figures is fixed at ``--at``: by default the end of
the simulated period, so the indicator totals and the open dossiers are
those a worker would hold live; ``--at now`` is what ``python -m bench``
measures (no event falls in the window, every unfinished dossier is open).
The output is one line per figure; the last one is
``metrics_us_per_event=<x>``: everything per event, the refresh (after the
first, which creates the gauge series) amortised over ``--refresh-events``.
"""

from __future__ import annotations

import argparse
import gc
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

import orjson

from dossier_stream.core.engine import DeadLetter, Engine, Outcome
from dossier_stream.core.registry import UnitRegistry
from dossier_stream.core.topics import TopicCatalog, load_catalog
from dossier_stream.core.workdays import VN_TZ, WorkCalendar
from dossier_stream.stream.metrics import LiveFigures, Metrics
from dossier_stream.stream.processor import Handled, source_of

__all__ = ["main", "route"]

_KEY_FIELD = {"dossier": "dossier_id", "feedback": "feedback_id", "unit": "unit_code"}


def route(raw: bytes, catalog: TopicCatalog, partitions: int) -> tuple[str, str]:
    """``(source, topic)`` of a line; source ``""`` on the dead-letter topic if unroutable."""
    try:
        obj = orjson.loads(raw)
        topic = catalog.topic_for(obj["event_type"])
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return "", catalog.deadletter.name
    key = obj.get(_KEY_FIELD[topic.split(".", 1)[0]])
    key = key if isinstance(key, str) else ""
    return source_of(topic, zlib.crc32(key.encode()) % partitions), topic


def _timed(call: Callable[[], object]) -> float:
    t0 = time.process_time()
    call()
    return time.process_time() - t0


def _fold(
    lines: list[tuple[str, str, bytes]], engines: dict[str, Engine], make: Callable[[], Engine]
) -> list[Handled]:
    """What ``Processor.handle`` returns for these lines (sources' engines made on first use)."""
    handled: list[Handled] = []
    for source, topic, raw in lines:
        if not source:  # what Processor.count_producer_dead_letter reports
            dead = DeadLetter("unroutable", "unroutable", "", b"", topic)
            handled.append(Handled("", topic, Outcome("deadletter", dead_letter=dead)))
            continue
        engine = engines.get(source)
        if engine is None:
            engine = engines[source] = make()
        handled.append(Handled(source, topic, engine.process(raw, topic=topic)))
        engine.dead_letters.clear()
    return handled


@dataclass
class _Timings:
    """CPU seconds spent, summed over the run."""

    observe: float = 0.0  # Metrics.observe
    update: float = 0.0  # LiveFigures.update
    flush: float = 0.0  # Metrics.observe_flush
    first_refresh: float = 0.0  # LiveFigures.snapshot + Metrics.set_live, the first time
    refresh: float = 0.0  # the same, every later time
    refreshes: int = 0


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.metrics", description=__doc__)
    parser.add_argument("--events", type=int, default=60_000, help="simulated lines")
    parser.add_argument("--batch", type=int, default=2000, help="events per batch")
    parser.add_argument("--partitions", type=int, default=6, help="sources per topic family")
    parser.add_argument(
        "--refresh-events", type=int, default=15_000, help="events between gauge refreshes"
    )
    parser.add_argument(
        "--at",
        default="2024-10-14T20:00:00+07:00",
        help="the live figures' clock (ISO), or 'now' (as in `python -m bench`: no event in the"
        " window)",
    )
    parser.add_argument("--seed", type=int, default=0, help="the simulator's seed")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print its figures; returns the exit status."""
    args = _parse(argv)
    from bench.workload import simulate_events  # noqa: PLC0415

    registry, calendar, catalog = (
        UnitRegistry.load_default(),
        WorkCalendar.default(),
        load_catalog(),
    )
    lines = simulate_events(args.events, registry, calendar, seed=args.seed)
    routed = [(*route(raw, catalog, args.partitions), raw) for raw in lines]
    at = datetime.now(VN_TZ) if args.at == "now" else datetime.fromisoformat(args.at)
    engines: dict[str, Engine] = {}
    metrics = Metrics()
    live = LiveFigures(registry, clock=lambda: at)
    spent = _Timings()
    next_refresh = args.refresh_events
    for start in range(0, len(routed), args.batch):
        handled = _fold(
            routed[start : start + args.batch],
            engines,
            lambda: Engine(registry, calendar, catalog=catalog),
        )
        gc.freeze()  # a full collection the fold's garbage would trigger is not the metrics' cost
        t0 = time.process_time()
        metrics.observe(handled)
        t1 = time.process_time()
        live.update(handled, engines)
        t2 = time.process_time()
        metrics.observe_flush(len(handled), 0.05, None)
        spent.observe += t1 - t0
        spent.update += t2 - t1
        spent.flush += time.process_time() - t2
        if start + len(handled) >= next_refresh:
            seconds = _timed(lambda: metrics.set_live(live.snapshot(engines)))
            if spent.refreshes:
                spent.refresh += seconds
            else:
                spent.first_refresh = seconds
            spent.refreshes += 1
            next_refresh += args.refresh_events

    load = _timed(lambda: LiveFigures(registry, clock=lambda: at).snapshot(engines))
    snap = live.snapshot(engines)
    n = len(routed)
    refresh = spent.refresh / max(spent.refreshes - 1, 1)
    per_event = {
        "observe": spent.observe / n,
        "update": spent.update / n,
        "observe_flush": spent.flush / n,
        "refresh": refresh / args.refresh_events,
    }
    print(f"events={n} batch={args.batch} sources={len(engines)} at={at.isoformat()}")
    print(f"open_dossiers={sum(snap.open.values())} past_due={sum(snap.past_due.values())}")
    print(f"indicator_series={len(snap.indicators)} refreshes={spent.refreshes}")
    for name, seconds in per_event.items():
        print(f"{name}_us_per_event={seconds * 1e6:.3f}")
    print(f"refresh_ms={refresh * 1e3:.3f} first_refresh_ms={spent.first_refresh * 1e3:.3f}")
    print(f"cold_snapshot_ms={load * 1e3:.3f}")
    print(f"metrics_us_per_event={sum(per_event.values()) * 1e6:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
