"""Synthetic dossier streams with an independently computed ground truth, a day at a time.

:class:`SimStream` writes the contract events of a report period for every
unit, in a realistic publish order with exact duplicates and invalid lines
mixed in, one publish day at a time (:meth:`SimStream.days`), without
holding the month: it plans every dossier (:mod:`dossier_stream.sim.plan`),
then writes the plans' events in reception order, releasing a day once no
dossier still to be written can publish into it. :func:`simulate` collects
a whole stream with the per-(unit, local day, counter) totals a correct
processor must reach. That truth is derived from the facts chosen for each
dossier (channel, fee, payments, files, supplement requests, completion
against due time plus pause, withdrawal) with the definitions of
``shared/spec/indicators.md``, not with :mod:`~dossier_stream.core.lifecycle`
or :mod:`~dossier_stream.core.counters`. ``completed_ahead_working_days`` is
left out of it (it would repeat the engine's working-day arithmetic).

Assumptions (documented here because the published reports do not say):

* Volumes: a unit's counts come from a :class:`~dossier_stream.sim.quotas.UnitQuota`:
  the calibration of the period when one is bundled (tháng 10/2024: every
  count and rate of seed 000, see ``tools/calibrate_haiphong_2024_10.py``),
  else :func:`~dossier_stream.sim.quotas.random_quotas` for ``dossiers``. The
  simulated stream produces exactly the quota's counts in the period.
* Receptions in the period: uniform over its days; online at any hour,
  others (counter 96 %, post 4 %) 07:30-17:00. Service level of online
  services full/partial 55/45 %, else ``none``. 1..15 working days, longer
  for dossiers open at the cut (see :mod:`~dossier_stream.sim.plan`; 30 %
  state ``due_at``: 17:00 of the due day, some in UTC); 10 % have
  ``occurred_at`` minutes after ``received_at``. Reused digital data: 20 %.
* Completions and open dossiers: as :mod:`~dossier_stream.sim.plan` decides
  (the dossiers due first are completed; the open ones are mostly not yet
  due). Overdue ones end 1 h to 10 days after the effective due time (a
  quarter after two supplement requests); on-time ones end before it, 8 %
  after one supplement pause, 2 % exactly at it. 60 % e-signed, 10 %
  rejected. Components are digitized within 2 h of reception, results within
  the hour before completion.
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
* Noise: each valid line is re-sent byte for byte within a day with
  probability ``duplicate_rate``, and followed within a day by an invalid
  line with probability ``invalid_rate``: unique variants of
  :data:`~dossier_stream.sim.testing.INVALID_SAMPLES`, plus a well-formed
  event of an unknown unit with the first invalid line and every fifth.
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import orjson

from dossier_stream.core.periods import Period, monthly_report
from dossier_stream.core.registry import Unit, UnitRegistry
from dossier_stream.core.workdays import VN_TZ, WorkCalendar
from dossier_stream.sim import testing
from dossier_stream.sim.plan import DAY, OFFICE, DossierPlan, Planner, local_day, seconds
from dossier_stream.sim.quotas import CALIBRATIONS, UnitQuota, load_calibration, random_quotas

__all__ = ["SimConfig", "SimStream", "Simulation", "following", "simulate", "simulate_months"]

_FEES = (10_000, 20_000, 30_000, 50_000, 100_000, 200_000, 500_000, 1_000_000)
_PROCEDURES = ("1.000046", "1.001612", "1.004227", "1.010739", "2.000889", "2.001157")
_LAG = {"dossier.received": 600, "dossier.payment": 300, "dossier.digitized": 7200}  # seconds
_EARLIEST = 2 * DAY
"""No event of a dossier happens more than this before its reception (online payments)."""


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


def simulate(config: SimConfig, registry: UnitRegistry, calendar: WorkCalendar) -> Simulation:
    """Generate the stream of one period, held in memory, and its ground truth.

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
    stream = SimStream(config, registry, calendar, truth=True)
    lines = list(stream)
    return Simulation(lines, dict(sorted(stream.truth.items())), stream.invalid, stream.duplicates)


def following(period: Period) -> Period:
    """The period after ``period``: the next city month, else the next span of equal length."""
    if period.start.day == 15 and period.end.day == 14:
        nxt = period.end + timedelta(days=31)
        return monthly_report(nxt.year, nxt.month)
    return Period(period.end + timedelta(days=1), period.end + timedelta(days=len(period)))


def simulate_months(
    config: SimConfig, months: int, registry: UnitRegistry, calendar: WorkCalendar
) -> Iterator[SimStream]:
    """Streams of ``months`` consecutive periods from ``config.period``, one at a time.

    Month ``i`` uses seed ``config.seed + i``; the calibration applies only to
    the period it reproduces (the others spread ``config.dossiers``). Each
    month is simulated on its own: the dossiers it completes from before its
    period are its own, so they add to the previous month's receptions.
    """
    period = config.period
    for i in range(months):
        calibration = config.calibration
        if calibration is not None and CALIBRATIONS.get(calibration) != period:
            calibration = None
        month = replace(config, period=period, seed=config.seed + i, calibration=calibration)
        yield SimStream(month, registry, calendar)
        period = following(period)


def _ts(at: datetime, *, utc: bool = False) -> str:
    return at.astimezone(UTC if utc else VN_TZ).isoformat(timespec="seconds")


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


class SimStream:
    """One simulated period, generated as it is read (iterate once).

    Iterating gives the lines in publish order; :meth:`days` gives them a
    publish day at a time. ``invalid``, ``duplicates`` and ``count`` are
    final once the stream is exhausted; ``truth`` is filled only when asked
    for (``truth=True``), since it grows with the month.

    Args:
        config: period, seed, sizes and rates, or a calibration.
        registry: the units (those existing in the period receive dossiers).
        calendar: working days, used to turn processing days into due times.
        truth: also compute the expected counters.

    Raises:
        KeyError: (when iterated) the calibration is unknown, or names a unit
            that does not exist in the period.
    """

    def __init__(
        self,
        config: SimConfig,
        registry: UnitRegistry,
        calendar: WorkCalendar,
        *,
        truth: bool = False,
    ) -> None:
        self.config, self.registry, self.calendar = config, registry, calendar
        self.rng = random.Random(config.seed)
        self.as_of = config.period.ends_at
        self.origin = config.period.starts_at
        self.planner = Planner(config.period, calendar, self.rng)
        self.truth: dict[tuple[str, date, str], int] = {}
        self.invalid = 0
        self.duplicates = 0
        self.count = 0
        self._truth = truth
        self._heap: list[tuple[int, int, bytes]] = []  # (publish second, sequence, line)
        self._held: dict[str, int] = {}  # receptions in the period, per unit
        self._ids = itertools.count(1)
        self._units: list[Unit] = []
        self._defects = 0  # invalid samples written
        self._started = False

    def __iter__(self) -> Iterator[bytes]:
        for _day, lines in self.days():
            yield from lines

    def write(self, path: Path, *, append: bool = False) -> int:
        """Write the lines as JSONL (each terminated by ``\\n``); return how many."""
        before = self.count
        with path.open("ab" if append else "wb") as fh:
            for _day, lines in self.days():
                fh.write(b"".join(line + b"\n" for line in lines))
        return self.count - before

    def days(self) -> Iterator[tuple[date, list[bytes]]]:
        """``(publish day, lines)`` in publish order, for every day with lines.

        Raises:
            RuntimeError: the stream was already read.
        """
        if self._started:
            raise RuntimeError("a simulated stream can be read only once")
        self._started = True
        cfg, rng = self.config, self.rng
        units = self.registry.units_in(cfg.period.start, cfg.period.end)
        self._units = units
        quotas = self._quotas(units)
        plans: list[DossierPlan] = []
        for unit in units:
            if unit.code in quotas:
                plans.extend(self.planner.unit_plans(unit, quotas[unit.code]))
        plans.sort(key=lambda p: p.received_at)
        weights = [1 + (quotas[u.code].received if u.code in quotas else 0) for u in units]
        feedback = [
            (self.planner.at(self.planner.day(unit), *OFFICE), unit)
            for unit in rng.choices(units, weights=weights, k=cfg.feedback)
        ]
        feedback.sort(key=lambda f: f[0])
        origin = self.origin
        sources = heapq.merge(
            ((p.received_at, i, p) for i, p in enumerate(plans)),
            ((at, len(plans) + i, unit) for i, (at, unit) in enumerate(feedback)),
        )
        for at, _i, source in sources:
            yield from self._release(int((at - origin).total_seconds()) - _EARLIEST)
            if isinstance(source, DossierPlan):
                self._dossier(source)
            elif isinstance(source, Unit):
                self._feedback(source, at)
        del plans, feedback
        self._reports(units)
        yield from self._release(None)

    def _quotas(self, units: list[Unit]) -> dict[str, UnitQuota]:
        cfg = self.config
        if cfg.calibration is None:
            return random_quotas(units, cfg.dossiers, self.rng)
        quotas = load_calibration(cfg.calibration)
        missing = sorted(quotas.keys() - {u.code for u in units})
        if missing:
            raise KeyError(f"calibration units not in the period: {', '.join(missing[:5])}")
        return quotas

    def _release(self, below: int | None) -> Iterator[tuple[date, list[bytes]]]:
        """The lines of every publish day that ends at or before ``below`` (all: ``None``)."""
        heap, start = self._heap, self.config.period.start
        limit = None if below is None else below // DAY * DAY
        while heap and (limit is None or heap[0][0] < limit):
            day = heap[0][0] // DAY
            end = (day + 1) * DAY
            lines = []
            while heap and heap[0][0] < end:
                lines.append(heapq.heappop(heap)[2])
            self.count += len(lines)
            yield start + timedelta(days=day), lines

    def _push(self, key: int, line: bytes) -> None:
        heapq.heappush(self._heap, (key, next(self._ids), line))

    def _emit(self, event: dict[str, Any], at: datetime) -> bool:
        """Publish ``event`` (at ``at``, a new id) unless after the cut; return whether it was."""
        if at > self.as_of and not event["event_type"].startswith("unit."):
            return False
        rng, kind, cfg = self.rng, event["event_type"], self.config
        event["event_id"] = f"sim{cfg.seed}-{next(self._ids):08d}"
        lag = rng.randrange(_LAG.get(kind, 1800))
        if kind == "dossier.received" and rng.random() < 0.35:  # a late batch from the counter
            lag += rng.randrange(DAY * (3 if rng.random() < 0.86 else 10))
        elif kind == "dossier.digitized" and rng.random() < 0.1:
            lag += rng.randrange(2 * DAY)
        key = int((at - self.origin).total_seconds()) + lag
        line = testing.encode(event)
        self._push(key, line)
        if cfg.duplicate_rate and rng.random() < cfg.duplicate_rate:
            self._push(key + rng.randrange(1, DAY), line)
            self.duplicates += 1
        if cfg.invalid_rate and rng.random() < cfg.invalid_rate:
            self._invalid(key + rng.randrange(DAY))
        return True

    def _add(self, unit: str, at: datetime, name: str, value: int = 1) -> None:
        if value and self._truth:
            key = (unit, local_day(at), name)
            self.truth[key] = self.truth.get(key, 0) + value

    def _dossier(self, plan: DossierPlan) -> None:
        rng, code, rec_at = self.rng, plan.unit, plan.received_at
        level = ("full" if rng.random() < 0.55 else "partial") if plan.oos else "none"
        fee = plan.pay_online or rng.random() < 0.3
        did = f"{code}-{local_day(rec_at):%y%m%d}-{next(self._ids):06d}"
        f = _Facts(code, rec_at, plan.channel, level, fee, rng.random() < 0.2, plan.due)
        ev = testing.received(
            did,
            code,
            at=_ts(rec_at),
            channel=plan.channel,
            level=level,
            fee=fee,
            due_at=_ts(plan.due, utc=rng.random() < 0.2) if plan.explicit_due else None,
            working_days=plan.working_days,
            reused=f.reused,
            procedure=rng.choice(_PROCEDURES),
        )
        if rng.random() < 0.1:
            ev["occurred_at"] = _ts(rec_at + seconds(rng.randrange(60, 1800)))
        self._emit(ev, rec_at)
        done_at = plan.completed_at
        end = done_at or self.as_of
        if fee:
            self._payments(f, did, plan.pay_online, end)
        component = plan.files[0] if plan.files is not None else rng.random() < 0.85
        if component:
            room = max(1, min(7200, int((end - rec_at).total_seconds())))
            at = rec_at + seconds(rng.randrange(room))
            ev = testing.digitized(did, code, files=rng.randint(1, 6), at=_ts(at))
            f.component = self._emit(ev, at)
        if done_at is None:
            if plan.asked_at is not None:  # waiting for documents at the end of the period
                ev = testing.supplement_requested(did, code, at=_ts(plan.asked_at))
                f.requests = int(self._emit(ev, plan.asked_at))
            if plan.withdrawn_at is not None:
                ev = testing.withdrawn(did, code, at=_ts(plan.withdrawn_at))
                f.withdrawn = self._emit(ev, plan.withdrawn_at)
        else:
            self._pauses(f, did, plan.requests, done_at)
            self._complete(f, did, done_at, result=plan.files is not None and plan.files[1])
            if plan.withdraw_after:
                left = int((self.as_of - done_at).total_seconds())
                at = done_at + seconds(rng.randrange(60, left))
                f.withdrawn = self._emit(testing.withdrawn(did, code, at=_ts(at)), at)
        self._count(f)

    def _pauses(self, f: _Facts, did: str, requests: int, done_at: datetime) -> None:
        """``requests`` supplement request/receipt pairs between reception and completion."""
        rng, last = self.rng, f.received_at
        for i in range(requests):
            room = int((done_at - last).total_seconds()) // (requests - i) - 2
            asked = last + seconds(1 + rng.randrange(max(1, room // 2)))
            got = asked + seconds(1 + rng.randrange(max(1, room // 2)))
            self._emit(testing.supplement_requested(did, f.unit, at=_ts(asked)), asked)
            self._emit(testing.supplement_received(did, f.unit, at=_ts(got)), got)
            f.requests += 1
            f.pause += got - asked
            last = got

    def _payments(self, f: _Facts, did: str, pay_online: bool, end: datetime) -> None:
        """One online transaction for an online-paying dossier, else cash/cashless or none."""
        rng, between = self.rng, self.planner.between
        if pay_online:
            lo = max(self.origin, f.received_at - seconds(_EARLIEST))
            paid, method = between(lo, max(lo, end)), "online"
        elif rng.random() < 0.85:
            paid = between(f.received_at, max(f.received_at, end))
            method = "cash" if rng.random() < 0.45 else "cashless"
        else:
            return
        amount = rng.choice(_FEES)
        tx = f"TX{self.config.seed}-{next(self._ids):08d}"
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
            at = max(f.received_at, done_at - seconds(rng.randrange(3600)))
            ev = testing.digitized(did, f.unit, kind="result", files=rng.randint(1, 2))
            ev["occurred_at"] = _ts(at)
            f.result = self._emit(ev, at)

    def _count(self, f: _Facts) -> None:
        """The dossier's counters, straight from indicators.md."""
        unit, rec = f.unit, f.received_at
        if local_day(rec) in self.config.period:
            self._held[unit] = self._held.get(unit, 0) + 1
        if not self._truth:
            return
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

    def _feedback(self, unit: Unit, got: datetime) -> None:
        rng = self.rng
        fid = f"PAKN-{unit.code}-{next(self._ids):06d}"
        due = self.calendar.due_at(got, rng.choice((5, 10, 15)))
        ev = testing.feedback_received(fid, unit.code, at=_ts(got), due_at=_ts(due))
        self._emit(ev, got)
        if rng.random() >= 0.9:
            return
        room, r = int((due - got).total_seconds()), rng.random()
        if r < 0.03:
            done = due
        elif r < 0.85:
            done = got + seconds(rng.randrange(1, room))
        else:
            done = due + seconds(rng.randrange(3600, 10 * DAY))
        ev = testing.feedback_resolved(fid, unit.code, at=_ts(done))
        if self._emit(ev, done):
            self._add(unit.code, done, "feedback_resolved")
            self._add(unit.code, done, "feedback_resolved_on_time", done <= due)

    def _reports(self, units: list[Unit]) -> None:
        period, rng = self.config.period, self.rng
        morning = datetime.combine(period.end + timedelta(days=1), time(8), tzinfo=VN_TZ)
        a, b = period.start.isoformat(), period.end.isoformat()
        for code in [u.code for u in units if rng.random() < 0.8]:
            held = self._held.get(code, 0)
            at = morning + seconds(rng.randrange(4 * 3600))
            total = held + rng.randint(0, held // 10)
            self._emit(testing.reported_totals(code, start=a, end=b, total=total, at=_ts(at)), at)

    def _invalid(self, key: int) -> None:
        """An invalid line at ``key`` (and, first and every fifth, an unknown unit's event)."""
        rng, seed, i = self.rng, self.config.seed, self._defects
        _what, sample, _reason = rng.choice(testing.INVALID_SAMPLES)
        self._push(key, _vary(sample, f"bad{seed}-{i}", rng.choice(self._units).code))
        self._defects += 1
        self.invalid += 1
        if i % 5 == 0:
            n = i // 5
            code = f"{rng.choice(self._units).code}-OLD"
            while code in self.registry:
                code += "X"
            eid = f"sim{seed}-unknown-{n}"
            at = _ts(self.origin + seconds(key))
            ev = testing.payment(f"{code}-{n}", code, at=at, transaction_id=eid, event_id=eid)
            self._push(key, testing.encode(ev))
            self.invalid += 1


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
