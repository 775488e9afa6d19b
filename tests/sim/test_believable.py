"""The demo month reads like a real month: few units late, open dossiers mostly not yet due.

The demo's simulated month (tháng 10/2024, calibrated to seed 000) is folded
in memory. Its published figures stay exact; its overdue and open past-due
figures must look like what the seeds publish: seed 000 names the units with
the most overdue dossiers (Sở TN&MT 992, Sở KH&ĐT 165, UBND huyện An Lão 75),
a few units have overdue dossiers and most none, the city completes on time
in the high 90s. The planner's rule behind it is tested on one unit.
"""

from __future__ import annotations

import random
import re
from datetime import date
from typing import Any

import pytest

from dossier_stream.cli.demo import DEFAULT_PERIOD
from dossier_stream.core.engine import Engine
from dossier_stream.core.periods import monthly_report
from dossier_stream.core.registry import Unit, UnitRegistry
from dossier_stream.core.workdays import WorkCalendar
from dossier_stream.reports.output import tables_json
from dossier_stream.reports.templates import monthly
from dossier_stream.sim.plan import FROM_PERIOD, OPEN_LATE_PER_OVERDUE, Planner
from dossier_stream.sim.quotas import UnitQuota, calibration_for
from dossier_stream.sim.simulate import SimConfig, SimStream
from reference import ON, REFERENCE, compare, compare_totals, rows_from_json

SEED_000 = REFERENCE.parent / "seeds" / "000_9f91dcfb64cb2f43.txt"
_NAMED = re.compile(
    r"((?:Sở|Ủy ban nhân dân) [^,.]+?) (?:với tổng số hồ sơ quá hạn là|có) ([\d.]+) hồ sơ"
)


@pytest.fixture(scope="module")
def demo(registry: UnitRegistry, calendar: WorkCalendar) -> tuple[dict[str, Any], Engine]:
    """The demo's month (as ``dossier-stream demo`` simulates it), folded in memory."""
    config = SimConfig(DEFAULT_PERIOD, calibration=calibration_for(DEFAULT_PERIOD), feedback=1_000)
    engine = Engine(registry, calendar)
    for raw in SimStream(config, registry, calendar):
        engine.process(raw)
    return engine.report(DEFAULT_PERIOD), engine


def _named_worst(registry: UnitRegistry) -> list[tuple[str, int]]:
    """The units seed 000's prose names as the most overdue, with their counts, in order."""
    text = SEED_000.read_text(encoding="utf-8")
    sentence = text[text.index("chưa xử lý hồ sơ đúng hạn") :].split("\n", 1)[0]
    return [
        (registry.resolve(m[1], on=ON).code, int(m[2].replace(".", "")))
        for m in _NAMED.finditer(sentence)
    ]


def _overdue(report: dict[str, Any]) -> dict[str, int]:
    units = report["indicators"]["overdue"]["units"]
    return {code: f["numerator"] for code, f in units.items() if f["numerator"]}


def test_published_figures_stay_exact(
    demo: tuple[dict[str, Any], Engine], registry: UnitRegistry
) -> None:
    report, _engine = demo
    assert compare_totals(report) == []
    tables = tables_json(monthly(report, registry))
    assert compare(rows_from_json({"tables": tables}), registry) == []


def test_the_units_the_seed_names_are_the_most_overdue(
    demo: tuple[dict[str, Any], Engine], registry: UnitRegistry
) -> None:
    named = _named_worst(registry)
    assert len(named) == 3, named
    overdue = _overdue(demo[0])
    ranked = sorted(overdue.items(), key=lambda kv: (-kv[1], kv[0]))
    assert ranked[: len(named)] == named


def test_a_few_units_are_late_and_the_city_is_on_time(
    demo: tuple[dict[str, Any], Engine],
) -> None:
    report = demo[0]
    units = sum(report["units_in_period"].values())
    overdue = _overdue(report)
    assert 3 <= len(overdue) <= max(15, units // 20), overdue
    on_time = report["indicators"]["on_time"]["levels"]
    num = sum(f["numerator"] for f in on_time.values())
    den = sum(f["denominator"] for f in on_time.values())
    assert num / den >= 0.95


def test_open_past_due_only_where_dossiers_are_late(
    demo: tuple[dict[str, Any], Engine],
) -> None:
    report = demo[0]
    overdue, past_due = _overdue(report), report["open_past_due"]
    received = sum(report["received"]["levels"].values())
    assert 0 < sum(past_due.values()) <= received // 100
    assert set(past_due) <= set(overdue)
    for code, n in past_due.items():
        assert n <= overdue[code], code
    worst = max(overdue, key=lambda code: overdue[code])
    assert max(past_due, key=lambda code: past_due[code]) == worst


def test_open_dossiers_are_mostly_not_yet_due(demo: tuple[dict[str, Any], Engine]) -> None:
    """The published month receives ~22.000 more than it completes: those are open, on time."""
    report, engine = demo
    cut = DEFAULT_PERIOD.ends_at
    still_open = [
        s
        for s in engine.dossiers.values()
        if s.received is not None and s.completion is None and s.withdrawn_at is None
    ]
    late = sum(s.is_open_past_due(cut) for s in still_open)
    assert len(still_open) > 15_000
    assert late == sum(report["open_past_due"].values())
    waiting = sum(s.paused_at(cut) for s in still_open)
    assert 0 < waiting < len(still_open) // 10
    assert late < len(still_open) // 50


def test_random_months_are_believable_too(registry: UnitRegistry, calendar: WorkCalendar) -> None:
    period = monthly_report(2025, 3)
    engine = Engine(registry, calendar)
    for raw in SimStream(SimConfig(period, seed=2, dossiers=6_000), registry, calendar):
        engine.process(raw)
    report = engine.report(period)
    overdue = _overdue(report)
    assert 0 < len(overdue) <= sum(report["units_in_period"].values()) // 4
    assert 0 < sum(report["open_past_due"].values()) <= 6_000 // 50


def test_planner_completes_the_dossiers_due_first(calendar: WorkCalendar) -> None:
    """One unit receiving far more than it completes: the open ones are the not-yet-due."""
    period = monthly_report(2024, 10)
    unit = Unit("U1", "Đơn vị thử", "department", None, None, None)
    quota = UnitQuota("U1", 2_000, 1_800, 2_000, 1_800, 400, 380, 350, 340, 40, 100)
    plans = Planner(period, calendar, random.Random(1)).unit_plans(unit, quota)
    cut = period.ends_at
    in_period = [p for p in plans if not p.before]
    assert len(in_period) == quota.received
    done = [p for p in plans if p.completed_at is not None and not p.withdraw_after]
    assert len(done) == quota.completed
    assert sum(p.overdue for p in done) == quota.completed_overdue
    assert all(p.completed_at is not None and p.completed_at <= cut for p in done)
    open_ = [p for p in in_period if p.completed_at is None and p.withdrawn_at is None]
    past_due = [p for p in open_ if p.asked_at is None and p.due <= cut]
    assert len(open_) > quota.received // 2
    assert len(past_due) == round(quota.completed_overdue * OPEN_LATE_PER_OVERDUE)
    from_period = [p for p in done if not p.before]
    assert len(from_period) <= round(quota.received * FROM_PERIOD)


def test_the_demo_period_is_the_calibrated_one() -> None:
    assert calibration_for(DEFAULT_PERIOD) == "haiphong-2024-10"
    assert DEFAULT_PERIOD.start == date(2024, 9, 15)
