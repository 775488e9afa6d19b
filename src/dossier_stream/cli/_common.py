"""What the commands share: settings, the registry, the store, period options, the report.

Every helper turns a user-caused failure into a :class:`click.ClickException`
(one line, no traceback). Heavy modules are imported inside the helpers, so
``dossier-stream --help`` starts fast.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from dossier_stream.settings import ConfigError, Settings, load_settings

if TYPE_CHECKING:
    from dossier_stream.core.registry import UnitRegistry
    from dossier_stream.core.workdays import WorkCalendar

__all__ = [
    "CALENDAR_OPTION",
    "PERIOD_OPTIONS",
    "UNITS_OPTION",
    "calendar_or_exit",
    "check_period_options",
    "check_template",
    "core_or_exit",
    "demo_store_dsn",
    "emit_report",
    "period_from",
    "registry_or_exit",
    "settings_or_exit",
    "store_or_exit",
    "with_options",
]

UNITS_OPTION = click.option(
    "--units",
    "units_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    envvar="DOSSIER_UNITS_FILE",
    help="Unit registry CSV (see spec/units.md). Default: the bundled Hải Phòng registry. "
    "Env: DOSSIER_UNITS_FILE.",
)
CALENDAR_OPTION = click.option(
    "--calendar",
    "calendar_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    envvar="DOSSIER_CALENDAR_FILE",
    help="Extra official day swaps (CSV date,kind,note) on top of the bundled ones. "
    "Env: DOSSIER_CALENDAR_FILE.",
)


def registry_or_exit(units_file: Path | None) -> UnitRegistry:
    from dossier_stream.core.registry import RegistryError, UnitRegistry  # noqa: PLC0415

    try:
        return UnitRegistry.from_csv(units_file) if units_file else UnitRegistry.load_default()
    except RegistryError as exc:
        raise click.ClickException(str(exc)) from None


def calendar_or_exit(calendar_file: Path | None) -> WorkCalendar:
    from dossier_stream.core.workdays import CalendarError, WorkCalendar  # noqa: PLC0415

    try:
        return WorkCalendar.from_file(calendar_file) if calendar_file else WorkCalendar.default()
    except CalendarError as exc:
        raise click.ClickException(str(exc)) from None


_LOG = logging.getLogger("dossier_stream")


def settings_or_exit(**overrides: Any) -> Settings:
    from dossier_stream.cli.errors import debug_enabled, note_options  # noqa: PLC0415

    note_options()
    if debug_enabled():
        overrides["log_level"] = "DEBUG"
    try:
        settings = load_settings(**overrides)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    for noisy in ("aiokafka", "faust", "mode"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.root.level))
    return settings


def core_or_exit(settings: Settings) -> tuple[Any, Any, Any]:
    from dossier_stream.core.topics import CatalogError, load_catalog  # noqa: PLC0415

    try:
        catalog = load_catalog(settings.topics_file)
    except CatalogError as exc:
        raise click.ClickException(str(exc)) from None
    return registry_or_exit(settings.units_file), calendar_or_exit(settings.calendar_file), catalog


def demo_store_dsn(settings: Settings) -> str | None:
    """The demo's store when no store is configured and the default one does not exist.

    ``dossier-stream demo`` keeps its embedded ClickHouse under
    ``DOSSIER_DATA_DIR/demo/clickhouse`` (each run starts afresh there); the
    commands that read a store (``report``, ``reconcile``, ``deadletter``) find
    it when ``DOSSIER_CLICKHOUSE_DSN`` is not set and the default store
    (``chdb://.dossier-stream/clickhouse``) has never been created.
    """
    if "clickhouse_dsn" in settings.model_fields_set:
        return None
    dsn = settings.clickhouse_dsn.get_secret_value()
    if not dsn.startswith("chdb://") or Path(dsn.removeprefix("chdb://")).exists():
        return None
    demo = settings.data_dir / "demo" / "clickhouse"
    return f"chdb://{demo}" if demo.is_dir() else None


def store_or_exit(settings: Settings, *, find_demo: bool = False) -> Any:
    """Open the configured store (with ``find_demo``: the demo's, see :func:`demo_store_dsn`)."""
    from pydantic import SecretStr  # noqa: PLC0415

    from dossier_stream.settings import mask_dsn  # noqa: PLC0415
    from dossier_stream.stream.runner import open_store  # noqa: PLC0415

    demo = demo_store_dsn(settings) if find_demo else None
    if demo is not None:
        click.echo(
            f"Đọc kho dữ liệu của lần chạy demo: {demo.removeprefix('chdb://')} "
            "(đặt DOSSIER_CLICKHOUSE_DSN để đọc kho khác).",
            err=True,
        )
        settings = settings.model_copy(update={"clickhouse_dsn": SecretStr(demo)})
    try:
        return open_store(settings)
    except ConnectionError as exc:
        dsn = mask_dsn(settings.clickhouse_dsn.get_secret_value())
        cause = exc.__cause__ or exc
        raise click.ClickException(
            f"Không dùng được ClickHouse tại {dsn}: {str(cause).splitlines()[0][:300]}\n"
            "Kiểm tra DOSSIER_CLICKHOUSE_DSN, máy chủ ClickHouse đang chạy, và với chdb:// "
            "không có tiến trình nào khác (worker, store-server) đang mở cùng thư mục."
        ) from None


def check_period_options(
    date_from: datetime | None,
    date_to: datetime | None,
    period: str | None,
    *,
    rolling: str | None = None,
    as_of: datetime | None = None,
) -> None:
    """Refuse options that contradict each other (a :class:`click.UsageError`)."""
    if rolling is not None and (period or date_from or date_to):
        raise click.UsageError("--rolling chọn cửa sổ thời gian riêng: không dùng cùng "
                               "--period hoặc --from/--to.")  # fmt: skip
    if as_of is not None and rolling is None:
        raise click.UsageError("--as-of chỉ dùng với --rolling (ví dụ --rolling 7d --as-of "
                               "2024-10-14); với một kỳ cố định hãy dùng --period hoặc "
                               "--from/--to.")  # fmt: skip
    if period and (date_from or date_to):
        raise click.UsageError("Chọn một trong hai: --period hoặc --from/--to, không dùng cả hai.")
    if bool(date_from) != bool(date_to):
        given, missing = ("--from", "--to") if date_from else ("--to", "--from")
        raise click.UsageError(f"{given} cần đi kèm {missing} (kỳ báo cáo gồm ngày đầu và "
                               "ngày cuối), hoặc dùng --period.")  # fmt: skip
    if date_from and date_to and date_from > date_to:
        raise click.UsageError(f"--from {date_from:%Y-%m-%d} sau --to {date_to:%Y-%m-%d}.")
    if period and period.strip().startswith("week:"):
        from dossier_stream.core.periods import week  # noqa: PLC0415

        try:
            day = date.fromisoformat(period.strip().removeprefix("week:"))
        except ValueError:
            return  # parse_period says what is wrong
        if day.weekday() != 4:
            friday = week(day).start
            raise click.UsageError(
                f"--period {period}: tuần báo cáo bắt đầu từ thứ Sáu, {day:%d/%m/%Y} không "
                f"phải thứ Sáu. Tuần chứa ngày này: --period week:{friday.isoformat()} "
                f"({friday:%d/%m}–{week(day).end:%d/%m/%Y})."
            )


def check_template(template: str, period: Any) -> None:
    """Refuse ``--template weekly`` over anything but a Friday–Thursday week."""
    is_week = period.start.weekday() == 4 and (period.end - period.start).days == 6
    if template == "weekly" and not is_week:
        raise click.UsageError(
            f"--template weekly là thông báo tuần (thứ Sáu đến thứ Năm); kỳ "
            f"{period.start:%d/%m/%Y}–{period.end:%d/%m/%Y} không phải một tuần như vậy. "
            "Dùng --template monthly hoặc summary, hoặc --period week:<ngày thứ Sáu>."
        )


def period_from(
    date_from: datetime | None, date_to: datetime | None, period: str | None, days: list[date]
) -> Any:
    from dossier_stream.core.periods import Period, parse_period  # noqa: PLC0415

    check_period_options(date_from, date_to, period)
    try:
        if period:
            return parse_period(period)
        if date_from and date_to:
            return Period(date_from.date(), date_to.date())
        span = days or [datetime.now().astimezone().date()]
        return Period(
            date_from.date() if date_from else min(span), date_to.date() if date_to else max(span)
        )
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--period" if period else None) from None


def emit_report(
    report: dict[str, Any],
    registry: Any,
    fmt: str,
    out: Path | None,
    template: str = "auto",
    previous: dict[str, Any] | None = None,
) -> None:
    """Print or write ``report`` in ``fmt`` with ``template`` (see ``reports.output``).

    ``previous`` is the previous month's report (the monthly form's comparisons);
    the document settings file and the CSV BOM come from the settings
    (``DOSSIER_DOCUMENT_FILE``, ``DOSSIER_CSV_BOM``).
    """
    from dossier_stream.reports.output import render_report  # noqa: PLC0415
    from dossier_stream.reports.profile import load_profile  # noqa: PLC0415

    settings = settings_or_exit()
    if "period" in report:
        from dossier_stream.core.periods import Period  # noqa: PLC0415

        check_template(template, Period.from_json(report["period"]))
    try:
        profile = load_profile(settings.document_file)
        text = render_report(
            report, registry, fmt, out, template,
            previous=previous, profile=profile, csv_bom=settings.csv_bom,
        )  # fmt: skip
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    if text is None:
        click.echo(f"Đã ghi {out}", err=True)
    else:
        click.echo(text, nl=False)


PERIOD_OPTIONS = [
    click.option("--from", "date_from", type=click.DateTime(["%Y-%m-%d"]), help="First day."),
    click.option("--to", "date_to", type=click.DateTime(["%Y-%m-%d"]), help="Last day."),
    click.option("--period", help="Instead of --from/--to: 2024-10 (monthly), week:2025-09-12…"),
    click.option("--format", "fmt", default="text", show_default=True,
                 type=click.Choice(["text", "json", "md", "csv", "xlsx", "docx"]),
                 help="text: as the province prints it; json: the report structure and the "
                      "tables; md/csv; xlsx/docx need --out."),
    click.option("--template", default="auto", show_default=True,
                 type=click.Choice(["auto", "monthly", "weekly", "summary", "index766"]),
                 help="Report form: monthly (Bảng 1-3, payments, digitization appendix), "
                      "weekly (targets, lowest units), summary (short operator view), index766 "
                      "(estimated QĐ 766 points, units that cost them); auto = "
                      "weekly for a Friday-Thursday week, else monthly."),
    click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Write to FILE."),
]  # fmt: skip


_Fn = TypeVar("_Fn", bound=Callable[..., Any])


def with_options(options: list[Any]) -> Callable[[_Fn], _Fn]:
    def wrap(fn: _Fn) -> _Fn:
        for opt in reversed(options):
            fn = opt(fn)
        return fn

    return wrap
