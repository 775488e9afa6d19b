"""Offline commands: ``replay`` (fold a file in memory) and ``simulate`` (write one)."""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from dossier_stream.cli._common import (
    CALENDAR_OPTION,
    PERIOD_OPTIONS,
    UNITS_OPTION,
    calendar_or_exit,
    check_period_options,
    check_template,
    emit_report,
    period_from,
    registry_or_exit,
    with_options,
)
from dossier_stream.cli.inputs import deadletter_summary, read_events, write_deadletters

__all__ = ["replay", "simulate_cmd"]


DEADLETTERS_OPTION = click.option(
    "--deadletters",
    "deadletters_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write every rejected line (line number, reason, detail, the line) to FILE as JSON Lines.",
)


@click.command("replay")
@click.argument("events_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@with_options(PERIOD_OPTIONS)
@UNITS_OPTION
@CALENDAR_OPTION
@DEADLETTERS_OPTION
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
    deadletters_file: Path | None,
) -> None:
    """Fold a JSONL file of events in memory (no Kafka, no ClickHouse) and print the report.

    One event per line (JSON Lines), as upstream systems send them; a UTF-8
    byte order mark is ignored, a JSON array is refused with a hint. Invalid
    lines are dead letters: counted per reason on stderr with the first line
    numbers (every one with --deadletters FILE). The period defaults to the
    whole span of the events' cohort days.
    """
    from tqdm import tqdm  # noqa: PLC0415

    from dossier_stream.core.engine import Engine  # noqa: PLC0415

    check_period_options(date_from, date_to, period)
    if period or date_from:  # refused before the file is read, not after
        check_template(template, period_from(date_from, date_to, period, []))
    registry = registry_or_exit(units_file)
    engine = Engine(registry, calendar_or_exit(calendar_file))
    click.echo(f"Đọc {events_file} …", err=True)
    events = read_events(events_file)
    numbered = zip(events.lines, events.numbers, strict=True)
    bar = tqdm(numbered, total=len(events.lines), desc="sự kiện", unit="ev", disable=None,
               file=sys.stderr)  # fmt: skip
    for raw, number in bar:
        engine.process(raw, topic=events_file.name, offset=number)
    click.echo(
        deadletter_summary(engine.dead_letters, len(events.lines), where=events_file.name),
        err=True,
    )
    if deadletters_file is not None:
        write_deadletters(deadletters_file, engine.dead_letters)
        click.echo(f"Đã ghi {len(engine.dead_letters)} dòng lỗi vào {deadletters_file}", err=True)
    days = sorted({day for (_, day, _) in engine.counters})
    chosen = period_from(date_from, date_to, period, days)
    check_template(template, chosen)
    report: dict[str, Any] = engine.report(chosen)
    report["pipeline"] = engine.stats.to_json()
    emit_report(report, registry, fmt, out, template)


@click.command("simulate")
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
    "--months",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Consecutive months from --month, written one after the other (seed, seed+1, ...).",
)
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
    months: int,
    out: Path,
    units_file: Path | None,
    calendar_file: Path | None,
) -> None:
    """Write a simulated month of contract events with realistic dossier lives.

    For 2024-10 the simulator is calibrated to Hải Phòng's published report of
    tháng 10/2024: replaying the file gives every count and rate of its tables.
    The same --seed gives byte-identical output. The expected counters (the
    ground truth) are computed from the simulated facts, independently of the
    engine. The file is written a day at a time (the month is never held).
    """
    from tqdm import tqdm  # noqa: PLC0415

    from dossier_stream.core.periods import parse_period  # noqa: PLC0415
    from dossier_stream.sim.quotas import calibration_for  # noqa: PLC0415
    from dossier_stream.sim.simulate import SimConfig, simulate_months  # noqa: PLC0415

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
    registry, calendar = registry_or_exit(units_file), calendar_or_exit(calendar_file)
    if not out.parent.is_dir():
        raise click.BadParameter(
            f"thư mục {out.parent} không tồn tại; tạo thư mục trước hoặc chọn --out khác.",
            param_hint="--out",
        )
    what = f"hiệu chỉnh theo {calibration}" if calibration else f"{config.dossiers} hồ sơ"
    if months > 1:
        what += f" mỗi tháng, {months} tháng"
    click.echo(f"Mô phỏng từ {chosen.start:%d/%m/%Y} ({what}) …", err=True)
    lines = dups = bad = 0
    with tqdm(desc="mô phỏng", unit=" ngày", disable=None, file=sys.stderr) as bar:
        for i, stream in enumerate(simulate_months(config, months, registry, calendar)):
            with out.open("ab" if i else "wb") as fh:
                for day, day_lines in stream.days():  # a day at a time: the month is never held
                    fh.write(b"".join(line + b"\n" for line in day_lines))
                    bar.set_postfix_str(f"{day:%d/%m/%Y}", refresh=False)
                    bar.update(1)
            lines, dups, bad = lines + stream.count, dups + stream.duplicates, bad + stream.invalid
    click.echo(
        f"Đã ghi {lines} sự kiện vào {out} ({what}; {dups} trùng lặp, {bad} không hợp lệ)",
        err=True,
    )
