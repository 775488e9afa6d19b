"""The batch runtime: one aiokafka consumer, batches folded, stored, then committed.

This is the worker's default runtime (``DOSSIER_RUNTIME=batch``). It does
what the Faust app of :mod:`dossier_stream.stream.app` does, without Faust's
per-message path (a task pair and an ``asyncio.wait`` per message, an
``Event`` and an acknowledgement per message, a ``sleep(0)`` per event:
about 100 µs per message on the benchmark machine, more than the whole
fold; see ``bench/README.md``).

* **One consumer** (group ``DOSSIER_APP_ID``) subscribes to every input
  topic: the four ``dossier.*`` topics, ``feedback.v1``,
  ``unit.reports.v1``, their repartition topics and the dead-letter topic.
  It uses the *range* assignor, which gives every member the same partition
  numbers of topics with the same partition count: every event of a dossier
  (whatever its ``dossier.*`` topic) lands on the same worker. With
  ``DOSSIER_ASSIGN_ALL`` (a worker alone on its topics, as the embedded
  demo) it assigns itself every partition instead: no group join (half the
  session timeout with the embedded broker) and no rebalances; it reads on
  from the group's commits and commits there as a member would.
* **Mis-keyed messages** (a key that does not belong to the partition they
  arrived on) are re-published to their family's repartition topic before
  the batch is committed, and folded from there by the partition's owner
  (:mod:`dossier_stream.stream.rekey`).
* **Undecodable batches** hold their partition at that offset while the
  others go on (:mod:`dossier_stream.stream.holds`).
* **Co-partitioned topics read in step**: a source's partitions (the four
  ``dossier.*`` topics' partition *n*) more than ``DOSSIER_ALIGN_MS`` ahead
  of the others by record timestamp are left out of ``getmany`` until the
  others catch up (:mod:`dossier_stream.stream.align`), so a backlog is
  folded in about the order it was published.
* **Batches.** ``getmany`` returns what the fetcher holds; the loop keeps
  taking until ``DOSSIER_BATCH_SIZE`` messages or ``DOSSIER_FLUSH_INTERVAL_S``
  after the batch's first message (a backlog fills batches at once; a live
  feed is stored at least that often, which bounds freshness).
* **Stored before committed.** A batch is folded
  (:meth:`~dossier_stream.stream.processor.Processor.handle`), flushed, its dead
  letters published, and only then are its offsets committed. A failed read
  or flush is retried in place with backoff (:mod:`dossier_stream.stream.durable`);
  nothing new is fetched meanwhile (aiokafka's fetcher holds at most one
  response per partition), and the background heartbeat keeps the member in
  its group. A retry that gives up (stop or rebalance) commits nothing: the
  batch is read again by whoever owns its partitions next.
* **The garbage collector** is the worker's to set
  (:mod:`dossier_stream.stream.collector`: no automatic passes, a sweep now
  and then); a batch's records are let go as soon as it is stored.
* **Rebalances** (eager): the revocation waits for the batch in progress
  (which gives up its retries at once), flushes (or drops the revoked
  partitions' rows if ClickHouse is down: their events were not committed)
  and forgets the revoked sources. aiokafka creates a new assignment whose
  positions start at the committed offsets. A batch begun before the
  rebalance is dropped unprocessed, and its partitions are sought back to
  their committed offsets: a ``getmany`` that waited through the rebalance
  hands over records of the new assignment, whose positions have moved past
  them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from operator import attrgetter
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.coordinator.assignors.range import RangePartitionAssignor
from aiokafka.errors import KafkaError

from dossier_stream.core.topics import TopicCatalog
from dossier_stream.settings import Settings
from dossier_stream.stream.align import Aligner
from dossier_stream.stream.durable import Backoff, GiveUp, until_done
from dossier_stream.stream.holds import PartitionGuard
from dossier_stream.stream.processor import (
    Handled,
    Message,
    Processor,
    dead_letter_headers,
    source_of,
)
from dossier_stream.stream.rekey import Republish

__all__ = ["BatchConsumer", "consumer_options"]

_LOG = logging.getLogger(__name__)
_CHUNK = 500
"""Messages folded between two checks of the sink's size within a batch."""
_message = tuple.__new__
"""``Message`` from a full tuple, in C (the named tuple's ``__new__`` is Python code)."""
_DEAD_LETTER = attrgetter("outcome.dead_letter")


def consumer_options(settings: Settings) -> dict[str, Any]:
    """The worker's aiokafka consumer options (group, offsets, fetch sizes, security).

    ``fetch_max_bytes`` is what bounds the fetched records a partition keeps
    until they are handed over: the embedded broker (Tansu) answers a fetch
    with up to that many bytes *per partition*, whatever
    ``max_partition_fetch_bytes`` says (measured: 17.000 records of 300 B for
    a 1 MiB per-partition limit), and a partition the
    :class:`~dossier_stream.stream.align.Aligner` holds back keeps its buffer
    (``DOSSIER_FETCH_MAX_KIB``; ``bench/README.md``, memory for the 30-million
    run). Against Apache Kafka both are the documented limits.
    """
    s = settings
    fetch_bytes = s.fetch_max_kib * 1024
    return {
        "bootstrap_servers": s.bootstrap_servers,
        "group_id": s.app_id,
        "client_id": f"{s.app_id}-worker",
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "partition_assignment_strategy": (RangePartitionAssignor,),
        "session_timeout_ms": int(s.session_timeout_s * 1000),
        "heartbeat_interval_ms": int(max(1.0, s.session_timeout_s / 3) * 1000),
        # a flush retried through a long ClickHouse outage must not cost the membership
        "max_poll_interval_ms": 3_600_000,
        "fetch_max_wait_ms": 100,
        "fetch_max_bytes": fetch_bytes,
        "max_partition_fetch_bytes": fetch_bytes,
        **s.kafka_options(),
    }


class BatchConsumer:
    """The worker's consumer loop (see the module docstring).

    Exposes what the worker and its metrics read of a runtime: :attr:`consumer`
    (for the lag), :attr:`rebalancing`, :attr:`rebalancing_count`,
    :attr:`should_stop`, :meth:`start` and :meth:`stop`.

    Args:
        settings: broker, group, batch and retry settings.
        catalog: the topic catalog (input and dead-letter topics).
        processor: folds batches and feeds the sink.
        on_batch: called with the size of every stored batch (progress).
        on_handled: called with what the processor did with every batch
            (and with lines ``produce`` dead-lettered), before the flush.
    """

    def __init__(
        self,
        settings: Settings,
        catalog: TopicCatalog,
        processor: Processor,
        *,
        on_batch: Callable[[int], object] | None = None,
        on_handled: Callable[[list[Handled]], object] | None = None,
    ) -> None:
        self.settings = settings
        self.catalog = catalog
        self.processor = processor
        self.sink = processor.sink
        self.on_batch = on_batch
        self.on_handled = on_handled
        self.topics = [*catalog.input_topics, catalog.deadletter.name]
        self.repartition = {t.name for t in catalog.topics if t.repartition}
        self.backoff = Backoff(settings.flush_retry_min_s, settings.flush_retry_max_s)
        self.guard = PartitionGuard(self.backoff)
        self.consumer: Any = None
        self.aligner: Aligner | None = None
        self.producer: Any = None
        self.rebalancing = False
        self.rebalancing_count = 0
        self.should_stop = False
        self.first_message_at: float | None = None
        """``time.monotonic()`` when the first message was fetched (for the benchmark)."""
        self._epoch = 0  # bumped by every revocation: a batch from an older epoch is stale
        self._busy = asyncio.Lock()  # held while a batch is handled, and by a revocation
        self._task: asyncio.Task[None] | None = None
        self._waiting_first = False  # awaiting a batch's first records: nothing held yet

    async def start(self) -> None:
        """Connect the producer and the consumer, join the group and start the loop."""
        s = self.settings
        kafka = s.kafka_options()
        self.producer = AIOKafkaProducer(
            bootstrap_servers=s.bootstrap_servers, acks=1, linger_ms=5, **kafka
        )
        self.consumer = AIOKafkaConsumer(**consumer_options(s))
        if s.align_ms > 0:
            dead = self.catalog.deadletter.name
            self.aligner = Aligner(
                self.consumer, s.align_ms, lambda t, p: None if t == dead else source_of(t, p)
            )
        if not s.assign_all:
            ConsumerRebalanceListener.register(_Listener)
            self.consumer.subscribe(self.topics, listener=_Listener(self))
        await self.producer.start()
        try:
            # before the consumer starts: its subscription's metadata request would
            # auto-create a missing repartition topic with the broker's default partitions
            counts = await self._partition_counts()
            everything = {TopicPartition(t, p) for t, n in counts.items() for p in range(n)}
            if s.assign_all:  # positions from the group's commits, as after a join
                self.consumer.assign(sorted(everything))
            await self.consumer.start()
        except BaseException:
            await self.producer.stop()
            raise
        if s.assign_all:
            await self.assigned(everything)
        if self.aligner is not None:
            self.aligner.started()
        self._task = asyncio.create_task(self._run(), name="dossier-stream-batches")

    async def _partition_counts(self) -> dict[str, int]:
        """Give the re-keying the partition counts of the topics on the broker; return them."""
        cluster = await self.producer.client.fetch_all_metadata()  # creates no topic
        counts = {t: len(cluster.partitions_for_topic(t) or ()) for t in self.topics}
        self.processor.rekeyer.set_partitions(counts)
        return counts

    @property
    def held_partitions(self) -> dict[tuple[str, int], int]:
        """Partitions held at an undecodable batch: ``{(topic, partition): offset}``."""
        return dict(self.guard.held_offsets)

    async def stop(self) -> None:
        """Finish the batch in progress (or give it up), leave the group, close."""
        self.should_stop = True
        if self._task is not None:
            if self._waiting_first:  # no batch begun: nothing to finish, the fetch need not end
                self._task.cancel()
            done, _ = await asyncio.wait({self._task}, timeout=self.settings.flush_interval_s + 5)
            if not done:
                self._task.cancel()
                await asyncio.wait({self._task}, timeout=5)
            self._task = None
        # every stored batch is committed already: leaving the group and closing are
        # courtesies, bounded so a broker that does not answer cannot hold the stop
        limit = self.settings.session_timeout_s + 10
        for name, client in (("consumer", self.consumer), ("producer", self.producer)):
            if client is None:
                continue
            closing = asyncio.ensure_future(client.stop())
            # asyncio.wait, not wait_for: 3.11's wait_for waits for the cancelled task to end
            done, _ = await asyncio.wait({closing}, timeout=limit)
            if not done:
                closing.cancel()
                _LOG.warning("the Kafka %s did not close in %s s; stopping anyway", name, limit)
            elif (exc := closing.exception()) is not None:
                _LOG.warning("closing the Kafka %s failed: %s", name, exc)
        _LOG.info("batch consumer stopped")

    async def _run(self) -> None:
        while not self.should_stop:
            records: list[Any] = []
            epoch = self._epoch
            try:
                epoch, records = await self._next_batch()
                if records:
                    async with self._busy:
                        if epoch != self._epoch:  # a rebalance came between: read again
                            _LOG.info("dropped a batch fetched before a rebalance")
                            await self._from_commits(records)
                            continue
                        await self._handle(records)
                        records.clear()  # a failed batch keeps them, to be rewound
            except GiveUp as exc:
                _LOG.warning("batch left uncommitted, to be read again: %s", exc)
            except asyncio.CancelledError:
                raise
            except Exception:
                # a bug, not bad input (that is dead-lettered): retry the batch from its
                # first offsets after a pause, so nothing is skipped; the lag alert fires
                _LOG.exception("batch failed; reading it again in %s s", self.backoff.max_s)
                if epoch == self._epoch:
                    self._rewind(records)
                else:  # its first offsets may lie past uncommitted ones of the new assignment
                    await self._from_commits(records)
                await asyncio.sleep(self.backoff.max_s)

    async def _from_commits(self, records: Sequence[Any]) -> None:
        """Read the partitions of a batch begun before a rebalance again from their commits.

        A ``getmany`` that waited through the rebalance returns records of the
        *new* assignment, and aiokafka has moved those partitions' positions
        past them: left there, the next batch would start after them and
        commit past events never folded. Seeking every partition of the batch
        still assigned to its committed offset (the beginning if it has none)
        reads them again; what was folded before is absorbed by the fold.
        """
        self.guard.forget_positions()
        if self.aligner is not None:
            self.aligner.forget()
        partitions = {TopicPartition(r.topic, r.partition) for r in records}
        await self.guard.restore(self.consumer, partitions)

    def _rewind(self, records: Sequence[Any]) -> None:
        """Seek each partition of ``records`` back to its first record's offset."""
        first: dict[tuple[str, int], int] = {}
        for r in records:
            first.setdefault((r.topic, r.partition), r.offset)
        for (topic, partition), offset in first.items():
            try:
                tp = TopicPartition(topic, partition)
                self.consumer.seek(tp, offset)
                self.guard.rewound(tp, offset)
                if self.aligner is not None:
                    self.aligner.rewound(tp)
            except Exception as exc:  # revoked meanwhile: its next owner reads it
                _LOG.warning("cannot rewind %s:%s: %s", topic, partition, exc)

    async def _next_batch(self) -> tuple[int, list[Any]]:
        """Up to ``batch_size`` records, waiting at most ``flush_interval_s`` after the first."""
        s = self.settings
        epoch = self._epoch
        guard, consumer = self.guard, self.aligner or self.consumer
        self._waiting_first = True
        try:
            records = await guard.getmany(consumer, int(s.flush_interval_s * 1000), s.batch_size)
        finally:
            self._waiting_first = False
        if not records:
            return epoch, records
        if self.first_message_at is None:
            self.first_message_at = time.monotonic()
        deadline = time.monotonic() + s.flush_interval_s
        while len(records) < s.batch_size and not self.should_stop:
            left = deadline - time.monotonic()
            if left <= 0 or epoch != self._epoch:
                break
            records += await guard.getmany(
                consumer, max(1, int(left * 1000)), s.batch_size - len(records)
            )
        return epoch, records

    def _give_up(self) -> str | None:
        if self.should_stop:
            return "stopping"
        if self.rebalancing:
            return "rebalancing"
        return None

    async def _store(self, what: str, action: Callable[[], object]) -> None:
        await until_done(action, what=what, backoff=self.backoff, give_up=self._give_up)

    async def _handle(self, records: Sequence[Any]) -> None:
        """Fold, store, publish the dead letters and the mis-keyed messages, commit."""
        processor, sink = self.processor, self.sink
        dead_topic = self.catalog.deadletter.name
        repartition, origin = self.repartition, processor.rekeyer.origin
        batch: list[Message] = []
        append = batch.append
        dead_in: list[Any] = []
        ends: dict[Any, int] = {}
        for r in records:
            topic = r.topic
            ends[topic, r.partition] = r.offset + 1
            if topic == dead_topic:
                dead_in.append(r)
            elif topic in repartition:
                append(
                    Message(
                        topic,
                        r.partition,
                        r.offset,
                        r.value or b"",
                        r.key,
                        r.timestamp,
                        origin(topic, r.headers),
                    )
                )
            else:
                # a null value stays None: a tombstone (the processor decides what it means)
                append(
                    _message(
                        Message, (topic, r.partition, r.offset, r.value, r.key, r.timestamp, None)
                    )
                )
        # one source per partition read (a repartition topic's is its family's)
        sources = {source_of(t, p) for t, p in ends if t != dead_topic}
        await self._store("read of stored states", lambda: processor.recover(sources))
        handled: list[Handled] = []
        rerouted: list[Republish] = []
        for start in range(0, len(batch), _CHUNK):
            handled += processor.handle(batch[start : start + _CHUNK])
            rerouted += processor.take_rerouted()
            if len(sink) >= sink.max_rows:  # a big batch: store by size as it goes
                await self._store("flush", sink.flush)
        dead_out = list(filter(None, map(_DEAD_LETTER, handled)))
        handled += self._log_dead(dead_in)  # lines produce could not route: counted here
        if self.on_handled is not None and handled:
            self.on_handled(handled)
        await self._store("flush", sink.flush)
        await self._publish(dead_out)
        await self._republish(rerouted)  # acknowledged before the source offsets are committed
        await self._commit(ends)
        if self.on_batch is not None and batch:
            self.on_batch(len(batch))

    def _log_dead(self, records: Sequence[Any]) -> list[Handled]:
        """Buffer the dead-letter topic's records for ``dead_letters``; count producer ones."""
        now = datetime.now(UTC)
        log = self.processor.log_dead_letter
        handled = (
            log(r.topic, r.partition, r.offset, r.headers, r.value or b"", now, r.timestamp)
            for r in records
        )
        return [h for h in handled if h is not None]

    async def _publish(self, dead: Sequence[Any]) -> None:
        if not dead:
            return
        topic = self.catalog.deadletter.name
        sent = [
            await self.producer.send(topic, dl.raw, headers=dead_letter_headers(dl)) for dl in dead
        ]
        await asyncio.gather(*sent)

    async def _republish(self, rerouted: Sequence[Republish]) -> None:
        """Publish the mis-keyed messages to their repartition topics; wait for the acks."""
        if not rerouted:
            return
        send = self.producer.send
        sent = [
            await send(r.topic, r.value, key=r.key, partition=r.partition, headers=r.headers)
            for r in rerouted
        ]
        await asyncio.gather(*sent)

    async def _commit(self, ends: dict[Any, int]) -> None:
        offsets = {TopicPartition(t, p): o for (t, p), o in ends.items()}
        try:
            await self.consumer.commit(offsets)
        except (KafkaError, AssertionError) as exc:
            # the group moved on (a rebalance): the next owner reads these again, and the
            # fold ignores what it already holds
            _LOG.warning("commit of %s partitions failed: %s", len(offsets), exc)

    async def revoked(self, revoked: set[Any]) -> None:
        """Wait for the batch in progress, store what is buffered, forget the sources."""
        self.rebalancing = True
        self._epoch += 1
        self.guard.forget()
        if self.aligner is not None:
            self.aligner.forget()
        async with self._busy:
            self.processor.revoke(source_of(tp.topic, tp.partition) for tp in revoked)

    async def assigned(self, assigned: set[Any]) -> None:
        """Log the new assignment (the states are read with the first batch of each source)."""
        self.rebalancing = False
        self.rebalancing_count += 1
        self.guard.forget()  # the new assignment starts at the committed offsets, unpaused
        if self.aligner is not None:
            self.aligner.forget()
        _LOG.info(
            "partitions assigned: %s",
            " ".join(sorted(f"{tp.topic}:{tp.partition}" for tp in assigned)) or "none",
        )


class _Listener:
    """aiokafka's rebalance listener, forwarding to the :class:`BatchConsumer`.

    Registered as a virtual subclass of aiokafka's ``ConsumerRebalanceListener``
    (which ``subscribe`` checks with ``isinstance``) when the consumer starts.
    """

    def __init__(self, owner: BatchConsumer) -> None:
        self.owner = owner

    async def on_partitions_revoked(self, revoked: set[Any]) -> None:
        await self.owner.revoked(revoked)

    async def on_partitions_assigned(self, assigned: set[Any]) -> None:
        await self.owner.assigned(assigned)
