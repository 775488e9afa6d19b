"""The lifecycle fold and its counters: order, duplicates, pauses, withdrawal."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from dossier_stream.core.counters import (
    CounterKey,
    accumulate,
    dossier_counters,
    open_past_due,
    state_delta,
)
from dossier_stream.core.events import DossierEvent, parse_event
from dossier_stream.core.lifecycle import DossierState, apply_dossier
from dossier_stream.core.workdays import VN_TZ, WorkCalendar
from dossier_stream.sim import testing as t

U = "HP-SO-TUPHAP"
D = "000.00.31.H26-241003-0001"


def fold(
    events: list[dict[str, Any]], calendar: WorkCalendar
) -> tuple[DossierState, dict[CounterKey, int]]:
    state = DossierState(D)
    counters: dict[CounterKey, int] = {}
    for ev in events:
        parsed = parse_event(t.encode(ev))
        assert isinstance(parsed, DossierEvent)
        new = apply_dossier(state, parsed, calendar)
        accumulate(counters, state_delta(state, new, calendar))
        state = new
    return state, counters


def c(counters: dict[CounterKey, int], name: str) -> int:
    return sum(v for (_, _, n), v in counters.items() if n == name)


# ---------------------------------------------------------------- properties
def ts(day: int, hour: int, minute: int = 0) -> str:
    return datetime(2024, 10, day, hour, minute, tzinfo=VN_TZ).isoformat()


@st.composite
def dossier_life(draw: st.DrawFn) -> list[dict[str, Any]]:
    """A random set of events of one dossier, with awkward cases mixed in."""
    evs: list[dict[str, Any]] = []
    rday = draw(st.integers(1, 20))
    if draw(st.booleans()) or True:
        due = draw(st.one_of(st.none(), st.integers(rday, 28)))
        evs.append(
            t.received(
                D,
                U,
                at=ts(rday, draw(st.integers(0, 23))),
                channel=draw(st.sampled_from(["online", "direct", "postal"])),
                level=draw(st.sampled_from(["full", "partial", "none"])),
                fee=draw(st.booleans()),
                reused=draw(st.booleans()),
                working_days=draw(st.integers(0, 12)),
                due_at=None if due is None else ts(due, 17),
            )
        )
    if draw(st.booleans()):  # a corrected re-send of the reception
        evs.append(t.received(D, U, at=ts(rday, 23, 59), channel="direct", fee=True))
    txs = draw(st.lists(st.sampled_from(["tx-a", "tx-b", "tx-c"]), max_size=4))
    for tx in txs:
        evs.append(
            t.payment(
                D,
                U,
                transaction_id=tx,
                at=ts(rday + 1, draw(st.integers(0, 23))),
                method=draw(st.sampled_from(["online", "cashless", "cash"])),
                amount=draw(st.integers(0, 10**6)),
            )
        )
    for kind in draw(st.lists(st.sampled_from(["component", "result"]), max_size=3)):
        evs.append(t.digitized(D, U, kind=kind))
    for i, day in enumerate(draw(st.lists(st.integers(rday, 27), max_size=4))):
        maker = t.supplement_requested if i % 2 == 0 else t.supplement_received
        evs.append(maker(D, U, at=ts(day, draw(st.integers(0, 23)))))
    for _ in range(draw(st.integers(0, 2))):
        evs.append(
            t.completed(
                D,
                U,
                at=ts(draw(st.integers(rday, 28)), draw(st.integers(0, 23))),
                e_signed=draw(st.booleans()),
            )
        )
    if draw(st.integers(0, 4)) == 0:
        evs.append(t.withdrawn(D, U, at=ts(28, 9)))
    return evs


@given(life=dossier_life(), data=st.data())
def test_any_permutation_and_duplication_gives_same_state_and_counters(
    life: list[dict[str, Any]], data: st.DataObject, calendar: WorkCalendar
) -> None:
    reference_state, reference_counters = fold(life, calendar)
    dupes = data.draw(st.lists(st.sampled_from(life), max_size=5)) if life else []
    shuffled = data.draw(st.permutations(life + dupes))
    state, counters = fold(shuffled, calendar)
    assert state == reference_state
    assert counters == reference_counters
    assert counters == {k: v for k, v in dossier_counters(state, calendar).items() if v}


@given(life=dossier_life())
def test_counters_are_consistent(life: list[dict[str, Any]], calendar: WorkCalendar) -> None:
    state, counters = fold(life, calendar)
    assert all(v > 0 for v in counters.values())
    assert c(counters, "completed_on_time") + c(counters, "completed_overdue") == c(
        counters, "completed"
    )
    assert c(counters, "completed_both") <= min(
        c(counters, "completed_component"), c(counters, "completed_result")
    )
    assert c(counters, "received_oos_online") <= c(counters, "received_online")
    assert c(counters, "received_fee_paid_online") <= c(counters, "received_fee_paid_noncash")
    assert c(counters, "received_fee_paid_noncash") <= c(counters, "received_fee_paid")
    assert c(counters, "received_fee_paid") <= c(counters, "received_fee")
    assert c(counters, "received") == 1
    assert c(counters, "completed") == (state.completion is not None and not state.is_withdrawn)


# ---------------------------------------------------------------- semantics
def test_completion_seen_before_reception_counts_once_reception_arrives(
    calendar: WorkCalendar,
) -> None:
    done = t.completed(D, U, at="2024-10-07T15:00:00+07:00")
    state, counters = fold([done], calendar)
    assert counters == {} and state.received is None
    state, counters = fold(
        [done, t.received(D, U, at="2024-10-03T08:15:00+07:00", working_days=5)], calendar
    )
    assert c(counters, "completed") == 1 and c(counters, "completed_on_time") == 1
    assert (U, date(2024, 10, 7), "completed") in counters


def test_pause_extends_the_due_time(calendar: WorkCalendar) -> None:
    rec = t.received(D, U, at="2024-10-01T08:00:00+07:00", due_at="2024-10-03T17:00:00+07:00")
    done = t.completed(D, U, at="2024-10-05T16:00:00+07:00")
    _, late = fold([rec, done], calendar)
    assert c(late, "completed_overdue") == 1
    paused = [
        t.supplement_requested(D, U, at="2024-10-02T08:00:00+07:00"),
        t.supplement_received(D, U, at="2024-10-04T09:00:00+07:00"),
    ]
    state, counters = fold([rec, done, *paused], calendar)
    assert c(counters, "completed_on_time") == 1
    assert c(counters, "completed_first_time_valid") == 0
    assert state.effective_due() == datetime(2024, 10, 5, 18, tzinfo=VN_TZ)


def test_more_than_one_supplement_request_is_overdue(calendar: WorkCalendar) -> None:
    rec = t.received(D, U, at="2024-10-01T08:00:00+07:00", due_at="2024-10-30T17:00:00+07:00")
    reqs = [
        t.supplement_requested(D, U, at="2024-10-02T08:00:00+07:00"),
        t.supplement_received(D, U, at="2024-10-03T08:00:00+07:00"),
        t.supplement_requested(D, U, at="2024-10-04T08:00:00+07:00"),
        t.supplement_received(D, U, at="2024-10-05T08:00:00+07:00"),
    ]
    _, counters = fold([rec, *reqs, t.completed(D, U, at="2024-10-06T08:00:00+07:00")], calendar)
    assert c(counters, "completed_overdue") == 1


def test_withdrawal_leaves_completed_cohorts_only(calendar: WorkCalendar) -> None:
    rec = t.received(D, U, fee=True)
    evs = [rec, t.payment(D, U), t.completed(D, U), t.withdrawn(D, U)]
    _, counters = fold(evs, calendar)
    assert c(counters, "received") == 1 and c(counters, "received_fee_paid_online") == 1
    assert c(counters, "completed") == 0


def test_duplicate_transaction_under_new_event_id_is_one_transaction(
    calendar: WorkCalendar,
) -> None:
    evs = [
        t.received(D, U, fee=True),
        t.payment(D, U, transaction_id="T1", amount=100, event_id="e1"),
        t.payment(D, U, transaction_id="T1", amount=100, event_id="e2"),
    ]
    state, counters = fold(evs, calendar)
    assert len(state.payments) == 1
    assert c(counters, "payment_tx_online") == 1 and c(counters, "payment_amount_online") == 100


def test_repeated_event_id_returns_the_same_state_object(calendar: WorkCalendar) -> None:
    ev = parse_event(t.encode(t.received(D, U, event_id="same")))
    assert isinstance(ev, DossierEvent)
    once = apply_dossier(DossierState(D), ev, calendar)
    assert apply_dossier(once, ev, calendar) is once


def test_cohort_days_are_local_days(calendar: WorkCalendar) -> None:
    # 23:30 UTC on 14/10 is 06:30 on 15/10 in Hà Nội time: the next monthly period.
    rec = t.received(D, U, at="2024-10-14T23:30:00Z")
    _, counters = fold([rec], calendar)
    assert (U, date(2024, 10, 15), "received") in counters


def test_open_past_due_at_an_instant(calendar: WorkCalendar) -> None:
    rec = t.received(D, U, at="2024-10-01T08:00:00+07:00", due_at="2024-10-03T17:00:00+07:00")
    state, _ = fold([rec], calendar)
    before = datetime(2024, 10, 3, 16, tzinfo=VN_TZ)
    after = datetime(2024, 10, 4, 8, tzinfo=VN_TZ)
    assert open_past_due([state], before) == {}
    assert open_past_due([state], after) == {U: 1}
    paused, _ = fold([rec, t.supplement_requested(D, U, at="2024-10-02T08:00:00+07:00")], calendar)
    assert open_past_due([paused], after) == {}
    done, _ = fold([rec, t.completed(D, U, at="2024-10-03T20:00:00+07:00")], calendar)
    assert open_past_due([done], after) == {}


def test_due_from_working_days_skips_the_weekend(calendar: WorkCalendar) -> None:
    # Friday 04/10/2024 10:00 + 1 working day = Monday 07/10/2024 10:00.
    state, _ = fold([t.received(D, U, at="2024-10-04T10:00:00+07:00", working_days=1)], calendar)
    assert state.received is not None
    assert state.received.due_at == datetime(2024, 10, 7, 10, tzinfo=VN_TZ)


def test_open_past_due_counts_only_the_requests_made_by_the_instant(
    calendar: WorkCalendar,
) -> None:
    # due long after both instants: only "more than one request" can make it past due
    rec = t.received(D, U, at="2024-10-01T08:00:00+07:00", due_at="2024-10-30T17:00:00+07:00")
    reqs = [
        t.supplement_requested(D, U, at="2024-10-02T08:00:00+07:00"),
        t.supplement_received(D, U, at="2024-10-03T08:00:00+07:00"),
        t.supplement_requested(D, U, at="2024-10-16T08:00:00+07:00"),
        t.supplement_received(D, U, at="2024-10-17T08:00:00+07:00"),
    ]
    state, _ = fold([rec, *reqs], calendar)
    # the end of October's report: one request by then, the second came later
    assert open_past_due([state], datetime(2024, 10, 14, 23, 59, tzinfo=VN_TZ)) == {}
    assert open_past_due([state], datetime(2024, 10, 18, 8, tzinfo=VN_TZ)) == {U: 1}
