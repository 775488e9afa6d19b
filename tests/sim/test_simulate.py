"""The simulator: deterministic, and the engine reaches its independent truth."""

from __future__ import annotations

import random
from collections.abc import Iterable
from datetime import date
from pathlib import Path
from typing import Any

import orjson
import pytest

from dossier_stream.core.engine import Engine
from dossier_stream.core.periods import monthly_report
from dossier_stream.core.registry import UnitRegistry
from dossier_stream.core.workdays import WorkCalendar
from dossier_stream.sim.simulate import SimConfig, Simulation, simulate
from dossier_stream.sim.testing import INVALID_SAMPLES

Key = tuple[str, date, str]
OCTOBER = monthly_report(2024, 10)
_LATE_KINDS = ("dossier.payment", "dossier.completed")


@pytest.fixture(scope="module")
def sim(registry: UnitRegistry, calendar: WorkCalendar) -> Simulation:
    return simulate(SimConfig(OCTOBER, seed=7, dossiers=3_000, feedback=80), registry, calendar)


def run(lines: Iterable[bytes], registry: UnitRegistry, calendar: WorkCalendar) -> Engine:
    engine = Engine(registry, calendar)
    for raw in lines:
        engine.process(raw)
    return engine


def assert_counters(engine: Engine, truth: dict[Key, int]) -> None:
    actual = {k: v for k, v in engine.counters.items() if k[2] != "completed_ahead_working_days"}
    diff = {
        k: (actual.get(k), truth.get(k))
        for k in sorted(actual.keys() | truth.keys())
        if actual.get(k) != truth.get(k)
    }
    shown = "\n".join(f"  {k}: engine={a} truth={t}" for k, (a, t) in list(diff.items())[:40])
    assert not diff, f"{len(diff)} counters differ from the truth:\n{shown}"


def test_same_config_same_bytes(registry: UnitRegistry, calendar: WorkCalendar) -> None:
    config = SimConfig(OCTOBER, seed=3, dossiers=300, feedback=20)
    first, again = simulate(config, registry, calendar), simulate(config, registry, calendar)
    assert first.lines == again.lines
    assert first.truth == again.truth
    other = simulate(SimConfig(OCTOBER, seed=4, dossiers=300, feedback=20), registry, calendar)
    assert other.lines != first.lines


def test_engine_reaches_the_truth(
    sim: Simulation, registry: UnitRegistry, calendar: WorkCalendar
) -> None:
    engine = run(sim.lines, registry, calendar)
    assert_counters(engine, sim.truth)
    assert sim.invalid > 0 and sim.duplicates > 0
    assert engine.stats.deadletter == sim.invalid
    assert engine.stats.duplicates >= sim.duplicates
    assert engine.stats.events_in == len(sim.lines)


def test_any_order_gives_the_same_counters(
    sim: Simulation, registry: UnitRegistry, calendar: WorkCalendar
) -> None:
    lines = list(sim.lines)
    random.Random(2024).shuffle(lines)
    engine = run(lines, registry, calendar)
    assert_counters(engine, sim.truth)
    assert engine.stats.deadletter == sim.invalid


def test_stream_shape(sim: Simulation) -> None:
    assert len(set(sim.lines)) == len(sim.lines) - sim.duplicates  # invalid lines are unique
    received: set[object] = set()
    early: set[object] = set()  # dossiers with a payment or completion before their reception
    for ev in map(_loads, sim.lines):
        if ev.get("event_type") == "dossier.received":
            received.add(ev.get("dossier_id"))
        elif ev.get("event_type") in _LATE_KINDS and ev.get("dossier_id") not in received:
            early.add(ev.get("dossier_id"))
    assert len(early) >= 100, "payments/completions should often come before the reception"
    totals: dict[str, int] = {}
    for (_unit, day, name), value in sim.truth.items():
        if day in OCTOBER:
            totals[name] = totals.get(name, 0) + value
    assert totals["received"] == 3_000
    assert 0.30 < totals["received_fee"] / totals["received"] < 0.45
    assert 0.15 < totals["received_reused"] / totals["received"] < 0.25
    assert 0.60 < totals["completed"] / totals["received"] < 0.80
    assert 0 < totals["completed_overdue"] < totals["completed_on_time"]
    assert totals["completed_first_time_valid"] < totals["completed"]
    assert totals["payment_tx_online"] > 0 and totals["feedback_resolved"] > 0
    assert min(day for _u, day, _n in sim.truth) < OCTOBER.start  # pre-period receptions


def test_reports_cover_what_the_system_holds(sim: Simulation, registry: UnitRegistry) -> None:
    held: dict[str, int] = {}
    for (unit, day, name), value in sim.truth.items():
        if name == "received" and day in OCTOBER:
            held[unit] = held.get(unit, 0) + value
    period = (OCTOBER.start.isoformat(), OCTOBER.end.isoformat())
    reports = [
        ev
        for ev in map(_loads, sim.lines)
        if ev.get("event_type") == "unit.reported_totals"
        and (ev["period_start"], ev["period_end"]) == period  # invalid samples have others
    ]
    by_id = {ev["event_id"]: ev for ev in reports}  # a re-sent report is the same event
    units = {ev["unit_code"] for ev in by_id.values()}
    assert len(units) == len(by_id), "at most one report per unit"
    assert 0.6 < len(units) / len(registry.units_in(OCTOBER.start, OCTOBER.end)) < 0.95
    for ev in reports:
        assert ev["received_total"] >= held.get(ev["unit_code"], 0)


def test_every_invalid_kind_is_dead_lettered(
    registry: UnitRegistry, calendar: WorkCalendar
) -> None:
    config = SimConfig(OCTOBER, seed=11, dossiers=300, feedback=10, invalid_rate=0.5)
    sim = simulate(config, registry, calendar)
    engine = run(sim.lines, registry, calendar)
    assert engine.stats.deadletter == sim.invalid
    assert_counters(engine, sim.truth)
    reasons = {d.reason for d in engine.dead_letters}
    assert reasons == {reason for _what, _raw, reason in INVALID_SAMPLES} | {"unknown_unit"}


def test_period_across_the_reorganisation(registry: UnitRegistry, calendar: WorkCalendar) -> None:
    """Units ending on 2025-06-30 and starting on 2025-07-01 only receive while they exist."""
    config = SimConfig(monthly_report(2025, 7), seed=5, dossiers=800, feedback=20)
    sim = simulate(config, registry, calendar)
    engine = run(sim.lines, registry, calendar)
    assert_counters(engine, sim.truth)
    assert engine.stats.deadletter == sim.invalid


def test_no_noise_when_rates_are_zero(registry: UnitRegistry, calendar: WorkCalendar) -> None:
    config = SimConfig(OCTOBER, dossiers=100, feedback=5, duplicate_rate=0, invalid_rate=0)
    sim = simulate(config, registry, calendar)
    assert (sim.invalid, sim.duplicates) == (0, 0)
    assert run(sim.lines, registry, calendar).stats.deadletter == 0


def test_write(sim: Simulation, tmp_path: Path) -> None:
    path = tmp_path / "stream.jsonl"
    sim.write(path)
    data = path.read_bytes()
    assert data.endswith(b"\n")
    assert data.split(b"\n")[:-1] == sim.lines


def _loads(raw: bytes) -> dict[str, Any]:
    try:
        ev = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return {}
    return ev if isinstance(ev, dict) else {}
