"""RocksDB options of the stores: the compaction style (:class:`RocksTuning`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from dossier_stream.store.statestore import RocksTuning, open_rocks


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
