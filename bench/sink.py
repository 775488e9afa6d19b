"""Micro-benchmark of the ClickHouse flush: ``store.sink.BatchingSink`` on chdb.

``python -m bench.sink [--flushes N]`` opens a fresh chdb store (a temporary
directory unless ``--dir``), migrates it, and runs ``--flushes`` rounds. Each
round buffers what a batch of ~2.000 events leaves in the worker's sink:

* ``--counters`` absolute totals of ``unit_day_counters`` (distinct keys over
  6 sources, 150 units, 31 days, 25 counters);
* ``--facts`` ``dossier_facts`` rows (the columns of
  :func:`~dossier_stream.store.codec.dossier_fact`, but with aware datetimes in
  mixed zones with microseconds where the worker's rows carry ``DateTime64(6)``
  ticks, ``None`` in the Nullable columns, a JSON state);
* a few dead letters (``logged_at`` with microseconds into ``DateTime64(3)``);

then times ``add_*`` (µs per row) and ``flush()`` (ms per flush, rows/s, and
µs per event if a flush stands for ``--events`` consumed events):
wall time, and the CPU time of the flushing thread (``cpu``: Python plus the
part of chdb's work done on that thread, not chdb's own threads), which moves
less than wall time when others share the machine. The first round is a
warm-up and is left out of the figures. Rows are drawn
from a seeded generator, so two versions of the source store the same values:
``--dump PATH`` writes what the tables hold afterwards (``FINAL``, versions
left out, as ClickHouse renders it in TSV) for a ``diff``.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from dossier_stream.core.workdays import VN_TZ
from dossier_stream.store.deadletters import letter_id
from dossier_stream.store.sink import BatchingSink, ClickHouseStore, connect
from dossier_stream.stream.processor import DOSSIER_FACT_COLUMNS

__all__ = ["counter_rows", "dead_letter_rows", "fact_rows", "main"]

_SOURCES = [f"dossier:{p}" for p in range(6)]
_UNITS = [f"HP-UNIT-{u:03d}" for u in range(150)]
_DAYS = [date(2024, 10, 1) + timedelta(days=d) for d in range(31)]
_COUNTERS = [f"counter_{c:02d}" for c in range(25)]
_ZONES = (VN_TZ, UTC, timezone(timedelta(hours=7)))
_DUMPS = (
    "SELECT * EXCEPT version FROM unit_day_counters FINAL ORDER BY ALL",
    "SELECT * EXCEPT version FROM dossier_facts FINAL ORDER BY dossier_id",
    "SELECT * FROM dead_letters FINAL ORDER BY id",
)


def counter_rows(rng: random.Random, n: int) -> list[tuple[str, str, date, str, int]]:
    """``n`` counter rows with distinct keys."""
    keys: set[tuple[str, str, date, str]] = set()
    while len(keys) < n:
        keys.add(
            (rng.choice(_SOURCES), rng.choice(_UNITS), rng.choice(_DAYS), rng.choice(_COUNTERS))
        )
    return [(*k, rng.randrange(0, 5000)) for k in sorted(keys)]


def _at(rng: random.Random, nullable: bool = True) -> datetime | None:
    if nullable and rng.random() < 0.3:
        return None
    at = datetime(2024, 10, 1, tzinfo=UTC) + timedelta(
        microseconds=rng.randrange(31 * 86400 * 10**6)
    )
    return at.astimezone(rng.choice(_ZONES))


def fact_rows(rng: random.Random, n: int, round_: int) -> list[tuple[Any, ...]]:
    """``n`` ``dossier_facts`` rows (ids shared between rounds: later rounds replace them)."""
    rows: list[tuple[Any, ...]] = []
    for i in range(n):
        ident = f"HP-{rng.randrange(4 * n):06d}-{i % 7}"
        flags = [rng.randrange(2) for _ in range(8)]
        state = '{"v":1,"id":"%s","round":%d,"seen":[%s]}' % (  # noqa: UP031
            ident, round_, ",".join(f'"e{rng.randrange(10**9)}"' for _ in range(12))
        )  # fmt: skip
        on_time = None if rng.random() < 0.5 else rng.randrange(2)
        rows.append((
            ident, rng.choice(_SOURCES), rng.choice(_UNITS), _at(rng, False), _at(rng),
            rng.choice(("online", "direct", "postal")), rng.choice(("full", "partial", "")),
            *flags[:7], rng.randrange(3), [], [], _at(rng), _at(rng), on_time, flags[7],
            _at(rng), state,
        ))  # fmt: skip
    assert len(rows[0]) == len(DOSSIER_FACT_COLUMNS)
    return rows


def dead_letter_rows(rng: random.Random, n: int, round_: int) -> list[tuple[Any, ...]]:
    """``n`` dead-letter rows (id, topic, partition, offset, reason, code, detail, value,
    value_exact, at): :data:`~dossier_stream.store.deadletters.DEAD_LETTER_COLUMNS` but
    ``replayed_at``."""
    at = datetime(2024, 10, 3, 8, 30, tzinfo=UTC)
    rows = []
    for i in range(n):
        partition, offset = rng.randrange(6), round_ * n + i
        rows.append((
            letter_id("dossier.progress.v1", partition, offset, 0), "dossier.progress.v1",
            partition, offset, "unknown_unit:X", "unknown_unit", "no such unit", '{"x": 1}', 1,
            at + timedelta(microseconds=rng.randrange(10**9)),
        ))  # fmt: skip
    return rows


def _round(
    sink: BatchingSink, rng: random.Random, args: argparse.Namespace, round_: int
) -> tuple[int, float, float, float]:
    """One round: ``(rows written, s in add_*, s in flush, thread CPU s in flush)``."""
    counters = counter_rows(rng, args.counters)
    facts = fact_rows(rng, args.facts, round_)
    dead = dead_letter_rows(rng, args.dead_letters, round_)
    t0 = time.perf_counter()
    for s, u, d, c, v in counters:
        sink.add_counter(s, (u, d, c), v)
    for row in facts:
        sink.add_fact("dossier_facts", DOSSIER_FACT_COLUMNS, row[0], row, source=row[1])
    for letter in dead:
        sink.add_dead_letter(letter)
    t1, c1 = time.perf_counter(), time.thread_time()
    written = sink.flush()
    return written, t1 - t0, time.perf_counter() - t1, time.thread_time() - c1


def _dump(store: ClickHouseStore, path: Path) -> None:
    with path.open("wb") as out:
        for sql in _DUMPS:
            out.write(store.client.raw_query(sql, fmt="TabSeparatedWithNames"))


def _report(label: str, values: Sequence[float], unit: str) -> str:
    low, high = min(values), max(values)
    return f"{label} {statistics.median(values):9.2f} {unit} (min {low:.2f}, max {high:.2f})"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the micro-benchmark and print ms per flush, rows/s and µs per ``add_*``."""
    parser = argparse.ArgumentParser(prog="python -m bench.sink", description=__doc__)
    parser.add_argument("--flushes", type=int, default=20, help="timed flushes (+1 warm-up)")
    parser.add_argument("--counters", type=int, default=10_000, help="counter rows per flush")
    parser.add_argument("--facts", type=int, default=2_000, help="dossier_facts rows per flush")
    parser.add_argument("--dead-letters", type=int, default=4, help="dead letters per flush")
    parser.add_argument(
        "--events", type=int, default=2_000, help="events a flush stands for (the per-event line)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dir", type=Path, help="chdb directory (default: a temporary one)")
    parser.add_argument("--dump", type=Path, help="write the stored tables (TSV) here")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="bench-sink-") as tmp:
        store = ClickHouseStore(connect(f"chdb://{(args.dir or Path(tmp)).resolve() / 'ch'}"))
        try:
            store.migrate()
            sink = BatchingSink(store, max_rows=10**9, interval_s=3600.0)
            rng = random.Random(args.seed)
            rounds = [_round(sink, rng, args, r) for r in range(args.flushes + 1)][1:]
            if args.dump:
                _dump(store, args.dump)
        finally:
            store.close()
    rows = [w for w, _, _, _ in rounds]
    per_row = sum(a + f for _, a, f, _ in rounds) / sum(rows) * 1e6
    mix = f"{args.counters} counters, {args.facts} facts, {args.dead_letters} dead letters"
    print(f"{len(rounds)} flushes of {rows[0]} rows ({mix})")
    flush_ms = [f * 1e3 for _, _, f, _ in rounds]
    cpu_ms = [c * 1e3 for _, _, _, c in rounds]
    print(_report("flush   ", flush_ms, "ms/flush"))
    print(_report("cpu     ", cpu_ms, "ms/flush"))
    wall_us, cpu_us = (statistics.median(v) * 1e3 / args.events for v in (flush_ms, cpu_ms))
    print(f"per event {wall_us:8.2f} µs wall, {cpu_us:.2f} µs cpu ({args.events} events a flush)")
    print(f"flush    {statistics.median(w / f for w, _, f, _ in rounds):9.0f} rows/s (median)")
    print(_report("add_*   ", [a / w * 1e6 for w, a, _, _ in rounds], "µs/row"))
    print(f"total    {per_row:9.2f} µs/row (add_* and flush)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
