"""Comparisons with the previous period, as the city writes them.

Seed 000 closes its online-payment sentence with ``tăng 3.018 giao dịch so với
tháng 09/2024``; seed 001 with ``tăng 3486 giao dịch và giảm 1.488.491.563 đồng
so với tháng 8/2023 là 127 đơn vị phát sinh 7094 giao dịch … với tổng số tiền
2.237.596.462 đồng``. The monthly form writes the same ``tăng/giảm N … so với
tháng MM/YYYY`` for dossiers received, received online, online payment
transactions and amounts, and dossiers completed on time (count, and the rate's
change in percentage points).

A figure is compared only when the previous month has it: a previous month
without dossiers received, online payments or completed dossiers (before the
store's data begins, or a simulated month's warm-up backlog) leaves that
sentence out rather than print ``tăng 15.252 giao dịch so với … 0 giao dịch``.

:func:`comparison` gives those figures as JSON (``previous_period`` of
``report --format json``): every number of a sentence is in it.
"""

from __future__ import annotations

from typing import Any

from dossier_stream.core.formatting import format_count, format_rate_hundredths, rate_hundredths
from dossier_stream.core.periods import Period
from dossier_stream.reports.view import Report, month_label

__all__ = ["change", "comparable", "comparison", "point_change"]


def comparable(previous: Report | None) -> bool:
    """Whether a previous period's report has anything to compare with (dossiers received)."""
    return previous is not None and previous["received"]["city"] > 0


def change(now: int, before: int, unit: str) -> str:
    """``tăng 1.234 hồ sơ`` / ``giảm 56 giao dịch`` / ``không thay đổi``."""
    diff = now - before
    if diff == 0:
        return "không thay đổi"
    return f"{'tăng' if diff > 0 else 'giảm'} {format_count(abs(diff))} {unit}".rstrip()


def point_change(now: tuple[int, int], before: tuple[int, int]) -> str:
    """The change of a rate in percentage points: ``tăng 0,3 điểm phần trăm``.

    Both rates are rounded as printed first, so the change is the difference
    of the printed figures.
    """
    a, b = rate_hundredths(*now), rate_hundredths(*before)
    if a is None or b is None or a == b:
        return "không thay đổi"
    text = format_rate_hundredths(abs(a - b)).removesuffix("%")
    return f"{'tăng' if a > b else 'giảm'} {text} điểm phần trăm"


def _figures(report: Report) -> dict[str, Any]:
    pay = report["online_payment_transactions"]
    on_time = report["indicators"]["on_time"]["city"]
    return {
        "received": report["received"]["city"],
        "received_online": report["indicators"]["online_submission"]["city"]["numerator"],
        "payment_units": len(pay["units"]),
        "payment_transactions": pay["count"],
        "payment_amount_vnd": pay["amount_vnd"],
        "on_time": on_time["numerator"],
        "completed": on_time["denominator"],
    }


def comparison(report: Report, previous: Report) -> dict[str, Any]:
    """The figures of both periods and their differences, for the JSON output."""
    now, before = _figures(report), _figures(previous)
    return {
        "period": previous["period"],
        "label": month_label(Period.from_json(previous["period"])),
        "figures": before,
        "change": {key: now[key] - before[key] for key in now},
    }
