"""``dossier-stream report``: the report of a period, read from ClickHouse."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import Any

import click

from dossier_stream.cli._common import (
    PERIOD_OPTIONS,
    check_period_options,
    check_template,
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
@click.option(
    "--allow-empty",
    is_flag=True,
    help="Print the report even when the store has no figures for the period (all zeros).",
)
def report(
    date_from: datetime | None, date_to: datetime | None, period: str | None, fmt: str,
    template: str, out: Path | None, rolling: str | None, as_of: datetime | None,
    allow_empty: bool,
) -> None:  # fmt: skip
    """Print the report of a period from ClickHouse.

    The store is DOSSIER_CLICKHOUSE_DSN; when it is not set and the default
    store was never created, the store of the last ``dossier-stream demo`` in
    this folder. A period without any figure is an error (exit 1, with the
    days the store does have) unless --allow-empty is given.

    \b
    Examples:
      dossier-stream report --period 2024-10                  # tháng 10/2024, as printed
      dossier-stream report --period 2024-10 --format xlsx --out t10.xlsx
      dossier-stream report --from 2025-09-12 --to 2025-09-18 # the weekly notice
      dossier-stream report --rolling 7d --template weekly    # live: the last 7 days
    """

    check_period_options(date_from, date_to, period, rolling=rolling, as_of=as_of)
    if not (rolling or period or date_from):
        raise click.UsageError(
            "Chọn kỳ báo cáo: --period 2024-10, --from NGÀY --to NGÀY, hoặc --rolling 7d|30d|ptd."
        )
    settings = settings_or_exit()
    registry, _, _ = core_or_exit(settings)
    if rolling:
        chosen = _rolling(rolling, as_of.date() if as_of else None)
    else:
        chosen = period_from(date_from, date_to, period, [])
    check_template(template, chosen)
    store = store_or_exit(settings, find_demo=True)
    try:
        _report(store, registry, chosen, allow_empty, (fmt, out, template))
    finally:
        store.close()  # chdb: one path per process, released for the next command


def _report(
    store: Any, registry: Any, chosen: Any, allow_empty: bool, output: tuple[str, Path | None, str]
) -> None:
    from dossier_stream.reports.view import previous_month  # noqa: PLC0415
    from dossier_stream.stream.runner import (  # noqa: PLC0415
        previous_from_store,
        report_from_store,
    )

    fmt, out, template = output
    # the period's own rows first: the whole store's span is read only when it has none
    if not allow_empty and not store.has_counts(chosen.start, chosen.end):
        days = store.day_span()
        if not days or days[0] > chosen.end or days[-1] < chosen.start:
            where = (
                f"kho chỉ có số liệu từ {min(days):%d/%m/%Y} đến {max(days):%d/%m/%Y}"
                if days
                else "kho dữ liệu trống (chưa có worker hay demo nào ghi vào)"
            )
            raise click.ClickException(
                f"Không có số liệu nào trong kỳ {chosen.start:%d/%m/%Y}–{chosen.end:%d/%m/%Y}: "
                f"{where}.\nKiểm tra DOSSIER_CLICKHOUSE_DSN và kỳ báo cáo, hoặc thêm "
                "--allow-empty để in báo cáo toàn số 0."
            )
    previous = None
    if before := previous_month(chosen):  # the monthly form compares with the month before
        previous = previous_from_store(store, registry, before)
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
