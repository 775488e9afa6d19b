"""DossierStore's fact rows and its LRU order: one encoding per state, one move per fold.

:meth:`DossierStore.fact` builds a state's ``dossier_facts`` row and keeps
its encoding for the write-back of that very state; the fold's ``get`` then
``set`` of one key moves it to the LRU's end once (the ``get`` does; a ``set``
of a key in the LRU keeps its place). What the store holds must not change,
nor, for the fold's ``get`` then ``set``, the order in which it evicts.
"""

from __future__ import annotations

import random
from collections import OrderedDict
from pathlib import Path

import pytest

from dossier_stream.core.events import DossierEvent, parse_event
from dossier_stream.core.lifecycle import DossierState, apply_dossier
from dossier_stream.core.workdays import WorkCalendar
from dossier_stream.sim import testing as t
from dossier_stream.store import statestore
from dossier_stream.store.codec import dossier_fact, dumps_dossier, loads_dossier
from dossier_stream.store.statestore import DossierStore

U = "HP-SO-TUPHAP"


@pytest.fixture
def encodes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The dossier ids the store encodes itself (to write them to RocksDB), in order."""
    seen: list[str] = []

    def counting(state: DossierState) -> bytes:
        seen.append(state.dossier_id)
        return dumps_dossier(state)

    monkeypatch.setattr(statestore, "dumps_dossier", counting)
    return seen


def on_disk(store: DossierStore, key: str) -> DossierState | None:
    """What RocksDB itself holds for ``key``, past the LRU."""
    raw = store._db.get(key.encode())
    return None if raw is None else loads_dossier(raw)


def received(dossier_id: str, calendar: WorkCalendar, day: int = 3) -> DossierState:
    """A dossier received on October ``day`` (a new state object on every call)."""
    ev = t.received(dossier_id, U, at=f"2024-10-{day:02d}T08:15:00+07:00", event_id=dossier_id)
    parsed = parse_event(t.encode(ev))
    assert isinstance(parsed, DossierEvent)
    return apply_dossier(DossierState(dossier_id), parsed, calendar)


def fill(store: DossierStore) -> list[str]:
    """Set one more key than the LRU holds (it evicts from then on); their ids."""
    keys = [f"F{i}" for i in range(store.cache_entries + 1)]
    for key in keys:
        store[key] = DossierState(key)
    return keys


def test_no_text_is_kept_before_the_lru_is_full(tmp_path: Path, calendar: WorkCalendar) -> None:
    with DossierStore(tmp_path / "s", cache_entries=4) as store:
        for i in range(4):
            store[f"K{i}"] = state = received(f"K{i}", calendar)
            store.fact(f"K{i}", state, "dossier:0")
        assert not store._encoded  # nothing to write back yet: no memory spent on it
        store["K4"] = state = received("K4", calendar)  # the first eviction
        store.fact("K4", state, "dossier:0")
        assert list(store._encoded) == ["K4"]


def test_fact_is_the_codecs_row_and_its_bytes_are_written_back(
    tmp_path: Path, calendar: WorkCalendar, encodes: list[str]
) -> None:
    with DossierStore(tmp_path / "s", cache_entries=4) as store:
        fillers = fill(store)
        states = {f"K{i}": received(f"K{i}", calendar, 3 + i) for i in range(4)}
        for key, state in states.items():
            store[key] = state
            assert store.fact(key, state, "dossier:0") == dossier_fact(state, "dossier:0")
        store["K9"] = DossierState("K9")  # evicts K0: written from its fact row's text
        assert encodes == fillers
        assert on_disk(store, "K0") == states["K0"]
        assert "K0" not in store._encoded
        assert store.flush() == 4  # K1..K3 from their rows, K9 (no row) encoded
        assert encodes == [*fillers, "K9"]
        assert not store._encoded
        for key, state in states.items():
            assert on_disk(store, key) == state


def test_a_row_of_an_older_state_is_not_written_back(
    tmp_path: Path, calendar: WorkCalendar, encodes: list[str]
) -> None:
    with DossierStore(tmp_path / "s", cache_entries=2) as store:
        fillers = fill(store)
        old = received("A", calendar)
        store["A"] = old
        store.fact("A", old, "dossier:0")
        new = received("A", calendar, 9)  # equal content would hide a stale write: it differs
        store["A"] = new  # set after the row: the kept text is stale
        store.fact("A", old, "dossier:0")  # a row of an older state keeps nothing
        assert store._encoded["A"][0] is old
        store["B"] = DossierState("B")
        store["C"] = DossierState("C")  # evicts A
        assert encodes == [*fillers, "A"]
        assert on_disk(store, "A") == new


def test_a_row_of_a_clean_or_absent_state_keeps_nothing(
    tmp_path: Path, calendar: WorkCalendar, encodes: list[str]
) -> None:
    with DossierStore(tmp_path / "s", cache_entries=8) as store:
        fillers = fill(store)
        a = received("A", calendar)
        store["A"] = a
        store.flush()
        assert sorted(encodes) == sorted([*fillers, "A"])  # evicted or flushed: all written
        store.fact("A", a, "dossier:0")  # clean: already written
        store.fact("Z", DossierState("Z"), "dossier:0")  # not in the store
        assert not store._encoded
        store["B"] = b = received("B", calendar)
        store.fact("B", b, "dossier:0")
        del store["B"]
        assert not store._encoded
        store["C"] = c = received("C", calendar)
        store.fact("C", c, "dossier:0")
        store.clear()
        assert not store._encoded and len(store) == 0


@pytest.mark.parametrize(("seed", "cache"), [(1, 4), (2, 5), (3, 40)])
def test_lru_order_and_contents_under_random_folds_and_rows(
    tmp_path: Path, calendar: WorkCalendar, seed: int, cache: int
) -> None:
    """The LRU's order is a model's where a hit moves the key last, and a set of a key not held."""
    rng = random.Random(seed)
    ids = [f"D{i}" for i in range(3 * cache)]
    model: dict[str, DossierState] = {}
    order: OrderedDict[str, None] = OrderedDict()  # the keys the LRU should hold, oldest first
    with DossierStore(tmp_path / "s", cache_entries=cache) as store:
        group = store._group

        def touch(key: str) -> None:
            order[key] = None
            order.move_to_end(key)
            if len(order) > cache:  # the store evicts its oldest `group` at once
                for _ in range(group):
                    order.popitem(last=False)

        for _ in range(2_000):
            key, op = rng.choice(ids), rng.random()
            if op < 0.5:  # the Engine's fold: get, then set a new state object
                before = store.get(key)
                assert before == model.get(key)
                if before is not None or key in order:
                    touch(key)
                if rng.random() < 0.3:  # another key read in between: the set leaves key there
                    other = rng.choice(ids)
                    if store.get(other) is not None:
                        touch(other)
                state = received(key, calendar, rng.randint(1, 28))
                if key not in order:  # a new key joins the end; a held one keeps its place
                    touch(key)
                store[key] = model[key] = state
                if rng.random() < 0.7:  # the flush's row of the latest state
                    assert store.fact(key, state, "dossier:0")[-1] == dumps_dossier(state).decode()
            elif op < 0.75:
                got = store.get(key)
                assert got == model.get(key)
                if got is not None:
                    touch(key)
            elif op < 0.85 and key in model:
                del model[key], store[key]
                order.pop(key, None)
            elif op < 0.9:
                store.flush()
            assert list(store._lru) == list(order)
            assert store._encoded.keys() <= store._dirty <= store._lru.keys()
        for key, state in model.items():
            assert store[key] == state
        store.flush()
        for key, state in model.items():
            assert on_disk(store, key) == state
