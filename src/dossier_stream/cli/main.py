"""The ``dossier-stream`` command line.

Every command has ``--help``. Heavy modules are imported inside the commands,
so ``dossier-stream --help`` starts fast.
"""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from dossier_stream.cli.pipeline import PERIOD_OPTIONS, _period, _with, emit_report

if TYPE_CHECKING:
    from dossier_stream.core.registry import UnitRegistry
    from dossier_stream.core.workdays import WorkCalendar

__all__ = ["main"]

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


def _registry(units_file: Path | None) -> UnitRegistry:
    from dossier_stream.core.registry import RegistryError, UnitRegistry  # noqa: PLC0415

    try:
        return UnitRegistry.from_csv(units_file) if units_file else UnitRegistry.load_default()
    except RegistryError as exc:
        raise click.ClickException(str(exc)) from None


def _calendar(calendar_file: Path | None) -> WorkCalendar:
    from dossier_stream.core.workdays import CalendarError, WorkCalendar  # noqa: PLC0415

    try:
        return WorkCalendar.from_file(calendar_file) if calendar_file else WorkCalendar.default()
    except CalendarError as exc:
        raise click.ClickException(str(exc)) from None


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="dossier-stream")
def main() -> None:
    """dossier-stream: administrative-procedure dossier events in, official figures out.

    Lifecycle events of dossiers (hồ sơ thủ tục hành chính) flow through Kafka
    topics into a stateful worker that keeps each dossier's state and the
    per-unit day counters of every indicator (online submission, online
    payment, digitization, on-time, ...), and prints the province's reports.
    """


@main.group()
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


@main.group()
def units() -> None:
    """Inspect the unit registry (levels, eras, aliases)."""


@units.command("check")
@UNITS_OPTION
def units_check(units_file: Path | None) -> None:
    """Load and validate a registry file; print how many units per level."""
    reg = _registry(units_file)
    counts: dict[str, int] = {}
    for u in reg:
        counts[u.level] = counts.get(u.level, 0) + 1
    click.echo(f"{len(reg)} units: " + ", ".join(f"{n} {lvl}" for lvl, n in counts.items()))


@units.command("resolve")
@click.argument("name")
@click.option("--on", "on_day", type=click.DateTime(["%Y-%m-%d"]), help="Day the unit exists.")
@UNITS_OPTION
def units_resolve(name: str, on_day: datetime | None, units_file: Path | None) -> None:
    """Resolve a printed unit NAME (any spelling variant) to its code."""
    from dossier_stream.core.registry import AmbiguousUnitName, UnknownUnitName  # noqa: PLC0415

    reg = _registry(units_file)
    try:
        unit = reg.resolve(name, on=on_day.date() if on_day else None)
    except (UnknownUnitName, AmbiguousUnitName) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"{unit.code}\t{unit.level}\t{unit.name}")


@main.group()
def calendar() -> None:
    """The working-day calendar (holidays, official day swaps, due times)."""


@calendar.command("due")
@click.argument("received_at")
@click.argument("working_days", type=click.IntRange(min=0))
@CALENDAR_OPTION
def calendar_due(received_at: str, working_days: int, calendar_file: Path | None) -> None:
    """Due time of a reception at RECEIVED_AT (RFC 3339) with WORKING_DAYS of processing."""
    try:
        at = datetime.fromisoformat(received_at)
        due = _calendar(calendar_file).due_at(at, working_days)
    except ValueError as exc:
        raise click.ClickException(f"{exc} (give e.g. 2024-10-03T08:15:00+07:00)") from None
    click.echo(due.isoformat())


def _register_stream_commands() -> None:
    from dossier_stream.cli.pipeline import STREAM_COMMANDS  # noqa: PLC0415
    from dossier_stream.cli.storeserver import store_server  # noqa: PLC0415

    for command in STREAM_COMMANDS:
        main.add_command(command)
    main.add_command(store_server)


_register_stream_commands()


def _read_lines(path: Path) -> list[bytes]:
    with path.open("rb") as fh:
        return [line.rstrip(b"\r\n") for line in fh if line.strip()]


@main.command("replay")
@click.argument("events_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@_with(PERIOD_OPTIONS)
@UNITS_OPTION
@CALENDAR_OPTION
def replay(
    events_file: Path,
    date_from: datetime | None,
    date_to: datetime | None,
    period: str | None,
    fmt: str,
    template: str,
    out: Path | None,
    units_file: Path | None,
    calendar_file: Path | None,
) -> None:
    """Fold a JSONL file of events in memory (no Kafka, no ClickHouse) and print the report.

    One event per line, as upstream systems send them. Invalid lines are
    counted as dead letters with their reason. The period defaults to the
    whole span of the events' cohort days.
    """
    from tqdm import tqdm  # noqa: PLC0415

    from dossier_stream.core.engine import Engine  # noqa: PLC0415

    registry = _registry(units_file)
    engine = Engine(registry, _calendar(calendar_file))
    lines = _read_lines(events_file)
    for raw in tqdm(lines, desc="events", unit="ev", disable=None, file=sys.stderr):
        engine.process(raw)
    days = sorted({day for (_, day, _) in engine.counters})
    chosen = _period(date_from, date_to, period, days)
    report: dict[str, Any] = engine.report(chosen)
    report["pipeline"] = engine.stats.to_json()
    emit_report(report, registry, fmt, out, template)


@main.command("simulate")
@click.option(
    "--month",
    required=True,
    help="The city's monthly report period to simulate: 2024-10 is 15/09/2024-14/10/2024.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed.")
@click.option(
    "--dossiers",
    type=click.IntRange(min=0),
    help="Dossiers received in the period, spread at random over the units. Default: the "
    "published counts when the month has a bundled calibration (2024-10), else 20000.",
)
@click.option("--feedback", type=click.IntRange(min=0), default=1_000, show_default=True,
              help="Citizen feedback items.")  # fmt: skip
@click.option("--duplicates", type=click.FloatRange(0, 1), default=0.01, show_default=True,
              help="Share of valid lines re-sent byte for byte.")  # fmt: skip
@click.option("--invalid", type=click.FloatRange(0, 1), default=0.002, show_default=True,
              help="Share of invalid lines (every defect of the contract).")  # fmt: skip
@click.option(
    "--out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="JSONL file to write (one event per line, in publish order).",
)
@UNITS_OPTION
@CALENDAR_OPTION
def simulate_cmd(
    month: str,
    seed: int,
    dossiers: int | None,
    feedback: int,
    duplicates: float,
    invalid: float,
    out: Path,
    units_file: Path | None,
    calendar_file: Path | None,
) -> None:
    """Write a simulated month of contract events with realistic dossier lives.

    For 2024-10 the simulator is calibrated to Hải Phòng's published report of
    tháng 10/2024: replaying the file gives every count and rate of its tables.
    The same --seed gives byte-identical output. The expected counters (the
    ground truth) are computed from the simulated facts, independently of the
    engine.
    """
    from dossier_stream.core.periods import parse_period  # noqa: PLC0415
    from dossier_stream.sim.quotas import calibration_for  # noqa: PLC0415
    from dossier_stream.sim.simulate import SimConfig, simulate  # noqa: PLC0415

    try:
        chosen = parse_period(month)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--month") from None
    calibration = None if dossiers is not None or units_file else calibration_for(chosen)
    config = SimConfig(
        chosen,
        seed=seed,
        dossiers=20_000 if dossiers is None else dossiers,
        calibration=calibration,
        duplicate_rate=duplicates,
        invalid_rate=invalid,
        feedback=feedback,
    )
    sim = simulate(config, _registry(units_file), _calendar(calendar_file))
    sim.write(out)
    what = f"calibrated to {calibration}" if calibration else f"{config.dossiers} dossiers"
    click.echo(
        f"wrote {len(sim.lines)} events to {out} ({what}; {sim.duplicates} duplicates, "
        f"{sim.invalid} invalid)",
        err=True,
    )
