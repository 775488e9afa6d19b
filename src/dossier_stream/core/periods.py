"""Report periods: inclusive ranges of calendar days in Asia/Ho_Chi_Minh.

The city uses several (``shared/spec/indicators.md``): the monthly report
period from the 15th of the previous month to the 14th ("tháng 10/2024" is
15/09/2024–14/10/2024), the weekly notice from Friday to Thursday, calendar
months, quarters, year-to-date, and rolling windows for live monitoring.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from dossier_stream.core.workdays import VN_TZ

__all__ = [
    "Period",
    "calendar_month",
    "monthly_report",
    "parse_period",
    "quarter",
    "rolling",
    "week",
    "year_to_date",
]


@dataclass(frozen=True, slots=True, order=True)
class Period:
    """An inclusive range of days ``[start, end]``."""

    start: date
    end: date

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise ValueError(f"period ends ({self.end}) before it starts ({self.start})")

    def __contains__(self, day: object) -> bool:
        return isinstance(day, date) and self.start <= day <= self.end

    def __len__(self) -> int:
        return (self.end - self.start).days + 1

    def days(self) -> Iterator[date]:
        """Every day of the period, in order."""
        for i in range(len(self)):
            yield self.start + timedelta(days=i)

    @property
    def starts_at(self) -> datetime:
        """00:00 of the first day, local time."""
        return datetime.combine(self.start, time(0), tzinfo=VN_TZ)

    @property
    def ends_at(self) -> datetime:
        """The last instant of the last day, local time."""
        return datetime.combine(self.end, time(23, 59, 59, 999999), tzinfo=VN_TZ)

    def to_json(self) -> dict[str, str]:
        """``{"from": "2024-09-15", "to": "2024-10-14"}``."""
        return {"from": self.start.isoformat(), "to": self.end.isoformat()}

    @classmethod
    def from_json(cls, data: dict[str, str]) -> Period:
        """The inverse of :meth:`to_json`."""
        return cls(date.fromisoformat(data["from"]), date.fromisoformat(data["to"]))


def monthly_report(year: int, month: int) -> Period:
    """The city's monthly period: the 15th of the previous month to the 14th."""
    prev_year, prev_month = (year - 1, 12) if month == 1 else (year, month - 1)
    return Period(date(prev_year, prev_month, 15), date(year, month, 14))


def week(day: date) -> Period:
    """The Friday-to-Thursday week of the weekly notice that contains ``day``."""
    start = day - timedelta(days=(day.weekday() - 4) % 7)
    return Period(start, start + timedelta(days=6))


def calendar_month(year: int, month: int) -> Period:
    """1st to last day of a calendar month."""
    nxt = date(year + 1, 1, 1) if month == 12 else date(year, month + 1, 1)
    return Period(date(year, month, 1), nxt - timedelta(days=1))


def quarter(year: int, q: int) -> Period:
    """Calendar quarter ``q`` (1..4)."""
    if not 1 <= q <= 4:
        raise ValueError(f"quarter must be 1..4, not {q}")
    return Period(calendar_month(year, 3 * q - 2).start, calendar_month(year, 3 * q).end)


def year_to_date(until: date) -> Period:
    """1 January of ``until``'s year to ``until`` (e.g. the 9-month report to 30/9)."""
    return Period(date(until.year, 1, 1), until)


def rolling(days: int, today: date) -> Period:
    """The last ``days`` days, ending with ``today``."""
    if days < 1:
        raise ValueError("a rolling window needs at least one day")
    return Period(today - timedelta(days=days - 1), today)


_MONTHLY = re.compile(r"^(?:monthly:)?(\d{4})-(\d{2})$")


def parse_period(text: str, *, today: date | None = None) -> Period:
    """Parse a period given on the command line.

    Accepted forms: ``2024-09-15..2024-10-14``; ``2024-10`` or
    ``monthly:2024-10`` (the city's monthly period); ``month:2024-10``
    (calendar month); ``week:2025-09-12`` (the Friday–Thursday week containing
    that day); ``quarter:2025-Q3``; ``ytd:2025-09-30``; ``7d`` / ``30d``
    (rolling, ending ``today``).
    """
    text = text.strip()
    try:
        if ".." in text:
            a, b = text.split("..", 1)
            return Period(date.fromisoformat(a), date.fromisoformat(b))
        if m := _MONTHLY.match(text):
            return monthly_report(int(m[1]), int(m[2]))
        kind, _, arg = text.partition(":")
        if kind == "month":
            y, mo = arg.split("-")
            return calendar_month(int(y), int(mo))
        if kind == "week":
            return week(date.fromisoformat(arg))
        if kind == "quarter":
            y, q = arg.upper().split("-Q")
            return quarter(int(y), int(q))
        if kind == "ytd":
            return year_to_date(date.fromisoformat(arg))
        if re.fullmatch(r"\d+d", text):
            return rolling(int(text[:-1]), today or datetime.now(VN_TZ).date())
    except ValueError as exc:
        raise ValueError(f"bad period {text!r}: {exc}") from None
    raise ValueError(
        f"bad period {text!r}: use FROM..TO (ISO dates), YYYY-MM (monthly report), "
        "month:YYYY-MM, week:YYYY-MM-DD, quarter:YYYY-QN, ytd:YYYY-MM-DD or Nd"
    )
