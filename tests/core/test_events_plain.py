"""The proof from the bytes (:mod:`dossier_stream.core.plainjson`) that spares orjson's reading.

:func:`~dossier_stream.core.events.parse_event` reads a valid event with
orjson only when :func:`~dossier_stream.core.plainjson.reads_plainly` cannot
prove from its bytes what that reading would tell. These tests hold the
proof to its claim (``True`` only where orjson reads the line, with the
integer ``schema_version``) and ``parse_event`` to the same results as the
reading it replaces, on lines made to break a scan of bytes.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError, create_model

import dossier_stream
from dossier_stream.core import events
from dossier_stream.core.events import InvalidEvent, event_adapter, parse_event
from dossier_stream.core.plainjson import Shape, reads_plainly, shape_of
from dossier_stream.sim import testing as t
from fuzzing import PAYLOADS, StreamFuzzer, dumps

UNIT = "HP-SO-TUPHAP"
LINES = {
    "dossier.received": t.encode(t.received("000.00.31.H26-241003-0001", UNIT)),
    "dossier.payment": t.encode(t.payment("D1", UNIT)),
    "dossier.digitized": t.encode(t.digitized("D1", UNIT, kind="result", files=3)),
    "dossier.completed": t.encode(t.completed("D1", UNIT, e_signed=True)),
    "feedback.received": t.encode(t.feedback_received("F1", UNIT)),
    "unit.reported_totals": t.encode(
        t.reported_totals(UNIT, start="2024-09-15", end="2024-10-14", total=1200)
    ),
}
TOKENS = [b"1", b"-0", b"0", b"2.5", b"1e5", b"1E400", b"-1e400", b"NaN", b"Infinity",
          b"-Infinity", b"true", b"false", b"null", b'"NaN"', b'"1e400"', b"1" + b"0" * 308,
          b"2" + b"0" * 308, b"9" * 400, str(2**63).encode(), str(2**64).encode(),
          b'"\\u005f"', b'"\\ud800"', b'"schema_version"', b'"schema_version":1', b"[1,2]",
          b"{}", b'{"schema_version":true}', b"[NaN]", "\"Hà\"".encode(), b'""']  # fmt: skip
NAMES = [b'"x"', b'"schema_version"', b'"schema\\u005fversion"', b'"due_at"', b'"file_count"',
         b'"processing_working_days"', b'"event_id"', b'"reused_digital_data"', b'""']  # fmt: skip
SPACES = [b"", b" ", b"\t", b"\n", b"\r", b"\x0c", b"\x0b", b"\xc2\xa0", b"\xef\xbb\xbf"]


def outcome(raw: bytes) -> object:
    """What :func:`parse_event` makes of ``raw``: the event, or the dead letter's reason."""
    try:
        return parse_event(raw)
    except InvalidEvent as exc:
        return exc.reason


def routes(monkeypatch: pytest.MonkeyPatch) -> tuple[Callable[[bytes], object], ...]:
    """:func:`outcome` with the proof (compiled or not), and with orjson's reading only."""

    def route(proof: object) -> Callable[[bytes], object]:
        def run(raw: bytes) -> object:
            with monkeypatch.context() as m:
                m.setattr(events, "PLAIN_READER", proof)
                return outcome(raw)

        return run

    return route(reads_plainly), route(None)


def mutations(rng: random.Random, count: int) -> list[bytes]:
    """Lines of :data:`LINES` with extra, repeated or respaced fields, escapes and odd numbers."""
    lines = list(LINES.values())
    out = []
    for _ in range(count):
        raw = rng.choice(lines)
        for _ in range(rng.randrange(0, 4)):
            op = rng.randrange(4)
            if op == 0:  # a field added (or given again) at the end
                raw = raw[:-1] + b"," + rng.choice(NAMES) + b":" + rng.choice(TOKENS) + b"}"
            elif op == 1:  # a known field's value replaced
                name = rng.choice(NAMES[1:-1])
                head, sep, tail = raw.partition(name + b":")
                if sep:
                    end = min((i for i in (tail.find(b","), tail.find(b"}")) if i >= 0), default=0)
                    raw = head + sep + rng.choice(TOKENS) + tail[end:]
            elif op == 2:  # whitespace, JSON's or not, somewhere between tokens
                at = rng.choice([i + 1 for i, b in enumerate(raw) if b in b",:{"] or [0])
                raw = raw[:at] + rng.choice(SPACES) + raw[at:]
            else:  # before the object, or after it
                raw = rng.choice(SPACES) + raw if rng.random() < 0.5 else raw + rng.choice(SPACES)
        out.append(raw)
    return out


def plain(raw: bytes) -> bool | None:
    """``reads_plainly`` of a line pydantic accepts (``None`` when it refuses it)."""
    try:
        event = event_adapter().validate_json(raw, strict=True)
    except (ValidationError, RecursionError):
        return None
    return reads_plainly(raw, event, shape_of(type(event)))


def test_the_lines_produce_writes_are_proved_plain() -> None:
    """The fast route is the one taken: every contract event as ``produce`` writes it."""
    for raw in LINES.values():
        assert plain(raw) is True, raw
    # an optional field given as null; JSON's whitespace (Python's json.dumps puts spaces)
    assert plain(LINES["dossier.received"][:-1] + b',"due_at":null}') is True
    spaced = b'"schema_version":\t1\r\n'
    assert plain(LINES["dossier.payment"].replace(b'"schema_version":1', spaced)) is True
    fuzzer = StreamFuzzer(7)
    proved = [plain(dumps(fuzzer.event())) for _ in range(500)]
    assert proved.count(True) > 400  # the rest: pydantic refuses them, or escapes


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        (LINES["dossier.payment"][:-1] + b',"x":"a\\"b"}', "a backslash"),
        (LINES["dossier.payment"][:-1] + b',"x":1E400}', "an extra field"),
        (LINES["dossier.payment"][:-1] + b',"schema_version":true}', "a key given twice"),
        (LINES["dossier.payment"].replace(b'"schema_version":1', b'"schema_version" :1'),
         "a space before the colon"),
        (LINES["dossier.payment"].replace(b'"schema_version":1', b'"schema_version":10e-1'),
         "the version 1 written otherwise"),
        (LINES["dossier.digitized"].replace(b'"file_count":3', b'"file_count":' + b"9" * 400),
         "an integer beyond 64 bits"),
    ],
)  # fmt: skip
def test_what_the_proof_leaves_to_orjson(raw: bytes, why: str) -> None:
    assert plain(raw) is False, why


def test_the_proof_holds_on_lines_made_to_break_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """Wherever it says plain, orjson reads the line; and parse_event's results do not move."""
    by_proof, by_orjson = routes(monkeypatch)
    proved = refused = 0
    for raw in mutations(random.Random(22), 4_000):
        if plain(raw):
            proved += 1
            assert type(orjson.loads(raw)["schema_version"]) is int, raw
        got = by_proof(raw)
        refused += isinstance(got, str)
        assert got == by_orjson(raw), raw
    assert proved > 400 and refused > 400  # both sides were tried


@settings(
    max_examples=300,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(st.lists(PAYLOADS, min_size=8, max_size=8))
def test_parse_event_is_what_the_orjson_route_makes_of_fuzzed_payloads(
    payloads: list[bytes],
) -> None:
    with pytest.MonkeyPatch.context() as monkeypatch:
        by_proof, by_orjson = routes(monkeypatch)
        for raw in payloads:
            assert by_proof(raw) == by_orjson(raw), raw


def test_pydantic_takes_only_jsons_whitespace() -> None:
    """Point 5 of the proof: what orjson refuses between tokens, pydantic refuses too."""
    raw = LINES["dossier.payment"]
    for space in SPACES[5:]:
        for line in (space + raw, raw[:1] + space + raw[1:], raw + space):
            assert outcome(line) == "not_json", (space, line)
    for space in SPACES[1:5]:
        assert outcome(space + raw[:1] + space + raw[1:] + space) == parse_event(raw)


def test_parse_event_uses_the_proof_where_it_runs_compiled() -> None:
    compiled = "dossier_stream.core.plainjson" in dossier_stream.compiled_modules()
    assert (events.PLAIN_READER is reads_plainly) == compiled
    assert (events.PLAIN_READER is None) == (not compiled)


def test_shapes_of_the_contract_models() -> None:
    received = shape_of(events.DossierReceived)
    assert received == Shape(9, ("due_at",), ("processing_working_days",))
    assert shape_of(events.DossierDigitized).integers == ("file_count",)
    assert shape_of(events.DossierPayment) == Shape(8, (), ())  # amount_vnd: bounded


def test_a_field_string_or_not_has_no_shape() -> None:
    class Odd(BaseModel):
        value: str | int

    with pytest.raises(TypeError, match=r"Odd\.value"):
        shape_of(Odd)


@pytest.mark.parametrize("annotation", [float, float | None, list[int], dict[str, int]])
def test_a_field_that_may_hold_what_orjson_refuses_has_no_shape(annotation: Any) -> None:
    # a float reads NaN and 1e400 (orjson refuses both); containers hold uncounted strings
    model = create_model("Odd", value=(annotation, ...))
    with pytest.raises(TypeError, match=r"Odd\.value: not provable"):
        shape_of(model)
