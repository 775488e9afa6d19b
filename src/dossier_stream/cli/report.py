"""``dossier-stream report``: the report of a period, read from ClickHouse."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import Any

import click

from dossier_stream.cli._common import (
    PERIOD_OPTIONS,
    core_or_exit,
    emit_report,
    period_from,
    settings_or_exit,
    store_or_exit,
    with_options,
)

__all__ = ["report"]


@click.command("report")
@with_options(PERIOD_OPTIONS)
@click.option(
    "--rolling",
    type=click.Choice(["7d", "30d", "ptd"]),
    help="Live monitoring window ending today (Asia/Ho_Chi_Minh): the last 7 or 30 days, "
    "or the monthly report period to date. Instead of --from/--to/--period.",
)
@click.option(
    "--as-of",
    type=click.DateTime(["%Y-%m-%d"]),
    help="With --rolling: the last day of the window (default: today).",
)
def report(
    date_from: datetime | None, date_to: datetime | None, period: str | None, fmt: str,
    template: str, out: Path | None, rolling: str | None, as_of: datetime | None,
) -> None:  # fmt: skip
    """Print the report of a period from ClickHouse (zeros, not an error, when empty).

    \b
    Examples:
      dossier-stream report --period 2024-10                  # tháng 10/2024, as printed
      dossier-stream report --period 2024-10 --format xlsx --out t10.xlsx
      dossier-stream report --from 2025-09-12 --to 2025-09-18 # the weekly notice
      dossier-stream report --rolling 7d --template weekly    # live: the last 7 days
    """
    from dossier_stream.reports.view import previous_month  # noqa: PLC0415
    from dossier_stream.stream.runner import report_from_store  # noqa: PLC0415

    settings = settings_or_exit()
    registry, _, _ = core_or_exit(settings)
    if rolling:
        chosen = _rolling(rolling, as_of.date() if as_of else None)
    else:
        chosen = period_from(date_from, date_to, period, [])
    store = store_or_exit(settings)
    previous = None
    if before := previous_month(chosen):  # the monthly form compares with the month before
        previous = report_from_store(store, registry, before)
    emit_report(report_from_store(store, registry, chosen), registry, fmt, out, template, previous)


def _rolling(window: str, as_of: date | None) -> Any:
    from dossier_stream.core.periods import Period, monthly_report, rolling  # noqa: PLC0415
    from dossier_stream.core.workdays import VN_TZ  # noqa: PLC0415

    today = as_of or datetime.now(VN_TZ).date()
    if window == "ptd":
        month = today.month + (today.day >= 15)
        year = today.year + (month == 13)
        current = monthly_report(year, 1 if month == 13 else month)
        return Period(current.start, today)
    return rolling(int(window.rstrip("d")), today)
