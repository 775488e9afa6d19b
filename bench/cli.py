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

from bench.profile import summarize_raw
from bench.scenarios import RESULT_PREFIX

__all__ = ["main", "parse_args", "run"]

THROUGHPUT = (
    "ceiling",
    "faust-bare",
    "faust-bare-no-monitor",
    "faust-take",
    "naive",
    "dossier-stream",
    "dossier-stream-faust",
)
ABLATIONS = ("faust-bare-no-monitor", "faust-take", "dossier-stream-faust", "freshness-ceiling")
"""Scenarios run only when named in ``--scenarios``."""
ALL = (*THROUGHPUT, "freshness", "freshness-ceiling", "open-dossiers")
DEFAULT = tuple(s for s in ALL if s not in ABLATIONS)
_REPO = Path(__file__).resolve().parents[1]


class BenchError(RuntimeError):
    """A scenario failed; the message says which and shows the end of its log."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line (``python -m bench --help``)."""
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmark dossier-stream against a plain aiokafka consumer, a bare and a "
        "naive Faust agent, on one embedded Tansu broker; see bench/README.md.",
    )
    parser.add_argument(
        "--events", type=int, default=300_000, help="simulated events to publish (default 300000)"
    )
    parser.add_argument(
        "--partitions",
        type=int,
        default=None,
        help="partitions of the dossier.* topics (default: the catalog's, 6)",
    )
    parser.add_argument(
        "--scenarios",
        default=",".join(DEFAULT),
        help=f"comma-separated subset of {','.join(ALL)} (default: all but the "
        f"ablations {', '.join(ABLATIONS)})",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path(".dossier-stream/bench/results.json"),
        help="where to write the results as JSON (default .dossier-stream/bench/results.json)",
    )
    parser.add_argument("--seed", type=int, default=0, help="simulator seed (default 0)")
    parser.add_argument(
        "--rate", type=float, default=2_000.0, help="freshness: events per second (default 2000)"
    )
    parser.add_argument(
        "--freshness-seconds",
        type=float,
        default=30.0,
        help="freshness: seconds of steady publishing (default 30)",
    )
    parser.add_argument(
        "--open-dossiers",
        type=int,
        default=1_000_000,
        help="open dossier states to load for the RSS measure (default 1000000)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=1_800.0,
        help="time limit of each scenario in seconds (default 1800)",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        default=None,
        metavar="DIR",
        help="also run faust-bare and dossier-stream under py-spy; raw stacks and "
        "top functions go to DIR",
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="run directory (broker log, scenario logs, chdb); default: a temporary one, "
        "removed at the end",
    )
    parser.add_argument(
        "--log-level", default="WARNING", help="log level inside the scenarios (default WARNING)"
    )
    parser.add_argument(
        "--mis-keyed",
        action="store_true",
        help="publish every event on a partition its key does not belong to (bench/miskeyed.py): "
        "the worker re-routes them all through the repartition topics",
    )
    args = parser.parse_args(argv)
    chosen = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    unknown = sorted(set(chosen) - set(ALL))
    if unknown:
        parser.error(f"unknown scenario(s): {', '.join(unknown)}; choose among {', '.join(ALL)}")
    args.scenarios = [s for s in ALL if s in chosen]
    if args.events < 1:
        parser.error("--events must be at least 1")
    return args


# -------------------------------------------------------------- machine
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


# ------------------------------------------------------------ scenarios
def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(_REPO), env.get("PYTHONPATH")) if p)
    return env


def _result_of(name: str, stdout: str, log: Path) -> dict[str, Any]:
    for line in reversed(stdout.splitlines()):
        if line.startswith(RESULT_PREFIX):
            result: dict[str, Any] = json.loads(line[len(RESULT_PREFIX) :])
            return result
    tail = log.read_text("utf-8", errors="replace")[-3000:] if log.exists() else ""
    raise BenchError(f"scenario {name} printed no result; end of {log}:\n{tail}")


def run_scenario(
    name: str,
    cfg: dict[str, Any],
    workdir: Path,
    *,
    timeout: float,
    wrap: list[str] | None = None,
    tag: str = "",
) -> dict[str, Any]:
    """Run one scenario in its own process and return its result record."""
    rundir = workdir / f"{name}{tag}"
    rundir.mkdir(parents=True, exist_ok=True)
    cfg = {**cfg, "workdir": str(rundir)}
    cfg_path = rundir / "config.json"
    cfg_path.write_text(json.dumps(cfg), "utf-8")
    log = rundir / "stderr.log"
    cmd = [*(wrap or []), sys.executable, "-m", "bench.scenarios", name, str(cfg_path)]
    with log.open("wb") as err:
        proc = subprocess.run(
            cmd,
            stdout=subprocess.PIPE,
            stderr=err,
            env=_env(),
            cwd=rundir,
            timeout=timeout + 120,
            check=False,
        )
    stdout = proc.stdout.decode("utf-8", errors="replace")
    if proc.returncode != 0 and RESULT_PREFIX not in stdout:
        tail = log.read_text("utf-8", errors="replace")[-3000:]
        raise BenchError(f"scenario {name} exited {proc.returncode}; end of {log}:\n{tail}")
    return _result_of(name, stdout, log)


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
    rundir = workdir / scenario
    rundir.mkdir(parents=True, exist_ok=True)
    cfg = {**base, "workdir": str(rundir), "group": f"bench-{scenario}", "expected": 0}
    cfg_path = rundir / "config.json"
    cfg_path.write_text(json.dumps(cfg), "utf-8")
    log = rundir / "stderr.log"
    slice_ = lines[: max(1, int(rate * seconds))]
    with log.open("wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bench.scenarios", scenario, str(cfg_path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=err,
            env=_env(),
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
    result = _result_of(scenario, stdout.decode("utf-8", errors="replace"), log)
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
            s in args.scenarios for s in (*THROUGHPUT, "freshness", "freshness-ceiling")
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
                    "topics": topics,
                    "expected": len(lines),
                    "session_timeout_s": settings.session_timeout_s,
                    "timeout_s": args.timeout,
                    "idle_s": 60.0,
                    "log_level": args.log_level,
                }
            if broker is not None and any(s in args.scenarios for s in THROUGHPUT):
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
                for name in (s for s in THROUGHPUT if s in args.scenarios):
                    log(f"running {name} ...")
                    cfg = {**base, "group": f"bench-{name}"}
                    res = run_scenario(name, cfg, workdir, timeout=args.timeout)
                    results["scenarios"][name] = res
                    log(
                        f"{name}: {res['events']} events in {res['seconds']:.2f} s = "
                        f"{res['events_per_s']:,.0f} events/s"
                    )
                if args.profile is not None:
                    results["profile"] = run_profiles(args, base, results, workdir)
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


def run_profiles(
    args: argparse.Namespace, base: dict[str, Any], results: dict[str, Any], workdir: Path
) -> dict[str, Any]:
    """Re-run faust-bare and dossier-stream under ``py-spy record``; summarize the stacks."""
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(py_spy).exists():
        raise BenchError("--profile needs py-spy: pip install -e '.[dev]'")
    out_dir: Path = args.profile.resolve()  # the scenarios run in their own directories
    out_dir.mkdir(parents=True, exist_ok=True)
    # the worker published its dead letters to the dead-letter topic the others read
    extra = 0
    worker = results["scenarios"].get("dossier-stream")
    if worker is not None:
        extra = worker["pipeline"]["deadletter"] - results["workload"].get("unroutable", 0)
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


# ------------------------------------------------------------- summary
def ratios(results: dict[str, Any]) -> dict[str, float]:
    """``dossier-stream`` events/s over each baseline's, and the p99 freshness."""
    sc = results.get("scenarios", {})

    def rate(name: str) -> float:
        r = sc.get(name)
        return float(r["events_per_s"]) if r and r.get("complete") else math.nan

    ds = rate("dossier-stream")
    fresh = results.get("freshness") or {}
    return {
        "ratio_to_ceiling": ds / rate("ceiling"),
        "ratio_to_faust_bare": ds / rate("faust-bare"),
        "ratio_to_naive": ds / rate("naive"),
        "p99_freshness_s": float(fresh.get("p99_s", math.nan)),
    }


def _mib(n: float | None) -> str:
    return "-" if n is None else f"{n / 2**20:,.0f} MiB"


def table(results: dict[str, Any]) -> str:
    """The human-readable summary."""
    out = []
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
    for name, p in (results.get("profile") or {}).items():
        areas = ", ".join(f"{k} {v:.0%}" for k, v in list(p["areas"].items())[:6])
        out.append(f"profile {name}: {areas} (see {p['summary']})")
    return "\n".join(out)


def final_line(r: dict[str, float]) -> str:
    """``ratio_to_ceiling=<x> ratio_to_faust_bare=<b> ratio_to_naive=<y> p99_freshness_s=<z>``."""
    return (
        f"ratio_to_ceiling={r['ratio_to_ceiling']:.4f} "
        f"ratio_to_faust_bare={r['ratio_to_faust_bare']:.3f} "
        f"ratio_to_naive={r['ratio_to_naive']:.3f} "
        f"p99_freshness_s={r['p99_freshness_s']:.3f}"
    )


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m bench``."""
    args = parse_args(argv)
    results = run(args)
    print(table(results))
    print(f"results: {args.out}")
    print(final_line(results["ratios"]), flush=True)
    return 0
