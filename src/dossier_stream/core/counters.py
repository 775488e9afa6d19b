"""Indicator counters per (unit, day, counter), derived from lifecycle states.

Every indicator of ``shared/spec/indicators.md`` is a numerator and a
denominator, both sums of integer counters kept per unit and per cohort day.
The counters of a dossier are a *pure function of its state*
(:func:`dossier_counters`); when an event moves a dossier from state ``a`` to
``b`` the stream adds ``dossier_counters(b) - dossier_counters(a)``
(:func:`state_delta`). Summed over any order of events this telescopes to the
counters of the final state, so a late event moves counts between cohorts
correctly (a completion seen before its reception counts, with the right due
time, once the reception arrives) and duplicates add nothing.

Cohort days (local dates in Asia/Ho_Chi_Minh):

* received cohort (``received_*``): the day of ``received_at``;
* completed cohort (``completed_*``): the day of ``completed_at``; a withdrawn
  dossier is in no completed cohort;
* payments (``payment_*``): the day of ``paid_at``, per transaction;
* feedback (``feedback_*``): the day of ``resolved_at``.

``completed_online_result`` counts completed dossiers received online whose
result file is attached: the online dossiers the national portal recognises
(QĐ 766/QĐ-TTg: an online dossier without an electronic result is not counted
as online).

``completed_ahead_working_days`` sums, over dossiers completed before their
effective due day, the working days between completion and due (0 for the
rest); divided by ``completed`` it is the average number of days completed
ahead of the due time (seeds 003/004, "số ngày trung bình được rút ngắn").
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, MutableMapping
from datetime import date, datetime
from typing import Final, TypeVar

from dossier_stream.core.lifecycle import DossierState, FeedbackState, Reception
from dossier_stream.core.workdays import VN_TZ, WorkCalendar

__all__ = [
    "COUNTERS",
    "CounterKey",
    "accumulate",
    "dossier_counters",
    "feedback_counters",
    "feedback_delta",
    "open_past_due",
    "state_delta",
]

CounterKey = tuple[str, date, str]
"""``(unit_code, day, counter)``."""

_Totals = TypeVar("_Totals", bound=MutableMapping[CounterKey, int])

RECEIVED_COUNTERS: Final = (
    "received",
    "received_online",
    "received_oos",
    "received_oos_online",
    "received_fee",
    "received_fee_paid",
    "received_fee_paid_online",
    "received_fee_paid_noncash",
    "received_reused",
)
COMPLETED_COUNTERS: Final = (
    "completed",
    "completed_component",
    "completed_result",
    "completed_both",
    "completed_on_time",
    "completed_overdue",
    "completed_first_time_valid",
    "completed_e_signed",
    "completed_ahead_working_days",
    "completed_online_result",
)
PAYMENT_COUNTERS: Final = (
    "payment_tx_online",
    "payment_amount_online",
    "payment_tx_cashless",
    "payment_amount_cashless",
    "payment_tx_cash",
    "payment_amount_cash",
)
FEEDBACK_COUNTERS: Final = ("feedback_resolved", "feedback_resolved_on_time")
COUNTERS: Final[tuple[str, ...]] = (
    RECEIVED_COUNTERS + COMPLETED_COUNTERS + PAYMENT_COUNTERS + FEEDBACK_COUNTERS
)


def _day(at: datetime) -> date:
    return at.astimezone(VN_TZ).date()


_PAYMENT_NAMES: Final = {
    m: (f"payment_tx_{m}", f"payment_amount_{m}") for m in ("online", "cashless", "cash")
}


def _received_part(out: dict[CounterKey, int], state: DossierState, rec: Reception) -> None:
    """Add the received-cohort counters (reception, and payment status of fee dossiers)."""
    unit = rec.unit_code
    rday = rec.received_at.astimezone(VN_TZ).date()
    online = rec.channel == "online"
    out[(unit, rday, "received")] = 1
    if online:
        out[(unit, rday, "received_online")] = 1
    if rec.online_service_level != "none":
        out[(unit, rday, "received_oos")] = 1
        if online:
            out[(unit, rday, "received_oos_online")] = 1
    if rec.reused_digital_data:
        out[(unit, rday, "received_reused")] = 1
    if rec.fee_required:
        out[(unit, rday, "received_fee")] = 1
        if state.payments:
            methods = {p.method for p in state.payments}
            out[(unit, rday, "received_fee_paid")] = 1
            if "online" in methods:
                out[(unit, rday, "received_fee_paid_online")] = 1
            if "online" in methods or "cashless" in methods:
                out[(unit, rday, "received_fee_paid_noncash")] = 1


def _payment_part(out: dict[CounterKey, int], state: DossierState, unit: str) -> None:
    """Add the counters of the payments, per day of payment and method."""
    for pay in state.payments:
        pday = pay.paid_at.astimezone(VN_TZ).date()
        names = _PAYMENT_NAMES.get(pay.method)
        tx, amount = names or (f"payment_tx_{pay.method}", f"payment_amount_{pay.method}")
        key = (unit, pday, tx)
        out[key] = out.get(key, 0) + 1
        if pay.amount_vnd:
            key = (unit, pday, amount)
            out[key] = out.get(key, 0) + pay.amount_vnd


def _completed_part(
    out: dict[CounterKey, int], state: DossierState, rec: Reception, calendar: WorkCalendar
) -> None:
    """Add the completed-cohort counters (nothing unless completed and not withdrawn)."""
    done = state.completion
    if done is None or state.withdrawn_at is not None:
        return
    unit = rec.unit_code
    cday = done.completed_at.astimezone(VN_TZ).date()
    comp, res = state.has_component_files, state.has_result_files
    if state.supplements:
        requests = state.supplement_requests
        due = rec.due_at + state.pause()
    else:
        requests, due = 0, rec.due_at
    on_time = requests <= 1 and done.completed_at <= due
    out[(unit, cday, "completed")] = 1
    if comp:
        out[(unit, cday, "completed_component")] = 1
    if res:
        out[(unit, cday, "completed_result")] = 1
    if comp and res:
        out[(unit, cday, "completed_both")] = 1
    if res and rec.channel == "online":
        out[(unit, cday, "completed_online_result")] = 1
    out[(unit, cday, "completed_on_time" if on_time else "completed_overdue")] = 1
    if requests == 0:
        out[(unit, cday, "completed_first_time_valid")] = 1
    if done.result_e_signed:
        out[(unit, cday, "completed_e_signed")] = 1
    if on_time:
        ahead = calendar.working_days_between(cday, due.astimezone(VN_TZ).date())
        if ahead > 0:
            out[(unit, cday, "completed_ahead_working_days")] = ahead


def dossier_counters(state: DossierState, calendar: WorkCalendar) -> dict[CounterKey, int]:
    """All counters one dossier contributes, given its current state.

    Args:
        state: the dossier's state.
        calendar: the working-day calendar (for days ahead of due).

    Returns:
        Non-zero counters only; empty until the reception is known. The keys
        come in a fixed order: received cohort, payments, completed cohort.
    """
    rec = state.received
    if rec is None:
        return {}
    out: dict[CounterKey, int] = {}
    _received_part(out, state, rec)
    _payment_part(out, state, rec.unit_code)
    _completed_part(out, state, rec, calendar)
    return out


def feedback_counters(state: FeedbackState) -> dict[CounterKey, int]:
    """Counters of one feedback: counted once received and resolved."""
    on_time = state.is_on_time
    if on_time is None or state.unit_code is None or state.resolved_at is None:
        return {}
    day = _day(state.resolved_at)
    out = {(state.unit_code, day, "feedback_resolved"): 1}
    if on_time:
        out[(state.unit_code, day, "feedback_resolved_on_time")] = 1
    return out


def _diff(
    before: Mapping[CounterKey, int], after: Mapping[CounterKey, int]
) -> dict[CounterKey, int]:
    delta = dict(after)
    for key, value in before.items():
        left = delta.get(key, 0) - value
        if left:
            delta[key] = left
        else:
            delta.pop(key, None)
    return delta


def state_delta(
    before: DossierState, after: DossierState, calendar: WorkCalendar
) -> dict[CounterKey, int]:
    """Counter changes of one transition (non-zero entries only).

    Equal to the difference of :func:`dossier_counters` of both states, keys
    in the same order, but only the parts of the counters that read a field
    the transition replaced are computed: when both states hold the same
    reception, the received and payment counters depend on the payments only,
    and the completed ones on the completion, withdrawal, files and
    supplements. A part whose inputs are the same objects gives the same
    counters on both sides, which the difference would cancel.
    """
    if before is after:
        return {}
    rec = after.received
    if rec is not before.received:
        if before.received is None:
            return dossier_counters(after, calendar)
        return _diff(dossier_counters(before, calendar), dossier_counters(after, calendar))
    if rec is None:
        return {}
    old: dict[CounterKey, int] = {}
    new: dict[CounterKey, int] = {}
    if before.payments is not after.payments:
        _received_part(old, before, rec)
        _payment_part(old, before, rec.unit_code)
        _received_part(new, after, rec)
        _payment_part(new, after, rec.unit_code)
    if (
        before.completion is not after.completion
        or before.withdrawn_at is not after.withdrawn_at
        or before.supplements is not after.supplements
        or before.has_component_files is not after.has_component_files
        or before.has_result_files is not after.has_result_files
    ):
        # (no completed counters unless completed and not withdrawn)
        if before.completion is not None and before.withdrawn_at is None:
            _completed_part(old, before, rec, calendar)
        if after.completion is not None and after.withdrawn_at is None:
            _completed_part(new, after, rec, calendar)
    if not old:
        return new
    return _diff(old, new)


def feedback_delta(before: FeedbackState, after: FeedbackState) -> dict[CounterKey, int]:
    """Counter changes of one feedback transition (non-zero entries only)."""
    if before is after:
        return {}
    return _diff(feedback_counters(before), feedback_counters(after))


def accumulate(target: _Totals, delta: Mapping[CounterKey, int]) -> _Totals:
    """Add ``delta`` into ``target`` in place, dropping keys that reach zero.

    ``target`` is a ``dict``, or a store of totals on disk with the same
    behaviour (the worker's counter store). A target that is not a ``dict``
    and has an ``accumulate(delta)`` method of its own is handed the delta
    (the counter store's: one call, and it keeps its cache in recency order).
    """
    if type(target) is not dict:
        add = getattr(target, "accumulate", None)
        if add is not None:
            add(delta)
            return target
    get = target.get
    for key, value in delta.items():
        total = get(key, 0) + value
        if total:
            target[key] = total
        else:
            target.pop(key, None)
    return target


def open_past_due(states: Iterable[DossierState], at: datetime) -> dict[str, int]:
    """Dossiers open and already past their effective due time, per unit.

    Args:
        states: dossier states (any number, any units).
        at: the instant, e.g. the end of a report period (23:59:59 of its
            last day, local time).

    Returns:
        ``{unit_code: count}`` for units with at least one such dossier.
    """
    out: dict[str, int] = {}
    for state in states:
        if state.received is not None and state.is_open_past_due(at):
            unit = state.received.unit_code
            out[unit] = out.get(unit, 0) + 1
    return out
