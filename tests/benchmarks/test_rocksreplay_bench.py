"""``python -m bench.rocksreplay`` records the store calls of the fold and replays them."""

from __future__ import annotations

import pickle
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def run(*args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "bench.rocksreplay", *args],
        cwd=REPO, capture_output=True, text=True, check=False, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_record_three_small_tiles_then_replay_five(tmp_path: Path) -> None:
    recording = tmp_path / "calls.pkl"
    out = run("record", "--out", str(recording), "--events", "9000", "--tile", "3000")
    rec = pickle.loads(recording.read_bytes())
    assert rec["tile"] == 3000 and len(rec["batches"]) == 3, out
    kinds = {op[0] for batch in rec["batches"] for op in batch}
    assert {"g", "s", "a", "t"} <= kinds  # state gets and sets, counter adds and trims
    out = run(
        "replay", str(recording), "--events", "15000", "--segment", "6000",
        "--workdir", str(tmp_path / "stores"),
    )  # fmt: skip
    rows = re.findall(r"^\s+(\d+)\s+[\d.]+\s+[\d.]+", out, re.MULTILINE)
    assert rows == ["6000", "12000", "15000"], out  # tiles 3 and 4 are tile 2 moved on
    assert re.search(r"^from 7500: µs/event cpu [\d.]+", out, re.MULTILINE), out


def test_a_recording_of_fewer_than_three_tiles_is_refused(tmp_path: Path) -> None:
    recording = tmp_path / "calls.pkl"
    run("record", "--out", str(recording), "--events", "2000", "--tile", "1000")
    done = subprocess.run(
        [sys.executable, "-m", "bench.rocksreplay", "replay", str(recording), "--events", "3000"],
        cwd=REPO, capture_output=True, text=True, check=False, timeout=300,
    )  # fmt: skip
    assert done.returncode != 0
    assert "holds 2 tiles: record three (3000 events)" in done.stderr
