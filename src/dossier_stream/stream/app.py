"""The Faust application: thin wiring of Kafka topics to the processor.

Agents:

* ``dossiers`` over the four co-partitioned ``dossier.*`` topics and their
  repartition topic (one subscription: every event of a dossier arrives on
  the same partition number of each topic, hence the same worker);
* ``feedback`` over ``feedback.v1``, ``reports`` over ``unit.reports.v1``,
  each with its repartition topic;
* ``deadletters`` over ``dossier.deadletter.v1``, which logs every dead
  letter (from this worker or from ``produce``) into ClickHouse.

Each agent takes batches (``take_events``), folds them, flushes the sink and
only then returns, so Faust acknowledges (and commits) offsets of events
whose states and counters are already stored. What the processor did with
each batch goes to ``on_handled`` (the worker's metrics) before the flush.

Mis-keyed messages (:mod:`dossier_stream.stream.rekey`) are re-published by
the agent with the producer's ``send_and_wait`` before it returns, so their
source offsets are acknowledged only once the re-publish is; the same
guarantee as the batch runtime. Not Faust's ``group_by``: it re-publishes
*every* message, correctly keyed ones included (a second produce and fetch
for all of them: no fast path), through Faust's attachments, whose ordering
against the source's commit depends on ``stream_publish_on_commit``.

When ClickHouse fails, the agent retries the read or the flush in place with
a bounded exponential backoff (:mod:`dossier_stream.stream.durable`) and takes
nothing new meanwhile: consumption pauses once Faust's stream buffers are
full. A batch that could not be stored when the worker stops or a rebalance
begins is held back: never acknowledged, read again later. On revocation the
sink is flushed; if ClickHouse is down, the revoked partitions' buffered rows
are dropped (their events were not acknowledged; the next owner reads them).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import faust

from dossier_stream.core.topics import TopicCatalog
from dossier_stream.settings import Settings
from dossier_stream.stream.durable import Backoff, GiveUp, hold_back, until_done
from dossier_stream.stream.processor import (
    Handled,
    Message,
    Processor,
    dead_letter_headers,
    source_of,
)
from dossier_stream.stream.rekey import Republish

__all__ = ["build_app", "patch_tansu_leave_group"]

_LOG = logging.getLogger(__name__)
_CHUNK = 500
"""Messages folded between two checks of the sink's size within a batch."""


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
        settings: configuration (broker, security, batch size, retry bounds, ...).
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
        # No Faust table has a standby here (there are no tables: the states live in
        # ClickHouse). What this setting does decide: with 0 standbys and no changelog,
        # faust-streaming gives aiokafka the round-robin assignor instead of its own
        # co-partitioning one, and dossier.submissions.v1[3] and dossier.payments.v1[3]
        # could land on two workers that would then both fold (and overwrite) dossier:3.
        table_standby_replicas=1,
        datadir=str(settings.data_dir / "faust"),
        **({"ssl_context": kafka["ssl_context"]} if "ssl_context" in kafka else {}),
    )
    wiring = _Wiring(app, settings, catalog, processor, on_batch, on_handled)
    names = [t.name for t in catalog.dossier_topics]
    for agent_name, topics in (
        ("dossiers", [*names, catalog.repartition_topic("dossier")]),
        (
            "feedback",
            [catalog.topic_for("feedback.received"), catalog.repartition_topic("feedback")],
        ),
        ("reports", [catalog.topic_for("unit.reported_totals"), catalog.repartition_topic("unit")]),
    ):
        topic = app.topic(*topics, value_serializer="raw", key_serializer="raw")
        app.agent(topic, name=agent_name)(wiring.agent(wiring.fold_batch))
    app.agent(wiring.dead_topic, name="deadletters")(wiring.agent(wiring.log_dead_batch))
    app.on_partitions_revoked.connect(wiring.revoked)
    app.on_partitions_assigned.connect(wiring.assigned)
    return app


def _millis(message: Any) -> int | None:
    """A Faust message's timestamp (float seconds) in ms, as Kafka records it."""
    ts = getattr(message, "timestamp", None)
    return None if ts is None else round(ts * 1000)


def _message(event: Any) -> Message:
    """The processor's message of a Faust event (a null value stays ``None``: a tombstone)."""
    m = event.message
    value = event.value if event.value is not None else m.value
    return Message(m.topic, m.partition, m.offset, value, m.key, _millis(m))


class _Wiring:
    """The agents' bodies and the rebalance handlers of one app (see the module docstring)."""

    def __init__(
        self,
        app: faust.App,
        settings: Settings,
        catalog: TopicCatalog,
        processor: Processor,
        on_batch: Callable[[int], object] | None,
        on_handled: Callable[[list[Handled]], object] | None,
    ) -> None:
        self.app = app
        self.settings = settings
        self.processor = processor
        self.sink = processor.sink
        self.on_batch = on_batch
        self.on_handled = on_handled
        self.dead_topic = app.topic(
            catalog.deadletter.name, value_serializer="raw", key_serializer="raw"
        )
        self.backoff = Backoff(settings.flush_retry_min_s, settings.flush_retry_max_s)
        self.catalog = catalog
        self.repartition = {t.name for t in catalog.topics if t.repartition}

    def _give_up(self) -> str | None:
        if self.app.should_stop:
            return "stopping"
        if self.app.rebalancing:
            return "rebalancing"
        return None

    async def _store(self, what: str, action: Callable[[], object]) -> None:
        await until_done(action, what=what, backoff=self.backoff, give_up=self._give_up)

    def agent(
        self, body: Callable[[list[Any]], Awaitable[None]]
    ) -> Callable[[Any], Awaitable[None]]:
        """An agent that runs ``body`` on each batch and holds back what it did not store."""

        async def run(stream: Any) -> None:
            batches = stream.take_events(
                self.settings.batch_size, within=self.settings.flush_interval_s
            )
            async for events in batches:
                try:
                    await body(events)
                except GiveUp as exc:
                    _LOG.warning(
                        "%s events left unacknowledged, to be read again: %s",
                        hold_back(events),
                        exc,
                    )
                except BaseException:
                    hold_back(events)  # take_events acknowledges whatever we leave
                    raise

        return run

    async def _publish_dead(self, dead: list[Any]) -> None:
        for dl in dead:
            await self.dead_topic.send(key=None, value=dl.raw, headers=dead_letter_headers(dl))

    async def fold_batch(self, events: list[Any]) -> None:
        """Fold a batch of input events, store it, then publish its dead letters."""
        processor, sink = self.processor, self.sink
        repartition, origin = self.repartition, processor.rekeyer.origin
        batch: list[Message] = []
        for e in events:
            msg = _message(e)
            if msg.topic in repartition:  # folded as its origin, never re-routed again
                msg = msg._replace(
                    value=msg.value or b"", origin=origin(msg.topic, e.message.headers)
                )
            batch.append(msg)
        sources = {source_of(m.topic, m.partition) for m in batch}
        await self._store("read of stored states", lambda: processor.recover(sources))
        handled: list[Handled] = []
        rerouted: list[Republish] = []
        for start in range(0, len(batch), _CHUNK):
            handled += processor.handle(batch[start : start + _CHUNK])
            rerouted += processor.take_rerouted()
            if len(sink) >= sink.max_rows:  # a big batch: store by size as it goes
                await self._store("flush", sink.flush)
        if self.on_handled is not None:
            self.on_handled(handled)
        await self._store("flush", sink.flush)
        await self._publish_dead([h.outcome.dead_letter for h in handled if h.outcome.dead_letter])
        producer = self.app.producer
        for r in rerouted:  # acknowledged by the broker before this batch is
            await producer.send_and_wait(r.topic, r.key, r.value, r.partition, None, r.headers)
        if self.on_batch is not None:
            self.on_batch(len(batch))

    async def log_dead_batch(self, events: list[Any]) -> None:
        """Log a batch of the dead-letter topic into ClickHouse."""
        now = datetime.now(UTC)
        unroutable: list[Handled] = []
        for e in events:
            m = e.message
            handled = self.processor.log_dead_letter(
                m.topic, m.partition, m.offset, m.headers, e.value or b"", now, _millis(m)
            )
            if handled is not None:
                unroutable.append(handled)
        if self.on_handled is not None and unroutable:
            self.on_handled(unroutable)
        await self._store("flush", self.sink.flush)

    async def revoked(self, sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        """Store what is buffered (or drop the revoked partitions' part) and forget them."""
        revoked: set[Any] = args[0] if args else kwargs.get("revoked", set())
        # Faust waited for every batch to be stored or held back
        self.processor.revoke(source_of(tp.topic, tp.partition) for tp in revoked)

    async def assigned(self, sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        """Give the re-keying the topics' partition counts; log the new assignment."""
        assigned: set[Any] = args[0] if args else kwargs.get("assigned", set())
        counts = {t: self.app.consumer.topic_partitions(t) or 0 for t in self.catalog.input_topics}
        self.processor.rekeyer.set_partitions(counts)
        _LOG.info(
            "partitions assigned: %s",
            " ".join(sorted(f"{tp.topic}:{tp.partition}" for tp in assigned)) or "none",
        )
