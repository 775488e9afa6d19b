"""Reconciliation: the streamed counters against the dossier facts, and the units' own reports.

The report of a period is read from ``unit_day_counters``, the per-(unit, day)
counters the worker streams. :func:`reconcile` recomputes every indicator of
:data:`dossier_stream.core.indicators.INDICATORS` for the same period with one plain
SQL query (:data:`RECOMPUTE_SQL`) over ``dossier_facts FINAL`` and
``feedback_facts FINAL`` — one row per dossier / feedback with its latest
state — straight from the definitions of ``spec/indicators.md``, without the
counters or :mod:`dossier_stream.core.counters`, and lists every (unit, indicator,
numerator/denominator) where the two disagree. Zero differences means the
counters the report prints are exactly what the stored dossiers give.

How each counter is recomputed (``P`` = the period, days in Asia/Ho_Chi_Minh;
only dossiers whose reception is known count, as in the stream):

* received cohort — ``toDate(received_at, 'Asia/Ho_Chi_Minh')`` in ``P``:
  ``received``; ``received_online`` (``channel = 'online'``); ``received_oos``
  and ``received_oos_online`` (``online_service_level != 'none'``);
  ``received_fee`` (``fee_required``); ``received_fee_paid`` (fee and any of
  ``paid_online/paid_cashless/paid_cash``); ``received_fee_paid_online`` (fee
  and ``paid_online``); ``received_fee_paid_noncash`` (fee and ``paid_online``
  or ``paid_cashless``); ``received_reused`` (``reused_digital_data``).
  "Received in P" is the cohort of the payment indicators too: a payment made
  after ``P`` of a dossier received in ``P`` counts for ``P`` (the ``paid_*``
  flags cover every payment the dossier has).
* completed cohort — ``toDate(completed_at, …)`` in ``P`` and
  ``withdrawn_at IS NULL`` (a withdrawn dossier leaves the completed cohorts,
  whenever it was withdrawn): ``completed``; ``completed_component``,
  ``completed_result``, ``completed_both`` (the file flags);
  ``completed_on_time`` = ``supplement_requests <= 1 AND completed_at <=
  effective_due`` (more than one supplement request is overdue, the national
  rule), ``completed_overdue`` its complement; ``completed_first_time_valid``
  = ``supplement_requests = 0``; ``completed_online_result`` = ``channel =
  'online'`` and the result file flag. The ``on_time`` column is *not* used: the
  rule is applied again to the raw columns. ``effective_due`` (the due time
  plus the paused time) is taken from the fact row: the pause needs the
  supplement timeline, which only the encoded ``state`` holds.
* feedback — ``toDate(resolved_at, …)`` in ``P`` for feedback with a unit, a
  due time and a resolution: ``feedback_resolved``; ``feedback_resolved_on_time``
  (``resolved_at <= due_at``).
* ``synchronisation`` — for units that reported for exactly ``P``: the
  numerator is ``received``; the denominator ``max(reported, received)``, on
  each side with its own ``received``.

Not reconciled (they are not indicators, and the fact columns cannot give
them): payment transactions and amounts (per transaction, by ``paid_at``: the
facts keep only which methods were used), the working days completed ahead of
due (the working-day calendar is not in ClickHouse), e-signed results, and
the open past-due dossiers (the report computes those from the facts already).

Synchronisation (:class:`SyncRow`): what each unit reported itself
(``unit.reported_totals`` for exactly ``P``, table ``unit_reports``) against
the dossiers received in ``P`` that the system holds (recomputed from the
facts). Units reporting more than the system holds are the city's
"synchronisation gap" (dossiers handled outside the system, or not
synchronised to it). That is a finding about the units' reports, not a fault
of this system: it does not make :attr:`Reconciliation.ok` false.

Every value reaches ClickHouse as a bound parameter (``{start:Date}``); the
SQL text is a constant.

Run it on a store at rest (the worker caught up, or stopped): the counters
and the facts are read by separate queries, and a flush writes the counters
before the facts, so a reconciliation that overlaps a flush can report a
transient difference that a second run does not.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, Final, Literal

from dossier_stream.core.counters import COMPLETED_COUNTERS, FEEDBACK_COUNTERS, RECEIVED_COUNTERS
from dossier_stream.core.indicators import INDICATORS
from dossier_stream.core.periods import Period
from dossier_stream.store.reportreads import counter_totals

if TYPE_CHECKING:
    from dossier_stream.store.sink import ClickHouseStore

__all__ = [
    "RECOMPUTED_COUNTERS",
    "RECOMPUTE_SQL",
    "Difference",
    "Reconciliation",
    "SyncRow",
    "recompute",
    "reconcile",
    "render_text",
]

SYNC: Final = "synchronisation"

_NOT_FROM_FACTS: Final = ("completed_e_signed", "completed_ahead_working_days")
RECOMPUTED_COUNTERS: Final[tuple[str, ...]] = (
    *RECEIVED_COUNTERS,
    *(c for c in COMPLETED_COUNTERS if c not in _NOT_FROM_FACTS),
    *FEEDBACK_COUNTERS,
)
"""The counters :data:`RECOMPUTE_SQL` returns, in its column order after ``unit_code``."""

RECOMPUTE_SQL: Final = """
SELECT
    unit_code,
    received, received_online, received_oos, received_oos_online,
    received_fee, received_fee_paid, received_fee_paid_online, received_fee_paid_noncash,
    received_reused,
    completed, completed_component, completed_result, completed_both,
    completed_on_time, completed_overdue, completed_first_time_valid, completed_online_result,
    feedback_resolved, feedback_resolved_on_time
FROM (
    SELECT
        unit_code,
        countIf(rec) AS received,
        countIf(rec AND channel = 'online') AS received_online,
        countIf(rec AND oos) AS received_oos,
        countIf(rec AND oos AND channel = 'online') AS received_oos_online,
        countIf(rec AND fee) AS received_fee,
        countIf(rec AND fee AND (paid_online OR paid_cashless OR paid_cash)) AS received_fee_paid,
        countIf(rec AND fee AND paid_online) AS received_fee_paid_online,
        countIf(rec AND fee AND (paid_online OR paid_cashless)) AS received_fee_paid_noncash,
        countIf(rec AND reused_digital_data = 1) AS received_reused,
        countIf(done) AS completed,
        countIf(done AND has_component_files = 1) AS completed_component,
        countIf(done AND has_result_files = 1) AS completed_result,
        countIf(done AND has_component_files = 1 AND has_result_files = 1) AS completed_both,
        countIf(done AND in_time) AS completed_on_time,
        countIf(done AND NOT in_time) AS completed_overdue,
        countIf(done AND supplement_requests = 0) AS completed_first_time_valid,
        countIf(done AND channel = 'online' AND has_result_files = 1) AS completed_online_result
    FROM (
        SELECT
            unit_code, channel, reused_digital_data, paid_online, paid_cashless, paid_cash,
            has_component_files, has_result_files, supplement_requests,
            fee_required = 1 AS fee,
            online_service_level != 'none' AS oos,
            ifNull(toDate(received_at, 'Asia/Ho_Chi_Minh')
                   BETWEEN {start:Date} AND {end:Date}, 0) AS rec,
            ifNull(withdrawn_at IS NULL
                   AND toDate(completed_at, 'Asia/Ho_Chi_Minh') BETWEEN {start:Date} AND {end:Date},
                   0) AS done,
            supplement_requests <= 1 AND ifNull(completed_at <= effective_due, 0) AS in_time
        FROM dossier_facts FINAL
        WHERE received_at IS NOT NULL AND unit_code != ''
    )
    WHERE rec OR done
    GROUP BY unit_code
) AS d
FULL OUTER JOIN (
    SELECT
        unit_code,
        count() AS feedback_resolved,
        countIf(resolved_at <= due_at) AS feedback_resolved_on_time
    FROM feedback_facts FINAL
    WHERE unit_code != '' AND due_at IS NOT NULL AND resolved_at IS NOT NULL
      AND toDate(resolved_at, 'Asia/Ho_Chi_Minh') BETWEEN {start:Date} AND {end:Date}
    GROUP BY unit_code
) AS f USING (unit_code)
ORDER BY unit_code
"""
"""Per unit, every counter of the indicators over ``[start, end]``, from the fact tables."""

Part = Literal["numerator", "denominator"]
SyncStatus = Literal["match", "reported_more", "reported_less", "no_report"]


@dataclass(frozen=True, slots=True)
class Difference:
    """One (unit, indicator, part) where the streamed figure is not the recomputed one."""

    unit_code: str
    indicator: str
    part: Part
    counter: str
    streamed: int
    recomputed: int

    @property
    def delta(self) -> int:
        """Streamed minus recomputed (positive: the counters count too much)."""
        return self.streamed - self.recomputed

    def to_json(self, names: Mapping[str, str]) -> dict[str, Any]:
        """JSON-ready form, with the unit's name when known."""
        return {
            "unit_code": self.unit_code,
            "name": names.get(self.unit_code),
            "indicator": self.indicator,
            "part": self.part,
            "counter": self.counter,
            "streamed": self.streamed,
            "recomputed": self.recomputed,
            "delta": self.delta,
        }


@dataclass(frozen=True, slots=True)
class SyncRow:
    """A unit's own report for the period against what the system holds.

    Attributes:
        unit_code: the unit.
        reported: ``received_total`` of its report for exactly the period
            (``None``: no report).
        held: dossiers received in the period on the system (from the facts).
    """

    unit_code: str
    reported: int | None
    held: int

    @property
    def gap(self) -> int | None:
        """Reported minus held (positive: dossiers missing from the system)."""
        return None if self.reported is None else self.reported - self.held

    @property
    def status(self) -> SyncStatus:
        """``match``, ``reported_more``, ``reported_less`` or ``no_report``."""
        if self.reported is None:
            return "no_report"
        if self.reported > self.held:
            return "reported_more"
        return "reported_less" if self.reported < self.held else "match"

    def to_json(self, names: Mapping[str, str]) -> dict[str, Any]:
        """JSON-ready form, with the unit's name when known."""
        return {
            "unit_code": self.unit_code,
            "name": names.get(self.unit_code),
            "reported": self.reported,
            "held": self.held,
            "gap": self.gap,
            "status": self.status,
        }


@dataclass(frozen=True, slots=True)
class Reconciliation:
    """The outcome of :func:`reconcile`.

    Attributes:
        period: the period reconciled.
        units: every unit checked (with counts on either side or a report).
        compared: how many (unit, indicator) pairs were compared.
        differences: the disagreeing (unit, indicator, part) figures.
        sync: one row per unit that reported or holds dossiers received in
            the period (or was expected to report).
        names: unit names for printing (may be empty).
    """

    period: Period
    units: tuple[str, ...]
    compared: int
    differences: tuple[Difference, ...]
    sync: tuple[SyncRow, ...]
    names: Mapping[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """No indicator differs (the units' reports are not part of this)."""
        return not self.differences

    @property
    def sync_differing(self) -> tuple[SyncRow, ...]:
        """Units whose report differs from what the system holds."""
        return tuple(r for r in self.sync if r.status in ("reported_more", "reported_less"))

    @property
    def sync_ok(self) -> bool:
        """Every unit that reported for the period reported what the system holds."""
        return not self.sync_differing

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form (what ``reconcile --format json`` prints)."""
        n = self.names
        differing = self.sync_differing
        more = [r for r in differing if r.status == "reported_more"]
        return {
            "period": self.period.to_json(),
            "summary": {
                "units_checked": len(self.units),
                "indicators_compared": self.compared,
                "differences": len(self.differences),
                "units_with_differences": len({d.unit_code for d in self.differences}),
                "ok": self.ok,
            },
            "differences": [d.to_json(n) for d in self.differences],
            "synchronisation": {
                "units_reported": sum(r.reported is not None for r in self.sync),
                "units_matching": sum(r.status == "match" for r in self.sync),
                "differing": [r.to_json(n) for r in differing],
                "reported_more": [r.unit_code for r in more],
                "gap_total": sum(r.gap or 0 for r in more),
                "without_report": [r.unit_code for r in self.sync if r.reported is None],
                "units": [r.to_json(n) for r in self.sync],
            },
        }


def _check_period(period: Period) -> None:
    for day in (period.start, period.end):
        if isinstance(day, datetime) or not isinstance(day, date):
            raise TypeError(f"a period is made of dates, not {type(day).__name__}")


def recompute(store: ClickHouseStore, period: Period) -> dict[str, dict[str, int]]:
    """Every counter of the indicators per unit over ``period``, from the fact tables.

    Args:
        store: the ClickHouse store.
        period: the period (dates only reach the query as bound parameters).

    Returns:
        ``{unit_code: {counter: value}}`` with non-zero values only, for the
        counters of :data:`RECOMPUTED_COUNTERS`.
    """
    _check_period(period)
    result = store.client.query(
        RECOMPUTE_SQL, parameters={"start": period.start, "end": period.end}
    )
    out: dict[str, dict[str, int]] = {}
    for row in result.result_rows:
        values = {
            name: int(value)
            for name, value in zip(RECOMPUTED_COUNTERS, row[1:], strict=True)
            if value
        }
        if values:
            out[str(row[0])] = values
    return out


def _compare(
    units: Iterable[str],
    streamed: Mapping[str, Mapping[str, int]],
    recomputed: Mapping[str, Mapping[str, int]],
    reported: Mapping[str, int],
) -> tuple[int, list[Difference]]:
    compared = 0
    diffs: list[Difference] = []
    for unit in units:
        s, r = streamed.get(unit, {}), recomputed.get(unit, {})
        for ind in INDICATORS:
            s_num, r_num = s.get(ind.numerator, 0), r.get(ind.numerator, 0)
            if ind.key == SYNC:
                if unit not in reported:
                    continue  # undefined without a report
                s_den, r_den = max(reported[unit], s_num), max(reported[unit], r_num)
            else:
                s_den, r_den = s.get(ind.denominator, 0), r.get(ind.denominator, 0)
            compared += 1
            parts: tuple[tuple[Part, str, int, int], ...] = (
                ("numerator", ind.numerator, s_num, r_num),
                ("denominator", ind.denominator, s_den, r_den),
            )
            for part, counter, a, b in parts:
                if a != b:
                    diffs.append(Difference(unit, ind.key, part, counter, a, b))
    return compared, diffs


def reconcile(
    store: ClickHouseStore,
    period: Period,
    *,
    expected_units: Iterable[str] = (),
    names: Mapping[str, str] | None = None,
) -> Reconciliation:
    """Compare the streamed counters of ``period`` with the facts, and the units' reports.

    Args:
        store: the ClickHouse store.
        period: the period.
        expected_units: units expected to report for the period (e.g. the
            registry's units of the period); they are listed without a report
            when they sent none, even if they hold no dossiers.
        names: unit names for printing.

    Returns:
        The differences per (unit, indicator, part) and the synchronisation rows.
    """
    _check_period(period)
    wanted = set(RECOMPUTED_COUNTERS)
    streamed = {
        unit: kept
        for unit, totals in counter_totals(store, period.start, period.end).items()
        if (kept := {c: v for c, v in totals.items() if c in wanted and v})
    }
    recomputed = recompute(store, period)
    reported = {
        unit: total
        for (unit, start, end), total in store.reported_totals(period.start, period.end).items()
        if (start, end) == (period.start, period.end)
    }
    units = tuple(sorted(streamed.keys() | recomputed.keys() | reported.keys()))
    compared, diffs = _compare(units, streamed, recomputed, reported)
    held = {unit: c.get("received", 0) for unit, c in recomputed.items()}
    sync_units = sorted(reported.keys() | {u for u, n in held.items() if n} | set(expected_units))
    sync = tuple(SyncRow(u, reported.get(u), held.get(u, 0)) for u in sync_units)
    return Reconciliation(period, units, compared, tuple(diffs), sync, dict(names or {}))


def _table(header: tuple[str, ...], rows: Iterable[tuple[object, ...]]) -> list[str]:
    return ["\t".join(header), *("\t".join(str(c) for c in row) for row in rows)]


def _units(n: int) -> str:
    return f"{n} unit" if n == 1 else f"{n} units"


def _signed(n: int) -> str:
    return f"+{n}" if n > 0 else str(n)


def render_text(result: Reconciliation) -> str:
    """The plain-text report of a reconciliation (tables tab-separated)."""
    p, n = result.period, result.names
    lines = [
        f"Reconciliation {p.start.isoformat()} .. {p.end.isoformat()}: streamed counters "
        "(unit_day_counters) against the dossier and feedback facts",
        f"units checked: {len(result.units)}",
        f"indicators compared: {result.compared} (unit × indicator)",
        f"differences: {len(result.differences)}"
        + (
            f" in {_units(len({d.unit_code for d in result.differences}))}"
            if result.differences
            else ""
        ),
        "",
    ]
    if result.differences:
        lines.append("Differences (streamed vs recomputed from the facts)")
        lines += _table(
            ("unit", "name", "indicator", "part", "counter", "streamed", "recomputed", "delta"),
            (
                (d.unit_code, n.get(d.unit_code, ""), d.indicator, d.part, d.counter,
                 d.streamed, d.recomputed, _signed(d.delta))
                for d in result.differences
            ),
        )  # fmt: skip
        lines.append("")
    else:
        lines += ["Every indicator of every unit equals its recomputation from the facts.", ""]
    differing = result.sync_differing
    more = [r for r in differing if r.status == "reported_more"]
    missing = [r for r in result.sync if r.reported is None]
    reported = [r for r in result.sync if r.reported is not None]
    lines += [
        "Synchronisation: unit.reported_totals for exactly the period against the dossiers "
        "received on the system",
        f"units with a report: {len(reported)} ({len(reported) - len(differing)} match, "
        f"{len(differing)} differ); without a report: {len(missing)}",
    ]
    if differing:
        lines.append("Reports that differ from the system:")
        lines += _table(
            ("unit", "name", "reported", "on the system", "gap", "status"),
            (
                (r.unit_code, n.get(r.unit_code, ""), r.reported, r.held,
                 _signed(r.gap or 0), r.status.replace("_", " "))
                for r in differing
            ),
        )  # fmt: skip
    if more:
        lines.append(
            f"Reported more than the system holds (the synchronisation gap): {_units(len(more))}, "
            f"{sum(r.gap or 0 for r in more)} dossiers: " + ", ".join(r.unit_code for r in more)
        )
    if missing:
        lines.append("Units without a report: " + ", ".join(r.unit_code for r in missing))
    return "\n".join(lines) + "\n"
