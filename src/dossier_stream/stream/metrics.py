"""Prometheus metrics of the worker: one :class:`Metrics` object, served on ``/metrics``.

Every family is registered on the :class:`~prometheus_client.CollectorRegistry`
given to :class:`Metrics` (a private one by default, never the global
registry; nothing is registered at import time). The worker
(:class:`dossier_stream.stream.runner.Worker`) serves it with :class:`MetricsServer`
on ``DOSSIER_METRICS_HOST:DOSSIER_METRICS_PORT`` (default ``0.0.0.0:9108``).
Port ``0`` binds an ephemeral port, which the worker logs and exposes as
``Worker.metrics_port``. There is no "off" value. A port that was set
explicitly and is busy stops start-up; when the *default* 9108 is busy (a
demo beside a running worker) the worker takes an ephemeral port and warns.

Families (counters end in ``_total``, durations are seconds, timestamps Unix
seconds; every name starts with ``dossier_stream_``):

* ``dossier_stream_events_consumed_total{topic, event_type}`` counter
* ``dossier_stream_dead_letters_total{reason}`` counter
* ``dossier_stream_duplicates_ignored_total{topic}`` counter
* ``dossier_stream_rerouted_total{topic}`` counter
* ``dossier_stream_partition_undecodable{topic, partition}`` gauge
* ``dossier_stream_event_apply_latency_seconds`` histogram
* ``dossier_stream_event_flush_latency_seconds`` histogram
* ``dossier_stream_clickhouse_flush_duration_seconds`` histogram
* ``dossier_stream_clickhouse_flushed_rows_total`` counter
* ``dossier_stream_clickhouse_flush_failures_total`` counter
* ``dossier_stream_consumer_lag_messages{topic, partition}`` gauge
* ``dossier_stream_open_dossiers{unit, level}`` gauge
* ``dossier_stream_open_past_due_dossiers{unit, level}`` gauge
* ``dossier_stream_indicator_numerator{indicator, unit, level}`` gauge
* ``dossier_stream_indicator_denominator{indicator, unit, level}`` gauge
* ``dossier_stream_indicator_period_start_timestamp_seconds`` gauge
* ``dossier_stream_indicator_period_end_timestamp_seconds`` gauge
* ``dossier_stream_index766_group_{points,max_points,alert_below_points}{group}``
  gauges: the city's estimated QĐ 766 score (:mod:`dossier_stream.stream.index766gauges`)

Meaning:

* ``events_consumed_total``: messages taken from the input topics.
  ``event_type`` is the contract type of a valid event, ``invalid`` for a
  message that was dead-lettered (its type is not trusted); lines that
  ``produce`` could not route count on the dead-letter topic as ``invalid``.
  ``sum(...)`` equals the report's ``pipeline.events_in``.
* ``dead_letters_total``: dead-lettered messages by reason *code* (the part
  of :class:`~dossier_stream.core.events.InvalidEvent`'s reason before ``:``), one
  of :data:`REASONS` or ``other``; all are exported from start-up at 0.
* ``duplicates_ignored_total``: valid messages that changed nothing.
* ``rerouted_total``: valid messages whose key does not belong to the
  partition they arrived on, re-published to their family's repartition
  topic (:mod:`~dossier_stream.stream.rekey`), by the topic they arrived on;
  they count in ``events_consumed_total`` where they are folded.
* ``partition_undecodable``: 1 while a partition is held at a record batch
  that cannot be decoded (:mod:`~dossier_stream.stream.holds`), 0 once it
  decodes again; series of revoked partitions are removed.
* ``event_apply_latency_seconds``: event time (``occurred_at``) to the fold
  of the batch that applied it to its state; ``event_flush_latency_seconds``:
  event time to the ClickHouse flush that stored that state. Applied events
  only; an event time in the future counts as 0. Buckets:
  :data:`LATENCY_BUCKETS` (100 ms to 7 days: backfills are days late).
* ``clickhouse_flush_duration_seconds``: every flush that had rows, failed
  or not (:data:`FLUSH_BUCKETS`); ``flushed_rows_total``: rows written;
  ``flush_failures_total``: flushes that raised.
* ``consumer_lag_messages``: per assigned partition, the partition's high
  watermark (from the last fetch response) minus the consumer's position
  (next offset to fetch), both read from the worker's consumer (Faust's
  ``app.consumer`` or an ``aiokafka.AIOKafkaConsumer``: ``highwater(tp)``,
  ``await position(tp)``); series of revoked partitions are removed. 0 once
  the worker caught up.
* ``open_dossiers`` / ``open_past_due_dossiers``: dossiers received and not
  completed or withdrawn at the worker's clock, and those of them past their
  effective due time (not while waiting for a supplement), per unit.
* ``indicator_numerator`` / ``indicator_denominator``: each indicator of
  :data:`~dossier_stream.core.indicators.INDICATORS` except ``synchronisation`` (its
  denominator is the maximum of a unit's report and its count, not a sum, so
  it cannot be split across workers; it stays in ClickHouse), summed over
  the days of the *current period to date*: the city's monthly report period
  (15th to 14th, :func:`live_period`) that contains today in
  Asia/Ho_Chi_Minh, from its first day to today. The ``period_*`` gauges say
  which period that is (00:00 of its first day, the end of its last day).

``unit`` is a unit code and ``level`` its level, both from the unit registry:
a code that is not registered never creates a series (events of unknown
units are dead-lettered anyway). A unit's series appear once it has data and
then stay (at 0 when it has none), so cardinality is bounded by the registry.

Several workers: each exports the figures of the partitions *it* owns (its
engines), so a unit's figure is ``sum by (unit, level)`` over the workers
(``instance`` label), and a rate is
``sum by (unit) (numerator) / sum by (unit) (denominator)``. During a
rebalance a partition can briefly count on two workers or none.

Cost (``python -m bench.metrics`` measures it): counters move once per batch
and label set; the latencies of a batch go into their histogram in one
update (:meth:`BatchHistogram.observe_many`: the same bucket counts and sum
as one ``observe`` per event, and the same exposition). The per-unit
figures (:mod:`dossier_stream.stream.livefigures`) are kept incrementally from the
batches' counter changes and from the dossiers that open, close or pass
their due time (a newly assigned partition is summed once from its
engine), so ``Worker.refresh_metrics``, run every few seconds on the event
loop, reads a few thousand running totals and never scans the open
dossiers, and :meth:`Metrics.set_live` writes only the series whose value
changed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from bisect import bisect_left
from collections import Counter as Tally
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from functools import reduce
from itertools import chain, compress, repeat
from math import isnan
from operator import add, attrgetter, eq, is_, ne, sub
from typing import Any, Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from dossier_stream.core.index766 import Profile, load_profile
from dossier_stream.stream.index766gauges import Index766Gauges
from dossier_stream.stream.livefigures import (
    LIVE_INDICATORS,
    IndicatorKey,
    LiveFigures,
    LiveSnapshot,
    UnitLevel,
    live_period,
)
from dossier_stream.stream.metrics_server import MetricsServer
from dossier_stream.stream.processor import Handled

__all__ = [
    "FLUSH_BUCKETS",
    "LATENCY_BUCKETS",
    "LIVE_INDICATORS",
    "REASONS",
    "BatchHistogram",
    "LiveFigures",
    "LiveSnapshot",
    "Metrics",
    "MetricsServer",
    "consumer_lag",
    "live_period",
    "reason_label",
]

_LOG = logging.getLogger(__name__)

LATENCY_BUCKETS: Final = (
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 21600.0,
    86400.0, 604800.0,
)  # fmt: skip
"""Event time → applied / flushed: 100 ms … 7 days."""
FLUSH_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
"""Duration of one ClickHouse flush."""
REASONS: Final = (
    "not_json", "not_object", "too_large", "missing_field", "bad_type", "bad_value",
    "bad_enum", "bad_timestamp", "naive_timestamp", "timestamp_out_of_range",
    "unknown_event_type", "unsupported_schema_version", "unknown_unit", "unit_not_active",
    "wrong_topic", "unroutable", "null_value",
)  # fmt: skip
"""Dead-letter reason codes (``InvalidEvent.code``, ``unroutable`` from ``produce``, and
``null_value``: a tombstone anywhere but on ``unit.reports.v1``)."""
_PREFIX: Final = "dossier_stream_"
_OUTCOME: Final = attrgetter("outcome")
_KIND: Final = attrgetter("outcome.kind")
_EVENT: Final = attrgetter("event")
_DEAD_LETTER: Final = attrgetter("dead_letter")
_TOPIC: Final = attrgetter("topic")
_OCCURRED_AT: Final = attrgetter("occurred_at")
_TIMESTAMP: Final = datetime.timestamp


def _latencies(now: float, occurred: Iterable[float]) -> list[float]:
    """``max(now - at, 0.0)`` for each event time (a future one counts as 0)."""
    return [0.0 if late < 0.0 else late for late in map(sub, repeat(now), occurred)]


def reason_label(code: str) -> str:
    """The bounded ``reason`` label of a dead letter: a known code, else ``other``."""
    code = code.partition(":")[0]
    return code if code in REASONS else "other"


class BatchHistogram(Histogram):
    """A :class:`~prometheus_client.Histogram` that also takes a batch of observations at once.

    prometheus_client has no bulk observe, and :meth:`~prometheus_client.Histogram.observe`
    takes two locks and walks the buckets for every value. :meth:`observe_many`
    finds each value's bucket with :func:`bisect.bisect_left` (in C), then adds
    one count per bucket touched and the values to the sum, in order, so the
    result is exactly what observing the values one by one would leave: the
    same bucket counts and the same sum (float rounding included). It is
    still a ``Histogram`` (same type, name, buckets and samples), so the
    exposition does not change.

    Batches are serialised by a lock; a plain :meth:`observe` of the same
    histogram must not run in another thread meanwhile (the worker observes
    each histogram from one thread).
    """

    def _metric_init(self) -> None:
        super()._metric_init()
        self._batch_lock = threading.Lock()

    def observe_many(self, amounts: Sequence[float]) -> None:
        """Observe each of ``amounts``, as many :meth:`observe` calls in that order would.

        Args:
            amounts: the values (a NaN counts in no bucket and makes the sum NaN, as in
                :meth:`observe`).
        """
        if not amounts:
            return
        if self._labelnames and not self._labelvalues:  # what observe() checks
            raise ValueError("histogram metric is missing label values")
        bounds = self._upper_bounds
        with self._batch_lock:
            total: float = reduce(add, amounts, self._sum.get())
            if isnan(total):  # bisect puts a NaN in the first bucket, observe() in none
                counts = Tally(bisect_left(bounds, a) for a in amounts if not isnan(a))
            else:
                counts = Tally(map(bisect_left, repeat(bounds), amounts))
            for bucket, count in counts.items():
                self._buckets[bucket].inc(count)
            self._sum.set(total)


async def consumer_lag(consumer: Any, *, timeout: float = 2.0) -> dict[tuple[str, int], int]:
    """Messages behind per assigned partition: high watermark − position.

    Args:
        consumer: Faust's consumer (``app.consumer``) or an
            ``aiokafka.AIOKafkaConsumer``; both have ``assignment()`` (topic
            partitions with ``.topic`` and ``.partition``), ``highwater(tp)``
            (from the last fetch response, ``None`` before one; correct on
            Tansu, unlike ``end_offsets``) and ``await position(tp)``. An
            unassigned partition raises (aiokafka: ``AssertionError`` from
            ``highwater``, ``IllegalStateError`` from ``position``) and is
            skipped.
        timeout: seconds to wait for one position (a partition whose
            position is being reset is skipped).

    Returns:
        ``{(topic, partition): lag}`` for partitions whose both offsets are known.
    """
    try:
        assigned = list(consumer.assignment())
    except Exception as exc:  # consumer not started or stopping
        _LOG.debug("no assignment to measure lag: %s", exc)
        return {}
    lags: dict[tuple[str, int], int] = {}
    for tp in assigned:
        try:
            high = consumer.highwater(tp)
            if high is None:
                continue
            position = await asyncio.wait_for(consumer.position(tp), timeout)
        except Exception as exc:  # revoked meanwhile, or the consumer is stopping
            _LOG.debug("no lag for %s: %s", tp, exc)
            continue
        if position is not None:
            lags[(tp.topic, tp.partition)] = max(int(high) - int(position), 0)
    return lags


class Metrics:
    """Every metric family of the worker (see the module docstring), on one registry.

    Args:
        registry: where the families are registered; a new private
            :class:`~prometheus_client.CollectorRegistry` when omitted.
        index766: the 766 scoring profile of the index gauges (bundled by default).
    """

    def __init__(
        self, registry: CollectorRegistry | None = None, *, index766: Profile | None = None
    ) -> None:
        self.registry = CollectorRegistry() if registry is None else registry
        r, p = self.registry, _PREFIX
        self.index766 = Index766Gauges(r, load_profile() if index766 is None else index766)
        self.events_consumed = Counter(
            f"{p}events_consumed_total",
            "Messages consumed from the input topics, by topic and event type "
            "(invalid: dead-lettered).",
            ["topic", "event_type"],
            registry=r,
        )
        self.dead_letters = Counter(
            f"{p}dead_letters_total", "Messages dead-lettered, by reason code.", ["reason"],
            registry=r,
        )  # fmt: skip
        self.duplicates = Counter(
            f"{p}duplicates_ignored_total", "Valid messages that changed nothing (duplicates).",
            ["topic"], registry=r,
        )  # fmt: skip
        self.rerouted = Counter(
            f"{p}rerouted_total",
            "Mis-keyed messages re-published to their repartition topic, by arrival topic.",
            ["topic"], registry=r,
        )  # fmt: skip
        self.undecodable = Gauge(
            f"{p}partition_undecodable",
            "1 while a partition is held at a record batch that cannot be decoded.",
            ["topic", "partition"], registry=r,
        )  # fmt: skip
        self.apply_latency = BatchHistogram(
            f"{p}event_apply_latency_seconds", "Event time (occurred_at) to state applied.",
            buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.flush_latency = BatchHistogram(
            f"{p}event_flush_latency_seconds",
            "Event time (occurred_at) to its state flushed to ClickHouse.",
            buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.flush_duration = Histogram(
            f"{p}clickhouse_flush_duration_seconds", "Duration of ClickHouse flushes with rows.",
            buckets=FLUSH_BUCKETS, registry=r,
        )  # fmt: skip
        self.flushed_rows = Counter(
            f"{p}clickhouse_flushed_rows_total", "Rows written to ClickHouse.", registry=r
        )
        self.flush_failures = Counter(
            f"{p}clickhouse_flush_failures_total", "ClickHouse flushes that failed.", registry=r
        )
        self.consumer_lag = Gauge(
            f"{p}consumer_lag_messages",
            "High watermark minus consumer position, per assigned partition.",
            ["topic", "partition"], registry=r,
        )  # fmt: skip
        self.open_dossiers = Gauge(
            f"{p}open_dossiers", "Dossiers received and not completed or withdrawn.",
            ["unit", "level"], registry=r,
        )  # fmt: skip
        self.open_past_due = Gauge(
            f"{p}open_past_due_dossiers", "Open dossiers past their effective due time.",
            ["unit", "level"], registry=r,
        )  # fmt: skip
        self.numerator = Gauge(
            f"{p}indicator_numerator",
            "Indicator numerator over the current monthly period to date (this worker's share).",
            ["indicator", "unit", "level"], registry=r,
        )  # fmt: skip
        self.denominator = Gauge(
            f"{p}indicator_denominator",
            "Indicator denominator over the current monthly period to date "
            "(this worker's share).",
            ["indicator", "unit", "level"], registry=r,
        )  # fmt: skip
        self.period_start = Gauge(
            f"{p}indicator_period_start_timestamp_seconds",
            "Start of the period the indicator gauges cover.", registry=r,
        )  # fmt: skip
        self.period_end = Gauge(
            f"{p}indicator_period_end_timestamp_seconds",
            "End of the period the indicator gauges cover.", registry=r,
        )  # fmt: skip
        for reason in (*REASONS, "other"):
            self.dead_letters.labels(reason)
        self._unflushed: list[list[float]] = []  # event times applied since the last flush
        self._consumed: dict[tuple[str, str], Counter] = {}  # label children, by labels
        self._event_types: dict[type, str] = {}  # event class → its event_type
        self._lag_keys: set[tuple[str, str]] = set()
        self._held: set[tuple[str, str]] = set()
        self._indicators: dict[IndicatorKey, tuple[int, int]] = {}  # as set_live last set them
        self._open: dict[UnitLevel, tuple[int, int]] = {}  # (open, past due), likewise
        self._children: dict[tuple[str, ...], tuple[Gauge, Gauge]] = {}  # their label children

    def observe(self, handled: Iterable[Handled], *, now: float | None = None) -> None:
        """Count what the processor did with a batch (before it is flushed).

        Counters move once per label set and batch, and the batch's latencies
        go to the histogram in one :meth:`BatchHistogram.observe_many`.

        Args:
            handled: the outcomes of ``Processor.handle`` (or a producer dead letter).
            now: Unix time of the fold (default: the clock).
        """
        now = time.time() if now is None else now
        items = handled if isinstance(handled, list) else list(handled)
        # the applied events, the bulk of a batch, in C (attrgetter, map); the rest one by one
        applied = list(compress(items, map(eq, map(_KIND, items), repeat("applied"))))
        outcomes = list(map(_OUTCOME, applied))
        events: list[Any] = list(map(_EVENT, outcomes))
        rest = items if len(applied) < len(items) else []
        if any(map(is_, events, repeat(None))) or any(map(_DEAD_LETTER, outcomes)):
            applied, events, rest = [], [], items  # not what Engine makes: all one by one
        elif rest:
            rest = list(compress(items, map(ne, map(_KIND, items), repeat("applied"))))
        consumed: Tally[tuple[str, str]] = Tally()
        # by class: an event's class decides its event_type (the union's discriminator),
        # and type() is far cheaper than reading the field of each event
        names = self._event_types
        pairs = Tally(zip(map(_TOPIC, applied), map(type, events), strict=True))
        for (topic, cls), n in pairs.items():
            name = names.get(cls)
            if name is None:
                sample: Any = next(e for e in events if type(e) is cls)
                name = names[cls] = sample.event_type
            consumed[(topic, name)] += n
        occurred: list[float] = list(map(_TIMESTAMP, map(_OCCURRED_AT, events)))
        duplicates: dict[str, int] = {}
        rerouted: dict[str, int] = {}
        dead: dict[str, int] = {}
        for item in rest:
            out = item.outcome
            event = out.event
            if out.kind == "rerouted":  # counted where it is folded
                rerouted[item.topic] = rerouted.get(item.topic, 0) + 1
                continue
            if out.dead_letter is None and event is None:  # a tombstone (null value)
                consumed[(item.topic, "tombstone")] += 1
                if out.kind == "duplicate":
                    duplicates[item.topic] = duplicates.get(item.topic, 0) + 1
                continue
            if out.dead_letter is not None or event is None:
                consumed[(item.topic, "invalid")] += 1
                reason = reason_label(out.dead_letter.code if out.dead_letter else "")
                dead[reason] = dead.get(reason, 0) + 1
                continue
            consumed[(item.topic, event.event_type)] += 1
            if out.kind == "duplicate":
                duplicates[item.topic] = duplicates.get(item.topic, 0) + 1
                continue
            occurred.append(event.occurred_at.timestamp())
        if occurred:
            self.apply_latency.observe_many(_latencies(now, occurred))
            self._unflushed.append(occurred)
        self._count(consumed, duplicates, rerouted, dead)

    def _count(
        self,
        consumed: Mapping[tuple[str, str], int],
        duplicates: Mapping[str, int],
        rerouted: Mapping[str, int],
        dead: Mapping[str, int],
    ) -> None:
        """Move each labelled counter once by its batch total."""
        for key, n in consumed.items():
            child = self._consumed.get(key)
            if child is None:
                child = self._consumed[key] = self.events_consumed.labels(*key)
            child.inc(n)
        for topic, n in duplicates.items():
            self.duplicates.labels(topic).inc(n)
        for topic, n in rerouted.items():
            self.rerouted.labels(topic).inc(n)
        for reason, n in dead.items():
            self.dead_letters.labels(reason).inc(n)

    def observe_flush(self, rows: int, seconds: float, error: BaseException | None) -> None:
        """A :data:`~dossier_stream.store.sink.FlushHook`: flush duration, rows, failures.

        A successful flush stored the state of every event applied since the
        last one: their event-to-flush latencies are observed now.
        """
        self.flush_duration.observe(seconds)
        if rows:
            self.flushed_rows.inc(rows)
        if error is not None:
            self.flush_failures.inc()
            return
        now = time.time()
        batches, self._unflushed = self._unflushed, []
        self.flush_latency.observe_many(_latencies(now, chain.from_iterable(batches)))

    def set_lag(self, lags: Mapping[tuple[str, int], int]) -> None:
        """Set the lag of the assigned partitions; remove those no longer assigned."""
        keys = {(topic, str(partition)): lag for (topic, partition), lag in lags.items()}
        for gone in self._lag_keys - keys.keys():
            with contextlib.suppress(KeyError):
                self.consumer_lag.remove(*gone)
        for key, lag in keys.items():
            self.consumer_lag.labels(*key).set(lag)
        self._lag_keys = set(keys)

    def set_held(
        self, held: Iterable[tuple[str, int]], assigned: Iterable[tuple[str, int]]
    ) -> None:
        """Mark the held partitions 1, the others seen before 0; drop the unassigned."""
        keys = {(topic, str(partition)) for topic, partition in held}
        mine = {(topic, str(partition)) for topic, partition in assigned} | keys
        for gone in self._held - mine:
            with contextlib.suppress(KeyError):
                self.undecodable.remove(*gone)
        for key in self._held | keys:
            if key in mine:
                self.undecodable.labels(*key).set(1 if key in keys else 0)
        self._held = (self._held & mine) | keys

    def set_live(self, snap: LiveSnapshot) -> None:
        """Set the per-unit gauges; series seen before and absent now go to 0.

        Only the series whose value changed since the last call are written,
        through their label children, looked up once (``labels()`` costs).
        """
        self.period_start.set(snap.period.starts_at.timestamp())
        self.period_end.set(snap.period.ends_at.timestamp())
        gone = dict.fromkeys(self._indicators.keys() - snap.indicators.keys(), (0, 0))
        self._set_pairs(self._indicators, gone, self.numerator, self.denominator)
        self._set_pairs(self._indicators, snap.indicators, self.numerator, self.denominator)
        counts = {
            unit: (snap.open.get(unit, 0), snap.past_due.get(unit, 0))
            for unit in self._open.keys() | snap.open.keys() | snap.past_due.keys()
        }
        self._set_pairs(self._open, counts, self.open_dossiers, self.open_past_due)
        self.index766.update(snap)

    def _set_pairs(
        self,
        last: dict[Any, tuple[int, int]],
        values: Mapping[Any, tuple[int, int]],
        first: Gauge,
        second: Gauge,
    ) -> None:
        """Set the series of two gauges to ``values`` by labels, where ``last`` differs."""
        children = self._children
        for labels, value in values.items():
            if last.get(labels) == value:
                continue
            pair = children.get(labels)
            if pair is None:
                pair = children[labels] = (first.labels(*labels), second.labels(*labels))
            pair[0].set(value[0])
            pair[1].set(value[1])
            last[labels] = value
