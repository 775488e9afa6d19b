"""The summary of a ``python -m bench`` run: the ratios, the table and the final line."""

from __future__ import annotations

import math
from typing import Any

__all__ = ["THROUGHPUT", "final_line", "interpreted", "ratios", "table"]

THROUGHPUT = (
    "ceiling",
    "faust-bare",
    "faust-bare-no-monitor",
    "faust-take",
    "naive",
    "dossier-stream",
    "dossier-stream-faust",
)
"""The throughput scenarios, in the order they run."""


def _spread(s: dict[str, Any], fmt: str) -> str:
    return (
        f"median {s['median']:{fmt}} (min {s['min']:{fmt}}, max {s['max']:{fmt}}, "
        f"{len(s.get('values', []))} repetitions)"
    )


def window_line(window: dict[str, Any], events: int) -> str:
    """A worker run's window split, in µs per event: its threads, the broker, the waits.

    ``main`` is the event loop's thread (named ``python``: the fold, aiokafka's
    decoding, the flushes' calling side), ``rocksdb`` RocksDB's threads, ``chdb``
    every other (ClickHouse's merges and insert pipeline); ``fetch wait`` and
    ``flush`` are wall inside the batch runtime's ``getmany`` and the flushes.
    """
    per = 1e6 / max(events, 1)
    threads: dict[str, float] = window.get("threads_cpu_s") or {}
    main = threads.get("python", 0.0)
    rocks = sum(v for k, v in threads.items() if k.startswith("rocksdb"))
    chdb = sum(threads.values()) - main - rocks
    broker = window.get("broker_cpu_s")
    return (
        f"µs/event: wall {window['window_s'] * per:.1f}, main thread CPU {main * per:.1f}, "
        f"rocksdb {rocks * per:.1f}, chdb {chdb * per:.1f}, broker "
        f"{'?' if broker is None else f'{broker * per:.1f}'}; fetch wait "
        f"{window['fetch_wait_s'] * per:.1f} ({window['fetches']:,} fetches, "
        f"{window['records_per_fetch']:,.0f} records each), flush {window['flush_s'] * per:.1f}"
    )


def _more_lines(results: dict[str, Any]) -> list[str]:
    """Repetitions, backfill, scale and year report lines of the table."""
    out: list[str] = []
    reps = results.get("repetitions") or {}
    for key, label in (("ratio_to_ceiling", "x ceiling"), ("ratio_to_faust_bare", "x faust-bare")):
        if key in reps and reps[key]["values"]:
            out.append(f"worker {label}, interleaved: {_spread(reps[key], '.3f')}")
    for name in ("ceiling", "faust-bare", "dossier-stream"):
        s = reps.get(f"events_per_s_{name}")
        if s and s["values"]:
            out.append(f"{name} events/s: {_spread(s, ',.0f')}")
    b = results.get("backfill")
    if b:
        out.append(
            f"backfill: 1 process {_spread(b['events_per_s_one'], ',.0f')} events/s; "
            f"{b['processes']} processes {_spread(b['events_per_s_many'], ',.0f')} events/s; "
            f"speed-up {_spread(b['speedup'], '.2f')}"
        )
    sc = results.get("scale")
    if sc:
        again = sc.get("again")
        for r in [*sc["runs"], *([again] if again else [])]:
            flag = "" if r.get("complete") else "  INCOMPLETE"
            out.append(
                f"scale {r['size']:>12,}{' again' if r is again else ''}: "
                f"{r['events_per_s']:>9,.0f} events/s over "
                f"{r['seconds']:,.1f} s, worker peak RSS {_mib(r['peak_rss_bytes'])} "
                f"(published in {r['produce_s']:,.0f} s){flag}"
            )
            if r.get("window"):
                out.append("  " + window_line(r["window"], r["events"]))
        if again:
            out.append(
                f"scale flatness (largest / mean of the smallest's two runs): "
                f"{sc['flatness']:.3f} (before {sc['flatness_before']:.3f}, after "
                f"{sc['flatness_after']:.3f}; the smallest's drift {sc['drift']:.3f})"
            )
        else:
            out.append(f"scale flatness (largest / smallest): {sc['flatness']:.3f}")
    y = results.get("year_report")
    if y and "median_s" in y:
        out.append(
            f"year report {y['period'][0]}..{y['period'][1]} from ClickHouse: first "
            f"{y['first_s']:.3f} s, median {y['median_s']:.3f} s of 3, median CPU "
            f"{y.get('median_cpu_s', math.nan):.3f} s (store opened in "
            f"{y['open_s']:.1f} s; rows {y['rows']})"
        )
    return out


def ratios(results: dict[str, Any]) -> dict[str, float]:
    """The final line's figures.

    ``ratio_to_ceiling`` and ``ratio_to_faust_bare`` are medians over the
    interleaved repetitions of the ratio within each repetition (with their
    min and max); ``ratio_to_naive`` is the median worker over the one naive
    run. ``scale_flatness``: events/s at the largest scale size over the
    smallest (over the mean of its runs before and after the largest, see
    :func:`bench.curve.flatness`); ``backfill_speedup``: the median, over the interleaved pairs,
    of events/s with several worker processes over one; ``year_report_s``:
    the median time of a 365-day report read from ClickHouse.
    """
    sc = results.get("scenarios", {})

    def rate(name: str) -> float:
        r = sc.get(name)
        return float(r["events_per_s"]) if r and r.get("complete") else math.nan

    ds = rate("dossier-stream")
    fresh = results.get("freshness") or {}
    reps = results.get("repetitions") or {}
    nan: dict[str, float] = {"median": math.nan, "min": math.nan, "max": math.nan}
    to_ceiling = reps.get("ratio_to_ceiling") or nan
    to_faust = reps.get("ratio_to_faust_bare") or nan
    if not reps:  # no repetitions recorded: one run each
        to_ceiling = {k: ds / rate("ceiling") for k in nan}
        to_faust = {k: ds / rate("faust-bare") for k in nan}
    scale = results.get("scale") or {}
    backfill = (results.get("backfill") or {}).get("speedup") or nan
    year = results.get("year_report") or {}
    return {
        "ratio_to_ceiling": float(to_ceiling["median"]),
        "ratio_to_faust_bare": float(to_faust["median"]),
        "ratio_to_naive": ds / rate("naive"),
        "p99_freshness_s": float(fresh.get("p99_s", math.nan)),
        "ratio_to_ceiling_min": float(to_ceiling["min"]),
        "ratio_to_ceiling_max": float(to_ceiling["max"]),
        "ratio_to_faust_bare_min": float(to_faust["min"]),
        "ratio_to_faust_bare_max": float(to_faust["max"]),
        "scale_flatness": float(scale.get("flatness", math.nan)),
        "scale_peak_rss_mib": float(scale.get("max_peak_rss_bytes") or math.nan) / 2**20,
        "backfill_speedup": float(backfill["median"]),
        "year_report_s": float(year.get("median_s", math.nan)),
    }


def interpreted(results: Any, where: str = "") -> list[str]:
    """Where in ``results`` a scenario ran its worker interpreted (no module compiled).

    Every scenario's record says how many modules its process ran compiled
    (``compiled_modules``); 0 means the mypyc build was stale, missing or
    turned off, so the record's speed does not compare with a compiled run.
    Returns the records' paths, e.g. ``scale.runs[1]``.
    """
    found: list[str] = []
    if isinstance(results, dict):
        if results.get("compiled_modules") == 0:
            found.append(where or "(top)")
        for key, value in results.items():
            found += interpreted(value, f"{where}.{key}" if where else str(key))
    elif isinstance(results, list):
        for i, value in enumerate(results):
            found += interpreted(value, f"{where}[{i}]")
    return found


def _mib(n: float | None) -> str:
    return "-" if n is None else f"{n / 2**20:,.0f} MiB"


def table(results: dict[str, Any]) -> str:
    """The human-readable summary."""
    out = []
    slow = interpreted(results)
    if slow:
        out.append(
            "WARNING: interpreted, not compiled (scripts/compile; the worker's stderr.log "
            f"says why), so not comparable: {', '.join(slow)}"
        )
    m = results["machine"]
    out.append(
        f"machine: {m.get('cpu_model')}, {m.get('cores')} cores, "
        f"{(m.get('mem_total_bytes') or 0) / 2**30:.1f} GiB, load {m.get('load_avg')}"
    )
    w = results.get("workload", {})
    out.append(f"workload: {w.get('events', 0):,} simulated events, {w.get('bytes', 0):,} bytes")
    sc = results.get("scenarios", {})
    ceiling = sc.get("ceiling", {}).get("events_per_s")
    if any(name in sc for name in THROUGHPUT):
        out.append(
            f"{'scenario':<22}{'events':>10}{'seconds':>10}{'events/s':>12}"
            f"{'x ceiling':>11}{'start s':>9}{'peak RSS':>11}"
        )
    for name in THROUGHPUT:
        r = sc.get(name)
        if r is None:
            continue
        share = f"{r['events_per_s'] / ceiling:.4f}" if ceiling else "-"
        flag = "" if r.get("complete") else "  INCOMPLETE"
        out.append(
            f"{name:<22}{r['events']:>10,}{r['seconds']:>10.2f}{r['events_per_s']:>12,.0f}"
            f"{share:>11}{r['start_s']:>9.1f}{_mib(r['peak_rss_bytes']):>11}{flag}"
        )
    for name in THROUGHPUT:
        r = sc.get(name) or {}
        if "cpu_s" in r:
            out.append(
                f"{name} process CPU: {r['cpu_s']:,.2f} s, {r['cpu_us_per_event']:.1f} µs/event "
                f"(every thread, start() returned to the last flush; garbage collector "
                f"{r.get('gc_s', math.nan):,.2f} s in {r.get('gc_passes', 0)} passes)"
            )
    fc = results.get("freshness_ceiling")
    if fc:
        out.append(
            f"freshness-ceiling (plain aiokafka consumer): p50 {fc['p50_s']:.3f} s, "
            f"p99 {fc['p99_s']:.3f} s, max {fc['max_s']:.3f} s over "
            f"{fc['measured_events']:,} events at {fc['rate_actual']:,.0f} events/s"
        )
    f = results.get("freshness")
    if f:
        out.append(
            f"freshness: p50 {f['p50_s']:.3f} s, p90 {f['p90_s']:.3f} s, p99 {f['p99_s']:.3f} s, "
            f"max {f['max_s']:.3f} s over {f['measured_events']:,} events at "
            f"{f['rate_actual']:,.0f} events/s; worker peak RSS {_mib(f['peak_rss_bytes'])}"
        )
        tl = f.get("timeline") or []
        if len(tl) >= 2:
            out.append(
                "freshness p50 per second of publishing: "
                + " ".join(f"{b['p50_s']:.1f}" for b in tl[:: max(1, len(tl) // 10)])
                + f" ... {tl[-1]['p50_s']:.1f} s"
            )
    o = results.get("open_dossiers")
    if o:
        out.append(
            f"open dossiers: {o['open_dossiers']:,} in {o['store']} -> "
            f"{o['bytes_per_open_dossier']:,.0f} bytes RSS per open dossier "
            f"(+{_mib(o['rss_after_bytes'] - o['rss_before_bytes'])}, loaded in "
            f"{o['load_s']:.1f} s; peak RSS {_mib(o['peak_rss_bytes'])})"
        )
    out.extend(_more_lines(results))
    for name, p in (results.get("profile") or {}).items():
        areas = ", ".join(f"{k} {v:.0%}" for k, v in list(p["areas"].items())[:6])
        out.append(f"profile {name}: {areas} (see {p['summary']})")
    return "\n".join(out)


def final_line(r: dict[str, float]) -> str:
    """``ratio_to_ceiling=<x> ratio_to_faust_bare=<b> ratio_to_naive=<y> p99_freshness_s=<z>`` …

    … then the new keys: the spreads of the first two ratios,
    ``scale_flatness``, ``scale_peak_rss_mib``, ``backfill_speedup`` and
    ``year_report_s`` (``nan`` for a figure whose scenario did not run).
    """
    return (
        f"ratio_to_ceiling={r['ratio_to_ceiling']:.4f} "
        f"ratio_to_faust_bare={r['ratio_to_faust_bare']:.3f} "
        f"ratio_to_naive={r['ratio_to_naive']:.3f} "
        f"p99_freshness_s={r['p99_freshness_s']:.3f} "
        f"ratio_to_ceiling_min={r['ratio_to_ceiling_min']:.4f} "
        f"ratio_to_ceiling_max={r['ratio_to_ceiling_max']:.4f} "
        f"ratio_to_faust_bare_min={r['ratio_to_faust_bare_min']:.3f} "
        f"ratio_to_faust_bare_max={r['ratio_to_faust_bare_max']:.3f} "
        f"scale_flatness={r['scale_flatness']:.3f} "
        f"scale_peak_rss_mib={r['scale_peak_rss_mib']:.0f} "
        f"backfill_speedup={r['backfill_speedup']:.3f} "
        f"year_report_s={r['year_report_s']:.3f}"
    )
