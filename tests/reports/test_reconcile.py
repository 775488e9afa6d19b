"""``reconcile``: the streamed counters against the facts, and the units' own reports.

The data goes through the worker's real path — simulated lines, routed to
their topics and partitions, folded by :class:`~dossier_stream.stream.processor.Processor`,
written by :class:`~dossier_stream.store.sink.BatchingSink` into a chdb store — so
the counters and the facts are written exactly as the worker writes them.
"""

from __future__ import annotations

import os
import subprocess
import sys
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner

from dossier_stream.cli.main import main
from dossier_stream.core.indicators import INDICATORS, sum_counters
from dossier_stream.core.periods import Period, monthly_report
from dossier_stream.core.registry import UnitRegistry
from dossier_stream.core.topics import load_catalog
from dossier_stream.core.workdays import WorkCalendar
from dossier_stream.reports.reconcile import (
    RECOMPUTED_COUNTERS,
    Difference,
    recompute,
    reconcile,
    render_text,
)
from dossier_stream.sim import testing as t
from dossier_stream.sim.simulate import SimConfig, Simulation, simulate
from dossier_stream.store.sink import BatchingSink, ClickHouseStore, connect
from dossier_stream.stream.processor import REPORT_COLUMNS, Message, Processor

OCTOBER = monthly_report(2024, 10)
COMPLETED_INDICATORS = {i.key for i in INDICATORS if i.denominator == "completed"}


def _partition(obj: Any, partitions: int) -> int:
    if not isinstance(obj, dict):
        return 0
    key = obj.get("dossier_id") or obj.get("feedback_id") or obj.get("unit_code")
    return zlib.crc32(key.encode()) % partitions if isinstance(key, str) else 0


def _feed(store: ClickHouseStore, registry: UnitRegistry, calendar: WorkCalendar,
          lines: Sequence[bytes]) -> None:  # fmt: skip
    """Route lines as ``produce`` does and fold them as the worker does, flushing per batch."""
    catalog = load_catalog()
    sink = BatchingSink(store, max_rows=1_000_000, interval_s=3600)
    processor = Processor(registry, calendar, catalog, sink, store)
    messages = []
    for offset, raw in enumerate(lines):
        try:
            obj = orjson.loads(raw)
            topic = catalog.topic_for(obj["event_type"])
        except (orjson.JSONDecodeError, KeyError, TypeError):
            obj, topic = None, catalog.dossier_topics[0].name  # the worker dead-letters it
        partitions = 6 if topic.startswith("dossier.") else 1
        messages.append(Message(topic, _partition(obj, partitions), offset, raw))
    for i in range(0, len(messages), 1_500):  # several flushes: versions replace rows
        processor.handle(messages[i : i + 1_500])
        sink.flush()


@dataclass(frozen=True)
class Loaded:
    dsn: str
    sim: Simulation


@pytest.fixture(scope="module")
def loaded(
    tmp_path_factory: pytest.TempPathFactory, registry: UnitRegistry, calendar: WorkCalendar
) -> Loaded:
    """A simulated month folded into chdb by the real processor (the store is closed after)."""
    sim = simulate(SimConfig(OCTOBER, seed=11, dossiers=2_000, feedback=300), registry, calendar)
    dsn = f"chdb://{tmp_path_factory.mktemp('reconcile') / 'ch'}"
    store = ClickHouseStore(connect(dsn))
    try:
        store.migrate()
        _feed(store, registry, calendar, sim.lines)
    finally:
        store.close()
    return Loaded(dsn, sim)


@pytest.fixture
def store(loaded: Loaded) -> Iterator[ClickHouseStore]:
    s = ClickHouseStore(connect(loaded.dsn))
    try:
        yield s
    finally:
        s.close()


def _counter_row(store: ClickHouseStore, counter: str) -> tuple[str, str, date, int]:
    """``(source, unit, day, value)`` of one stored counter of the period (the busiest)."""
    rows = store.client.query(
        "SELECT source, unit_code, day, value FROM unit_day_counters FINAL "
        "WHERE counter = {c:String} AND value > 0 AND day BETWEEN {s:Date} AND {e:Date} "
        "ORDER BY value DESC, unit_code, day, source LIMIT 1",
        parameters={"c": counter, "s": OCTOBER.start, "e": OCTOBER.end},
    ).result_rows
    source, unit, day, value = rows[0]
    return str(source), str(unit), day, int(value)


def test_recomputation_equals_the_simulated_truth(loaded: Loaded, store: ClickHouseStore) -> None:
    """The SQL gives the simulator's independently derived figures, unit by unit."""
    truth = sum_counters(loaded.sim.truth, OCTOBER)
    got = recompute(store, OCTOBER)
    expected = {
        unit: kept
        for unit, totals in truth.items()
        if (kept := {c: v for c, v in totals.items() if c in RECOMPUTED_COUNTERS and v})
    }
    assert got == expected
    # the data exercises every counter, including the withdrawn and overdue cases
    assert {c for totals in got.values() for c in totals} == set(RECOMPUTED_COUNTERS)


def test_streamed_counters_reconcile(store: ClickHouseStore, registry: UnitRegistry) -> None:
    result = reconcile(store, OCTOBER)
    assert result.ok
    assert result.differences == ()
    units_with_reports = {r.unit_code for r in result.sync if r.reported is not None}
    per_unit = len(INDICATORS) - 1  # synchronisation only where the unit reported
    assert result.compared == len(result.units) * per_unit + len(units_with_reports)
    assert len(result.units) > 100
    text = render_text(result)
    assert "differences: 0\n" in text
    assert "Every indicator of every unit equals its recomputation" in text
    # a narrower period reconciles as well (cohort days cut inside the stream)
    assert reconcile(store, Period(date(2024, 10, 1), date(2024, 10, 7))).ok


def test_a_tampered_counter_is_found(store: ClickHouseStore) -> None:
    source, unit, day, value = _counter_row(store, "received_online")
    store.write_counters([(source, unit, day, "received_online", value + 3)])
    try:
        result = reconcile(store, OCTOBER)
        assert not result.ok
        (diff,) = result.differences
        assert (diff.unit_code, diff.indicator, diff.part, diff.counter) == (
            unit, "online_submission", "numerator", "received_online"
        )  # fmt: skip
        assert diff.delta == 3
        assert f"{unit}\t\tonline_submission\tnumerator" in render_text(result)
    finally:
        store.write_counters([(source, unit, day, "received_online", value)])
    assert reconcile(store, OCTOBER).ok


def test_a_tampered_completed_counter_shows_in_every_completed_indicator(
    store: ClickHouseStore,
) -> None:
    source, unit, day, value = _counter_row(store, "completed")
    store.write_counters([(source, unit, day, "completed", value - 1)])
    try:
        diffs = reconcile(store, OCTOBER).differences
        assert {(d.unit_code, d.indicator, d.part) for d in diffs} == {
            (unit, key, "denominator") for key in COMPLETED_INDICATORS
        }
        assert {d.delta for d in diffs} == {-1}
    finally:
        store.write_counters([(source, unit, day, "completed", value)])


def test_counters_of_a_unit_without_facts_are_found(store: ClickHouseStore) -> None:
    """A hostile unit code in the data is just a unit: listed, no SQL effect."""
    hostile = "HP'); DROP TABLE dossier_facts; --"
    day = date(2024, 10, 2)
    store.write_counters([("dossier:0", hostile, day, "received", 2)])
    try:
        diffs = reconcile(store, OCTOBER).differences
        assert {(d.unit_code, d.indicator, d.part, d.streamed, d.recomputed) for d in diffs} == {
            (hostile, "online_submission", "denominator", 2, 0),
            (hostile, "digital_reuse", "denominator", 2, 0),
        }
    finally:
        store.write_counters([("dossier:0", hostile, day, "received", 0)])
    assert store.count("dossier_facts") > 0
    assert reconcile(store, OCTOBER).ok


def test_units_whose_report_differs_are_listed(loaded: Loaded, store: ClickHouseStore) -> None:
    received = {u: c.get("received", 0) for u, c in sum_counters(loaded.sim.truth, OCTOBER).items()}
    reports = {u: n for (u, _, _), n in store.reported_totals(OCTOBER.start, OCTOBER.end).items()}
    assert reports
    more = sorted(u for u, n in reports.items() if n > received.get(u, 0))
    assert more  # the simulator's units report up to 10 % more than they send
    # one unit reports less than the system holds; another reports for a different period
    low = min(u for u, n in reports.items() if n == received.get(u, 0) and n > 0)
    other = next(u for u in sorted(received) if u not in reports and received[u] > 0)
    store.write_rows("unit_reports", REPORT_COLUMNS, [
        _report(low, OCTOBER.start, OCTOBER.end, received[low] - 1, "ev-low"),
        _report(other, OCTOBER.start, date(2024, 10, 13), 10_000, "ev-other-period"),
    ])  # fmt: skip
    try:
        result = reconcile(store, OCTOBER, expected_units=["HP-SILENT"], names={low: "Low"})
        assert result.ok  # the units' reports are not a system error
        rows = {r.unit_code: r for r in result.sync}
        assert sorted(r.unit_code for r in result.sync_differing) == sorted([*more, low])
        assert rows[low].status == "reported_less" and rows[low].gap == -1
        for unit in more:
            assert rows[unit].status == "reported_more"
            assert rows[unit].gap == reports[unit] - received.get(unit, 0) > 0
        assert rows[other].status == "no_report"  # a report for another period does not count
        assert rows["HP-SILENT"].status == "no_report" and rows["HP-SILENT"].held == 0
        doc = result.to_json()["synchronisation"]
        assert doc["reported_more"] == more
        assert doc["gap_total"] == sum(reports[u] - received.get(u, 0) for u in more)
        assert other in doc["without_report"] and "HP-SILENT" in doc["without_report"]
        text = render_text(result)
        assert f"{low}\tLow\t{received[low] - 1}\t{received[low]}\t-1\treported less" in text
        assert "Units without a report: " in text
        # synchronisation is compared as an indicator only where a report exists
        assert not any(d.indicator == "synchronisation" for d in result.differences)
    finally:
        store.write_rows(
            "unit_reports",
            REPORT_COLUMNS,
            [_report(low, OCTOBER.start, OCTOBER.end, reports[low], "r")],
        )


def _report(unit: str, start: date, end: date, total: int, event_id: str) -> tuple[object, ...]:
    """A ``unit_reports`` row in :data:`REPORT_COLUMNS` order (a test partition, a fixed time)."""
    at = datetime(2024, 10, 15, 1, tzinfo=UTC)
    return (unit, "unit:test", start, end, total, event_id, at, 0)


def test_edge_cases_of_the_definitions(
    tmp_path: Path, registry: UnitRegistry, calendar: WorkCalendar
) -> None:
    """Withdrawal, two supplement requests, pauses, late payments, the local day, no reception."""
    u = "HP-SO-TUPHAP"
    lines = [t.encode(e) for e in (
        # completed then withdrawn: in no completed cohort
        t.received("W", u, at="2024-10-01T08:00:00+07:00"),
        t.completed("W", u, at="2024-10-02T08:00:00+07:00"),
        t.withdrawn("W", u, at="2024-10-20T08:00:00+07:00"),
        # two supplement requests: overdue although completed before due; not first-time valid
        t.received("S2", u, at="2024-10-01T08:00:00+07:00", working_days=10),
        t.supplement_requested("S2", u, at="2024-10-01T09:00:00+07:00"),
        t.supplement_received("S2", u, at="2024-10-01T10:00:00+07:00"),
        t.supplement_requested("S2", u, at="2024-10-01T11:00:00+07:00"),
        t.supplement_received("S2", u, at="2024-10-01T12:00:00+07:00"),
        t.completed("S2", u, at="2024-10-02T08:00:00+07:00"),
        # one pause of two days moves the due time: on time though after the due_at
        t.received("P1", u, at="2024-10-01T08:00:00+07:00",
                   due_at="2024-10-03T17:00:00+07:00", channel="direct", level="none"),
        t.supplement_requested("P1", u, at="2024-10-02T08:00:00+07:00"),
        t.supplement_received("P1", u, at="2024-10-04T08:00:00+07:00"),
        t.completed("P1", u, at="2024-10-05T16:00:00+07:00"),
        t.digitized("P1", u, kind="component"), t.digitized("P1", u, kind="result"),
        # received in P with a fee, paid online after P: counts for P
        t.received("F", u, at="2024-10-14T16:00:00+07:00", fee=True, reused=True),
        t.payment("F", u, at="2024-10-20T09:00:00+07:00", method="online"),
        # cash-paid fee dossier; and an unpaid one
        t.received("C", u, at="2024-10-02T08:00:00+07:00", fee=True, channel="postal"),
        t.payment("C", u, at="2024-10-02T09:00:00+07:00", method="cash"),
        t.received("N", u, at="2024-10-02T08:00:00+07:00", fee=True),
        # 18:00 UTC on 14/10 is 01:00 on 15/10 in Hanoi: outside the period
        t.received("L", u, at="2024-10-14T18:00:00Z"),
        # completed, reception never seen: nothing counts
        t.completed("X", u, at="2024-10-03T08:00:00+07:00"),
        # feedback: on time, late, unresolved
        t.feedback_received("FB1", u), t.feedback_resolved("FB1", u),
        t.feedback_received("FB2", u),
        t.feedback_resolved("FB2", u, at="2024-10-11T08:00:00+07:00"),
        t.feedback_received("FB3", u),
        t.reported_totals(u, start="2024-09-15", end="2024-10-14", total=9),
    )]  # fmt: skip
    store = ClickHouseStore(connect(f"chdb://{tmp_path / 'ch'}"))
    try:
        store.migrate()
        _feed(store, registry, calendar, lines)
        got = recompute(store, OCTOBER)
        assert got == {
            u: {
                "received": 6, "received_online": 4, "received_oos": 5, "received_oos_online": 4,
                "received_fee": 3, "received_fee_paid": 2, "received_fee_paid_online": 1,
                "received_fee_paid_noncash": 1, "received_reused": 1,
                "completed": 2, "completed_component": 1, "completed_result": 1,
                "completed_both": 1, "completed_on_time": 1, "completed_overdue": 1,
                "feedback_resolved": 2, "feedback_resolved_on_time": 1,
            }
        }  # fmt: skip
        result = reconcile(store, OCTOBER)
        assert result.ok and result.compared == len(INDICATORS)
        (row,) = result.sync
        assert (row.reported, row.held, row.status) == (9, 6, "reported_more")
    finally:
        store.close()


def test_dates_reach_sql_only_as_dates() -> None:
    hostile: Any = "2024-10-01'; DROP TABLE dossier_facts; --"
    unused: Any = object()  # never reached: the period is checked first
    with pytest.raises(TypeError, match="dates"):
        reconcile(unused, Period(hostile, hostile))
    with pytest.raises(TypeError, match="dates"):
        recompute(unused, Period(hostile, hostile))
    at = datetime(2024, 10, 1, tzinfo=UTC)
    with pytest.raises(TypeError, match="dates"):  # not a datetime either
        recompute(unused, Period(at, at))


@pytest.mark.parametrize(
    "args",
    [
        ["--from", "2024-10-01'; DROP TABLE dossier_facts; --", "--to", "2024-10-14"],
        ["--from", "2024-10-01", "--to", "2024-10-14 OR 1=1"],
        ["--from", "2024-10-14", "--to", "2024-10-01"],
        ["--period", "2024-10'); DROP TABLE unit_day_counters; --"],
        ["--period", "2024-10..{end:Date}"],
        ["--from", "2024-10-01"],
        ["--period", "2024-10", "--from", "2024-10-01"],
    ],
)
def test_hostile_dates_are_rejected(args: list[str], tmp_path: Path) -> None:
    where = tmp_path / "ch"
    result = CliRunner().invoke(
        main, ["reconcile", *args], env={"DOSSIER_CLICKHOUSE_DSN": f"chdb://{where}"}
    )
    assert result.exit_code == 2, result.output
    assert "Error:" in result.output and "Traceback" not in result.output
    assert not where.exists()  # rejected before any connection


def _cli(loaded: Loaded, cwd: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "DOSSIER_CLICKHOUSE_DSN": loaded.dsn, "DOSSIER_LOG_LEVEL": "WARNING"}
    return subprocess.run(
        [sys.executable, "-m", "dossier_stream", "reconcile", *args],
        env=env, capture_output=True, timeout=180, check=False, cwd=cwd,
    )  # fmt: skip


@pytest.mark.integration
def test_reconcile_command(loaded: Loaded, tmp_path: Path) -> None:
    clean = _cli(loaded, tmp_path, "--period", "2024-10", "--format", "json")
    assert clean.returncode == 0, clean.stderr.decode()
    doc = orjson.loads(clean.stdout)
    assert doc["period"] == {"from": "2024-09-15", "to": "2024-10-14"}
    assert doc["summary"]["differences"] == 0 and doc["summary"]["indicators_compared"] > 1000
    assert doc["synchronisation"]["reported_more"]  # listed, yet exit code 0
    # the same units' reports fail the run with --strict-sync
    strict = _cli(loaded, tmp_path, "--from", "2024-09-15", "--to", "2024-10-14", "--strict-sync")
    assert strict.returncode == 1
    assert b"unit reports differ" in strict.stderr
    assert b"the synchronisation gap" in strict.stdout

    s = ClickHouseStore(connect(loaded.dsn))
    try:
        source, unit, day, value = _counter_row(s, "feedback_resolved_on_time")
        s.write_counters([(source, unit, day, "feedback_resolved_on_time", value + 1)])
    finally:
        s.close()
    try:
        out = tmp_path / "r.json"
        bad = _cli(loaded, tmp_path, "--period", "2024-10", "--format", "json", "--out", str(out))
        assert bad.returncode == 1
        diffs = orjson.loads(out.read_bytes())["differences"]
        assert [(d["unit_code"], d["indicator"], d["part"], d["delta"]) for d in diffs] == [
            (unit, "feedback_on_time", "numerator", 1)
        ]
        text = _cli(loaded, tmp_path, "--period", "2024-10")
        assert text.returncode == 1
        assert b"differences: 1 in 1 unit\n" in text.stdout
        assert f"{unit}\t".encode() in text.stdout
    finally:
        s = ClickHouseStore(connect(loaded.dsn))
        try:
            s.write_counters([(source, unit, day, "feedback_resolved_on_time", value)])
        finally:
            s.close()


def test_difference_delta() -> None:
    d = Difference("U", "on_time", "numerator", "completed_on_time", 5, 7)
    assert d.delta == -2
    assert d.to_json({"U": "Unit"})["name"] == "Unit"
