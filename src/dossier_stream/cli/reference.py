"""Reference-data commands: ``schemas``, ``units``, ``calendar`` (no broker, no store)."""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from dossier_stream.cli._common import (
    CALENDAR_OPTION,
    UNITS_OPTION,
    calendar_or_exit,
    registry_or_exit,
)

__all__ = ["calendar", "schemas", "units"]


@click.group()
def schemas() -> None:
    """JSON Schema files of the event contract."""


@schemas.command("export")
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("schemas"),
    show_default=True,
    help="Directory of the schema files.",
)
@click.option("--check", is_flag=True, help="Compare instead of writing; exit 1 if stale.")
def schemas_export(directory: Path, check: bool) -> None:
    """Write (or --check) one JSON Schema per event type, generated from the models."""
    from dossier_stream.core.schemas import check_schemas, write_schemas  # noqa: PLC0415

    if check:
        problems = check_schemas(directory)
        if problems:
            for p in problems:
                click.echo(p, err=True)
            click.echo(
                "schemas are stale: run 'dossier-stream schemas export' and commit the result",
                err=True,
            )
            sys.exit(1)
        click.echo(f"{directory}: up to date")
        return
    for path in write_schemas(directory):
        click.echo(f"wrote {path}")


@click.group()
def units() -> None:
    """Inspect the unit registry (levels, eras, aliases)."""


@units.command("check")
@UNITS_OPTION
def units_check(units_file: Path | None) -> None:
    """Load and validate a registry file; print how many units per level."""
    reg = registry_or_exit(units_file)
    counts: dict[str, int] = {}
    for u in reg:
        counts[u.level] = counts.get(u.level, 0) + 1
    click.echo(f"{len(reg)} units: " + ", ".join(f"{n} {lvl}" for lvl, n in counts.items()))


@units.command("resolve")
@click.argument("name")
@click.option("--on", "on_day", type=click.DateTime(["%Y-%m-%d"]), help="Day the unit exists.")
@click.option(
    "--level", type=click.Choice(["department", "district", "commune"]), help="The unit's level."
)
@click.option("--parent", "parent_code", help="Code of the unit's district (for a commune).")
@UNITS_OPTION
def units_resolve(
    name: str,
    on_day: datetime | None,
    level: Any,
    parent_code: str | None,
    units_file: Path | None,
) -> None:
    """Resolve a printed unit NAME (any spelling variant) to its code.

    A name several units share (a commune name in two districts) needs --parent
    (the district's code), --level or --on; or write the district in
    parentheses: "Xã Quốc Tuấn (An Lão)".
    """
    from dossier_stream.core.registry import AmbiguousUnitName, UnknownUnitName  # noqa: PLC0415

    reg = registry_or_exit(units_file)
    try:
        unit = reg.resolve(
            name, on=on_day.date() if on_day else None, level=level, parent_code=parent_code
        )
    except AmbiguousUnitName as exc:
        listing = "; ".join(
            f"{u.code} {u.name}" + (f" (thuộc {u.parent_code})" if u.parent_code else "")
            for u in exc.candidates
        )
        raise click.ClickException(
            f"Tên {name!r} trùng với {len(exc.candidates)} đơn vị: {listing}.\n"
            "Thêm --parent <mã quận/huyện>, --level hoặc --on <ngày>, ghi tên quận/huyện "
            "trong ngoặc (ví dụ 'Xã Quốc Tuấn (An Lão)'), hoặc dùng mã đơn vị."
        ) from None
    except UnknownUnitName as exc:
        raise click.ClickException(str(exc)) from None
    except KeyError as exc:
        raise click.BadParameter(str(exc), param_hint="--parent") from None
    click.echo(f"{unit.code}\t{unit.level}\t{unit.name}")


@click.group()
def calendar() -> None:
    """The working-day calendar (holidays, official day swaps, due times)."""


@calendar.command("due")
@click.argument("received_at")
@click.argument("working_days", type=click.IntRange(min=0))
@CALENDAR_OPTION
def calendar_due(received_at: str, working_days: int, calendar_file: Path | None) -> None:
    """Due time of a reception at RECEIVED_AT with WORKING_DAYS of processing.

    RECEIVED_AT is RFC 3339 (2024-10-03T08:15:00+07:00); a date or a time
    without an offset is Vietnam's local time (Asia/Ho_Chi_Minh). Prints the
    due time in RFC 3339, then as the province writes it.
    """
    from dossier_stream.core.workdays import VN_TZ  # noqa: PLC0415

    try:
        at = datetime.fromisoformat(received_at)
    except ValueError:
        raise click.BadParameter(
            f"{received_at!r} không phải thời điểm hợp lệ; ví dụ 2024-10-03T08:15:00+07:00 "
            "hoặc 2024-10-03.",
            param_hint="RECEIVED_AT",
        ) from None
    if at.tzinfo is None:
        at = at.replace(tzinfo=VN_TZ)
    due = calendar_or_exit(calendar_file).due_at(at, working_days)
    weekday = ("thứ Hai", "thứ Ba", "thứ Tư", "thứ Năm", "thứ Sáu", "thứ Bảy", "Chủ nhật")
    local = due.astimezone(VN_TZ)
    click.echo(f"{due.isoformat()}\t{local:%H:%M} {weekday[local.weekday()]}, {local:%d/%m/%Y}")
