"""What the report forms share: the report's figures by unit, names, orders, labels.

One definition of "the units" of a level is used by every sentence that
prints ``x/y đơn vị`` (payments, digitization, e-signed results, the units
that did not do something): :meth:`ReportView.counted`, the units that
received dossiers of online services in the period or took an online payment
anyway — the denominator the city prints for online payments (11/18, 13/15,
130/217 in tháng 10/2024) and for digitization (18/18, 15/15, 214/217). A
department without any dossier of an online service in the month (the city
inspectorate in tháng 10/2024) is in the appendix tables, not in these counts.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from typing import Any, Final

from dossier_stream.core.formatting import format_count, format_date
from dossier_stream.core.periods import Period, monthly_report
from dossier_stream.core.registry import Unit, UnitRegistry
from dossier_stream.reports.document import Rate

__all__ = [
    "LEVEL_WORDS",
    "PREFIX",
    "Report",
    "ReportView",
    "count_text",
    "month_label",
    "order_key",
    "period_label",
    "previous_month",
    "short_name",
]

Report = dict[str, Any]

PREFIX: Final = "Ủy ban nhân dân "
LEVEL_WORDS: Final = {
    "department": ("các Sở, ngành", "cấp sở, ban ngành", "Cấp sở", "sở, ban ngành"),
    "district": ("các quận, huyện", "cấp quận huyện", "Cấp huyện", "quận huyện"),
    "commune": ("các xã, phường, thị trấn", "cấp phường, xã", "Cấp xã", "xã phường"),
}
"""Per level: the subject in prose, the level in prose, the level at a line's start, the
level after ``x/y`` (seed 001: ``05/19 sở, ban ngành``)."""


def period_label(period: Period) -> str:
    """``tháng 10/2024`` for a monthly report period, else ``từ ngày … đến ngày …``."""
    month = period.end.month
    if period == monthly_report(period.end.year, month):
        return f"tháng {month}/{period.end.year}"
    return f"từ ngày {format_date(period.start)} đến ngày {format_date(period.end)}"


def month_label(period: Period) -> str:
    """``tháng 09/2024`` (two-digit month, as seed 000 writes a compared month) for a
    monthly report period, else :func:`period_label`."""
    if period == monthly_report(period.end.year, period.end.month):
        return f"tháng {period.end.month:02d}/{period.end.year}"
    return period_label(period)


def previous_month(period: Period) -> Period | None:
    """The monthly report period before ``period``, if ``period`` is one; else ``None``."""
    year, month = period.end.year, period.end.month
    if period != monthly_report(year, month):
        return None
    return monthly_report(year - (month == 1), 12 if month == 1 else month - 1)


def count_text(n: int) -> str:
    """A count inside a sentence: two digits under ten (``02 kết quả``, as seed 001 writes),
    else with a dot for thousands (``2.873``), the same as in every table."""
    return f"{n:02d}" if 0 <= n < 10 else format_count(n)


def order_key(*rates: Rate) -> tuple[float, ...]:
    """Sort key: exact rates, highest first; no dossiers last."""
    return tuple(-(r.numerator / r.denominator) if r.denominator else 1.0 for r in rates)


def short_name(unit: Unit) -> str:
    """``Ủy ban nhân dân huyện An Dương`` → ``Huyện An Dương`` (group captions)."""
    name = unit.name.removeprefix(PREFIX)
    return name[:1].upper() + name[1:]


class ReportView:
    """Report figures by unit, with the registry for names and districts."""

    def __init__(self, report: Report, registry: UnitRegistry) -> None:
        self.report, self.registry = report, registry
        self.period = Period(
            date.fromisoformat(report["period"]["from"]), date.fromisoformat(report["period"]["to"])
        )
        listed = report["indicators"]["online_submission"]["units"]
        self.units = [registry.get(code) for code in listed]
        self.levels = [lvl for lvl in ("department", "district", "commune") if self.of(lvl)]

    @property
    def label(self) -> str:
        """``tháng 10/2024``."""
        return period_label(self.period)

    def of(self, level: str) -> list[Unit]:
        """The listed units of ``level``, in the report's order."""
        return [u for u in self.units if u.level == level]

    def fig(self, key: str, code: str) -> tuple[int, int]:
        """``(numerator, denominator)`` of indicator ``key`` for unit ``code``."""
        f = self.report["indicators"][key]["units"][code]
        return f["numerator"], f["denominator"]

    def rate(self, key: str, code: str) -> Rate:
        """The unit's rate of indicator ``key``."""
        return Rate(*self.fig(key, code))

    def counted(self, level: str) -> list[Unit]:
        """The units of ``level`` every ``x/y đơn vị`` counts among (module docstring)."""
        paying: dict[str, int] = self.report["online_payment_transactions"]["units"]
        return [
            u
            for u in self.of(level)
            if self.fig("online_submission_of_online_services", u.code)[1] or paying.get(u.code)
        ]

    def late(self, code: str) -> int:
        """The unit's overdue dossiers: completed past due plus open past due at the end."""
        opd: dict[str, int] = self.report["open_past_due"]
        return self.fig("overdue", code)[0] + opd.get(code, 0)

    def sum_rate(self, key: str, units: Iterable[Unit]) -> Rate:
        """The rate of ``key`` over ``units`` (sums of numerators and denominators)."""
        pairs = [self.fig(key, u.code) for u in units]
        return Rate(sum(p[0] for p in pairs), sum(p[1] for p in pairs))
