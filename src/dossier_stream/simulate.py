"""Synthetic dossier streams with an independently computed ground truth.

:func:`simulate` writes the contract events of a report period for every unit,
in a realistic publish order with exact duplicates and invalid lines mixed in,
and returns the per-(unit, local day, counter) totals a correct processor must
reach. That truth is derived from the facts chosen for each dossier (channel,
fee, payments, files, supplement requests, completion against due time plus
pause, withdrawal) with the definitions of ``shared/spec/indicators.md``, not
with :mod:`~dossier_stream.lifecycle` or :mod:`~dossier_stream.counters`.
``completed_ahead_working_days`` is left out of it (it would repeat the
engine's working-day arithmetic); compare the other counters.

Assumptions (placeholders: issue 4 calibrates them to the October 2024 seed,
``shared/seeds/000_9f91dcfb64cb2f43.txt``, and will replace these rates):

* Units: those existing in the period, each with a log-normal volume weight
  (sigma 0.6) around a level median: department 60, district 25, commune 6.
* Reception: 5% in the 7 days before the period, else uniform over the days
  of the period the unit exists. Service level full/partial/none 40/35/25%,
  online channel 75/45/8% of them, else postal 4%, direct; online at any
  hour, others 07:30-17:00. Fee 35%, reused data 20%, 1..15 working days
  (30% state ``due_at``: 17:00 of the due day, some in UTC); 10% have
  ``occurred_at`` minutes after ``received_at``.
* Payments of fee dossiers: 0/1/2 transactions 15/70/15%; online/cashless/
  cash 70/15/15% (online dossiers) or 20/35/45%; half the online payments of
  online dossiers at submission, before the reception; half the online ones
  stamped in UTC; 3% of them re-sent under a new event id (same transaction).
* Files: components for 85% of dossiers, results for 75% of completions.
  Supplements: 10% of dossiers, 15% of those twice; pairs before completion.
* Fate: 2% withdrawn (a tenth after a completion), 86% of the others
  completed: 2% exactly at the effective due time, 83% before, the rest 1 h
  to 10 days late; 60% e-signed, 10% rejected.
* Feedback: due in 5/10/15 working days; 90% resolved (3% exactly at due,
  82% before). Reports: ~80% of units send one for exactly the period, with
  what the system holds plus 0..10%; the others none.
* Events after the period are not published (dossiers still open), except
  the reports, filed the next morning. Publish order: event time plus a
  per-topic lag (receptions often hours to days late), so payments and
  completions often precede their reception.
* Duplicates re-send valid lines byte for byte; invalid lines are unique
  variants of :data:`~dossier_stream.testing.INVALID_SAMPLES`, plus one
  well-formed event of an unknown unit per five (at least one).
"""

from __future__ import annotations

import itertools
import math
import random
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import orjson

from dossier_stream import testing
from dossier_stream.periods import Period
from dossier_stream.registry import Unit, UnitRegistry
from dossier_stream.workdays import VN_TZ, WorkCalendar

__all__ = ["SimConfig", "Simulation", "simulate"]

_DAY = 86_400
_LEAD_DAYS = 7
_LEVEL_MEDIAN = {"department": 60.0, "district": 25.0, "commune": 6.0}
_SERVICE_LEVELS = ("full", "partial", "none")
_SERVICE_SHARE = (40, 35, 25)
_P_ONLINE = {"full": 0.75, "partial": 0.45, "none": 0.08}
_WORKING_DAYS = (1, 2, 3, 5, 7, 10, 15)
_WORKING_DAYS_W = (10, 10, 25, 20, 15, 12, 8)
_METHODS = ("online", "cashless", "cash")
_METHOD_W = {True: (70, 15, 15), False: (20, 35, 45)}
_FEES = (10_000, 20_000, 30_000, 50_000, 100_000, 200_000, 500_000, 1_000_000)
_PROCEDURES = ("1.000046", "1.001612", "1.004227", "1.010739", "2.000889", "2.001157")
_OFFICE = (27_000, 61_200)  # 07:30 .. 17:00, seconds after midnight
_LAG = {"dossier.received": 600, "dossier.payment": 300, "dossier.digitized": 7200}  # seconds


@dataclass(frozen=True)
class SimConfig:
    """What to simulate.

    Attributes:
        period: the report period; receptions fall in it (5% in the week before).
        seed: seed of the only random generator; the same config gives the same bytes.
        dossiers: number of dossiers.
        duplicate_rate: exact duplicate lines, as a share of the valid lines.
        invalid_rate: invalid lines, as a share of the valid lines.
        feedback: number of citizen feedback items.
    """

    period: Period
    seed: int = 0
    dossiers: int = 20_000
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
        path.write_bytes(b"".join(line + b"\n" for line in self.lines))


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


def simulate(config: SimConfig, registry: UnitRegistry, calendar: WorkCalendar) -> Simulation:
    """Generate the stream of one period and its ground truth.

    Args:
        config: period, seed, sizes and rates.
        registry: the units (those existing in the period receive dossiers).
        calendar: working days, used to turn processing days into due times.

    Returns:
        The lines in publish order, the expected counters and the numbers of
        invalid and duplicate lines.
    """
    return _Generator(config, registry, calendar).run()


def _ts(at: datetime, *, utc: bool = False) -> str:
    return at.astimezone(UTC if utc else VN_TZ).isoformat(timespec="seconds")


def _day(at: datetime) -> date:
    return at.astimezone(VN_TZ).date()


def _secs(n: int) -> timedelta:
    return timedelta(seconds=n)


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
        weights = [rng.lognormvariate(math.log(_LEVEL_MEDIAN[u.level]), 0.6) for u in units]
        cum = list(itertools.accumulate(weights))
        for _ in range(cfg.dossiers):
            self._dossier(rng.choices(units, cum_weights=cum)[0])
        for _ in range(cfg.feedback):
            self._feedback(rng.choices(units, cum_weights=cum)[0])
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

    def _reception_day(self, unit: Unit) -> date:
        """A day the unit exists: 5% in the week before the period, else in it."""
        period = self.config.period
        lo = max(period.start - timedelta(days=_LEAD_DAYS), unit.valid_from or date.min)
        hi = min(period.end, unit.valid_to or date.max)
        if lo < period.start and self.rng.random() < 0.05:
            hi = period.start - timedelta(days=1)
        else:
            lo = max(lo, period.start)
        return lo + timedelta(days=self.rng.randrange((hi - lo).days + 1))

    def _dossier(self, unit: Unit) -> None:
        rng, code = self.rng, unit.code
        day = self._reception_day(unit)
        level = rng.choices(_SERVICE_LEVELS, weights=_SERVICE_SHARE)[0]
        if rng.random() < _P_ONLINE[level]:
            channel, rec_at = "online", self._at(day, 0, _DAY)
        else:
            channel = "postal" if rng.random() < 0.04 else "direct"
            rec_at = self._at(day, *_OFFICE)
        did = f"{code}-{day:%y%m%d}-{next(self.ids):06d}"
        n_days = rng.choices(_WORKING_DAYS, weights=_WORKING_DAYS_W)[0]
        due = self.calendar.due_at(rec_at, n_days)
        explicit = rng.random() < 0.3
        if explicit:
            due = datetime.combine(due.date(), time(17), tzinfo=VN_TZ)
        f = _Facts(code, rec_at, channel, level, rng.random() < 0.35, rng.random() < 0.2, due)
        stated_due = _ts(due, utc=rng.random() < 0.2) if explicit else None
        ev = testing.received(
            did,
            code,
            at=_ts(rec_at),
            channel=channel,
            level=level,
            fee=f.fee,
            due_at=stated_due,
            working_days=n_days,
            reused=f.reused,
            procedure=rng.choice(_PROCEDURES),
        )
        if rng.random() < 0.1:
            ev["occurred_at"] = _ts(rec_at + _secs(rng.randrange(60, 1800)))
        self._emit(ev, rec_at)
        span = max(int((due - rec_at).total_seconds()), 7200)
        if f.fee:
            self._payments(f, did, span)
        if rng.random() < 0.85:
            for _ in range(rng.choice((1, 1, 1, 2))):
                at = rec_at + _secs(rng.randrange(7200))
                ev = testing.digitized(did, code, files=rng.randint(1, 6), at=_ts(at))
                f.component |= self._emit(ev, at)
        last = rec_at  # the clock may not stop before the last supplement receipt
        if rng.random() < 0.10:
            f.requests = 2 if rng.random() < 0.15 else 1
            for _ in range(f.requests):
                asked = last + _secs(rng.randrange(3600, max(3601, span * 2 // 5)))
                got = asked + _secs(rng.randrange(7200, 7 * _DAY))
                self._emit(testing.supplement_requested(did, code, at=_ts(asked)), asked)
                self._emit(testing.supplement_received(did, code, at=_ts(got)), got)
                f.pause += got - asked
                last = got
        self._fate(f, did, last)
        self._count(f)

    def _payments(self, f: _Facts, did: str, span: int) -> None:
        rng = self.rng
        online = f.channel == "online"
        for _ in range(rng.choices((0, 1, 2), weights=(15, 70, 15))[0]):
            method = rng.choices(_METHODS, weights=_METHOD_W[online])[0]
            if method == "online" and online and rng.random() < 0.5:
                paid = f.received_at - _secs(rng.randrange(600, 2 * _DAY))  # at submission
            else:
                paid = f.received_at + _secs(rng.randrange(span))
            amount = rng.choice(_FEES)
            tx = f"TX{self.config.seed}-{next(self.ids):08d}"
            stamp = _ts(paid, utc=method == "online" and rng.random() < 0.5)
            sends = 2 if method == "online" and rng.random() < 0.03 else 1
            for attempt in range(sends):  # a gateway retry re-sends the same transaction
                ev = testing.payment(did, f.unit, at=stamp, method=method, amount=amount)
                ev["transaction_id"] = tx
                if self._emit(ev, paid) and attempt == 0:
                    f.payments.append((paid, method, amount))

    def _fate(self, f: _Facts, did: str, last: datetime) -> None:
        """Completion (on time, at due, late), result files, withdrawal."""
        rng = self.rng
        withdraw = rng.random() < 0.02
        planned: datetime | None = None
        if rng.random() < (0.1 if withdraw else 0.86):
            effective = f.due + f.pause
            room = int((effective - last).total_seconds())
            r = rng.random()
            if r < 0.02 and room > 0:
                planned = effective
            elif r < 0.85 and room > 1:
                planned = last + _secs(rng.randrange(1, room))
            else:
                planned = max(effective, last) + _secs(rng.randrange(3600, 10 * _DAY))
            signed = rng.random() < 0.6
            outcome = "rejected" if rng.random() < 0.1 else "approved"
            ev = testing.completed(did, f.unit, at=_ts(planned), outcome=outcome, e_signed=signed)
            if self._emit(ev, planned):
                f.completed_at, f.e_signed = planned, signed
            if rng.random() < 0.75:
                at = max(last, planned - _secs(rng.randrange(3600)))
                ev = testing.digitized(did, f.unit, kind="result", files=rng.randint(1, 2))
                ev["occurred_at"] = _ts(at)
                f.result = self._emit(ev, at)
        if withdraw:
            at = (planned or f.received_at) + _secs(rng.randrange(3600, 5 * _DAY))
            f.withdrawn = self._emit(testing.withdrawn(did, f.unit, at=_ts(at)), at)

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
        ):
            self._add(unit, done, name, value)

    def _feedback(self, unit: Unit) -> None:
        rng = self.rng
        fid = f"PAKN-{unit.code}-{next(self.ids):06d}"
        got = self._at(self._reception_day(unit), *_OFFICE)
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
