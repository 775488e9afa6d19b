"""Synthetic dossier streams with an independently computed ground truth.

:func:`simulate` writes the contract events of a report period for every unit,
in a realistic publish order with exact duplicates and invalid lines mixed in,
and returns the per-(unit, local day, counter) totals a correct processor must
reach. That truth is derived from the facts chosen for each dossier (channel,
fee, payments, files, supplement requests, completion against due time plus
pause, withdrawal) with the definitions of ``shared/spec/indicators.md``, not
with :mod:`~dossier_stream.core.lifecycle` or :mod:`~dossier_stream.core.counters`.
``completed_ahead_working_days`` is left out of it (it would repeat the
engine's working-day arithmetic); compare the other counters.

Assumptions (documented here because the published reports do not say):

* Volumes: a unit's counts come from a :class:`~dossier_stream.sim.quotas.UnitQuota`:
  the calibration of the period when one is bundled (tháng 10/2024: every
  count and rate of seed 000, see ``tools/calibrate_haiphong_2024_10.py``),
  else :func:`~dossier_stream.sim.quotas.random_quotas` for ``dossiers``. The
  simulated stream produces exactly the quota's counts in the period.
* Receptions in the period: uniform over its days; online at any hour,
  others (counter 96 %, post 4 %) 07:30-17:00. Service level of online
  services full/partial 55/45 %, else ``none``. 1..15 working days (30 % state
  ``due_at``: 17:00 of the due day, some in UTC); 10 % have ``occurred_at``
  minutes after ``received_at``. Reused digital data: 20 %.
* Completions in the period: from dossiers received in it (up to 55 % of
  them), the rest from dossiers received up to 40 days before it. Overdue ones
  end 1 h to 10 days after the effective due time (a quarter after two
  supplement requests); on-time ones end before it, 8 % after one supplement
  pause, 2 % exactly at it. 60 % e-signed, 10 % rejected. Components are
  digitized within 2 h of reception, results within the hour before completion.
* Dossiers received in the period and not completed in it stay open (their
  completion falls after the cut and is not published), 1 % withdrawn in the
  period; 0.5 % more, received before, are completed and then withdrawn in it.
* Payments: units with online transactions get them on that many fee
  dossiers, one each, paid between reception and the period's end (half of
  them stamped in UTC, 3 % re-sent by the gateway with a new event id);
  other fee dossiers pay cash or cashless (or not at all, 15 %). Fee
  dossiers: at least the online-paid ones, about a third of the receptions.
* Feedback: due in 5/10/15 working days; 90 % resolved (3 % exactly at due,
  82 % before). Reports: ~80 % of units send one for exactly the period, with
  what the system holds plus 0..10 %; the others none.
* Events after the period are not published, except the reports, filed the
  next morning. Publish order: event time plus a per-topic lag (receptions
  often hours to days late), so payments and completions often precede their
  reception.
* Duplicates re-send valid lines byte for byte; invalid lines are unique
  variants of :data:`~dossier_stream.sim.testing.INVALID_SAMPLES`, plus one
  well-formed event of an unknown unit per five (at least one).
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import orjson

from dossier_stream.core.periods import Period
from dossier_stream.core.registry import Unit, UnitRegistry
from dossier_stream.core.workdays import VN_TZ, WorkCalendar
from dossier_stream.sim import testing
from dossier_stream.sim.quotas import UnitQuota, load_calibration, random_quotas

__all__ = ["SimConfig", "Simulation", "simulate"]

_DAY = 86_400
_BEFORE_DAYS = 40
_HOUR = timedelta(hours=1)
_WORKING_DAYS = (1, 2, 3, 5, 7, 10, 15)
_WORKING_DAYS_W = (10, 10, 25, 20, 15, 12, 8)
_FEES = (10_000, 20_000, 30_000, 50_000, 100_000, 200_000, 500_000, 1_000_000)
_PROCEDURES = ("1.000046", "1.001612", "1.004227", "1.010739", "2.000889", "2.001157")
_OFFICE = (27_000, 61_200)  # 07:30 .. 17:00, seconds after midnight
_LAG = {"dossier.received": 600, "dossier.payment": 300, "dossier.digitized": 7200}  # seconds


@dataclass(frozen=True)
class SimConfig:
    """What to simulate.

    Attributes:
        period: the report period.
        seed: seed of the only random generator; the same config gives the same bytes.
        dossiers: dossiers received in the period, spread at random over the
            units (used when ``calibration`` is ``None``).
        calibration: name of a bundled calibration (``haiphong-2024-10``):
            every unit gets exactly its published counts; ``dossiers`` is ignored.
        duplicate_rate: exact duplicate lines, as a share of the valid lines.
        invalid_rate: invalid lines, as a share of the valid lines.
        feedback: number of citizen feedback items.
    """

    period: Period
    seed: int = 0
    dossiers: int = 20_000
    calibration: str | None = None
    duplicate_rate: float = 0.01
    invalid_rate: float = 0.002
    feedback: int = 200


@dataclass
class Simulation:
    """A simulated stream and what a correct processor must count from it.

    Attributes:
        lines: JSON lines without newline, in publish order.
        truth: expected ``(unit_code, local day, counter)`` totals (non-zero
            only), without ``completed_ahead_working_days``.
        invalid: number of invalid lines (contract defects and unknown units).
        duplicates: number of lines that repeat an earlier valid line byte for byte.
    """

    lines: list[bytes]
    truth: dict[tuple[str, date, str], int]
    invalid: int
    duplicates: int

    def write(self, path: Path) -> None:
        """Write the lines as JSONL, each terminated by ``\\n``."""
        with path.open("wb") as fh:
            for line in self.lines:
                fh.write(line + b"\n")


@dataclass
class _Facts:
    """What one dossier ended up with in the published stream."""

    unit: str
    received_at: datetime
    channel: str
    level: str
    fee: bool
    reused: bool
    due: datetime
    payments: list[tuple[datetime, str, int]] = field(default_factory=list)
    component: bool = False
    result: bool = False
    requests: int = 0
    pause: timedelta = timedelta(0)
    completed_at: datetime | None = None
    e_signed: bool = False
    withdrawn: bool = False


@dataclass(frozen=True, slots=True)
class _Plan:
    """What one dossier must become: its kind, and how it ends in the period."""

    oos: bool
    online: bool
    before: bool = False  # received before the period
    files: tuple[bool, bool] | None = None  # (component, result) if completed in the period
    overdue: bool = False
    pay_online: bool = False
    withdraw: bool = False


def simulate(config: SimConfig, registry: UnitRegistry, calendar: WorkCalendar) -> Simulation:
    """Generate the stream of one period and its ground truth.

    Args:
        config: period, seed, sizes and rates, or a calibration.
        registry: the units (those existing in the period receive dossiers).
        calendar: working days, used to turn processing days into due times.

    Returns:
        The lines in publish order, the expected counters and the numbers of
        invalid and duplicate lines.

    Raises:
        KeyError: the calibration is unknown, or names a unit that does not
            exist in the period.
    """
    return _Generator(config, registry, calendar).run()


def _ts(at: datetime, *, utc: bool = False) -> str:
    return at.astimezone(UTC if utc else VN_TZ).isoformat(timespec="seconds")


def _day(at: datetime) -> date:
    return at.astimezone(VN_TZ).date()


def _secs(n: int) -> timedelta:
    return timedelta(seconds=n)


def _kinds(counts: list[tuple[tuple[bool, bool], int]]) -> list[tuple[bool, bool]]:
    return [kind for kind, n in counts for _ in range(n)]


class _Generator:
    def __init__(self, config: SimConfig, registry: UnitRegistry, calendar: WorkCalendar) -> None:
        self.config, self.registry, self.calendar = config, registry, calendar
        self.rng = random.Random(config.seed)
        self.as_of = config.period.ends_at
        self.origin = config.period.starts_at
        self.events: list[tuple[int, int, bytes]] = []  # (publish second, sequence, line)
        self.truth: dict[tuple[str, date, str], int] = {}
        self.held: dict[str, int] = {}  # receptions in the period, per unit
        self.ids = itertools.count(1)

    def run(self) -> Simulation:
        cfg, rng = self.config, self.rng
        units = self.registry.units_in(cfg.period.start, cfg.period.end)
        if cfg.calibration is None:
            quotas = random_quotas(units, cfg.dossiers, rng)
        else:
            quotas = load_calibration(cfg.calibration)
            missing = sorted(quotas.keys() - {u.code for u in units})
            if missing:
                raise KeyError(f"calibration units not in the period: {', '.join(missing[:5])}")
        for unit in units:
            if unit.code in quotas:
                self._unit(unit, quotas[unit.code])
        weights = [1 + (quotas[u.code].received if u.code in quotas else 0) for u in units]
        for unit in rng.choices(units, weights=weights, k=cfg.feedback):
            self._feedback(unit)
        self._reports(units)
        valid = list(self.events)
        duplicates = round(len(valid) * cfg.duplicate_rate)
        for _ in range(duplicates):
            key, _seq, line = rng.choice(valid)
            self.events.append((key + rng.randrange(1, _DAY), next(self.ids), line))
        invalid = self._invalid(round(len(valid) * cfg.invalid_rate), units)
        self.events.sort()
        lines = [line for _key, _seq, line in self.events]
        return Simulation(lines, dict(sorted(self.truth.items())), invalid, duplicates)

    def _unit(self, unit: Unit, q: UnitQuota) -> None:
        """Plan every dossier of ``unit`` so that the period's counts equal ``q``."""
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
        from_period = min(q.completed, round(q.received * 0.55))
        paying = set(rng.sample(range(q.received), q.payment_tx_online))
        for i, (oos, online) in enumerate(kinds):
            done = i < from_period
            self._dossier(
                unit,
                _Plan(
                    oos,
                    online,
                    files=files[i] if done else None,
                    overdue=done and late[i],
                    pay_online=i in paying,
                    withdraw=not done and rng.random() < 0.01,
                ),
            )
        for j in range(from_period, q.completed):
            kind = (rng.random() < 0.75, rng.random() < 0.6)
            self._dossier(unit, _Plan(*kind, before=True, files=files[j], overdue=late[j]))
        for _ in range(sum(rng.random() < 0.005 for _ in range(q.completed))):
            kind = (rng.random() < 0.75, rng.random() < 0.6)
            files_kind = (rng.random() < 0.9, rng.random() < 0.8)
            self._dossier(unit, _Plan(*kind, before=True, files=files_kind, withdraw=True))

    def _emit(self, event: dict[str, Any], at: datetime) -> bool:
        """Publish ``event`` (at ``at``, a new id) unless after the cut; return whether it was."""
        if at > self.as_of and not event["event_type"].startswith("unit."):
            return False
        rng, kind = self.rng, event["event_type"]
        event["event_id"] = f"sim{self.config.seed}-{next(self.ids):08d}"
        lag = rng.randrange(_LAG.get(kind, 1800))
        if kind == "dossier.received" and rng.random() < 0.35:  # a late batch from the counter
            lag += rng.randrange(_DAY * (3 if rng.random() < 0.86 else 10))
        elif kind == "dossier.digitized" and rng.random() < 0.1:
            lag += rng.randrange(2 * _DAY)
        key = int((at - self.origin).total_seconds()) + lag
        self.events.append((key, next(self.ids), testing.encode(event)))
        return True

    def _at(self, day: date, lo: int, hi: int) -> datetime:
        return datetime.combine(day, time(0), tzinfo=VN_TZ) + _secs(self.rng.randrange(lo, hi))

    def _add(self, unit: str, at: datetime, name: str, value: int = 1) -> None:
        if value:
            key = (unit, _day(at), name)
            self.truth[key] = self.truth.get(key, 0) + value

    def _day(self, unit: Unit, *, before: bool = False) -> date:
        """A day the unit exists: in the period, or (``before``) up to 40 days before it.

        Falls back to the period when the unit did not exist before it.
        """
        period = self.config.period
        lo, hi = period.start, period.end
        if before:
            lo, hi = lo - timedelta(days=_BEFORE_DAYS), lo - timedelta(days=1)
        lo, hi = max(lo, unit.valid_from or lo), min(hi, unit.valid_to or hi)
        if lo > hi:
            return self._day(unit)
        return lo + timedelta(days=self.rng.randrange((hi - lo).days + 1))

    def _reception(self, unit: Unit, plan: _Plan, channel: str) -> datetime:
        """When the dossier is received: in the period, or up to 40 days before it."""
        day = self._day(unit, before=plan.before)
        window = (0, _DAY) if channel == "online" else _OFFICE
        at = self._at(day, *window)
        if plan.files is not None:  # leave room to complete (and withdraw) in the period
            at = min(at, self.as_of - _secs(3 * 3600))
        return at

    def _due(self, rec_at: datetime, n_days: int, explicit: bool) -> datetime:
        due = self.calendar.due_at(rec_at, n_days)
        if explicit:
            due = datetime.combine(due.date(), time(17), tzinfo=VN_TZ)
        return due

    def _dossier(self, unit: Unit, plan: _Plan) -> None:
        rng, code = self.rng, unit.code
        level = ("full" if rng.random() < 0.55 else "partial") if plan.oos else "none"
        channel = "online" if plan.online else ("postal" if rng.random() < 0.04 else "direct")
        rec_at = self._reception(unit, plan, channel)
        n_days = rng.choices(_WORKING_DAYS, weights=_WORKING_DAYS_W)[0]
        explicit = rng.random() < 0.3
        done_at, requests = None, 0
        if plan.files is not None:
            rec_at, n_days, done_at, requests = self._timeline(plan, rec_at, n_days, explicit)
        due = self._due(rec_at, n_days, explicit)
        fee = plan.pay_online or rng.random() < 0.3
        did = f"{code}-{_day(rec_at):%y%m%d}-{next(self.ids):06d}"
        f = _Facts(code, rec_at, channel, level, fee, rng.random() < 0.2, due)
        ev = testing.received(
            did,
            code,
            at=_ts(rec_at),
            channel=channel,
            level=level,
            fee=fee,
            due_at=_ts(due, utc=rng.random() < 0.2) if explicit else None,
            working_days=n_days,
            reused=f.reused,
            procedure=rng.choice(_PROCEDURES),
        )
        if rng.random() < 0.1:
            ev["occurred_at"] = _ts(rec_at + _secs(rng.randrange(60, 1800)))
        self._emit(ev, rec_at)
        end = done_at or self.as_of
        if fee:
            self._payments(f, did, plan.pay_online, end)
        component = plan.files[0] if plan.files is not None else rng.random() < 0.85
        if component:
            room = max(1, min(7200, int((end - rec_at).total_seconds())))
            at = rec_at + _secs(rng.randrange(room))
            ev = testing.digitized(did, code, files=rng.randint(1, 6), at=_ts(at))
            f.component = self._emit(ev, at)
        if done_at is None:
            if rng.random() < 0.05:  # waiting for documents at the end of the period
                asked = rec_at + _secs(rng.randrange(3600, 3 * _DAY))
                ev = testing.supplement_requested(did, code, at=_ts(asked))
                f.requests = int(self._emit(ev, asked))
            if plan.withdraw:
                at = rec_at + _secs(rng.randrange(3600, 5 * _DAY))
                f.withdrawn = self._emit(testing.withdrawn(did, code, at=_ts(at)), at)
        else:
            self._pauses(f, did, requests, done_at)
            self._complete(f, did, done_at, result=plan.files is not None and plan.files[1])
            if plan.withdraw:
                at = done_at + _secs(rng.randrange(60, int((self.as_of - done_at).total_seconds())))
                f.withdrawn = self._emit(testing.withdrawn(did, code, at=_ts(at)), at)
        self._count(f)

    def _timeline(
        self, plan: _Plan, rec_at: datetime, n_days: int, explicit: bool
    ) -> tuple[datetime, int, datetime, int]:
        """Reception, working days, completion and supplement requests of a completion.

        On time: completed before the (effective) due time and inside the
        period. Overdue: an hour or more after the due time, or after two
        supplement requests when the period leaves no room to be late.
        """
        rng, start, end = self.rng, self.origin, self.as_of
        if plan.overdue and not plan.withdraw:
            if rng.random() < 0.25:
                return rec_at, n_days, self._between(max(rec_at + _HOUR, start), end), 2
            for _ in range(60):
                due = self._due(rec_at, n_days, explicit)
                lo = max(due + _secs(3600), start)
                if lo < end:
                    late = min(end, due + _secs(10 * _DAY))
                    return rec_at, n_days, self._between(lo, max(lo, late)), 0
                if n_days > 1:
                    n_days = 1
                elif rec_at - timedelta(days=1) >= (start if not plan.before else rec_at):
                    rec_at -= timedelta(days=1)
                else:
                    break
            return rec_at, n_days, self._between(max(rec_at + _HOUR, start), end), 2
        while True:
            due = self._due(rec_at, n_days, explicit)
            lo, hi = max(rec_at + _secs(60), start), min(due, end - _secs(7200))
            if lo < hi:
                break
            n_days += 1
        if rng.random() < 0.02 and due <= end - _secs(7200):
            return rec_at, n_days, due, 0
        return rec_at, n_days, self._between(lo, hi), int(rng.random() < 0.08)

    def _between(self, lo: datetime, hi: datetime) -> datetime:
        span = int((hi - lo).total_seconds())
        return lo + _secs(self.rng.randrange(span) + 1) if span > 1 else hi

    def _pauses(self, f: _Facts, did: str, requests: int, done_at: datetime) -> None:
        """``requests`` supplement request/receipt pairs between reception and completion."""
        rng, last = self.rng, f.received_at
        for i in range(requests):
            room = int((done_at - last).total_seconds()) // (requests - i) - 2
            asked = last + _secs(1 + rng.randrange(max(1, room // 2)))
            got = asked + _secs(1 + rng.randrange(max(1, room // 2)))
            self._emit(testing.supplement_requested(did, f.unit, at=_ts(asked)), asked)
            self._emit(testing.supplement_received(did, f.unit, at=_ts(got)), got)
            f.requests += 1
            f.pause += got - asked
            last = got

    def _payments(self, f: _Facts, did: str, pay_online: bool, end: datetime) -> None:
        """One online transaction for an online-paying dossier, else cash/cashless or none."""
        rng = self.rng
        if pay_online:
            lo = max(self.origin, f.received_at - _secs(2 * _DAY))
            paid, method = self._between(lo, max(lo, end)), "online"
        elif rng.random() < 0.85:
            paid = self._between(f.received_at, max(f.received_at, end))
            method = "cash" if rng.random() < 0.45 else "cashless"
        else:
            return
        amount = rng.choice(_FEES)
        tx = f"TX{self.config.seed}-{next(self.ids):08d}"
        stamp = _ts(paid, utc=method == "online" and rng.random() < 0.5)
        sends = 2 if method == "online" and rng.random() < 0.03 else 1
        for attempt in range(sends):  # a gateway retry re-sends the same transaction
            ev = testing.payment(did, f.unit, at=stamp, method=method, amount=amount)
            ev["transaction_id"] = tx
            if self._emit(ev, paid) and attempt == 0:
                f.payments.append((paid, method, amount))

    def _complete(self, f: _Facts, did: str, done_at: datetime, *, result: bool) -> None:
        rng = self.rng
        signed = rng.random() < 0.6
        outcome = "rejected" if rng.random() < 0.1 else "approved"
        ev = testing.completed(did, f.unit, at=_ts(done_at), outcome=outcome, e_signed=signed)
        if self._emit(ev, done_at):
            f.completed_at, f.e_signed = done_at, signed
        if result:
            at = max(f.received_at, done_at - _secs(rng.randrange(3600)))
            ev = testing.digitized(did, f.unit, kind="result", files=rng.randint(1, 2))
            ev["occurred_at"] = _ts(at)
            f.result = self._emit(ev, at)

    def _count(self, f: _Facts) -> None:
        """The dossier's counters, straight from indicators.md."""
        unit, rec = f.unit, f.received_at
        online = f.channel == "online"
        self._add(unit, rec, "received")
        self._add(unit, rec, "received_online", online)
        if f.level != "none":
            self._add(unit, rec, "received_oos")
            self._add(unit, rec, "received_oos_online", online)
        self._add(unit, rec, "received_reused", f.reused)
        if f.fee:
            methods = [m for _at, m, _amount in f.payments]
            self._add(unit, rec, "received_fee")
            self._add(unit, rec, "received_fee_paid", bool(methods))
            self._add(unit, rec, "received_fee_paid_online", "online" in methods)
            noncash = "online" in methods or "cashless" in methods
            self._add(unit, rec, "received_fee_paid_noncash", noncash)
        for paid, method, amount in f.payments:
            self._add(unit, paid, f"payment_tx_{method}")
            self._add(unit, paid, f"payment_amount_{method}", amount)
        if _day(rec) in self.config.period:
            self.held[unit] = self.held.get(unit, 0) + 1
        done = f.completed_at
        if done is None or f.withdrawn:
            return
        on_time = f.requests <= 1 and done <= f.due + f.pause
        for name, value in (
            ("completed", True),
            ("completed_component", f.component),
            ("completed_result", f.result),
            ("completed_both", f.component and f.result),
            ("completed_on_time", on_time),
            ("completed_overdue", not on_time),
            ("completed_first_time_valid", f.requests == 0),
            ("completed_e_signed", f.e_signed),
            ("completed_online_result", online and f.result),
        ):
            self._add(unit, done, name, value)

    def _feedback(self, unit: Unit) -> None:
        rng = self.rng
        fid = f"PAKN-{unit.code}-{next(self.ids):06d}"
        got = self._at(self._day(unit), *_OFFICE)
        due = self.calendar.due_at(got, rng.choice((5, 10, 15)))
        ev = testing.feedback_received(fid, unit.code, at=_ts(got), due_at=_ts(due))
        self._emit(ev, got)
        if rng.random() >= 0.9:
            return
        room, r = int((due - got).total_seconds()), rng.random()
        if r < 0.03:
            done = due
        elif r < 0.85:
            done = got + _secs(rng.randrange(1, room))
        else:
            done = due + _secs(rng.randrange(3600, 10 * _DAY))
        ev = testing.feedback_resolved(fid, unit.code, at=_ts(done))
        if self._emit(ev, done):
            self._add(unit.code, done, "feedback_resolved")
            self._add(unit.code, done, "feedback_resolved_on_time", done <= due)

    def _reports(self, units: list[Unit]) -> None:
        period, rng = self.config.period, self.rng
        morning = datetime.combine(period.end + timedelta(days=1), time(8), tzinfo=VN_TZ)
        a, b = period.start.isoformat(), period.end.isoformat()
        for code in [u.code for u in units if rng.random() < 0.8]:
            held = self.held.get(code, 0)
            at = morning + _secs(rng.randrange(4 * 3600))
            total = held + rng.randint(0, held // 10)
            self._emit(testing.reported_totals(code, start=a, end=b, total=total, at=_ts(at)), at)

    def _invalid(self, count: int, units: list[Unit]) -> int:
        """Add ``count`` contract defects and a few unknown-unit events; return how many."""
        rng, span = self.rng, len(self.config.period) * _DAY
        for i in range(count):
            _what, sample, _reason = rng.choice(testing.INVALID_SAMPLES)
            line = _vary(sample, f"bad{self.config.seed}-{i}", rng.choice(units).code)
            self.events.append((rng.randrange(span), next(self.ids), line))
        unknown = max(1, count // 5) if count or self.config.invalid_rate > 0 else 0
        for i in range(unknown):
            code = f"{rng.choice(units).code}-OLD"
            while code in self.registry:
                code += "X"
            key, eid = rng.randrange(span), f"sim{self.config.seed}-unknown-{i}"
            at = _ts(self.origin + _secs(key))
            ev = testing.payment(f"{code}-{i}", code, at=at, transaction_id=eid, event_id=eid)
            self.events.append((key, next(self.ids), testing.encode(ev)))
        return count + unknown


def _vary(sample: bytes, tag: str, unit: str) -> bytes:
    """A unique variant of an invalid sample with the same defect.

    Identifiers present in the sample get ``tag``, its placeholder unit becomes
    a real one; missing or empty fields stay so, and non-objects stay
    non-objects (deep nesting gets deeper, broken JSON gets a suffix).
    """
    try:
        obj = orjson.loads(sample)
    except orjson.JSONDecodeError:
        if sample.startswith(b"[["):  # too deeply nested: vary the depth
            depth = len(sample) // 2 + int(tag.rsplit("-", 1)[1])
            return b"[" * depth + b"]" * depth
        return sample + b" " + tag.encode()
    if isinstance(obj, list):
        return orjson.dumps([*obj, tag])
    if isinstance(obj, str):
        return orjson.dumps(f"{obj}#{tag}")
    assert isinstance(obj, dict)
    for key in ("event_id", "dossier_id", "feedback_id", "transaction_id"):
        if isinstance(obj.get(key), str) and obj[key]:
            obj[key] = f"{obj[key]}-{tag}"
    if obj.get("unit_code") == "UNIT":
        obj["unit_code"] = unit
    return orjson.dumps(obj)
