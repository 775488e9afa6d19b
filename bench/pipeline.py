"""Micro-benchmark of the worker's hot path without Kafka: fold, state store, flush to chdb.

``python -m bench.pipeline [--events N] [--batch B]`` routes the benchmark's
workload as ``produce`` does (topic by ``event_type``, partition by a hash of
the key over ``--partitions``), then does what the batch runtime does with
each batch of ``B`` messages: :meth:`~dossier_stream.stream.processor.Processor.handle`
in chunks of 500 (flushing by size within a batch), then one
:meth:`~dossier_stream.store.batching.BatchingSink.flush` into a fresh chdb
store, with the worker's RocksDB state stores and garbage-collector settings.
It prints µs per event (wall and process CPU; the first batch, which opens
the stores, is left out), rows written per event, and with ``--check`` a
SHA-256 of what the tables hold afterwards (``FINAL``, versions left out),
which must not depend on the batch size or on the version of the hot path.

It is deterministic, so ``valgrind --tool=callgrind --trace-children=no
python -m bench.pipeline --events 30000`` gives instruction counts that hold
whatever else runs on the machine (chdb's threads included).
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import tempfile
import time
import zlib
from collections.abc import Sequence
from pathlib import Path

import orjson

from dossier_stream.core.registry import UnitRegistry
from dossier_stream.core.topics import TopicCatalog, load_catalog
from dossier_stream.core.workdays import WorkCalendar
from dossier_stream.store.batching import BatchingSink
from dossier_stream.store.counterstore import open_counter_store
from dossier_stream.store.sink import ClickHouseStore, connect
from dossier_stream.store.statestore import open_dossier_store
from dossier_stream.stream.processor import Message, Processor

__all__ = ["fingerprint", "main", "route"]

_KEY_FIELD = {"dossier": "dossier_id", "feedback": "feedback_id", "unit": "unit_code"}
_CHUNK = 500
_DUMPS = (
    "SELECT * EXCEPT version FROM unit_day_counters FINAL WHERE value != 0 ORDER BY ALL",
    "SELECT * EXCEPT version FROM dossier_facts FINAL ORDER BY dossier_id",
    "SELECT * EXCEPT version FROM feedback_facts FINAL ORDER BY feedback_id",
    "SELECT * EXCEPT version FROM unit_reports FINAL ORDER BY ALL",
)


def route(lines: Sequence[bytes], catalog: TopicCatalog, partitions: int) -> list[Message]:
    """The messages ``produce`` would publish (unroutable lines left out), offsets per partition."""
    out: list[Message] = []
    offsets: dict[tuple[str, int], int] = {}
    for raw in lines:
        try:
            obj = orjson.loads(raw)
            topic = catalog.topic_for(obj["event_type"])
        except (orjson.JSONDecodeError, KeyError, TypeError):
            continue
        if not isinstance(obj, dict):
            continue
        key = obj.get(_KEY_FIELD[topic.split(".", 1)[0]])
        family_partitions = partitions if topic.startswith("dossier.") else 1
        p = zlib.crc32(str(key).encode()) % family_partitions
        offset = offsets.get((topic, p), 0)
        offsets[(topic, p)] = offset + 1
        out.append(Message(topic, p, offset, raw))
    return out


def fingerprint(store: ClickHouseStore) -> str:
    """SHA-256 of what the tables hold (``FINAL``, versions left out): same data, same hash."""
    h = hashlib.sha256()
    for sql in _DUMPS:
        h.update(store.client.raw_query(sql, fmt="TabSeparated"))
    return h.hexdigest()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the micro-benchmark and print µs per event."""
    parser = argparse.ArgumentParser(prog="python -m bench.pipeline", description=__doc__)
    parser.add_argument("--events", type=int, default=60_000, help="simulated lines")
    parser.add_argument("--batch", type=int, default=2_000, help="messages per batch")
    parser.add_argument("--partitions", type=int, default=6, help="dossier partitions")
    parser.add_argument("--max-rows", type=int, default=50_000, help="flush size in a batch")
    parser.add_argument("--check", action="store_true", help="print a fingerprint of the tables")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--lines",
        type=Path,
        help="read the simulated lines from this JSONL file, or write them there if it is "
        "missing (keeps the simulator out of an instruction count)",
    )
    args = parser.parse_args(argv)

    from bench.workload import simulate_events  # noqa: PLC0415

    registry, calendar = UnitRegistry.load_default(), WorkCalendar.default()
    catalog = load_catalog()
    if args.lines is not None and args.lines.exists():
        lines = args.lines.read_bytes().splitlines()[: args.events]
    else:
        lines = simulate_events(args.events, registry, calendar, seed=args.seed)
        if args.lines is not None:
            args.lines.write_bytes(b"\n".join(lines) + b"\n")
    messages = route(lines, catalog, args.partitions)
    del lines
    with tempfile.TemporaryDirectory(prefix="bench-pipeline-") as tmp:
        store = ClickHouseStore(connect(f"chdb://{Path(tmp).resolve() / 'ch'}"))
        store.migrate()
        sink = BatchingSink(store, max_rows=args.max_rows, interval_s=3600.0)
        states = Path(tmp) / "states"
        processor = Processor(
            registry,
            calendar,
            catalog,
            sink,
            store,
            dossier_store=lambda source: open_dossier_store(states, source),
            counter_store=lambda source: open_counter_store(states, source),
        )
        gc.set_threshold(50_000, 20, 100)  # the worker's (runner.Worker.start)
        gc.freeze()
        rows = 0
        batches = [messages[i : i + args.batch] for i in range(0, len(messages), args.batch)]
        t0 = c0 = 0.0
        for n, batch in enumerate(batches):
            if n == 1:
                t0, c0 = time.perf_counter(), time.process_time()
            for start in range(0, len(batch), _CHUNK):
                processor.handle(batch[start : start + _CHUNK])
                if len(sink) >= sink.max_rows:
                    rows += sink.flush()
            rows += sink.flush()
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        timed = len(messages) - len(batches[0]) if len(batches) > 1 else 0
        stats = processor.stats
        print(
            f"{len(messages)} messages in {len(batches)} batches of {args.batch}: "
            f"{stats.valid} applied, {stats.duplicates} duplicates, {stats.deadletter} dead letters"
        )
        if timed:
            print(f"wall     {wall / timed * 1e6:8.2f} µs/event (first batch left out)")
            print(f"cpu      {cpu / timed * 1e6:8.2f} µs/event (process CPU, chdb's threads too)")
        print(f"rows     {rows / max(len(messages), 1):8.3f} per event written to ClickHouse")
        if args.check:
            print(f"fingerprint {fingerprint(store)}")
        processor.close()
        store.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
