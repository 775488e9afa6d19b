"""The Faust application: thin wiring of Kafka topics to the processor.

Agents:

* ``dossiers`` over the four co-partitioned ``dossier.*`` topics (one
  subscription, no repartition: every event of a dossier arrives on the same
  partition number of each topic, hence the same worker);
* ``feedback`` over ``feedback.v1``; ``reports`` over ``unit.reports.v1``;
* ``deadletters`` over ``dossier.deadletter.v1``, which logs every dead
  letter (from this worker or from ``produce``) into ClickHouse.

Each agent takes batches (``take_events``), folds them, flushes the sink and
only then returns, so Faust acknowledges (and commits) offsets of events
whose states and counters are already stored. What the processor did with
each batch goes to ``on_handled`` (the worker's metrics) before the flush.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import faust

from dossier_stream.processor import Handled, Message, Processor, source_of
from dossier_stream.settings import Settings
from dossier_stream.topics import TopicCatalog

__all__ = ["build_app", "patch_tansu_leave_group"]

_LOG = logging.getLogger(__name__)


def patch_tansu_leave_group() -> None:
    """Make aiokafka leave the group on stop even in generation 0.

    Tansu numbers the first group generation 0 and aiokafka sends LeaveGroup
    only for generation > 0, so the next member's join would wait for the
    session to expire. Harmless on Apache Kafka (its generations start at 1).
    """
    from aiokafka import errors  # noqa: PLC0415
    from aiokafka.consumer import group_coordinator as gc  # noqa: PLC0415
    from aiokafka.protocol.group import LeaveGroupRequest  # noqa: PLC0415

    if getattr(gc.GroupCoordinator, "_dossier_stream_patched", False):
        return

    async def _maybe_leave_group(self: Any) -> None:
        if self.generation >= 0 and self._group_instance_id is None:
            try:
                await self._send_req(LeaveGroupRequest(self.group_id, self.member_id))
            except errors.KafkaError as err:
                _LOG.warning("LeaveGroup failed: %s", err)
        self.reset_generation()

    gc.GroupCoordinator._maybe_leave_group = _maybe_leave_group
    gc.GroupCoordinator._dossier_stream_patched = True


def _header(headers: Any, name: str) -> str | None:
    items = headers.items() if isinstance(headers, dict) else headers or []
    for key, value in items:
        if key == name:
            return value.decode() if isinstance(value, bytes) else str(value)
    return None


def build_app(
    settings: Settings,
    catalog: TopicCatalog,
    processor: Processor,
    *,
    on_batch: Callable[[int], object] | None = None,
    on_handled: Callable[[list[Handled]], object] | None = None,
) -> faust.App:
    """Build the Faust app around a processor.

    Args:
        settings: configuration (broker, security, batch size, ...).
        catalog: the topic catalog.
        processor: folds batches and feeds the sink.
        on_batch: called with the size of every processed batch (progress).
        on_handled: called with what the processor did with every batch
            (and with lines ``produce`` dead-lettered), before the flush.
    """
    kafka = settings.kafka_options()
    app = faust.App(
        settings.app_id,
        broker=[f"kafka://{s.strip()}" for s in settings.bootstrap_servers.split(",")],
        broker_credentials=None,
        store="memory://",
        broker_session_timeout=settings.session_timeout_s,
        broker_heartbeat_interval=max(1.0, settings.session_timeout_s / 3),
        topic_allow_declare=False,
        topic_disable_leader=True,
        consumer_auto_offset_reset="earliest",
        web_enabled=False,
        producer_acks=1,
        datadir=str(settings.data_dir / "faust"),
        **({"ssl_context": kafka["ssl_context"]} if "ssl_context" in kafka else {}),
    )
    dead_topic = app.topic(catalog.deadletter.name, value_serializer="raw", key_serializer="raw")
    within = settings.flush_interval_s

    async def publish_dead(dead: list[Any]) -> None:
        for dl in dead:
            await dead_topic.send(
                key=None,
                value=dl.raw,
                headers=[
                    ("reason", dl.reason.encode()),
                    ("code", dl.code.encode()),
                    ("detail", dl.detail[:1000].encode()),
                    ("source_topic", (dl.topic or "").encode()),
                    ("source_partition", str(dl.partition).encode()),
                    ("source_offset", str(dl.offset).encode()),
                    ("origin", b"worker"),
                ],
            )

    async def fold(stream: Any) -> None:
        async for events in stream.take_events(settings.batch_size, within=within):
            batch = [
                Message(e.message.topic, e.message.partition, e.message.offset, e.value or b"")
                for e in events
            ]
            handled = processor.handle(batch)
            if on_handled is not None:
                on_handled(handled)
            processor.sink.flush()
            await publish_dead([h.outcome.dead_letter for h in handled if h.outcome.dead_letter])
            if on_batch is not None:
                on_batch(len(batch))

    names = [t.name for t in catalog.dossier_topics]
    for agent_name, topics in (
        ("dossiers", names),
        ("feedback", [catalog.topic_for("feedback.received")]),
        ("reports", [catalog.topic_for("unit.reported_totals")]),
    ):
        topic = app.topic(*topics, value_serializer="raw", key_serializer="raw")
        app.agent(topic, name=agent_name)(fold)

    async def log_dead(stream: Any) -> None:
        async for events in stream.take_events(settings.batch_size, within=within):
            now = datetime.now(UTC)
            unroutable: list[Handled] = []
            for e in events:
                h = e.message.headers
                origin = _header(h, "origin")
                if origin == "producer":
                    code = _header(h, "code") or "unroutable"
                    unroutable.append(processor.count_producer_dead_letter(code, e.message.topic))
                processor.sink.add_dead_letter((
                    _header(h, "source_topic") or e.message.topic,
                    int(_header(h, "source_partition") or e.message.partition),
                    int(_header(h, "source_offset") or e.message.offset),
                    _header(h, "reason") or "unknown",
                    _header(h, "code") or "unknown",
                    _header(h, "detail") or "",
                    (e.value or b"").decode("utf-8", errors="replace"),
                    now,
                ))  # fmt: skip
            if on_handled is not None and unroutable:
                on_handled(unroutable)
            processor.sink.flush()

    app.agent(dead_topic, name="deadletters")(log_dead)

    @app.on_partitions_revoked.connect
    async def _revoked(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        revoked: set[Any] = args[0] if args else kwargs.get("revoked", set())
        processor.sink.flush()
        processor.release({source_of(tp.topic, tp.partition) for tp in revoked})

    _ = _revoked
    return app
