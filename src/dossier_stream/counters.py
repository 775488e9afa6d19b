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

``completed_ahead_working_days`` sums, over dossiers completed before their
effective due day, the working days between completion and due (0 for the
rest); divided by ``completed`` it is the average number of days completed
ahead of the due time (seeds 003/004, "số ngày trung bình được rút ngắn").
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date, datetime
from typing import Final

from dossier_stream.lifecycle import DossierState, FeedbackState
from dossier_stream.workdays import VN_TZ, WorkCalendar

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


def dossier_counters(state: DossierState, calendar: WorkCalendar) -> dict[CounterKey, int]:
    """All counters one dossier contributes, given its current state.

    Args:
        state: the dossier's state.
        calendar: the working-day calendar (for days ahead of due).

    Returns:
        Non-zero counters only; empty until the reception is known.
    """
    rec = state.received
    if rec is None:
        return {}
    unit = rec.unit_code
    out: dict[CounterKey, int] = {}

    def put(day: date, name: str, value: int = 1) -> None:
        if value:
            key = (unit, day, name)
            out[key] = out.get(key, 0) + value

    rday = _day(rec.received_at)
    online = rec.channel == "online"
    put(rday, "received")
    put(rday, "received_online", online)
    if rec.online_service_level != "none":
        put(rday, "received_oos")
        put(rday, "received_oos_online", online)
    put(rday, "received_reused", rec.reused_digital_data)
    if rec.fee_required:
        methods = {p.method for p in state.payments}
        put(rday, "received_fee")
        put(rday, "received_fee_paid", bool(methods))
        put(rday, "received_fee_paid_online", "online" in methods)
        put(rday, "received_fee_paid_noncash", bool(methods & {"online", "cashless"}))

    for pay in state.payments:
        pday = _day(pay.paid_at)
        put(pday, f"payment_tx_{pay.method}")
        put(pday, f"payment_amount_{pay.method}", pay.amount_vnd)

    done = state.completion
    if done is not None and not state.is_withdrawn:
        cday = _day(done.completed_at)
        comp, res = state.has_component_files, state.has_result_files
        on_time = bool(state.is_on_time)
        put(cday, "completed")
        put(cday, "completed_component", comp)
        put(cday, "completed_result", res)
        put(cday, "completed_both", comp and res)
        put(cday, "completed_on_time", on_time)
        put(cday, "completed_overdue", not on_time)
        put(cday, "completed_first_time_valid", state.supplement_requests == 0)
        put(cday, "completed_e_signed", done.result_e_signed)
        due = state.effective_due()
        if on_time and due is not None:
            ahead = calendar.working_days_between(cday, _day(due))
            put(cday, "completed_ahead_working_days", max(ahead, 0))
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
    """Counter changes of one transition (non-zero entries only)."""
    if before is after:
        return {}
    return _diff(dossier_counters(before, calendar), dossier_counters(after, calendar))


def feedback_delta(before: FeedbackState, after: FeedbackState) -> dict[CounterKey, int]:
    """Counter changes of one feedback transition (non-zero entries only)."""
    if before is after:
        return {}
    return _diff(feedback_counters(before), feedback_counters(after))


def accumulate(
    target: dict[CounterKey, int], delta: Mapping[CounterKey, int]
) -> dict[CounterKey, int]:
    """Add ``delta`` into ``target`` in place, dropping keys that reach zero."""
    for key, value in delta.items():
        total = target.get(key, 0) + value
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
