"""From per-(unit, day) counters to the report structure every command prints.

:func:`build_report` is pure: counters, the unit registry and a period in,
a JSON-ready ``dict`` out. Every figure is a numerator and a denominator;
rates and their Vietnamese text are derived from them
(:mod:`dossier_stream.core.formatting`), and level and city figures are sums of
the unit figures, so the three always agree.

Decisions where the specification is silent:

* Units listed are those that exist on at least one day of the period, plus
  any registered unit that has counts in the period although its era ended
  (a dossier received before a reorganisation and completed after it still
  counts for its unit). Counts of unit codes absent from the registry are
  not in any total; they are listed under ``unregistered_units``.
* A level appears only if it has units in the period (no ``district`` level
  after 1/7/2025).
* ``rate`` is the percent rounded half-up to two decimals (``87.62``);
  ``null`` with ``"no_dossiers": true`` when the denominator is 0, and
  ``rate_text`` then prints ``0%`` as the official tables do.
* ``units_meeting_target``: ``[met, total]`` per level, where ``total`` is
  every unit of the level in the period and a unit with no dossiers does not
  meet its target. The comparison uses the exact fraction, not the rounded
  rate. For ``synchronisation`` only units with a report for the period are
  assessed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any, Final

from dossier_stream.core.counters import CounterKey
from dossier_stream.core.formatting import format_rate, meets_target, rate_percent
from dossier_stream.core.periods import Period
from dossier_stream.core.registry import LEVELS, Unit, UnitRegistry

__all__ = [
    "INDICATORS",
    "Indicator",
    "UnitTotals",
    "build_report",
    "report_from_totals",
    "sum_counters",
]


@dataclass(frozen=True, slots=True)
class Indicator:
    """One indicator of ``indicators.md``: which counters make it."""

    key: str
    numerator: str
    denominator: str
    target: str | None
    title: str


INDICATORS: Final[tuple[Indicator, ...]] = (
    Indicator(
        "online_submission",
        "received_online",
        "received",
        ">=60",
        "Tỷ lệ hồ sơ trực tuyến trên tổng hồ sơ",
    ),
    Indicator(
        "online_submission_of_online_services",
        "received_oos_online",
        "received_oos",
        None,
        "Tỷ lệ hồ sơ trực tuyến trên tổng hồ sơ của các DVCTT",
    ),
    Indicator(
        "online_payment",
        "received_fee_paid_online",
        "received_fee",
        ">=60",
        "Tỷ lệ hồ sơ thanh toán trực tuyến",
    ),
    Indicator(
        "cashless_fee",
        "received_fee_paid_noncash",
        "received_fee_paid",
        None,
        "Thu phí, lệ phí không dùng tiền mặt",
    ),
    Indicator(
        "synchronisation", "received", "reported", "=100", "Tỷ lệ hồ sơ được cập nhật trên hệ thống"
    ),
    Indicator(
        "digitization_components",
        "completed_component",
        "completed",
        None,
        "Có file thành phần hồ sơ đính kèm",
    ),
    Indicator(
        "digitization_result", "completed_result", "completed", None, "Có file kết quả đính kèm"
    ),
    Indicator(
        "digitization",
        "completed_both",
        "completed",
        "=100",
        "Có file thành phần hồ sơ và file KQ đính kèm",
    ),
    Indicator(
        "digital_reuse", "received_reused", "received", ">=50", "Tỷ lệ tái sử dụng dữ liệu số hóa"
    ),
    Indicator(
        "on_time",
        "completed_on_time",
        "completed",
        None,
        "Tỷ lệ hồ sơ giải quyết trước hạn, đúng hạn",
    ),
    Indicator("overdue", "completed_overdue", "completed", None, "Tỷ lệ hồ sơ giải quyết quá hạn"),
    Indicator(
        "first_time_valid",
        "completed_first_time_valid",
        "completed",
        None,
        "Tỷ lệ hồ sơ hợp lệ ngay từ lần nộp đầu tiên",
    ),
    Indicator(
        "online_result",
        "completed_online_result",
        "completed",
        None,
        "Tỷ lệ hồ sơ trực tuyến có kết quả điện tử trên hồ sơ đã giải quyết",
    ),
    Indicator(
        "feedback_on_time",
        "feedback_resolved_on_time",
        "feedback_resolved",
        "=100",
        "Tỷ lệ phản ánh, kiến nghị xử lý đúng hạn",
    ),
)

UnitTotals = dict[str, dict[str, int]]
"""``{unit_code: {counter: total}}``."""


def sum_counters(
    counters: Mapping[CounterKey, int] | Iterable[tuple[CounterKey, int]], period: Period
) -> UnitTotals:
    """Sum per-(unit, day, counter) values over the days of ``period``."""
    items = counters.items() if isinstance(counters, Mapping) else counters
    out: UnitTotals = {}
    for (unit, day, name), value in items:
        if day in period:
            per_unit = out.setdefault(unit, {})
            per_unit[name] = per_unit.get(name, 0) + value
    return out


def _figure(num: int, den: int) -> dict[str, Any]:
    fig: dict[str, Any] = {
        "numerator": num,
        "denominator": den,
        "rate": rate_percent(num, den),
        "rate_text": format_rate(num, den),
    }
    if den == 0:
        fig["no_dossiers"] = True
    return fig


def _listed_units(registry: UnitRegistry, period: Period, totals: UnitTotals) -> list[Unit]:
    units = registry.units_in(period.start, period.end)
    present = {u.code for u in units}
    extra = [u for u in registry if u.code in totals and u.code not in present]
    return units + extra


def _indicator(
    ind: Indicator,
    units: list[Unit],
    totals: UnitTotals,
    reported: Mapping[str, int],
) -> dict[str, Any]:
    per_unit: dict[str, Any] = {}
    level_sums: dict[str, list[int]] = {}
    meeting: dict[str, list[int]] = {}
    for unit in units:
        t = totals.get(unit.code, {})
        num = t.get(ind.numerator, 0)
        if ind.key == "synchronisation":
            if unit.code not in reported:
                continue
            den = max(reported[unit.code], num)
        else:
            den = t.get(ind.denominator, 0)
        per_unit[unit.code] = {"name": unit.name, "level": unit.level, **_figure(num, den)}
        sums = level_sums.setdefault(unit.level, [0, 0])
        sums[0] += num
        sums[1] += den
        if ind.target is not None:
            met = meeting.setdefault(unit.level, [0, 0])
            met[0] += bool(meets_target(num, den, ind.target))
            met[1] += 1
    levels = {lvl: _figure(*level_sums[lvl]) for lvl in LEVELS if lvl in level_sums}
    city_num = sum(s[0] for s in level_sums.values())
    city_den = sum(s[1] for s in level_sums.values())
    return {
        "title": ind.title,
        "city": _figure(city_num, city_den),
        "levels": levels,
        "units": per_unit,
        "target": ind.target,
        "units_meeting_target": (
            {lvl: meeting[lvl] for lvl in LEVELS if lvl in meeting}
            if ind.target is not None
            else None
        ),
    }


def _count_section(units: list[Unit], totals: UnitTotals, counter: str) -> dict[str, Any]:
    levels: dict[str, int] = {}
    with_any: dict[str, list[int]] = {}
    per_unit: dict[str, int] = {}
    for unit in units:
        n = totals.get(unit.code, {}).get(counter, 0)
        per_unit[unit.code] = n
        levels[unit.level] = levels.get(unit.level, 0) + n
        w = with_any.setdefault(unit.level, [0, 0])
        w[0] += n > 0
        w[1] += 1
    return {
        "city": sum(levels.values()),
        "levels": {lvl: levels[lvl] for lvl in LEVELS if lvl in levels},
        "units": per_unit,
        "units_with_any": {lvl: with_any[lvl] for lvl in LEVELS if lvl in with_any},
    }


def _payments(units: list[Unit], totals: UnitTotals) -> dict[str, Any]:
    """Online payment transactions; ``units_with_transactions`` is ``[paying, offering]``.

    ``offering`` counts the units that received dossiers of online services
    (or took an online payment anyway) — the units that could take online
    payments; the city prints "11/18 đơn vị" with that denominator.
    """
    by_method: dict[str, dict[str, int]] = {}
    for method in ("online", "cashless", "cash"):
        by_method[method] = {
            "count": sum(totals.get(u.code, {}).get(f"payment_tx_{method}", 0) for u in units),
            "amount_vnd": sum(
                totals.get(u.code, {}).get(f"payment_amount_{method}", 0) for u in units
            ),
        }
    online = _count_section(units, totals, "payment_tx_online")
    with_tx: dict[str, list[int]] = {}
    for unit in units:
        paying = online["units"][unit.code] > 0
        offering = paying or totals.get(unit.code, {}).get("received_oos", 0) > 0
        counts = with_tx.setdefault(unit.level, [0, 0])
        counts[0] += paying
        counts[1] += offering
    return {
        **by_method["online"],
        "levels": online["levels"],
        "units": {code: n for code, n in online["units"].items() if n},
        "units_with_transactions": {lvl: with_tx[lvl] for lvl in LEVELS if lvl in with_tx},
        "by_method": by_method,
    }


def _ahead(units: list[Unit], totals: UnitTotals) -> dict[str, Any]:
    def fig(days: int, done: int) -> dict[str, Any]:
        avg = None if done == 0 else round(days / done, 2)
        return {"working_days": days, "completed": done, "average": avg}

    per_unit = {}
    levels: dict[str, list[int]] = {}
    for unit in units:
        t = totals.get(unit.code, {})
        days, done = t.get("completed_ahead_working_days", 0), t.get("completed", 0)
        per_unit[unit.code] = fig(days, done)
        acc = levels.setdefault(unit.level, [0, 0])
        acc[0] += days
        acc[1] += done
    return {
        "city": fig(sum(a[0] for a in levels.values()), sum(a[1] for a in levels.values())),
        "levels": {lvl: fig(*levels[lvl]) for lvl in LEVELS if lvl in levels},
        "units": per_unit,
    }


def build_report(
    counters: Mapping[CounterKey, int] | Iterable[tuple[CounterKey, int]],
    registry: UnitRegistry,
    period: Period,
    *,
    reported_totals: Mapping[tuple[str, date, date], int] | None = None,
    open_past_due: Mapping[str, int] | None = None,
) -> dict[str, Any]:
    """Build the report of ``period``.

    Args:
        counters: per-(unit, day, counter) values; days outside the period
            are ignored.
        registry: the unit registry.
        period: the report period.
        reported_totals: ``{(unit_code, period_start, period_end): received_total}``
            from ``unit.reported_totals`` events; only reports for exactly
            this period count.
        open_past_due: ``{unit_code: n}`` open dossiers past their effective
            due time at the end of the period.

    Returns:
        The JSON-ready report structure.
    """
    return report_from_totals(
        sum_counters(counters, period),
        registry,
        period,
        reported_totals=reported_totals,
        open_past_due=open_past_due,
    )


def report_from_totals(
    totals: UnitTotals,
    registry: UnitRegistry,
    period: Period,
    *,
    reported_totals: Mapping[tuple[str, date, date], int] | None = None,
    open_past_due: Mapping[str, int] | None = None,
) -> dict[str, Any]:
    """Build the report of ``period`` from counters already summed over its days.

    :func:`build_report` is this on :func:`sum_counters` of its counters; a
    store that sums them itself (one row per unit and counter) passes them
    here. The days play no further part: a dossier counts for the unit named
    in its events, and the units listed are chosen from the registry.

    Args:
        totals: ``{unit_code: {counter: total}}`` over the days of ``period``,
            as :func:`sum_counters` gives them (a counter whose days sum to 0
            may be listed with 0).
        registry: the unit registry.
        period: the report period.
        reported_totals: as for :func:`build_report`.
        open_past_due: as for :func:`build_report`.

    Returns:
        The JSON-ready report structure.
    """
    units = _listed_units(registry, period, totals)
    listed = {u.code for u in units}
    reported = {
        unit: n
        for (unit, start, end), n in (reported_totals or {}).items()
        if start == period.start and end == period.end
    }
    received = _count_section(units, totals, "received")
    opd = open_past_due or {}
    return {
        "period": period.to_json(),
        "units_in_period": {
            lvl: sum(1 for u in units if u.level == lvl)
            for lvl in LEVELS
            if any(u.level == lvl for u in units)
        },
        "indicators": {ind.key: _indicator(ind, units, totals, reported) for ind in INDICATORS},
        "received": {
            "city": received["city"],
            "levels": received["levels"],
            "units": received["units"],
        },
        "online_payment_transactions": _payments(units, totals),
        "e_signed": _count_section(units, totals, "completed_e_signed"),
        "average_days_ahead": _ahead(units, totals),
        "open_past_due": {u.code: opd[u.code] for u in units if opd.get(u.code)},
        "synchronisation_reports": {
            "units_reported": sorted(reported),
            "units_without_report": sorted(listed - set(reported)),
        },
        "unregistered_units": {code: t for code, t in sorted(totals.items()) if code not in listed},
    }
