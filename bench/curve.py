"""Repetitions, the scale curve, the multi-process backfill and the year report.

Called by :mod:`bench.cli` (the orchestrator, in the parent process) and by
:mod:`bench.scenarios` (``backfill`` and ``year-report``, each in a process
of its own):

* :func:`summarize_repetitions`: the throughput scenarios run ``--repeat``
  times, interleaved (ceiling, faust-bare, dossier-stream, ceiling, …), and
  each ratio is taken within a repetition, then its median and spread
  (min–max) over the repetitions: one noisy moment moves one repetition;
* :func:`run_scale`: for each size, the topics are created afresh, the
  benchmark's month is tiled up to that many events (:mod:`bench.scale`,
  streamed in chunks) and the real worker reads them all (throughput and peak
  RSS per size). With ``bracket``, the smallest size runs once more after the
  largest (A, B, …, Z, A), and ``scale_flatness`` = events/s at the largest
  size over the mean of the smallest size's two runs: the long run takes an
  hour, this machine's speed drifts from hour to hour, and a baseline taken
  only before it let the hour decide the ratio (0,726 and 0,844 for the same
  worker code in two runs). Without ``bracket``: largest over smallest;
* :func:`run_backfill_pairs`: :func:`dossier_stream.stream.backfill.run_backfill`
  with 1 process and with ``--backfill-processes``, interleaved, on the same
  published workload (fresh groups, fresh stores); the speed-up is taken
  within each pair;
* :func:`year_report`: a report over the last 365 days of the largest scale
  run's store, read from ClickHouse (``report_from_store``), timed.
"""

from __future__ import annotations

import asyncio
import math
import statistics
import time
from collections.abc import Callable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

__all__ = [
    "backfill",
    "flatness",
    "run_backfill_pairs",
    "run_scale",
    "spread",
    "summarize_repetitions",
    "year_report",
]

RunScenario = Callable[..., dict[str, Any]]
Log = Callable[[str], None]


def spread(values: Sequence[float]) -> dict[str, Any]:
    """Median, min and max of ``values`` (NaN-free), with the values."""
    vals = [v for v in values if not math.isnan(v)]
    if not vals:
        return {"median": float("nan"), "min": float("nan"), "max": float("nan"), "values": []}
    return {
        "median": statistics.median(vals),
        "min": min(vals),
        "max": max(vals),
        "values": list(values),
    }


def summarize_repetitions(runs: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Per-repetition ratios of the worker to each baseline, and their median and spread."""
    ds = runs.get("dossier-stream", [])
    out: dict[str, Any] = {"repetitions": len(ds)}
    for base in ("ceiling", "faust-bare"):
        other = runs.get(base, [])
        pairs = [
            a["events_per_s"] / b["events_per_s"]
            for a, b in zip(ds, other, strict=False)
            if a.get("complete") and b.get("complete")
        ]
        out[f"ratio_to_{base.replace('-', '_')}"] = spread(pairs)
    for name, recs in runs.items():
        out[f"events_per_s_{name}"] = spread([r["events_per_s"] for r in recs if r.get("complete")])
    return out


def median_record(recs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The repetition whose events/s is the median (the lower one of an even count)."""
    ordered = sorted(recs, key=lambda r: r["events_per_s"])
    chosen = dict(ordered[(len(ordered) - 1) // 2])
    chosen["repetitions"] = [r["events_per_s"] for r in recs]
    counts = [r["compiled_modules"] for r in recs if "compiled_modules" in r]
    if counts:  # one repetition that ran interpreted taints the others' median
        chosen["compiled_modules"] = min(counts)
    return chosen


def flatness(runs: Sequence[dict[str, Any]], again: dict[str, Any] | None) -> dict[str, float]:
    """The scale curve's flatness, from complete runs only (NaN where one is missing).

    Args:
        runs: one record per size, smallest first (``events_per_s``, ``complete``).
        again: the smallest size run again after the largest, or None.

    Returns:
        ``flatness``: the largest size's events/s over the smallest's (over the
        mean of its two runs when ``again`` completed); ``flatness_before`` and
        ``flatness_after``: over each of the two runs alone; ``drift``: the
        smallest size's second run over its first (1 when the machine's speed
        did not move).
    """
    nan = float("nan")
    out = {"flatness": nan, "flatness_before": nan, "flatness_after": nan, "drift": nan}
    if len(runs) < 2 or not (runs[0].get("complete") and runs[-1].get("complete")):
        return out
    first, largest = runs[0]["events_per_s"], runs[-1]["events_per_s"]
    out["flatness"] = out["flatness_before"] = largest / first
    if again is not None and again.get("complete"):
        second = again["events_per_s"]
        out["flatness_after"] = largest / second
        out["drift"] = second / first
        out["flatness"] = largest / ((first + second) / 2)
    return out


def run_scale(
    sizes: Sequence[int],
    settings: Any,
    catalog: Any,
    lines: Sequence[bytes],
    base: dict[str, Any],
    workdir: Path,
    *,
    timeout: float,
    run_scenario: RunScenario,
    recreate: Callable[[], None],
    log: Log,
    bracket: bool = True,
) -> dict[str, Any]:
    """The worker's throughput and peak RSS at each size of tiled input.

    With ``bracket`` and two sizes or more, the smallest size runs again after
    the largest (the record ``again``), and the flatness is taken against
    both of its runs (:func:`flatness`).
    """
    from bench.scale import produce_tiled  # noqa: PLC0415

    def one(size: int, suffix: str = "") -> dict[str, Any]:
        recreate()
        t0 = time.monotonic()
        produced = asyncio.run(produce_tiled(settings, catalog, lines, size))
        produce_s = time.monotonic() - t0
        log(f"scale {size:,}{suffix}: published in {produce_s:.0f} s; the worker reads them ...")
        cfg = {**base, "expected": size, "group": f"bench-scale-{size}{suffix}", "idle_s": 180.0}
        tag = f"-scale-{size}{suffix}"
        res = run_scenario("dossier-stream", cfg, workdir, timeout=timeout, tag=tag)
        res.update(
            {
                "size": size,
                "produce_s": produce_s,
                "bytes": produced["bytes"],
                "chdb": str(workdir / f"dossier-stream{tag}" / "clickhouse"),
            }
        )
        log(
            f"scale {size:,}{suffix}: {res['events_per_s']:,.0f} events/s, "
            f"peak RSS {res['peak_rss_bytes'] / 2**20:,.0f} MiB"
        )
        return res

    runs = [one(size) for size in sizes]
    again = one(sizes[0], "-again") if bracket and len(sizes) >= 2 else None
    every = [*runs, *([again] if again else [])]
    return {
        "runs": runs,
        "again": again,
        **flatness(runs, again),
        "max_peak_rss_bytes": max((r["peak_rss_bytes"] for r in every), default=0),
    }


def run_backfill_pairs(
    processes: int,
    repeat: int,
    base: dict[str, Any],
    workdir: Path,
    *,
    timeout: float,
    run_scenario: RunScenario,
    log: Log,
) -> dict[str, Any]:
    """Backfill with 1 and with ``processes`` worker processes, interleaved ``repeat`` times."""
    one: list[dict[str, Any]] = []
    many: list[dict[str, Any]] = []
    for rep in range(repeat):
        for n, into in ((1, one), (processes, many)):
            cfg = {**base, "processes": n, "group": f"bench-backfill-{n}-{rep}"}
            res = run_scenario("backfill", cfg, workdir, timeout=timeout, tag=f"-{n}-{rep}")
            log(
                f"backfill, {n} process(es): {res['messages']:,} messages in "
                f"{res['seconds']:.1f} s = {res['events_per_s']:,.0f} events/s"
            )
            into.append(res)
    speedups = [b["events_per_s"] / a["events_per_s"] for a, b in zip(one, many, strict=True)]
    return {
        "processes": processes,
        "one": one,
        "many": many,
        "speedup": spread(speedups),
        "events_per_s_one": spread([r["events_per_s"] for r in one]),
        "events_per_s_many": spread([r["events_per_s"] for r in many]),
    }


# ------------------------------------------------------ scenario processes
def backfill(cfg: dict[str, Any]) -> dict[str, Any]:
    """Scenario ``backfill``: :func:`run_backfill` with ``cfg["processes"]`` workers."""
    from pydantic import SecretStr  # noqa: PLC0415

    from bench.measure import peak_rss  # noqa: PLC0415
    from dossier_stream.core.topics import load_catalog  # noqa: PLC0415
    from dossier_stream.settings import Settings  # noqa: PLC0415
    from dossier_stream.stream.backfill import describe, run_backfill  # noqa: PLC0415

    workdir = Path(cfg["workdir"])
    settings = Settings(
        bootstrap_servers=cfg["bootstrap"],
        clickhouse_dsn=SecretStr(f"chdb://{(workdir / 'clickhouse').resolve()}"),
        app_id=cfg["group"],
        data_dir=workdir,
    )
    result = run_backfill(
        settings,
        load_catalog(),
        processes=int(cfg["processes"]),
        workdir=workdir / "workers",
        timeout_s=float(cfg["timeout_s"]),
        extra_env={"DOSSIER_LOG_LEVEL": "INFO"},
    )
    return {"scenario": "backfill", **describe(result), "peak_rss_bytes": peak_rss()}


def year_report(cfg: dict[str, Any]) -> dict[str, Any]:
    """Scenario ``year-report``: a 365-day report read from a store, timed (3 times).

    Wall seconds and process CPU seconds (chdb's threads included) of each.
    """
    from dossier_stream.core.periods import Period  # noqa: PLC0415
    from dossier_stream.core.registry import UnitRegistry  # noqa: PLC0415
    from dossier_stream.store.sink import ClickHouseStore, connect  # noqa: PLC0415
    from dossier_stream.stream.runner import report_from_store  # noqa: PLC0415

    registry = UnitRegistry.load_default()
    t0 = time.monotonic()
    store = ClickHouseStore(connect(f"chdb://{cfg['chdb']}"))
    open_s = time.monotonic() - t0
    try:
        span = store.day_span()
        if not span:
            return {"scenario": "year-report", "error": "empty store"}
        last = span[1]
        period = Period(last - timedelta(days=364), last)
        times: list[float] = []
        cpu: list[float] = []
        received = None
        for _ in range(3):
            t1, c1 = time.perf_counter(), time.process_time()
            report = report_from_store(store, registry, period)
            times.append(time.perf_counter() - t1)
            cpu.append(time.process_time() - c1)
            received = report["received"]["city"]
        rows = {t: store.count(t) for t in ("unit_day_counters", "dossier_facts", "feedback_facts")}
    finally:
        store.close()
    return {
        "scenario": "year-report",
        "period": [period.start.isoformat(), period.end.isoformat()],
        "open_s": open_s,
        "seconds": times,
        "first_s": times[0],
        "median_s": statistics.median(times),
        "cpu_s": cpu,
        "median_cpu_s": statistics.median(cpu),
        "rows": rows,
        "received": received,
    }
