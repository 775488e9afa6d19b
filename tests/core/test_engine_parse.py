"""``Engine.parse`` takes its units from a table; its dead letters stay those of ``check_unit``."""

from __future__ import annotations

from importlib import resources

import pytest

from dossier_stream.core.engine import DeadLetter, Engine
from dossier_stream.core.events import Event, InvalidEvent, check_unit, parse_event
from dossier_stream.core.registry import UnitRegistry
from dossier_stream.core.topics import load_catalog
from dossier_stream.core.workdays import WorkCalendar
from dossier_stream.sim import testing as t

UNIT = "HP-SO-TUPHAP"
"""A unit of the bundled registry that ends on 2025-07-01 (see ``test_events``)."""

LINES: list[bytes] = [
    t.encode(t.received("D1", UNIT)),
    t.encode(t.received("D2", UNIT, at="2025-07-02T08:00:00+07:00")),  # the unit had ended
    t.encode(t.received("D3", "NO-SUCH-UNIT")),
    t.encode(t.payment("D1", UNIT)),
    t.encode(t.payment("D1", "NO-SUCH-UNIT")),
    t.encode(t.completed("D1", UNIT, at="2026-01-05T08:00:00+07:00")),  # after the end: fine
    t.encode(t.withdrawn("D1", "")),
    t.encode(t.feedback_received("F1", UNIT)),
    t.encode(t.feedback_resolved("F1", "NO-SUCH-UNIT")),
    t.encode(t.reported_totals(UNIT, start="2024-09-15", end="2024-10-14", total=12)),
    t.encode(t.reported_totals("NO-SUCH-UNIT", start="2024-09-15", end="2024-10-14", total=1)),
    *(raw for _, raw, _ in t.INVALID_SAMPLES),
]


def reference(raw: bytes, registry: UnitRegistry) -> Event | tuple[str, str]:
    """What ``Engine.parse`` gave before the unit table: ``parse_event`` then ``check_unit``."""
    try:
        event = parse_event(raw)
        check_unit(event, registry)
    except InvalidEvent as exc:
        return exc.reason, exc.detail
    return event


def result(parsed: Event | DeadLetter) -> Event | tuple[str, str]:
    return (parsed.reason, parsed.detail) if isinstance(parsed, DeadLetter) else parsed


def test_parse_agrees_with_parse_event_and_check_unit(registry: UnitRegistry) -> None:
    engine = Engine(registry, WorkCalendar.default())
    outcomes = [result(engine.parse(raw)) for raw in LINES]
    assert outcomes == [reference(raw, registry) for raw in LINES]
    reasons = {o[0] for o in outcomes if isinstance(o, tuple)}
    assert {"unknown_unit", "unit_not_active"} <= reasons  # both refusals were exercised


def test_a_replaced_registry_is_the_one_checked(registry: UnitRegistry) -> None:
    engine = Engine(registry, WorkCalendar.default())
    raw = t.encode(t.payment("D1", UNIT))
    assert not isinstance(engine.parse(raw), DeadLetter)
    text = resources.files("dossier_stream").joinpath("data/units_haiphong.csv").read_text("utf-8")
    without = "".join(line for line in text.splitlines(True) if not line.startswith(f"{UNIT},"))
    engine.registry = UnitRegistry.from_text(without, source="without UNIT")
    dead = engine.parse(raw)
    assert isinstance(dead, DeadLetter)
    assert dead.reason == "unknown_unit"


def test_the_topic_rule_still_applies(registry: UnitRegistry) -> None:
    engine = Engine(registry, WorkCalendar.default(), catalog=load_catalog())
    raw = t.encode(t.payment("D1", UNIT))
    dead = engine.parse(raw, topic="feedback.v1")
    assert isinstance(dead, DeadLetter)
    assert dead.reason == "wrong_topic"


@pytest.mark.parametrize("raw", LINES)
def test_each_line_alone(registry: UnitRegistry, raw: bytes) -> None:
    """A fresh engine per line: the table is built on the first message, whatever it is."""
    assert result(Engine(registry, WorkCalendar.default()).parse(raw)) == reference(raw, registry)
