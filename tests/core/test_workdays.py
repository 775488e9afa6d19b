"""Tests of the working-day calendar and the due-time rule."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest
from holidays.countries.vietnam import VietnamStaticHolidays
from hypothesis import given, settings
from hypothesis import strategies as st

from dossier_stream.core.workdays import VN_TZ, CalendarError, DaySwap, WorkCalendar

CAL = WorkCalendar.default()


def _vn(y: int, m: int, d: int, hh: int = 0, mm: int = 0) -> datetime:
    return datetime(y, m, d, hh, mm, tzinfo=VN_TZ)


def _days(first: date, last: date) -> list[date]:
    return [first + timedelta(i) for i in range((last - first).days + 1)]


# (first day off, last day off, first working day after) of each official break.
BREAKS = [
    pytest.param(date(2023, 1, 20), date(2023, 1, 26), date(2023, 1, 27), id="tet-2023"),
    pytest.param(date(2024, 2, 8), date(2024, 2, 14), date(2024, 2, 15), id="tet-2024"),
    pytest.param(date(2025, 1, 25), date(2025, 2, 2), date(2025, 2, 3), id="tet-2025"),
    pytest.param(date(2026, 2, 14), date(2026, 2, 22), date(2026, 2, 23), id="tet-2026"),
    pytest.param(date(2023, 4, 29), date(2023, 5, 3), date(2023, 5, 4), id="30-4-2023"),
    pytest.param(date(2024, 4, 27), date(2024, 5, 1), date(2024, 5, 2), id="30-4-2024-swap"),
    pytest.param(date(2025, 4, 30), date(2025, 5, 4), date(2025, 5, 5), id="30-4-2025-swap"),
    pytest.param(date(2023, 9, 1), date(2023, 9, 4), date(2023, 9, 5), id="2-9-2023"),
    pytest.param(date(2024, 8, 31), date(2024, 9, 3), date(2024, 9, 4), id="2-9-2024"),
    pytest.param(date(2025, 8, 30), date(2025, 9, 2), date(2025, 9, 3), id="2-9-2025"),
    pytest.param(date(2026, 8, 29), date(2026, 9, 2), date(2026, 9, 3), id="2-9-2026-swap"),
]


@pytest.mark.parametrize(("first", "last", "back"), BREAKS)
def test_official_breaks(first: date, last: date, back: date) -> None:
    eve = first - timedelta(1)
    assert CAL.is_working_day(eve)
    for day in _days(first, last):
        assert not CAL.is_working_day(day), day
        assert CAL.day_off_reason(day)
    assert CAL.is_working_day(back)
    assert CAL.day_off_reason(back) is None
    assert CAL.next_working_day(eve) == back
    assert CAL.next_working_day(last) == back
    assert CAL.add_working_days(first, 0) == back


@pytest.mark.parametrize(
    ("day", "working", "reason_part"),
    [
        (date(2025, 1, 27), False, "Lunar New Year"),  # 28 Chạp, Monday
        (date(2025, 1, 29), False, "Lunar New Year"),  # Tết day 1
        (date(2025, 2, 1), False, "Lunar New Year"),  # Saturday, Tết day 4
        (date(2025, 1, 24), True, None),  # last Friday before Tết
        (date(2025, 9, 1), False, "National Day"),  # adjacent day of 2/9/2025
        (date(2025, 9, 2), False, "National Day"),
        (date(2024, 9, 3), False, "National Day"),  # adjacent day of 2/9/2024
        (date(2024, 4, 29), False, "swapped with working Sat 04/05/2024"),
        (date(2024, 5, 4), True, None),  # working Saturday
        (date(2025, 5, 2), False, "swapped with working Sat 26/04/2025"),
        (date(2025, 4, 26), True, None),  # working Saturday
        (date(2026, 8, 22), True, None),  # working Saturday
        (date(2023, 1, 1), False, "New Year"),  # Sunday holiday
        (date(2023, 1, 2), False, "observed"),  # its substitute Monday
        (date(2026, 4, 26), False, "Hung Kings"),  # Sunday holiday
        (date(2026, 4, 27), False, "Hung Kings' Commemoration Day (observed)"),
        (date(2023, 9, 2), False, "National Day"),  # Saturday holiday
        (date(2023, 9, 4), False, "National Day (observed)"),  # its substitute Monday
        (date(2024, 4, 18), False, "Hung Kings"),
        (date(2025, 4, 7), False, "Hung Kings"),
        (date(2024, 6, 8), False, "Saturday"),
        (date(2024, 6, 9), False, "Sunday"),
        (date(2024, 6, 10), True, None),
    ],
)
def test_day_status(day: date, working: bool, reason_part: str | None) -> None:
    assert CAL.is_working_day(day) is working
    reason = CAL.day_off_reason(day)
    if reason_part is None:
        assert reason is None
    else:
        assert reason is not None and reason_part in reason


@pytest.mark.parametrize(
    ("received", "n", "due"),
    [
        # Working day: same local time N working days later, whatever the hour.
        (_vn(2024, 6, 10, 9, 15), 3, _vn(2024, 6, 13, 9, 15)),
        (_vn(2024, 6, 14, 21, 40), 1, _vn(2024, 6, 17, 21, 40)),  # after hours, Friday
        (_vn(2024, 6, 10, 6, 30), 0, _vn(2024, 6, 10, 6, 30)),  # N = 0
        # Sunday reception: counts from 08:00 of Monday.
        (_vn(2024, 6, 9, 14, 0), 0, _vn(2024, 6, 10, 8, 0)),
        (_vn(2024, 6, 9, 14, 0), 2, _vn(2024, 6, 12, 8, 0)),
        # Holiday eve (Wed 7/2/2024, last working day before Tết).
        (_vn(2024, 2, 7, 16, 30), 1, _vn(2024, 2, 15, 16, 30)),
        (_vn(2024, 2, 7, 16, 30), 5, _vn(2024, 2, 21, 16, 30)),
        # Reception during Tết 2025: counts from 08:00 of Mon 3/2/2025.
        (_vn(2025, 1, 30, 10, 0), 0, _vn(2025, 2, 3, 8, 0)),
        (_vn(2025, 1, 30, 10, 0), 3, _vn(2025, 2, 6, 8, 0)),
        # Crossing Tết 2025 from Mon 20/1/2025 with 10 working days.
        (_vn(2025, 1, 20, 14, 0), 10, _vn(2025, 2, 10, 14, 0)),
        # Crossing 30/4-1/5/2025: Sat 26/4 is worked, 30/4-4/5 are not.
        (_vn(2025, 4, 25, 11, 0), 1, _vn(2025, 4, 26, 11, 0)),
        (_vn(2025, 4, 29, 11, 0), 1, _vn(2025, 5, 5, 11, 0)),
        # Reception on a worked Saturday counts that day.
        (_vn(2024, 5, 4, 9, 0), 1, _vn(2024, 5, 6, 9, 0)),
        # Crossing the year end and the New Year's day.
        (_vn(2024, 12, 30, 15, 0), 2, _vn(2025, 1, 2, 15, 0)),
        # A UTC instant that is already Monday in Vietnam.
        (datetime(2024, 6, 9, 18, 0, tzinfo=UTC), 1, _vn(2024, 6, 11, 1, 0)),
        # A UTC instant that is still Sunday in Vietnam.
        (datetime(2024, 6, 9, 16, 59, tzinfo=UTC), 1, _vn(2024, 6, 11, 8, 0)),
    ],
)
def test_due_at(received: datetime, n: int, due: datetime) -> None:
    got = CAL.due_at(received, n)
    assert got == due
    assert got.tzinfo is VN_TZ
    assert got.timetz().replace(tzinfo=None) == due.astimezone(VN_TZ).time()


def test_due_at_rejects_naive_and_negative() -> None:
    naive = datetime(2024, 6, 10, 9, 0)  # noqa: DTZ001 - the point of the test
    with pytest.raises(ValueError, match="timezone-aware"):
        CAL.due_at(naive, 1)
    with pytest.raises(ValueError, match=">= 0"):
        CAL.due_at(_vn(2024, 6, 10), -1)
    with pytest.raises(ValueError, match=">= 0"):
        CAL.add_working_days(date(2024, 6, 10), -1)


def test_due_time_of_day_is_kept() -> None:
    got = CAL.due_at(_vn(2024, 6, 10, 9, 15) + timedelta(seconds=7, microseconds=5), 1)
    assert got.time() == time(9, 15, 7, 5)


def test_add_and_count() -> None:
    assert CAL.add_working_days(date(2024, 6, 8), 0) == date(2024, 6, 10)  # Saturday
    assert CAL.add_working_days(date(2024, 6, 8), 1) == date(2024, 6, 10)
    assert CAL.add_working_days(date(2024, 6, 10), 1) == date(2024, 6, 11)
    assert CAL.next_working_day(date(2024, 5, 3)) == date(2024, 5, 4)  # worked Saturday
    assert CAL.working_days_between(date(2024, 2, 7), date(2024, 2, 15)) == 1
    assert CAL.working_days_between(date(2024, 2, 15), date(2024, 2, 7)) == -1
    assert CAL.working_days_between(date(2024, 6, 10), date(2024, 6, 10)) == 0
    # 2024: 366 days, 104 weekend days, 12 weekdays off (1/1, 5 of Tết, 18/4, 29/4, 30/4,
    # 1/5, 2/9, 3/9) and one worked Saturday (4/5).
    assert CAL.working_days_between(date(2023, 12, 31), date(2024, 12, 31)) == 366 - 104 - 12 + 1


def test_bundled_swaps_cover_library_substitutions() -> None:
    """Every 'day off substituted from a Saturday' in the library has its worked Saturday."""
    for year in range(2023, 2027):
        entries: Any = VietnamStaticHolidays.special_public_holidays.get(year, ())
        if entries and isinstance(entries[0], int):
            entries = (entries,)
        for entry in entries:
            m_off, d_off, m_work, d_work, *rest = entry
            off, work = date(year, m_off, d_off), date(rest[0] if rest else year, m_work, d_work)
            assert not CAL.is_working_day(off), off
            assert CAL.is_working_day(work), work
            assert work.weekday() == 5


SWAPS_FILE = """\
# Province X swaps
date,kind,note
2024-06-14,day_off,"Province day, swapped with Sat 22/06/2024"
2024-06-22 , working_day , Worked in exchange for 14/06/2024
2025-05-02,working_day,Province decided to work (overrides the bundled day off)
"""


def test_user_file_extends_default(tmp_path: Path) -> None:
    path = tmp_path / "swaps.csv"
    path.write_text(SWAPS_FILE, encoding="utf-8")
    cal = WorkCalendar.from_file(path)
    assert cal.day_off_reason(date(2024, 6, 14)) == "Province day, swapped with Sat 22/06/2024"
    assert cal.is_working_day(date(2024, 6, 22))
    assert cal.is_working_day(date(2025, 5, 2))  # user entry replaces the bundled one
    assert cal.is_working_day(date(2024, 5, 4))  # bundled entries are kept
    assert not cal.is_working_day(date(2024, 4, 29))
    alone = WorkCalendar.from_file(str(path), include_default=False)
    assert alone.is_working_day(date(2024, 6, 22))
    assert not alone.is_working_day(date(2024, 5, 4))  # plain Saturday without the bundle
    # The library itself has the day off of a swap, but not the worked Saturday.
    assert not alone.is_working_day(date(2024, 4, 29))


@pytest.mark.parametrize(
    ("text", "line", "problem"),
    [
        ("date,kind,note\n2024-13-01,day_off,x\n", 2, "bad date"),
        ("date,kind,note\n20240504,working_day,x\n", 2, "bad date"),
        ("# c\n\ndate,kind,note\n2024-05-04,workday,x\n", 4, "bad kind"),
        ("date,kind,note\n2024-05-04,working_day,a,b\n", 2, "expected 3 fields"),
        ("date,kind,note\n2024-05-04,working_day,\n", 2, "empty note"),
        ("date,kind,note\n2024-05-04,working_day,a\n2024-05-04,day_off,b\n", 3, "line 2"),
        ("day,kind,note\n", 1, "header"),
        ("\ufeff# BOM and comment\ndate,kind,note\n2024-05-04,day_off\n", 3, "expected 3"),
        ('date,kind,note\n2024-05-04,day_off,"a\n', 2, "not a valid CSV line"),
    ],
)
def test_bad_swaps_file(tmp_path: Path, text: str, line: int, problem: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(CalendarError) as info:
        WorkCalendar.from_file(path)
    message = str(info.value)
    assert str(path) in message
    assert f"line {line}:" in message
    assert problem in message
    assert "Fix:" in message


def test_swaps_file_errors_without_lines(tmp_path: Path) -> None:
    with pytest.raises(CalendarError, match="cannot read"):
        WorkCalendar.from_file(tmp_path / "missing.csv")
    empty = tmp_path / "empty.csv"
    empty.write_text("# nothing\n", encoding="utf-8")
    with pytest.raises(CalendarError, match="no header"):
        WorkCalendar.from_file(empty)


def test_dayswap_validation() -> None:
    with pytest.raises(ValueError, match="kind"):
        DaySwap(date(2024, 5, 4), "holiday", "x")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="date"):
        DaySwap(datetime(2024, 5, 4, tzinfo=VN_TZ), "day_off", "x")
    cal = WorkCalendar([DaySwap(date(2024, 6, 8), "working_day", "test")])
    assert cal.is_working_day(date(2024, 6, 8))
    assert not WorkCalendar().is_working_day(date(2024, 5, 4))
    with pytest.raises(ValueError, match="country"):
        WorkCalendar(country="XX")


@settings(max_examples=200, deadline=None)
@given(
    day=st.dates(min_value=date(2020, 1, 1), max_value=date(2030, 12, 31)),
    n=st.integers(min_value=0, max_value=300),
)
def test_add_working_days_properties(day: date, n: int) -> None:
    result = CAL.add_working_days(day, n)
    assert CAL.is_working_day(result)
    assert result >= day
    # Strictly increasing, except that n = 0 and n = 1 agree on a non-working day.
    following = CAL.add_working_days(day, n + 1)
    assert following > result or (n == 0 and not CAL.is_working_day(day) and following == result)
    if CAL.is_working_day(day):
        assert CAL.working_days_between(day, result) == n
    else:
        assert CAL.working_days_between(day, result) == max(n, 1)
    # Reference: a plain day-by-day walk.
    if n <= 30:
        walk, left = day, n
        if not CAL.is_working_day(walk):
            walk = CAL.next_working_day(walk)
            left = max(n - 1, 0)
        while left:
            walk += timedelta(1)
            left -= CAL.is_working_day(walk)
        assert walk == result


def test_working_days_asked_again_answer_the_same() -> None:
    """The answers a calendar remembers are those of a day-by-day count."""
    cal = WorkCalendar.default()
    start = date(2024, 12, 20)
    days = [start + timedelta(days=n) for n in range(0, 60, 3)]

    def counted(a: date, b: date) -> int:
        lo, hi, sign = (a, b, 1) if a <= b else (b, a, -1)
        n = sum(cal.is_working_day(lo + timedelta(days=i)) for i in range(1, (hi - lo).days + 1))
        return sign * n

    def stepped(day: date, n: int) -> date:
        day += timedelta(days=1)
        while not cal.is_working_day(day):
            day += timedelta(days=1)
        return day if n <= 1 else stepped(day, n - 1)

    for _ in range(2):  # the second round is answered from what the first remembered
        for a in days:
            for b in days:
                assert cal.working_days_between(a, b) == counted(a, b)
            for n in (1, 5, 22):
                assert cal.add_working_days(a, n) == stepped(a, n)
