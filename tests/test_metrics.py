"""The metrics object, the live per-unit figures and the /metrics server (no broker)."""

from __future__ import annotations

import asyncio
import socket
import urllib.request
from datetime import UTC, date, datetime
from typing import Any, cast

import orjson
import pytest
from faust.types import TP
from prometheus_client import CollectorRegistry

from dossier_stream import testing as t
from dossier_stream.counters import open_past_due
from dossier_stream.engine import Engine
from dossier_stream.metrics import (
    REASONS,
    LiveFigures,
    Metrics,
    MetricsServer,
    consumer_lag,
    live_period,
    reason_label,
)
from dossier_stream.periods import monthly_report
from dossier_stream.processor import Handled, source_of
from dossier_stream.registry import UnitRegistry
from dossier_stream.sink import BatchingSink, ClickHouseStore
from dossier_stream.topics import load_catalog
from dossier_stream.workdays import VN_TZ, WorkCalendar

UNIT = "HP-SO-TUPHAP"
SUBMISSIONS = "dossier.submissions.v1"
PROGRESS = "dossier.progress.v1"


def _fold(engine: Engine, source: str, topic: str, raws: list[bytes]) -> list[Handled]:
    return [Handled(source, topic, engine.process(raw, topic=topic)) for raw in raws]


@pytest.fixture
def engine(registry: UnitRegistry, calendar: WorkCalendar) -> Engine:
    return Engine(registry, calendar, catalog=load_catalog())


def test_consumed_duplicates_and_dead_letters_are_counted(engine: Engine) -> None:
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    rec = t.encode(t.received("D1", UNIT))
    handled = _fold(
        engine,
        "dossier:0",
        SUBMISSIONS,
        [rec, rec, b"not json", t.encode(t.received("D2", "HP-NOWHERE"))],
    )
    handled += _fold(engine, "dossier:0", PROGRESS, [t.encode(t.received("D3", UNIT))])
    metrics.observe(handled)

    def value(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, labels)

    consumed = "dossier_stream_events_consumed_total"
    assert value(consumed, topic=SUBMISSIONS, event_type="dossier.received") == 2
    assert value(consumed, topic=SUBMISSIONS, event_type="invalid") == 2
    assert value(consumed, topic=PROGRESS, event_type="invalid") == 1
    assert value("dossier_stream_duplicates_ignored_total", topic=SUBMISSIONS) == 1
    assert value("dossier_stream_dead_letters_total", reason="not_json") == 1
    assert value("dossier_stream_dead_letters_total", reason="unknown_unit") == 1
    assert value("dossier_stream_dead_letters_total", reason="wrong_topic") == 1
    # every known reason is exported from the start, at 0
    assert value("dossier_stream_dead_letters_total", reason="too_large") == 0
    assert value("dossier_stream_event_apply_latency_seconds_count") == 1


def test_the_reason_label_is_a_bounded_code(registry: UnitRegistry) -> None:
    assert reason_label("missing_field:unit_code") == "missing_field"
    assert reason_label("unroutable") == "unroutable"
    assert reason_label("anything a producer put in a header") == "other"
    prom = CollectorRegistry()
    metrics = Metrics(prom)
    proc_like = Handled("", "dossier.deadletter.v1", _dead_outcome("x" * 200))
    metrics.observe([proc_like])
    reasons = {
        s.labels["reason"]
        for fam in prom.collect()
        if fam.name == "dossier_stream_dead_letters"
        for s in fam.samples
    }
    assert reasons == {*REASONS, "other"}
    assert prom.get_sample_value("dossier_stream_dead_letters_total", {"reason": "other"}) == 1


def _dead_outcome(code: str) -> Any:
    from dossier_stream.engine import DeadLetter, Outcome

    return Outcome("deadletter", dead_letter=DeadLetter(code, code, "", b""))


def test_latencies_are_event_time_to_applied_and_to_flushed(engine: Engine) -> None:
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    at = datetime(2024, 10, 3, 8, 15, tzinfo=VN_TZ)
    raw = t.encode(t.received("D1", UNIT, at=at.isoformat()))
    metrics.observe(_fold(engine, "dossier:0", SUBMISSIONS, [raw]), now=at.timestamp() + 3)
    apply_ = "dossier_stream_event_apply_latency_seconds_bucket"
    assert registry.get_sample_value(apply_, {"le": "2.5"}) == 0
    assert registry.get_sample_value(apply_, {"le": "5.0"}) == 1
    flush_count = "dossier_stream_event_flush_latency_seconds_count"
    assert registry.get_sample_value(flush_count) == 0  # not stored yet

    metrics.observe_flush(0, 0.2, ConnectionError("ClickHouse is down"))
    assert registry.get_sample_value("dossier_stream_clickhouse_flush_failures_total") == 1
    assert registry.get_sample_value(flush_count) == 0  # still not stored
    metrics.observe_flush(7, 0.02, None)
    assert registry.get_sample_value(flush_count) == 1
    assert registry.get_sample_value("dossier_stream_clickhouse_flushed_rows_total") == 7
    duration = "dossier_stream_clickhouse_flush_duration_seconds_bucket"
    assert registry.get_sample_value(duration, {"le": "0.025"}) == 1
    assert registry.get_sample_value(duration, {"le": "+Inf"}) == 2


class _FlakyStore:
    """Stands in for ClickHouseStore's writes: fails the first counter write."""

    def __init__(self) -> None:
        self.fail = True
        self.rows: list[Any] = []

    def write_counters(self, rows: Any) -> int:
        if self.fail:
            self.fail = False
            raise ConnectionError("ClickHouse is down")
        data = list(rows)
        self.rows += data
        return len(data)

    def write_rows(self, table: str, columns: Any, rows: Any) -> int:
        self.rows += rows
        return len(rows)

    def write_dead_letters(self, rows: Any) -> int:
        self.rows += rows
        return len(rows)


def test_the_sink_reports_each_flush_with_rows_to_its_hook() -> None:
    calls: list[tuple[int, float, BaseException | None]] = []
    store = _FlakyStore()
    sink = BatchingSink(
        cast(ClickHouseStore, store),
        max_rows=100,
        interval_s=1,
        on_flush=lambda rows, secs, err: calls.append((rows, secs, err)),
    )
    assert sink.flush() == 0 and calls == []  # nothing buffered: no flush to report
    sink.add_counter("dossier:0", (UNIT, date(2024, 10, 3), "received"), 5)
    sink.add_fact("dossier_facts", ("dossier_id",), "D1", ("D1",))
    with pytest.raises(ConnectionError):
        sink.flush()
    assert len(calls) == 1 and isinstance(calls[0][2], ConnectionError) and calls[0][0] == 0
    assert sink.flush() == 2  # the buffer was kept for the retry
    assert calls[1][0] == 2 and calls[1][2] is None and calls[1][1] >= 0


class _Consumer:
    """The part of Faust's consumer that the lag reads."""

    def __init__(self, offsets: dict[TP, tuple[int | None, int | None]]) -> None:
        self.offsets = offsets

    def assignment(self) -> set[TP]:
        return set(self.offsets)

    def highwater(self, tp: TP) -> int | None:
        return self.offsets[tp][0]

    async def position(self, tp: TP) -> int | None:
        if tp.partition == 9:
            raise AssertionError("Partition is not assigned")
        return self.offsets[tp][1]


def test_lag_is_highwater_minus_position_and_revoked_partitions_disappear() -> None:
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    consumer = _Consumer({
        TP(SUBMISSIONS, 0): (1200, 1000),
        TP(SUBMISSIONS, 1): (50, 50),
        TP(SUBMISSIONS, 2): (None, 0),  # not fetched yet: unknown
        TP(SUBMISSIONS, 9): (10, 0),  # revoked while measuring
    })  # fmt: skip
    metrics.set_lag(asyncio.run(consumer_lag(consumer)))
    lag = "dossier_stream_consumer_lag_messages"
    assert registry.get_sample_value(lag, {"topic": SUBMISSIONS, "partition": "0"}) == 200
    assert registry.get_sample_value(lag, {"topic": SUBMISSIONS, "partition": "1"}) == 0
    assert registry.get_sample_value(lag, {"topic": SUBMISSIONS, "partition": "2"}) is None
    del consumer.offsets[TP(SUBMISSIONS, 0)]
    metrics.set_lag(asyncio.run(consumer_lag(consumer)))
    assert registry.get_sample_value(lag, {"topic": SUBMISSIONS, "partition": "0"}) is None


def test_the_live_period_is_the_monthly_report_period_of_the_local_day() -> None:
    assert live_period(datetime(2024, 10, 14, 23, 0, tzinfo=VN_TZ)) == monthly_report(2024, 10)
    # 17:30 UTC on the 14th is already the 15th in Hải Phòng
    assert live_period(datetime(2024, 10, 14, 17, 30, tzinfo=UTC)) == monthly_report(2024, 11)
    assert live_period(datetime(2024, 12, 20, tzinfo=VN_TZ)) == monthly_report(2025, 1)


def _split(lines: list[bytes]) -> list[tuple[str, str, bytes]]:
    """(source, topic, raw) for each line, dossiers spread over two partitions."""
    catalog = load_catalog()
    out = []
    for raw in lines:
        try:
            obj = orjson.loads(raw)
            topic = catalog.topic_for(obj["event_type"])
        except (orjson.JSONDecodeError, KeyError, TypeError):
            continue
        key = obj.get("dossier_id") or obj.get("feedback_id") or obj.get("unit_code") or ""
        partition = sum(key.encode()) % 2 if topic.startswith("dossier.") else 0
        out.append((source_of(topic, partition), topic, raw))
    return out


def test_live_figures_equal_the_truth_whether_loaded_or_updated(
    registry: UnitRegistry, calendar: WorkCalendar
) -> None:
    from dossier_stream.simulate import SimConfig, simulate

    period = monthly_report(2024, 10)
    sim = simulate(SimConfig(period=period, seed=11, dossiers=600, feedback=40), registry, calendar)
    now = datetime(2024, 10, 14, 20, 0, tzinfo=VN_TZ)
    catalog = load_catalog()
    engines: dict[str, Engine] = {}
    items = _split(sim.lines)
    half = len(items) // 2
    live = LiveFigures(registry, clock=lambda: now)
    for n, (source, topic, raw) in enumerate(items):
        engine = engines.setdefault(source, Engine(registry, calendar, catalog=catalog))
        handled = [Handled(source, topic, engine.process(raw, topic=topic))]
        if n >= half:
            live.update(handled, engines)
        elif n == half - 1:
            live.snapshot(engines)  # loads the sources seen so far; the rest is incremental
    incremental = live.snapshot(engines)
    loaded = LiveFigures(registry, clock=lambda: now).snapshot(engines)
    assert incremental == loaded

    truth: dict[tuple[str, str], int] = {}
    for (unit, day, name), value in sim.truth.items():
        if day in period:
            truth[(unit, name)] = truth.get((unit, name), 0) + value
    checked = 0
    for (indicator, unit, level), (num, den) in incremental.indicators.items():
        assert level == registry.get(unit).level
        if indicator == "online_submission":
            assert (num, den) == (
                truth.get((unit, "received_online"), 0),
                truth.get((unit, "received"), 0),
            )
            checked += 1
    assert checked > 10
    states = [s for e in engines.values() for s in e.dossiers.values()]
    expected = open_past_due(states, now)
    assert {u: n for (u, _), n in incremental.past_due.items()} == expected
    assert sum(incremental.open.values()) >= sum(expected.values()) > 0


def test_unit_labels_come_from_the_registry_and_stay_at_zero(
    registry: UnitRegistry, calendar: WorkCalendar
) -> None:
    now = datetime(2024, 10, 14, 20, 0, tzinfo=VN_TZ)
    engine = Engine(registry, calendar)
    engine.process(t.encode(t.received("D1", UNIT, at="2024-10-03T08:15:00+07:00")))
    engine.counters[("HP-NOT-REGISTERED", date(2024, 10, 3), "received")] = 9
    prom = CollectorRegistry()
    metrics = Metrics(prom)
    live = LiveFigures(registry, clock=lambda: now)
    metrics.set_live(live.snapshot({"dossier:0": engine}))
    units = {
        s.labels["unit"]
        for fam in prom.collect()
        for s in fam.samples
        if "unit" in s.labels and s.value
    }
    assert units == {UNIT}
    labels = {"indicator": "online_submission", "unit": UNIT, "level": "department"}
    assert prom.get_sample_value("dossier_stream_indicator_numerator", labels) == 1
    assert prom.get_sample_value("dossier_stream_indicator_denominator", labels) == 1
    open_labels = {"unit": UNIT, "level": "department"}
    assert prom.get_sample_value("dossier_stream_open_dossiers", open_labels) == 1
    assert prom.get_sample_value("dossier_stream_open_past_due_dossiers", open_labels) == 1
    assert (
        prom.get_sample_value("dossier_stream_indicator_period_start_timestamp_seconds")
        == datetime(2024, 9, 15, tzinfo=VN_TZ).timestamp()
    )

    metrics.set_live(live.snapshot({}))  # the partition was revoked
    assert prom.get_sample_value("dossier_stream_indicator_numerator", labels) == 0
    assert prom.get_sample_value("dossier_stream_open_dossiers", open_labels) == 0


def test_metrics_are_served_on_an_ephemeral_port() -> None:
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    Metrics(CollectorRegistry())  # a second object never clashes: no global registry
    metrics.flushed_rows.inc(3)
    server = MetricsServer(registry, host="127.0.0.1", port=0)
    port = server.start()
    try:
        assert server.port == port > 0
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
            body = resp.read().decode()
        assert "dossier_stream_clickhouse_flushed_rows_total 3.0" in body
        busy = MetricsServer(registry, host="127.0.0.1", port=port)
        with pytest.raises(OSError, match="DOSSIER_METRICS_PORT"):
            busy.start()
        # the worker's default port may fall back to a free one (a demo beside a worker)
        beside = MetricsServer(registry, host="127.0.0.1", port=port, fallback=True)
        try:
            assert beside.start() not in (port, 0)
        finally:
            beside.stop()
    finally:
        server.stop()
    assert server.port is None
    with pytest.raises(ConnectionRefusedError):  # nothing listens any more
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


def test_the_window_is_the_period_to_date_and_rolls_with_the_day(
    registry: UnitRegistry, calendar: WorkCalendar
) -> None:
    clock = [datetime(2024, 10, 5, 9, 0, tzinfo=VN_TZ)]
    engine = Engine(registry, calendar)
    live = LiveFigures(registry, clock=lambda: clock[0])
    engines = {"dossier:0": engine}
    live.snapshot(engines)
    raws = [
        t.encode(t.received("D1", UNIT, at="2024-10-03T08:15:00+07:00")),
        t.encode(t.received("D2", UNIT, at="2024-10-10T08:15:00+07:00", channel="direct")),
    ]
    live.update([Handled("dossier:0", SUBMISSIONS, engine.process(r)) for r in raws], engines)
    key = ("online_submission", UNIT, "department")
    assert live.snapshot(engines).indicators[key] == (1, 1)  # 10/10 is not "to date" yet
    clock[0] = datetime(2024, 10, 10, 9, 0, tzinfo=VN_TZ)
    assert live.snapshot(engines).indicators[key] == (1, 2)
    clock[0] = datetime(2024, 10, 15, 9, 0, tzinfo=VN_TZ)  # the November period starts
    snap = live.snapshot(engines)
    assert snap.period == monthly_report(2024, 11) and snap.indicators == {}
    assert snap.open == {(UNIT, "department"): 2}
