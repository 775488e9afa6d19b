"""Micro-benchmark of per-message costs outside the fold: fact rows, owner check, metrics.

``python -m bench.rows [--events N] [--lines F]`` routes the benchmark's workload
(or the lines of ``--lines``, as :mod:`bench.pipeline` reads them) as ``produce``
does, folds it once (untimed) and times, each the minimum of ``--repeat`` runs
of process CPU time (:func:`time.process_time`):

* ``fact``: :func:`~dossier_stream.stream.processor.dossier_fact` of the latest
  state of each dossier (what one flush builds: a row per dossier touched),
  per state;
* ``write``: :meth:`~dossier_stream.store.sink.ClickHouseStore.write_rows` of
  those rows into a fresh chdb store's ``dossier_facts`` (rows to columns,
  time columns to ticks, clickhouse-connect's serialization, chdb's insert),
  per state;
* ``owner``: the re-keying check of every routed valid message, a fresh
  :class:`~dossier_stream.stream.rekey.Rekeyer` per run (so every key is
  hashed as a worker's first sight of it would), per message;
* ``observe``: :meth:`~dossier_stream.stream.metrics.Metrics.observe` of the
  outcomes in batches of ``--batch``, per message.

Process CPU includes chdb's threads, so ``write`` moves with the load; compare
two versions of the source alternately.
"""

from __future__ import annotations

import argparse
import gc
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bench.fold import Feed
from dossier_stream.core.engine import Engine
from dossier_stream.core.events import DossierEvent
from dossier_stream.core.lifecycle import DossierState
from dossier_stream.core.registry import UnitRegistry
from dossier_stream.core.topics import load_catalog
from dossier_stream.core.workdays import WorkCalendar
from dossier_stream.store.sink import ClickHouseStore, connect
from dossier_stream.stream.metrics import Metrics
from dossier_stream.stream.processor import DOSSIER_FACT_COLUMNS, Handled, dossier_fact
from dossier_stream.stream.rekey import Rekeyer

__all__ = ["main"]


def _best(run: Callable[[], object], repeat: int) -> float:
    """The least process CPU time of ``repeat`` runs, in seconds."""
    best = float("inf")
    for _ in range(repeat):
        gc.collect()
        t0 = time.process_time()
        run()
        best = min(best, time.process_time() - t0)
    return best


def _fold(
    feed: Feed, registry: UnitRegistry, calendar: WorkCalendar
) -> tuple[list[Handled], list[tuple[str, Any]], list[DossierState]]:
    """Fold every line once: the outcomes, the valid events and each dossier's latest state."""
    catalog = load_catalog()
    engines = {f: Engine(registry, calendar, catalog=catalog) for f in ("dossier", "feedback")}
    handled: list[Handled] = []
    valid: list[tuple[str, Any]] = []
    latest: dict[str, DossierState] = {}
    for offset, (topic, raw) in enumerate(feed):
        engine = engines.get(topic.split(".", 1)[0]) or engines["feedback"]
        out = engine.process(raw, topic=topic, partition=0, offset=offset)
        handled.append(Handled("dossier:0", topic, out))
        if out.event is not None:
            valid.append((topic, out.event))
        if out.kind == "applied" and isinstance(out.event, DossierEvent):
            latest[out.event.dossier_id] = engine.dossiers[out.event.dossier_id]
    return handled, valid, list(latest.values())


def main(argv: Sequence[str] | None = None) -> int:
    """Run the micro-benchmark and print µs per state or message."""
    parser = argparse.ArgumentParser(prog="python -m bench.rows", description=__doc__)
    parser.add_argument("--events", type=int, default=60_000, help="simulated lines")
    parser.add_argument("--lines", type=Path, help="read the lines from this JSONL file")
    parser.add_argument("--batch", type=int, default=2_000, help="messages per observe()")
    parser.add_argument("--repeat", type=int, default=5, help="runs per figure (least kept)")
    args = parser.parse_args(argv)

    registry, calendar = UnitRegistry.load_default(), WorkCalendar.default()
    catalog = load_catalog()
    if args.lines is not None:
        lines = args.lines.read_bytes().splitlines()[: args.events]
    else:
        from bench.workload import simulate_events  # noqa: PLC0415

        lines = simulate_events(args.events, registry, calendar)
    handled, valid, states = _fold(Feed(lines, catalog), registry, calendar)
    del lines
    gc.set_threshold(50_000, 20, 100)  # the worker's (runner.Worker.start)
    gc.freeze()  # the fold's objects out of the collector's sight

    fact_s = _best(lambda: [dossier_fact(s, "dossier:0") for s in states], args.repeat)
    rows = [dossier_fact(s, "dossier:0") for s in states]
    with tempfile.TemporaryDirectory(prefix="bench-rows-") as tmp:
        store = ClickHouseStore(connect(f"chdb://{Path(tmp).resolve() / 'ch'}"))
        store.migrate()
        write_s = _best(
            lambda: store.write_rows("dossier_facts", DOSSIER_FACT_COLUMNS, rows), args.repeat
        )
        store.close()

    def owners() -> None:
        rekeyer = Rekeyer(catalog)
        rekeyer.set_partitions({t.name: t.partitions for t in catalog.topics})
        for topic, event in valid:
            owner = rekeyer.owner(topic)
            if owner is not None:
                owner(event)

    owner_s = _best(owners, args.repeat)
    metrics = Metrics()
    batches = [handled[i : i + args.batch] for i in range(0, len(handled), args.batch)]

    def observe() -> None:
        for batch in batches:
            metrics.observe(batch)

    observe_s = _best(observe, args.repeat)

    n, m = len(states), len(handled)
    print(f"{m} routed messages, {len(valid)} valid; {n} dossiers")
    print(f"fact     {fact_s / n * 1e6:8.2f} µs/state (dossier_fact)")
    print(f"write    {write_s / n * 1e6:8.2f} µs/state (write_rows into chdb)")
    print(f"owner    {owner_s / len(valid) * 1e6:8.2f} µs/message (re-keying check)")
    print(f"observe  {observe_s / m * 1e6:8.2f} µs/message (Metrics.observe)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
