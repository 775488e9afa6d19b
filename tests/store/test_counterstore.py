"""The RocksDB counter store: a MutableMapping of totals that behaves as the engine's dict.

Only the totals touched since the last ``trim`` stay in memory; a total that
left is read back from RocksDB exactly.
"""

from __future__ import annotations

import functools
import random
from datetime import date, timedelta
from pathlib import Path

import pytest
from rocksdict import Rdict, WriteBatch

from dossier_stream.core.counters import CounterKey, accumulate
from dossier_stream.core.engine import DeadLetter, Engine
from dossier_stream.core.periods import monthly_report
from dossier_stream.core.registry import UnitRegistry
from dossier_stream.core.topics import load_catalog
from dossier_stream.core.workdays import WorkCalendar
from dossier_stream.sim.simulate import SimConfig, simulate
from dossier_stream.store import counterstore, statestore
from dossier_stream.store.batching import BatchingSink
from dossier_stream.store.counterstore import CounterStore, open_counter_store
from dossier_stream.store.sink import ClickHouseStore, connect
from dossier_stream.store.statestore import store_directory
from dossier_stream.stream.processor import Message, Processor

OCTOBER = monthly_report(2024, 10)
DAY = date(2024, 10, 1)


def key(n: int) -> CounterKey:
    return (f"UNIT-{n % 7}", DAY + timedelta(days=n % 11), f"c{n % 5}")


def test_random_accumulation_agrees_with_a_dict_across_trims(tmp_path: Path) -> None:
    rng = random.Random(7)
    store = CounterStore(tmp_path / "c", cache_entries=10)
    twin: dict[CounterKey, int] = {}
    for step in range(3_000):
        delta = {key(rng.randrange(400)): rng.choice((-2, -1, 1, 1, 3)) for _ in range(4)}
        accumulate(store, delta)
        accumulate(twin, delta)
        for k in delta:  # what the processor hands to the sink
            assert store.get(k, 0) == twin.get(k, 0)
        if step % 7 == 0:
            store.trim()
            assert store.cached <= 10
    store.trim()
    assert store.cached == 10
    assert len(store) == len(twin)
    assert dict(store.items()) == twin
    assert 0 not in dict(store.items()).values()  # a total at 0 is absent, as in the dict
    assert all(store.get(key(n), 0) == twin.get(key(n), 0) for n in range(400))
    store.destroy()


class _Batch:
    """A RocksDB ``WriteBatch`` that records the keys put or deleted in it."""

    def __init__(self, writes: list[list[CounterKey]], *, raw_mode: bool = False) -> None:
        self.inner, self.keys = WriteBatch(raw_mode=raw_mode), list[CounterKey]()
        writes.append(self.keys)

    def put(self, raw: bytes, value: bytes) -> None:
        self.keys.append(_key_of(raw))
        self.inner.put(raw, value)

    def delete(self, raw: bytes) -> None:
        self.keys.append(_key_of(raw))
        self.inner.delete(raw)


class _Db:
    """A RocksDB handle that writes a :class:`_Batch`'s batch."""

    def __init__(self, db: Rdict) -> None:
        self.db = db

    def write(self, batch: _Batch | WriteBatch) -> None:
        self.db.write(batch.inner if isinstance(batch, _Batch) else batch)

    def __getattr__(self, name: str) -> object:
        return getattr(self.db, name)


def _key_of(raw: bytes) -> CounterKey:
    """A counter key from its RocksDB row key (``unit␟day's ordinal␟counter``)."""
    unit, ordinal, name = raw.decode().split("\x1f")
    return unit, date.fromordinal(int(ordinal)), name


@pytest.fixture
def writes(monkeypatch: pytest.MonkeyPatch) -> list[list[CounterKey]]:
    """The keys of each batch the counter stores opened from now on write to RocksDB.

    Recorded at RocksDB's edge (the modules' ``WriteBatch`` and ``Rdict``, looked up
    at run time): the store may be compiled (``scripts/compile``), and a compiled
    class can neither be subclassed nor have its methods replaced.
    """
    seen: list[list[CounterKey]] = []
    monkeypatch.setattr(counterstore, "WriteBatch", functools.partial(_Batch, seen))
    monkeypatch.setattr(statestore, "Rdict", lambda *args: _Db(Rdict(*args)))
    return seen


def test_trim_drops_the_totals_least_recently_added_to(
    tmp_path: Path, writes: list[list[CounterKey]]
) -> None:
    store = CounterStore(tmp_path / "c", cache_entries=2)
    a, b, c = key(1), key(2), key(3)
    for k in (a, b, c, a):  # a entered first, but was added to last
        accumulate(store, {k: 1})
    assert store.get(b, 0) == 1  # a read does not make a total recent
    assert store.trim() == 1
    assert writes == [[b]]
    accumulate(store, {c: 1})
    accumulate(store, {b: 2})  # read back from RocksDB, then the most recent
    assert store.trim() == 1
    assert writes == [[b], [a]]
    assert {k: store.get(k, 0) for k in (a, b, c)} == {a: 2, b: 3, c: 2}
    accumulate(store, {a: -2})  # reaches 0: absent, as in a dict
    assert a not in store and store.get(a) is None
    store.destroy()


def test_zero_deletes_and_the_mapping_protocol(tmp_path: Path) -> None:
    store = CounterStore(tmp_path / "c", cache_entries=1)
    k, other = key(1), key(2)
    assert store.get(k) is None
    assert store.get(k, 0) == 0
    assert k not in store
    with pytest.raises(KeyError):
        store[k]
    with pytest.raises(KeyError):
        del store[k]
    store[k] = 5
    store[other] = -3
    assert store.trim() == 1  # the oldest (k) went to RocksDB
    assert store[k] == 5 and k in store
    assert store.pop(k) == 5
    assert store.pop(k, "gone") == "gone"
    store.trim()
    store.trim()
    assert k not in store  # its deletion reached RocksDB
    assert dict(store.items()) == {other: -3}
    del store[other]
    assert len(store) == 0
    store[k] = 1
    store.clear()
    assert len(store) == 0 and store.cached == 0
    not_a_key: object = "not a key"
    assert not_a_key not in store
    store.close()
    store.close()  # idempotent
    with pytest.raises(ValueError, match="at least 1"):
        CounterStore(tmp_path / "d", cache_entries=0)


def test_close_writes_the_cache_and_reopening_reads_it(tmp_path: Path) -> None:
    with_cache = CounterStore(tmp_path / "c", cache_entries=100)
    with_cache[key(3)] = 42
    with_cache.close()
    again = CounterStore(tmp_path / "c")
    assert again.get(key(3)) == 42  # its day is known from what the directory holds
    assert dict(again.items()) == {key(3): 42}
    again.close()
    fresh = open_counter_store(tmp_path, "dossier:0")
    assert fresh.path == store_directory(tmp_path, "counters:dossier:0")
    fresh[key(3)] = 1
    fresh.close()
    assert len(open_counter_store(tmp_path, "dossier:0")) == 0  # a fresh store every time


def test_engine_over_the_store_matches_engine_over_a_dict(
    tmp_path: Path, registry: UnitRegistry, calendar: WorkCalendar
) -> None:
    sim = simulate(SimConfig(OCTOBER, seed=5, dossiers=300, feedback=10), registry, calendar)
    store = open_counter_store(tmp_path, "dossier:0", cache_entries=20)
    engine = Engine(registry, calendar, counters=store)
    twin = Engine(registry, calendar)
    for n, raw in enumerate(sim.lines):
        out, twin_out = engine.process(raw), twin.process(raw)
        assert out.delta == twin_out.delta
        assert all(store.get(k, 0) == twin.counters.get(k, 0) for k in out.delta)
        if n % 50 == 0:
            store.trim()
            assert store.cached <= 20
    assert len(twin.counters) > 100  # many more keys than the cache holds
    assert engine.counters == twin.counters
    assert engine.report(OCTOBER) == twin.report(OCTOBER)
    store.destroy()
    assert not store.path.exists()


def test_processor_over_counter_stores_writes_and_recovers_the_replays_totals(
    tmp_path: Path, registry: UnitRegistry, calendar: WorkCalendar
) -> None:
    catalog = load_catalog()
    sim = simulate(SimConfig(OCTOBER, seed=9, dossiers=250, feedback=20), registry, calendar)
    twin = Engine(registry, calendar, catalog=catalog)  # the in-memory replay
    messages = []
    for n, raw in enumerate(sim.lines):
        event = twin.parse(raw)
        topic = (
            "dossier.submissions.v1"
            if isinstance(event, DeadLetter)
            else catalog.topic_for(event.event_type)
        )
        messages.append(Message(topic, 0, n, raw))
        twin.process(raw, topic=topic, partition=0)
    store = ClickHouseStore(connect(f"chdb://{tmp_path / 'ch'}"))
    try:
        store.migrate()
        sink = BatchingSink(store, max_rows=100_000, interval_s=3600.0)

        def counters(source: str) -> CounterStore:
            return open_counter_store(tmp_path / "c", source, cache_entries=15)

        proc = Processor(registry, calendar, catalog, sink, store, counter_store=counters)
        for start in range(0, len(messages), 97):
            proc.handle(messages[start : start + 97])
            sink.flush()
            assert all(e.counters.cached <= 15 for e in proc.engines.values())  # type: ignore[attr-defined]
        expected = {k: v for k, v in twin.counters.items() if OCTOBER.start <= k[1] <= OCTOBER.end}
        assert len(expected) > 200
        assert store.counters(OCTOBER.start, OCTOBER.end) == expected
        held = {s: dict(e.counters.items()) for s, e in proc.engines.items()}
        proc.close()
        fresh = Processor(registry, calendar, catalog, sink, store, counter_store=counters)
        fresh.recover(list(held))
        assert len(sink) == 0  # recomputed from the stored states: nothing to rewrite
        assert {s: dict(e.counters.items()) for s, e in fresh.engines.items()} == held
        fresh.close()
    finally:
        store.close()
