"""Orchestration used by the command line: topics, producing, the worker, reports.

Kept apart from :mod:`dossier_stream.cli.main` so the same steps serve ``demo``,
``worker``, ``produce``, ``report`` and the integration tests.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import time
from collections.abc import Callable, MutableMapping
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dossier_stream.core.counters import CounterKey
from dossier_stream.core.index766 import load_profile
from dossier_stream.core.indicators import report_from_totals
from dossier_stream.core.lifecycle import DossierState
from dossier_stream.core.periods import Period
from dossier_stream.core.registry import UnitRegistry
from dossier_stream.core.topics import TopicCatalog, family_of
from dossier_stream.core.workdays import WorkCalendar
from dossier_stream.settings import Settings, mask_dsn
from dossier_stream.store.reportreads import counter_totals, open_past_due_counts
from dossier_stream.store.sink import BatchingSink, ClickHouseStore, connect
from dossier_stream.stream.collector import CollectorPolicy
from dossier_stream.stream.metrics import LiveFigures, Metrics, MetricsServer, consumer_lag
from dossier_stream.stream.processor import Handled, Processor
from dossier_stream.stream.produce import (
    COMPRESSION_CODECS,
    ProduceStats,
    key_partitioner,
    produce_lines,
    start_client,
)
from dossier_stream.stream.startup import check_partition_counts

if TYPE_CHECKING:
    from dossier_stream.store.statestore import RocksTuning

__all__ = [
    "COMPRESSION_CODECS",
    "ProduceStats",
    "Worker",
    "create_topics",
    "key_partitioner",
    "open_store",
    "partition_counts",
    "previous_from_store",
    "produce_lines",
    "report_from_store",
    "rocks_tunings",
]

_LOG = logging.getLogger(__name__)


def open_store(settings: Settings, *, migrate: bool = True) -> ClickHouseStore:
    """Connect to ClickHouse and apply pending migrations (unless ``migrate`` is false).

    Raises:
        ConnectionError: ClickHouse cannot be reached or migrated (the DSN masked).
    """
    dsn = settings.clickhouse_dsn.get_secret_value()
    try:
        store = ClickHouseStore(connect(dsn))
        if migrate:
            store.migrate()
    except Exception as exc:
        raise ConnectionError(f"cannot use ClickHouse at {mask_dsn(dsn)}: {exc}") from exc
    return store


async def create_topics(settings: Settings, catalog: TopicCatalog) -> list[str]:
    """Create the catalog's topics that do not exist yet; return those created."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic  # noqa: PLC0415

    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.bootstrap_servers, **settings.kafka_options()
    )
    try:
        await start_client(admin, settings)
    except BaseException:
        await admin.close()  # no "Unclosed" warning after a failed start
        raise
    try:
        existing = set(await admin.list_topics())
        new = [
            NewTopic(
                t.name,
                num_partitions=(
                    (settings.partitions or t.partitions)
                    if family_of(t.name) == "dossier" and not t.deadletter
                    else t.partitions
                ),
                replication_factor=1,
                topic_configs=t.config(),
            )
            for t in catalog.topics
            if t.name not in existing
        ]
        if new:
            await admin.create_topics(new)
        return [t.name for t in new]
    finally:
        await admin.close()


async def partition_counts(settings: Settings, processor: Processor) -> None:
    """Give the processor's re-keying the topics' partition counts, read from the broker.

    Read before any consumer subscribes: a subscription's metadata request
    would auto-create a missing repartition topic with the broker's default
    partition count.

    Raises:
        RepartitionTopicError: a repartition topic is missing or partitioned unlike its family.
    """
    from aiokafka.client import AIOKafkaClient  # noqa: PLC0415

    client = AIOKafkaClient(
        bootstrap_servers=settings.bootstrap_servers, **settings.kafka_options()
    )
    await client.bootstrap()
    try:
        cluster = await client.fetch_all_metadata()
    finally:
        await client.close()
    topics = processor.catalog.input_topics
    processor.rekeyer.set_partitions(
        {t: len(cluster.partitions_for_topic(t) or ()) for t in topics}
    )


def rocks_tunings(settings: Settings) -> tuple[RocksTuning, RocksTuning, RocksTuning]:
    """The RocksDB settings of the dossier, counter and live-figure stores, from ``settings``.

    One memtable budget and one block cache (holding the index and filter
    blocks too) for every store of the process, and each store's key filter
    bounded: what bounds the stores' memory however many keys they hold. The
    compaction is ``DOSSIER_ROCKSDB_COMPACTION`` (universal by default: the
    levelled one rewrote the stores' last level over and over as they grew).
    """
    from dossier_stream.store.counterstore import COUNTER_TUNING  # noqa: PLC0415
    from dossier_stream.store.statestore import RocksTuning  # noqa: PLC0415

    states = RocksTuning(
        memtable_budget_bytes=settings.rocksdb_memtable_mib << 20,
        block_cache_bytes=settings.rocksdb_cache_mib << 20,
        key_filter_bytes=int(settings.key_filter_mib * (1 << 20)),
        index_in_cache=settings.rocksdb_index_in_cache,
        compaction=settings.rocksdb_compaction,
    )
    counters = replace(states, write_buffer_bytes=COUNTER_TUNING.write_buffer_bytes)
    return states, counters, replace(states, write_buffer_bytes=4 << 20)


def _state_stores(
    settings: Settings,
) -> tuple[
    Callable[[str], MutableMapping[str, DossierState]] | None,
    Callable[[str], MutableMapping[CounterKey, int]] | None,
]:
    """The factories of per-source dossier and counter stores that ``settings.state_store`` names.

    ``memory``: ``None`` for both (the processor's ``dict``); ``rocksdb``: stores
    on disk with the caches and memtable budget of the settings.
    """
    if settings.state_store == "memory":
        return None, None
    from dossier_stream.store.counterstore import open_counter_store  # noqa: PLC0415
    from dossier_stream.store.statestore import open_dossier_store  # noqa: PLC0415

    root = settings.data_dir / "states"
    _remove_dead_stores(root)
    directory = root / str(os.getpid())  # workers may share a data directory
    states, counters, _ = rocks_tunings(settings)

    def dossiers(source: str) -> MutableMapping[str, DossierState]:
        return open_dossier_store(
            directory, source, cache_entries=settings.state_cache_entries, tuning=states
        )

    def totals(source: str) -> MutableMapping[CounterKey, int]:
        return open_counter_store(
            directory, source, cache_entries=settings.counter_cache_entries, tuning=counters
        )

    return dossiers, totals


def _live_figures(
    settings: Settings, registry: UnitRegistry, clock: Callable[[], datetime] | None
) -> LiveFigures:
    """The live figures; with states on disk, their index of open dossiers bounded too."""
    if settings.state_store == "memory":
        return LiveFigures(registry, clock=clock)
    return LiveFigures(
        registry,
        clock=clock,
        spill=settings.data_dir / "states" / str(os.getpid()) / "live",
        index_entries=settings.state_cache_entries,
        tuning=rocks_tunings(settings)[2],
    )


def _remove_dead_stores(root: Path) -> None:
    """Remove the state stores that processes no longer running left (after a crash)."""
    if not root.is_dir():
        return
    for child in root.iterdir():
        if not child.name.isdigit():
            continue
        pid = int(child.name)
        if pid == os.getpid():
            continue
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            shutil.rmtree(child, ignore_errors=True)
        except PermissionError:  # alive, another user's
            continue


class Worker:
    """The stream worker in this process: runtime + processor + ClickHouse sink + metrics.

    The runtime (``settings.runtime``) is the batch consumer of
    :mod:`dossier_stream.stream.ingest` (default) or the Faust app of
    :mod:`dossier_stream.stream.app`; :attr:`app` is it either way (``start``,
    ``stop``, ``consumer``, ``rebalancing_count``).

    Metrics (:mod:`dossier_stream.stream.metrics`) are served on
    ``settings.metrics_host:settings.metrics_port`` from :meth:`start` to
    :meth:`stop` (an ephemeral port when the port is the default and busy);
    counters move with every batch, the per-unit and lag gauges every
    ``metrics_refresh_s`` seconds (and on :meth:`refresh_metrics`).

    Args:
        settings: configuration.
        catalog: topic catalog.
        registry: unit registry.
        calendar: working-day calendar.
        store: the ClickHouse store (migrated).
        on_batch: progress callback (events per processed batch).
        metrics: the metrics object (default: a new one on a private registry).
        clock: the time the per-unit gauges are computed at (default: now).
        metrics_refresh_s: seconds between refreshes of the gauges.
    """

    def __init__(
        self,
        settings: Settings,
        catalog: TopicCatalog,
        registry: UnitRegistry,
        calendar: WorkCalendar,
        store: ClickHouseStore,
        *,
        on_batch: Callable[[int], object] | None = None,
        metrics: Metrics | None = None,
        clock: Callable[[], datetime] | None = None,
        metrics_refresh_s: float = 5.0,
    ) -> None:
        from dossier_stream.stream.app import patch_tansu_leave_group  # noqa: PLC0415

        patch_tansu_leave_group()
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        self.settings, self.catalog = settings, catalog
        self.store = store
        self.settings = settings
        if metrics is None:
            metrics = Metrics(index766=load_profile(settings.index766_profile))
        self.metrics = metrics
        self.live = _live_figures(settings, registry, clock)
        self.sink = BatchingSink(
            store,
            max_rows=settings.flush_max_rows,
            interval_s=settings.flush_interval_s,
            on_flush=self.metrics.observe_flush,
        )
        dossier_store, counter_store = _state_stores(settings)
        self.processor = Processor(
            registry,
            calendar,
            catalog,
            self.sink,
            store,
            dossier_store=dossier_store,
            counter_store=counter_store,
        )
        # new sources summed from their recovered states, not after their first batch
        self.processor.on_recovered = self.live.load
        self.app: Any
        if settings.runtime == "faust":
            from dossier_stream.stream.app import build_app  # noqa: PLC0415

            self.app = build_app(
                settings, catalog, self.processor, on_batch=on_batch, on_handled=self._handled
            )
        else:
            from dossier_stream.stream.ingest import BatchConsumer  # noqa: PLC0415

            self.app = BatchConsumer(
                settings, catalog, self.processor, on_batch=on_batch, on_handled=self._handled
            )
        self.metrics_server = MetricsServer(
            self.metrics.registry,
            host=settings.metrics_host,
            port=settings.metrics_port,
            # the default port may be taken (a demo beside a worker): an explicit one may not
            fallback="metrics_port" not in settings.model_fields_set,
        )
        self._refresh_s = metrics_refresh_s
        self.collector = CollectorPolicy(
            settings.gc_sweep_s, release_s=settings.memory_release_s, release=store.release_memory
        )
        self._refresher: asyncio.Task[None] | None = None
        self._refreshing = False

    @property
    def metrics_port(self) -> int | None:
        """The port ``/metrics`` is served on (``None`` when not started)."""
        return self.metrics_server.port

    def _handled(self, handled: list[Handled]) -> None:
        self.metrics.observe(handled)
        self.live.update(handled, self.processor.engines)

    async def refresh_metrics(self) -> None:
        """Recompute the per-unit and lag gauges now."""
        self.metrics.set_live(self.live.snapshot(self.processor.engines))
        lags = await consumer_lag(self.app.consumer)
        self.metrics.set_lag(lags)
        self.metrics.set_held(getattr(self.app, "held_partitions", {}), lags)

    async def _refresh_forever(self) -> None:
        # a flag, not only cancellation: Python 3.11's asyncio.wait_for (in consumer_lag) can
        # swallow a cancellation that races with its inner call, and the loop would go on
        while self._refreshing:
            try:
                await self.refresh_metrics()
            except Exception as exc:  # a metrics problem must not stop the worker
                _LOG.warning("metrics refresh failed: %s", exc)
            self.collector.tick()  # a full collection every settings.gc_sweep_s
            if self._refreshing:
                await asyncio.sleep(self._refresh_s)

    async def start(self) -> None:
        """Serve the metrics, tune the garbage collector and start consuming.

        The garbage collector's automatic passes traverse the fold's
        buffered rows and states again and again although the fold makes
        no reference cycles (11-15 µs of CPU per event, growing with the
        run: :mod:`dossier_stream.stream.collector`). So the objects alive
        at start are frozen, automatic collection is off while the worker
        runs, and the metrics refresher collects everything every
        ``settings.gc_sweep_s`` seconds (``0``: automatic collection with
        higher thresholds, as before). :meth:`stop` turns it back on.

        Raises:
            StartupError: the co-partitioned topics disagree on their
                partition count (:mod:`dossier_stream.stream.startup`).
            OSError: the metrics port cannot be bound.
        """
        await check_partition_counts(self.settings, self.catalog)
        self.metrics_server.start()
        self.collector.start()
        try:
            if self.settings.runtime == "faust":  # the batch consumer checks on its own
                await partition_counts(self.settings, self.processor)
            await self.app.start()
        except BaseException:
            self.collector.stop()
            self.metrics_server.stop()
            raise
        self._refreshing = True
        self._refresher = asyncio.create_task(self._refresh_forever())

    async def stop(self) -> None:
        """Flush, stop, and stop serving the metrics.

        If ClickHouse refuses the last flush, the worker stops all the same:
        the events of what is not stored were never acknowledged, so they
        are not committed and the next worker reads them again.
        """
        self._refreshing = False
        if self._refresher is not None:
            self._refresher.cancel()
            # a lag read may swallow the cancellation (3.11's wait_for) and wait on
            # partition positions: the gauges are not worth a slow stop
            await asyncio.wait({self._refresher}, timeout=5.0)  # wait, not wait_for: see above
            self._refresher = None
        _LOG.info("stopping: storing what is buffered, then leaving the group")
        try:
            try:
                self.sink.flush()
            except Exception as exc:
                _LOG.warning(
                    "stopping with %s rows not stored (ClickHouse: %s); their events were not "
                    "committed and will be read again",
                    len(self.sink),
                    exc,
                )
            await self.app.stop()
        finally:
            self.processor.close()
            self.live.close()
            self.metrics_server.stop()
            self.collector.stop()

    @property
    def rebalances(self) -> int:
        """How many rebalances this worker's consumer went through since it started."""
        return int(self.app.rebalancing_count)

    async def wait_for(self, events: int, *, timeout: float, idle: float = 30.0) -> bool:
        """Wait until ``events`` messages were processed (True) or time runs out."""
        deadline = time.monotonic() + timeout
        last, last_change = -1, time.monotonic()
        while time.monotonic() < deadline:
            n = self.processor.stats.events_in
            if n >= events and len(self.sink) == 0:
                return True
            if n != last:
                last, last_change = n, time.monotonic()
            elif n > 0 and time.monotonic() - last_change > idle:
                return False
            await asyncio.sleep(0.1)
        return False


def report_from_store(
    store: ClickHouseStore,
    registry: UnitRegistry,
    period: Period,
) -> dict[str, Any]:
    """The report of ``period`` read back from ClickHouse.

    ClickHouse sums the counters per unit over the period and counts the
    dossiers open past due at its end (:mod:`dossier_stream.store.reportreads`):
    the same figures as :func:`~dossier_stream.core.indicators.build_report` on
    :meth:`ClickHouseStore.counters` and
    :func:`~dossier_stream.core.counters.open_past_due` on the decoded
    :meth:`ClickHouseStore.open_states`, without bringing a row per unit, day
    and counter or a state per open dossier into Python.
    """
    return report_from_totals(
        counter_totals(store, period.start, period.end),
        registry,
        period,
        reported_totals=store.reported_totals(period.start, period.end),
        open_past_due=open_past_due_counts(store, period.ends_at),
    )


def previous_from_store(
    store: ClickHouseStore,
    registry: UnitRegistry,
    period: Period,
) -> dict[str, Any]:
    """The report of the month before, for the comparisons with it: its counters only.

    The comparisons (the monthly form's ``tăng/giảm … so với tháng``, the
    JSON's ``previous_period``) read dossiers received, received online,
    online payments and completions on time: counters. The dossiers open past
    due at the period's end are the costliest read of a report (every stored
    dossier under ``FINAL``: 1,5 s of a 30-million-event store), so they are
    not read, and the report has no ``open_past_due`` section (a reader that
    wants it gets a ``KeyError``, not zeros).
    """
    report = report_from_totals(
        counter_totals(store, period.start, period.end),
        registry,
        period,
        reported_totals=store.reported_totals(period.start, period.end),
    )
    del report["open_past_due"]
    return report
