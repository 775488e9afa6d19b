"""RocksDB options of the stores: the compaction style (:class:`RocksTuning`, the setting)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from dossier_stream.settings import Settings
from dossier_stream.store.statestore import RocksTuning, open_rocks
from dossier_stream.stream.runner import rocks_tunings


@pytest.mark.parametrize("compaction", ["level", "universal"])
def test_both_compaction_styles_store_and_read(tmp_path: Path, compaction: str) -> None:
    db = open_rocks(tmp_path / compaction, RocksTuning(compaction=compaction))
    try:
        for i in range(2_000):
            db.put(f"k{i:05}".encode(), f"v{i}".encode())
        db.flush()
        assert db.get(b"k01234") == b"v1234"
        assert db.get(b"absent") is None
        options = (tmp_path / compaction).glob("OPTIONS-*")
        text = "".join(p.read_text() for p in options)
        expected = (
            "kCompactionStyleUniversal" if compaction == "universal" else "kCompactionStyleLevel"
        )
        assert f"compaction_style={expected}" in text
    finally:
        db.close()


def test_an_unknown_compaction_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="compaction"):
        open_rocks(tmp_path / "x", RocksTuning(compaction="fifo"))


@pytest.mark.parametrize("in_cache", [True, False])
def test_index_and_filters_in_the_block_cache_or_beside_it(tmp_path: Path, in_cache: bool) -> None:
    tuning = RocksTuning(index_in_cache=in_cache, block_cache_bytes=1 << 20)
    db = open_rocks(tmp_path / str(in_cache), tuning)
    try:
        for i in range(20_000):
            db.put(f"k{i:06}".encode(), f"v{i}".encode() * 8)
        db.flush()
        assert db.get(b"k012345") == b"v12345" * 8
        assert db.get(b"absent") is None
        readers = int(db.property_int_value("rocksdb.estimate-table-readers-mem") or 0)
        options = "".join(p.read_text() for p in (tmp_path / str(in_cache)).glob("OPTIONS-*"))
        assert f"cache_index_and_filter_blocks={str(in_cache).lower()}" in options
        if in_cache:
            assert "index_type=kTwoLevelIndexSearch" in options
            assert "partition_filters=true" in options
        else:
            assert readers > 0  # the whole index and filter, outside the cache
    finally:
        db.close()


def _options_text(path: Path) -> str:
    return "".join(p.read_text() for p in path.glob("OPTIONS-*"))


def test_the_workers_stores_compact_universally_by_default(tmp_path: Path) -> None:
    """The worker's three tunings (states, counters, live figures) take the setting's default.

    Levelled compaction rewrote the stores' whole last level over and over as
    they grew (bench/README, issue 18's eighth round): the worker's default is
    universal, and ``DOSSIER_ROCKSDB_COMPACTION=level`` gives RocksDB's own back.
    The library's own default (a store opened without a tuning) is the same.
    """
    assert RocksTuning().compaction == "universal"
    for i, tuning in enumerate(rocks_tunings(Settings())):
        assert tuning.compaction == "universal"
        db = open_rocks(tmp_path / f"default-{i}", tuning)
        db.put(b"k", b"v")
        db.flush()
        db.close()
        assert "compaction_style=kCompactionStyleUniversal" in _options_text(
            tmp_path / f"default-{i}"
        )
    for i, tuning in enumerate(rocks_tunings(Settings(rocksdb_compaction="level"))):
        assert tuning.compaction == "level"
        db = open_rocks(tmp_path / f"level-{i}", tuning)
        db.close()
        assert "compaction_style=kCompactionStyleLevel" in _options_text(tmp_path / f"level-{i}")


def test_an_unknown_compaction_setting_is_refused() -> None:
    with pytest.raises(ValidationError):
        Settings(rocksdb_compaction="fifo")  # type: ignore[arg-type]
