"""``dossier-stream demo``: the whole pipeline on this machine, in one command.

Embedded broker (Tansu) on a free loopback port, topics from the catalog,
the worker in this process, ClickHouse embedded (chdb) under the run
directory; the events are published, the worker runs until every one of
them is processed and flushed, and the report is read back from ClickHouse.
"""

from __future__ import annotations

import asyncio
import sys
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from pydantic import SecretStr
from tqdm import tqdm

from dossier_stream.embedded import EmbeddedBroker
from dossier_stream.engine import PipelineStats
from dossier_stream.periods import Period, monthly_report
from dossier_stream.registry import UnitRegistry
from dossier_stream.runner import (
    Worker,
    create_topics,
    open_store,
    produce_lines,
    report_from_store,
)
from dossier_stream.settings import Settings
from dossier_stream.sink import ClickHouseStore
from dossier_stream.topics import TopicCatalog
from dossier_stream.views import write_units
from dossier_stream.workdays import WorkCalendar

__all__ = ["DEFAULT_PERIOD", "DemoResult", "run_demo"]

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

    def report(self, period: Period) -> dict[str, Any]:
        """The report of ``period`` with the ``pipeline`` section."""
        report = report_from_store(self.store, self.registry, period)
        report["pipeline"] = {**self.stats.to_json(), "seconds": round(self.seconds, 1)}
        return report


def _default_events(registry: UnitRegistry, calendar: WorkCalendar) -> list[bytes]:
    from dossier_stream.quotas import calibration_for  # noqa: PLC0415
    from dossier_stream.simulate import SimConfig, simulate  # noqa: PLC0415

    config = SimConfig(DEFAULT_PERIOD, calibration=calibration_for(DEFAULT_PERIOD), feedback=1_000)
    print("simulating tháng 10/2024 of Hải Phòng ...", file=sys.stderr)
    return simulate(config, registry, calendar).lines


def _read(path: Path) -> list[bytes]:
    with path.open("rb") as fh:
        return [line.rstrip(b"\r\n") for line in fh if line.strip()]


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
    lines = _read(events_file) if events_file else _default_events(registry, calendar)
    run_dir.mkdir(parents=True, exist_ok=True)
    with EmbeddedBroker(run_dir / "tansu.log") as broker:
        s = settings.model_copy(
            update={
                "bootstrap_servers": broker.bootstrap,
                "clickhouse_dsn": SecretStr(f"chdb://{(run_dir / 'clickhouse').resolve()}"),
                "app_id": "dossier-stream-demo",
                "data_dir": run_dir,
            }
        )
        store = open_store(s)
        write_units(store, registry)
        stats = asyncio.run(_run(s, catalog, registry, calendar, store, lines, timeout_s))
    days = store.day_span()
    return DemoResult(store, registry, stats, days, time.monotonic() - t0)


async def _run(
    settings: Settings,
    catalog: TopicCatalog,
    registry: UnitRegistry,
    calendar: WorkCalendar,
    store: ClickHouseStore,
    lines: list[bytes],
    timeout_s: float,
) -> PipelineStats:
    await create_topics(settings, catalog)
    bar_opts: dict[str, Any] = {"unit": "ev", "file": sys.stderr, "disable": None}
    with tqdm(total=len(lines), desc="publish", **bar_opts) as bar:
        await produce_lines(settings, catalog, lines, source="demo", progress=bar.update)
    with tqdm(total=len(lines), desc="process", **bar_opts) as bar:
        worker = Worker(settings, catalog, registry, calendar, store, on_batch=bar.update)
        await worker.start()
        try:
            done = await worker.wait_for(len(lines), timeout=timeout_s)
            stats = worker.processor.stats
            deadline = time.monotonic() + 30
            while store.count("dead_letters") < stats.deadletter and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
        finally:
            await worker.stop()
    if not done:
        raise TimeoutError(
            f"the worker processed {stats.events_in} of {len(lines)} events before the "
            f"time limit; see {settings.data_dir / 'tansu.log'}"
        )
    return stats
