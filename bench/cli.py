"""``python -m bench``: the orchestrator (options, the broker, the runs, the summary).

Everything happens in one run against one embedded Tansu broker, so the
ratios between scenarios hold even on a noisy shared machine:

1. simulate ``--events`` lines and publish them once with
   :func:`dossier_stream.stream.runner.produce_lines` to the catalog's topics;
2. run the throughput scenarios (each in its own process, fresh consumer
   group, same topics): ``ceiling``, ``faust-bare``, ``naive``,
   ``dossier-stream`` — in that order, because the worker publishes its dead
   letters to the dead-letter topic the others read;
3. ``freshness``: delete and recreate the topics, start the worker, publish
   ``--rate`` events/s for ``--freshness-seconds`` and measure
   produced → visible in ClickHouse per event;
4. ``open-dossiers``: RSS per open dossier with ``--open-dossiers`` states in
   the worker's state store;
5. with ``--profile DIR``: ``faust-bare`` and ``dossier-stream`` again under
   ``py-spy record`` (raw stacks and a summary of the top functions in DIR).

The results are printed as a table, written as JSON (``--out``), and the last
line printed is ``ratio_to_ceiling=… ratio_to_faust_bare=… ratio_to_naive=…
p99_freshness_s=…``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from bench.launch import BenchError, prepare, result_of, run_scenario, scenario_env
from bench.options import REPEATED, WORKERS, parse_args
from bench.profile import summarize_raw
from bench.summary import THROUGHPUT, final_line, ratios, table

__all__ = ["main", "parse_args", "run"]


def machine() -> dict[str, Any]:
    """The machine: CPU model, cores, memory, load, versions."""
    info: dict[str, Any] = {"cores": os.cpu_count(), "python": platform.python_version()}
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text("utf-8", errors="replace")
        models = [ln.split(":", 1)[1].strip() for ln in cpuinfo.splitlines() if "model name" in ln]
        info["cpu_model"] = models[0] if models else platform.processor()
        mem = Path("/proc/meminfo").read_text("ascii").splitlines()[0].split()
        info["mem_total_bytes"] = int(mem[1]) * 1024
        info["load_avg"] = list(os.getloadavg())
    except OSError:
        info["cpu_model"] = platform.processor()
    for dist in ("faust-streaming", "aiokafka", "chdb", "clickhouse-connect", "pydantic"):
        try:
            info[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            info[dist] = None
    return info


def percentile(values: list[float], q: float) -> float:
    """The ``q`` percentile (0..100) of ``values``, linear between closest ranks."""
    if not values:
        return math.nan
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


async def _recreate_topics(settings: Any, catalog: Any) -> None:
    from bench.workload import delete_topics  # noqa: PLC0415
    from dossier_stream.stream.runner import create_topics  # noqa: PLC0415

    await delete_topics(settings.bootstrap_servers)
    await create_topics(settings, catalog)


def run_freshness(
    settings: Any,
    catalog: Any,
    lines: list[bytes],
    base: dict[str, Any],
    workdir: Path,
    *,
    rate: float,
    seconds: float,
    timeout: float,
    scenario: str = "freshness",
) -> dict[str, Any]:
    """Freshness at a steady rate: produced → visible in ClickHouse, per event id.

    The topics are deleted and created again first, so that the consumer
    (a fresh group) reads only the events published at the steady rate.
    ``scenario`` ``freshness-ceiling`` measures a plain aiokafka consumer instead
    (produced → received).
    """
    from bench.workload import paced_produce  # noqa: PLC0415

    asyncio.run(_recreate_topics(settings, catalog))
    cfg = {**base, "group": f"bench-{scenario}", "expected": 0}
    rundir, cmd, log = prepare(scenario, cfg, workdir)
    slice_ = lines[: max(1, int(rate * seconds))]
    with log.open("wb") as err:
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=err,
            env=scenario_env(),
            cwd=rundir,
        )
        assert proc.stdin is not None and proc.stdout is not None
        try:
            ready = proc.stdout.readline().decode().strip()
            if ready != "READY":
                proc.kill()
                proc.wait()
                tail = log.read_text("utf-8", errors="replace")[-3000:]
                raise BenchError(f"{scenario} did not start; end of {log}:\n{tail}")
            sent = asyncio.run(paced_produce(settings.bootstrap_servers, catalog, slice_, rate))
            proc.stdin.write(f"SENT {sent.sent}\n".encode())
            proc.stdin.flush()
            stdout, _ = proc.communicate(timeout=timeout + 60)
        except BaseException:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            raise
    result = result_of(scenario, stdout.decode("utf-8", errors="replace"), log)
    visible: dict[str, float] = json.loads(Path(result["visible_file"]).read_text("utf-8"))
    measured = [
        (at, visible[eid] - at)
        for eid, at in sent.sent_at.items()
        if eid in visible and eid not in sent.repeated
    ]
    lags = [lag for _, lag in measured]
    # freshness per second of publishing: a growing lag means the worker falls behind
    t_first = min((at for at, _ in measured), default=0.0)
    buckets: dict[int, list[float]] = {}
    for at, lag in measured:
        buckets.setdefault(int(at - t_first), []).append(lag)
    timeline = [
        {"second": sec, "events": len(v), "p50_s": percentile(v, 50), "max_s": max(v)}
        for sec, v in sorted(buckets.items())
    ]
    result.update(
        {
            "rate_target": rate,
            "rate_actual": sent.sent / sent.seconds if sent.seconds else math.nan,
            "sent": sent.sent,
            "publish_seconds": sent.seconds,
            "measured_events": len(lags),
            "p50_s": percentile(lags, 50),
            "p90_s": percentile(lags, 90),
            "p99_s": percentile(lags, 99),
            "max_s": max(lags) if lags else math.nan,
            "timeline": timeline,
        }
    )
    return result


# -------------------------------------------------------------- the run
def log(msg: str) -> None:
    """Progress on stderr (stdout carries the table and the final line)."""
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> dict[str, Any]:  # noqa: PLR0915
    """Run the chosen scenarios; return the results (also written to ``args.out``)."""
    from pydantic import SecretStr  # noqa: PLC0415

    from bench.workload import simulate_events  # noqa: PLC0415
    from dossier_stream.core.registry import UnitRegistry  # noqa: PLC0415
    from dossier_stream.core.topics import load_catalog  # noqa: PLC0415
    from dossier_stream.core.workdays import WorkCalendar  # noqa: PLC0415
    from dossier_stream.settings import Settings  # noqa: PLC0415
    from dossier_stream.stream.embedded import EmbeddedBroker  # noqa: PLC0415
    from dossier_stream.stream.runner import create_topics, produce_lines  # noqa: PLC0415

    started = datetime.now(UTC)
    temp = args.workdir is None
    workdir = Path(tempfile.mkdtemp(prefix="dossier-bench-")) if temp else args.workdir
    workdir.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {
        "started_at": started.isoformat(),
        "machine": machine(),
        "config": {
            "events": args.events,
            "partitions": args.partitions,
            "scenarios": args.scenarios,
            "seed": args.seed,
            "rate": args.rate,
            "freshness_seconds": args.freshness_seconds,
            "open_dossiers": args.open_dossiers,
        },
        "scenarios": {},
    }
    try:
        registry, calendar, catalog = (
            UnitRegistry.load_default(),
            WorkCalendar.default(),
            load_catalog(),
        )
        topics = [t.name for t in catalog.topics]
        needs_broker = any(
            s in args.scenarios
            for s in (*THROUGHPUT, "backfill", "freshness", "freshness-ceiling", "scale")
        )
        if args.year_store is not None and "year-report" in args.scenarios:
            log(f"year report from {args.year_store} ...")
            results["year_report"] = run_scenario(
                "year-report",
                {"chdb": str((args.year_store / "ch").resolve())},
                workdir,
                timeout=args.timeout,
            )
        lines: list[bytes] = []
        if needs_broker:
            t0 = time.monotonic()
            lines = simulate_events(args.events, registry, calendar, seed=args.seed)
            log(f"simulated {len(lines)} events in {time.monotonic() - t0:.1f} s")
            results["workload"] = {
                "events": len(lines),
                "bytes": sum(len(x) for x in lines),
                "simulate_s": time.monotonic() - t0,
            }
        broker = EmbeddedBroker(workdir / "tansu.log") if needs_broker else None
        if broker is not None:
            broker.start()
        try:
            if broker is not None:
                settings = Settings(
                    bootstrap_servers=broker.bootstrap,
                    clickhouse_dsn=SecretStr("chdb://unused"),
                    partitions=args.partitions,
                )
                base = {
                    "bootstrap": broker.bootstrap,
                    "broker_pid": broker.pid,
                    "topics": topics,
                    "expected": len(lines),
                    "session_timeout_s": settings.session_timeout_s,
                    "timeout_s": args.timeout,
                    "idle_s": 60.0,
                    "log_level": args.log_level,
                }
            if broker is not None and any(s in args.scenarios for s in (*THROUGHPUT, "backfill")):
                asyncio.run(create_topics(settings, catalog))
                t0 = time.monotonic()
                from bench.miskeyed import produce_mis_keyed  # noqa: PLC0415

                produce = produce_mis_keyed if args.mis_keyed else produce_lines
                stats = asyncio.run(produce(settings, catalog, lines, source="bench"))
                produce_s = time.monotonic() - t0
                log(f"published {stats.sent} events in {produce_s:.1f} s")
                results["workload"].update(
                    {
                        "produce_s": produce_s,
                        "per_topic": stats.per_topic,
                        "unroutable": stats.unroutable,
                    }
                )
                extra = run_throughput(args, base, results, workdir, stats.unroutable)
                if args.profile is not None:
                    results["profile"] = run_profiles(args, base, results, workdir, extra)
                if "backfill" in args.scenarios:
                    from bench.curve import run_backfill_pairs  # noqa: PLC0415

                    log(f"backfill: 1 against {args.backfill_processes} worker processes ...")
                    results["backfill"] = run_backfill_pairs(
                        args.backfill_processes,
                        args.repeat,
                        base,
                        workdir,
                        timeout=args.timeout,
                        run_scenario=run_scenario,
                        log=log,
                    )
            for scenario, what in (
                ("freshness", f"for {args.freshness_seconds:.0f} s"),
                ("freshness-ceiling", "a plain aiokafka consumer"),
            ):
                if broker is None or scenario not in args.scenarios:
                    continue
                log(f"{scenario}: {args.rate:.0f} events/s, {what} ...")
                results[scenario.replace("-", "_")] = run_freshness(
                    settings,
                    catalog,
                    lines,
                    base,
                    workdir,
                    rate=args.rate,
                    seconds=args.freshness_seconds,
                    timeout=args.timeout,
                    scenario=scenario,
                )
            if broker is not None and args.scale_sizes and "scale" in args.scenarios:
                run_scale_and_year(args, settings, catalog, lines, base, workdir, results)
        finally:
            if broker is not None:
                broker.stop()
        if "open-dossiers" in args.scenarios:
            log(f"open dossiers: loading {args.open_dossiers} states ...")
            templates = workdir / "open-templates.json"
            run_scenario("open-templates", {"out": str(templates)}, workdir, timeout=args.timeout)
            results["open_dossiers"] = run_scenario(
                "open-dossiers",
                {"count": args.open_dossiers, "templates": str(templates)},
                workdir,
                timeout=args.timeout,
            )
    finally:
        results["finished_at"] = datetime.now(UTC).isoformat()
        results["load_avg_end"] = list(os.getloadavg())
        results["ratios"] = ratios(results)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2, default=str) + "\n", "utf-8")
        if temp:
            shutil.rmtree(workdir, ignore_errors=True)
    return results


def run_throughput(
    args: argparse.Namespace,
    base: dict[str, Any],
    results: dict[str, Any],
    workdir: Path,
    unroutable: int,
) -> int:
    """The throughput scenarios; the repeated ones ``--repeat`` times, interleaved.

    Returns:
        The dead letters the workers published to the dead-letter topic (read
        by every later scenario that is not a worker: their expected count).
    """
    from bench.curve import median_record, summarize_repetitions  # noqa: PLC0415

    runs: dict[str, list[dict[str, Any]]] = {}
    extra = 0
    chosen = [s for s in THROUGHPUT if s in args.scenarios]
    for rep in range(args.repeat):
        for name in chosen:
            if rep > 0 and name not in REPEATED:
                continue
            expected = base["expected"] + (0 if name in WORKERS else extra)
            cfg = {**base, "group": f"bench-{name}-{rep}", "expected": expected}
            tag = f"-{rep}" if rep else ""
            log(f"running {name} (repetition {rep + 1}) ...")
            res = run_scenario(name, cfg, workdir, timeout=args.timeout, tag=tag)
            if name in WORKERS:
                extra += res["pipeline"]["deadletter"] - unroutable
            runs.setdefault(name, []).append(res)
            log(
                f"{name}: {res['events']} events in {res['seconds']:.2f} s = "
                f"{res['events_per_s']:,.0f} events/s"
            )
    for name, recs in runs.items():
        results["scenarios"][name] = median_record(recs)
    results["repetitions"] = summarize_repetitions(runs)
    return extra


def run_scale_and_year(
    args: argparse.Namespace,
    settings: Any,
    catalog: Any,
    lines: list[bytes],
    base: dict[str, Any],
    workdir: Path,
    results: dict[str, Any],
) -> None:
    """The scale curve over ``--scale-sizes``, then the year report from the largest store."""
    from bench.curve import run_scale  # noqa: PLC0415

    log(f"scale: {', '.join(f'{n:,}' for n in args.scale_sizes)} events ...")
    results["scale"] = run_scale(
        args.scale_sizes,
        settings,
        catalog,
        lines,
        base,
        workdir,
        timeout=args.timeout,
        run_scenario=run_scenario,
        recreate=lambda: asyncio.run(_recreate_topics(settings, catalog)),
        log=log,
        bracket=args.scale_bracket,
    )
    last = results["scale"]["runs"][-1]
    if "year-report" in args.scenarios and last.get("complete") and args.year_store is None:
        log("year report from the largest store ...")
        results["year_report"] = run_scenario(
            "year-report", {"chdb": last["chdb"]}, workdir, timeout=args.timeout
        )


def run_profiles(
    args: argparse.Namespace,
    base: dict[str, Any],
    results: dict[str, Any],
    workdir: Path,
    extra: int,
) -> dict[str, Any]:
    """Re-run faust-bare and dossier-stream under ``py-spy record``; summarize the stacks."""
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(py_spy).exists():
        raise BenchError("--profile needs py-spy: pip install -e '.[dev]'")
    out_dir: Path = args.profile.resolve()  # the scenarios run in their own directories
    out_dir.mkdir(parents=True, exist_ok=True)
    # ``extra``: the dead letters the workers published to the dead-letter topic the others read
    profiles: dict[str, Any] = {}
    for name in ("faust-bare", "dossier-stream"):
        raw = out_dir / f"{name}.raw.txt"
        wrap = [py_spy, "record", "--rate", "200", "--nonblocking", "--format", "raw"]
        wrap += ["--output", str(raw), "--"]
        expected = base["expected"] + (extra if name == "faust-bare" else 0)
        cfg = {**base, "group": f"bench-{name}-profiled", "expected": expected}
        log(f"profiling {name} ...")
        res = run_scenario(name, cfg, workdir, timeout=args.timeout, wrap=wrap, tag="-profiled")
        summary = summarize_raw(raw)
        (out_dir / f"{name}.top.txt").write_text(summary.text(), "utf-8")
        profiles[name] = {
            "events_per_s_under_profiler": res["events_per_s"],
            "raw": str(raw),
            "summary": str(out_dir / f"{name}.top.txt"),
            "areas": summary.areas(),
        }
    return profiles


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m bench``."""
    args = parse_args(argv)
    results = run(args)
    print(table(results))
    print(f"results: {args.out}")
    print(final_line(results["ratios"]), flush=True)
    return 0
