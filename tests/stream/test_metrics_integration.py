"""Metrics of a running worker on real parts: Tansu, Faust, chdb, and Debian's Prometheus.

* ``GET /metrics`` on a worker that processed a simulated stream shows every
  family of :mod:`dossier_stream.stream.metrics`, with the values the simulation
  implies;
* a real Prometheus on loopback scrapes that worker every second, loads
  ``deploy/prometheus/rules.yml``, and answers PromQL queries with the
  pipeline figures and a unit's online-submission numerator and denominator.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from dossier_stream.core.periods import monthly_report
from dossier_stream.core.registry import UnitRegistry
from dossier_stream.core.topics import load_catalog
from dossier_stream.core.workdays import VN_TZ, WorkCalendar
from dossier_stream.settings import Settings
from dossier_stream.sim.simulate import SimConfig, Simulation, simulate
from dossier_stream.stream.embedded import EmbeddedBroker, free_port
from dossier_stream.stream.metrics import REASONS, consumer_lag
from dossier_stream.stream.runner import Worker, create_topics, open_store, produce_lines

pytestmark = pytest.mark.integration

RULES = Path(__file__).resolve().parents[2] / "deploy" / "prometheus" / "rules.yml"
PERIOD = monthly_report(2024, 10)
NOW = datetime(2024, 10, 14, 20, 0, tzinfo=VN_TZ)  # the worker's clock: the period's last day
FAMILIES = (
    "dossier_stream_events_consumed",
    "dossier_stream_dead_letters",
    "dossier_stream_duplicates_ignored",
    "dossier_stream_event_apply_latency_seconds",
    "dossier_stream_event_flush_latency_seconds",
    "dossier_stream_clickhouse_flush_duration_seconds",
    "dossier_stream_clickhouse_flushed_rows",
    "dossier_stream_clickhouse_flush_failures",
    "dossier_stream_consumer_lag_messages",
    "dossier_stream_open_dossiers",
    "dossier_stream_open_past_due_dossiers",
    "dossier_stream_indicator_numerator",
    "dossier_stream_indicator_denominator",
    "dossier_stream_indicator_period_start_timestamp_seconds",
    "dossier_stream_indicator_period_end_timestamp_seconds",
)

T = TypeVar("T")


@pytest.fixture(scope="module")
def sim(registry: UnitRegistry, calendar: WorkCalendar) -> Simulation:
    config = SimConfig(
        period=PERIOD, seed=5, dossiers=1500, feedback=60, duplicate_rate=0.01, invalid_rate=0.005
    )
    return simulate(config, registry, calendar)


def _period_truth(sim: Simulation) -> dict[tuple[str, str], int]:
    out: dict[tuple[str, str], int] = {}
    for (unit, day, name), value in sim.truth.items():
        if day in PERIOD:
            out[(unit, name)] = out.get((unit, name), 0) + value
    return out


def _run_worker(
    make_settings: Callable[..., Settings],
    registry: UnitRegistry,
    calendar: WorkCalendar,
    sim: Simulation,
    app_id: str,
    then: Callable[[Worker], Awaitable[T]],
) -> T:
    """Start a worker (metrics on an ephemeral loopback port), produce, wait, run ``then``."""
    settings = make_settings(app_id=app_id, metrics_host="127.0.0.1")
    catalog = load_catalog()
    store = open_store(settings)

    async def scenario() -> T:
        await create_topics(settings, catalog)
        worker = Worker(settings, catalog, registry, calendar, store, clock=lambda: NOW)
        await worker.start()
        try:
            await produce_lines(settings, catalog, sim.lines, source="metrics-test")
            assert await worker.wait_for(len(sim.lines), timeout=60), worker.processor.stats
            await _caught_up(worker)
            await _lag_gauges_at_zero(worker)
            return await then(worker)
        finally:
            await worker.stop()

    try:
        return asyncio.run(scenario())
    finally:
        store.close()


async def _lag_gauges_at_zero(worker: Worker, timeout: float = 30.0) -> None:
    """Refresh the worker's gauges until its exposition shows it 0 behind everywhere.

    The worker reads back the dead letters it publishes; a refresh may still see the
    last of them ahead of its position, so the exposition is read until it is at 0.
    """
    deadline = time.monotonic() + timeout
    url = f"http://127.0.0.1:{worker.metrics_port}/metrics"
    while True:
        await worker.refresh_metrics()
        text = (await asyncio.to_thread(_get, url)).decode()
        lags = {
            (s.labels["topic"], s.labels["partition"]): s.value
            for fam in text_string_to_metric_families(text)
            if fam.name == "dossier_stream_consumer_lag_messages"
            for s in fam.samples
        }
        if lags and not any(lags.values()):
            return
        assert time.monotonic() < deadline, f"lag gauges still above 0 after {timeout} s: {lags}"
        await asyncio.sleep(0.2)


async def _caught_up(worker: Worker, timeout: float = 30.0) -> None:
    """Wait until the worker is 0 behind on every partition it owns.

    Every input line counted is not yet caught up: the worker also reads the
    dead-letter topic, to which it has just published this stream's invalid
    lines, and a batch whose commit a rebalance refused is read again.
    """
    deadline = time.monotonic() + timeout
    while True:
        lags = await consumer_lag(worker.app.consumer)
        owned = {(tp.topic, tp.partition) for tp in worker.app.consumer.assignment()}
        if owned and lags.keys() == owned and not any(lags.values()):
            return
        assert time.monotonic() < deadline, f"still behind after {timeout} s: {lags}"
        await asyncio.sleep(0.1)


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as resp:
        body: bytes = resp.read()
        return body


def test_metrics_endpoint_shows_every_family_after_produce(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    worker_settings: Callable[..., Settings],
    registry: UnitRegistry,
    calendar: WorkCalendar,
    sim: Simulation,
) -> None:
    async def scrape(worker: Worker) -> tuple[str, set[tuple[str, str]], int]:
        # ClickHouse refuses one flush, then recovers: the failure is counted and the
        # buffered row (an absolute total written again, so harmless) goes in the next flush
        source, engine = next(
            (s, e) for s, e in worker.processor.engines.items() if s.startswith("dossier:")
        )
        key, total = next(iter(engine.counters.items()))

        def refuse(rows: Any) -> int:
            raise ConnectionError("ClickHouse is down (test)")

        monkeypatch.setattr(worker.store, "write_counters", refuse)
        worker.sink.add_counter(source, key, total)
        with pytest.raises(ConnectionError):
            worker.sink.flush()
        monkeypatch.undo()
        assert worker.sink.flush() == 1

        assigned = {(tp.topic, str(tp.partition)) for tp in worker.app.consumer.assignment()}
        url = f"http://127.0.0.1:{worker.metrics_port}/metrics"
        body = await asyncio.to_thread(_get, url)
        return body.decode(), assigned, worker.processor.stats.valid

    text, assigned, valid = _run_worker(
        worker_settings, registry, calendar, sim, "metrics-endpoint-test", scrape
    )
    families = {fam.name: fam for fam in text_string_to_metric_families(text)}
    assert set(FAMILIES) <= families.keys()

    def samples(family: str, suffix: str = "") -> list[Any]:
        return [s for s in families[family].samples if s.name == family + suffix]

    def total(family: str, suffix: str = "") -> float:
        return float(sum(s.value for s in samples(family, suffix)))

    nonzero = {
        family: any(
            s.value > 0 for s in families[family].samples if not s.name.endswith("_created")
        )
        for family in FAMILIES
    }
    # a caught-up worker is 0 behind on each partition it owns: the one family that is 0
    assert {f for f, ok in nonzero.items() if not ok} == {"dossier_stream_consumer_lag_messages"}
    lag = samples("dossier_stream_consumer_lag_messages")
    assert {(s.labels["topic"], s.labels["partition"]) for s in lag} == assigned
    assert all(s.value == 0 for s in lag)

    assert total("dossier_stream_events_consumed", "_total") == len(sim.lines)
    assert total("dossier_stream_dead_letters", "_total") == sim.invalid
    assert {s.labels["reason"] for s in samples("dossier_stream_dead_letters", "_total")} == {
        *REASONS,
        "other",
    }
    assert total("dossier_stream_duplicates_ignored", "_total") >= sim.duplicates
    assert total("dossier_stream_event_apply_latency_seconds", "_count") == valid
    assert total("dossier_stream_event_flush_latency_seconds", "_count") == valid
    assert total("dossier_stream_clickhouse_flush_failures", "_total") == 1
    truth = _period_truth(sim)
    received = {  # units with other counts in the period (payments, completions) show 0
        s.labels["unit"]: s.value
        for s in samples("dossier_stream_indicator_denominator")
        if s.labels["indicator"] == "online_submission" and s.value
    }
    assert received == {u: v for (u, n), v in truth.items() if n == "received"}
    assert total("dossier_stream_open_past_due_dossiers") > 0
    assert total("dossier_stream_indicator_period_start_timestamp_seconds") == (
        PERIOD.starts_at.timestamp()
    )


class _Prometheus:
    """Debian's prometheus on a free loopback port, with a temp storage dir."""

    def __init__(self, tmp_path: Path, target: str) -> None:
        binary = shutil.which("prometheus")
        if binary is None:
            pytest.fail("prometheus is missing: run ./scripts/setup (scripts/debian-packages.txt)")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = tmp_path / "prometheus.yml"
        job = {"job_name": "dossier-stream", "static_configs": [{"targets": [target]}]}
        settings = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(RULES)],
            "scrape_configs": [job],
        }
        config.write_text(yaml.safe_dump(settings), encoding="utf-8")
        self.log = (tmp_path / "prometheus.log").open("wb")
        self.proc = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            stdin=subprocess.DEVNULL,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"prometheus exited ({self.proc.returncode})"
            try:
                _get(f"{self.url}/-/ready")
                return
            except OSError:
                time.sleep(0.2)
        raise TimeoutError("prometheus did not become ready")

    def api(self, path: str, **params: str) -> Any:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        doc = json.loads(_get(f"{self.url}/api/v1/{path}{query}"))
        assert doc["status"] == "success", doc
        return doc["data"]

    def value(self, expr: str) -> float | None:
        """The single value of an instant query (None when it returns nothing)."""
        result = self.api("query", query=expr)["result"]
        assert len(result) <= 1, result
        return float(result[0]["value"][1]) if result else None

    def wait_value(self, expr: str, want: float, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        got = None
        while time.monotonic() < deadline:
            got = self.value(expr)
            if got == want:
                return
            time.sleep(0.5)
        raise AssertionError(f"{expr} = {got}, expected {want}")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def test_prometheus_scrapes_the_pipeline_and_a_units_rate(
    tmp_path: Path,
    worker_settings: Callable[..., Settings],
    registry: UnitRegistry,
    calendar: WorkCalendar,
    sim: Simulation,
) -> None:
    truth = _period_truth(sim)
    received = {u: v for (u, n), v in truth.items() if n == "received"}
    unit = max(received, key=lambda u: (received[u], u))
    num, den = truth.get((unit, "received_online"), 0), received[unit]
    assert 0 < num < den  # a rate worth checking

    async def query(worker: Worker) -> dict[str, Any]:
        prom = _Prometheus(tmp_path, f"127.0.0.1:{worker.metrics_port}")
        try:
            await asyncio.to_thread(prom.wait_ready)
            consumed = "sum(dossier_stream_events_consumed_total{job='dossier-stream'})"
            await asyncio.to_thread(prom.wait_value, consumed, float(len(sim.lines)))
            ind = f"indicator='online_submission', unit='{unit}'"
            exprs = {
                "up": "up{job='dossier-stream'}",
                "flushed": "sum(dossier_stream_clickhouse_flushed_rows_total)",
                "applied": "sum(dossier_stream_event_apply_latency_seconds_count)",
                "stored": "sum(dossier_stream_event_flush_latency_seconds_count)",
                "dead": "sum(dossier_stream_dead_letters_total)",
                "num": f"sum by (unit) (dossier_stream_indicator_numerator{{{ind}}})",
                "den": f"sum by (unit) (dossier_stream_indicator_denominator{{{ind}}})",
                "rate": f"sum by (unit) (dossier_stream_indicator_numerator{{{ind}}}) "
                f"/ sum by (unit) (dossier_stream_indicator_denominator{{{ind}}})",
            }
            values: dict[str, Any] = {
                k: await asyncio.to_thread(prom.value, e) for k, e in exprs.items()
            }
            values["valid"] = worker.processor.stats.valid
            deadline = time.monotonic() + 20  # the rules are evaluated every second
            while True:
                groups = (await asyncio.to_thread(prom.api, "rules"))["groups"]
                rules = [r for g in groups for r in g["rules"]]
                if all(r["health"] != "unknown" for r in rules) or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.5)
            values["rules"] = {r["name"]: r["health"] for r in rules}
            values["down"] = await asyncio.to_thread(
                prom.api, "query", query="ALERTS{alertname='DossierStreamWorkerDown'}"
            )
            return values
        finally:
            prom.stop()

    values = _run_worker(worker_settings, registry, calendar, sim, "metrics-scrape-test", query)
    assert values["up"] == 1
    assert values["flushed"] > 0
    assert values["applied"] == values["stored"] == values["valid"] > 0
    assert values["dead"] == sim.invalid
    assert (values["num"], values["den"]) == (num, den)
    assert values["rate"] == pytest.approx(num / den)
    alerts = [r["alert"] for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]]
    assert sorted(values["rules"]) == sorted(alerts) and set(values["rules"].values()) == {"ok"}
    assert values["down"]["result"] == []


def test_consumer_lag_is_positive_while_behind_and_zero_once_caught_up(
    worker_settings: Callable[..., Settings],
    broker: EmbeddedBroker,
    registry: UnitRegistry,
    sim: Simulation,
) -> None:
    """A worker started behind a backlog shows it per partition, then catches up to 0."""
    settings = worker_settings(
        app_id="metrics-lag-test",
        metrics_host="127.0.0.1",
        batch_size=50,  # small batches: the backlog takes several fetches
    )
    catalog = load_catalog()
    store = open_store(settings)
    calendar = WorkCalendar.default()

    async def scenario() -> tuple[float, float]:
        await create_topics(settings, catalog)
        await produce_lines(settings, catalog, sim.lines, source="lag-test")  # the backlog
        worker = Worker(
            settings, catalog, registry, calendar, store, clock=lambda: NOW, metrics_refresh_s=0.1
        )
        await worker.start()
        try:
            url = f"http://127.0.0.1:{worker.metrics_port}/metrics"
            behind = 0.0
            deadline = time.monotonic() + 60
            while worker.processor.stats.events_in < len(sim.lines):
                assert time.monotonic() < deadline, "the worker did not catch up in 60 s"
                behind = max(behind, _lag(await asyncio.to_thread(_get, url)))
                await asyncio.sleep(0.05)
            # the worker reads back the dead letters it has just published: lag 0 follows
            while (lag := _lag(await asyncio.to_thread(_get, url))) and (
                time.monotonic() < deadline
            ):
                await asyncio.sleep(0.05)
            return behind, lag
        finally:
            await worker.stop()

    try:
        behind, caught_up = asyncio.run(scenario())
    finally:
        store.close()
    assert behind > 0, "no positive lag was seen while the backlog was being read"
    assert caught_up == 0


def _lag(body: bytes) -> float:
    families = {f.name: f for f in text_string_to_metric_families(body.decode())}
    return float(sum(s.value for s in families["dossier_stream_consumer_lag_messages"].samples))
