"""The RocksDB dossier store: a MutableMapping that an Engine folds into like a dict.

The store is write-back: a ``set`` only marks the LRU's state dirty; the
tests record the rows put in the store's RocksDB write batches (every state
written is encoded just for that put) to see when a state is written. They
record them at RocksDB's edge, the module's ``WriteBatch`` and ``Rdict``
(looked up at run time), because the store may be compiled (``scripts/compile``):
its calls of the compiled codec are native and a patched ``dumps_dossier``
would not be seen.
"""

from __future__ import annotations

import functools
import random
from pathlib import Path

import pytest
from rocksdict import Rdict, WriteBatch

from dossier_stream.core.counters import open_past_due
from dossier_stream.core.engine import Engine
from dossier_stream.core.events import DossierEvent, parse_event
from dossier_stream.core.lifecycle import DossierState, apply_dossier
from dossier_stream.core.periods import monthly_report
from dossier_stream.core.registry import UnitRegistry
from dossier_stream.core.workdays import WorkCalendar
from dossier_stream.sim import testing as t
from dossier_stream.sim.simulate import SimConfig, Simulation, simulate
from dossier_stream.store import statestore
from dossier_stream.store.codec import loads_dossier
from dossier_stream.store.statestore import (
    DossierStore,
    RocksTuning,
    open_dossier_store,
    store_directory,
)

OCTOBER = monthly_report(2024, 10)
U = "HP-SO-TUPHAP"


class _Batch:
    """A RocksDB ``WriteBatch`` that records the keys put in it and may refuse them."""

    def __init__(self, writes: _Writes, *, raw_mode: bool = False) -> None:
        self.inner, self.writes = WriteBatch(raw_mode=raw_mode), writes

    def put(self, key: bytes, value: bytes) -> None:
        if self.writes.failure is not None:
            raise self.writes.failure
        self.writes.keys.append(key.decode())
        self.inner.put(key, value)


class _Db:
    """A RocksDB handle that unwraps :class:`_Batch` and counts the batches written."""

    def __init__(self, db: Rdict, writes: _Writes) -> None:
        self.db, self.writes = db, writes

    def write(self, batch: _Batch | WriteBatch) -> None:
        self.writes.batches += 1
        self.db.write(batch.inner if isinstance(batch, _Batch) else batch)

    def __getattr__(self, name: str) -> object:
        return getattr(self.db, name)


class _Writes:
    """The dossier ids the stores put in RocksDB, in order, and the batches written."""

    def __init__(self) -> None:
        self.keys: list[str] = []
        self.batches = 0
        self.failure: Exception | None = None  # set: the next put raises it


@pytest.fixture
def writes(monkeypatch: pytest.MonkeyPatch) -> _Writes:
    """What the stores opened from now on write to RocksDB."""
    seen = _Writes()
    monkeypatch.setattr(statestore, "WriteBatch", functools.partial(_Batch, seen))
    monkeypatch.setattr(statestore, "Rdict", lambda *args: _Db(Rdict(*args), seen))
    return seen


@pytest.fixture
def encodes(writes: _Writes) -> list[str]:
    """The dossier ids the store encodes to write them to RocksDB, in order."""
    return writes.keys


def on_disk(store: DossierStore, key: str) -> DossierState | None:
    """What RocksDB itself holds for ``key``, past the LRU."""
    raw = store._db.get(key.encode())
    return None if raw is None else loads_dossier(raw)


@pytest.fixture(scope="module")
def sim(registry: UnitRegistry, calendar: WorkCalendar) -> Simulation:
    return simulate(SimConfig(OCTOBER, seed=11, dossiers=400, feedback=10), registry, calendar)


@pytest.fixture(scope="module")
def reference(sim: Simulation, registry: UnitRegistry, calendar: WorkCalendar) -> Engine:
    """The simulated stream folded by an Engine over a plain dict."""
    engine = Engine(registry, calendar)
    for raw in sim.lines:
        engine.process(raw)
    return engine


def life(dossier_id: str, calendar: WorkCalendar) -> DossierState:
    """A dossier received, paid, paused once and completed (the same state on every call)."""
    d = dossier_id
    events = [
        t.received(d, U, at="2024-10-03T08:15:00+07:00", fee=True, event_id=f"{d}-1"),
        t.payment(
            d,
            U,
            at="2024-10-03T09:00:00+07:00",
            method="cash",
            transaction_id=f"{d}-tx",
            event_id=f"{d}-2",
        ),
        t.supplement_requested(d, U, at="2024-10-04T09:00:00+07:00", event_id=f"{d}-3"),
        t.supplement_received(d, U, at="2024-10-07T09:00:00+07:00", event_id=f"{d}-4"),
        t.digitized(d, U, kind="result", event_id=f"{d}-5"),
        t.completed(d, U, at="2024-10-09T16:00:00+07:00", event_id=f"{d}-6"),
    ]
    state = DossierState(dossier_id)
    for ev in events:
        parsed = parse_event(t.encode(ev))
        assert isinstance(parsed, DossierEvent)
        state = apply_dossier(state, parsed, calendar)
    return state


def test_round_trip_of_simulated_states_through_rocksdb(tmp_path: Path, reference: Engine) -> None:
    states = dict(reference.dossiers)
    assert len(states) > 300
    with DossierStore(tmp_path / "s", cache_entries=8) as store:  # nearly every get decodes
        for key, state in states.items():
            store[key] = state
        assert len(store) == len(states)
        for key, state in states.items():
            assert store[key] == state
        assert len(store._lru) == 8


def test_a_state_with_every_fact_round_trips(tmp_path: Path, calendar: WorkCalendar) -> None:
    state = life("D-FULL", calendar)
    assert state.completion is not None and state.payments and state.supplements
    with DossierStore(tmp_path / "s", cache_entries=1) as store:
        store["D-FULL"] = state
        store["D-OTHER"] = life("D-OTHER", calendar)  # evicts D-FULL from the LRU
        assert "D-FULL" not in store._lru
        assert store["D-FULL"] == state
        assert store.get("D-FULL") == state


def test_overwrite_and_delete_keep_the_count(tmp_path: Path, calendar: WorkCalendar) -> None:
    a, b = DossierState("A"), life("B", calendar)
    with DossierStore(tmp_path / "s", cache_entries=2) as store:
        store["A"] = a
        store["A"] = a
        assert len(store) == 1
        store["B"] = b
        for key in ("C", "D", "E"):  # pushes A and B out of the LRU
            store[key] = DossierState(key)
        assert "A" not in store._lru
        store["A"] = life("A", calendar)  # overwrite of a key only RocksDB holds
        assert len(store) == 5
        assert store.get("Z") is None  # the fold's get of a new dossier ...
        store["Z"] = DossierState("Z")  # ... then its set
        assert len(store) == 6
        del store["B"]  # not in the LRU
        del store["A"]  # in the LRU
        assert len(store) == 4
        assert "A" not in store and "B" not in store
        with pytest.raises(KeyError):
            del store["A"]
        with pytest.raises(KeyError):
            store["B"]
        assert store.get("B") is None
        store["A"] = a  # deleted, then set again
        assert len(store) == 5
        assert sorted(store) == ["A", "C", "D", "E", "Z"]


@pytest.mark.parametrize(("seed", "cache", "keys"), [(1, 4, 25), (2, 4, 25), (3, 40, 90)])
def test_random_operations_agree_with_a_dict(
    tmp_path: Path, calendar: WorkCalendar, seed: int, cache: int, keys: int
) -> None:
    rng = random.Random(seed)
    ids = [f"D{i}" for i in range(keys)]
    full = {d: life(d, calendar) for d in ids[:5]}
    model: dict[str, DossierState] = {}
    with DossierStore(tmp_path / "s", cache_entries=cache) as store:  # 40: evicts 2 at a time
        for _ in range(3_000):
            key, op = rng.choice(ids), rng.random()
            if op < 0.45:  # the Engine's fold (get, then set), or a set alone
                state = full.get(key, DossierState(key)) if rng.random() < 0.5 else None
                store[key] = state or store.get(key) or DossierState(key)
                model[key] = state or model.get(key) or DossierState(key)
            elif op < 0.7:
                assert store.get(key) == model.get(key)
            elif op < 0.88:
                if key in model:
                    del model[key]
                    del store[key]
                else:
                    with pytest.raises(KeyError):
                        del store[key]
            elif op < 0.97:
                assert (key in store) == (key in model)
            elif op < 0.985:
                store.flush()
            else:
                assert list(store) == sorted(model)
            assert len(store) == len(model)
            assert len(store._lru) <= cache
            assert store._dirty <= store._lru.keys()
        assert dict(store.items()) == model


def test_get_default_and_contains(tmp_path: Path) -> None:
    a = DossierState("A")
    with DossierStore(tmp_path / "s") as store:
        assert store.get("A", a) is a
        assert store.get("A") is None
        assert "A" not in store
        assert 3 not in store
        store["A"] = a
        assert "A" in store
        assert store.get("A", DossierState("X")) == a


def test_lru_eviction_returns_the_latest_state(tmp_path: Path, calendar: WorkCalendar) -> None:
    with DossierStore(tmp_path / "s", cache_entries=3) as store:
        for i in range(20):
            store[f"D{i}"] = DossierState(f"D{i}")
        store["D0"] = life("D0", calendar)  # D0 back in the LRU, its latest state
        for i in range(1, 20):
            assert store[f"D{i}"] == DossierState(f"D{i}")  # evicts D0 again
        assert "D0" not in store._lru
        assert store["D0"] == life("D0", calendar)
        assert len(store._lru) == 3
        assert len(store) == 20


def test_values_items_and_keys(tmp_path: Path, reference: Engine) -> None:
    states = dict(reference.dossiers)
    with DossierStore(tmp_path / "s", cache_entries=50) as store:
        store.update(states)
        assert set(store) == set(states)
        assert set(store.keys()) == set(states)
        assert dict(store.items()) == states
        values = list(store.values())
        assert len(values) == len(states)
        assert sorted(values, key=lambda s: s.dossier_id) == sorted(
            states.values(), key=lambda s: s.dossier_id
        )
        some = next(iter(states.values()))
        assert some in store.values()
        assert (some.dossier_id, some) in store.items()
        assert open_past_due(store.values(), OCTOBER.ends_at) == open_past_due(
            states.values(), OCTOBER.ends_at
        )


def test_engine_over_the_store_matches_engine_over_a_dict(
    tmp_path: Path,
    sim: Simulation,
    reference: Engine,
    registry: UnitRegistry,
    calendar: WorkCalendar,
    encodes: list[str],
) -> None:
    # 50 decoded states for ~400 dossiers: the LRU evicts (and writes back) constantly
    with open_dossier_store(tmp_path, "dossier:0", cache_entries=50) as store:
        engine = Engine(registry, calendar, dossiers=store)
        twin = Engine(registry, calendar)  # over a dict, in step
        for raw in sim.lines:
            engine.process(raw)
            twin.process(raw)
            assert len(store) == len(twin.dossiers)
            assert len(store._lru) <= 50
        assert len(encodes) > len(reference.dossiers)  # evicted dirty states were written
        assert len(encodes) < len(sim.lines)  # ... but not once per event
        assert store._dirty  # the latest states of some dossiers are only in the LRU
        assert engine.counters == reference.counters
        assert engine.stats == reference.stats
        assert len(store) == len(reference.dossiers)
        assert dict(store.items()) == dict(reference.dossiers)
        assert not store._dirty  # iteration flushed them
        assert engine.report(OCTOBER) == reference.report(OCTOBER)
        assert all(on_disk(store, k) == v for k, v in reference.dossiers.items())


def test_clear(tmp_path: Path) -> None:
    with DossierStore(tmp_path / "s") as store:
        for i in range(10):
            store[f"Đ-{i}"] = DossierState(f"Đ-{i}")  # non-ASCII ids are UTF-8 keys
        store.clear()
        assert len(store) == 0
        assert list(store) == []
        assert store.get("Đ-1") is None
        store["Đ-1"] = DossierState("Đ-1")
        assert list(store) == ["Đ-1"]


def test_open_dossier_store_starts_empty_every_time(tmp_path: Path) -> None:
    path = store_directory(tmp_path, "dossier:3")
    assert path == tmp_path / "dossier-3"
    store = open_dossier_store(tmp_path, "dossier:3")
    store["A"] = DossierState("A")
    store.close()
    store.close()  # idempotent
    assert path.is_dir()
    with DossierStore(path) as kept:  # the class itself keeps and counts what is there
        assert len(kept) == 1
        assert kept["A"] == DossierState("A")
    with open_dossier_store(tmp_path, "dossier:3") as fresh:  # the factory never does
        assert len(fresh) == 0
        assert "A" not in fresh
        assert fresh.path == path


def test_destroy_removes_the_directory(tmp_path: Path) -> None:
    store = open_dossier_store(tmp_path / "stores", "dossier:1")
    store["A"] = DossierState("A")
    assert "1 states" in repr(store)
    store.destroy()
    assert not store.path.exists()


def test_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cache_entries"):
        DossierStore(tmp_path / "a", cache_entries=0)
    with pytest.raises(ValueError, match="flush_batch"):
        DossierStore(tmp_path / "f", flush_batch=0)
    with pytest.raises(ValueError, match="compression"):
        DossierStore(tmp_path / "b", tuning=RocksTuning(compression="brotli"))
    with DossierStore(tmp_path / "c", tuning=RocksTuning(compression="zstd")) as store:
        store["A"] = DossierState("A")
        assert store["A"] == DossierState("A")


# ------------------------------------------------------------ write-back
def test_a_set_is_written_only_when_the_lru_evicts_it(tmp_path: Path, encodes: list[str]) -> None:
    with DossierStore(tmp_path / "s", cache_entries=32) as store:  # evicts 2 at a time
        for i in range(32):
            store[f"K{i:02d}"] = DossierState(f"K{i:02d}")
        assert store.get("K00") is not None  # the fold's get moves K00 last ...
        store["K00"] = DossierState("K00")  # ... and its set, an overwrite, does not encode
        assert encodes == []
        assert on_disk(store, "K00") is None and len(store) == 32
        store["K32"] = DossierState("K32")  # over the size: K01 and K02 are the oldest
        assert encodes == ["K01", "K02"]
        assert on_disk(store, "K01") == DossierState("K01")
        assert "K01" not in store._lru and "K01" not in store._dirty
        assert len(store._lru) == 31 and len(store) == 33
        assert store["K01"] == DossierState("K01")  # read back from RocksDB, clean ...
        assert "K01" in store._lru and "K01" not in store._dirty
        assert encodes == ["K01", "K02"]  # ... and the LRU had room: nothing evicted


def test_a_clean_eviction_does_not_encode(tmp_path: Path, encodes: list[str]) -> None:
    keys = [f"K{i}" for i in range(8)]
    with DossierStore(tmp_path / "s", cache_entries=4) as store:
        for key in keys:
            store[key] = DossierState(key)
        assert encodes == keys[:4]  # evicted dirty
        assert store.flush() == 4  # the rest
        assert sorted(encodes) == keys and not store._dirty
        assert store.flush() == 0
        for _ in range(3):
            for key in keys:  # every get misses, decodes, evicts a clean state
                assert store[key] == DossierState(key)
        assert len(encodes) == 8
        store["K0"] = DossierState("K0")  # not in the LRU (K4..K7 are): dirty again
        for key in keys[4:]:
            store.get(key)
        assert encodes[8:] == ["K0"]


def test_overwrite_of_a_stored_key_writes_the_latest(
    tmp_path: Path, calendar: WorkCalendar, encodes: list[str]
) -> None:
    with DossierStore(tmp_path / "s", cache_entries=2) as store:
        store["A"] = DossierState("A")
        store["B"] = DossierState("B")
        store["C"] = DossierState("C")  # writes A
        assert on_disk(store, "A") == DossierState("A")
        store["A"] = life("A", calendar)  # RocksDB only: set without a get
        assert on_disk(store, "A") == DossierState("A")  # older on disk, latest in the LRU
        assert store["A"] == life("A", calendar)
        assert len(store) == 3
        store["D"] = DossierState("D")
        store["E"] = DossierState("E")  # A evicted: written again
        assert "A" not in store._lru
        assert on_disk(store, "A") == life("A", calendar)
        assert store["A"] == life("A", calendar)
        assert encodes.count("A") == 2


def test_len_under_every_path(tmp_path: Path, calendar: WorkCalendar) -> None:
    def s(key: str) -> DossierState:
        return DossierState(key)

    with DossierStore(tmp_path / "s", cache_entries=2) as store:
        store["new"] = s("new")  # new, no get before
        assert len(store) == 1
        assert store.get("fold") is None
        store["fold"] = s("fold")  # new, after a get that missed
        assert len(store) == 2
        store["fold"] = life("fold", calendar)  # in the LRU, dirty
        assert len(store) == 2
        store["x"] = s("x")  # evicts "new" (written)
        assert "new" not in store._lru and len(store) == 3
        store["new"] = s("new")  # RocksDB only, set without a get
        assert len(store) == 3
        store.flush()
        store["new"] = life("new", calendar)  # in the LRU, clean
        assert len(store) == 3
        store["y"] = s("y")
        store["z"] = s("z")  # "new" and "x" only in RocksDB now
        assert store.get("x") == s("x")
        store["x"] = life("x", calendar)  # after a get that decoded it
        assert len(store) == 5
        assert store._dirty == {"x", "z"}
        del store["z"]  # dirty, never written
        assert on_disk(store, "z") is None and len(store) == 4
        del store["x"]  # dirty, an older state on disk
        assert on_disk(store, "x") is None and len(store) == 3
        assert store.get("new") is not None  # clean in the LRU
        del store["new"]
        assert len(store) == 2
        assert set(store._lru) == set()  # "fold" and "y" only in RocksDB
        del store["fold"]
        assert len(store) == 1
        for key in ("z", "x", "new", "fold", "nothing"):
            with pytest.raises(KeyError):
                del store[key]
            assert key not in store
        assert len(store) == 1 and list(store) == ["y"]
        store["x"] = s("x")  # deleted, then set again
        assert len(store) == 2
        store.clear()
        assert len(store) == 0 and not store._dirty and list(store) == []


def test_iteration_merges_dirty_and_stored_states(tmp_path: Path, calendar: WorkCalendar) -> None:
    model = {f"D{i:02d}": DossierState(f"D{i:02d}") for i in range(20)}
    with DossierStore(tmp_path / "s", cache_entries=6) as store:
        store.update(model)  # 14 or so written, the last ones dirty only
        for key in ("D00", "D19"):  # a stored key and a dirty one, overwritten
            model[key] = life(key, calendar)
            store[key] = model[key]
        store["NEW"] = model["NEW"] = DossierState("NEW")
        assert store._dirty and any(on_disk(store, k) is None for k in store._dirty)
        keys = list(store)
        assert keys == sorted(model) and len(keys) == len(set(keys)) == len(store)
        assert not store._dirty
        store["D05"] = model["D05"] = life("D05", calendar)  # dirty again, before items
        items = list(store.items())
        assert [k for k, _ in items] == sorted(model)
        assert dict(items) == model
        store["D10"] = model["D10"] = life("D10", calendar)
        assert sorted(store.values(), key=lambda v: v.dossier_id) == [
            model[k] for k in sorted(model)
        ]
        assert dict(store) == model


def test_close_writes_back_and_destroy_does_not(tmp_path: Path, encodes: list[str]) -> None:
    path = tmp_path / "kept"
    with DossierStore(path, cache_entries=100) as store:
        for i in range(10):
            store[f"D{i}"] = DossierState(f"D{i}")
        assert encodes == [] and "10 dirty" in repr(store)
    assert len(encodes) == 10
    with DossierStore(path) as reopened:
        assert len(reopened) == 10
        assert reopened["D3"] == DossierState("D3")
    gone = open_dossier_store(tmp_path, "gone")
    gone["A"] = DossierState("A")
    gone.destroy()
    assert len(encodes) == 10 and not gone.path.exists()


def test_flush_writes_in_batches(tmp_path: Path, writes: _Writes) -> None:
    with DossierStore(tmp_path / "s", cache_entries=50, flush_batch=3) as store:
        for i in range(10):
            store[f"D{i}"] = DossierState(f"D{i}")
        assert store.flush() == 10
        assert writes.batches == 4  # 3 + 3 + 3 + 1
        assert sorted(writes.keys) == sorted(f"D{i}" for i in range(10))
        assert all(on_disk(store, f"D{i}") == DossierState(f"D{i}") for i in range(10))
        assert len(store._lru) == 10 and not store._dirty


def test_a_write_failure_on_eviction_loses_nothing(tmp_path: Path, writes: _Writes) -> None:
    """A failure while the evicted states are encoded and put in the batch loses nothing."""
    with DossierStore(tmp_path / "s", cache_entries=3) as store:
        for key in "ABC":
            store[key] = DossierState(key)
        writes.failure = RuntimeError("write refused")
        with pytest.raises(RuntimeError, match="write refused"):
            store["D"] = DossierState("D")
        assert writes.keys == []
        assert len(store) == 4 and store["A"] == DossierState("A")  # all still there
        writes.failure = None
        store["E"] = DossierState("E")
        assert len(store._lru) == 3
        assert dict(store.items()) == {k: DossierState(k) for k in "ABCDE"}
