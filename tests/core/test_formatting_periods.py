"""Vietnamese number formatting and report periods."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dossier_stream.core.formatting import (
    format_count,
    format_date,
    format_rate,
    meets_target,
    rate_hundredths,
    rate_percent,
)
from dossier_stream.core.periods import (
    Period,
    calendar_month,
    monthly_report,
    parse_period,
    quarter,
    rolling,
    week,
    year_to_date,
)


@pytest.mark.parametrize(
    ("num", "den", "text"),
    [
        (55615, 77030, "72,2%"),  # seed 000: city online rate
        (38507, 41818, "92,08%"),  # departments
        (3596, 4853, "74,1%"),  # districts
        (13512, 30359, "44,51%"),  # communes
        (1, 1, "100%"),
        (0, 5, "0%"),
        (0, 0, "0%"),  # official tables print 0% for no dossiers
        (1, 8, "12,5%"),  # exact half: 12,5
        (1, 3, "33,33%"),
        (2, 3, "66,67%"),
        (8463, 8551, "98,97%"),
        (1, 16, "6,25%"),
        (1, 80000, "0%"),  # 0.00125 % -> 0,00 -> 0%
        (1, 40000, "0%"),  # 0.0025 % -> 0,00 -> 0%
        (1, 20000, "0,01%"),  # 0.005 % -> half-up -> 0,01
    ],
)
def test_rates_print_the_vietnamese_way(num: int, den: int, text: str) -> None:
    assert format_rate(num, den) == text


def test_no_dossiers_can_be_marked_otherwise() -> None:
    assert format_rate(0, 0, empty="—") == "—"
    assert rate_percent(0, 0) is None and rate_hundredths(3, 0) is None


@given(st.integers(0, 10**7), st.integers(1, 10**7))
def test_half_up_rounding_is_exact(num: int, den: int) -> None:
    from decimal import ROUND_HALF_UP, Decimal

    exact = (Decimal(num) * 100 / Decimal(den)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    assert rate_hundredths(num, den) == int(exact * 100)


@pytest.mark.parametrize(
    ("n", "text"), [(0, "0"), (999, "999"), (77030, "77.030"), (6909896800, "6.909.896.800")]
)
def test_counts_use_a_dot_for_thousands(n: int, text: str) -> None:
    assert format_count(n) == text


def test_dates_print_day_first() -> None:
    assert format_date(date(2024, 9, 15)) == "15/09/2024"


def test_targets_compare_exact_fractions() -> None:
    assert meets_target(60, 100, ">=60") is True
    assert meets_target(5999, 10000, ">=60") is False  # prints 59,99%
    assert meets_target(599999, 1000000, ">=60") is False  # prints 60% but is below
    assert meets_target(10, 10, "=100") is True and meets_target(9, 10, "=100") is False
    assert meets_target(0, 0, ">=60") is False and meets_target(1, 2, None) is None
    with pytest.raises(ValueError, match="unknown target"):
        meets_target(1, 2, "~50")


def test_monthly_period_runs_from_the_15th_to_the_14th() -> None:
    assert monthly_report(2024, 10) == Period(date(2024, 9, 15), date(2024, 10, 14))
    assert monthly_report(2025, 1) == Period(date(2024, 12, 15), date(2025, 1, 14))
    assert len(monthly_report(2024, 10)) == 30


def test_weeks_run_friday_to_thursday() -> None:
    expected = Period(date(2025, 9, 12), date(2025, 9, 18))
    for d in expected.days():
        assert week(d) == expected
    assert week(date(2025, 9, 19)).start == date(2025, 9, 19)


def test_other_periods() -> None:
    assert calendar_month(2024, 2) == Period(date(2024, 2, 1), date(2024, 2, 29))
    assert calendar_month(2024, 12).end == date(2024, 12, 31)
    assert quarter(2025, 3) == Period(date(2025, 7, 1), date(2025, 9, 30))
    assert year_to_date(date(2025, 9, 30)) == Period(date(2025, 1, 1), date(2025, 9, 30))
    assert rolling(7, date(2025, 9, 18)) == Period(date(2025, 9, 12), date(2025, 9, 18))
    with pytest.raises(ValueError):
        quarter(2025, 5)
    with pytest.raises(ValueError, match="before it starts"):
        Period(date(2025, 1, 2), date(2025, 1, 1))


def test_period_bounds_are_local_instants() -> None:
    p = Period(date(2024, 9, 15), date(2024, 10, 14))
    assert p.starts_at.isoformat() == "2024-09-15T00:00:00+07:00"
    assert p.ends_at.isoformat().startswith("2024-10-14T23:59:59")
    assert date(2024, 10, 14) in p and date(2024, 10, 15) not in p


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-10", monthly_report(2024, 10)),
        ("monthly:2024-10", monthly_report(2024, 10)),
        ("month:2024-10", calendar_month(2024, 10)),
        ("week:2025-09-15", Period(date(2025, 9, 12), date(2025, 9, 18))),
        ("quarter:2025-Q3", quarter(2025, 3)),
        ("ytd:2025-09-30", year_to_date(date(2025, 9, 30))),
        ("2024-09-15..2024-10-14", monthly_report(2024, 10)),
        ("7d", rolling(7, date(2025, 9, 18))),
    ],
)
def test_parse_period(text: str, expected: Period) -> None:
    assert parse_period(text, today=date(2025, 9, 18)) == expected


@pytest.mark.parametrize("bad", ["2024-13", "october", "week:yesterday", "2024-10-14..2024-09-15"])
def test_parse_period_errors_say_what_to_write(bad: str) -> None:
    with pytest.raises(ValueError, match="bad period"):
        parse_period(bad)
