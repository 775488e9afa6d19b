"""Compact bytes for dossier and feedback states.

States travel to the worker's table store (and its changelog) and to the
``dossier_facts`` table, so they are encoded as small JSON arrays
(orjson), timestamps as exact integer epoch microseconds. ``loads(dumps(s)) == s``
for every state; the first element is a format version so a later layout can
still read old bytes.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, Final

import orjson

from dossier_stream.core.lifecycle import (
    Completion,
    DossierState,
    FeedbackState,
    Payment,
    Reception,
    Supplement,
)
from dossier_stream.core.workdays import VN_TZ

__all__ = [
    "DOSSIER_FACT_COLUMNS",
    "dossier_fact",
    "dumps_dossier",
    "dumps_feedback",
    "loads_dossier",
    "loads_feedback",
]

_V: Final = 1


_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_US: Final = timedelta(microseconds=1)


def _constant_offset_years(start: int, stop: int) -> range:
    """The years ``[start, stop)`` if :data:`VN_TZ` keeps one UTC offset through them.

    Checked on the 1st and the 16th of every month, which finds any daylight
    saving time or change of offset lasting more than a fortnight; an empty
    range (no fast path) when the offset is not constant.
    """
    offsets = {
        datetime(year, month, day, tzinfo=VN_TZ).utcoffset()
        for year in range(start, stop)
        for month in range(1, 13)
        for day in (1, 16)
    }
    return range(start, stop) if len(offsets) == 1 else range(0)


_FAST: Final = _constant_offset_years(1976, 2150)
"""Years in which a :data:`VN_TZ` time converts by naive arithmetic from :data:`_LOCAL_REF`."""
_LOCAL_REF: Final = datetime(2000, 1, 1, tzinfo=VN_TZ)
_LOCAL_REF_US: Final = (_LOCAL_REF - _EPOCH) // _US
_FAST_US: Final = range(
    (datetime(_FAST.start, 1, 2, tzinfo=UTC) - _EPOCH) // _US if _FAST else 0,
    (datetime(_FAST.stop - 1, 12, 31, tzinfo=UTC) - _EPOCH) // _US if _FAST else 0,
)
"""Epoch microseconds whose :data:`VN_TZ` time falls in :data:`_FAST` years."""


def _ms(at: datetime) -> int:
    """Exact epoch microseconds (the name is kept short for the hot path).

    Most state times are in :data:`VN_TZ`. Two datetimes with the same
    ``tzinfo`` subtract as naive wall times, which is exact while the zone
    keeps one offset, so those in :data:`_FAST` years are measured from a
    local reference instant instead of converting to UTC (about 3× faster).
    """
    if at.tzinfo is VN_TZ and at.year in _FAST:
        d = at - _LOCAL_REF
        return (d.days * 86_400 + d.seconds) * 1_000_000 + d.microseconds + _LOCAL_REF_US
    d = at - _EPOCH  # a timedelta is normalized: exact, as ``// _US`` would be
    return (d.days * 86_400 + d.seconds) * 1_000_000 + d.microseconds


def _at(us: int) -> datetime:
    """The :data:`VN_TZ` datetime of exact epoch microseconds (inverse of :func:`_ms`)."""
    if us in _FAST_US:
        return _LOCAL_REF + (us - _LOCAL_REF_US) * _US
    return (_EPOCH + us * _US).astimezone(VN_TZ)


def _order(order: tuple[datetime, str]) -> list[Any]:
    return [_ms(order[0]), order[1]]


def _unorder(raw: list[Any]) -> tuple[datetime, str]:
    return (_at(raw[0]), raw[1])


def _same(order: tuple[datetime, str], at: datetime, us: int) -> list[Any]:
    """``_order(order)``, reusing ``us``, the encoding of ``at``, when it is ``order``'s time.

    The fold keeps one object for a fact's time and its order's time when they
    are the same instant, and :func:`loads_dossier` does too.
    """
    return [us if order[0] is at else _ms(order[0]), order[1]]


def dumps_dossier(s: DossierState) -> bytes:
    """Encode a dossier state.

    The worker encodes a state per event: tuples (orjson writes them as the
    same arrays as lists), no comprehension for what is empty, and a time
    shared by a fact and its order encoded once.
    """
    r = s.received
    c = s.completion
    ms = _ms
    if r is not None:
        at = ms(r.received_at)
        rec: Any = (
            _same(r.order, r.received_at, at),
            r.unit_code,
            r.procedure_code,
            r.channel,
            r.online_service_level,
            at,
            ms(r.due_at),
            r.fee_required,
            r.reused_digital_data,
        )
    else:
        rec = None
    if c is not None:
        at = ms(c.completed_at)
        done: Any = (_same(c.order, c.completed_at, at), at, c.outcome, c.result_e_signed)
    else:
        done = None
    pays: Any = ()
    if s.payments:
        pays = [
            (_same(p.order, p.paid_at, at), p.transaction_id, p.amount_vnd, p.method, at)
            for p in s.payments
            for at in (ms(p.paid_at),)
        ]
    return _packed(
        s,
        rec,
        pays,
        [(ms(x.at), x.requested, x.event_id) for x in s.supplements] if s.supplements else (),
        done,
        None if s.withdrawn_at is None else ms(s.withdrawn_at),
    )


def _packed(s: DossierState, rec: Any, pays: Any, sups: Any, done: Any, withdrawn: Any) -> bytes:
    """The state's bytes from its parts already encoded (the layout of version ``_V``)."""
    return orjson.dumps(
        (
            _V,
            s.dossier_id,
            sorted(s.seen),
            rec,
            pays,
            s.has_component_files,
            s.has_result_files,
            sups,
            done,
            withdrawn,
        )
    )


DOSSIER_FACT_COLUMNS: Final = (
    "dossier_id", "source", "unit_code", "received_at", "due_at", "channel",
    "online_service_level", "fee_required", "reused_digital_data", "paid_online",
    "paid_cashless", "paid_cash", "has_component_files", "has_result_files",
    "supplement_requests", "supplement_at", "supplement_requested", "completed_at",
    "effective_due", "on_time", "result_e_signed", "withdrawn_at", "state",
)  # fmt: skip
"""The columns of a :func:`dossier_fact` row, in its order (``version`` is the store's)."""


def dossier_fact(s: DossierState, source: str) -> tuple[Any, ...]:
    """The ``dossier_facts`` row of a state (:data:`DOSSIER_FACT_COLUMNS`).

    Times are ``DateTime64(6)`` ticks, exact epoch microseconds (what the
    client would compute from the datetimes), and ``state`` is
    :func:`dumps_dossier`'s bytes decoded: each time is converted once, for
    the row and for the state's bytes, and no datetime is left for the
    insert to convert. Written out for the worker's flush, which builds a
    row per dossier touched; ``row[-1] == dumps_dossier(s).decode()`` for
    every state. (Not the bytes themselves: orjson's bytes objects keep
    more memory than their length, and holding a flush's worth of them
    costs more than decoding them, measured.)
    """
    r = s.received
    c = s.completion
    sups = s.supplements
    ms = _ms
    if r is not None:
        at = ms(r.received_at)
        due: int | None = ms(r.due_at)
        order = r.order
        rec: Any = (
            [at if order[0] is r.received_at else ms(order[0]), order[1]],
            r.unit_code,
            r.procedure_code,
            r.channel,
            r.online_service_level,
            at,
            due,
            r.fee_required,
            r.reused_digital_data,
        )
        head: tuple[Any, ...] = (
            s.dossier_id, source, r.unit_code, at, due, r.channel, r.online_service_level,
            1 if r.fee_required else 0, 1 if r.reused_digital_data else 0,
        )  # fmt: skip
    else:
        rec = due = None
        head = (s.dossier_id, source, "", None, None, "", "", 0, 0)
    if s.payments:
        methods = set()
        pays: Any = []
        for p in s.payments:
            at = ms(p.paid_at)
            order = p.order
            methods.add(p.method)
            pays.append(
                (
                    [at if order[0] is p.paid_at else ms(order[0]), order[1]],
                    p.transaction_id,
                    p.amount_vnd,
                    p.method,
                    at,
                )
            )
        paid: tuple[int, ...] = (
            1 if "online" in methods else 0,
            1 if "cashless" in methods else 0,
            1 if "cash" in methods else 0,
        )
    else:
        pays = ()
        paid = (0, 0, 0)
    if sups:
        sup_at = [ms(x.at) for x in sups]
        requested = [1 if x.requested else 0 for x in sups]
        sup_raw: Any = [(us, x.requested, x.event_id) for us, x in zip(sup_at, sups, strict=True)]
    else:
        sup_at, requested, sup_raw = [], [], ()
    if c is not None:
        done_at = ms(c.completed_at)
        order = c.order
        done: Any = (
            [done_at if order[0] is c.completed_at else ms(order[0]), order[1]],
            done_at,
            c.outcome,
            c.result_e_signed,
        )
        if due is None:  # completed, never received
            effective = on_time = None
        elif not sups:  # no pause: due as it is, and on time by the same rule as the state's
            effective, on_time = due, (1 if done_at <= due else 0)
        else:
            effective_at = s.effective_due()
            effective = None if effective_at is None else ms(effective_at)
            on_time = None if (t := s.is_on_time) is None else int(t)
        tail: tuple[Any, ...] = (
            done_at, effective, on_time, 1 if c.result_e_signed else 0
        )  # fmt: skip
    else:
        done = None
        tail = (None, None, None, 0)
    wd = None if s.withdrawn_at is None else ms(s.withdrawn_at)
    state = _packed(s, rec, pays, sup_raw, done, wd)
    return (
        *head, *paid, 1 if s.has_component_files else 0, 1 if s.has_result_files else 0,
        sum(requested), sup_at, requested, *tail, wd, state.decode(),
    )  # fmt: skip


def _unsame(raw: list[Any], at: datetime, us: int) -> tuple[datetime, str]:
    """``_unorder(raw)``, the very object ``at`` (decoded from ``us``) for the same instant."""
    return (at if raw[0] == us else _at(raw[0]), raw[1])


def loads_dossier(data: bytes) -> DossierState:
    """Decode bytes made by :func:`dumps_dossier`."""
    v, did, seen, r, pays, comp, res, sups, c, wd = orjson.loads(data)
    if v != _V:
        raise ValueError(f"unknown dossier state format {v}")
    rec = None
    if r is not None:
        at = _at(r[5])
        rec = Reception(_unsame(r[0], at, r[5]), r[1], r[2], r[3], r[4], at, _at(r[6]), r[7], r[8])
    done = None
    if c is not None:
        at = _at(c[1])
        done = Completion(_unsame(c[0], at, c[1]), at, c[2], c[3])
    payments = []
    for p in pays:
        at = _at(p[4])
        payments.append(Payment(_unsame(p[0], at, p[4]), p[1], p[2], p[3], at))
    return DossierState(
        dossier_id=did,
        seen=frozenset(seen),
        received=rec,
        payments=tuple(payments),
        has_component_files=comp,
        has_result_files=res,
        supplements=tuple(Supplement(_at(x[0]), x[1], x[2]) for x in sups),
        completion=done,
        withdrawn_at=None if wd is None else _at(wd),
    )


def dumps_feedback(s: FeedbackState) -> bytes:
    """Encode a feedback state."""
    return orjson.dumps(
        [
            _V,
            s.feedback_id,
            sorted(s.seen),
            s.unit_code,
            None if s.received_order is None else _order(s.received_order),
            None if s.due_at is None else _ms(s.due_at),
            None if s.resolved_order is None else _order(s.resolved_order),
            None if s.resolved_at is None else _ms(s.resolved_at),
        ]
    )


def loads_feedback(data: bytes) -> FeedbackState:
    """Decode bytes made by :func:`dumps_feedback`."""
    v, fid, seen, unit, ro, due, so, res = orjson.loads(data)
    if v != _V:
        raise ValueError(f"unknown feedback state format {v}")
    return FeedbackState(
        feedback_id=fid,
        seen=frozenset(seen),
        unit_code=unit,
        received_order=None if ro is None else _unorder(ro),
        due_at=None if due is None else _at(due),
        resolved_order=None if so is None else _unorder(so),
        resolved_at=None if res is None else _at(res),
    )
