"""The report structure: sums, eras, targets, synchronisation, and the engine around it."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import orjson
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from dossier_stream.cli.main import main
from dossier_stream.core.counters import COUNTERS, CounterKey
from dossier_stream.core.engine import Engine
from dossier_stream.core.indicators import INDICATORS, build_report
from dossier_stream.core.periods import Period, monthly_report
from dossier_stream.core.registry import UnitRegistry
from dossier_stream.core.workdays import WorkCalendar
from dossier_stream.sim import testing as t

OCT = monthly_report(2024, 10)
DEFAULT = UnitRegistry.load_default()
CODES = [u.code for u in DEFAULT]


@st.composite
def counter_maps(draw: st.DrawFn) -> dict[CounterKey, int]:
    keys = st.tuples(
        st.sampled_from(CODES),
        st.integers(0, 40).map(lambda i: date(2024, 9, 10) + timedelta(days=i)),
        st.sampled_from(COUNTERS),
    )
    return draw(st.dictionaries(keys, st.integers(1, 500), max_size=60))


@given(counters=counter_maps())
def test_units_sum_to_levels_and_levels_to_the_city(counters: dict[CounterKey, int]) -> None:
    report = build_report(counters, DEFAULT, OCT)
    for ind in INDICATORS:
        if ind.key == "synchronisation":
            continue
        section = report["indicators"][ind.key]
        for part in ("numerator", "denominator"):
            by_level: dict[str, int] = {}
            for unit in section["units"].values():
                by_level[unit["level"]] = by_level.get(unit["level"], 0) + unit[part]
            assert by_level == {lvl: f[part] for lvl, f in section["levels"].items()}
            assert sum(by_level.values()) == section["city"][part]
            expected = sum(
                v
                for (_, day, name), v in counters.items()
                if day in OCT
                and name == (ind.numerator if part == "numerator" else ind.denominator)
            )
            assert section["city"][part] == expected
    assert report["received"]["city"] == sum(report["received"]["levels"].values())


def test_an_empty_period_is_zeros_not_an_error() -> None:
    report = build_report({}, DEFAULT, OCT)
    online = report["indicators"]["online_submission"]
    assert online["city"] == {
        "numerator": 0,
        "denominator": 0,
        "rate": None,
        "rate_text": "0%",
        "no_dossiers": True,
    }
    assert online["units_meeting_target"] == {
        "department": [0, 19],
        "district": [0, 15],
        "commune": [0, 217],
    }
    assert report["received"]["city"] == 0
    assert report["units_in_period"] == {"department": 19, "district": 15, "commune": 217}


ERA_CSV = """code,name,level,parent_code,valid_from,valid_to,aliases,successor_codes
OLD-D,Ủy ban nhân dân huyện Cũ,district,,,2025-06-30,,NEW-C
OLD-C,Xã Cũ,commune,OLD-D,,2025-06-30,,NEW-C
NEW-C,Phường Mới,commune,,2025-07-01,,,
DEP,Sở Nội vụ,department,,,,,
"""


def test_units_listed_are_those_of_the_period() -> None:
    reg = UnitRegistry.from_text(ERA_CSV)
    before = build_report({}, reg, Period(date(2025, 6, 1), date(2025, 6, 30)))
    after = build_report({}, reg, Period(date(2025, 7, 1), date(2025, 7, 7)))
    straddle = build_report({}, reg, Period(date(2025, 6, 25), date(2025, 7, 3)))
    assert set(before["received"]["units"]) == {"OLD-D", "OLD-C", "DEP"}
    assert set(after["received"]["units"]) == {"NEW-C", "DEP"}
    assert "district" not in after["indicators"]["online_submission"]["levels"]
    assert set(straddle["received"]["units"]) == {"OLD-D", "OLD-C", "NEW-C", "DEP"}
    # a late completion for a unit that has ended still counts for that unit
    late = {("OLD-C", date(2025, 7, 2), "completed"): 1}
    assert after_units(build_report(late, reg, Period(date(2025, 7, 1), date(2025, 7, 7)))) == {
        "NEW-C",
        "DEP",
        "OLD-C",
    }


def after_units(report: dict[str, object]) -> set[str]:
    return set(report["indicators"]["digitization"]["units"])  # type: ignore[index]


def test_targets_and_units_meeting_them() -> None:
    reg = UnitRegistry.from_text(ERA_CSV)
    day = date(2025, 7, 2)
    counters = {
        ("NEW-C", day, "received"): 10,
        ("NEW-C", day, "received_online"): 6,
        ("DEP", day, "received"): 10,
        ("DEP", day, "received_online"): 5,
    }
    report = build_report(counters, reg, Period(day, day))
    online = report["indicators"]["online_submission"]
    assert online["target"] == ">=60"
    assert online["units_meeting_target"] == {"department": [0, 1], "commune": [1, 1]}
    assert online["units"]["NEW-C"]["rate_text"] == "60%"
    assert online["city"]["rate_text"] == "55%"
    assert report["indicators"]["on_time"]["units_meeting_target"] is None


def test_synchronisation_uses_reports_for_exactly_the_period() -> None:
    reg = UnitRegistry.from_text(ERA_CSV)
    p = Period(date(2025, 7, 1), date(2025, 7, 7))
    counters = {
        ("NEW-C", date(2025, 7, 2), "received"): 90,
        ("DEP", date(2025, 7, 3), "received"): 12,
    }
    reports = {
        ("NEW-C", p.start, p.end): 100,
        ("DEP", p.start, p.end): 10,
        ("DEP", p.start, date(2025, 7, 8)): 999,
    }
    sync = build_report(counters, reg, p, reported_totals=reports)["indicators"]["synchronisation"]
    assert sync["units"]["NEW-C"]["rate_text"] == "90%"
    assert sync["units"]["DEP"]["denominator"] == 12  # max(reported, received)
    assert sync["units"]["DEP"]["rate_text"] == "100%"
    assert sync["units_meeting_target"] == {"department": [1, 1], "commune": [0, 1]}
    none = build_report(counters, reg, p)["indicators"]["synchronisation"]
    assert none["units"] == {} and none["city"]["no_dossiers"] is True


# ------------------------------------------------------------------- engine
UNIT = "HP-SO-TUPHAP"


def small_stream() -> list[bytes]:
    evs = [
        t.received("A", UNIT, at="2024-10-01T08:00:00+07:00", fee=True, working_days=2),
        t.payment("A", UNIT, transaction_id="TA", amount=200_000, at="2024-10-01T09:00:00+07:00"),
        t.digitized("A", UNIT, kind="component"),
        t.digitized("A", UNIT, kind="result"),
        t.completed("A", UNIT, at="2024-10-02T10:00:00+07:00", e_signed=True),
        t.received("B", UNIT, at="2024-10-01T08:00:00+07:00", channel="direct", working_days=1),
        t.completed("B", UNIT, at="2024-10-09T10:00:00+07:00"),
        t.reported_totals(UNIT, start="2024-09-15", end="2024-10-14", total=4),
    ]
    raws = [t.encode(e) for e in evs]
    return [*raws, raws[1], raws[4], b"{broken", t.encode(t.payment("C", "NOWHERE"))]


def test_engine_turns_a_stream_into_the_report(
    registry: UnitRegistry, calendar: WorkCalendar
) -> None:
    engine = Engine(registry, calendar)
    for raw in small_stream():
        engine.process(raw)
    assert engine.stats.to_json() == {
        "events_in": 12,
        "valid": 8,
        "duplicates": 2,
        "deadletter": 2,
        "deadletter_by_reason": {"not_json": 1, "unknown_unit": 1},
        "rerouted": 0,
        "rerouted_by_topic": {},
    }
    assert [d.reason for d in engine.dead_letters] == ["not_json", "unknown_unit"]
    r = engine.report(OCT)
    ind = r["indicators"]
    assert ind["online_submission"]["units"][UNIT]["rate_text"] == "50%"
    assert ind["online_payment"]["units"][UNIT]["rate_text"] == "100%"
    assert ind["digitization"]["units"][UNIT]["numerator"] == 1
    assert ind["on_time"]["units"][UNIT]["rate_text"] == "50%"
    assert ind["overdue"]["city"]["numerator"] == 1
    assert ind["synchronisation"]["units"][UNIT]["rate_text"] == "50%"
    assert r["online_payment_transactions"]["count"] == 1
    assert r["online_payment_transactions"]["amount_vnd"] == 200_000
    # [units with transactions, units offering online services]: only UNIT received any
    assert r["online_payment_transactions"]["units_with_transactions"]["department"] == [1, 1]
    assert r["e_signed"]["city"] == 1
    assert r["open_past_due"] == {}
    assert r["average_days_ahead"]["units"][UNIT]["working_days"] == 1


def test_engine_dead_letters_events_on_the_wrong_topic(
    registry: UnitRegistry, calendar: WorkCalendar
) -> None:
    from dossier_stream.core.topics import load_catalog

    engine = Engine(registry, calendar, catalog=load_catalog())
    out = engine.process(
        t.encode(t.received("A", UNIT)), topic="dossier.payments.v1", partition=3, offset=42
    )
    assert out.kind == "deadletter" and out.dead_letter is not None
    assert out.dead_letter.reason == "wrong_topic"
    assert out.dead_letter.to_json()["offset"] == 42


def test_replay_command_prints_the_json_report(tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    events.write_bytes(b"\n".join(small_stream()) + b"\n")
    result = CliRunner().invoke(
        main, ["replay", str(events), "--period", "2024-10", "--format", "json"]
    )
    assert result.exit_code == 0, result.output
    report = orjson.loads(result.stdout)
    assert report["period"] == {"from": "2024-09-15", "to": "2024-10-14"}
    assert report["pipeline"]["deadletter"] == 2
    text = CliRunner().invoke(main, ["replay", str(events), "--period", "2024-10"])
    assert "được cập nhật trên hệ thống là 2 hồ sơ" in text.stdout  # the monthly form
    args = ["replay", str(events), "--period", "2024-10", "--template", "summary"]
    assert "Tổng số hồ sơ tiếp nhận: 2 hồ sơ" in CliRunner().invoke(main, args).stdout


def test_help_explains_every_command() -> None:
    runner = CliRunner()
    for args in (
        ["--help"],
        ["replay", "--help"],
        ["schemas", "export", "--help"],
        ["units", "resolve", "--help"],
        ["calendar", "due", "--help"],
    ):
        result = runner.invoke(main, args)
        assert result.exit_code == 0 and "Usage:" in result.output


def test_cli_errors_name_the_problem(tmp_path: Path) -> None:
    bad = tmp_path / "units.csv"
    bad.write_text(
        "code,name,level,parent_code,valid_from,valid_to,aliases,successor_codes\n"
        "X,Sở X,ministry,,,,,\n"
    )
    result = CliRunner().invoke(main, ["units", "check", "--units", str(bad)])
    assert result.exit_code != 0
    assert "units.csv:2" in result.output and "ministry" in result.output
    result = CliRunner().invoke(main, ["units", "resolve", "UBND huyện Kiên Thụy"])
    assert result.exit_code == 0 and "HP-Q-314" in result.output
