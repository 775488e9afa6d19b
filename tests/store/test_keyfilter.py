"""The key filter: no false negatives, few false positives, and the stores answer as before."""

from __future__ import annotations

import random
from datetime import date, timedelta
from pathlib import Path

import pytest

from dossier_stream.store.counterstore import open_counter_store
from dossier_stream.store.keyfilter import DayFilters, KeyFilter
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


def test_day_filters_drop_the_least_recently_written_days_and_lose_no_key() -> None:
    days = [date(2024, 1, 1) + timedelta(days=n) for n in range(40)]
    keys = [[(f"HP{u}", day, f"c{c}") for u in range(30) for c in range(20)] for day in days]
    bounded = DayFilters(max_bytes=10 * 4_096)  # ten days' first layers
    for some in keys:
        bounded.update(some)
    assert bounded.days == 10 and bounded.nbytes <= 10 * 4_096
    assert all(key in bounded for some in keys for key in some)  # dropped days: "maybe"
    never = [(f"HP{u}", day, "never") for u in range(30) for day in days]
    recent = [key for key in never if key[1] >= days[30]]
    old = [key for key in never if key[1] < days[30]]
    assert sum(key in bounded for key in recent) <= 3  # the kept days answer for themselves
    assert all(key in bounded for key in old)  # a dropped day cannot tell
    assert ("HP0", date(2023, 1, 1), "c0") not in bounded and "HP0" not in bounded  # never written
    bounded.update([("HP0", days[0], "late")])  # a dropped day written again stays unfiltered
    assert bounded.days == 10 and ("HP0", days[0], "other") in bounded
    bounded.update([("HP0", days[30], "again")])  # written again: now the most recent
    bounded.update([("HP0", date(2024, 3, 1), "new")])  # a new day drops the oldest kept
    assert ("HP0", days[30], "again") in bounded and ("HP0", date(2024, 3, 1), "new") in bounded
    assert all(key in bounded for key in never if key[1] == days[31])  # days[31] dropped now
    free = DayFilters()
    for some in keys:
        free.update(some)
    assert free.days == 40 and sum(key in free for key in never) <= 12
    with pytest.raises(ValueError, match="max_bytes"):
        DayFilters(max_bytes=-1)


def test_a_counter_store_past_its_filter_bound_reads_every_old_day_back(
    tmp_path: Path,
) -> None:
    tuning = RocksTuning(key_filter_bytes=3 * 4_096)  # three days' filters
    counters = open_counter_store(tmp_path, "dossier:2", cache_entries=1, tuning=tuning)
    try:
        days = [date(2024, 10, 1) + timedelta(days=n) for n in range(12)]
        keys = [("HP1", day, f"c{n}") for day in days for n in range(40)]
        for n, key in enumerate(keys):
            counters[key] = n + 1
            counters.trim()
        counters.trim()
        assert [counters.get(key, 0) for key in keys] == list(range(1, len(keys) + 1))
        assert counters.get(("HP1", days[0], "never"), 0) == 0  # read from RocksDB: absent
    finally:
        counters.close()
