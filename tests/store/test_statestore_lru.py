"""DossierStore's LRU order: one move per fold.

The fold's ``get`` then ``set`` of one key moves it to the LRU's end once (the
``get`` does; a ``set`` of a key in the LRU keeps its place). What the store
holds must not change, nor, for the fold's ``get`` then ``set``, the order in
which it evicts.
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
from dossier_stream.store.codec import loads_dossier
from dossier_stream.store.statestore import DossierStore

U = "HP-SO-TUPHAP"


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


@pytest.mark.parametrize(("seed", "cache"), [(1, 4), (2, 5), (3, 40)])
def test_lru_order_and_contents_under_random_folds(
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
            assert store._dirty <= store._lru.keys()
        for key, state in model.items():
            assert store[key] == state
        store.flush()
        for key, state in model.items():
            assert on_disk(store, key) == state
