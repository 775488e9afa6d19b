"""The key filter: no false negatives, few false positives, and the stores answer as before."""

from __future__ import annotations

import random
from datetime import date
from pathlib import Path

import pytest

from dossier_stream.store.counterstore import open_counter_store
from dossier_stream.store.keyfilter import KeyFilter
from dossier_stream.store.statestore import RocksTuning, open_dossier_store


def test_every_key_added_is_found_across_layers() -> None:
    kf = KeyFilter(capacity=64)
    keys = [f"HP-{n}" for n in range(5_000)] + [
        ("u", date(2024, 10, n % 28 + 1), f"c{n}") for n in range(5_000)
    ]
    for key in keys:
        kf.add(key)
    assert all(key in kf for key in keys)
    assert repr(kf).startswith("KeyFilter(")
    assert kf.nbytes < 10 * len(keys)  # about 10 bits per key, plus the layers' rounding


def test_update_sets_the_bits_add_sets() -> None:
    keys = [f"HP-{n}" for n in range(3_000)]
    one_by_one, in_bulk = KeyFilter(capacity=64), KeyFilter(capacity=64)
    for key in keys:
        one_by_one.add(key)
    in_bulk.update(keys[:100])
    in_bulk.update(keys[100:])
    assert repr(in_bulk) == repr(one_by_one)  # the same layers
    assert all(key in in_bulk for key in keys)
    probes = [f"out-{n}" for n in range(3_000)]
    assert [p in in_bulk for p in probes] == [p in one_by_one for p in probes]


def test_false_positives_are_rare() -> None:
    kf = KeyFilter(capacity=1_000, keys=(f"in-{n}" for n in range(20_000)))
    rng = random.Random(7)
    probes = [f"out-{rng.random()}" for _ in range(20_000)]
    assert sum(p in kf for p in probes) < 0.05 * len(probes)


def test_stores_find_what_they_wrote_and_reopen(tmp_path: Path) -> None:

    counters = open_counter_store(tmp_path, "dossier:0", cache_entries=2)
    keys = [("HP1", date(2024, 10, 1 + n % 3), f"c{n}") for n in range(50)]
    for n, key in enumerate(keys):
        counters[key] = n + 1
        counters.trim()
    assert [counters.get(key, 0) for key in keys] == list(range(1, 51))
    assert counters.get(("HP1", date(2024, 10, 1), "never"), 0) == 0
    counters.close()
    again = type(counters)(counters.path, cache_entries=2)  # the filter rebuilt from RocksDB
    assert [again.get(key, 0) for key in keys] == list(range(1, 51))
    again.close()

    states = open_dossier_store(tmp_path, "dossier:0", cache_entries=2)
    assert "nobody" not in states and states.get("nobody") is None
    assert len(states) == 0


def test_max_bytes_stops_the_layers_and_loses_no_key() -> None:
    keys = [f"HP-{n}" for n in range(20_000)]
    bounded = KeyFilter(capacity=256, keys=keys, max_bytes=4_096)
    free = KeyFilter(capacity=256, keys=keys)
    assert bounded.nbytes <= 4_096 < free.nbytes
    assert all(key in bounded for key in keys)  # the last layer took the keys past the bound
    rng = random.Random(3)
    probes = [f"out-{rng.random()}" for _ in range(5_000)]
    assert sum(p in bounded for p in probes) > sum(p in free for p in probes)  # more "maybe"
    tiny = KeyFilter(capacity=1 << 18, keys=keys[:10], max_bytes=1)  # the first layer is made
    assert tiny.nbytes > 1
    assert all(key in tiny for key in keys[:10])
    with pytest.raises(ValueError, match="max_bytes"):
        KeyFilter(max_bytes=-1)


def test_bounded_stores_answer_as_before(tmp_path: Path) -> None:
    tuning = RocksTuning(key_filter_bytes=1)  # only the first layer: every key past it is "maybe"
    states = open_dossier_store(tmp_path, "dossier:1", cache_entries=2, tuning=tuning)
    counters = open_counter_store(tmp_path, "dossier:1", cache_entries=2, tuning=tuning)
    try:
        keys = [("HP1", date(2024, 10, 1 + n % 3), f"c{n}") for n in range(300)]
        for n, key in enumerate(keys):
            counters[key] = n + 1
        counters.trim()
        assert [counters.get(k, 0) for k in keys] == list(range(1, 301))
        assert counters.get(("HP1", date(2024, 10, 1), "absent"), 0) == 0
        assert "absent" not in states
    finally:
        states.close()
        counters.close()
