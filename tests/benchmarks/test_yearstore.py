"""bench.yearstore: a tiled store built offline through the Processor, and its report timed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from bench.yearstore import main


def test_build_then_compare_the_two_report_paths(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, lines = tmp_path / "year", tmp_path / "month.jsonl"
    assert main(["--out", str(out), "--tiles", "3", "--events", "3000", "--lines", str(lines)]) == 0
    built = capsys.readouterr().out.splitlines()
    assert lines.exists()
    assert built[0].startswith("tile 2: ") and built[2].startswith("tile 0: ")
    timed = json.loads(built[-1])
    assert timed["scenario"] == "year-report" and len(timed["seconds"]) == 3
    assert timed["received"] > 0 and timed["median_cpu_s"] > 0
    assert timed["rows"]["dossier_facts"] > 0

    assert main(["--out", str(out), "--report", "--compare", "--repeat", "1"]) == 0
    compared = json.loads(capsys.readouterr().out)
    assert compared["same_report"] is True
    assert compared["counter_rows"] > compared["unit_counter_rows"] > 0
    assert {"per_day.whole", "sql.whole"} <= compared["parts"].keys()
