"""Fuzzing: generated payloads at ``parse_event`` and through the worker's processing path.

The generators are in ``fuzzing.py``; both are reproducible in CI:

* hypothesis (``derandomize=True``, no example database, ``max_examples``
  explicit): 1.500 examples of 8 payloads — 12.000 payloads — at
  :func:`~dossier_stream.core.events.parse_event` and ``Engine.process``;
* seeded ``random.Random`` streams (12.000 lines), routed the way ``produce``
  routes them and fed, 500 a batch, through what a Faust agent does with a
  batch: ``Processor.handle`` on real :class:`~dossier_stream.stream.processor.Message`s,
  the flush into an embedded ClickHouse, the dead letters' Kafka headers
  and their rows in ``dead_letters``.

The property is "zero crashes, nothing lost": every payload becomes an event
or a dead letter whose reason is one of the bounded codes
(:data:`~dossier_stream.stream.metrics.REASONS`, with a contract field name), and
valid events are folded, stored and recovered intact. The last tests pin
what the fuzzing found (:data:`FOUND`).
"""

from __future__ import annotations

import random
import zlib
from collections import Counter
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dossier_stream.core.engine import DeadLetter, Engine
from dossier_stream.core.events import (
    EVENT_TYPES,
    MAX_AMOUNT_VND,
    MAX_REPORTED_TOTAL,
    Event,
    InvalidEvent,
    check_unit,
    event_models,
    parse_event,
)
from dossier_stream.core.registry import UnitRegistry
from dossier_stream.core.topics import TopicCatalog, load_catalog
from dossier_stream.core.workdays import WorkCalendar
from dossier_stream.sim import testing as t
from dossier_stream.store.deadletters import letter_id
from dossier_stream.store.sink import BatchingSink, ClickHouseStore, connect
from dossier_stream.stream.metrics import REASONS
from dossier_stream.stream.processor import Handled, Message, Processor
from fuzzing import PAYLOADS, UNIT, StreamFuzzer, dumps, raw_object

HYPOTHESIS_EXAMPLES = 1_500
HYPOTHESIS_BATCH = 8  # payloads per example: hypothesis' overhead is per example
SEEDED_PAYLOADS = 12_000
FIELDS = frozenset(name for model in event_models() for name in model.model_fields)
ENGINE_ONLY = frozenset({"unknown_unit", "unit_not_active", "wrong_topic", "unroutable"})
INT_BOUNDS = {
    "amount_vnd": MAX_AMOUNT_VND,
    "received_total": MAX_REPORTED_TOTAL,
    "processing_working_days": 3650,
}
MIN_TS = datetime(2000, 1, 1, tzinfo=UTC)
MAX_TS = datetime(2100, 1, 1, tzinfo=UTC)


# ---------------------------------------------------------------- the checks
def _route(raw: bytes, catalog: TopicCatalog) -> str | None:
    """The topic ``produce`` sends a line to (``None``: the dead-letter topic)."""
    try:
        obj = orjson.loads(raw)
        return catalog.topic_for(obj["event_type"]) if isinstance(obj, dict) else None
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return None


_KEY_FIELDS = {"dossier": "dossier_id", "feedback": "feedback_id", "unit": "unit_code"}


def _key(raw: bytes, topic: str) -> bytes:
    """The message key ``produce`` gives a line (the value itself when it has none)."""
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return raw
    key = obj.get(_KEY_FIELDS[topic.split(".", 1)[0]]) if isinstance(obj, dict) else None
    return key.encode() if isinstance(key, str) else raw


def _assert_bounded(dead: DeadLetter | InvalidEvent) -> None:
    """A reason from the bounded set, a field of the contract, a detail Kafka headers carry."""
    code, _, field = dead.reason.partition(":")
    assert code == dead.code and code in REASONS, dead.reason
    assert not field or field in FIELDS, dead.reason
    assert dead.detail.strip(), dead.reason
    dead.reason.encode()  # strict UTF-8, as the headers are encoded
    dead.detail.encode()


def _assert_sound(event: Event, raw: bytes) -> None:
    """What a valid event guarantees to the rest of the pipeline."""
    assert event.event_type in EVENT_TYPES
    source = orjson.loads(raw)  # plain JSON, read the same way by produce and replay
    assert type(source["schema_version"]) is int and source["schema_version"] == 1
    topic = load_catalog().topic_for(event.event_type)
    assert _route(raw, load_catalog()) == topic  # routed where the worker expects it
    key = getattr(event, _KEY_FIELDS[topic.split(".", 1)[0]])
    assert _key(raw, topic) == key.encode()  # and to the partition of its key
    for name, value in event:
        if isinstance(value, datetime):
            assert value.tzinfo is not None and MIN_TS <= value < MAX_TS, name
        elif isinstance(value, date):
            assert MIN_TS.date() <= value < MAX_TS.date(), name
        elif isinstance(value, str):
            value.encode()  # no lone surrogates reach the stores
        elif isinstance(value, int) and name in INT_BOUNDS:
            assert 0 <= value <= INT_BOUNDS[name], name  # fits the Int64 / UInt64 columns
    assert parse_event(event.model_dump_json().encode()) == event


def _expected_reason(raw: bytes, topic: str | None, registry: UnitRegistry) -> str | None:
    """The reason the message must be dead-lettered with, or ``None`` if it is valid."""
    try:
        event = parse_event(raw)
    except InvalidEvent as exc:
        _assert_bounded(exc)
        assert exc.code not in ENGINE_ONLY
        return exc.reason
    _assert_sound(event, raw)
    try:
        check_unit(event, registry)
    except InvalidEvent as exc:
        return exc.reason
    if topic is not None and load_catalog().topic_for(event.event_type) != topic:
        return "wrong_topic"
    return None


def test_hypothesis_payloads_never_crash_the_parser_or_the_engine(
    registry: UnitRegistry, calendar: WorkCalendar
) -> None:
    catalog = load_catalog()
    engine = Engine(registry, calendar, catalog=catalog)
    seen: Counter[str] = Counter()
    topics = [t.name for t in catalog.topics if not t.deadletter]

    @settings(
        max_examples=HYPOTHESIS_EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(
        st.lists(
            st.tuples(PAYLOADS, st.integers(0, 24)),
            min_size=HYPOTHESIS_BATCH,
            max_size=HYPOTHESIS_BATCH,
        )
    )
    def fuzz(batch: list[tuple[bytes, int]]) -> None:
        for raw, misroute in batch:
            topic = _route(raw, catalog)
            if topic is not None and misroute < len(topics) and misroute % 4 == 0:
                topic = topics[misroute]  # a producer writing to a wrong topic
            expected = _expected_reason(raw, topic, registry)
            out = engine.process(raw, topic=topic, partition=0, offset=seen.total())
            engine.dead_letters.clear()
            if expected is None:
                assert out.kind in {"applied", "duplicate"} and out.dead_letter is None
            else:
                assert out.dead_letter is not None and out.dead_letter.reason == expected
                _assert_bounded(out.dead_letter)
            seen[out.dead_letter.code if out.dead_letter else "valid"] += 1

    fuzz()
    assert seen.total() >= 10_000
    assert seen["valid"] >= 500
    # every defect family of the contract was generated, not only the easy ones
    # (null_value is a null Kafka value, never a payload: tests/core/test_upstream_core.py)
    assert set(REASONS) - {"unroutable", "null_value"} <= set(seen), sorted(seen.items())
    assert engine.stats.events_in == seen.total()


def _headers(dead: DeadLetter) -> tuple[dict[str, bytes], bytes]:
    """The Kafka headers (strict UTF-8) and value the agent publishes a dead letter with."""
    headers = {
        "reason": dead.reason, "code": dead.code, "detail": dead.detail[:1000],
        "source_topic": dead.topic or "", "source_partition": str(dead.partition),
        "source_offset": str(dead.offset),
    }  # fmt: skip
    return {k: v.encode() for k, v in headers.items()}, dead.raw


def _log_dead(processor: Processor, letters: list[tuple[dict[str, bytes], bytes]]) -> None:
    """What the ``deadletters`` agent does with what it reads from the dead-letter topic."""
    for headers, value in letters:
        h = {k: v.decode() for k, v in headers.items()}
        where = (h["source_topic"], int(h["source_partition"]), int(h["source_offset"]))
        processor.sink.add_dead_letter((
            letter_id(*where), *where, h["reason"], h["code"], h["detail"], value, 1,
            datetime.now(UTC),
        ))  # fmt: skip
    processor.sink.flush()


def _agent_batches(
    processor: Processor, catalog: TopicCatalog, lines: list[bytes], registry: UnitRegistry
) -> list[tuple[Handled, str | None]]:
    """Route ``lines`` as ``produce`` does and fold them as the agents do, 500 a batch.

    Returns every outcome with the reason it must have (``None``: valid).
    """
    offsets: Counter[tuple[str, int]] = Counter()
    rng = random.Random(5)
    inputs = [t.name for t in catalog.topics if not t.deadletter]
    results: list[tuple[Handled, str | None]] = []
    for start in range(0, len(lines), 500):  # one take_events batch
        batch: list[Message] = []
        expected: list[str | None] = []
        unroutable: list[tuple[dict[str, bytes], bytes]] = []
        for raw in lines[start : start + 500]:
            topic = _route(raw, catalog)
            if topic is None and rng.random() < 0.5:
                topic = rng.choice(inputs)  # an upstream system writing straight to Kafka
            if topic is None:  # produce sends it to the dead-letter topic itself
                results.append((processor.count_producer_dead_letter("unroutable"), "unroutable"))
                headers = {
                    "source_topic": b"fuzz.jsonl", "source_partition": b"0",
                    "source_offset": str(len(results)).encode(), "reason": b"unroutable",
                    "code": b"unroutable", "detail": b"no topic carries this line's event_type",
                }  # fmt: skip
                unroutable.append((headers, raw))
                continue
            if rng.random() < 0.03:
                topic = rng.choice(inputs)  # a producer writing to a wrong topic
            partition = zlib.crc32(_key(raw, topic)) % catalog.get(topic).partitions
            batch.append(Message(topic, partition, offsets[(topic, partition)], raw))
            offsets[(topic, partition)] += 1
            expected.append(_expected_reason(raw, topic, registry))
        handled = processor.handle(batch)
        processor.sink.flush()
        dead = [h.outcome.dead_letter for h in handled if h.outcome.dead_letter]
        _log_dead(processor, [_headers(d) for d in dead] + unroutable)
        results.extend(zip(handled, expected, strict=True))
    return results


BIG: dict[str, Any] = {"max_rows": 100_000, "interval_s": 60}


def _nonzero(counters: dict[Any, int]) -> dict[Any, int]:
    return {k: v for k, v in counters.items() if v}


def test_seeded_streams_through_the_agents_path_never_crash(
    tmp_path: Path, registry: UnitRegistry, calendar: WorkCalendar
) -> None:
    catalog = load_catalog()
    lines = [line for seed in (11, 12, 13) for line in StreamFuzzer(seed).lines(4_000)]
    assert len(lines) >= SEEDED_PAYLOADS
    store = ClickHouseStore(connect(f"chdb://{tmp_path / 'ch'}"))
    try:
        store.migrate()
        processor = Processor(registry, calendar, catalog, BatchingSink(store, **BIG), store)
        results = _agent_batches(processor, catalog, lines, registry)
        assert len(results) == len(lines)
        codes: Counter[str] = Counter()
        applied: set[str] = set()
        for handled, expected in results:
            out = handled.outcome
            if expected is None:
                assert out.kind in {"applied", "duplicate"} and out.dead_letter is None
                dossier_id = getattr(out.event, "dossier_id", None)
                if dossier_id is not None:
                    applied.add(dossier_id)
            else:
                assert out.dead_letter is not None and out.dead_letter.reason == expected
                if expected != "unroutable":  # counted for metrics; its row has the detail
                    _assert_bounded(out.dead_letter)
            codes[out.dead_letter.code if out.dead_letter else out.kind] += 1
        stats = processor.stats
        assert stats.events_in == len(lines)
        assert stats.valid + stats.duplicates + stats.deadletter == len(lines)
        assert codes["applied"] >= 2_000 and codes["duplicate"] >= 500
        assert set(REASONS) - {"null_value"} <= set(codes), sorted(codes.items())

        # nothing lost: every dead letter is a row with its reason, every dossier a fact
        assert store.count("dead_letters") == stats.deadletter
        rows = store.dead_letters(limit=100_000)
        assert {r["code"] for r in rows} <= set(REASONS)
        assert all(r["reason"] and r["detail"] for r in rows)
        assert store.count("dossier_facts") == len(applied)

        # and the stored facts give back the same states and counters
        fresh = Processor(registry, calendar, catalog, BatchingSink(store, **BIG), store)
        fresh.recover(processor.engines)
        assert len(fresh.sink) == 0  # the stored counters are those the states give
        for source, engine in processor.engines.items():
            again = fresh.engines[source]
            assert dict(again.dossiers) == dict(engine.dossiers), source
            assert dict(again.feedback) == dict(engine.feedback), source
            assert _nonzero(again.counters) == _nonzero(engine.counters), source
    finally:
        store.close()


# ---------------------------------------------------------------- what the fuzzing found
_PAY = t.encode(t.payment("D1", UNIT, transaction_id="tx-1"))
_TOTALS = t.encode(t.reported_totals(UNIT, start="2024-09-15", end="2024-10-14", total=7))


def _set(raw: bytes, field: str, value: bytes) -> bytes:
    obj = orjson.loads(raw)
    return raw_object([(k, value if k == field else dumps(v)) for k, v in obj.items()])


_VERSION = "unsupported_schema_version"
FOUND = (
    ("NaN in an ignored field", _PAY[:-1] + b',"x":NaN}', "not_json"),
    ("-Infinity in an ignored field", _PAY[:-1] + b',"x":[-Infinity]}', "not_json"),
    ("1e400 in an ignored field", _PAY[:-1] + b',"x":{"y":1e400}}', "not_json"),
    ("schema_version true", _set(_PAY, "schema_version", b"true"), _VERSION),
    ("schema_version 1.0", _set(_PAY, "schema_version", b"1.0"), _VERSION),
    ("schema_version 1e0", _set(_PAY, "schema_version", b"1e0"), _VERSION),
    ("schema_version 10^25", _set(_PAY, "schema_version", b"1" + b"0" * 25), _VERSION),
    ("amount over 64 bits", _set(_PAY, "amount_vnd", b"%d" % 2**64), "bad_value:amount_vnd"),
    ("amount over the bound", _set(_PAY, "amount_vnd", b"%d" % (MAX_AMOUNT_VND + 1)),
     "bad_value:amount_vnd"),
    ("reported total over 64 bits", _set(_TOTALS, "received_total", b"%d" % 2**64),
     "bad_value:received_total"),
)  # fmt: skip
"""Payloads the fuzzing found accepted: the amounts crashed the worker's processing, the
non-JSON numbers were valid for the worker but unroutable for ``produce`` (orjson)."""


@pytest.mark.parametrize(("desc", "raw", "reason"), FOUND, ids=[f[0] for f in FOUND])
def test_what_fuzzing_found_is_a_dead_letter(desc: str, raw: bytes, reason: str) -> None:
    with pytest.raises(InvalidEvent) as info:
        parse_event(raw)
    assert info.value.reason == reason, desc


def test_the_words_nan_and_infinity_inside_strings_are_fine() -> None:
    raw = _set(_PAY, "transaction_id", b'"NaN-Infinity"')
    event = parse_event(raw[:-1] + b',"note":"-Infinity"}')
    assert getattr(event, "transaction_id", None) == "NaN-Infinity"


def test_the_largest_amount_and_total_are_stored_and_recovered(
    tmp_path: Path, registry: UnitRegistry, calendar: WorkCalendar
) -> None:
    """The bounds are what the stores hold: at the bound, folded, flushed and read back."""
    catalog = load_catalog()
    store = ClickHouseStore(connect(f"chdb://{tmp_path / 'ch'}"))
    try:
        store.migrate()
        processor = Processor(registry, calendar, catalog, BatchingSink(store, **BIG), store)
        big = _set(_PAY, "amount_vnd", b"%d" % MAX_AMOUNT_VND)
        over = _set(_PAY, "amount_vnd", b"%d" % 2**64)
        totals = _set(_TOTALS, "received_total", b"%d" % MAX_REPORTED_TOTAL)
        handled = processor.handle([
            Message("dossier.submissions.v1", 0, 0, t.encode(t.received("D1", UNIT, fee=True))),
            Message("dossier.payments.v1", 0, 0, big),
            Message("dossier.payments.v1", 0, 1, over),
            Message("unit.reports.v1", 0, 0, totals),
        ])  # fmt: skip
        processor.sink.flush()
        assert [h.outcome.kind for h in handled] == ["applied", "applied", "deadletter", "applied"]
        day = date(2024, 10, 3)
        counters = store.counters(day, day)
        assert counters[(UNIT, day, "payment_amount_online")] == MAX_AMOUNT_VND
        period = (date(2024, 9, 15), date(2024, 10, 14))
        assert store.reported_totals(*period) == {(UNIT, *period): MAX_REPORTED_TOTAL}
        fresh = Processor(registry, calendar, catalog, processor.sink, store)
        fresh.recover(["dossier:0"])
        (payment,) = fresh.engines["dossier:0"].dossiers["D1"].payments
        assert payment.amount_vnd == MAX_AMOUNT_VND
    finally:
        store.close()
