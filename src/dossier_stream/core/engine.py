"""The per-event pipeline in plain Python: parse, check, fold, count.

:class:`Engine` is everything the stream does to one message, with no Kafka
or ClickHouse inside: it parses the bytes (:func:`~dossier_stream.core.events.parse_event`),
checks the unit against the registry and the event type against the topic it
came from, folds the event into the dossier's or feedback's state, and adds
the counter changes. Invalid input is never raised to the caller and never
dropped: it comes back as a :class:`DeadLetter` (errors as data).

The state stores are injectable mutable mappings, so the Faust worker can
hand in its tables and tests a plain ``dict``.
"""

from __future__ import annotations

from collections.abc import Callable, MutableMapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Literal

from dossier_stream.core.counters import (
    CounterKey,
    accumulate,
    feedback_delta,
    open_past_due,
    state_delta,
)
from dossier_stream.core.events import (
    DOSSIER_EVENT_MODELS,
    DossierReceived,
    Event,
    FeedbackReceived,
    FeedbackResolved,
    InvalidEvent,
    UnitReportedTotals,
    check_unit,
    parse_event,
)
from dossier_stream.core.indicators import build_report
from dossier_stream.core.lifecycle import (
    DossierState,
    FeedbackState,
    apply_dossier,
    apply_feedback,
    empty_dossier,
)
from dossier_stream.core.periods import Period
from dossier_stream.core.registry import Unit, UnitRegistry
from dossier_stream.core.topics import TopicCatalog
from dossier_stream.core.workdays import VN_TZ, WorkCalendar

__all__ = ["DeadLetter", "Engine", "Outcome", "PipelineStats"]


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """An input that could not be used, with where it came from and why."""

    reason: str
    code: str
    detail: str
    raw: bytes
    topic: str | None = None
    partition: int | None = None
    offset: int | None = None
    letter_id: str = ""
    """Its identity in ``dead_letters`` (set by the shell, which knows the record)."""

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form (the original bytes as text, replacement for bad UTF-8)."""
        return {
            "reason": self.reason,
            "code": self.code,
            "detail": self.detail,
            "topic": self.topic,
            "partition": self.partition,
            "offset": self.offset,
            "value": self.raw.decode("utf-8", errors="replace"),
        }


@dataclass(init=False, unsafe_hash=True, slots=True)
class Outcome:
    """What happened to one message (never changed once built).

    Not a frozen dataclass: its own ``__init__`` is a plain call (the frozen
    one sets each field through ``object.__setattr__``), and compiled by mypyc
    a direct C call (see the README's developer section).
    """

    kind: Literal["applied", "duplicate", "deadletter", "rerouted"]
    event: Event | None
    delta: dict[CounterKey, int]
    dead_letter: DeadLetter | None

    def __init__(
        self,
        kind: Literal["applied", "duplicate", "deadletter", "rerouted"],
        event: Event | None = None,
        delta: dict[CounterKey, int] | None = None,
        dead_letter: DeadLetter | None = None,
    ) -> None:
        self.kind = kind
        self.event = event
        self.delta = {} if delta is None else delta
        self.dead_letter = dead_letter


@dataclass(slots=True)
class PipelineStats:
    """Counts of messages in, valid, duplicate and dead-lettered (per reason).

    A message that arrived on a partition its key does not belong to is
    counted in ``rerouted`` (per topic it arrived on) where it arrived, and in
    the other counts where it is folded: ``events_in`` counts every message once.
    """

    events_in: int = 0
    valid: int = 0
    duplicates: int = 0
    deadletter: int = 0
    deadletter_by_code: dict[str, int] = field(default_factory=dict)
    rerouted_by_topic: dict[str, int] = field(default_factory=dict)

    def add(self, other: PipelineStats) -> PipelineStats:
        """Add ``other``'s counts into these, in place; returns ``self``."""
        self.events_in += other.events_in
        self.valid += other.valid
        self.duplicates += other.duplicates
        self.deadletter += other.deadletter
        for code, n in other.deadletter_by_code.items():
            self.deadletter_by_code[code] = self.deadletter_by_code.get(code, 0) + n
        for topic, n in other.rerouted_by_topic.items():
            self.rerouted_by_topic[topic] = self.rerouted_by_topic.get(topic, 0) + n
        return self

    @property
    def rerouted(self) -> int:
        """Messages re-published to a repartition topic (mis-keyed input)."""
        return sum(self.rerouted_by_topic.values())

    def to_json(self) -> dict[str, Any]:
        """The ``pipeline`` section of a report."""
        return {
            "events_in": self.events_in,
            "valid": self.valid,
            "duplicates": self.duplicates,
            "deadletter": self.deadletter,
            "deadletter_by_reason": dict(sorted(self.deadletter_by_code.items())),
            "rerouted": self.rerouted,
            "rerouted_by_topic": dict(sorted(self.rerouted_by_topic.items())),
        }


class Engine:
    """Folds raw messages into states and counters.

    Args:
        registry: the unit registry (unknown units are dead-lettered).
        calendar: the working-day calendar (due times, days ahead).
        catalog: the topic catalog; when given, an event read from a topic
            that does not carry its type is dead-lettered (``wrong_topic``).
        dossiers: store of dossier states (a ``dict`` by default).
        feedback: store of feedback states.
        counters: store of the counter totals (a ``dict`` by default); one
            on disk must behave as the ``dict`` does (a key at 0 is absent).
    """

    def __init__(
        self,
        registry: UnitRegistry,
        calendar: WorkCalendar,
        *,
        catalog: TopicCatalog | None = None,
        dossiers: MutableMapping[str, DossierState] | None = None,
        feedback: MutableMapping[str, FeedbackState] | None = None,
        counters: MutableMapping[CounterKey, int] | None = None,
    ) -> None:
        self.registry = registry
        self.calendar = calendar
        self.catalog = catalog
        self.dossiers: MutableMapping[str, DossierState] = {} if dossiers is None else dossiers
        self.feedback: MutableMapping[str, FeedbackState] = {} if feedback is None else feedback
        self.counters: MutableMapping[CounterKey, int] = {} if counters is None else counters
        self.reported: dict[tuple[str, date, date], tuple[tuple[datetime, str], int]] = {}
        self.stats = PipelineStats()
        self.dead_letters: list[DeadLetter] = []
        self._topic_of: dict[str, str] = {}
        self._topic_catalog: TopicCatalog | None = catalog
        self._units: dict[str, Unit] = {}
        self._units_of: UnitRegistry | None = None

    def parse(
        self,
        raw: bytes,
        *,
        topic: str | None = None,
        partition: int | None = None,
        offset: int | None = None,
    ) -> Event | DeadLetter:
        """Parse and check one message: an event, or the dead letter it becomes."""
        return self._parse(raw, topic, partition, offset)

    def _parse(
        self, raw: bytes, topic: str | None, partition: int | None, offset: int | None
    ) -> Event | DeadLetter:
        """:meth:`parse`, with positional arguments (cheaper per message)."""
        try:
            event = parse_event(raw)
            registry = self.registry
            units = self._units if self._units_of is registry else self._unit_table()
            unit = units.get(event.unit_code)
            # a known unit, and one that exists on a reception's day: else check_unit says
            # why, in its own words (the table only saves its lookups on the valid path)
            if unit is None or (
                isinstance(event, DossierReceived)
                and not unit.exists_on(event.received_at.astimezone(VN_TZ).date())
            ):
                check_unit(event, registry)
            if topic is not None and self.catalog is not None:
                expected = (
                    self._topic_of.get(event.event_type)
                    if self._topic_catalog is self.catalog
                    else None
                ) or self._expected_topic(event.event_type)
                if expected != topic:
                    raise InvalidEvent(
                        "wrong_topic",
                        detail=f"{event.event_type} belongs on {expected}, not {topic}",
                    )
        except InvalidEvent as exc:
            return DeadLetter(exc.reason, exc.code, exc.detail, raw, topic, partition, offset)
        return event

    def _unit_table(self) -> dict[str, Unit]:
        """The registry's units by code, built again when ``registry`` is replaced."""
        registry = self.registry
        self._units = {unit.code: registry.get(unit.code) for unit in registry}
        self._units_of = registry
        return self._units

    def _expected_topic(self, event_type: str) -> str:
        """``catalog.topic_for(event_type)``, remembered per event type."""
        if self._topic_catalog is not self.catalog:  # a catalog set after construction
            self._topic_of = {}
            self._topic_catalog = self.catalog
        expected = self._topic_of.get(event_type)
        if expected is None:
            assert self.catalog is not None  # only called with a catalog
            expected = self._topic_of[event_type] = self.catalog.topic_for(event_type)
        return expected

    def process(
        self,
        raw: bytes,
        *,
        topic: str | None = None,
        partition: int | None = None,
        offset: int | None = None,
        owner: Callable[[Event], int] | None = None,
    ) -> Outcome:
        """Process one message end to end and update the stats.

        Args:
            raw: the message's value.
            topic: the topic it came from (checked against its event type).
            partition: its partition.
            offset: its offset (dead letters say where they came from).
            owner: the partition a valid event belongs to; when it is not
                ``partition``, the event is neither folded nor counted as in:
                the outcome is ``rerouted`` (the shell re-publishes it to the
                partition that owns it, where it is folded).
        """
        stats = self.stats
        parsed = self._parse(raw, topic, partition, offset)
        if owner is not None and not isinstance(parsed, DeadLetter) and owner(parsed) != partition:
            by_topic = stats.rerouted_by_topic
            by_topic[topic or ""] = by_topic.get(topic or "", 0) + 1
            return Outcome("rerouted", event=parsed)
        stats.events_in += 1
        if isinstance(parsed, DeadLetter):
            stats.deadletter += 1
            codes = stats.deadletter_by_code
            codes[parsed.code] = codes.get(parsed.code, 0) + 1
            self.dead_letters.append(parsed)
            return Outcome("deadletter", dead_letter=parsed)
        outcome = self.apply(parsed)
        if outcome.kind == "duplicate":
            stats.duplicates += 1
        else:
            stats.valid += 1
        return outcome

    def tombstone(
        self,
        key: bytes | None,
        *,
        topic: str | None = None,
        partition: int | None = None,
        offset: int | None = None,
    ) -> tuple[Outcome, dict[tuple[str, date, date], tuple[tuple[datetime, str], int]]]:
        """Process a message whose value is null (a Kafka *tombstone*).

        On the unit reports topic (``unit.reports.v1``, keyed by ``unit_code``)
        a tombstone deletes that unit's reports: its reported totals no longer
        count (a later report counts again). Anywhere else, or without a key,
        it is a dead letter ``null_value``: events are never deleted.

        Returns:
            The outcome (``applied`` when reports were deleted, ``duplicate``
            when the unit had none, with no event) and the deleted reports,
            ``{(unit, period_start, period_end): ((occurred_at, event_id), total)}``.
        """
        stats = self.stats
        stats.events_in += 1
        reports = (
            self._expected_topic("unit.reported_totals") if self.catalog else "unit.reports.v1"
        )
        unit = None
        if key and topic == reports:
            try:
                unit = key.decode()
            except UnicodeDecodeError:
                unit = None
        if unit is None:
            detail = (
                f"a null value (tombstone) on {topic}: only {reports} deletes, the reports of "
                "the unit_code its key names"
            )
            if topic == reports:
                detail = f"a tombstone on {reports} whose key is not a unit_code: {key!r}"
            dead = DeadLetter("null_value", "null_value", detail, b"", topic, partition, offset)
            stats.deadletter += 1
            codes = stats.deadletter_by_code
            codes["null_value"] = codes.get("null_value", 0) + 1
            self.dead_letters.append(dead)
            return Outcome("deadletter", dead_letter=dead), {}
        deleted = {k: v for k, v in self.reported.items() if k[0] == unit}
        for k in deleted:
            del self.reported[k]
        if deleted:
            stats.valid += 1
        else:
            stats.duplicates += 1
        return Outcome("applied" if deleted else "duplicate"), deleted

    def apply(self, event: Event) -> Outcome:
        """Fold a valid event into its state and the counters."""
        delta: dict[CounterKey, int]
        if isinstance(event, DOSSIER_EVENT_MODELS):
            key = event.dossier_id
            old = self.dossiers.get(key) or empty_dossier(key)
            new = apply_dossier(old, event, self.calendar)
            if new is old:
                return Outcome("duplicate", event, {})
            self.dossiers[key] = new
            delta = state_delta(old, new, self.calendar)
        elif isinstance(event, FeedbackReceived | FeedbackResolved):
            fid = event.feedback_id
            old_fb = self.feedback.get(fid) or FeedbackState(fid)
            new_fb = apply_feedback(old_fb, event)
            if new_fb is old_fb:
                return Outcome("duplicate", event)
            self.feedback[fid] = new_fb
            delta = feedback_delta(old_fb, new_fb)
        else:
            assert isinstance(event, UnitReportedTotals)
            rkey = (event.unit_code, event.period_start, event.period_end)
            order = (event.occurred_at, event.event_id)
            current = self.reported.get(rkey)
            if current is not None and current[0] >= order:
                return Outcome("duplicate" if current[0] == order else "applied", event)
            self.reported[rkey] = (order, event.received_total)
            return Outcome("applied", event)
        accumulate(self.counters, delta)
        return Outcome("applied", event, delta)

    def report(self, period: Period) -> dict[str, Any]:
        """The report of ``period`` from everything processed so far."""
        return build_report(
            self.counters,
            self.registry,
            period,
            reported_totals={k: v for k, (_, v) in self.reported.items()},
            open_past_due=open_past_due(self.dossiers.values(), period.ends_at),
        )
