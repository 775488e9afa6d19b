"""``dossier-stream reconcile``: the streamed counters against the facts, and the units' reports.

Registered on the ``dossier-stream`` group through
:data:`dossier_stream.cli.pipeline.STREAM_COMMANDS`; the logic is in
:mod:`dossier_stream.reports.reconcile`.

Exit codes: ``0`` when every indicator of every unit equals its
recomputation from the fact tables; ``1`` when any differs (or on an error
such as an unreachable ClickHouse, with a message on stderr); ``2`` for bad
options (a malformed date or period). Units whose own report differs from
what the system holds are printed but do not change the exit code — that gap
is a finding about the units' reports, not a fault of the system — unless
``--strict-sync`` is given, which makes such a unit exit ``1`` too (units
without a report never do: the indicator is undefined for them).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from dossier_stream.core.periods import Period

__all__ = ["reconcile"]


def _chosen_period(
    date_from: datetime | None, date_to: datetime | None, period: str | None
) -> Period:
    from dossier_stream.cli._common import check_period_options  # noqa: PLC0415
    from dossier_stream.core.periods import Period, parse_period  # noqa: PLC0415

    check_period_options(date_from, date_to, period)
    if period is None and not (date_from and date_to):
        raise click.UsageError("Chọn kỳ đối chiếu: --period 2024-10, hoặc --from NGÀY --to NGÀY.")
    try:
        if period is not None:
            return parse_period(period)
        assert date_from is not None and date_to is not None
        return Period(date_from.date(), date_to.date())
    except ValueError as exc:
        hint = "--period" if period is not None else "--from/--to"
        raise click.BadParameter(str(exc), param_hint=hint) from None


@click.command("reconcile")
@click.option("--from", "date_from", type=click.DateTime(["%Y-%m-%d"]), help="First day.")
@click.option("--to", "date_to", type=click.DateTime(["%Y-%m-%d"]), help="Last day.")
@click.option(
    "--period", help="Instead of --from/--to: 2024-10 (monthly), week:2025-09-12, month:2024-10…"
)
@click.option(
    "--format",
    "fmt",
    default="text",
    show_default=True,
    type=click.Choice(["text", "json"]),
    help="text: summary and tab-separated tables; json: the same as a structure.",
)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Write to FILE.")
@click.option(
    "--strict-sync",
    is_flag=True,
    help="Exit 1 also when a unit's own report (unit.reported_totals) differs from what the "
    "system holds.",
)
def reconcile(
    date_from: datetime | None, date_to: datetime | None, period: str | None, fmt: str,
    out: Path | None, strict_sync: bool,
) -> None:  # fmt: skip
    """Check the report's counters against the dossier facts, and the units' own reports.

    Recomputes every indicator of the period per unit with plain SQL over the
    fact tables (dossier_facts, feedback_facts: one row per dossier with its
    latest state), independently of the streamed counters the report reads
    (unit_day_counters), and prints a summary (units checked, indicators
    compared, differences), every (unit, indicator, numerator/denominator)
    that differs, streamed against recomputed, and the synchronisation
    section: units whose reported total for exactly the period differs from
    the dossiers received on the system (those that reported more are the
    synchronisation gap), and units without a report.

    Exit code 0: no indicator differs; 1: some indicator differs (or an
    error); 2: bad options. A unit report that differs changes the exit code
    only with --strict-sync.

    \b
    Examples:
      dossier-stream reconcile --period 2024-10               # tháng 10/2024 (15/9-14/10)
      dossier-stream reconcile --from 2025-09-12 --to 2025-09-18
      dossier-stream reconcile --period 2024-10 --format json --out reconcile.json
      dossier-stream reconcile --period 2024-10 --strict-sync  # reports must match too
    """
    import orjson  # noqa: PLC0415
    from clickhouse_connect.driver.exceptions import ClickHouseError  # noqa: PLC0415

    from dossier_stream.cli._common import (  # noqa: PLC0415
        registry_or_exit,
        settings_or_exit,
        store_or_exit,
    )
    from dossier_stream.reports.reconcile import reconcile as run  # noqa: PLC0415
    from dossier_stream.reports.reconcile import render_text  # noqa: PLC0415

    chosen = _chosen_period(date_from, date_to, period)
    settings = settings_or_exit()
    registry = registry_or_exit(settings.units_file)
    store = store_or_exit(settings, find_demo=True)
    if store.count("dossier_facts") == 0 and store.count("unit_day_counters") == 0:
        store.close()
        raise click.ClickException(
            "Không có gì để đối chiếu: kho dữ liệu chưa có hồ sơ nào (dossier_facts và "
            "unit_day_counters trống).\nKiểm tra DOSSIER_CLICKHOUSE_DSN, hoặc chạy worker / "
            "dossier-stream demo trước."
        )
    try:
        result = run(
            store,
            chosen,
            expected_units=[u.code for u in registry.units_in(chosen.start, chosen.end)],
            names={u.code: u.name for u in registry},
        )
    except ClickHouseError as exc:
        raise click.ClickException(f"reconciliation query failed: {exc}") from None
    finally:
        store.close()
    if fmt == "json":
        text = orjson.dumps(result.to_json(), option=orjson.OPT_INDENT_2).decode() + "\n"
    else:
        text = render_text(result)
    if out is None:
        click.echo(text, nl=False)
    else:
        out.write_text(text, encoding="utf-8")
        click.echo(f"wrote {out}", err=True)
    failed = not result.ok or (strict_sync and not result.sync_ok)
    if failed:
        click.echo(
            f"reconcile: {len(result.differences)} differences"
            + ("" if result.sync_ok else f", {len(result.sync_differing)} unit reports differ"),
            err=True,
        )
        click.get_current_context().exit(1)
