"""``python -m bench.sink``: its seeded rows fit the worker's tables and every round is stored.

It was broken for a while (its dead-letter rows had 8 values for the 10 columns
of ``dead_letters``) without any test noticing. Only that it runs and stores
what it buffered is checked, never how fast.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_the_sink_bench_stores_every_row_it_buffers(tmp_path: Path) -> None:
    dump = tmp_path / "dump.txt"
    done = subprocess.run(
        [sys.executable, "-m", "bench.sink", "--flushes", "2", "--counters", "300",
         "--facts", "50", "--dead-letters", "4", "--dir", str(tmp_path / "ch"),
         "--dump", str(dump)],
        cwd=REPO, capture_output=True, text=True, check=False, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "rows/s" in done.stdout
    lines = dump.read_text("utf-8").splitlines()
    letters = sum(1 for line in lines if "dossier.progress.v1" in line)
    assert letters == (2 + 1) * 4, "the dead letters of a warm-up round and two timed ones"
    assert len(lines) > 2 * (300 + 50) // 2, "counters and facts dumped"
