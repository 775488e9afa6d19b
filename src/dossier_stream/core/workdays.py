"""Working-day calendar and due-time rule for Vietnamese administrative procedures.

The event contract says that when a ``dossier.received`` event has no ``due_at``,
the due time is the same local time of day on the Nth working day after the day of
reception, where N is ``processing_working_days``. Working days exclude Saturdays,
Sundays and Vietnamese public holidays, including the year's official day swaps.
All calendar logic is in ``Asia/Ho_Chi_Minh``.

Sources of non-working days, in order of precedence:

1. Day swaps (:class:`DaySwap`): the bundled ``data/vn_day_swaps.csv`` plus any
   province file. ``working_day`` makes a day a working day whatever it is otherwise
   (a worked Saturday, or a correction of the library); ``day_off`` makes it a day off.
2. Statutory holidays and their substitute days from the ``holidays`` library
   (Tết, Hùng Kings' day, 30/4, 1/5, 2/9 and the adjacent day, New Year's day).
3. Saturdays and Sundays.

Decisions:

* A reception on a working day counts that day, whatever the hour: a dossier
  received at 21:00 or at 06:30 on a working day is due N working days later at
  21:00 or 06:30. There is no office-hours cut-off in the contract.
* A reception on a non-working day counts from 08:00 of the next working day W,
  and the due time is 08:00 of the Nth working day after W.
* N = 0 means due at reception (or at W 08:00 for a non-working day reception).
* Due times are returned in :data:`VN_TZ` whatever the offset of ``received_at``.
"""

from __future__ import annotations

import csv
import threading
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import MAXYEAR, MINYEAR, date, datetime, time
from importlib import resources
from pathlib import Path
from typing import Literal, get_args
from zoneinfo import ZoneInfo

import holidays

__all__ = ["VN_TZ", "CalendarError", "DaySwap", "SwapKind", "WorkCalendar"]

VN_TZ: ZoneInfo = ZoneInfo("Asia/Ho_Chi_Minh")

SwapKind = Literal["day_off", "working_day"]
_KINDS: tuple[str, ...] = get_args(SwapKind)
_HEADER = ("date", "kind", "note")
_BUNDLED_FILE = "vn_day_swaps.csv"
_OFFICE_START = time(8, 0)
_WEEKEND_NAMES = {5: "Saturday", 6: "Sunday"}
_DAYS_CACHE = 16_384  # answers of add_working_days, of working_days_between kept (≈ 3 MB each)


class CalendarError(ValueError):
    """A day-swaps file cannot be used; the message names file, line, problem and fix."""


@dataclass(frozen=True, slots=True)
class DaySwap:
    """One official change to the working-day calendar.

    Attributes:
        day: The calendar day concerned (local, Asia/Ho_Chi_Minh).
        kind: ``"working_day"`` if the day is worked (e.g. a swapped Saturday),
            ``"day_off"`` if an ordinary weekday is not worked.
        note: Why, citing the official notice; used as the day-off reason.
    """

    day: date
    kind: SwapKind
    note: str

    def __post_init__(self) -> None:
        if isinstance(self.day, datetime) or not isinstance(self.day, date):
            raise ValueError(f"DaySwap.day must be a date, got {self.day!r}")
        if self.kind not in _KINDS:
            raise ValueError(f"DaySwap.kind must be one of {_KINDS}, got {self.kind!r}")


@dataclass(frozen=True, slots=True)
class _Year:
    """Precomputed calendar of one year."""

    working: tuple[int, ...]  # sorted ordinals of the working days
    off: dict[int, str]  # ordinal of each non-working day -> reason


class WorkCalendar:
    """Working days of Vietnamese state agencies, with per-year caches.

    Each year is computed once, on first use, into a sorted tuple of working days,
    so lookups are O(1) and :meth:`add_working_days` is O(log n) plus one step per
    year crossed. Instances are cheap to keep and safe to share between threads.
    """

    def __init__(self, swaps: Iterable[DaySwap] = (), *, country: str = "VN") -> None:
        """Create a calendar.

        Args:
            swaps: Day swaps; a later swap for the same day replaces an earlier one.
            country: Country code for the ``holidays`` library.

        Raises:
            ValueError: The ``holidays`` library has no calendar for ``country``.
        """
        self._swaps: dict[date, DaySwap] = {s.day: s for s in swaps}
        # Built now so that an unknown country fails here, not on the first event.
        try:
            self._holidays = holidays.country_holidays(country, years=(), language="en_US")
        except NotImplementedError as exc:
            raise ValueError(f"no holiday calendar for country {country!r}: {exc}") from exc
        self._years: dict[int, _Year] = {}
        self._lock = threading.Lock()
        # the answers of add_working_days by (day, n) and of working_days_between by
        # (start, end): a stream asks the same few pairs again and again (reception day
        # and working days, completion day and due day), each answer a few bisections
        self._added: dict[tuple[date, int], date] = {}
        self._between: dict[tuple[date, date], int] = {}

    @classmethod
    def default(cls) -> WorkCalendar:
        """Return a calendar with the bundled Vietnamese day swaps."""
        return cls(_bundled_swaps())

    @classmethod
    def from_file(cls, path: str | Path, *, include_default: bool = True) -> WorkCalendar:
        """Return a calendar with the day swaps of a province file.

        Args:
            path: A CSV file in the format of the bundled ``vn_day_swaps.csv``.
            include_default: If true the file extends the bundled swaps (its entries
                replace bundled entries for the same day); if false it replaces them,
                and must then list the worked Saturdays of the official swaps itself
                (the ``holidays`` library has the day-off half of some swaps only).

        Raises:
            CalendarError: The file cannot be read or has a bad line.
        """
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise CalendarError(
                f"{path}: cannot read the day-swaps file ({exc}). Fix: check the path "
                "in the configuration and save the file as UTF-8."
            ) from exc
        own = _parse_swaps(text, str(path))
        return cls([*_bundled_swaps(), *own] if include_default else own)

    def is_working_day(self, day: date) -> bool:
        """Return whether ``day`` is a working day."""
        return day.toordinal() not in self._year(day.year).off

    def day_off_reason(self, day: date) -> str | None:
        """Return why ``day`` is not worked, or None for a working day.

        The reason is the swap note, the holiday name (English), ``"Saturday"`` or
        ``"Sunday"``, in that order of precedence.
        """
        return self._year(day.year).off.get(day.toordinal())

    def next_working_day(self, day: date) -> date:
        """Return the first working day strictly after ``day``."""
        return self.add_working_days(day, 1)

    def add_working_days(self, day: date, n: int) -> date:
        """Return the Nth working day strictly after ``day``.

        Args:
            day: The starting day; it need not be a working day.
            n: Number of working days, >= 0. For 0 the result is ``day`` itself if
                it is a working day, else the next working day.

        Raises:
            ValueError: ``n`` is negative.
        """
        pair = (day, n)
        cached = self._added.get(pair)
        if cached is not None:
            return cached
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        ordinal = day.toordinal()
        year = day.year
        days = self._year(year).working
        if n == 0:
            i, remaining = bisect_left(days, ordinal), 0
        else:
            i, remaining = bisect_right(days, ordinal), n - 1
        while i + remaining >= len(days):
            remaining -= len(days) - i
            year += 1
            days, i = self._year(year).working, 0
        if len(self._added) >= _DAYS_CACHE:  # bounded: forget all at once
            self._added.clear()
        added = self._added[pair] = date.fromordinal(days[i + remaining])
        return added

    def working_days_between(self, start: date, end: date) -> int:
        """Return the number of working days in ``(start, end]``.

        Negative (minus the count in ``(end, start]``) when ``end`` is before
        ``start``; e.g. ``working_days_between(today, due_day)`` is the number of
        working days left.
        """
        pair = (start, end)
        count = self._between.get(pair)
        if count is not None:
            return count
        if end < start:
            return -self.working_days_between(end, start)
        count = sum(len(self._year(y).working) for y in range(start.year, end.year))
        count += bisect_right(self._year(end.year).working, end.toordinal())
        count -= bisect_right(self._year(start.year).working, start.toordinal())
        if len(self._between) >= _DAYS_CACHE:  # bounded: forget all at once
            self._between.clear()
        self._between[pair] = count
        return count

    def due_at(self, received_at: datetime, working_days: int) -> datetime:
        """Return the due time of a dossier, per the event contract.

        Args:
            received_at: Reception time; must be timezone-aware.
            working_days: ``processing_working_days`` N, >= 0.

        Returns:
            An aware datetime in :data:`VN_TZ`: the Nth working day after the day of
            reception at the local time of reception, or, if reception was on a
            non-working day, the Nth working day after the next working day, at 08:00.

        Raises:
            ValueError: ``received_at`` is naive or ``working_days`` is negative.
        """
        if received_at.tzinfo is None or received_at.utcoffset() is None:
            raise ValueError(f"received_at must be timezone-aware, got {received_at!r}")
        if working_days < 0:
            raise ValueError(f"working_days must be >= 0, got {working_days}")
        local = received_at.astimezone(VN_TZ)
        day = local.date()
        if self.is_working_day(day):
            start, at = day, local.time()
        else:
            start, at = self.next_working_day(day), _OFFICE_START
        return datetime.combine(self.add_working_days(start, working_days), at, tzinfo=VN_TZ)

    def _year(self, year: int) -> _Year:
        cached = self._years.get(year)
        if cached is not None:
            return cached
        if not MINYEAR <= year <= MAXYEAR:
            raise OverflowError(f"year {year} is out of the supported range")
        with self._lock:
            cached = self._years.get(year)
            if cached is None:
                cached = self._years[year] = self._build_year(year)
        return cached

    def _build_year(self, year: int) -> _Year:
        # a Mapping, not the dict subclass it is: compiled by mypyc, ``in`` on a dict
        # is the C dict lookup, which skips the library's ``__contains__`` that fills
        # a year in on first use (the holidays would be silently missing)
        hol: Mapping[date, str] = self._holidays
        # Populate the neighbouring years too, in case a substitute day spills over.
        for y in range(max(year - 1, MINYEAR), min(year + 1, MAXYEAR) + 1):
            _ = date(y, 1, 1) in hol
        names = {d: name for d, name in hol.items() if d.year == year}
        working: list[int] = []
        off: dict[int, str] = {}
        for ordinal in range(date(year, 1, 1).toordinal(), date(year, 12, 31).toordinal() + 1):
            day = date.fromordinal(ordinal)
            swap = self._swaps.get(day)
            if swap is not None:
                reason = swap.note if swap.kind == "day_off" else None
            else:
                reason = names.get(day) or _WEEKEND_NAMES.get(day.weekday())
            if reason is None:
                working.append(ordinal)
            else:
                off[ordinal] = reason
        return _Year(tuple(working), off)


def _parse_swaps(text: str, source: str) -> list[DaySwap]:
    """Parse a day-swaps CSV text.

    Format: a header ``date,kind,note``, then one swap per line: ISO date,
    ``day_off`` or ``working_day``, and a non-empty note (quoted if it contains a
    comma). Blank lines and lines starting with ``#`` are ignored. Each record must
    fit on one line.

    Args:
        text: The file contents.
        source: The file name, used in error messages.

    Raises:
        CalendarError: A line is malformed, or a day is listed twice.
    """
    swaps: list[DaySwap] = []
    seen: dict[date, int] = {}
    header_seen = False

    def fail(lineno: int, problem: str, fix: str) -> CalendarError:
        return CalendarError(f"{source}, line {lineno}: {problem}. Fix: {fix}.")

    for lineno, line in enumerate(text.removeprefix("\ufeff").splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        try:
            fields = [f.strip() for f in next(csv.reader([stripped], strict=True))]
        except csv.Error as exc:
            raise fail(
                lineno,
                f"not a valid CSV line ({exc})",
                'put a note with commas or quotes in "double quotes", doubling inner quotes',
            ) from exc
        if not header_seen:
            if tuple(f.lower() for f in fields) != _HEADER:
                raise fail(
                    lineno,
                    f"expected the header 'date,kind,note', got {stripped!r}",
                    "make 'date,kind,note' the first line that is not a comment",
                )
            header_seen = True
            continue
        if len(fields) != 3:
            raise fail(
                lineno,
                f"expected 3 fields (date,kind,note), got {len(fields)}",
                'write date,kind,note and quote a note containing commas: "a, b"',
            )
        raw_day, kind, note = fields
        try:
            if len(raw_day) != 10:
                raise ValueError(raw_day)
            day = date.fromisoformat(raw_day)
        except ValueError:
            raise fail(
                lineno, f"bad date {raw_day!r}", "write a real date as YYYY-MM-DD, e.g. 2025-04-26"
            ) from None
        if kind not in _KINDS:
            raise fail(lineno, f"bad kind {kind!r}", "use 'day_off' or 'working_day'")
        if not note:
            raise fail(lineno, "empty note", "say what the day is and cite the official notice")
        if day in seen:
            raise fail(
                lineno,
                f"{day.isoformat()} is already listed on line {seen[day]}",
                "keep one line per day",
            )
        seen[day] = lineno
        swaps.append(DaySwap(day, "day_off" if kind == "day_off" else "working_day", note))
    if not header_seen:
        raise CalendarError(f"{source}: no header line. Fix: start the file with 'date,kind,note'.")
    return swaps


def _bundled_swaps() -> list[DaySwap]:
    resource = resources.files("dossier_stream") / "data" / _BUNDLED_FILE
    return _parse_swaps(
        resource.read_text(encoding="utf-8"), f"dossier_stream/data/{_BUNDLED_FILE}"
    )
