"""chdb's merges of its largest parts, measured: the resident memory they add, per setting.

``python -m bench.merges [--facts 8800000] [--counters 36000000] [--parts 6]
[--tables dossier_facts,unit_day_counters] [--table-setting k=v ...] [--server
k=v ...]`` opens a fresh chdb store in a temporary directory through
:func:`~dossier_stream.store.sink.connect` (the worker's path; ``--server``
settings go to the engine's command line as ``chdb_options``), migrates it
(``--schema-before V``: only the migrations before ``V``, an older store's
tables), applies ``--table-setting`` to the tables it fills (``ALTER TABLE …
MODIFY SETTING``, as a migration would), and with merges stopped fills them
with ``--parts`` parts each, generated inside chdb (``INSERT … SELECT FROM
numbers()``) and shaped like the worker's rows at 30 million events (8,8
million dossiers with a ~320-byte state and ~24-byte ids, interleaved between
parts; 36 million distinct counter keys over 6 sources, 252 units, 27
counters; with ``dead_letters`` in ``--tables``, ``--letters`` letters of
which one in nine is 70-120 KB, as the simulator's invalid lines are). Those
are the parts the end of a 30-million run merges.

Then it releases chdb's freed memory (``SYSTEM JEMALLOC PURGE``), takes the
baseline, starts the merges (background, as in the worker; ``--optimize``: an
``OPTIMIZE TABLE … FINAL`` per table instead) and samples every
``--every`` s, from a thread: ``VmRSS`` of ``/proc/self/status``, chdb's
``MemoryTracking`` and ``MergesMutationsMemoryTracking`` (``system.metrics``)
and ``system.merges`` (merges running, their ``memory_usage``, parts,
algorithm). It prints the peaks minus the baseline, the merge time and the
CPU of chdb's threads. With ``--flushes N`` it then runs N worker-shaped
flushes through the real insert path (:class:`ClickHouseStore`'s
``write_counters``/``write_rows`` with :mod:`bench.sink`'s rows) and prints
the calling thread's CPU per flush and the active parts after them.
"""

from __future__ import annotations

import argparse
import os
import random
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.sink import counter_rows, fact_rows
from dossier_stream.store.sink import ClickHouseStore, connect
from dossier_stream.stream.processor import DOSSIER_FACT_COLUMNS

__all__ = ["main"]

_TABLES = ("dossier_facts", "unit_day_counters", "dead_letters")
_MIB = 1 << 20

_FACTS = """INSERT INTO dossier_facts SELECT
    concat('HP-U', leftPad(toString(u), 3, '0'), '-2408', leftPad(toString(h % 28), 2, '0'),
           '-', leftPad(toString(k), 8, '0')) AS dossier_id,
    concat('dossier:', toString(k % 6)), concat('HP-U', leftPad(toString(u), 3, '0')),
    toDateTime64(1722882670 + k % 31536000, 6), toDateTime64(1726480800 + k % 31536000, 6),
    ['online', 'direct', 'postal'][1 + h % 3], ['full', 'partial', ''][1 + bitShiftRight(h, 3) % 3],
    h % 2, bitShiftRight(h, 1) % 2, bitShiftRight(h, 2) % 2, bitShiftRight(h, 3) % 2,
    bitShiftRight(h, 4) % 2, bitShiftRight(h, 5) % 2, bitShiftRight(h, 6) % 2,
    h % 3, [], [],
    if(h % 4 = 0, NULL, toDateTime64(1726442433 + k % 31536000, 6)),
    toDateTime64(1726480800 + k % 31536000, 6), if(h % 4 = 0, NULL, h % 2), h % 2,
    if(h % 50 = 0, toDateTime64(1726442433, 6), NULL),
    concat('[1,"', dossier_id, '",[', toString(h), ',', toString(cityHash64(k, 2)), ',',
           toString(cityHash64(k, 3)), '],[[', toString(1722882670000000 + k), ',"sim0-',
           toString(k), '"],"HP-U', toString(u), '","1.0', toString(h % 9999),
           '","online","partial",', toString(1722882670000000 + k), ',',
           toString(1726480800000000 + k), ',false,false],[],true,false,[],[[',
           toString(1726442433000000 + k), ',"sim0-', toString(k + 4),
           '"],', toString(1726442433000000 + k), ',"approved",false],null]'),
    {version:UInt64} + number
FROM (SELECT number, number * {parts:UInt64} + {part:UInt64} AS k, cityHash64(k) AS h,
             h % 252 AS u FROM numbers({rows:UInt64}))"""
_COUNTERS = """INSERT INTO unit_day_counters SELECT
    concat('dossier:', toString(intDiv(k, 6804) % 6)),
    concat('HP-U', leftPad(toString(intDiv(k, 27) % 252), 3, '0')),
    toDate('2015-01-01') + intDiv(k, 40824),
    concat('counter_', leftPad(toString(k % 27), 2, '0')),
    toInt64(cityHash64(k) % 5000), {version:UInt64} + number
FROM (SELECT number, number * {parts:UInt64} + {part:UInt64} AS k FROM numbers({rows:UInt64}))"""
_LETTERS = """INSERT INTO dead_letters (id, topic, partition, offset, reason, code, detail, value,
    logged_at)
SELECT lower(hex(cityHash64(k, 7))), 'dossier.progress.v1', toInt32(k % 6), toInt64(k),
    'bad_value:file_count', 'bad_value', 'Input should be greater than or equal to 1',
    if(k % 9 = 0, concat('{"padding": "', repeat('x', 70000 + k % 50000), '"}'),
       concat('{"event_type": "dossier.digitized", "event_id": "bad-', toString(k), '"}')),
    toDateTime64(1722882670 + k, 3)
FROM (SELECT number * {parts:UInt64} + {part:UInt64} AS k FROM numbers({rows:UInt64}))"""
"""Letters shaped like a 30-million run's: one in nine of 70-120 KB (the simulator's
``too_large`` and ever deeper ``[[…]]`` lines), the others a short line."""


def _rss() -> int:
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) << 10
    return 0


def _chdb_cpu() -> float:
    """CPU seconds of every thread but the main one (chdb's, here)."""
    tick, main, total = os.sysconf("SC_CLK_TCK"), str(os.getpid()), 0.0
    for tid in os.listdir("/proc/self/task"):
        if tid == main:
            continue
        try:
            with open(f"/proc/self/task/{tid}/stat", encoding="ascii") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


class _Sampler(threading.Thread):
    """Samples RSS, chdb's tracked memory and ``system.merges`` until stopped."""

    def __init__(self, client: Any, every: float) -> None:
        super().__init__(daemon=True)
        self.client, self.every = client, every
        self.stop = threading.Event()
        self.peak = {"rss": 0, "tracked": 0, "merges_tracked": 0, "merge_memory": 0}
        self.running = 0  # most merges seen at once
        self.algorithms: set[str] = set()
        self.samples = 0

    def run(self) -> None:
        while not self.stop.is_set():
            metrics = dict(
                self.client.query(
                    "SELECT metric, value FROM system.metrics WHERE metric IN "
                    "('MemoryTracking', 'MergesMutationsMemoryTracking')"
                ).result_rows
            )
            merges = self.client.query(
                "SELECT memory_usage, merge_algorithm FROM system.merges"
            ).result_rows
            now = {
                "rss": _rss(),
                "tracked": int(metrics.get("MemoryTracking", 0)),
                "merges_tracked": int(metrics.get("MergesMutationsMemoryTracking", 0)),
                "merge_memory": sum(int(m) for m, _ in merges),
            }
            for k, v in now.items():
                self.peak[k] = max(self.peak[k], v)
            self.running = max(self.running, len(merges))
            self.algorithms.update(str(a) for _, a in merges)
            self.samples += 1
            self.stop.wait(self.every)


def _parts(client: Any) -> dict[str, int]:
    rows = client.query(
        "SELECT table, count() FROM system.parts WHERE active AND database = currentDatabase() "
        "GROUP BY table"
    ).result_rows
    return {str(t): int(n) for t, n in rows}


def _fill(client: Any, table: str, sql: str, total: int, parts: int) -> None:
    for part in range(parts):
        rows = total // parts + (1 if part < total % parts else 0)
        client.command(
            sql, parameters={"rows": rows, "parts": parts, "part": part, "version": part << 32}
        )


def _report(store: ClickHouseStore, times: int) -> None:
    """Time the year report's two reads (:mod:`dossier_stream.store.reportreads`) on the store."""
    from datetime import UTC, date, datetime  # noqa: PLC0415

    from dossier_stream.store.reportreads import counter_totals, open_past_due_counts  # noqa: PLC0415

    walls, cpus = [], []
    for _ in range(times):
        t, c = time.perf_counter(), time.process_time()
        counter_totals(store, date(2015, 1, 1), date(2015, 12, 31))
        open_past_due_counts(store, datetime(2025, 1, 1, tzinfo=UTC))
        walls.append(time.perf_counter() - t)
        cpus.append(time.process_time() - c)
    walls.sort()
    cpus.sort()
    print(
        f"the report's reads ×{times}: median wall {walls[times // 2]:.3f} s, "
        f"process CPU {cpus[times // 2]:.3f} s"
    )


def _pairs(items: Sequence[str]) -> dict[str, str]:
    return dict(item.split("=", 1) for item in items)


def main(argv: Sequence[str] | None = None) -> int:  # noqa: PLR0915
    """Fill, merge, sample; print one line of peaks and one of costs."""
    parser = argparse.ArgumentParser(prog="python -m bench.merges", description=__doc__)
    parser.add_argument("--facts", type=int, default=8_800_000, help="dossier_facts rows")
    parser.add_argument("--counters", type=int, default=36_000_000, help="counter rows")
    parser.add_argument("--letters", type=int, default=30_000, help="dead_letters rows")
    parser.add_argument("--parts", type=int, default=6, help="parts per table to merge")
    parser.add_argument(
        "--schema-before", type=int, help="apply only the migrations before this version"
    )
    parser.add_argument(
        "--table-setting", action="append", default=[], help="k=v, the tables filled"
    )
    parser.add_argument("--server", action="append", default=[], help="k=v, chdb_options")
    parser.add_argument("--tables", default=",".join(_TABLES), help="tables to fill and merge")
    parser.add_argument("--optimize", action="store_true", help="OPTIMIZE FINAL, not background")
    parser.add_argument("--every", type=float, default=0.05, help="sampling period, s")
    parser.add_argument("--timeout", type=float, default=900.0, help="merge wait limit, s")
    parser.add_argument("--flushes", type=int, default=0, help="worker-shaped flushes after")
    parser.add_argument("--dir", type=Path, help="the store's directory (kept)")
    parser.add_argument(
        "--report", type=int, default=0, help="time the report's two reads this often after"
    )
    args = parser.parse_args(argv)
    tables = [t for t in args.tables.split(",") if t]
    server = _pairs(args.server)
    with tempfile.TemporaryDirectory(prefix="bench-merges-") as tmp:
        path = (args.dir or Path(tmp)).resolve() / "ch"
        if server:
            import clickhouse_connect  # noqa: PLC0415

            path.mkdir(parents=True, exist_ok=True)
            client = clickhouse_connect.get_client(dsn=f"chdb://{path}", chdb_options=server)
            probe = clickhouse_connect.get_client(dsn=f"chdb://{path}", chdb_options=server)
        else:
            client, probe = connect(f"chdb://{path}"), connect(f"chdb://{path}")
        store = ClickHouseStore(client)
        store.migrate(before=args.schema_before)  # before V: an older store's tables
        for table in _TABLES:
            for setting in args.table_setting if table in tables else ():
                client.command(f"ALTER TABLE {table} MODIFY SETTING {setting}")
            client.command(f"SYSTEM STOP MERGES {table}")
        shown = client.query(
            "SELECT name, value FROM system.server_settings WHERE name IN "
            "('background_pool_size', 'background_merges_mutations_concurrency_ratio', "
            "'merges_mutations_memory_usage_soft_limit')"
        ).result_rows
        print(
            f"server: { {str(k): str(v) for k, v in shown} }; "
            f"tables: {args.table_setting or 'defaults'}"
        )
        t = time.perf_counter()
        if "dossier_facts" in tables:
            _fill(client, "dossier_facts", _FACTS, args.facts, args.parts)
        if "unit_day_counters" in tables:
            _fill(client, "unit_day_counters", _COUNTERS, args.counters, args.parts)
        if "dead_letters" in tables:
            _fill(client, "dead_letters", _LETTERS, args.letters, args.parts)
        sizes = client.query(
            "SELECT table, sum(rows), sum(bytes_on_disk), groupUniqArray(part_type) FROM "
            "system.parts WHERE active AND database = currentDatabase() GROUP BY table"
        ).result_rows
        print(
            f"filled in {time.perf_counter() - t:.1f} s: "
            + "; ".join(f"{tb} {r} rows {b / _MIB:.0f} MiB {types}" for tb, r, b, types in sizes)
        )
        store.release_memory()
        time.sleep(1.0)
        store.release_memory()
        base_rss = _rss()
        base: dict[str, int] = dict(
            client.query(  # type: ignore[arg-type]
                "SELECT metric, value FROM system.metrics WHERE metric IN "
                "('MemoryTracking', 'MergesMutationsMemoryTracking')"
            ).result_rows
        )
        sampler = _Sampler(probe, args.every)
        sampler.start()
        cpu0, t0 = _chdb_cpu(), time.perf_counter()
        if args.optimize:
            for table in tables:
                client.command(f"SYSTEM START MERGES {table}")
                client.command(f"OPTIMIZE TABLE {table} FINAL")
        else:
            for table in _TABLES:
                client.command(f"SYSTEM START MERGES {table}")
            deadline = time.monotonic() + args.timeout
            idle = time.monotonic()
            while time.monotonic() < deadline:
                time.sleep(0.2)
                parts = _parts(client)
                busy = client.query("SELECT count() FROM system.merges").result_rows[0][0]
                if busy:
                    idle = time.monotonic()
                if not busy and all(parts.get(tb, 0) <= 1 for tb in tables):
                    break
                if time.monotonic() - idle > 12.0:  # the selector chose no merge for 12 s
                    break
        wall = time.perf_counter() - t0
        cpu = _chdb_cpu() - cpu0
        sampler.stop.set()
        sampler.join()
        print(
            f"merged in {wall:.1f} s wall, {cpu:.1f} s CPU of chdb's threads; parts after "
            f"{_parts(client)}; merges at once ≤ {sampler.running}, "
            f"{sorted(sampler.algorithms)}, {sampler.samples} samples"
        )
        print(
            f"baseline rss {base_rss / _MIB:.0f} MiB, tracked "
            f"{int(base.get('MemoryTracking', 0)) / _MIB:.0f} MiB | peak − baseline: rss "
            f"{(sampler.peak['rss'] - base_rss) / _MIB:.0f} MiB, tracked "
            f"{(sampler.peak['tracked'] - int(base.get('MemoryTracking', 0))) / _MIB:.0f} MiB"
            f" | merges: tracked {sampler.peak['merges_tracked'] / _MIB:.0f} MiB, "
            f"memory_usage {sampler.peak['merge_memory'] / _MIB:.0f} MiB"
        )
        if args.report:
            _report(store, args.report)
        if args.flushes:
            rng = random.Random(0)
            spent: list[float] = []
            for round_ in range(args.flushes):
                counters, facts = counter_rows(rng, 10_000), fact_rows(rng, 2_000, round_)
                c = time.thread_time()
                store.write_counters(counters)
                store.write_rows("dossier_facts", list(DOSSIER_FACT_COLUMNS), facts)
                spent.append(time.thread_time() - c)
            spent.sort()
            print(
                f"{args.flushes} flushes (10000 counter + 2000 fact rows): calling thread CPU "
                f"median {spent[len(spent) // 2] * 1e3:.1f} ms; parts after {_parts(client)}"
            )
        probe.close()
        store.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
