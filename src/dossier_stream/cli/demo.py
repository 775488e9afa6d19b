"""``dossier-stream demo``: the whole pipeline on this machine, in one command.

Embedded broker (Tansu) on a free loopback port, topics from the catalog,
the worker in this process, ClickHouse embedded (chdb) under the run
directory. A second process simulates (or reads) the events and publishes
them while the worker consumes: the two use both cores of a small machine,
and the worker starts on the first events instead of after the last. The
worker runs until every event is processed and flushed, and the report is
read back from ClickHouse. The phases' wall and CPU seconds are logged
(``DOSSIER_LOG_LEVEL=INFO``), on stderr.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import sys
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import click
from pydantic import SecretStr
from tqdm import tqdm

from dossier_stream.cli.inputs import read_events
from dossier_stream.core.engine import PipelineStats
from dossier_stream.core.periods import Period, monthly_report
from dossier_stream.core.registry import UnitRegistry
from dossier_stream.core.topics import TopicCatalog, load_catalog
from dossier_stream.core.workdays import WorkCalendar
from dossier_stream.settings import Settings, mask_dsn
from dossier_stream.store.sink import ClickHouseStore
from dossier_stream.store.views import write_units
from dossier_stream.stream.embedded import EmbeddedBroker
from dossier_stream.stream.runner import (
    Worker,
    create_topics,
    open_store,
    produce_lines,
    report_from_store,
)

__all__ = ["DEFAULT_PERIOD", "DemoResult", "next_steps", "run_demo"]

_LOG = logging.getLogger(__name__)

DEFAULT_PERIOD = monthly_report(2024, 10)
"""The built-in month: Hải Phòng's tháng 10/2024 (15/09/2024-14/10/2024)."""


@dataclass(slots=True)
class DemoResult:
    """What a demo run left behind: the store to report from and the pipeline counts."""

    store: ClickHouseStore
    registry: UnitRegistry
    stats: PipelineStats
    days: list[date]
    seconds: float

    def deadletter_summary(self, shown: int = 5) -> str:
        """Dead letters per reason and the first few (topic, partition, offset), for stderr."""
        by_code = self.stats.deadletter_by_code
        if not by_code:
            return "Không có thư lỗi (mọi sự kiện đều hợp lệ)."
        lines = [
            f"{self.stats.deadletter} thư lỗi, theo lý do: "
            + ", ".join(f"{code} {n}" for code, n in sorted(by_code.items(), key=lambda x: -x[1]))
        ]
        for row in self.store.dead_letters(limit=shown):
            lines.append(
                f"  {row['topic']}[{row['partition']}] offset {row['offset']}: {row['reason']} "
                f"({str(row['detail'])[:100]})"
            )
        return "\n".join(lines)

    def write_deadletters(self, path: Path) -> int:
        """Every dead letter of the run as JSON Lines (where it was, why, the value); how many."""
        import base64  # noqa: PLC0415

        import orjson  # noqa: PLC0415

        rows = self.store.dead_letters(limit=max(self.stats.deadletter, 1))
        with path.open("wb") as fh:
            for row in sorted(rows, key=lambda r: (r["topic"], r["partition"], r["offset"])):
                out = {k: v for k, v in row.items() if k not in ("logged_at", "value")}
                raw = row.get("value") or b""
                if isinstance(raw, bytes):  # the exact bytes, and a readable text of them
                    out["value"] = raw.decode("utf-8", errors="replace")
                    out["value_base64"] = base64.b64encode(raw).decode()
                else:
                    out["value"] = raw
                fh.write(orjson.dumps(out, default=str) + b"\n")
        return len(rows)

    def report(self, period: Period) -> dict[str, Any]:
        """The report of ``period`` with the ``pipeline`` section."""
        report = report_from_store(self.store, self.registry, period)
        report["pipeline"] = {**self.stats.to_json(), "seconds": round(self.seconds, 1)}
        return report


def next_steps(period: Period, template: str, run_dir: Path) -> str:
    """The demo's last lines: the commands that read its store again, from this folder."""
    if period == DEFAULT_PERIOD:
        chosen = "--period 2024-10"
    else:
        chosen = f"--from {period.start.isoformat()} --to {period.end.isoformat()}"
    extra = "" if template == "auto" else f" --template {template}"
    return (
        f"Dữ liệu của lần chạy này nằm ở {run_dir / 'clickhouse'}. Tiếp theo, trong thư mục này:\n"
        f"  dossier-stream report {chosen}{extra}      # in lại báo cáo\n"
        f"  dossier-stream reconcile {chosen}      # đối chiếu với dữ liệu hồ sơ\n"
        "  dossier-stream deadletter list              # các thư lỗi"
    )


def _default_events(registry: UnitRegistry, calendar: WorkCalendar) -> Iterable[bytes]:
    """The simulated month, generated a day at a time while it is published."""
    from dossier_stream.sim.quotas import calibration_for  # noqa: PLC0415
    from dossier_stream.sim.simulate import SimConfig, SimStream  # noqa: PLC0415

    config = SimConfig(DEFAULT_PERIOD, calibration=calibration_for(DEFAULT_PERIOD), feedback=1_000)
    print("Mô phỏng tháng 10/2024 của Hải Phòng …", file=sys.stderr)
    return SimStream(config, registry, calendar)


def _publish(settings: Settings, events_file: Path | None, out: Connection) -> None:
    """The publishing process: simulate or read the events, publish them, say how many.

    It sends ``("total", n)`` once the events are read from a file (a
    simulated month is generated as it is published: its total comes with
    ``done``), ``("sent", k)`` as the broker acknowledges them, its CPU
    seconds as ``("cpu", s)``, then ``("done", n)``; on failure
    ``("error", message)``. The
    registry and the calendar are built from the same settings as the
    command's (``DOSSIER_UNITS_FILE``, ``DOSSIER_CALENDAR_FILE``).
    """
    try:
        registry = (
            UnitRegistry.from_csv(settings.units_file)
            if settings.units_file
            else UnitRegistry.load_default()
        )
        calendar = (
            WorkCalendar.from_file(settings.calendar_file)
            if settings.calendar_file
            else WorkCalendar.default()
        )
        t0 = time.monotonic()
        lines: Iterable[bytes]
        if events_file:
            lines = read_events(events_file).lines
            out.send(("total", len(lines), time.monotonic() - t0))
        else:
            lines = _default_events(registry, calendar)
        catalog = load_catalog(settings.topics_file)
        t0 = time.monotonic()
        stats = asyncio.run(
            produce_lines(
                settings,
                catalog,
                lines,
                source="demo",
                progress=lambda n: out.send(("sent", n, 0.0)),
            )
        )
        out.send(("cpu", time.process_time(), 0.0))
        out.send(("done", stats.sent, time.monotonic() - t0))
    except Exception as exc:  # reported by the parent as guidance, not a traceback here
        out.send(("error", f"{type(exc).__name__}: {exc}", 0.0))
    finally:
        out.close()


class _Phases:
    """Wall and CPU seconds of the demo's phases, logged as each ends (at INFO)."""

    def __init__(self) -> None:
        self.wall, self.cpu = time.monotonic(), time.process_time()

    def mark(self, name: str) -> None:
        """Log the phase that ends now (wall since the last mark, this process's CPU)."""
        wall, cpu = time.monotonic(), time.process_time()
        _LOG.info("phase %s: %.2f s wall, %.2f s CPU", name, wall - self.wall, cpu - self.cpu)
        self.wall, self.cpu = wall, cpu


def run_demo(
    settings: Settings,
    registry: UnitRegistry,
    calendar: WorkCalendar,
    catalog: TopicCatalog,
    run_dir: Path,
    events_file: Path | None,
    *,
    timeout_s: float = 900.0,
) -> DemoResult:
    """Run the embedded pipeline over the events; see the module docstring."""
    t0 = time.monotonic()
    phases = _Phases()
    run_dir.mkdir(parents=True, exist_ok=True)
    with EmbeddedBroker(run_dir / "tansu.log") as broker:
        phases.mark("broker")
        s = settings.model_copy(
            update={
                "bootstrap_servers": broker.bootstrap,
                "clickhouse_dsn": SecretStr(f"chdb://{(run_dir / 'clickhouse').resolve()}"),
                "app_id": "dossier-stream-demo",
                "assign_all": True,  # the only consumer of its own broker: no group join
                "data_dir": run_dir,
            }
        )
        asyncio.run(create_topics(s, catalog))
        phases.mark("topics")
        # the publishing process first: its imports and reading (or simulating) overlap
        # connecting the store here; the migrations overlap the worker's start (_start)
        ctx = multiprocessing.get_context("spawn")  # chdb's and Tansu's threads: no fork
        receive, send = ctx.Pipe(duplex=False)
        child = ctx.Process(target=_publish, args=(s, events_file, send), name="demo-publish")
        child.start()
        send.close()
        phases.mark("spawn")
        try:
            store = open_store(s, migrate=False)
            phases.mark("store connected")
            stats = asyncio.run(
                _run(s, catalog, registry, calendar, store, receive, child, timeout_s, phases)
            )
        finally:
            if child.is_alive():
                child.terminate()
            child.join(10)
        _LOG.info("broker CPU: %.2f s", broker.cpu_seconds())
    phases.mark("stop")
    days = store.day_span()
    return DemoResult(store, registry, stats, days, time.monotonic() - t0)


class _Feed:
    """What the publishing process said so far (read without blocking the event loop)."""

    def __init__(self, receive: Connection, child: Any, bars: tuple[Any, Any]) -> None:
        self.receive = receive
        self.child = child
        self.publish_bar, self.process_bar = bars
        self.total: int | None = None
        self.sent: int | None = None

    def poll(self) -> None:
        """Take the messages waiting; raise if the process failed."""
        while self.receive.poll():
            try:
                kind, value, seconds = self.receive.recv()
            except EOFError:
                break
            if kind == "total":
                self.total = int(value)
                self.publish_bar.total = self.process_bar.total = self.total
                _LOG.info("%s events ready in %.1f s", value, seconds)
            elif kind == "cpu":
                _LOG.info("publishing process: %.2f s CPU", value)
            elif kind == "sent":
                self.publish_bar.update(int(value))
            elif kind == "done":
                self.sent = int(value)
                if self.total is None:
                    self.total = self.sent
                    self.publish_bar.total = self.process_bar.total = self.total
                _LOG.info("%s events published in %.1f s", value, seconds)
            else:
                raise click.ClickException(f"Gửi sự kiện thất bại: {value}")
        if self.sent is None and not self.child.is_alive() and not self.receive.poll():
            raise click.ClickException(
                f"Tiến trình gửi sự kiện dừng sớm (mã {self.child.exitcode}); chạy lại với "
                "--debug để xem chi tiết."
            )


class _Migration(threading.Thread):
    """The store's migrations and units, in a thread while the worker starts."""

    def __init__(self, settings: Settings, store: ClickHouseStore, registry: UnitRegistry) -> None:
        super().__init__(name="demo-migrate", daemon=True)
        self.settings, self.store, self.registry = settings, store, registry
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.store.migrate()
            write_units(self.store, self.registry)
        except BaseException as exc:  # re-raised by finish(), in the event loop's thread
            self.error = exc

    def finish(self) -> None:
        """Wait for it (blocking the event loop on purpose); raise what it raised."""
        self.join()
        if self.error is not None:
            dsn = mask_dsn(self.settings.clickhouse_dsn.get_secret_value())
            raise ConnectionError(f"cannot use ClickHouse at {dsn}: {self.error}") from self.error


async def _start(worker: Worker, migration: _Migration) -> None:
    """Start ``worker`` while ``migration`` runs; return once both are done.

    The worker's start connects its producer and consumer and reads the
    topics' metadata. The demo's batch worker assigns itself every partition
    (``assign_all``): it does not wait for a group join, which takes Tansu
    half the session timeout (3 s; the start took 3,1 s with it, 0,7 s
    without). The store is first used by the worker's first batch (the
    stored states are read then), and the batch consumer starts its batch
    loop only as the last step of ``start``:
    waiting for the migrations *without* yielding to the event loop right
    after ``start`` returns means that no batch is handled before the store
    is ready, however slow the migrations are. The Faust runtime may handle
    messages inside ``start``, so with it the migrations come first.
    """
    migration.start()
    if worker.settings.runtime == "faust":
        migration.finish()
        await worker.start()
        return
    try:
        await worker.start()
    finally:
        migration.finish()  # no await before: the batch loop has not run yet


async def _run(
    settings: Settings,
    catalog: TopicCatalog,
    registry: UnitRegistry,
    calendar: WorkCalendar,
    store: ClickHouseStore,
    receive: Connection,
    child: Any,
    timeout_s: float,
    phases: _Phases,
) -> PipelineStats:
    bar_opts: dict[str, Any] = {"unit": "ev", "file": sys.stderr, "disable": None}
    with (
        tqdm(desc="publish", position=0, **bar_opts) as publish_bar,
        tqdm(desc="process", position=1, **bar_opts) as process_bar,
    ):
        feed = _Feed(receive, child, (publish_bar, process_bar))
        worker = Worker(settings, catalog, registry, calendar, store, on_batch=process_bar.update)
        await _start(worker, _Migration(settings, store, registry))
        phases.mark("store migrated, worker started")
        try:
            deadline = time.monotonic() + timeout_s
            while feed.sent is None and time.monotonic() < deadline:
                feed.poll()
                await asyncio.sleep(0.1)
            phases.mark("published")
            t0 = time.monotonic()
            total = feed.total or 0
            done = feed.sent is not None and await worker.wait_for(
                total, timeout=max(deadline - time.monotonic(), 1.0)
            )
            stats = worker.processor.stats
            _LOG.info(
                "worker caught up %.1f s after the last event was published", time.monotonic() - t0
            )
            phases.mark("caught up")
            deadline = time.monotonic() + 30
            while store.count("dead_letters") < stats.deadletter and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
            phases.mark("dead letters stored")
        finally:
            await worker.stop()
    if not done:
        raise TimeoutError(
            f"the worker processed {stats.events_in} of {total} events before the "
            f"time limit; see {settings.data_dir / 'tansu.log'}"
        )
    return stats
