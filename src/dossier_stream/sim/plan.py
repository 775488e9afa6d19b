"""Dossier plans: when each simulated dossier is received, when it is due and how it ends.

The simulator first plans every dossier of a unit from the unit's
:class:`~dossier_stream.sim.quotas.UnitQuota` (this module), then writes the
events of the plans in reception order (:mod:`dossier_stream.sim.simulate`).
A plan fixes the timeline (reception, processing days, due time, completion,
supplement requests, withdrawal); the details drawn while writing (fees,
payments, files, outcome) never move a dossier across the period's cut.

What makes the month believable — a real office works to deadlines:

* Of the dossiers received in the period, those *due first* are the ones
  completed in it (``FROM_PERIOD`` of the receptions at most; the rest of the
  unit's completions were received up to ``BEFORE_DAYS`` days before).
* A dossier still open at the cut is one whose deadline has not come:
  received late in the period, or of a procedure with a long statutory
  time (``LONG_WORKING_DAYS``: land, investment, nationality procedures), or
  waiting for the citizen's documents (its clock stopped, ``WAITING``), or
  withdrawn. Choosing the open dossiers at random with the short times of
  the completed ones, as the simulator used to, left every open dossier
  received early in the period past due: 34.292 open past due in the demo
  month, at all 250 units.
* Only units that complete dossiers late also hold open past-due dossiers:
  ``OPEN_LATE_PER_OVERDUE`` of their overdue completions.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Final

from dossier_stream.core.periods import Period
from dossier_stream.core.registry import Unit
from dossier_stream.core.workdays import VN_TZ, WorkCalendar
from dossier_stream.sim.quotas import UnitQuota

__all__ = [
    "BEFORE_DAYS",
    "DAY",
    "FROM_PERIOD",
    "LONG_WORKING_DAYS",
    "OFFICE",
    "OPEN_LATE_PER_OVERDUE",
    "WAITING",
    "DossierPlan",
    "Planner",
    "local_day",
    "seconds",
]

DAY: Final = 86_400
BEFORE_DAYS: Final = 40
OFFICE: Final = (27_000, 61_200)  # 07:30 .. 17:00, seconds after midnight
WORKING_DAYS: Final = (1, 2, 3, 5, 7, 10, 15)
WORKING_DAYS_W: Final = (10, 10, 25, 20, 15, 12, 8)
LONG_WORKING_DAYS: Final = (20, 30, 45, 60)
"""Statutory times of the long procedures, for dossiers open and not yet due at the cut."""
FROM_PERIOD: Final = 0.55
"""At most this share of a unit's receptions in the period is completed in it."""
WAITING: Final = 0.05
"""Share of the open dossiers waiting for the citizen's documents at the cut."""
WITHDRAWN: Final = 0.01
"""Share of the open dossiers withdrawn in the period."""
OPEN_LATE_PER_OVERDUE: Final = 0.3
"""Open past-due dossiers of a unit at the cut, per overdue completion of the period."""
_HOUR: Final = timedelta(hours=1)


def seconds(n: int) -> timedelta:
    """``n`` seconds."""
    return timedelta(seconds=n)


def local_day(at: datetime) -> date:
    """The Vietnamese calendar day of an instant."""
    return at.astimezone(VN_TZ).date()


@dataclass(slots=True)
class DossierPlan:
    """What one dossier must become.

    Attributes:
        unit: unit code.
        oos: of a procedure offered online.
        online: received online.
        channel: ``online``, ``direct`` or ``postal``.
        received_at: reception time.
        working_days: processing working days (``processing_working_days``).
        explicit_due: the reception states ``due_at`` (17:00 of the due day).
        due: the due time.
        before: received before the period.
        files: ``(component, result)`` files if completed in the period.
        overdue: completed after its effective due time.
        completed_at: completion time (in the period), if completed.
        requests: supplement request/receipt pairs before completion.
        pay_online: one of the unit's online payment transactions.
        asked_at: a supplement request still unanswered at the cut.
        withdrawn_at: withdrawal of an open dossier, in the period.
        withdraw_after: withdrawn after its completion, in the period.
    """

    unit: str
    oos: bool
    online: bool
    channel: str
    received_at: datetime
    working_days: int
    explicit_due: bool
    due: datetime
    before: bool = False
    files: tuple[bool, bool] | None = None
    overdue: bool = False
    completed_at: datetime | None = None
    requests: int = 0
    pay_online: bool = False
    asked_at: datetime | None = None
    withdrawn_at: datetime | None = None
    withdraw_after: bool = False


def _kinds(counts: list[tuple[tuple[bool, bool], int]]) -> list[tuple[bool, bool]]:
    return [kind for kind, n in counts for _ in range(n)]


class Planner:
    """Plans the dossiers of one period with one random generator.

    Args:
        period: the report period.
        calendar: working days, to turn processing days into due times.
        rng: the simulation's only random generator.
    """

    def __init__(self, period: Period, calendar: WorkCalendar, rng: random.Random) -> None:
        self.period, self.calendar, self.rng = period, calendar, rng
        self.start, self.cut = period.starts_at, period.ends_at

    def unit_plans(self, unit: Unit, q: UnitQuota) -> list[DossierPlan]:
        """Every dossier of ``unit`` so that the period's counts equal ``q``."""
        rng = self.rng
        kinds = _kinds(
            [
                ((True, True), q.received_oos_online),
                ((True, False), q.received_oos - q.received_oos_online),
                ((False, True), q.received_online - q.received_oos_online),
                ((False, False), q.received - q.received_oos - q.received_online
                 + q.received_oos_online),
            ]
        )  # fmt: skip
        files = _kinds(
            [
                ((True, True), q.completed_both),
                ((True, False), q.completed_component - q.completed_both),
                ((False, True), q.completed_result - q.completed_both),
                ((False, False), q.completed - q.completed_component - q.completed_result
                 + q.completed_both),
            ]
        )  # fmt: skip
        late = [True] * q.completed_overdue + [False] * (q.completed - q.completed_overdue)
        rng.shuffle(kinds)
        rng.shuffle(files)
        rng.shuffle(late)
        paying = set(rng.sample(range(q.received), q.payment_tx_online))
        plans = [
            self._received(unit, oos, online, pay_online=i in paying)
            for i, (oos, online) in enumerate(kinds)
        ]
        from_period = min(q.completed, round(q.received * FROM_PERIOD))
        by_due = sorted(range(len(plans)), key=lambda i: (plans[i].due, i))
        for j, i in enumerate(by_due[:from_period]):
            self._complete(plans[i], files[j], late[j])
        self._open([plans[i] for i in by_due[from_period:]], q)
        for j in range(from_period, q.completed):
            plan = self._received(unit, rng.random() < 0.75, rng.random() < 0.6, before=True)
            self._complete(plan, files[j], late[j])
            plans.append(plan)
        for _ in range(sum(rng.random() < 0.005 for _ in range(q.completed))):
            plan = self._received(unit, rng.random() < 0.75, rng.random() < 0.6, before=True)
            self._complete(plan, (rng.random() < 0.9, rng.random() < 0.8), False)
            plan.withdraw_after = True
            plans.append(plan)
        return plans

    def _received(
        self, unit: Unit, oos: bool, online: bool, *, pay_online: bool = False, before: bool = False
    ) -> DossierPlan:
        rng = self.rng
        channel = "online" if online else ("postal" if rng.random() < 0.04 else "direct")
        window = (0, DAY) if channel == "online" else OFFICE
        at = self.at(self.day(unit, before=before), *window)
        n_days = rng.choices(WORKING_DAYS, weights=WORKING_DAYS_W)[0]
        explicit = rng.random() < 0.3
        due = self.due(at, n_days, explicit)
        plan = DossierPlan(unit.code, oos, online, channel, at, n_days, explicit, due, before)
        plan.pay_online = pay_online
        return plan

    def at(self, day: date, lo: int, hi: int) -> datetime:
        """A random instant of ``day`` between ``lo`` and ``hi`` seconds after midnight."""
        return datetime.combine(day, time(0), tzinfo=VN_TZ) + seconds(self.rng.randrange(lo, hi))

    def day(self, unit: Unit, *, before: bool = False) -> date:
        """A day the unit exists: in the period, or (``before``) up to 40 days before it.

        Falls back to the period when the unit did not exist before it.
        """
        lo, hi = self.period.start, self.period.end
        if before:
            lo, hi = lo - timedelta(days=BEFORE_DAYS), lo - timedelta(days=1)
        lo, hi = max(lo, unit.valid_from or lo), min(hi, unit.valid_to or hi)
        if lo > hi:
            return self.day(unit)
        return lo + timedelta(days=self.rng.randrange((hi - lo).days + 1))

    def due(self, received_at: datetime, n_days: int, explicit: bool) -> datetime:
        """The due time: ``n_days`` working days on, at 17:00 when the reception states it."""
        due = self.calendar.due_at(received_at, n_days)
        if explicit:
            due = datetime.combine(due.date(), time(17), tzinfo=VN_TZ)
        return due

    def between(self, lo: datetime, hi: datetime) -> datetime:
        """A random instant in ``(lo, hi]`` (``hi`` when the span is a second or less)."""
        span = int((hi - lo).total_seconds())
        return lo + seconds(self.rng.randrange(span) + 1) if span > 1 else hi

    def _retime(self, plan: DossierPlan, received_at: datetime, n_days: int) -> None:
        plan.received_at, plan.working_days = received_at, n_days
        plan.due = self.due(received_at, n_days, plan.explicit_due)

    def _complete(self, plan: DossierPlan, files: tuple[bool, bool], overdue: bool) -> None:
        """Completion in the period: on time before the (effective) due time, or late.

        On time: before the due time and inside the period (a dossier received
        before the period gets the processing days that bring its due time
        into it). Overdue: an hour to ten days after the due time, or after
        two supplement requests when the period leaves no room to be late.
        """
        rng, start, end = self.rng, self.start, self.cut
        plan.files, plan.overdue = files, overdue
        rec_at = min(plan.received_at, end - seconds(3 * 3600))
        n_days = plan.working_days
        self._retime(plan, rec_at, n_days)
        if overdue:
            if rng.random() >= 0.25:
                for _ in range(60):
                    lo = max(plan.due + _HOUR, start)
                    if lo < end:
                        late = min(end, plan.due + seconds(10 * DAY))
                        plan.completed_at = self.between(lo, max(lo, late))
                        return
                    if plan.working_days > 1:
                        self._retime(plan, plan.received_at, 1)
                    elif plan.received_at - timedelta(days=1) >= (
                        start if not plan.before else plan.received_at
                    ):
                        self._retime(plan, plan.received_at - timedelta(days=1), 1)
                    else:
                        break
            plan.completed_at = self.between(max(plan.received_at + _HOUR, start), end)
            plan.requests = 2
            return
        while True:
            lo, hi = max(plan.received_at + seconds(60), start), min(plan.due, end - seconds(7200))
            if lo < hi:
                break
            self._retime(plan, plan.received_at, plan.working_days + 1)
        if rng.random() < 0.02 and plan.due <= end - seconds(7200):
            plan.completed_at = plan.due
            return
        plan.completed_at = self.between(lo, hi)
        plan.requests = int(rng.random() < 0.08)

    def _open(self, plans: list[DossierPlan], q: UnitQuota) -> None:
        """The dossiers received in the period and open at the cut.

        A few are withdrawn or waiting for documents; ``OPEN_LATE_PER_OVERDUE``
        of the unit's overdue count stay open past due (those due earliest);
        every other one is due after the cut: when its drawn processing time
        would make it due before, it is a procedure with a long statutory time.
        """
        rng, cut = self.rng, self.cut
        kept: list[DossierPlan] = []
        for plan in plans:
            r, lo = rng.random(), plan.received_at + _HOUR
            if r < WITHDRAWN and lo < cut:
                plan.withdrawn_at = self.between(lo, min(lo + seconds(5 * DAY), cut))
            elif r < WITHDRAWN + WAITING and lo < cut:
                plan.asked_at = self.between(lo, max(lo, min(lo + seconds(3 * DAY), cut)))
            else:
                kept.append(plan)
        late = round(q.completed_overdue * OPEN_LATE_PER_OVERDUE)
        for plan in kept:  # due-time order: the earliest due are the ones left late
            if late > 0 and plan.received_at < cut - seconds(DAY):
                if plan.due >= cut - _HOUR:
                    self._retime(plan, plan.received_at, 1)
                if plan.due < cut - _HOUR:
                    late -= 1
                    continue
            for n_days in LONG_WORKING_DAYS:
                if plan.due > cut:
                    break
                self._retime(plan, plan.received_at, n_days)
