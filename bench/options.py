"""``python -m bench``'s command line: the scenarios it knows and its options."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from bench.summary import THROUGHPUT

__all__ = ["ABLATIONS", "ALL", "DEFAULT", "REPEATED", "WORKERS", "parse_args"]

ABLATIONS = ("faust-bare-no-monitor", "faust-take", "dossier-stream-faust", "freshness-ceiling")
"""Scenarios run only when named in ``--scenarios``."""
REPEATED = ("ceiling", "faust-bare", "faust-bare-no-monitor", "faust-take", "dossier-stream")
"""Throughput scenarios run ``--repeat`` times, interleaved (the others once)."""
WORKERS = ("dossier-stream", "dossier-stream-faust")
"""Scenarios that publish dead letters to the dead-letter topic the others read."""
ALL = (
    *THROUGHPUT,
    "backfill",
    "freshness",
    "freshness-ceiling",
    "scale",
    "year-report",
    "open-dossiers",
)
DEFAULT = tuple(s for s in ALL if s not in ABLATIONS)


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
        "--repeat",
        type=int,
        default=3,
        help="interleaved repetitions of ceiling, faust-bare and dossier-stream, and of the "
        "backfill pair (default 3; the ratios are the medians)",
    )
    parser.add_argument(
        "--year-store",
        type=Path,
        help="year-report: time it on this store built by `python -m bench.yearstore --out DIR` "
        "(DIR), instead of the largest scale run's (no broker, no scale run needed)",
    )
    parser.add_argument(
        "--scale-sizes",
        default="300000,3000000",
        help="scale: events per run, comma-separated (default 300000,3000000; add 30000000 "
        "for the long run)",
    )
    parser.add_argument(
        "--scale-bracket",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="scale: run the smallest size again after the largest, and take the flatness "
        "against the mean of its two runs, so that the machine's drift during the long run "
        "does not decide it (default: on)",
    )
    parser.add_argument(
        "--backfill-processes",
        type=int,
        default=max(2, os.cpu_count() or 2),
        help="backfill: worker processes against one (default: the cores, at least 2)",
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
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    try:
        args.scale_sizes = sorted({int(x) for x in args.scale_sizes.split(",") if x.strip()})
    except ValueError:
        parser.error("--scale-sizes takes integers, e.g. 300000,3000000")
    if any(n < 1 for n in args.scale_sizes):
        parser.error("--scale-sizes must be positive")
    return args
