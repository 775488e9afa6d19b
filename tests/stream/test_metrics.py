"""The metrics object, the live per-unit figures and the /metrics server (no broker)."""

from __future__ import annotations

import asyncio
import math
import socket
import urllib.request
import zlib
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any, cast
from zoneinfo import ZoneInfo

import orjson
import pytest
from faust.types import TP
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from dossier_stream.core.counters import open_past_due
from dossier_stream.core.engine import Engine
from dossier_stream.core.periods import monthly_report
from dossier_stream.core.registry import UnitRegistry
from dossier_stream.core.topics import load_catalog
from dossier_stream.core.workdays import VN_TZ, WorkCalendar
from dossier_stream.sim import testing as t
from dossier_stream.store.sink import BatchingSink, ClickHouseStore
from dossier_stream.stream import metrics as metrics_module
from dossier_stream.stream.metrics import (
    LATENCY_BUCKETS,
    REASONS,
    BatchHistogram,
    LiveFigures,
    Metrics,
    MetricsServer,
    consumer_lag,
    live_period,
    reason_label,
)
from dossier_stream.stream.processor import Handled, source_of

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
    from dossier_stream.core.engine import DeadLetter, Outcome

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


def _crc(raw: bytes) -> int:
    """A stable number of a line's dossier (its id's CRC-32)."""
    return zlib.crc32(orjson.loads(raw)["dossier_id"].encode())


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
    from dossier_stream.sim.simulate import SimConfig, simulate

    period = monthly_report(2024, 10)
    sim = simulate(SimConfig(period=period, seed=11, dossiers=600, feedback=40), registry, calendar)
    now = datetime(2024, 10, 14, 20, 0, tzinfo=VN_TZ)
    catalog = load_catalog()
    engines: dict[str, Engine] = {}
    # the simulated month is a believable one (few dossiers open past due): one dossier in
    # two is left without its completion, so that due times pass while the clock moves
    items = [
        item
        for item in _split(sim.lines)
        if not (b'"dossier.completed"' in item[2] and _crc(item[2]) % 2 == 0)
    ]
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


def test_metrics_are_served_on_an_ephemeral_port(capfd: pytest.CaptureFixture[str]) -> None:
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
        assert "GET /metrics" not in capfd.readouterr().err  # a scrape is not logged
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


# ------------------------------------------------ batch updates equal per-event ones
def _histogram_samples(registry: CollectorRegistry, name: str) -> list[tuple[str, Any, float]]:
    """Every sample of a histogram family but ``_created`` (a wall-clock stamp)."""
    return [
        (s.name, sorted(s.labels.items()), s.value)
        for fam in registry.collect()
        if fam.name == name
        for s in fam.samples
        if not s.name.endswith("_created")
    ]


def test_observe_many_leaves_what_observe_one_by_one_would() -> None:
    values = [
        0.0, -0.0, -3.0, 0.1, 0.25, 0.2500001, 7.0, 86400.0, 604800.0, 604800.5, 1e12,
        1 / 3, 2 / 3, 0.1 + 0.2, float("inf"),
    ]  # fmt: skip
    values += [(k * 7919 % 1000) / 37.0 for k in range(500)]  # sums that round
    for extra in ([], [float("nan")], [float("-inf")]):
        batch, single = CollectorRegistry(), CollectorRegistry()
        many = BatchHistogram("h", "h", buckets=LATENCY_BUCKETS, registry=batch)
        one = Histogram("h", "h", buckets=LATENCY_BUCKETS, registry=single)
        for chunk in (values[:7], [], values[7:] + extra, values[:3]):
            many.observe_many(chunk)
            for value in chunk:
                one.observe(value)
        got, want = _histogram_samples(batch, "h"), _histogram_samples(single, "h")
        assert [(n, labels) for n, labels, _ in got] == [(n, labels) for n, labels, _ in want]
        for (_, _, g), (_, _, w) in zip(got, want, strict=True):
            assert g == w or (math.isnan(g) and math.isnan(w))  # the very same float
        many._created = one._created = 1.0  # the rest of the exposition is the same text
        assert generate_latest(batch) == generate_latest(single)


def _simulated_batches(
    registry: UnitRegistry, calendar: WorkCalendar, *, dossiers: int = 600, size: int = 97
) -> Iterator[tuple[list[Handled], dict[str, Engine]]]:
    """Simulated lines folded batch by batch, lazily: (handled, the engines so far).

    The engines are those of the worker: a batch is folded when it is asked for,
    so look at it (update the live figures) before asking for the next one.
    """
    from dossier_stream.sim.simulate import SimConfig, simulate

    sim = simulate(
        SimConfig(period=monthly_report(2024, 10), seed=5, dossiers=dossiers, feedback=40),
        registry,
        calendar,
    )
    catalog = load_catalog()
    engines: dict[str, Engine] = {}
    # the simulated month is a believable one (few dossiers open past due): one dossier in
    # two is left without its completion, so that due times pass while the clock moves
    items = [
        item
        for item in _split(sim.lines)
        if not (b'"dossier.completed"' in item[2] and _crc(item[2]) % 2 == 0)
    ]
    for start in range(0, len(items), size):
        handled = []
        for source, topic, raw in items[start : start + size]:
            engine = engines.setdefault(source, Engine(registry, calendar, catalog=catalog))
            handled.append(Handled(source, topic, engine.process(raw, topic=topic)))
        yield handled, engines


def test_the_counts_and_latency_histograms_are_those_of_one_observation_per_event(
    registry: UnitRegistry, calendar: WorkCalendar, monkeypatch: pytest.MonkeyPatch
) -> None:
    batches = _simulated_batches(registry, calendar)
    prom, reference = CollectorRegistry(), CollectorRegistry()
    metrics = Metrics(prom)
    apply_ = Histogram(
        "dossier_stream_event_apply_latency_seconds", "", buckets=LATENCY_BUCKETS,
        registry=reference,
    )  # fmt: skip
    flush = Histogram(
        "dossier_stream_event_flush_latency_seconds", "", buckets=LATENCY_BUCKETS,
        registry=reference,
    )  # fmt: skip
    clock = [datetime(2024, 10, 10, tzinfo=VN_TZ).timestamp() + 0.123]
    monkeypatch.setattr(metrics_module.time, "time", lambda: clock[0])
    unflushed: list[float] = []
    consumed: dict[tuple[str, str], int] = {}
    for n, (handled, _) in enumerate(batches):
        clock[0] += 3600.7
        metrics.observe(handled)
        for item in handled:
            out = item.outcome
            kind = "invalid" if out.event is None else out.event.event_type
            consumed[(item.topic, kind)] = consumed.get((item.topic, kind), 0) + 1
            if out.kind == "applied" and out.event is not None and out.dead_letter is None:
                at = out.event.occurred_at.timestamp()
                apply_.observe(max(clock[0] - at, 0.0))
                unflushed.append(at)
        if n % 3 == 2:
            clock[0] += 0.9
            metrics.observe_flush(len(handled), 0.01, None)
            for at in unflushed:
                flush.observe(max(clock[0] - at, 0.0))
            unflushed = []
    assert unflushed  # some left unflushed: not observed yet
    for name in (
        "dossier_stream_event_apply_latency_seconds",
        "dossier_stream_event_flush_latency_seconds",
    ):
        got, want = _histogram_samples(prom, name), _histogram_samples(reference, name)
        assert got == want  # exact: the same buckets and the same float sums
        assert got[-2][2] > 1000  # _count: the batches were not empty
    counted = {
        (topic, kind): prom.get_sample_value(
            "dossier_stream_events_consumed_total", {"topic": topic, "event_type": kind}
        )
        for topic, kind in consumed
    }
    assert counted == consumed and len(consumed) > 8


# --------------------------------------------------- live figures against brute force
def _brute_force(
    engines: dict[str, Engine], registry: UnitRegistry, now: datetime
) -> tuple[dict[Any, tuple[int, int]], dict[Any, int], dict[Any, int]]:
    """The per-unit figures computed from scratch from the engines (the definitions)."""
    from dossier_stream.stream.metrics import LIVE_INDICATORS

    period = live_period(now)
    today = now.astimezone(VN_TZ).date()
    named: dict[str, dict[str, int]] = {}
    for engine in engines.values():
        for (unit, day, name), value in engine.counters.items():
            if period.start <= day <= today:
                named.setdefault(unit, {})[name] = named.get(unit, {}).get(name, 0) + value
    indicators = {
        (ind.key, unit, registry.get(unit).level): (
            totals.get(ind.numerator, 0),
            totals.get(ind.denominator, 0),
        )
        for unit, totals in named.items()
        if unit in registry
        for ind in LIVE_INDICATORS
    }
    open_: dict[Any, int] = {}
    due: dict[Any, int] = {}
    for engine in engines.values():
        for state in engine.dossiers.values():
            rec = state.received
            if rec is None or rec.unit_code not in registry or rec.received_at > now:
                continue
            if state.completion is not None and state.completion.completed_at <= now:
                continue
            if state.withdrawn_at is not None and state.withdrawn_at <= now:
                continue
            key = (rec.unit_code, registry.get(rec.unit_code).level)
            open_[key] = open_.get(key, 0) + 1
            if state.is_open_past_due(now):
                due[key] = due.get(key, 0) + 1
    return indicators, open_, due


def _assert_truth(live: LiveFigures, engines: dict[str, Engine], registry: UnitRegistry) -> Any:
    snap = live.snapshot(engines)
    indicators, open_, due = _brute_force(engines, registry, live.clock())
    assert {k: v for k, v in snap.indicators.items() if v != (0, 0)} == {
        k: v for k, v in indicators.items() if v != (0, 0)
    }
    assert snap.indicators.keys() >= indicators.keys()
    assert (snap.open, snap.past_due) == (open_, due)
    return snap


def test_live_figures_follow_the_clock_and_the_events_as_computed_from_scratch(
    registry: UnitRegistry, calendar: WorkCalendar
) -> None:
    batches = _simulated_batches(registry, calendar, size=60)
    # within one local day (the window stays), then the next days: due times pass between
    # updates and snapshots, and many events are still ahead of the clock early on
    clock = [datetime(2024, 10, 1, 7, 30, tzinfo=VN_TZ)]
    live = LiveFigures(registry, clock=lambda: clock[0])
    flips, engines = 0, {}
    for n, (handled, engines) in enumerate(batches):
        live.update(handled, engines)
        if n % 4 == 3:
            before = _assert_truth(live, engines, registry)
            clock[0] += timedelta(hours=2, minutes=17, microseconds=1)
            after = _assert_truth(live, engines, registry)  # nothing new, only time passed
            if after.window == before.window:  # due times passed, on the same day
                flips += sum(after.past_due.values()) > sum(before.past_due.values())
    assert flips >= 3
    # the clock goes back: everything is summed again
    clock[0] -= timedelta(minutes=5)
    _assert_truth(live, engines, registry)


def test_live_figures_drop_revoked_sources_and_reload_reassigned_ones(
    registry: UnitRegistry, calendar: WorkCalendar
) -> None:
    batches = _simulated_batches(registry, calendar, size=250)
    clock = [datetime(2024, 10, 8, 9, 0, tzinfo=VN_TZ)]
    live = LiveFigures(registry, clock=lambda: clock[0])
    revoked: dict[str, Engine] = {}
    for n, (handled, engines) in enumerate(batches):
        # dossier:1 is revoked after batch 4 (its share goes), then back with the same
        # engine, as if reassigned (loaded again)
        live.update(handled, engines if n != 5 else revoked)
        if n == 4:
            _assert_truth(live, engines, registry)
            revoked = {s: e for s, e in engines.items() if s != "dossier:1"}
            _assert_truth(live, revoked, registry)
        clock[0] += timedelta(minutes=37)
    assert n > 6
    assert _assert_truth(live, engines, registry).past_due


def test_an_event_ahead_of_the_clock_counts_once_the_clock_reaches_it(
    registry: UnitRegistry, calendar: WorkCalendar
) -> None:
    clock = [datetime(2024, 10, 3, 8, 0, tzinfo=VN_TZ)]
    engine = Engine(registry, calendar)
    engines = {"dossier:0": engine}
    live = LiveFigures(registry, clock=lambda: clock[0])
    raws = [
        t.encode(t.received("D1", UNIT, at="2024-10-03T08:15:00+07:00")),
        t.encode(t.received("D2", UNIT, at="2024-10-03T07:15:00+07:00")),
        t.encode(t.completed("D2", UNIT, at="2024-10-03T09:00:00+07:00")),
    ]
    live.update([Handled("dossier:0", SUBMISSIONS, engine.process(r)) for r in raws], engines)
    key = (UNIT, "department")
    assert live.snapshot(engines).open == {key: 1}  # D2; D1 is received at 08:15
    clock[0] = datetime(2024, 10, 3, 8, 30, tzinfo=VN_TZ)
    assert live.snapshot(engines).open == {key: 2}
    clock[0] = datetime(2024, 10, 3, 9, 0, tzinfo=VN_TZ)
    assert live.snapshot(engines).open == {key: 1}  # D2 completed at 09:00
    _assert_truth(live, engines, registry)


def test_supplements_pause_the_due_time_and_two_requests_make_a_dossier_past_due(
    registry: UnitRegistry, calendar: WorkCalendar
) -> None:
    def day(hhmm: str) -> str:
        return f"2024-10-02T{hhmm}:00+07:00"

    clock = [datetime(2024, 10, 2, 8, 0, tzinfo=VN_TZ)]
    engine = Engine(registry, calendar)
    engines = {"dossier:0": engine}
    live = LiveFigures(registry, clock=lambda: clock[0])
    events = [  # every dossier is due at 10:00 today
        t.received("P1", UNIT, at=day("07:00"), due_at=day("10:00")),  # a request ahead
        t.supplement_requested("P1", UNIT, at=day("09:00")),
        t.received("P2", UNIT, at=day("07:00"), due_at=day("10:00")),  # paused 1 h, resumed
        t.supplement_requested("P2", UNIT, at=day("07:10")),
        t.supplement_received("P2", UNIT, at=day("08:10")),
        t.received("P3", UNIT, at=day("07:00"), due_at=day("10:00")),  # asked twice, resumed
        t.supplement_requested("P3", UNIT, at=day("07:10")),
        t.supplement_received("P3", UNIT, at=day("07:20")),
        t.supplement_requested("P3", UNIT, at=day("07:30")),
        t.supplement_received("P3", UNIT, at=day("07:40")),
        t.received("P4", UNIT, at=day("07:00"), due_at=day("10:00")),  # paused since 07:30
        t.supplement_requested("P4", UNIT, at=day("07:30")),
        t.received("P5", UNIT, at=day("07:00"), due_at=day("10:00")),  # nothing else
    ]
    handled = [Handled("dossier:0", SUBMISSIONS, engine.process(t.encode(e))) for e in events]
    live.update(handled, engines)
    key = (UNIT, "department")
    # past due: P3 from the start, P5 after 10:00, P2 after 11:00; never P1 nor P4
    expected = {"08:00": 1, "10:00": 1, "10:01": 2, "11:00": 2, "11:01": 3, "23:59": 3}
    for hhmm, past_due in expected.items():
        clock[0] = datetime.fromisoformat(day(hhmm))
        snap = _assert_truth(live, engines, registry)
        assert snap.open == {key: 5} and snap.past_due.get(key, 0) == past_due, hhmm


def test_local_microseconds_are_exact() -> None:
    from dossier_stream.stream.livefigures import epoch_micros

    for at in (
        datetime(2024, 10, 3, 8, 15, 7, 123456, tzinfo=VN_TZ),
        datetime(1976, 1, 1, tzinfo=VN_TZ) + timedelta(days=366, microseconds=-1),
        datetime(1970, 1, 1, tzinfo=VN_TZ),  # +08:00 then: the general path
        datetime(2030, 6, 1, 23, 59, 59, 999999, tzinfo=UTC),
        datetime(2024, 3, 31, 2, 30, tzinfo=ZoneInfo("Europe/Paris")),
    ):
        epoch = datetime(1970, 1, 1, tzinfo=UTC)
        assert epoch_micros(at) == (at - epoch) // timedelta(microseconds=1)


def test_set_live_writes_changes_and_sets_series_that_come_back(
    registry: UnitRegistry, calendar: WorkCalendar
) -> None:
    from dossier_stream.stream.metrics import LiveSnapshot

    prom = CollectorRegistry()
    metrics = Metrics(prom)
    period = monthly_report(2024, 10)
    ind = ("online_submission", UNIT, "department")
    labels = {"indicator": ind[0], "unit": UNIT, "level": "department"}
    unit = {"unit": UNIT, "level": "department"}

    def values() -> tuple[float | None, ...]:
        return (
            prom.get_sample_value("dossier_stream_indicator_numerator", labels),
            prom.get_sample_value("dossier_stream_indicator_denominator", labels),
            prom.get_sample_value("dossier_stream_open_dossiers", unit),
            prom.get_sample_value("dossier_stream_open_past_due_dossiers", unit),
        )

    for snap, expected in (
        (LiveSnapshot(period, period, {ind: (1, 2)}, {(UNIT, "department"): 3}), (1, 2, 3, 0)),
        (LiveSnapshot(period, period, {ind: (1, 2)}, {(UNIT, "department"): 3}), (1, 2, 3, 0)),
        (LiveSnapshot(period, period), (0, 0, 0, 0)),
        (LiveSnapshot(period, period, {ind: (4, 5)}, {}, {(UNIT, "department"): 6}), (4, 5, 0, 6)),
    ):
        metrics.set_live(snap)
        assert values() == expected


class _AIOKafkaConsumer:
    """What ``aiokafka.AIOKafkaConsumer`` does for the lag: assignment, highwater, position."""

    def __init__(self, offsets: dict[Any, tuple[int | None, int]]) -> None:
        self.offsets = offsets
        self.revoked: set[Any] = set()

    def assignment(self) -> set[Any]:
        return set(self.offsets)

    def highwater(self, tp: Any) -> int | None:
        assert tp not in self.revoked, "Partition is not assigned"
        return self.offsets[tp][0]

    async def position(self, tp: Any) -> int:
        from aiokafka.errors import IllegalStateError

        if tp.partition == 7:
            raise IllegalStateError(f"Partition {tp} is not assigned")
        return self.offsets[tp][1]


def test_lag_reads_a_plain_aiokafka_consumer_too() -> None:
    from aiokafka import TopicPartition

    tps = [TopicPartition(SUBMISSIONS, p) for p in range(4)] + [TopicPartition(PROGRESS, 7)]
    consumer = _AIOKafkaConsumer({
        tps[0]: (120, 100), tps[1]: (None, 0), tps[2]: (5, 5), tps[3]: (9, 1), tps[4]: (3, 0),
    })  # fmt: skip
    consumer.revoked.add(tps[3])
    assert asyncio.run(consumer_lag(consumer)) == {(SUBMISSIONS, 0): 20, (SUBMISSIONS, 2): 0}
