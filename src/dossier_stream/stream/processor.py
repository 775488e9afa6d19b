"""The worker's per-partition processing, between the Kafka shell and the sink.

One :class:`~dossier_stream.core.engine.Engine` per *source* — a partition of the
co-partitioned ``dossier.*`` topics (``dossier:3``), of ``feedback.v1``
(``feedback:0``) or of ``unit.reports.v1`` (``unit:0``). Its counters are the
absolute totals of that source, which the sink upserts; its states are
written to the fact tables in the same flush.

Durability without a changelog: on assignment of a partition the states of
its source are read back from ``dossier_facts`` / ``feedback_facts`` (and the
latest ``unit.reported_totals`` per unit and period with its event order from
``unit_reports``, so a late, older report cannot replace a newer one after a
restart) and the counters are *recomputed* from them (they are a pure
function of state) and written again, so the counters always agree with the
stored states, whatever point a crash interrupted. Messages after the last flush are redelivered
(offsets are acknowledged only after their batch is flushed) and the fold
ignores those it already holds. This is what the embedded broker needs (its
end-offset reporting breaks Faust's changelog recovery) and works the same on
Apache Kafka.

A message with a null value (a tombstone) on ``unit.reports.v1`` deletes the
reports of the unit its key names: their ``unit_reports`` rows are written
again marked ``deleted``, in the same flush order as any report, so the
deletion survives a restart. A null value anywhere else is a dead letter
``null_value``. Every dead letter gets its identity here
(:func:`~dossier_stream.store.deadletters.letter_id` of the source record).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, MutableMapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from functools import cache, partial
from itertools import repeat
from typing import Any, Final, NamedTuple

from dossier_stream.core.counters import CounterKey, accumulate, dossier_counters, feedback_counters
from dossier_stream.core.engine import DeadLetter, Engine, Outcome, PipelineStats
from dossier_stream.core.events import (
    DOSSIER_EVENT_MODELS,
    Event,
    FeedbackReceived,
    FeedbackResolved,
    UnitReportedTotals,
)
from dossier_stream.core.lifecycle import DossierState, FeedbackState
from dossier_stream.core.registry import UnitRegistry
from dossier_stream.core.topics import TopicCatalog
from dossier_stream.core.workdays import WorkCalendar
from dossier_stream.store.codec import (
    DOSSIER_FACT_COLUMNS,
    dossier_fact,
    dumps_feedback,
    loads_dossier,
    loads_feedback,
)
from dossier_stream.store.deadletters import letter_id
from dossier_stream.store.sink import BatchingSink, ClickHouseStore
from dossier_stream.stream.rekey import Origin, Rekeyer, Republish

__all__ = [
    "DOSSIER_FACT_COLUMNS",
    "Handled",
    "Message",
    "Processor",
    "dead_letter_headers",
    "dead_letter_row",
    "dossier_fact",
    "source_of",
]

_LOG = logging.getLogger(__name__)

FEEDBACK_FACT_COLUMNS: Final = (
    "feedback_id",
    "source",
    "unit_code",
    "due_at",
    "resolved_at",
    "state",
)
REPORT_COLUMNS: Final = (
    "unit_code",
    "source",
    "period_start",
    "period_end",
    "received_total",
    "event_id",
    "occurred_at",
    "deleted",
)


class Message(NamedTuple):
    """One consumed message (a named tuple: built once per message, cheaply).

    ``value`` is ``None`` for a tombstone (a null value), whose ``key`` then
    names what it deletes; ``timestamp`` (ms) is part of a dead letter's identity.
    ``origin`` is set on a message of a repartition topic: where it was first
    read (:mod:`dossier_stream.stream.rekey`).
    """

    topic: str
    partition: int
    offset: int
    value: bytes | None
    key: bytes | None = None
    timestamp: int | None = None
    origin: Origin | None = None


class Handled(NamedTuple):
    """What the processor did with one message (for metrics; the shell acts on it).

    Attributes:
        source: the source whose engine handled it (``dossier:3``); empty for
            a line ``produce`` could not route.
        topic: the topic it was consumed from.
        outcome: applied, duplicate or dead-lettered, with the event and its
            counter changes.
    """

    source: str
    topic: str
    outcome: Outcome


_handled = tuple.__new__
"""``Handled`` from a tuple, in C: ``_handled(Handled, (source, topic, outcome))``."""
_DOSSIER_EVENT_TYPES: Final = frozenset(DOSSIER_EVENT_MODELS)
"""The classes of :data:`~dossier_stream.core.events.DossierEvent` (a set lookup per event)."""


def _dead(msg: Message, source: str, topic: str, out: Outcome, dead: DeadLetter) -> Handled:
    """The ``Handled`` of a dead letter, with its identity: where it came from, with the
    record's time (a topic deleted and created again repeats offsets, not timestamps)."""
    dead = replace(dead, letter_id=letter_id(msg.topic, msg.partition, msg.offset, msg.timestamp))
    return Handled(source, topic, replace(out, dead_letter=dead))


@cache  # called for every message, with a few dozen distinct arguments
def source_of(topic: str, partition: int) -> str:
    """The source name of a topic partition (the dossier topics share one per partition)."""
    family = topic.split(".", 1)[0]
    return f"{family}:{partition}"


def _header(headers: Any, name: str) -> str | None:
    items = headers.items() if isinstance(headers, dict) else headers or []
    for key, value in items:
        if key == name:
            return value.decode() if isinstance(value, bytes) else str(value)
    return None


def dead_letter_headers(dl: DeadLetter) -> list[tuple[str, bytes]]:
    """The headers a dead letter is published with (why, where it came from, its id)."""
    return [
        ("id", dl.letter_id.encode()),
        ("reason", dl.reason.encode()),
        ("code", dl.code.encode()),
        ("detail", dl.detail[:1000].encode()),
        ("source_topic", (dl.topic or "").encode()),
        ("source_partition", str(dl.partition).encode()),
        ("source_offset", str(dl.offset).encode()),
        ("origin", b"worker"),
    ]


def dead_letter_row(
    topic: str,
    partition: int,
    offset: int,
    headers: Any,
    value: bytes,
    now: datetime,
    timestamp: int | None = None,
) -> tuple[tuple[Any, ...], str | None]:
    """The ``dead_letters`` row of a message of the dead-letter topic.

    Args:
        topic: the topic it was read from (the dead-letter topic).
        partition: its partition.
        offset: its offset.
        headers: its headers (a list of ``(name, bytes)`` or a mapping).
        value: the original bytes, kept as they are.
        now: when it is logged.
        timestamp: the record's timestamp (ms); with its coordinates, the
            letter's id when its headers carry none (a letter from elsewhere).

    Returns:
        The row, and the reason code when ``produce`` wrote the letter (a line it
        could not route, which no worker counted yet), else ``None``.
    """
    producer_code = None
    if _header(headers, "origin") == "producer":
        producer_code = _header(headers, "code") or "unroutable"
    row = (
        _header(headers, "id") or letter_id(topic, partition, offset, timestamp),
        _header(headers, "source_topic") or topic,
        int(_header(headers, "source_partition") or partition),
        int(_header(headers, "source_offset") or offset),
        _header(headers, "reason") or "unknown",
        _header(headers, "code") or "unknown",
        _header(headers, "detail") or "",
        value,
        1,
        now,
    )
    return row, producer_code


def _destroy(engine: Engine) -> None:
    """Destroy the engine's dossier and counter stores if they have files (RocksDB caches)."""
    for store in (engine.dossiers, engine.counters):
        destroy = getattr(store, "destroy", None)
        if callable(destroy):
            destroy()


def _trim(counters: object) -> None:
    """Bound a counter store's memory (its ``trim()``), once its totals are handed over."""
    trim = getattr(counters, "trim", None)
    if callable(trim):
        trim()


class Processor:
    """Folds batches of messages per source and feeds the batching sink.

    Args:
        registry: unit registry.
        calendar: working-day calendar.
        catalog: topic catalog (events on the wrong topic are dead-lettered).
        sink: the batching writer.
        store: the ClickHouse store (for recovery reads).
        dossier_store: makes the dossier state store of a source (a new, empty
            mapping; e.g. :func:`~dossier_stream.store.statestore.open_dossier_store`);
            a ``dict`` when omitted. A store with a ``destroy()`` method is
            destroyed when its source is released.
        counter_store: makes the counter store of a source (a new, empty
            mapping; e.g. :func:`~dossier_stream.store.counterstore.open_counter_store`);
            a ``dict`` when omitted. A store with a ``trim()`` method is
            trimmed after each batch has handed its totals to the sink (the
            next batch needs only the totals it touches); one with
            ``destroy()`` is destroyed when its source is released.
    """

    def __init__(
        self,
        registry: UnitRegistry,
        calendar: WorkCalendar,
        catalog: TopicCatalog,
        sink: BatchingSink,
        store: ClickHouseStore,
        *,
        dossier_store: Callable[[str], MutableMapping[str, DossierState]] | None = None,
        counter_store: Callable[[str], MutableMapping[CounterKey, int]] | None = None,
    ) -> None:
        self.registry = registry
        self.calendar = calendar
        self.catalog = catalog
        self.sink = sink
        self.store = store
        self.dossier_store = dossier_store
        self.counter_store = counter_store
        self.engines: dict[str, Engine] = {}
        self.on_recovered: Callable[[Mapping[str, Engine]], object] | None = None
        """Called with :attr:`engines` when :meth:`recover` has registered new sources."""
        self.rekeyer = Rekeyer(catalog)
        """Set its partition counts (``rekeyer.set_partitions``) before the first batch."""
        self._retired = PipelineStats()
        self._rerouted: list[Republish] = []
        # counters whose totals moved since the sink last took them, per source: handed
        # over (and the stores trimmed) at the start of each flush, once per batch
        self._touched: dict[str, set[CounterKey]] = {}
        sink.before_flush(self.hand_over_counters)

    def _engine(self, source: str) -> Engine:
        engine = self.engines.get(source)
        if engine is None:
            self.recover([source])
            engine = self.engines[source]
        return engine

    def count_producer_dead_letter(self, code: str, topic: str | None = None) -> Handled:
        """Count a line that ``produce`` could not route (it never reached an input topic).

        Args:
            code: the reason code from the dead letter's headers.
            topic: the topic it was read from (default: the dead-letter topic).
        """
        r = self._retired
        r.events_in += 1
        r.deadletter += 1
        r.deadletter_by_code[code] = r.deadletter_by_code.get(code, 0) + 1
        topic = topic or self.catalog.deadletter.name
        dead = DeadLetter(code, code, "", b"", topic)
        return Handled("", topic, Outcome("deadletter", dead_letter=dead))

    def log_dead_letter(
        self,
        topic: str,
        partition: int,
        offset: int,
        headers: Any,
        value: bytes,
        now: datetime,
        timestamp: int | None = None,
    ) -> Handled | None:
        """Buffer a record read from the dead-letter topic for ``dead_letters``.

        Returns:
            What happened, for a line ``produce`` could not route (counted
            here: it never reached an input topic); ``None`` for the dead
            letters of a worker, counted when they were dead-lettered.
        """
        row, producer_code = dead_letter_row(
            topic, partition, offset, headers, value, now, timestamp
        )
        handled = None
        if producer_code is not None:
            handled = self.count_producer_dead_letter(producer_code, topic)
        self.sink.add_dead_letter(row)
        return handled

    @property
    def stats(self) -> PipelineStats:
        """Totals over every source handled by this process."""
        total = PipelineStats().add(self._retired)
        for engine in self.engines.values():
            total.add(engine.stats)
        return total

    def recover(self, sources: Iterable[str]) -> None:
        """Load the stored states of newly assigned sources and rewrite their counters.

        A source is registered only once all of it is read, so a read that
        fails (ClickHouse down) leaves no half-loaded engine behind: calling
        this again retries it. Sources already held are skipped. Once new
        sources are registered, and before any of their messages is folded,
        :attr:`on_recovered` is called (the worker's live figures sum them
        there, while their states are only what was stored).
        """
        added = False
        for source in sources:
            if source in self.engines:
                continue
            dossiers = None if self.dossier_store is None else self.dossier_store(source)
            engine = Engine(
                self.registry,
                self.calendar,
                catalog=self.catalog,
                dossiers=dossiers,
                counters=None if self.counter_store is None else self.counter_store(source),
            )
            try:
                self._load(source, engine)
                stored = self.store.source_counters(source)
            except BaseException:
                _destroy(engine)  # a failed read is retried from scratch
                raise
            # counters are a pure function of the states: whatever a crash left in the
            # table (totals of states never stored, keys no state gives any more: 0) goes
            counters = engine.counters
            stale = [(k, counters.get(k, 0)) for k, v in stored.items() if counters.get(k, 0) != v]
            stale += [(k, v) for k, v in counters.items() if k not in stored]
            for key, total in stale:
                self.sink.add_counter(source, key, total)
            _trim(counters)
            self.engines[source] = engine
            added = True
            _LOG.info(
                "recovered %s: %s dossiers, %s feedback, %s reports, %s counters (%s rewritten)",
                source,
                len(engine.dossiers),
                len(engine.feedback),
                len(engine.reported),
                len(counters),
                len(stale),
            )
        if added and self.on_recovered is not None:
            self.on_recovered(self.engines)

    def _load(self, source: str, engine: Engine) -> None:
        """Read the stored states of ``source`` into ``engine``, and their counters."""
        counters = engine.counters
        for n, raw in enumerate(self.store.source_states("dossier_facts", source), 1):
            state = loads_dossier(raw)
            engine.dossiers[state.dossier_id] = state
            accumulate(counters, dossier_counters(state, self.calendar))
            if not n % 4096:
                _trim(counters)  # a counter store stays within its cache during recovery too
        for raw in self.store.source_states("feedback_facts", source):
            fb = loads_feedback(raw)
            engine.feedback[fb.feedback_id] = fb
            accumulate(counters, feedback_counters(fb))
        for unit, start, end, total, event_id, at in self.store.source_reports(source):
            order = (at if at.tzinfo else at.replace(tzinfo=UTC), event_id)
            engine.reported[(unit, start, end)] = (order, total)

    def release(self, sources: Iterable[str]) -> None:
        """Forget revoked sources (flush first: their rows must be written)."""
        for source in sources:
            self._touched.pop(source, None)
            engine = self.engines.pop(source, None)
            if engine is not None:
                self._retired.add(engine.stats)
                _destroy(engine)

    def revoke(self, sources: Iterable[str]) -> None:
        """Store what is buffered, then forget revoked sources.

        Call it when no batch of these sources is in hand. If ClickHouse
        refuses this flush, the buffered rows of ``sources`` are dropped: they
        belong to uncommitted messages, which the partitions' next owner reads
        again, and writing them later would replace that owner's newer totals.
        """
        gone = set(sources)
        try:
            self.sink.flush()
        except Exception as exc:
            _LOG.warning(
                "ClickHouse flush failed during a rebalance (%s): dropped %s buffered rows "
                "of revoked partitions",
                exc,
                self.sink.discard(gone),
            )
        self.release(gone)

    def close(self) -> None:
        """Release every source (at stop, after the last flush)."""
        self.release(list(self.engines))

    def _tombstone(self, engine: Engine, source: str, msg: Message) -> Outcome:
        """A null value: deletes a unit's reports on ``unit.reports.v1``, else a dead letter."""
        out, deleted = engine.tombstone(
            msg.key, topic=msg.topic, partition=msg.partition, offset=msg.offset
        )
        for (unit, start, end), ((occurred_at, event_id), total) in deleted.items():
            self.sink.add_fact(
                "unit_reports", REPORT_COLUMNS, (unit, start, end),
                (unit, source, start, end, total, event_id, occurred_at, 1),
                source=source,
            )  # fmt: skip
        return out

    def take_rerouted(self) -> list[Republish]:
        """The re-publishes of the mis-keyed messages handled since the last call.

        Call it right after :meth:`handle`; publish them, and acknowledge the
        batch only once they are acknowledged.
        """
        rerouted, self._rerouted = self._rerouted, []
        return rerouted

    def _add_fact(self, engine: Engine, source: str, event: Event) -> None:
        """Buffer the row of a feedback's state or a unit's report an applied event changed."""
        if isinstance(event, UnitReportedTotals):
            rkey = (event.unit_code, event.period_start, event.period_end)
            (occurred_at, event_id), total = engine.reported[rkey]
            self.sink.add_fact(
                "unit_reports", REPORT_COLUMNS, rkey,
                (event.unit_code, source, event.period_start, event.period_end, total,
                 event_id, occurred_at, 0),
                source=source,
            )  # fmt: skip
        else:
            assert isinstance(event, FeedbackReceived | FeedbackResolved)
            fb: FeedbackState = engine.feedback[event.feedback_id]
            self.sink.add_fact(
                "feedback_facts", FEEDBACK_FACT_COLUMNS, fb.feedback_id,
                (fb.feedback_id, source, fb.unit_code or "", fb.due_at, fb.resolved_at,
                 dumps_feedback(fb).decode()),
                source=source,
            )  # fmt: skip

    def _add_dossier_facts(self, states: dict[str, dict[str, None]]) -> None:
        """Buffer the fact row of the latest state of each dossier touched, per source."""
        for source, held in states.items():
            dossiers = self.engines[source].dossiers  # read here, not under the sink's lock
            rows = [(key, partial(dossier_fact, dossiers[key], source)) for key in held]
            self.sink.add_facts("dossier_facts", DOSSIER_FACT_COLUMNS, rows, source=source)

    def hand_over_counters(self) -> None:
        """Buffer the new absolute totals of the counters moved since the last call.

        The sink calls it at the start of every flush (:meth:`BatchingSink.before_flush`),
        so the totals go once per batch, not once per chunk of :meth:`handle`,
        and a flush by size within a batch takes those folded so far. A counter
        store is trimmed right after: the next batch needs only the totals it
        touches (a total that left its cache is read back exactly).
        """
        touched = self._touched
        for source, keys in list(touched.items()):
            counters = self.engines[source].counters
            # a set unchanged iterates in one order: zip pairs each key with its own total
            totals = zip(keys, map(counters.get, keys, repeat(0)), strict=True)
            self.sink.add_counters(source, totals, bounded=False)
            del touched[source]  # handed over: only then (a failure keeps the rest pending)
            _trim(counters)

    def handle(self, messages: Sequence[Message]) -> list[Handled]:
        """Process a batch; returns what happened to each message, in order.

        Dead letters are among the outcomes (the shell publishes them to the
        dead-letter topic, from which they are logged); so are the mis-keyed
        messages (``rerouted``: the shell publishes :meth:`take_rerouted`).
        """
        handled: list[Handled] = []
        append = handled.append
        touched = self._touched  # counters whose totals moved, per source (till the flush)
        # the dossiers touched, per source: one fact row each with its latest state, read
        # once the batch is folded (once per dossier per batch, not once per event)
        states: dict[str, dict[str, None]] = {}
        engines = self.engines
        rekeyer_owner = self.rekeyer.owner
        # messages come in runs of one partition: what a partition needs, kept for the run
        last_topic: str | None = None
        last_partition = -1
        source = ""
        engine: Engine | None = None
        owner: Callable[[Event], int] | None = None
        for msg in messages:
            topic, partition, value, origin = msg.topic, msg.partition, msg.value, msg.origin
            if topic != last_topic or partition != last_partition or engine is None:
                source = source_of(topic, partition)
                engine = engines.get(source) or self._engine(source)
                owner = rekeyer_owner(topic)
                last_topic, last_partition = topic, partition
            if value is None:
                out = self._tombstone(engine, source, msg)
            elif origin is None:
                out = engine.process(
                    value, topic=topic, partition=partition, offset=msg.offset, owner=owner
                )
            else:  # from a repartition topic: folded as its origin, never re-routed again
                topic = origin.topic
                out = engine.process(
                    value, topic=topic, partition=origin.partition, offset=origin.offset
                )
            if out.dead_letter is not None:
                engine.dead_letters.clear()
                append(_dead(msg, source, topic, out, out.dead_letter))
                continue
            append(_handled(Handled, (source, topic, out)))
            event = out.event
            if out.kind != "applied" or event is None:
                if out.kind == "rerouted" and event is not None and value is not None:
                    self._rerouted.append(
                        self.rekeyer.republish(msg.topic, partition, msg.offset, value, event)
                    )
                continue
            if out.delta:
                keys = touched.get(source)
                if keys is None:
                    keys = touched[source] = set()
                keys.update(out.delta)
            if type(event) in _DOSSIER_EVENT_TYPES or isinstance(event, DOSSIER_EVENT_MODELS):
                held = states.get(source)
                if held is None:
                    held = states[source] = {}
                held[event.dossier_id] = None  # type: ignore[union-attr]
            else:
                self._add_fact(engine, source, event)
        self._add_dossier_facts(states)
        return handled
