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
the indicator counters (:mod:`dossier_stream.core.counters`) — a pure function of
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

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from hashlib import blake2b
from typing import Any, Final, Protocol, TypeVar

from dossier_stream.core.events import (
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
from dossier_stream.core.workdays import VN_TZ, WorkCalendar

__all__ = [
    "Completion",
    "DossierState",
    "FeedbackState",
    "Payment",
    "Reception",
    "Supplement",
    "apply_dossier",
    "apply_feedback",
    "empty_dossier",
    "event_digest",
]

_ZERO: Final = timedelta(0)


_BLAKE2B_64: Final = blake2b(digest_size=8)
"""An empty 64-bit BLAKE2b; copying it is cheaper than building one per event."""


_NEW_DIGEST: Final = _BLAKE2B_64.copy
_FROM_BYTES: Final = int.from_bytes


def event_digest(event_id: str) -> int:
    """Return a stable 64-bit digest of an event id (same in every process).

    The 64-bit BLAKE2b of the UTF-8 id, read as a big-endian integer.
    """
    h = _BLAKE2B_64.copy()
    h.update(event_id.encode())
    return int.from_bytes(h.digest(), "big")


# The facts and the state are read-only by convention, not frozen (see DossierState).
@dataclass(init=False, unsafe_hash=True, slots=True)
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

    def __init__(
        self,
        order: tuple[datetime, str],
        unit_code: str,
        procedure_code: str,
        channel: str,
        online_service_level: str,
        received_at: datetime,
        due_at: datetime,
        fee_required: bool,
        reused_digital_data: bool,
    ) -> None:
        self.order = order
        self.unit_code = unit_code
        self.procedure_code = procedure_code
        self.channel = channel
        self.online_service_level = online_service_level
        self.received_at = received_at
        self.due_at = due_at
        self.fee_required = fee_required
        self.reused_digital_data = reused_digital_data


@dataclass(init=False, unsafe_hash=True, slots=True)
class Payment:
    """One fee payment transaction."""

    order: tuple[datetime, str]
    transaction_id: str
    amount_vnd: int
    method: str
    paid_at: datetime

    def __init__(
        self,
        order: tuple[datetime, str],
        transaction_id: str,
        amount_vnd: int,
        method: str,
        paid_at: datetime,
    ) -> None:
        self.order = order
        self.transaction_id = transaction_id
        self.amount_vnd = amount_vnd
        self.method = method
        self.paid_at = paid_at


@dataclass(init=False, unsafe_hash=True, slots=True)
class Supplement:
    """A supplement request (``requested=True``) or receipt."""

    at: datetime
    requested: bool
    event_id: str

    def __init__(
        self,
        at: datetime,
        requested: bool,
        event_id: str,
    ) -> None:
        self.at = at
        self.requested = requested
        self.event_id = event_id


@dataclass(init=False, unsafe_hash=True, slots=True)
class Completion:
    """The facts of a ``dossier.completed`` event."""

    order: tuple[datetime, str]
    completed_at: datetime
    outcome: str
    result_e_signed: bool

    def __init__(
        self,
        order: tuple[datetime, str],
        completed_at: datetime,
        outcome: str,
        result_e_signed: bool,
    ) -> None:
        self.order = order
        self.completed_at = completed_at
        self.outcome = outcome
        self.result_e_signed = result_e_signed


@dataclass(init=False, unsafe_hash=True, slots=True)
class DossierState:
    """Everything known about one dossier, built by :func:`apply_dossier`.

    Never changed once built: the fold makes a new state per event, and
    :func:`~dossier_stream.core.counters.state_delta` tells the parts a
    transition replaced by identity. The facts' classes are not frozen
    dataclasses for speed only: a frozen ``__init__`` sets every field through
    ``object.__setattr__``, where this plain one stores it; compiled by mypyc
    it is a direct C call (a frozen dataclass' would stay Python).
    """

    dossier_id: str
    seen: frozenset[int] = frozenset()
    received: Reception | None = None
    payments: tuple[Payment, ...] = ()
    has_component_files: bool = False
    has_result_files: bool = False
    supplements: tuple[Supplement, ...] = ()
    completion: Completion | None = None
    withdrawn_at: datetime | None = None

    def __init__(
        self,
        dossier_id: str,
        seen: frozenset[int] = frozenset(),
        received: Reception | None = None,
        payments: tuple[Payment, ...] = (),
        has_component_files: bool = False,
        has_result_files: bool = False,
        supplements: tuple[Supplement, ...] = (),
        completion: Completion | None = None,
        withdrawn_at: datetime | None = None,
    ) -> None:
        self.dossier_id = dossier_id
        self.seen = seen
        self.received = received
        self.payments = payments
        self.has_component_files = has_component_files
        self.has_result_files = has_result_files
        self.supplements = supplements
        self.completion = completion
        self.withdrawn_at = withdrawn_at

    @property
    def supplement_requests(self) -> int:
        """How many times the unit asked for more documents."""
        if not self.supplements:
            return 0
        return sum(1 for s in self.supplements if s.requested)

    def pause(self, until: datetime | None = None) -> timedelta:
        """Total paused time; an open pause runs to completion or ``until``.

        Args:
            until: measure up to this instant (e.g. the end of a report
                period); pauses are never counted past completion. ``None``
                measures to completion, leaving an open pause of an
                uncompleted dossier uncounted.
        """
        if not self.supplements:
            return _ZERO
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
        for sup in self.supplements:  # (none for most dossiers)
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
        if not self.supplements:  # no pause
            return self.received.due_at
        return self.received.due_at + self.pause(until)

    @property
    def is_withdrawn(self) -> bool:
        """Whether the dossier was withdrawn or its processing stopped."""
        return self.withdrawn_at is not None

    @property
    def is_on_time(self) -> bool | None:
        """On time (trước hạn, đúng hạn) if completed; ``None`` if unknown yet."""
        rec, done = self.received, self.completion
        if rec is None or done is None:
            return None
        if not self.supplements:  # no request, no pause
            return done.completed_at <= rec.due_at
        if self.supplement_requests > 1:
            return False
        return done.completed_at <= rec.due_at + self.pause()

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
        # more than one request by ``at`` (not counting later ones: a closed period's
        # figure must not change when the dossier is asked again afterwards)
        sups = self.supplements  # (none for most dossiers)
        if sups and sum(1 for s in sups if s.requested and s.at <= at) > 1:
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


def empty_dossier(dossier_id: str) -> DossierState:
    """``DossierState(dossier_id)``: nothing known yet (built faster)."""
    return DossierState(dossier_id, frozenset(), None, (), False, False, (), None, None)


def _order(event: DossierEvent, local: datetime) -> tuple[datetime, str]:
    """The last-writer-wins order of a fact: ``(occurred_at, event_id)``.

    ``occurred_at`` is kept in :data:`VN_TZ`, like every time of a state: the
    same instant, so orders compare as before, and a state is the same objects
    before and after a store round trip (the parsed time would also keep a
    tzinfo object of its own alive per fact, which the garbage collector
    walks). When it is the instant of the fact's own time (most events), it is
    ``local``, that time in :data:`VN_TZ`: one datetime less to keep and to
    encode.

    Both times are compared in :data:`VN_TZ`, one ``tzinfo`` object: ``==`` of
    the parsed times, whose ``tzinfo`` objects differ, asks each for its UTC
    offset twice (the second time for PEP 495's ``fold``), where
    ``astimezone`` asks once.
    """
    occurred = event.occurred_at.astimezone(VN_TZ)
    return (local if occurred == local else occurred, event.event_id)


def _received(
    s: DossierState, seen: frozenset[int], event: DossierReceived, calendar: WorkCalendar
) -> DossierState:
    received_at = event.received_at.astimezone(VN_TZ)
    due = event.due_at
    if due is None:
        assert event.processing_working_days is not None  # model validator
        # (the local time: the same due time, without a second conversion of the parsed one)
        due = calendar.due_at(received_at, event.processing_working_days)
    rec = Reception(
        _order(event, received_at),
        event.unit_code,
        event.procedure_code,
        event.channel,
        event.online_service_level,
        received_at,
        due.astimezone(VN_TZ),
        event.fee_required,
        event.reused_digital_data,
    )
    return DossierState(
        s.dossier_id, seen, _later(s.received, rec), s.payments, s.has_component_files,
        s.has_result_files, s.supplements, s.completion, s.withdrawn_at,
    )  # fmt: skip


def _paid(
    s: DossierState, seen: frozenset[int], event: DossierPayment, _: WorkCalendar
) -> DossierState:
    paid_at = event.paid_at.astimezone(VN_TZ)
    pay = Payment(
        _order(event, paid_at),
        event.transaction_id,
        event.amount_vnd,
        event.method,
        paid_at,
    )
    if s.payments:
        tx = pay.transaction_id
        others = [p for p in s.payments if p.transaction_id != tx]
        same = [p for p in s.payments if p.transaction_id == tx]
        kept = _later(same[0] if same else None, pay)
        payments = tuple(sorted([*others, kept], key=_transaction_id))
    else:
        payments = (pay,)
    return DossierState(
        s.dossier_id, seen, s.received, payments, s.has_component_files,
        s.has_result_files, s.supplements, s.completion, s.withdrawn_at,
    )  # fmt: skip


def _digitized(
    s: DossierState, seen: frozenset[int], event: DossierDigitized, _: WorkCalendar
) -> DossierState:
    component = event.kind == "component"
    return DossierState(
        s.dossier_id, seen, s.received, s.payments, s.has_component_files or component,
        s.has_result_files or not component, s.supplements, s.completion, s.withdrawn_at,
    )  # fmt: skip


def _supplement(
    s: DossierState,
    seen: frozenset[int],
    event: SupplementRequested | SupplementReceived,
    _: WorkCalendar,
) -> DossierState:
    sup = Supplement(
        event.occurred_at.astimezone(VN_TZ),
        isinstance(event, SupplementRequested),
        event.event_id,
    )
    sups = tuple(sorted((*s.supplements, sup), key=_supplement_order))
    return DossierState(
        s.dossier_id, seen, s.received, s.payments, s.has_component_files,
        s.has_result_files, sups, s.completion, s.withdrawn_at,
    )  # fmt: skip


def _completed(
    s: DossierState, seen: frozenset[int], event: DossierCompleted, _: WorkCalendar
) -> DossierState:
    completed_at = event.completed_at.astimezone(VN_TZ)
    done = Completion(
        _order(event, completed_at),
        completed_at,
        event.outcome,
        event.result_e_signed,
    )
    return DossierState(
        s.dossier_id, seen, s.received, s.payments, s.has_component_files,
        s.has_result_files, s.supplements, _later(s.completion, done), s.withdrawn_at,
    )  # fmt: skip


def _withdrawn(
    s: DossierState, seen: frozenset[int], event: DossierWithdrawn, _: WorkCalendar
) -> DossierState:
    at = event.occurred_at.astimezone(VN_TZ)
    first = at if s.withdrawn_at is None else min(s.withdrawn_at, at)
    return DossierState(
        s.dossier_id, seen, s.received, s.payments, s.has_component_files,
        s.has_result_files, s.supplements, s.completion, first,
    )  # fmt: skip


def _transaction_id(p: Payment) -> str:
    return p.transaction_id


def _supplement_order(s: Supplement) -> tuple[datetime, bool, str]:
    return (s.at, not s.requested, s.event_id)


_FOLDS: Final[dict[type[Any], Callable[..., DossierState]]] = {
    DossierReceived: _received,
    DossierPayment: _paid,
    DossierDigitized: _digitized,
    SupplementRequested: _supplement,
    SupplementReceived: _supplement,
    DossierCompleted: _completed,
    DossierWithdrawn: _withdrawn,
}
"""The fold of each dossier event type: ``(state, seen, event, calendar) -> state``."""


def _fold_of(event_type: type[Any]) -> Callable[..., DossierState]:
    """The fold of an event type, or of the dossier event type it subclasses."""
    for cls, fold in _FOLDS.items():
        if issubclass(event_type, cls):
            return fold
    raise TypeError(f"not a dossier event: {event_type.__name__}")


def apply_dossier(state: DossierState, event: DossierEvent, calendar: WorkCalendar) -> DossierState:
    """Fold one event into a dossier's state.

    Args:
        state: the current state (``DossierState(dossier_id)`` for a new one).
        event: an event of this dossier.
        calendar: the working-day calendar used to resolve due times.

    Returns:
        The new state; the *same object* when the event changes nothing (a
        duplicate), so ``new is state`` tells the caller it was a duplicate.

    Raises:
        TypeError: ``event`` is not a dossier event.
    """
    h = _NEW_DIGEST()  # event_digest(event.event_id), inlined
    h.update(event.event_id.encode())
    digest = _FROM_BYTES(h.digest())  # big-endian (the default)
    seen = state.seen
    if digest in seen:
        return state
    fold = _FOLDS.get(type(event)) or _fold_of(type(event))
    return fold(state, seen | {digest}, event, calendar)


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
