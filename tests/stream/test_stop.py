"""An idle worker stops at once, and the group reads on from where it was.

The batch runtime waits up to ``flush_interval_s`` for a batch's first
records. A stop that comes meanwhile holds nothing, so it cancels that fetch
instead of waiting for it to time out (a stop during a batch still waits for
the batch: ``BatchConsumer.stop``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

from dossier_stream.core.periods import monthly_report
from dossier_stream.core.registry import UnitRegistry
from dossier_stream.core.topics import load_catalog
from dossier_stream.core.workdays import WorkCalendar
from dossier_stream.settings import Settings
from dossier_stream.sim.simulate import SimConfig, simulate
from dossier_stream.stream.embedded import EmbeddedBroker
from dossier_stream.stream.runner import Worker, create_topics, open_store, produce_lines

pytestmark = pytest.mark.integration

_LONG_S = 30.0
"""The flush interval: a stop that waited for the idle fetch would take this long."""


def test_an_idle_worker_stops_without_waiting_for_its_fetch(
    worker_settings: Callable[..., Settings],
    broker: EmbeddedBroker,
    registry: UnitRegistry,
    calendar: WorkCalendar,
) -> None:
    catalog = load_catalog()
    settings = worker_settings(app_id="stop-test", flush_interval_s=_LONG_S)
    lines = simulate(
        SimConfig(
            monthly_report(2024, 10),
            seed=2,
            dossiers=60,
            feedback=0,
            duplicate_rate=0.0,
            invalid_rate=0.0,
        ),
        registry,
        calendar,
    ).lines
    store = open_store(settings)

    async def scenario() -> tuple[float, int]:
        await create_topics(settings, catalog)
        worker = Worker(settings, catalog, registry, calendar, store)
        await worker.start()
        await asyncio.sleep(1.0)  # the loop is waiting for a first record
        t0 = time.monotonic()
        await worker.stop()
        idle_stop = time.monotonic() - t0
        # the next worker of the group reads every event (nothing left half-done)
        await produce_lines(settings, catalog, lines)
        quick = settings.model_copy(update={"flush_interval_s": 0.5})
        worker = Worker(quick, catalog, registry, calendar, store)
        await worker.start()
        try:
            await worker.wait_for(len(lines), timeout=120)
        finally:
            await worker.stop()
        return idle_stop, worker.processor.stats.events_in

    try:
        idle_stop, events_in = asyncio.run(scenario())
        period = monthly_report(2024, 10)
        received = store.counters(period.start, period.end)
    finally:
        store.close()
    assert idle_stop < _LONG_S / 3, idle_stop  # not the fetch's 30 s
    assert events_in == len(lines)
    assert sum(v for (_, _, c), v in received.items() if c == "received") == 60
