"""The dossier and feedback lifecycle folds: ``state' = apply(state, event)``.

Events of one dossier may arrive in any order and more than once (the four
``dossier.*`` topics are read concurrently, producers retry). The fold is
therefore built so that the final state depends only on the *set* of events:

* every event id is remembered (as a stable 64-bit digest); an id seen before
  changes nothing, so a duplicated event is one event;
* single facts (the reception, the completion, a feedback's reception and
  resolution) are last-writer-wins registers ordered by
  ``(occurred_at, event_id)`` — a re-sent, corrected reception with a later
  ``occurred_at`` replaces the earlier one, whatever the arrival order;
* payments are keyed by ``transaction_id`` (duplicates of a transaction are
  one transaction, even under different event ids), with the same
  last-writer-wins rule inside a key;
* digitization is two monotonic flags (component files, result files);
* supplement requests/receipts are kept as a sorted set, and the pause time
  is computed from that set, not from arrival order;
* withdrawal is a register holding the earliest withdrawal.

Because every field merges commutatively, associatively and idempotently,
any permutation and duplication of the same events gives the same state, and
the indicator counters (:mod:`dossier_stream.counters`) — a pure function of
the state — follow.

Decisions where the contract is silent:

* Nothing about a dossier is counted until its ``dossier.received`` is seen:
  the reception carries the unit, the cohort day and the due time. Until
  then the dossier is *awaiting reception* (:attr:`DossierState.received`
  is ``None``); when the reception arrives, everything seen before counts
  at once.
* The dossier belongs to the unit of its reception event.
* Pause time: supplement events are walked in time order; a request while
  not paused starts a pause, a receipt while paused ends it; a pause still
  open at completion lasts until completion. More than one request makes the
  dossier overdue (national index rule), whatever the times.
* Two events with the same ``event_id`` are the same event; the first one
  seen is kept (the contract makes ids unique, so their contents agree).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Final, Protocol, TypeVar

from dossier_stream.events import (
    DossierCompleted,
    DossierDigitized,
    DossierEvent,
    DossierPayment,
    DossierReceived,
    DossierWithdrawn,
    FeedbackEvent,
    FeedbackReceived,
    FeedbackResolved,
    SupplementReceived,
    SupplementRequested,
)
from dossier_stream.workdays import VN_TZ, WorkCalendar

__all__ = [
    "Completion",
    "DossierState",
    "FeedbackState",
    "Payment",
    "Reception",
    "Supplement",
    "apply_dossier",
    "apply_feedback",
    "event_digest",
]

_ZERO: Final = timedelta(0)


def event_digest(event_id: str) -> int:
    """Return a stable 64-bit digest of an event id (same in every process)."""
    return int.from_bytes(hashlib.blake2b(event_id.encode(), digest_size=8).digest(), "big")


@dataclass(frozen=True, slots=True)
class Reception:
    """The facts of a ``dossier.received`` event, with the due time resolved."""

    order: tuple[datetime, str]
    unit_code: str
    procedure_code: str
    channel: str
    online_service_level: str
    received_at: datetime
    due_at: datetime
    fee_required: bool
    reused_digital_data: bool


@dataclass(frozen=True, slots=True)
class Payment:
    """One fee payment transaction."""

    order: tuple[datetime, str]
    transaction_id: str
    amount_vnd: int
    method: str
    paid_at: datetime


@dataclass(frozen=True, slots=True)
class Supplement:
    """A supplement request (``requested=True``) or receipt."""

    at: datetime
    requested: bool
    event_id: str


@dataclass(frozen=True, slots=True)
class Completion:
    """The facts of a ``dossier.completed`` event."""

    order: tuple[datetime, str]
    completed_at: datetime
    outcome: str
    result_e_signed: bool


@dataclass(frozen=True, slots=True)
class DossierState:
    """Everything known about one dossier; immutable, built by :func:`apply_dossier`."""

    dossier_id: str
    seen: frozenset[int] = frozenset()
    received: Reception | None = None
    payments: tuple[Payment, ...] = ()
    has_component_files: bool = False
    has_result_files: bool = False
    supplements: tuple[Supplement, ...] = ()
    completion: Completion | None = None
    withdrawn_at: datetime | None = None

    @property
    def supplement_requests(self) -> int:
        """How many times the unit asked for more documents."""
        return sum(1 for s in self.supplements if s.requested)

    def pause(self, until: datetime | None = None) -> timedelta:
        """Total paused time; an open pause runs to completion or ``until``.

        Args:
            until: measure up to this instant (e.g. the end of a report
                period); pauses are never counted past completion. ``None``
                measures to completion, leaving an open pause of an
                uncompleted dossier uncounted.
        """
        end = self.completion.completed_at if self.completion else None
        if until is not None:
            end = until if end is None else min(end, until)
        total = _ZERO
        started: datetime | None = None
        for sup in self.supplements:
            if end is not None and sup.at > end:
                break
            if sup.requested and started is None:
                started = sup.at
            elif not sup.requested and started is not None:
                total += sup.at - started
                started = None
        if started is not None and end is not None and end > started:
            total += end - started
        return total

    def paused_at(self, at: datetime) -> bool:
        """Whether the processing clock is stopped at instant ``at``."""
        paused = False
        for sup in self.supplements:
            if sup.at > at:
                break
            if sup.requested:
                paused = True
            elif paused:
                paused = False
        return paused

    def effective_due(self, until: datetime | None = None) -> datetime | None:
        """The due time plus the paused time, or ``None`` before reception."""
        if self.received is None:
            return None
        return self.received.due_at + self.pause(until)

    @property
    def is_withdrawn(self) -> bool:
        """Whether the dossier was withdrawn or its processing stopped."""
        return self.withdrawn_at is not None

    @property
    def is_on_time(self) -> bool | None:
        """On time (trước hạn, đúng hạn) if completed; ``None`` if unknown yet."""
        if self.received is None or self.completion is None:
            return None
        if self.supplement_requests > 1:
            return False
        due = self.effective_due()
        assert due is not None  # received is set
        return self.completion.completed_at <= due

    def is_open_past_due(self, at: datetime) -> bool:
        """Open (received, not completed, not withdrawn) at ``at`` and past due."""
        rec = self.received
        if rec is None or rec.received_at > at:
            return False
        if self.completion is not None and self.completion.completed_at <= at:
            return False
        if self.withdrawn_at is not None and self.withdrawn_at <= at:
            return False
        if self.paused_at(at):
            return False
        if self.supplement_requests > 1:
            return True
        due = rec.due_at + self.pause(at)
        return at > due


class _Ordered(Protocol):
    @property
    def order(self) -> tuple[datetime, str]: ...


_O = TypeVar("_O", bound=_Ordered)


def _later(current: _O | None, new: _O) -> _O:
    """Last-writer-wins: the fact with the greater ``(occurred_at, event_id)``."""
    if current is None or new.order > current.order:
        return new
    return current


def apply_dossier(state: DossierState, event: DossierEvent, calendar: WorkCalendar) -> DossierState:
    """Fold one event into a dossier's state.

    Args:
        state: the current state (``DossierState(dossier_id)`` for a new one).
        event: an event of this dossier.
        calendar: the working-day calendar used to resolve due times.

    Returns:
        The new state; the *same object* when the event changes nothing (a
        duplicate), so ``new is state`` tells the caller it was a duplicate.
    """
    digest = event_digest(event.event_id)
    if digest in state.seen:
        return state
    seen = state.seen | {digest}
    order = (event.occurred_at, event.event_id)
    if isinstance(event, DossierReceived):
        due = event.due_at
        if due is None:
            assert event.processing_working_days is not None  # model validator
            due = calendar.due_at(event.received_at, event.processing_working_days)
        rec = Reception(
            order=order,
            unit_code=event.unit_code,
            procedure_code=event.procedure_code,
            channel=event.channel,
            online_service_level=event.online_service_level,
            received_at=event.received_at.astimezone(VN_TZ),
            due_at=due.astimezone(VN_TZ),
            fee_required=event.fee_required,
            reused_digital_data=event.reused_digital_data,
        )
        return replace(state, seen=seen, received=_later(state.received, rec))
    if isinstance(event, DossierPayment):
        pay = Payment(
            order=order,
            transaction_id=event.transaction_id,
            amount_vnd=event.amount_vnd,
            method=event.method,
            paid_at=event.paid_at.astimezone(VN_TZ),
        )
        others = [p for p in state.payments if p.transaction_id != pay.transaction_id]
        same = [p for p in state.payments if p.transaction_id == pay.transaction_id]
        kept = _later(same[0] if same else None, pay)
        payments = tuple(sorted([*others, kept], key=lambda p: p.transaction_id))
        return replace(state, seen=seen, payments=payments)
    if isinstance(event, DossierDigitized):
        if event.kind == "component":
            return replace(state, seen=seen, has_component_files=True)
        return replace(state, seen=seen, has_result_files=True)
    if isinstance(event, SupplementRequested | SupplementReceived):
        sup = Supplement(
            at=event.occurred_at.astimezone(VN_TZ),
            requested=isinstance(event, SupplementRequested),
            event_id=event.event_id,
        )
        sups = tuple(
            sorted(
                (*state.supplements, sup),
                key=lambda s: (s.at, not s.requested, s.event_id),
            )
        )
        return replace(state, seen=seen, supplements=sups)
    if isinstance(event, DossierCompleted):
        done = Completion(
            order=order,
            completed_at=event.completed_at.astimezone(VN_TZ),
            outcome=event.outcome,
            result_e_signed=event.result_e_signed,
        )
        return replace(state, seen=seen, completion=_later(state.completion, done))
    if isinstance(event, DossierWithdrawn):
        at = event.occurred_at.astimezone(VN_TZ)
        first = at if state.withdrawn_at is None else min(state.withdrawn_at, at)
        return replace(state, seen=seen, withdrawn_at=first)
    raise TypeError(f"not a dossier event: {type(event).__name__}")


@dataclass(frozen=True, slots=True)
class FeedbackState:
    """Everything known about one citizen feedback (phản ánh, kiến nghị)."""

    feedback_id: str
    seen: frozenset[int] = frozenset()
    unit_code: str | None = None
    received_order: tuple[datetime, str] | None = None
    due_at: datetime | None = None
    resolved_order: tuple[datetime, str] | None = None
    resolved_at: datetime | None = None

    @property
    def is_on_time(self) -> bool | None:
        """Resolved no later than due; ``None`` until both facts are known."""
        if self.due_at is None or self.resolved_at is None:
            return None
        return self.resolved_at <= self.due_at


def apply_feedback(state: FeedbackState, event: FeedbackEvent) -> FeedbackState:
    """Fold one feedback event; returns ``state`` itself for a duplicate.

    The feedback belongs to the unit of its ``feedback.received`` event; it is
    counted once both reception (the due time) and resolution are known.
    """
    digest = event_digest(event.event_id)
    if digest in state.seen:
        return state
    seen = state.seen | {digest}
    order = (event.occurred_at, event.event_id)
    if isinstance(event, FeedbackReceived):
        if state.received_order is not None and state.received_order >= order:
            return replace(state, seen=seen)
        return replace(
            state,
            seen=seen,
            unit_code=event.unit_code,
            received_order=order,
            due_at=event.due_at.astimezone(VN_TZ),
        )
    if isinstance(event, FeedbackResolved):
        if state.resolved_order is not None and state.resolved_order >= order:
            return replace(state, seen=seen)
        return replace(
            state,
            seen=seen,
            resolved_order=order,
            resolved_at=event.resolved_at.astimezone(VN_TZ),
        )
    raise TypeError(f"not a feedback event: {type(event).__name__}")
