"""End to end on real parts: the Tansu broker, Faust, aiokafka and chdb (no mocks).

* ``demo --events`` (the real command, in a subprocess) against a ground
  truth the simulator computes independently of the core, with events of one
  dossier interleaved across the four topics, 1% duplicates and invalid
  events of every kind;
* ``produce`` (the real command) twice against a running worker leaves every
  figure unchanged.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import orjson
import pytest

from dossier_stream.core.indicators import INDICATORS
from dossier_stream.core.periods import Period, monthly_report
from dossier_stream.core.registry import UnitRegistry
from dossier_stream.core.topics import load_catalog
from dossier_stream.core.workdays import WorkCalendar
from dossier_stream.settings import Settings
from dossier_stream.sim import testing as t
from dossier_stream.store.codec import loads_dossier
from dossier_stream.stream.embedded import EmbeddedBroker
from dossier_stream.stream.runner import Worker, create_topics, open_store

pytestmark = pytest.mark.integration

CLI = [sys.executable, "-m", "dossier_stream"]


def _run_cli(
    args: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 600
) -> subprocess.CompletedProcess[bytes]:
    full_env = {**os.environ, "DOSSIER_LOG_LEVEL": "WARNING", **(env or {})}
    proc = subprocess.run(
        [*CLI, *args], cwd=cwd, env=full_env, capture_output=True, timeout=timeout, check=False
    )
    assert proc.returncode == 0, proc.stderr.decode()[-3000:]
    return proc


def _expected(
    truth: dict[tuple[str, date, str], int], period: Period
) -> dict[tuple[str, str], int]:
    out: dict[tuple[str, str], int] = {}
    for (unit, day, name), v in truth.items():
        if day in period:
            out[(unit, name)] = out.get((unit, name), 0) + v
    return out


@pytest.mark.parametrize(
    ("runtime", "state_store"),
    [("batch", "rocksdb"), ("faust", "memory")],
    ids=["batch-runtime-rocksdb", "faust-runtime-memory"],
)
def test_demo_matches_an_independent_ground_truth(
    tmp_path: Path, registry: UnitRegistry, calendar: WorkCalendar, runtime: str, state_store: str
) -> None:
    """Both runtimes (and both state stores) give the exact ground truth."""
    from dossier_stream.sim.simulate import SimConfig, simulate

    period = monthly_report(2024, 10)
    sim = simulate(
        SimConfig(period=period, seed=7, dossiers=4_000, duplicate_rate=0.01, invalid_rate=0.005),
        registry,
        calendar,
    )
    events = tmp_path / "events.jsonl"
    sim.write(events)
    _run_cli(
        [
            "demo",
            "--events",
            str(events),
            "--period",
            "2024-10",
            "--format",
            "json",
            "--out",
            str(tmp_path / "report.json"),
        ],
        cwd=tmp_path,
        env={"DOSSIER_RUNTIME": runtime, "DOSSIER_STATE_STORE": state_store},
    )
    report = orjson.loads((tmp_path / "report.json").read_bytes())

    expected = _expected(sim.truth, period)
    mismatches = []
    for ind in INDICATORS:
        if ind.key == "synchronisation":
            continue
        for code, fig in report["indicators"][ind.key]["units"].items():
            for part, counter in (("numerator", ind.numerator), ("denominator", ind.denominator)):
                want = expected.get((code, counter), 0)
                if fig[part] != want:
                    mismatches.append((ind.key, code, part, fig[part], want))
    assert mismatches == []
    assert report["received"]["city"] == sum(
        v for (_, name), v in expected.items() if name == "received"
    )
    pipeline = report["pipeline"]
    assert pipeline["events_in"] == len(sim.lines)
    assert pipeline["deadletter"] == sim.invalid
    assert pipeline["duplicates"] >= sim.duplicates
    assert pipeline["valid"] + pipeline["duplicates"] + pipeline["deadletter"] == len(sim.lines)

    # every invalid line went through the dead-letter topic (the worker logs it from there)
    settings = Settings(clickhouse_dsn=f"chdb://{tmp_path / '.dossier-stream/demo/clickhouse'}")  # type: ignore[arg-type]
    store = open_store(settings)
    try:
        logged = store.dead_letters(limit=100_000)
        assert len(logged) == sim.invalid
        assert all(row["reason"] and row["reason"] != "unknown" for row in logged)
        assert store.count("dossier_facts") > 0
    finally:
        store.close()


async def _settle(worker: Worker, expected_events: int, timeout: float = 120) -> None:
    assert await worker.wait_for(expected_events, timeout=timeout), worker.processor.stats


def test_producing_the_same_file_twice_changes_nothing(
    tmp_path: Path,
    worker_settings: Callable[..., Settings],
    broker: EmbeddedBroker,
    registry: UnitRegistry,
    calendar: WorkCalendar,
) -> None:
    unit = "HP-Q-313"
    lines = []
    for i in range(300):
        d = f"000.00.31.H26-241003-{i:04d}"
        lines += [
            t.received(
                d,
                unit,
                channel="online" if i % 4 else "direct",
                fee=i % 2 == 0,
                at="2024-10-03T08:15:00+07:00",
            ),
            t.payment(d, unit, transaction_id=f"tx-{i}", at="2024-10-03T09:00:00+07:00"),
            t.digitized(d, unit, kind="component"),
            t.completed(d, unit, at="2024-10-08T10:00:00+07:00"),
        ]
    events = tmp_path / "events.jsonl"
    events.write_bytes(b"\n".join(t.encode(e) for e in lines) + b"\nnot json\n")
    env = {"DOSSIER_BOOTSTRAP_SERVERS": broker.bootstrap}
    settings = worker_settings(app_id="idempotence-test")
    catalog = load_catalog()
    store = open_store(settings)
    period = monthly_report(2024, 10)

    async def scenario() -> list[dict[str, Any]]:
        await create_topics(settings, catalog)
        worker = Worker(settings, catalog, registry, calendar, store)
        await worker.start()
        reports = []
        try:
            for round_ in (1, 2):
                await asyncio.to_thread(_run_cli, ["produce", str(events)], tmp_path, env)
                await _settle(worker, round_ * (len(lines) + 1))
                counters = store.counters(period.start, period.end)
                reports.append(
                    {
                        "counters": counters,
                        "facts": store.count("dossier_facts"),
                        "dead": store.count("dead_letters"),
                    }
                )
        finally:
            await worker.stop()
        return reports

    try:
        first, second = asyncio.run(scenario())
        states = [loads_dossier(s) for s in store.open_states(period.ends_at)]
    finally:
        store.close()
    assert first["counters"] == second["counters"]
    assert first["facts"] == second["facts"] == 300
    assert sum(v for (_, _, n), v in first["counters"].items() if n == "received") == 300
    assert sum(v for (_, _, n), v in first["counters"].items() if n == "received_online") == 225
    # the unroutable line was logged once per produce run, each with its own source offset
    assert first["dead"] == 1 and second["dead"] == 1
    assert states == []  # every dossier was completed before the end of the period


def test_report_command_on_an_empty_store_prints_zeros_only_when_asked(tmp_path: Path) -> None:
    env = {"DOSSIER_CLICKHOUSE_DSN": f"chdb://{tmp_path / 'empty'}"}
    refused = subprocess.run(
        [*CLI, "report", "--period", "2024-10"], cwd=tmp_path, env={**os.environ, **env},
        capture_output=True, timeout=60, check=False,
    )  # fmt: skip
    assert refused.returncode == 1 and refused.stdout == b""
    assert "--allow-empty" in refused.stderr.decode()
    empty = ["--period", "2024-10", "--allow-empty"]
    out = _run_cli(["report", *empty, "--format", "json"], tmp_path, env)
    report = orjson.loads(out.stdout)
    assert report["received"]["city"] == 0
    assert report["indicators"]["online_submission"]["city"]["no_dossiers"] is True
    args = ["report", *empty, "--template", "summary"]
    assert "no dossiers" in _run_cli(args, tmp_path, env).stdout.decode()
    text = _run_cli(["report", *empty], tmp_path, env).stdout.decode()
    assert "được cập nhật trên hệ thống là 0 hồ sơ" in text  # the monthly form, with zeros


def test_a_wrong_setting_stops_with_its_name(tmp_path: Path) -> None:
    proc = subprocess.run(
        [*CLI, "report", "--period", "2024-10"],
        cwd=tmp_path,
        env={
            **os.environ,
            "DOSSIER_CLICKHOUSE_DSN": "mysql://u:secret@h/db",
            "DOSSIER_FLUSH_INTERVAL_S": "-1",
        },
        capture_output=True,
        timeout=60,
        check=False,
    )
    err = proc.stderr.decode()
    assert proc.returncode != 0
    assert "DOSSIER_CLICKHOUSE_DSN" in err and "DOSSIER_FLUSH_INTERVAL_S" in err
    assert "secret" not in err
