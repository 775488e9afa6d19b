"""Every rule of event-contract.md: valid events parse, each defect has its reason."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from dossier_stream.core.events import (
    EVENT_TYPES,
    MAX_EVENT_BYTES,
    DossierReceived,
    InvalidEvent,
    check_unit,
    parse_event,
)
from dossier_stream.core.registry import UnitRegistry
from dossier_stream.sim import testing as t

UNIT = "HP-SO-TUPHAP"

VALID = {
    "dossier.received": t.received("000.00.31.H26-241003-0001", UNIT),
    "dossier.payment": t.payment("D1", UNIT),
    "dossier.digitized": t.digitized("D1", UNIT, kind="result", files=3),
    "dossier.supplement_requested": t.supplement_requested(
        "D1", UNIT, at="2024-10-04T08:00:00+07:00"
    ),
    "dossier.supplement_received": t.supplement_received(
        "D1", UNIT, at="2024-10-05T08:00:00+07:00"
    ),
    "dossier.completed": t.completed("D1", UNIT, e_signed=True),
    "dossier.withdrawn": t.withdrawn("D1", UNIT),
    "feedback.received": t.feedback_received("F1", UNIT),
    "feedback.resolved": t.feedback_resolved("F1", UNIT),
    "unit.reported_totals": t.reported_totals(
        UNIT, start="2024-09-15", end="2024-10-14", total=1200
    ),
}


def test_every_contract_type_has_a_valid_example() -> None:
    assert set(VALID) == set(EVENT_TYPES)


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_valid_example_parses(event_type: str) -> None:
    event = parse_event(t.encode(VALID[event_type]))
    assert event.event_type == event_type
    assert event.occurred_at.tzinfo is not None


@pytest.mark.parametrize(
    ("desc", "raw", "reason"), t.INVALID_SAMPLES, ids=[s[0] for s in t.INVALID_SAMPLES]
)
def test_each_defect_has_its_reason(desc: str, raw: bytes, reason: str) -> None:
    with pytest.raises(InvalidEvent) as info:
        parse_event(raw)
    assert info.value.reason == reason
    assert info.value.code == reason.split(":")[0]


def test_unknown_fields_are_ignored() -> None:
    ev = VALID["dossier.received"] | {"x_vendor_field": {"nested": [1, 2]}, "note": "ok"}
    assert isinstance(parse_event(t.encode(ev)), DossierReceived)


def test_defaults_of_optional_booleans() -> None:
    ev = dict(VALID["dossier.received"])
    del ev["reused_digital_data"]
    parsed = parse_event(t.encode(ev))
    assert isinstance(parsed, DossierReceived)
    assert parsed.reused_digital_data is False


def test_exactly_64_kib_is_accepted_one_more_byte_is_not() -> None:
    base = t.encode(VALID["dossier.withdrawn"])
    pad = MAX_EVENT_BYTES - len(base) - len(b',"p":""')
    ok = base[:-1] + b',"p":"' + b"x" * pad + b'"}'
    assert len(ok) == MAX_EVENT_BYTES
    parse_event(ok)
    with pytest.raises(InvalidEvent, match="too_large"):
        parse_event(ok[:-2] + b'x"}')


def test_utc_z_and_other_offsets_are_aware() -> None:
    ev = VALID["dossier.completed"] | {"completed_at": "2024-10-07T08:00:00Z"}
    parsed = parse_event(t.encode(ev))
    assert parsed.completed_at == datetime(2024, 10, 7, 8, tzinfo=UTC)  # type: ignore[union-attr]
    ev = VALID["dossier.completed"] | {"completed_at": "2024-10-07T15:00:00+07:00"}
    parsed = parse_event(t.encode(ev))
    assert parsed.completed_at.utcoffset() == timedelta(hours=7)  # type: ignore[union-attr]


def test_unit_checks(registry: UnitRegistry) -> None:
    check_unit(parse_event(t.encode(VALID["dossier.payment"])), registry)
    ghost = parse_event(t.encode(t.payment("D1", "NO-SUCH-UNIT")))
    with pytest.raises(InvalidEvent, match="unknown_unit"):
        check_unit(ghost, registry)


def test_reception_after_the_unit_ended_is_not_active(registry: UnitRegistry) -> None:
    late = t.received("D1", UNIT, at="2025-07-02T08:00:00+07:00")
    with pytest.raises(InvalidEvent) as info:
        check_unit(parse_event(t.encode(late)), registry)
    assert info.value.reason == "unit_not_active"


_PAYMENT = t.encode(VALID["dossier.payment"])
_BEFORE_VERSION, _, _AFTER_VERSION = _PAYMENT.partition(b'"schema_version":1')
PLAIN_OR_NOT = (
    # a line as produce writes it
    ("as produced", _PAYMENT, None),
    # lines a scan of the bytes for what orjson refuses would have to get right
    ("spaces around the version", _BEFORE_VERSION + b'"schema_version" : 1' + _AFTER_VERSION, None),
    ("the version again, nested", _PAYMENT[:-1] + b',"x":{"schema_version":true}}', None),
    ("words of numbers in strings", _PAYMENT[:-1] + b',"x":"1e400 NaN Infinity"}', None),
    ("a 23-digit integer", _PAYMENT[:-1] + b',"x":12345678901234567890123}', None),
    ("a 309-digit integer", _PAYMENT[:-1] + b',"x":1' + b"0" * 308 + b"}", None),
    ("non-ASCII text", _PAYMENT[:-1] + ',"x":"Hà Nội"}'.encode(), None),
    ("an escaped quote", _PAYMENT[:-1] + b',"x":"a\\"b"}', None),
    ("an integer beyond a double", _PAYMENT[:-1] + b',"x":2' + b"0" * 308 + b"}", "not_json"),
    ("an exponent beyond a double", _PAYMENT[:-1] + b',"x":1E+400}', "not_json"),
    ("Infinity", _PAYMENT[:-1] + b',"x":Infinity}', "not_json"),
    ("the version given twice, then true", _PAYMENT[:-1] + b',"schema_version":true}',
     "unsupported_schema_version"),
    ("the version again, escaped, true", _PAYMENT[:-1] + b',"schema\\u005fversion":true}',
     "unsupported_schema_version"),
    ("the version 1.0", _BEFORE_VERSION + b'"schema_version":1.0' + _AFTER_VERSION,
     "unsupported_schema_version"),
)  # fmt: skip


@pytest.mark.parametrize(("desc", "raw", "reason"), PLAIN_OR_NOT, ids=[p[0] for p in PLAIN_OR_NOT])
def test_an_event_is_valid_only_where_orjson_reads_it(
    desc: str, raw: bytes, reason: str | None
) -> None:
    """Lines only orjson tells apart: valid exactly where it reads them, version an integer."""
    if reason is None:
        assert parse_event(raw).event_id == VALID["dossier.payment"]["event_id"], desc
        assert type(orjson.loads(raw)["schema_version"]) is int
        return
    with pytest.raises(InvalidEvent) as info:
        parse_event(raw)
    assert info.value.reason == reason, desc


def test_every_event_accepted_is_one_orjson_reads_with_the_integer_version() -> None:
    """Extra fields of random JSON-ish tokens: whatever the worker accepts, orjson reads."""
    rng = random.Random(18)
    tokens = [b"1", b"-0", b"2.5", b"1e5", b"1E400", b"NaN", b"-Infinity", b"true", b'"NaN"',
              b"1" + b"0" * 400, b'"\\u005f"', b'"schema_version"', b'"\\ud800"', b"[1,2]",
              b'{"schema_version":true}', b"null", "\"Hà\"".encode()]  # fmt: skip
    lines = [t.encode(VALID[name]) for name in EVENT_TYPES]
    accepted = 0
    for _ in range(2_000):
        raw = rng.choice(lines)
        for _ in range(rng.randrange(1, 4)):
            name = rng.choice([b'"x"', b'"schema_version"', b'"schema\\u005fversion"'])
            raw = raw[:-1] + b"," + name + b":" + rng.choice(tokens) + b"}"
        try:
            parse_event(raw)
        except InvalidEvent:
            continue
        accepted += 1
        assert type(orjson.loads(raw)["schema_version"]) is int, raw
    assert 200 < accepted < 2_000  # both sides of the rule were tried
