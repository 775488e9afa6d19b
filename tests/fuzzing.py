"""Generators of hostile payloads for the fuzz tests (``test_fuzz.py``).

* hypothesis strategies (:data:`PAYLOADS`): contract events of every type
  with mutated fields — wrong types in every field, unknown ``event_type``,
  future ``schema_version``, timestamps in the year 9999 or before 2000, NaN /
  Infinity, duplicate keys, lone surrogates — framed with invalid UTF-8, BOMs,
  truncation, deep nesting or oversized, plus random bytes and bare JSON;
* :class:`StreamFuzzer`: realistic dossier streams from a seeded
  ``random.Random``, with a share of lines broken by the same mutations.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, Protocol, TypeVar

from hypothesis import strategies as st

from dossier_stream.core.events import (
    EVENT_TYPES,
    MAX_AMOUNT_VND,
    MAX_EVENT_BYTES,
    MAX_REPORTED_TOTAL,
)
from dossier_stream.sim import testing as t

UNIT = "HP-SO-TUPHAP"  # a department until 30/6/2025
UNITS = (UNIT, "HP-Q-313", "HP25-SO-TUPHAP", "HP-SO-DULICH", "NO-SUCH-UNIT", "")

TRICKY_VALUES: tuple[bytes, ...] = (
    b"NaN", b"Infinity", b"-Infinity", b"1e400", b"-1e400", b"1" + b"0" * 30, b"-1", b"0",
    b"-0", b"1.0", b"5e0", b"1.5", b"true", b"false", b"null", b"[]", b"{}", b'""', b'"1"',
    b'"true"', b'"\\u0000"', b'"\\ud800"', b'"\\udc00x"', b'"\\ud83d\\ude00"',
    b'"' + b"x" * 129 + b'"', '"Hoà Bình \u0301\u200b"'.encode(), b'"x\'); DROP TABLE units; --"',
    str(MAX_AMOUNT_VND).encode(), str(MAX_AMOUNT_VND + 1).encode(), str(2**63).encode(),
    str(2**64).encode(), str(MAX_REPORTED_TOTAL + 1).encode(), b"3650", b"3651",
    b"1" * 5000, b"[" * 300 + b"]" * 300,
)  # fmt: skip
"""Raw JSON fragments that break (or stretch) a field of any type."""

TRICKY_TIMESTAMPS: tuple[str, ...] = (
    "9999-12-31T23:59:59+07:00", "1999-12-31T23:59:59+07:00", "0001-01-01T00:00:00+00:00",
    "2000-01-01T00:00:00Z", "1999-12-31T23:00:00-01:00", "2099-12-31T23:59:59.999999+00:00",
    "2099-12-31T20:00:00-05:00", "2024-02-29T08:00:00+07:00", "2023-02-29T08:00:00+07:00",
    "2024-10-03T24:00:00+07:00", "2024-10-03T23:59:60+07:00", "2024-10-03T08:15:00",
    "2024-10-03", "2024-10-03T08:15:00+25:00", "2024-10-03T08:15:00+14:00",
    "2024-10-03T08:15:00-23:59", "2024-10-03 08:15:00+07:00", "2024-10-03t08:15:00z",
    "2024-10-03T08:15:00.123456789+07:00", "20241003T081500+0700", "", "now", "1727923500",
)  # fmt: skip
"""Timestamps at and past the contract's edges."""

TIMESTAMP_FIELDS = frozenset(
    {"occurred_at", "received_at", "due_at", "paid_at", "completed_at", "resolved_at"}
)
BAD_UTF8: tuple[bytes, ...] = (b"\xff", b"\xc0\xaf", b"\xed\xa0\x80", b"\xe2\x82", b"\xfe\xff")


METHODS = ("online", "cashless", "cash")
BUILDERS: dict[str, Callable[..., dict[str, Any]]] = {
    "dossier.digitized": t.digitized, "dossier.supplement_requested": t.supplement_requested,
    "dossier.supplement_received": t.supplement_received, "dossier.withdrawn": t.withdrawn,
    "feedback.received": t.feedback_received, "feedback.resolved": t.feedback_resolved,
}  # fmt: skip


def _build(kind: str, key: str, unit: str, at: str) -> dict[str, Any]:
    """An event of a type whose builder needs only a key, a unit and a time."""
    return BUILDERS[kind](key, unit, at=at)


def dumps(value: object) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode()


def raw_object(pairs: list[tuple[str, bytes]]) -> bytes:
    """A JSON object from raw value fragments (keys may repeat)."""
    return b"{" + b",".join(dumps(k) + b":" + v for k, v in pairs) + b"}"


def nested(depth: int, kind: int) -> bytes:
    if kind == 0:
        return b"[" * depth + b"]" * depth
    return b'{"a":' * depth + b"1" + b"}" * depth


def _pad(body: bytes, delta: int) -> bytes:
    """``body`` with an extra field making it ``MAX_EVENT_BYTES + delta`` bytes long."""
    room = MAX_EVENT_BYTES + delta - len(body) - len(b',"pad":""')
    return body[:-1] + b',"pad":"' + b"p" * max(room, 0) + b'"}' if body.endswith(b"}") else body


def _frame(body: bytes, how: str, where: int, junk: bytes) -> bytes:
    """Break (or not) a whole message: BOM, truncation, invalid UTF-8, size, encoding."""
    cut = where % (len(body) + 1)
    framings: dict[str, Callable[[], bytes]] = {
        "bom": lambda: b"\xef\xbb\xbf" + body, "trailing": lambda: body + junk,
        "truncate": lambda: body[:cut], "bad_utf8": lambda: body[:cut] + junk + body[cut:],
        "pad_over": lambda: _pad(body, 1 + where % 64), "pad_limit": lambda: _pad(body, 0),
        "utf16": lambda: body.decode("utf-8", "replace").encode("utf-16"),
        "whitespace": lambda: b" \n\t" + body + b"\r\n ",
    }  # fmt: skip
    return framings[how]() if how in framings else body


FRAMES = ("none",) * 12 + (
    "bom", "trailing", "truncate", "bad_utf8", "pad_over", "pad_limit", "utf16", "whitespace",
)  # fmt: skip


# ---------------------------------------------------------------- hypothesis strategies
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MINUTES = 23 * 60 + 59


def _instants(first: datetime, last: datetime) -> st.SearchStrategy[datetime]:
    """Aware instants in [first, last] at any UTC offset (cheaper to draw than st.datetimes)."""
    lo, hi = ((d - _EPOCH) // timedelta(microseconds=1) for d in (first, last))
    return st.tuples(st.integers(lo, hi), st.integers(-_MINUTES, _MINUTES)).map(
        lambda a: (_EPOCH + timedelta(microseconds=a[0])).astimezone(
            timezone(timedelta(minutes=a[1]))
        )
    )


_IN_RANGE = _instants(datetime(2000, 1, 2, tzinfo=UTC), datetime(2099, 12, 30, tzinfo=UTC))
_ANY_TIME = _instants(datetime(1, 1, 2, tzinfo=UTC), datetime(9999, 12, 30, tzinfo=UTC))
_TIMESTAMPS = st.one_of(
    _IN_RANGE.map(datetime.isoformat),
    _ANY_TIME.map(datetime.isoformat),
    _IN_RANGE.map(lambda d: d.replace(tzinfo=None).isoformat()),  # naive
    st.sampled_from(TRICKY_TIMESTAMPS),
)
_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=4,
)
_IDS = st.one_of(
    st.sampled_from(("D1", "D2", "000.00.31.H26-241003-0001")),
    st.text(min_size=1, max_size=10),
    st.integers(120, 135).map(lambda n: "d" * n),
)


_OCTOBER_2024 = _instants(datetime(2024, 9, 1, tzinfo=UTC), datetime(2024, 11, 1, tzinfo=UTC))


@st.composite
def contract_events(
    draw: st.DrawFn,
    units: tuple[str, ...] = UNITS,
    times: st.SearchStrategy[datetime] = _IN_RANGE,
) -> dict[str, Any]:
    """A contract event of any type, valid unless the unit or its times say otherwise."""
    kind = draw(st.sampled_from(EVENT_TYPES))
    unit = draw(st.sampled_from(units))
    did, at = draw(_IDS), draw(times).isoformat()
    if kind == "dossier.received":
        ev = t.received(
            did, unit, at=at, channel=draw(st.sampled_from(("online", "direct", "postal"))),
            working_days=draw(st.integers(0, 3650)), fee=draw(st.booleans()),
        )  # fmt: skip
        if draw(st.booleans()):
            ev["due_at"] = draw(_IN_RANGE).isoformat()
        return ev
    if kind == "dossier.payment":
        amount = draw(st.integers(0, MAX_AMOUNT_VND))
        return t.payment(did, unit, at=at, amount=amount, method=draw(st.sampled_from(METHODS)))
    if kind == "unit.reported_totals":
        start, end = draw(_IN_RANGE | _ANY_TIME).date(), draw(_IN_RANGE).date()
        total = draw(st.integers(0, MAX_REPORTED_TOTAL))
        return t.reported_totals(unit, start=str(start), end=str(end), total=total, at=at)
    if kind == "dossier.completed":
        return t.completed(did, unit, at=at, e_signed=draw(st.booleans()))
    return _build(kind, did, unit, at)


_FRAGMENTS = st.one_of(
    _JSON.map(dumps),
    st.sampled_from(TRICKY_VALUES),
    _TIMESTAMPS.map(dumps),
    st.tuples(st.integers(1, 400), st.integers(0, 1)).map(lambda a: nested(*a)),
)


VERSIONS: tuple[bytes, ...] = (
    b"1", b"true", b"1.0", b"1e0", b"2", b"0", b"-1", b'"1"', b"null", b"[1]", b"1" + b"0" * 25,
)  # fmt: skip
TYPE_NAMES = (*EVENT_TYPES, "dossier.teleported", "DOSSIER.RECEIVED", "", "x")
OPS = ("drop", "set", "set", "timestamp", "duplicate", "extra", "extra", "type", "version")
_T = TypeVar("_T")


class Choices(Protocol):
    """Where a mutation's choices come from: hypothesis draws or a seeded ``Random``."""

    def pick(self, options: Sequence[_T]) -> _T: ...
    def below(self, n: int) -> int: ...
    def fragment(self) -> bytes: ...


def _mutate(pairs: list[tuple[str, bytes]], op: str, c: Choices) -> None:
    """Apply one mutation ``op`` to an event's raw ``(key, JSON value)`` pairs, in place."""
    i = c.below(len(pairs)) if pairs else 0
    key = pairs[i][0] if pairs else "event_id"
    if op == "drop" and pairs:
        del pairs[i]
    elif op == "set" and pairs:
        pairs[i] = (key, c.fragment())
    elif op == "timestamp":  # an existing timestamp field, or a new one
        names = sorted(TIMESTAMP_FIELDS & {k for k, _ in pairs}) or sorted(TIMESTAMP_FIELDS)
        pairs.append((c.pick(names), dumps(c.pick(TRICKY_TIMESTAMPS))))
    elif op in {"duplicate", "extra"}:  # anywhere: the last value of a key counts
        name = key if op == "duplicate" else c.pick(("x", "note", "dossier", ""))
        pairs.insert(c.below(len(pairs) + 1), (name, c.fragment()))
    elif op == "type":
        pairs.append(("event_type", dumps(c.pick(TYPE_NAMES))))
    else:
        pairs.append(("schema_version", c.pick(VERSIONS)))


class _Draws:
    def __init__(self, draw: st.DrawFn) -> None:
        self.draw = draw

    def pick(self, options: Sequence[_T]) -> _T:
        return self.draw(st.sampled_from(options))

    def below(self, n: int) -> int:
        return self.draw(st.integers(0, n - 1))

    def fragment(self) -> bytes:
        return self.draw(_FRAGMENTS)


@st.composite
def mutated_events(draw: st.DrawFn) -> bytes:
    """A contract event with 0-3 field mutations and a framing defect (or none)."""
    pairs = [(k, dumps(v)) for k, v in draw(contract_events()).items()]
    choices = _Draws(draw)
    for _ in range(draw(st.integers(0, 3))):
        _mutate(pairs, choices.pick(OPS), choices)
    how = draw(st.sampled_from(FRAMES))
    return _frame(
        raw_object(pairs), how, draw(st.integers(0, 10**6)), draw(st.sampled_from(BAD_UTF8))
    )


@st.composite
def single_defects(draw: st.DrawFn) -> bytes:
    """A valid event of a live unit with exactly one defect, or one harmless stretch."""
    event = draw(contract_events(units=(UNIT, "HP-Q-313"), times=_OCTOBER_2024))
    pairs = [(k, dumps(v)) for k, v in event.items()]
    choices = _Draws(draw)
    _mutate(pairs, choices.pick(OPS), choices)
    return raw_object(pairs)


PAYLOADS = st.one_of(
    single_defects(),
    mutated_events(),
    contract_events().map(t.encode),
    st.tuples(st.integers(1, 40_000), st.integers(0, 1)).map(lambda a: nested(*a)),
    st.binary(max_size=64),
    st.binary(max_size=16).map(lambda b: b"\xef\xbb\xbf" + b),
    _JSON.map(dumps),
)


# ---------------------------------------------------------------- seeded streams
class StreamFuzzer:
    """Realistic dossier streams with a share of broken lines, from one seed.

    Args:
        seed: the ``random.Random`` seed; the same seed gives the same lines.
    """

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.ids = [f"000.00.31.H26-241003-{i:04d}" for i in range(300)]
        self.ids += ["D\x00nul", "Hồ sơ \u0301 \U0001f600", "d" * 128, "x'); DROP TABLE units; --"]

    def _at(self) -> str:
        rng = self.rng
        if rng.random() < 0.05:  # the edges of the accepted range, any offset
            edge = rng.choice(("2000-01-01T00:00:00Z", "2099-12-31T23:59:59.999999Z"))
            return edge if rng.random() < 0.5 else rng.choice(TRICKY_TIMESTAMPS)
        start = datetime(2024, 9, 10, tzinfo=UTC)
        at = start + timedelta(seconds=rng.randrange(45 * 86_400))
        offset = timezone(timedelta(minutes=rng.choice((420, 420, 420, 0, -300, 840))))
        return at.astimezone(offset).isoformat()

    def event(self) -> dict[str, Any]:
        """One valid-looking event (its unit or times may still be rejected)."""
        rng = self.rng
        did = rng.choice(self.ids)
        unit = UNIT if rng.random() < 0.85 else rng.choice(UNITS)
        at = self._at()
        kind = rng.choice(EVENT_TYPES)
        if kind == "dossier.received":
            days = rng.choice((0, 1, 5, 15, 3650))
            channel = rng.choice(("online", "direct"))
            return t.received(
                did, unit, at=at, working_days=days, fee=rng.random() < 0.5, channel=channel
            )
        if kind == "dossier.payment":
            amount = rng.choice((0, 1, 50_000, MAX_AMOUNT_VND, MAX_AMOUNT_VND + 1, 2**63, 2**64))
            return t.payment(did, unit, at=at, amount=amount, method=rng.choice(("online", "cash")))
        if kind == "dossier.completed":
            return t.completed(did, unit, at=at, e_signed=rng.random() < 0.5)
        if kind == "unit.reported_totals":
            total = rng.choice((0, 7, MAX_REPORTED_TOTAL, MAX_REPORTED_TOTAL + 1, 2**64))
            return t.reported_totals(unit, start="2024-09-15", end="2024-10-14", total=total, at=at)
        return _build(kind, f"F{rng.randrange(50)}" if kind[0] == "f" else did, unit, at)

    def pick(self, options: Sequence[_T]) -> _T:
        return self.rng.choice(options)

    def below(self, n: int) -> int:
        return self.rng.randrange(n)

    def fragment(self) -> bytes:
        return self.rng.choice(TRICKY_VALUES)

    def broken(self, event: dict[str, Any]) -> bytes:
        """``event`` with one to three defects of the kinds the hypothesis test draws."""
        pairs = [(k, dumps(v)) for k, v in event.items()]
        for _ in range(self.rng.randint(1, 3)):
            _mutate(pairs, self.pick(OPS), self)
        how, where = self.pick(FRAMES), self.below(10**6)
        return _frame(raw_object(pairs), how, where, self.pick(BAD_UTF8))

    def lines(self, n: int) -> list[bytes]:
        """``n`` lines: valid events, byte-for-byte duplicates, broken events, junk."""
        out: list[bytes] = []
        rng = self.rng
        while len(out) < n:
            roll = rng.random()
            if roll < 0.55:
                out.append(dumps(self.event()))  # json: orjson stops at 64-bit integers
            elif roll < 0.65 and out:
                out.append(rng.choice(out))
            elif roll < 0.95:
                out.append(self.broken(self.event()))
            elif roll < 0.975:
                out.append(rng.randbytes(rng.randrange(80)))
            else:  # JSON, but not an event object
                json_value = rng.choice((b"[1, 2]", b'"dossier.received"', b"null", b"42", b"[{}]"))
                out.append(rng.choice((json_value, nested(rng.randrange(1, 5000), 0))))
        return out
