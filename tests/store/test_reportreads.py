"""The report's reads aggregated in ClickHouse give the figures of the per-day path.

``report_from_store`` sums the counters per unit in SQL and counts the dossiers
open past due in SQL (:mod:`dossier_stream.store.reportreads`). Each test folds
events through the worker's ``Processor`` into chdb and compares, on the same
store, that report with the one built as before (``build_report`` on the
per-(unit, day, counter) rows and ``open_past_due`` on the decoded open states)
and with the in-memory replay's: over a period that crosses the 2025
reorganisation (units ending 30/6 and starting 1/7), over a year of tiled
months and the months and weeks inside it, and at instants chosen to fall on
every edge of ``is_open_past_due`` (paused, pauses closed, two requests, due
time equal to the instant, completion or withdrawal after it).
"""

from __future__ import annotations

import zlib
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from bench.scale import shift_line
from bench.yearstore import per_day_report

from dossier_stream.core.counters import open_past_due
from dossier_stream.core.engine import Engine
from dossier_stream.core.indicators import sum_counters
from dossier_stream.core.periods import Period, monthly_report, week
from dossier_stream.core.registry import UnitRegistry
from dossier_stream.core.topics import load_catalog
from dossier_stream.core.workdays import VN_TZ, WorkCalendar
from dossier_stream.sim import testing as t
from dossier_stream.sim.simulate import SimConfig, simulate
from dossier_stream.store.codec import loads_dossier
from dossier_stream.store.reportreads import counter_totals, open_past_due_counts
from dossier_stream.store.sink import BatchingSink, ClickHouseStore, connect
from dossier_stream.stream.processor import Message, Processor
from dossier_stream.stream.runner import previous_from_store, report_from_store

_PARTITIONS = 3


def _fold(lines: list[bytes], path: Path, registry: UnitRegistry, calendar: WorkCalendar) -> Any:
    """A chdb store holding ``lines`` folded by the worker's processor (3 dossier partitions)."""
    catalog = load_catalog()
    store = ClickHouseStore(connect(f"chdb://{path}"))
    store.migrate()
    sink = BatchingSink(store, max_rows=20_000, interval_s=3600.0)
    processor = Processor(registry, calendar, catalog, sink, store)
    offsets: dict[tuple[str, int], int] = {}
    messages: list[Message] = []
    for raw in lines:
        try:
            obj = orjson.loads(raw)
            topic = catalog.topic_for(obj["event_type"])
        except (orjson.JSONDecodeError, KeyError, TypeError):
            continue
        key = obj.get("dossier_id") if topic.startswith("dossier.") else obj.get("unit_code")
        p = zlib.crc32(str(key).encode()) % _PARTITIONS if topic.startswith("dossier.") else 0
        offset = offsets.get((topic, p), 0)
        offsets[(topic, p)] = offset + 1
        messages.append(Message(topic, p, offset, raw))
    for start in range(0, len(messages), 2_000):
        processor.handle(messages[start : start + 2_000])
        sink.flush()
    processor.close()
    return store


def _replay(lines: list[bytes], registry: UnitRegistry, calendar: WorkCalendar) -> Engine:
    engine = Engine(registry, calendar)
    for raw in lines:
        engine.process(raw)
    return engine


def _json(report: Any) -> Any:
    return orjson.loads(orjson.dumps(report, default=str))


def _assert_same(store: ClickHouseStore, engine: Engine, registry: UnitRegistry, p: Period) -> Any:
    new = _json(report_from_store(store, registry, p))
    assert new == _json(per_day_report(store, registry, p)), p
    assert new == _json(engine.report(p)), p
    assert counter_totals(store, p.start, p.end) == sum_counters(store.counters(p.start, p.end), p)
    return new


def test_period_across_the_reorganisation(
    tmp_path: Path, registry: UnitRegistry, calendar: WorkCalendar
) -> None:
    lines = simulate(
        SimConfig(monthly_report(2025, 7), seed=5, dossiers=1_500, feedback=30), registry, calendar
    ).lines
    engine = _replay(lines, registry, calendar)
    store = _fold(lines, tmp_path / "ch", registry, calendar)
    try:
        period = monthly_report(2025, 7)
        assert period.start < date(2025, 7, 1) <= period.end
        report = _assert_same(store, engine, registry, period)
        units = report["received"]["units"]
        ended = {u.code for u in registry if u.valid_to == date(2025, 6, 30)}
        started = {u.code for u in registry if u.valid_from == date(2025, 7, 1)}
        assert any(units.get(code) for code in ended)  # both eras hold dossiers in the period
        assert any(units.get(code) for code in started)
        assert "district" in report["units_in_period"]
        for part in (Period(date(2025, 6, 25), date(2025, 7, 5)), week(date(2025, 7, 1))):
            _assert_same(store, engine, registry, part)
    finally:
        store.close()


def _year_lines(registry: UnitRegistry, calendar: WorkCalendar) -> list[bytes]:
    """Twelve tiles of a small month, oldest first (``bench.scale``: 35 days a tile)."""
    base = simulate(
        SimConfig(monthly_report(2024, 10), seed=3, dossiers=500, feedback=20), registry, calendar
    ).lines
    return [shift_line(raw, k) for k in reversed(range(12)) for raw in base]


def test_a_year_and_the_months_in_it(
    tmp_path: Path, registry: UnitRegistry, calendar: WorkCalendar
) -> None:
    lines = _year_lines(registry, calendar)
    store = _fold(lines, tmp_path / "ch", registry, calendar)
    try:
        engine = _replay(lines, registry, calendar)
        last = max(day for (_, day, _) in engine.counters)
        year = Period(last - timedelta(days=364), last)
        report = _assert_same(store, engine, registry, year)
        assert report["received"]["city"] > 5_000
        assert report["open_past_due"]
        for month in range(1, 11):
            _assert_same(store, engine, registry, monthly_report(2024, month))
        _assert_same(store, engine, registry, week(date(2024, 3, 6)))
        # the month before, for the comparisons: the same counters, no dossier read
        before = monthly_report(2024, 9)
        whole = _json(report_from_store(store, registry, before))
        assert whole["open_past_due"]
        store.client.command("RENAME TABLE dossier_facts TO dossier_facts_away")
        previous = _json(previous_from_store(store, registry, before))
        assert "open_past_due" not in previous
        assert previous == {k: v for k, v in whole.items() if k != "open_past_due"}
    finally:
        store.close()


_UNIT = "HP-SO-TUPHAP"
_END = "2024-10-14T23:59:59.999999+07:00"
"""``monthly_report(2024, 10).ends_at``."""


def _edge_events() -> list[dict[str, Any]]:
    """Dossiers on every edge of ``is_open_past_due`` at the end of October 2024's report."""
    u = _UNIT

    def rec(d: str, due: str, at: str = "2024-10-01T08:00:00+07:00") -> dict[str, Any]:
        return t.received(d, u, at=at, due_at=due, working_days=None)

    def req(d: str, at: str) -> dict[str, Any]:
        return t.supplement_requested(d, u, at=at)

    def got(d: str, at: str) -> dict[str, Any]:
        return t.supplement_received(d, u, at=at)

    return [
        rec("past-due", "2024-10-05T17:00:00+07:00"),
        rec("not-yet-due", "2024-10-20T17:00:00+07:00"),
        rec("due-at-the-end", _END),
        rec("due-a-microsecond-before", "2024-10-14T23:59:59.999998+07:00"),
        rec("received-after", "2024-10-01T17:00:00+07:00", at="2024-10-15T08:00:00+07:00"),
        rec("received-at-the-end", "2024-10-01T17:00:00+07:00", at=_END),
        # one pause of 4 days, closed: due 10/10 08:00 + 4 days < the end
        rec("paused-4d", "2024-10-10T08:00:00+07:00"),
        req("paused-4d", "2024-10-08T08:00:00+07:00"),
        got("paused-4d", "2024-10-12T08:00:00+07:00"),
        # one pause of 5 days, closed: due + 5 days after the end
        rec("paused-5d", "2024-10-10T08:00:00+07:00"),
        req("paused-5d", "2024-10-08T08:00:00+07:00"),
        got("paused-5d", "2024-10-13T08:00:00+07:00"),
        # waiting for a supplement at the end
        rec("waiting", "2024-10-03T08:00:00+07:00"),
        req("waiting", "2024-10-02T08:00:00+07:00"),
        rec("answered-after", "2024-10-03T08:00:00+07:00"),
        req("answered-after", "2024-10-02T08:00:00+07:00"),
        got("answered-after", "2024-10-16T08:00:00+07:00"),
        rec("asked-at-the-end", "2024-10-03T08:00:00+07:00"),
        req("asked-at-the-end", _END),
        rec("asked-after", "2024-10-03T08:00:00+07:00"),
        req("asked-after", "2024-10-15T08:00:00+07:00"),
        # two requests after the end, not yet due: not counted (a closed period's figure
        # does not change when the dossier is asked again later)
        rec("asked-twice-after", "2024-10-30T08:00:00+07:00"),
        req("asked-twice-after", "2024-10-15T08:00:00+07:00"),
        got("asked-twice-after", "2024-10-16T08:00:00+07:00"),
        req("asked-twice-after", "2024-10-17T08:00:00+07:00"),
        # two requests: overdue by the rule, unless waiting
        rec("asked-twice", "2024-10-30T08:00:00+07:00"),
        req("asked-twice", "2024-10-02T08:00:00+07:00"),
        got("asked-twice", "2024-10-03T08:00:00+07:00"),
        req("asked-twice", "2024-10-04T08:00:00+07:00"),
        got("asked-twice", "2024-10-05T08:00:00+07:00"),
        rec("asked-twice-waiting", "2024-10-30T08:00:00+07:00"),
        req("asked-twice-waiting", "2024-10-02T08:00:00+07:00"),
        got("asked-twice-waiting", "2024-10-03T08:00:00+07:00"),
        req("asked-twice-waiting", "2024-10-04T08:00:00+07:00"),
        # two requests in one pause (the second while waiting), answered
        rec("asked-while-waiting", "2024-10-09T08:00:00+07:00"),
        req("asked-while-waiting", "2024-10-02T08:00:00+07:00"),
        req("asked-while-waiting", "2024-10-03T08:00:00+07:00"),
        got("asked-while-waiting", "2024-10-04T08:00:00+07:00"),
        # an answer without a request
        rec("answer-only", "2024-10-05T08:00:00+07:00"),
        got("answer-only", "2024-10-06T08:00:00+07:00"),
        # completed or withdrawn after the end: open at the end
        rec("completed-after", "2024-10-05T17:00:00+07:00"),
        t.completed("completed-after", u, at="2024-10-15T09:00:00+07:00"),
        rec("completed-before", "2024-10-05T17:00:00+07:00"),
        t.completed("completed-before", u, at="2024-10-10T09:00:00+07:00"),
        rec("completed-at-the-end", "2024-10-05T17:00:00+07:00"),
        t.completed("completed-at-the-end", u, at=_END),
        rec("withdrawn-after", "2024-10-05T17:00:00+07:00"),
        t.withdrawn("withdrawn-after", u, at="2024-10-16T09:00:00+07:00"),
        rec("withdrawn-before", "2024-10-05T17:00:00+07:00"),
        t.withdrawn("withdrawn-before", u, at="2024-10-12T09:00:00+07:00"),
        # another unit, received in another zone's notation
        t.received(
            "other-unit",
            "HP-SO-XAYDUNG",
            at="2024-10-01T01:00:00+00:00",
            due_at="2024-10-02T10:00:00+00:00",
            working_days=None,
        ),
    ]


def test_open_past_due_on_every_edge(
    tmp_path: Path, registry: UnitRegistry, calendar: WorkCalendar
) -> None:
    lines = [t.encode(ev) for ev in _edge_events()]
    engine = _replay(lines, registry, calendar)
    assert engine.stats.deadletter == 0
    store = _fold(lines, tmp_path / "ch", registry, calendar)
    try:
        period = monthly_report(2024, 10)
        want = open_past_due(engine.dossiers.values(), period.ends_at)
        assert want == {_UNIT: 10, "HP-SO-XAYDUNG": 1}  # the edges do fall both ways
        report = _assert_same(store, engine, registry, period)
        assert report["open_past_due"] == want
        # at every instant an edge sits on, and a microsecond either side
        instants = {
            datetime.fromisoformat(ev[key])
            for ev in _edge_events()
            for key in ("occurred_at", "due_at")
            if key in ev
        }
        micro = timedelta(microseconds=1)
        for at in sorted(instants):
            for moment in (at - micro, at, at + micro, at.astimezone(VN_TZ)):
                got = open_past_due_counts(store, moment)
                assert got == open_past_due(engine.dossiers.values(), moment), moment
                states = [loads_dossier(raw) for raw in store.open_states(moment)]
                assert got == open_past_due(states, moment), moment
    finally:
        store.close()


def test_a_naive_instant_is_refused(tmp_path: Path) -> None:
    store = ClickHouseStore(connect(f"chdb://{tmp_path / 'ch'}"))
    try:
        store.migrate()
        with pytest.raises(ValueError, match="aware"):
            open_past_due_counts(store, datetime(2024, 10, 14, 23, 59, 59))  # noqa: DTZ001
    finally:
        store.close()


def test_counters_that_cancel_out(tmp_path: Path, registry: UnitRegistry) -> None:
    """Rows that cancel out within a day, across days, or are zero: listed as the per-day path."""
    d1, d2, d3 = date(2024, 10, 1), date(2024, 10, 2), date(2024, 10, 3)
    rows = [
        ("a", "HP-SO-TUPHAP", d1, "received", 2),  # day sum 0 over two sources: absent
        ("b", "HP-SO-TUPHAP", d1, "received", -2),
        ("a", "HP-SO-TUPHAP", d2, "completed", 3),  # days +3 and -3: listed with 0
        ("a", "HP-SO-TUPHAP", d3, "completed", -3),
        ("a", "HP-SO-XAYDUNG", d1, "received", 0),  # zero rows only: absent
        ("a", "HP-SO-XAYDUNG", d2, "completed", 4),
        ("b", "HP-SO-XAYDUNG", d2, "completed", 1),
        ("a", "NOT-A-UNIT", d2, "received", 5),  # days +5 and -5 of an unknown code
        ("b", "NOT-A-UNIT", d3, "received", -5),
        ("a", "HP-SO-XAYDUNG", date(2024, 10, 20), "received", 7),  # after the period
    ]
    store = ClickHouseStore(connect(f"chdb://{tmp_path / 'ch'}"))
    try:
        store.migrate()
        store.write_counters(rows)
        period = Period(d1, d3)
        got = counter_totals(store, period.start, period.end)
        assert got == sum_counters(store.counters(period.start, period.end), period)
        assert got == {
            "HP-SO-TUPHAP": {"completed": 0},
            "HP-SO-XAYDUNG": {"completed": 5},
            "NOT-A-UNIT": {"received": 0},
        }
        report = _json(report_from_store(store, registry, period))
        assert report == _json(per_day_report(store, registry, period))
        assert report["unregistered_units"] == {"NOT-A-UNIT": {"received": 0}}
    finally:
        store.close()


def test_a_rewritten_counter_counts_at_its_last_value(tmp_path: Path) -> None:
    """The period's days are filtered before ``FINAL`` (``PREWHERE``): a key's versions go
    together, so a newer value replaces an older one, a zero one included."""
    d1, d2 = date(2024, 10, 1), date(2024, 10, 2)
    store = ClickHouseStore(connect(f"chdb://{tmp_path / 'ch'}"))
    try:
        store.migrate()
        store.client.command("SYSTEM STOP MERGES unit_day_counters")  # four parts, unmerged
        store.write_counters([("a", "HP-SO-TUPHAP", d1, "received", 5)])
        store.write_counters([("a", "HP-SO-XAYDUNG", d2, "received", 4)])
        store.write_counters([("a", "HP-SO-TUPHAP", d1, "received", 0)])  # after a replay
        store.write_counters([("a", "HP-SO-XAYDUNG", d2, "received", 6)])
        assert store.client.query("SELECT count() FROM unit_day_counters").result_rows == [(4,)]
        got = counter_totals(store, d1, d2)
        assert got == sum_counters(store.counters(d1, d2), Period(d1, d2))
        assert got == {"HP-SO-XAYDUNG": {"received": 6}}
        assert counter_totals(store, d2, d2) == {"HP-SO-XAYDUNG": {"received": 6}}
        assert not store.has_counts(d1, d1)  # its only count was rewritten to 0
        assert store.has_counts(d1, d2)
        assert not store.has_counts(date(2024, 10, 3), date(2024, 10, 31))
    finally:
        store.close()
