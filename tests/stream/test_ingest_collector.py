"""The batch runtime pauses the cyclic garbage collector for a batch, and only for it."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from dossier_stream.core.registry import UnitRegistry
from dossier_stream.core.topics import load_catalog
from dossier_stream.core.workdays import WorkCalendar
from dossier_stream.settings import Settings
from dossier_stream.store.batching import BatchingSink
from dossier_stream.store.sink import ClickHouseStore, connect
from dossier_stream.stream.ingest import BatchConsumer
from dossier_stream.stream.processor import Processor


class _Probe(BatchConsumer):
    """Its batch step records whether the collector runs, and can fail or retry a read."""

    fail = False
    flaky_reads = 0
    seen: list[bool]

    async def _handle(self, records: Any) -> None:
        self.seen.append(gc.isenabled())
        left = [self.flaky_reads]

        def read() -> None:
            self.seen.append(gc.isenabled())
            if left[0]:
                left[0] -= 1
                raise ConnectionError("ClickHouse is down")

        await self._store("read of stored states", read)
        self.seen.append(gc.isenabled())
        if self.fail:
            raise RuntimeError("a bug")


@pytest.fixture
def probe(tmp_path: Path, registry: UnitRegistry, calendar: WorkCalendar) -> Iterator[_Probe]:
    catalog = load_catalog()
    settings = Settings(
        bootstrap_servers="localhost:1",
        clickhouse_dsn=SecretStr(f"chdb://{tmp_path / 'ch'}"),
        data_dir=tmp_path,
        flush_retry_min_s=0.01,
        flush_retry_max_s=0.02,
    )
    store = ClickHouseStore(connect(f"chdb://{tmp_path / 'ch'}"))
    processor = Processor(
        registry, calendar, catalog, BatchingSink(store, max_rows=1000, interval_s=1.0), store
    )
    consumer = _Probe(settings, catalog, processor)
    consumer.seen = []
    yield consumer
    store.close()  # one chdb engine path per process at a time


def test_the_collector_is_paused_for_a_batch_and_the_records_freed_after(probe: _Probe) -> None:
    assert gc.isenabled()
    records: list[Any] = [object(), object()]
    asyncio.run(probe._handle_uncollected(records))
    assert probe.seen == [False, False, False]
    assert records == []  # freed before the collector runs again
    assert gc.isenabled()


def test_a_failed_batch_keeps_its_records_and_turns_the_collector_back_on(
    probe: _Probe,
) -> None:
    probe.fail = True
    records: list[Any] = [object()]
    with pytest.raises(RuntimeError, match="a bug"):
        asyncio.run(probe._handle_uncollected(records))
    assert len(records) == 1  # to be rewound
    assert gc.isenabled()


def test_a_retried_read_runs_with_the_collector_on(probe: _Probe) -> None:
    probe.flaky_reads = 2
    asyncio.run(probe._handle_uncollected([object()]))
    # the first attempt with it paused, the two retries and the rest of the batch with it on
    assert probe.seen == [False, False, True, True, True]
    assert gc.isenabled()


def test_a_collector_turned_off_by_the_process_stays_off(probe: _Probe) -> None:
    gc.disable()
    try:
        probe.flaky_reads = 1
        asyncio.run(probe._handle_uncollected([object()]))
        assert probe.seen == [False, False, False, False]
        assert not gc.isenabled()
    finally:
        gc.enable()
