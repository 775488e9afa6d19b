"""``python -m bench.merges``: it fills, merges and reports on a tiny store (never how fast)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_the_merges_bench_fills_merges_and_reports(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.merges", "--facts", "3000", "--counters", "12000",
         "--parts", "3", "--timeout", "120", "--report", "1", "--flushes", "1",
         "--table-setting", "max_compress_block_size=65536", "--dir", str(tmp_path)],
        cwd=REPO, capture_output=True, text=True, check=False, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert re.search(r"dossier_facts 3000 rows", out), out
    assert re.search(r"unit_day_counters 12000 rows", out), out
    assert "merged in" in out and "peak − baseline: rss" in out, out
    assert "1 flushes (10000 counter + 2000 fact rows)" in out, out
