"""Upstream producers that are not ours: another client library, every codec, null values.

On real parts (the embedded Tansu broker, chdb, the worker of each runtime):

* kafka-python — a client whose protocol, record-batch and compression code are
  not aiokafka's — publishes a simulated file, a fifth of it with each codec
  (none, gzip, snappy, lz4, zstd); the worker's report equals the in-memory
  replay of the same file in every figure. (Tansu serves the gzip and zstd
  batches as they were sent and the lz4 and snappy ones decompressed; that
  aiokafka decodes those two is ``test_codecs.py``.) Then, in the same run, a tombstone
  on ``unit.reports.v1`` deletes a unit's report (the replay applies the same
  deletion), a null value on a dossier topic and a line that is not UTF-8 are
  dead letters, ``deadletter replay --dry-run`` shows the letter's bytes
  exactly (their SHA-256), and ``deadletter replay`` re-publishes a letter's
  bytes exactly (read back from the broker).
* Topics created with different partition counts: ``dossier-stream worker``
  exits non-zero within seconds with two lines naming them, no traceback.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest
from kafka import KafkaConsumer, KafkaProducer
from pydantic import SecretStr

from dossier_stream.cli.deadletter import route_of
from dossier_stream.core.periods import monthly_report
from dossier_stream.core.registry import UnitRegistry
from dossier_stream.core.topics import TopicCatalog, load_catalog
from dossier_stream.core.workdays import WorkCalendar
from dossier_stream.settings import Settings
from dossier_stream.store.views import write_units
from dossier_stream.stream.embedded import EmbeddedBroker
from dossier_stream.stream.runner import COMPRESSION_CODECS, Worker, create_topics, open_store
from streamharness import replay, report_mismatches

pytestmark = pytest.mark.integration

CLI = [sys.executable, "-m", "dossier_stream"]
KEYS = {"dossier": "dossier_id", "feedback": "feedback_id", "unit": "unit_code"}
NOT_UTF8 = b'{"event_type": "dossier.payment", "note": "Ph\xed l\xea ph\xed"}\xff'


def _route(raw: bytes, catalog: TopicCatalog) -> tuple[str, bytes | None]:
    """Topic and key as an upstream system keys it (lines no topic carries: progress)."""
    try:
        obj = orjson.loads(raw)
        topic = catalog.topic_for(obj["event_type"])
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return "dossier.progress.v1", None
    key = obj.get(KEYS[topic.split(".", 1)[0]])
    return topic, key.encode() if isinstance(key, str) else None


def _publish(
    bootstrap: str, messages: list[tuple[str, bytes | None, bytes | None]], codec: str
) -> None:
    """``(topic, key, value)`` through kafka-python with ``codec``; every send acknowledged."""
    producer = KafkaProducer(
        bootstrap_servers=bootstrap,
        compression_type=None if codec == "none" else codec,
        linger_ms=5,
        acks=1,
    )
    try:
        sent = [producer.send(topic, key=key, value=value) for topic, key, value in messages]
        producer.flush(60)
        for future in sent:
            future.get(30)
    finally:
        producer.close(10)


def _read_all(bootstrap: str, topics: set[str | None]) -> list[bytes]:
    """Every value on ``topics``, read with kafka-python from the beginning."""
    consumer = KafkaConsumer(
        *sorted(t for t in topics if t),
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=5000,
    )
    try:
        return [m.value for m in consumer if m.value is not None]
    finally:
        consumer.close()


def _cli(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [*CLI, *args],
        cwd=cwd,
        env={**os.environ, "DOSSIER_LOG_LEVEL": "WARNING", **env},
        capture_output=True,
        timeout=300,
        check=False,
    )


@pytest.mark.parametrize("runtime", ["batch", "faust"])
def test_another_client_library_with_every_codec_and_null_values(
    tmp_path: Path,
    broker: EmbeddedBroker,
    registry: UnitRegistry,
    calendar: WorkCalendar,
    runtime: str,
) -> None:
    from dossier_stream.sim.simulate import SimConfig, simulate

    period = monthly_report(2024, 10)
    sim = simulate(
        SimConfig(period=period, seed=12, dossiers=1_500, feedback=60, invalid_rate=0.005),
        registry,
        calendar,
    )
    lines = list(sim.lines)
    catalog = load_catalog()
    routed = [(*_route(raw, catalog), raw) for raw in lines]
    dsn = tmp_path / "ch"
    settings = Settings(
        bootstrap_servers=broker.bootstrap,
        clickhouse_dsn=SecretStr(f"chdb://{dsn}"),
        data_dir=tmp_path / "data",
        app_id=f"upstream-{runtime}",
        runtime=runtime,  # type: ignore[arg-type]
        metrics_port=0,
        metrics_host="127.0.0.1",
    )
    store = open_store(settings)
    write_units(store, registry)
    engine = replay(lines, registry, calendar)
    reported_units = sorted({unit for unit, _, _ in engine.reported})
    gone = reported_units[0]  # the unit whose report a tombstone deletes
    nulls: list[tuple[str, bytes | None, bytes | None]] = [
        ("unit.reports.v1", gone.encode(), None),
        ("dossier.payments.v1", b"000.00.31.H26-241003-0001", None),
        ("dossier.payments.v1", None, NOT_UTF8),
    ]

    async def scenario() -> tuple[list[str], list[str], dict[str, Any], dict[Any, int]]:
        await create_topics(settings, catalog)
        worker = Worker(settings, catalog, registry, calendar, store)
        await worker.start()
        try:
            # a fifth of the file with each codec, from another client library
            for i, codec in enumerate(COMPRESSION_CODECS):
                await asyncio.to_thread(_publish, broker.bootstrap, routed[i::5], codec)
            assert await worker.wait_for(len(lines), timeout=300), worker.processor.stats
            before = report_mismatches(store, engine, registry, period)
            # null values, and bytes that are not UTF-8 (lz4, to the end)
            await asyncio.to_thread(_publish, broker.bootstrap, nulls, "lz4")
            assert await worker.wait_for(len(lines) + len(nulls), timeout=120)
            engine.tombstone(gone.encode(), topic="unit.reports.v1")
            after = report_mismatches(store, engine, registry, period)
            deadline = time.monotonic() + 60  # the dead letters go through their topic
            while store.count("dead_letters") < sim.invalid + 2 and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
            stats = worker.processor.stats.to_json()
        finally:
            await worker.stop()
        return before, after, stats, store.reported_totals(period.start, period.end)

    try:
        before, after, stats, reported = asyncio.run(scenario())
        letters = store.find_dead_letters(limit=None)
    finally:
        store.close()
    assert before == [] and after == []
    assert stats["events_in"] == len(lines) + len(nulls)
    assert stats["deadletter_by_reason"]["null_value"] == 1
    assert gone not in {unit for unit, _, _ in reported}
    assert len(reported) == len([k for k in engine.reported if k[1:] == (period.start, period.end)])
    # the null value and the line that is not UTF-8, each with its own identity
    (null,) = [r for r in letters if r["code"] == "null_value"]
    assert null["topic"] == "dossier.payments.v1" and null["value"] == b""
    (raw,) = [r for r in letters if r["value"] == NOT_UTF8]
    assert raw["code"] == "not_json" and raw["value_exact"] == 1
    assert len({r["id"] for r in letters}) == len(letters) == sim.invalid + 2

    # deadletter replay --dry-run shows those exact bytes
    proc = _cli(
        ["deadletter", "replay", "--dry-run", "--reason", "not_json"],
        tmp_path,
        {"DOSSIER_CLICKHOUSE_DSN": f"chdb://{dsn}", "DOSSIER_BOOTSTRAP_SERVERS": broker.bootstrap},
    )
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    shown = {
        line.split()[0]: line.split()[2]
        for line in proc.stdout.decode().splitlines()
        if "sha256:" in line
    }
    assert shown[raw["id"]] == f"sha256:{hashlib.sha256(NOT_UTF8).hexdigest()}"

    # a replay re-publishes a letter's bytes exactly: read back from the broker
    routable = [r for r in letters if route_of(r["value"], catalog) is not None]
    code = routable[0]["code"]
    chosen = [r for r in routable if r["code"] == code]
    proc = _cli(
        ["deadletter", "replay", "--reason", code],
        tmp_path,
        {"DOSSIER_CLICKHOUSE_DSN": f"chdb://{dsn}", "DOSSIER_BOOTSTRAP_SERVERS": broker.bootstrap},
    )
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    on_broker = Counter(
        _read_all(broker.bootstrap, {route_of(r["value"], catalog) for r in chosen})
    )
    for letter in chosen:  # the upstream original, then the replay: the same bytes twice
        assert on_broker[letter["value"]] >= 2, letter


def test_the_worker_refuses_topics_with_different_partition_counts(
    tmp_path: Path, broker: EmbeddedBroker
) -> None:
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    catalog = load_catalog()
    settings = Settings(bootstrap_servers=broker.bootstrap)

    async def topics() -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap)
        await admin.start()
        try:  # created by hand with 3 partitions, before `topics create` makes the rest
            await admin.create_topics([NewTopic("dossier.payments.v1", 3, 1)])
        finally:
            await admin.close()
        await create_topics(settings, catalog)

    asyncio.run(topics())
    env = {
        "DOSSIER_BOOTSTRAP_SERVERS": broker.bootstrap,
        "DOSSIER_CLICKHOUSE_DSN": f"chdb://{tmp_path / 'ch'}",
        "DOSSIER_DATA_DIR": str(tmp_path / "data"),
        "DOSSIER_METRICS_PORT": "0",
        "DOSSIER_METRICS_HOST": "127.0.0.1",
    }
    t0 = time.monotonic()
    proc = _cli(["worker"], tmp_path, env)
    took = time.monotonic() - t0
    err = proc.stderr.decode()
    assert proc.returncode != 0, err
    assert took < 60, took  # seconds, not a retry loop (generous: the machine is shared)
    assert "Traceback" not in err
    message = [line for line in err.splitlines() if line.strip()]
    assert len(message) == 2, err
    assert "dossier.payments.v1=3" in message[0] and "dossier.submissions.v1=6" in message[0]
    assert "--alter --topic dossier.payments.v1 --partitions 6" in message[1]
    assert "dossier-stream topics create" in message[1]
