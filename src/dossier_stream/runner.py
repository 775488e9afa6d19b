"""Orchestration used by the command line: topics, producing, the worker, reports.

Kept apart from :mod:`dossier_stream.cli` so the same steps serve ``demo``,
``worker``, ``produce``, ``report`` and the integration tests.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from dossier_stream.codec import loads_dossier
from dossier_stream.counters import open_past_due
from dossier_stream.periods import Period
from dossier_stream.processor import Processor
from dossier_stream.registry import UnitRegistry
from dossier_stream.report import build_report
from dossier_stream.settings import Settings, mask_dsn
from dossier_stream.sink import BatchingSink, ClickHouseStore, connect
from dossier_stream.topics import TopicCatalog
from dossier_stream.workdays import WorkCalendar

__all__ = [
    "ProduceStats",
    "Worker",
    "create_topics",
    "open_store",
    "produce_lines",
    "report_from_store",
]

_LOG = logging.getLogger(__name__)
_KEY_FIELD = {"dossier": "dossier_id", "feedback": "feedback_id", "unit": "unit_code"}


def open_store(settings: Settings) -> ClickHouseStore:
    """Connect to ClickHouse and apply pending migrations."""
    dsn = settings.clickhouse_dsn.get_secret_value()
    try:
        store = ClickHouseStore(connect(dsn))
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
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        new = [
            NewTopic(
                t.name,
                num_partitions=(
                    (settings.partitions or t.partitions)
                    if t in catalog.dossier_topics
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


@dataclass(slots=True)
class ProduceStats:
    """What ``produce`` sent where."""

    sent: int = 0
    unroutable: int = 0
    per_topic: dict[str, int] = field(default_factory=dict)


def _route(raw: bytes, catalog: TopicCatalog) -> tuple[str | None, bytes | None]:
    """Topic and key of a line, or ``(None, None)`` when no topic carries it."""
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None, None
    if not isinstance(obj, dict) or not isinstance(obj.get("event_type"), str):
        return None, None
    try:
        topic = catalog.topic_for(obj["event_type"])
    except KeyError:
        return None, None
    key = obj.get(_KEY_FIELD[topic.split(".", 1)[0]])
    return topic, key.encode() if isinstance(key, str) else None


async def produce_lines(
    settings: Settings,
    catalog: TopicCatalog,
    lines: Sequence[bytes],
    *,
    rate: float | None = None,
    source: str = "produce",
    progress: Callable[[int], object] | None = None,
) -> ProduceStats:
    """Publish JSONL lines to their topics by ``event_type``.

    A line whose ``event_type`` names a contract topic goes there even if it
    is otherwise invalid (the worker dead-letters it with its source offset);
    a line no topic carries goes straight to the dead-letter topic.

    Args:
        settings: broker settings.
        catalog: the topic catalog.
        lines: message values.
        rate: at most this many messages per second (None: as fast as possible).
        source: a name recorded on dead letters of unroutable lines.
        progress: called with the number of lines sent since the last call.
    """
    from aiokafka import AIOKafkaProducer  # noqa: PLC0415

    producer = AIOKafkaProducer(
        bootstrap_servers=settings.bootstrap_servers,
        linger_ms=5,
        max_batch_size=256 * 1024,
        max_request_size=2 * 1024 * 1024,
        **settings.kafka_options(),
    )
    await producer.start()
    stats = ProduceStats()
    dead = catalog.deadletter.name
    t0 = time.monotonic()
    try:
        pending: list[asyncio.Future[Any]] = []
        for n, raw in enumerate(lines, start=1):
            topic, key = _route(raw, catalog)
            if topic is None:
                stats.unroutable += 1
                headers = [
                    ("reason", b"unroutable"), ("code", b"unroutable"),
                    ("detail", b"no topic carries this line's event_type"),
                    ("source_topic", source.encode()), ("source_partition", b"0"),
                    ("source_offset", str(n).encode()), ("origin", b"producer"),
                ]  # fmt: skip
                pending.append(await producer.send(dead, raw, headers=headers))
                topic = dead
            else:
                pending.append(await producer.send(topic, raw, key=key))
            stats.sent += 1
            stats.per_topic[topic] = stats.per_topic.get(topic, 0) + 1
            if len(pending) >= 5000:
                await asyncio.gather(*pending)
                if progress:
                    progress(len(pending))
                pending = []
            if rate:
                ahead = n / rate - (time.monotonic() - t0)
                if ahead > 0:
                    await asyncio.sleep(ahead)
        await asyncio.gather(*pending)
        if progress and pending:
            progress(len(pending))
    finally:
        await producer.stop()
    return stats


class Worker:
    """The stream worker in this process: Faust app + processor + ClickHouse sink.

    Args:
        settings: configuration.
        catalog: topic catalog.
        registry: unit registry.
        calendar: working-day calendar.
        store: the ClickHouse store (migrated).
        on_batch: progress callback (events per processed batch).
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
    ) -> None:
        from dossier_stream.app import build_app, patch_tansu_leave_group  # noqa: PLC0415

        patch_tansu_leave_group()
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        self.store = store
        self.sink = BatchingSink(
            store, max_rows=settings.flush_max_rows, interval_s=settings.flush_interval_s
        )
        self.processor = Processor(registry, calendar, catalog, self.sink, store)
        self.app = build_app(settings, catalog, self.processor, on_batch=on_batch)

    async def start(self) -> None:
        """Start consuming."""
        await self.app.start()

    async def stop(self) -> None:
        """Flush and stop."""
        self.sink.flush()
        await self.app.stop()

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
    """The report of ``period`` read back from ClickHouse."""
    open_states = [loads_dossier(raw) for raw in store.open_states(period.ends_at)]
    return build_report(
        store.counters(period.start, period.end),
        registry,
        period,
        reported_totals=store.reported_totals(period.start, period.end),
        open_past_due=open_past_due(open_states, period.ends_at),
    )
