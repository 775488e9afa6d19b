"""The simulator streams a day at a time: the collected bytes, consecutive months, bounded RSS."""

from __future__ import annotations

import subprocess
import sys
from datetime import date
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from dossier_stream.cli.main import main
from dossier_stream.core.periods import Period, monthly_report
from dossier_stream.core.registry import UnitRegistry
from dossier_stream.core.workdays import WorkCalendar
from dossier_stream.sim.simulate import (
    SimConfig,
    SimStream,
    following,
    simulate,
    simulate_months,
)

OCTOBER = monthly_report(2024, 10)
_PEAK_MIB = 300
"""Issue 15's target for the demo month; measured ≈ 130 MiB when it was written."""


def test_stream_is_the_collected_simulation(registry: UnitRegistry, calendar: WorkCalendar) -> None:
    config = SimConfig(OCTOBER, seed=12, dossiers=1_500, feedback=40)
    stream = SimStream(config, registry, calendar)
    days = list(stream.days())
    collected = simulate(config, registry, calendar)
    assert [line for _day, lines in days for line in lines] == collected.lines
    assert (stream.invalid, stream.duplicates) == (collected.invalid, collected.duplicates)
    assert stream.count == len(collected.lines)
    published = [day for day, _lines in days]
    assert published == sorted(set(published)), "one batch per publish day, in order"
    assert published[0] < OCTOBER.start < OCTOBER.end < published[-1]  # late receptions, reports
    assert all(lines for _day, lines in days)


def test_days_hold_the_events_published_that_day(
    registry: UnitRegistry, calendar: WorkCalendar
) -> None:
    """Within the period, an event is published on or after its own day (lags are >= 0)."""
    config = SimConfig(OCTOBER, seed=3, dossiers=800, feedback=20, invalid_rate=0)
    for day, lines in SimStream(config, registry, calendar).days():
        for raw in lines:
            ev = orjson.loads(raw)
            at = ev.get("received_at") or ev.get("completed_at")
            if at and at.endswith("+07:00"):
                assert date.fromisoformat(at[:10]) <= day, ev


def test_a_stream_is_read_once(registry: UnitRegistry, calendar: WorkCalendar) -> None:
    stream = SimStream(SimConfig(OCTOBER, dossiers=50, feedback=2), registry, calendar)
    assert sum(1 for _ in stream) == stream.count > 0
    with pytest.raises(RuntimeError, match="once"):
        next(iter(stream))


def test_following_periods() -> None:
    assert following(monthly_report(2024, 12)) == monthly_report(2025, 1)
    assert following(OCTOBER) == monthly_report(2024, 11)
    week = Period(date(2025, 9, 12), date(2025, 9, 18))
    assert following(week) == Period(date(2025, 9, 19), date(2025, 9, 25))


def test_consecutive_months(registry: UnitRegistry, calendar: WorkCalendar) -> None:
    config = SimConfig(OCTOBER, seed=4, dossiers=300, feedback=5, calibration="haiphong-2024-10")
    streams = simulate_months(config, 3, registry, calendar)
    first = next(streams)
    assert first.config.calibration == "haiphong-2024-10"  # only the calibrated month
    rest = list(streams)
    assert [s.config.period for s in rest] == [monthly_report(2024, 11), monthly_report(2024, 12)]
    assert [s.config.seed for s in rest] == [5, 6]
    assert all(s.config.calibration is None for s in rest)
    for stream in rest:
        period = stream.config.period
        reports = {
            (ev["period_start"], ev["period_end"])
            for ev in map(orjson.loads, stream)
            if ev.get("event_type") == "unit.reported_totals"
        }
        assert reports == {(period.start.isoformat(), period.end.isoformat())}


def test_simulate_months_command(tmp_path: Path) -> None:
    def run(name: str) -> bytes:
        path = tmp_path / name
        args = ["simulate", "--month", "2024-10", "--months", "2", "--dossiers", "200",
                "--feedback", "5", "--out", str(path)]  # fmt: skip
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 0, result.output
        assert "2 tháng" in result.output
        return path.read_bytes()

    data = run("a.jsonl")
    assert data == run("b.jsonl")
    assert b'"period_start":"2024-09-15"' in data and b'"period_start":"2024-10-15"' in data


def test_the_demo_month_is_simulated_in_bounded_memory(tmp_path: Path) -> None:
    """``simulate --month 2024-10`` (the demo's month) in a fresh process: peak RSS.

    Not timed: the child's peak resident set, read by a parent that runs only it.
    """
    out = tmp_path / "month.jsonl"
    probe = (
        "import resource, subprocess, sys\n"
        "subprocess.run(sys.argv[1:], check=True, capture_output=True)\n"
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
    )
    cli = [sys.executable, "-m", "dossier_stream", "simulate", "--month", "2024-10"]
    proc = subprocess.run(
        [sys.executable, "-c", probe, *cli, "--out", str(out)],
        capture_output=True,
        check=True,
        timeout=900,
    )
    peak_mib = int(proc.stdout) / 1024
    assert out.stat().st_size > 100_000_000
    assert peak_mib < _PEAK_MIB, f"simulating the month peaked at {peak_mib:.0f} MiB"
