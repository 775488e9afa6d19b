"""Prometheus metrics of the worker: one :class:`Metrics` object, served on ``/metrics``.

Every family is registered on the :class:`~prometheus_client.CollectorRegistry`
given to :class:`Metrics` (a private one by default, never the global
registry; nothing is registered at import time). The worker
(:class:`dossier_stream.runner.Worker`) serves it with :class:`MetricsServer`
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

Meaning:

* ``events_consumed_total``: messages taken from the input topics.
  ``event_type`` is the contract type of a valid event, ``invalid`` for a
  message that was dead-lettered (its type is not trusted); lines that
  ``produce`` could not route count on the dead-letter topic as ``invalid``.
  ``sum(...)`` equals the report's ``pipeline.events_in``.
* ``dead_letters_total``: dead-lettered messages by reason *code* (the part
  of :class:`~dossier_stream.events.InvalidEvent`'s reason before ``:``), one
  of :data:`REASONS` or ``other``; all are exported from start-up at 0.
* ``duplicates_ignored_total``: valid messages that changed nothing.
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
  (next offset to fetch), both read from Faust's consumer
  (``app.consumer.highwater(tp)``, ``await app.consumer.position(tp)``);
  series of revoked partitions are removed. 0 once the worker caught up.
* ``open_dossiers`` / ``open_past_due_dossiers``: dossiers received and not
  completed or withdrawn at the worker's clock, and those of them past their
  effective due time (not while waiting for a supplement), per unit.
* ``indicator_numerator`` / ``indicator_denominator``: each indicator of
  :data:`~dossier_stream.report.INDICATORS` except ``synchronisation`` (its
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

Cost: counters move once per batch and label set, histograms observe each
applied event; the per-unit figures are kept incrementally from each event's
counter changes (a newly assigned partition is summed once from its engine)
and the open-dossier index holds only dossiers not closed yet, so
``Worker.refresh_metrics``, run every few seconds on the event loop, sums a
few thousand numbers and looks at the open dossiers only.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import threading
import time
from collections import Counter as Tally
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from dossier_stream.engine import Engine
from dossier_stream.events import DossierEvent
from dossier_stream.lifecycle import DossierState
from dossier_stream.periods import Period, monthly_report
from dossier_stream.processor import Handled
from dossier_stream.registry import UnitRegistry
from dossier_stream.report import INDICATORS, Indicator
from dossier_stream.workdays import VN_TZ

__all__ = [
    "FLUSH_BUCKETS",
    "LATENCY_BUCKETS",
    "LIVE_INDICATORS",
    "REASONS",
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
    "wrong_topic", "unroutable",
)  # fmt: skip
"""Dead-letter reason codes (``InvalidEvent.code``, and ``unroutable`` from ``produce``)."""
LIVE_INDICATORS: Final[tuple[Indicator, ...]] = tuple(
    ind for ind in INDICATORS if ind.key != "synchronisation"
)
"""Indicators exported per unit (``synchronisation`` is not additive across workers)."""

_PREFIX: Final = "dossier_stream_"

UnitLevel = tuple[str, str]
"""``(unit code, level)``."""
IndicatorKey = tuple[str, str, str]
"""``(indicator, unit code, level)``."""


def reason_label(code: str) -> str:
    """The bounded ``reason`` label of a dead letter: a known code, else ``other``."""
    code = code.partition(":")[0]
    return code if code in REASONS else "other"


def live_period(now: datetime) -> Period:
    """The city's monthly report period (15th → 14th) containing ``now``'s local day."""
    day = now.astimezone(VN_TZ).date()
    if day.day < 15:
        return monthly_report(day.year, day.month)
    year, month = (day.year + 1, 1) if day.month == 12 else (day.year, day.month + 1)
    return monthly_report(year, month)


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class LiveSnapshot:
    """The per-unit figures of one refresh.

    Attributes:
        period: the current monthly report period.
        window: its days up to today (what the indicator figures sum).
        indicators: ``(numerator, denominator)`` per (indicator, unit, level).
        open: open dossiers per (unit, level).
        past_due: open and past-due dossiers per (unit, level).
    """

    period: Period
    window: Period
    indicators: dict[IndicatorKey, tuple[int, int]] = field(default_factory=dict)
    open: dict[UnitLevel, int] = field(default_factory=dict)
    past_due: dict[UnitLevel, int] = field(default_factory=dict)


def _maybe_open(state: DossierState | None, now: datetime) -> bool:
    """Received and not completed or withdrawn at or before ``now``."""
    if state is None or state.received is None:
        return False
    if state.completion is not None and state.completion.completed_at <= now:
        return False
    return state.withdrawn_at is None or state.withdrawn_at > now


class LiveFigures:
    """Period-to-date counter totals and open dossiers of the sources this worker owns.

    A source (partition) seen for the first time, or handled by a new engine
    after a reassignment, is summed once from its engine's counters and
    states; after that :meth:`update` adds the counter changes of each
    handled message. When the local day changes everything is summed again
    for the new window. Sources whose engine is gone (revoked) are dropped.

    Args:
        registry: the unit registry (labels are bounded by it).
        clock: the current time (injectable for tests); aware datetimes.
    """

    def __init__(
        self, registry: UnitRegistry, *, clock: Callable[[], datetime] | None = None
    ) -> None:
        self.registry = registry
        self.clock = clock or _utcnow
        self._period: Period | None = None
        self._window: Period | None = None
        self._engines: dict[str, Engine] = {}
        self._totals: dict[str, dict[tuple[str, str], int]] = {}
        self._open: dict[str, dict[str, DossierState]] = {}

    def _roll(self, now: datetime) -> Period:
        period = live_period(now)
        window = Period(period.start, now.astimezone(VN_TZ).date())
        if window != self._window:
            self._period, self._window = period, window
            self._engines.clear()
            self._totals.clear()
            self._open.clear()
        return window

    def _sync(self, engines: Mapping[str, Engine], window: Period, now: datetime) -> set[str]:
        """Drop revoked sources and load new ones; returns the sources just loaded."""
        for source in [s for s, e in self._engines.items() if engines.get(s) is not e]:
            del self._engines[source], self._totals[source], self._open[source]
        loaded = set()
        for source, engine in engines.items():
            if source in self._engines:
                continue
            totals: dict[tuple[str, str], int] = {}
            for (unit, day, name), value in engine.counters.items():
                if day in window:
                    totals[(unit, name)] = totals.get((unit, name), 0) + value
            self._totals[source] = totals
            self._open[source] = {
                s.dossier_id: s for s in engine.dossiers.values() if _maybe_open(s, now)
            }
            self._engines[source] = engine
            loaded.add(source)
        return loaded

    def update(self, handled: Iterable[Handled], engines: Mapping[str, Engine]) -> None:
        """Add what a batch changed (call after every ``Processor.handle``)."""
        now = self.clock()
        window = self._roll(now)
        loaded = self._sync(engines, window, now)
        for item in handled:
            out = item.outcome
            if out.kind != "applied" or item.source in loaded or item.source not in self._engines:
                continue
            totals = self._totals[item.source]
            for (unit, day, name), value in out.delta.items():
                if day in window:
                    totals[(unit, name)] = totals.get((unit, name), 0) + value
            if isinstance(out.event, DossierEvent):
                did = out.event.dossier_id
                state = self._engines[item.source].dossiers.get(did)
                index = self._open[item.source]
                if state is not None and _maybe_open(state, now):
                    index[did] = state
                else:
                    index.pop(did, None)

    def snapshot(self, engines: Mapping[str, Engine]) -> LiveSnapshot:
        """The per-unit figures now."""
        now = self.clock()
        window = self._roll(now)
        self._sync(engines, window, now)
        assert self._period is not None  # set by _roll
        per_unit: dict[str, dict[str, int]] = {}
        for totals in self._totals.values():
            for (unit, name), value in totals.items():
                named = per_unit.setdefault(unit, {})
                named[name] = named.get(name, 0) + value
        snap = LiveSnapshot(self._period, window)
        for code, named in per_unit.items():
            if code not in self.registry:
                continue
            level = self.registry.get(code).level
            for ind in LIVE_INDICATORS:
                snap.indicators[(ind.key, code, level)] = (
                    named.get(ind.numerator, 0),
                    named.get(ind.denominator, 0),
                )
        for index in self._open.values():
            for did, state in list(index.items()):
                if not _maybe_open(state, now):
                    del index[did]
                    continue
                assert state.received is not None  # _maybe_open checked it
                code = state.received.unit_code
                if code not in self.registry or state.received.received_at > now:
                    continue
                key = (code, self.registry.get(code).level)
                snap.open[key] = snap.open.get(key, 0) + 1
                if state.is_open_past_due(now):
                    snap.past_due[key] = snap.past_due.get(key, 0) + 1
        return snap


async def consumer_lag(consumer: Any, *, timeout: float = 2.0) -> dict[tuple[str, int], int]:
    """Messages behind per assigned partition: high watermark − position.

    Args:
        consumer: Faust's consumer (``app.consumer``): ``assignment()``,
            ``highwater(tp)`` (from the last fetch response; correct on Tansu,
            unlike its ``end_offsets``) and ``await position(tp)``.
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
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = CollectorRegistry() if registry is None else registry
        r, p = self.registry, _PREFIX
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
        self.apply_latency = Histogram(
            f"{p}event_apply_latency_seconds", "Event time (occurred_at) to state applied.",
            buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.flush_latency = Histogram(
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
        self._unflushed: list[float] = []
        self._lag_keys: set[tuple[str, str]] = set()
        self._indicator_keys: set[IndicatorKey] = set()
        self._open_keys: set[UnitLevel] = set()

    def observe(self, handled: Iterable[Handled], *, now: float | None = None) -> None:
        """Count what the processor did with a batch (before it is flushed).

        Args:
            handled: the outcomes of ``Processor.handle`` (or a producer dead letter).
            now: Unix time of the fold (default: the clock).
        """
        now = time.time() if now is None else now
        consumed: Tally[tuple[str, str]] = Tally()
        duplicates: Tally[str] = Tally()
        dead: Tally[str] = Tally()
        for item in handled:
            out = item.outcome
            if out.dead_letter is not None or out.event is None:
                consumed[(item.topic, "invalid")] += 1
                dead[reason_label(out.dead_letter.code if out.dead_letter else "")] += 1
                continue
            consumed[(item.topic, out.event.event_type)] += 1
            if out.kind == "duplicate":
                duplicates[item.topic] += 1
                continue
            occurred = out.event.occurred_at.timestamp()
            self.apply_latency.observe(max(now - occurred, 0.0))
            self._unflushed.append(occurred)
        for (topic, event_type), n in consumed.items():
            self.events_consumed.labels(topic, event_type).inc(n)
        for topic, n in duplicates.items():
            self.duplicates.labels(topic).inc(n)
        for reason, n in dead.items():
            self.dead_letters.labels(reason).inc(n)

    def observe_flush(self, rows: int, seconds: float, error: BaseException | None) -> None:
        """A :data:`~dossier_stream.sink.FlushHook`: flush duration, rows, failures.

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
        for occurred in self._unflushed:
            self.flush_latency.observe(max(now - occurred, 0.0))
        self._unflushed = []

    def set_lag(self, lags: Mapping[tuple[str, int], int]) -> None:
        """Set the lag of the assigned partitions; remove those no longer assigned."""
        keys = {(topic, str(partition)): lag for (topic, partition), lag in lags.items()}
        for gone in self._lag_keys - keys.keys():
            with contextlib.suppress(KeyError):
                self.consumer_lag.remove(*gone)
        for key, lag in keys.items():
            self.consumer_lag.labels(*key).set(lag)
        self._lag_keys = set(keys)

    def set_live(self, snap: LiveSnapshot) -> None:
        """Set the per-unit gauges; series seen before and absent now go to 0."""
        self.period_start.set(snap.period.starts_at.timestamp())
        self.period_end.set(snap.period.ends_at.timestamp())
        for key in self._indicator_keys - snap.indicators.keys():
            self.numerator.labels(*key).set(0)
            self.denominator.labels(*key).set(0)
        for key, (num, den) in snap.indicators.items():
            self.numerator.labels(*key).set(num)
            self.denominator.labels(*key).set(den)
        self._indicator_keys |= snap.indicators.keys()
        units = snap.open.keys() | snap.past_due.keys()
        for unit in self._open_keys | units:
            self.open_dossiers.labels(*unit).set(snap.open.get(unit, 0))
            self.open_past_due.labels(*unit).set(snap.past_due.get(unit, 0))
        self._open_keys |= units


class MetricsServer:
    """``/metrics`` of one registry over HTTP, in a daemon thread.

    Args:
        registry: what to serve.
        host: bind address (``0.0.0.0`` in a container, ``127.0.0.1`` in tests).
        port: the port; 0 binds an ephemeral one (read :attr:`port` after start).
        fallback: when ``port`` is busy, bind an ephemeral port (with a
            warning) instead of failing.
    """

    def __init__(
        self, registry: CollectorRegistry, *, host: str, port: int, fallback: bool = False
    ) -> None:
        self.registry = registry
        self.host = host
        self.requested_port = port
        self.fallback = fallback
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int | None:
        """The bound port while serving."""
        return None if self._server is None else int(self._server.server_address[1])

    def start(self) -> int:
        """Bind and serve; returns the bound port.

        Raises:
            OSError: the address cannot be bound (the message names the setting).
        """
        if self._server is not None:
            return int(self._server.server_address[1])
        try:
            self._server, self._thread = start_http_server(
                self.requested_port, addr=self.host, registry=self.registry
            )
        except OSError as exc:
            if self.fallback and exc.errno == errno.EADDRINUSE and self.requested_port:
                _LOG.warning(
                    "metrics port %s is busy; serving on an ephemeral port "
                    "(set DOSSIER_METRICS_PORT to choose one)",
                    self.requested_port,
                )
                self._server, self._thread = start_http_server(
                    0, addr=self.host, registry=self.registry
                )
                return self._started()
            raise OSError(
                exc.errno,
                f"cannot serve metrics on {self.host}:{self.requested_port} "
                f"(DOSSIER_METRICS_HOST / DOSSIER_METRICS_PORT): {exc.strerror or exc}; "
                "DOSSIER_METRICS_PORT=0 picks a free port",
            ) from exc
        return self._started()

    def _started(self) -> int:
        assert self._server is not None
        port = int(self._server.server_address[1])
        _LOG.info("serving metrics on http://%s:%s/metrics", self.host, port)
        return port

    def stop(self) -> None:
        """Stop serving and release the port."""
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = self._thread = None
