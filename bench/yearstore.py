"""A year-sized chdb store built offline, then the year report read from it, timed.

``python -m bench.yearstore --out DIR [--tiles 11] [--lines month.jsonl]``
simulates the benchmark's month once (or reads it from ``--lines``, writing it
there when the file is missing), tiles it as the ``scale`` scenario does
(:mod:`bench.scale`: tile ``k`` = ids prefixed ``T<k>-``, dates moved back
``k`` × 35 days) and folds every tile through the worker's real hot path
(:class:`~dossier_stream.stream.processor.Processor` and
:class:`~dossier_stream.store.batching.BatchingSink`, as :mod:`bench.pipeline`
does, without Kafka) into the chdb store at ``DIR/ch``. Eleven tiles of the
369.000-line month make about 4 million events over 13 months: the store
that the ``year-report`` scenario measures after a 3-million ``scale`` run.

Then (or with ``--report``, on the store already built) it times
``report_from_store`` over the last 365 days with data, as the ``year-report``
scenario does (:func:`bench.curve.year_report`). With ``--compare`` it also
times, part by part and ``--repeat`` times each, the per-day path the report
took before issue 18's second round (every (unit, day, counter) row and every
open dossier's state into Python, :func:`per_day_report`) against the
aggregated one, and checks that both give the same report.
"""

from __future__ import annotations

import argparse
import gc
import json
import shutil
import statistics
import time
from collections.abc import Callable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

from bench.pipeline import route
from bench.scale import shift_line
from dossier_stream.core.counters import open_past_due
from dossier_stream.core.indicators import build_report, report_from_totals
from dossier_stream.core.periods import Period
from dossier_stream.core.registry import UnitRegistry
from dossier_stream.core.topics import load_catalog
from dossier_stream.core.workdays import WorkCalendar
from dossier_stream.store.batching import BatchingSink
from dossier_stream.store.codec import loads_dossier
from dossier_stream.store.reportreads import counter_totals, open_past_due_counts
from dossier_stream.store.sink import ClickHouseStore, connect
from dossier_stream.store.statestore import open_dossier_store
from dossier_stream.stream.processor import Message, Processor

__all__ = ["build", "compare", "main", "per_day_report"]

_CHUNK = 500


def build(out: Path, base: Sequence[bytes], tiles: int, *, batch: int, partitions: int) -> int:
    """Fold ``tiles`` tiles of ``base`` into a fresh chdb store at ``out/ch``; events folded."""
    registry, calendar = UnitRegistry.load_default(), WorkCalendar.default()
    catalog = load_catalog()
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    store = ClickHouseStore(connect(f"chdb://{(out / 'ch').resolve()}"))
    store.migrate()
    sink = BatchingSink(store, max_rows=100_000, interval_s=3600.0)
    states = out / "states"
    processor = Processor(
        registry,
        calendar,
        catalog,
        sink,
        store,
        dossier_store=lambda source: open_dossier_store(states, source),
    )
    gc.set_threshold(50_000, 20, 100)
    gc.freeze()
    offsets: dict[tuple[str, int], int] = {}
    folded = 0
    try:
        # the oldest tile first, as a backlog would be read
        for k in reversed(range(tiles)):
            cache: dict[bytes, bytes] = {}
            messages = []
            for m in route([shift_line(raw, k, cache) for raw in base], catalog, partitions):
                start = offsets.get((m.topic, m.partition), 0)
                messages.append(Message(m.topic, m.partition, start + m.offset, m.value))
            for m in messages:
                offsets[(m.topic, m.partition)] = max(
                    offsets.get((m.topic, m.partition), 0), m.offset + 1
                )
            for first in range(0, len(messages), batch):
                chunk = messages[first : first + batch]
                for at in range(0, len(chunk), _CHUNK):
                    processor.handle(chunk[at : at + _CHUNK])
                    if len(sink) >= sink.max_rows:
                        sink.flush()
                sink.flush()
            folded += len(messages)
            print(f"tile {k}: {len(messages)} messages, {folded} in all", flush=True)
    finally:
        processor.close()
        store.close()
    shutil.rmtree(states, ignore_errors=True)
    return folded


def per_day_report(store: ClickHouseStore, registry: UnitRegistry, period: Period) -> Any:
    """The report as ``report_from_store`` built it before: every row and open state in Python."""
    states = [loads_dossier(raw) for raw in store.open_states(period.ends_at)]
    return build_report(
        store.counters(period.start, period.end),
        registry,
        period,
        reported_totals=store.reported_totals(period.start, period.end),
        open_past_due=open_past_due(states, period.ends_at),
    )


def _timed(what: Callable[[], Any], repeat: int) -> tuple[Any, dict[str, float]]:
    """``what()`` run ``repeat`` times: its last result, median wall and process CPU seconds."""
    walls: list[float] = []
    cpus: list[float] = []
    out: Any = None
    for _ in range(repeat):
        w, c = time.perf_counter(), time.process_time()
        out = what()
        walls.append(time.perf_counter() - w)
        cpus.append(time.process_time() - c)
    return out, {"wall_s": statistics.median(walls), "cpu_s": statistics.median(cpus)}


def compare(chdb: Path, repeat: int) -> dict[str, Any]:
    """Each part of the year report, per-day path against aggregated path, timed; same report."""
    registry = UnitRegistry.load_default()
    store = ClickHouseStore(connect(f"chdb://{chdb.resolve()}"))
    try:
        last = store.day_span()[1]
        p = Period(last - timedelta(days=364), last)
        at = p.ends_at
        parts: dict[str, Any] = {}
        rows, parts["per_day.counters"] = _timed(lambda: store.counters(p.start, p.end), repeat)
        raw, parts["per_day.open_states"] = _timed(lambda: store.open_states(at), repeat)
        states, parts["per_day.decode"] = _timed(lambda: [loads_dossier(r) for r in raw], repeat)
        opd, parts["per_day.open_past_due"] = _timed(lambda: open_past_due(states, at), repeat)
        old, parts["per_day.build_report"] = _timed(
            lambda: build_report(rows, registry, p, open_past_due=opd), repeat
        )
        totals, parts["sql.counter_totals"] = _timed(
            lambda: counter_totals(store, p.start, p.end), repeat
        )
        sql_opd, parts["sql.open_past_due"] = _timed(
            lambda: open_past_due_counts(store, at), repeat
        )
        new, parts["sql.report_from_totals"] = _timed(
            lambda: report_from_totals(totals, registry, p, open_past_due=sql_opd), repeat
        )
        _, parts["per_day.whole"] = _timed(lambda: per_day_report(store, registry, p), repeat)
        from dossier_stream.stream.runner import report_from_store  # noqa: PLC0415

        final, parts["sql.whole"] = _timed(lambda: report_from_store(store, registry, p), repeat)
        return {
            "period": [p.start.isoformat(), p.end.isoformat()],
            "counter_rows": len(rows),
            "open_states": len(raw),
            "unit_counter_rows": sum(len(v) for v in totals.values()),
            "same_report": old == new and final == per_day_report(store, registry, p),
            "parts": parts,
        }
    finally:
        store.close()


def main(argv: Sequence[str] | None = None) -> int:
    """Build the store (unless ``--report``), then time the year report on it."""
    parser = argparse.ArgumentParser(prog="python -m bench.yearstore", description=__doc__)
    parser.add_argument("--out", type=Path, required=True, help="directory of the store")
    parser.add_argument("--tiles", type=int, default=11, help="tiles of the month (35 days each)")
    parser.add_argument("--events", type=int, default=400_000, help="lines of the base month")
    parser.add_argument("--lines", type=Path, help="JSONL of the base month (read or written)")
    parser.add_argument("--batch", type=int, default=20_000)
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--report", action="store_true", help="only time the report")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--compare", action="store_true", help="time the per-day path too")
    args = parser.parse_args(argv)

    if not args.report:
        registry, calendar = UnitRegistry.load_default(), WorkCalendar.default()
        if args.lines is not None and args.lines.exists():
            base = args.lines.read_bytes().splitlines()[: args.events]
        else:
            from bench.workload import simulate_events  # noqa: PLC0415

            base = simulate_events(args.events, registry, calendar)
            if args.lines is not None:
                args.lines.write_bytes(b"\n".join(base) + b"\n")
        t0 = time.process_time()
        n = build(args.out, base, args.tiles, batch=args.batch, partitions=args.partitions)
        print(f"built: {n} messages, {time.process_time() - t0:.0f} s CPU", flush=True)

    if args.compare:
        print(json.dumps(compare(args.out / "ch", args.repeat), ensure_ascii=False, indent=1))
        return 0
    from bench.curve import year_report  # noqa: PLC0415

    result = year_report({"chdb": str((args.out / "ch").resolve()), "repeat": args.repeat})
    print(json.dumps(result, default=str, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
