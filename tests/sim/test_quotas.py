"""The calibration reproduces seed 000's figures; the simulate command is deterministic."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from dossier_stream.cli.main import main
from dossier_stream.core.registry import Level, UnitRegistry
from dossier_stream.sim.quotas import UnitQuota, load_calibration
from reference import LEVEL_TOTALS, ON, REFERENCE, rate_matches, reference

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def quotas() -> dict[str, UnitQuota]:
    return load_calibration("haiphong-2024-10")


def test_calibration_file_is_what_the_tool_builds() -> None:
    tool = REPO / "tools" / "calibrate_haiphong_2024_10.py"
    proc = subprocess.run([sys.executable, str(tool), "--check"], capture_output=True, check=False)
    assert proc.returncode == 0, proc.stderr.decode()
    assert (REFERENCE / "digitization.csv").exists()


def test_calibration_prints_every_online_rate(
    quotas: dict[str, UnitQuota], registry: UnitRegistry
) -> None:
    for rec in reference("online-rates.csv"):
        level: Level = "department" if rec["table_level"] == "department" else "district"
        unit = registry.resolve(rec["unit_name"], on=ON, level=level)
        if rec["table_level"] == "commune_by_district":
            members = [quotas[c.code] for c in registry.children(unit.code)]
        else:
            members = [quotas[unit.code]]
        oos = sum(q.received_oos_online for q in members), sum(q.received_oos for q in members)
        all_ = sum(q.received_online for q in members), sum(q.received for q in members)
        assert rate_matches(rec["online_rate_of_online_service_dossiers"], *oos), rec
        assert rate_matches(rec["online_rate_of_all_dossiers"], *all_), rec


def test_calibration_has_every_digitization_row(
    quotas: dict[str, UnitQuota], registry: UnitRegistry
) -> None:
    rows = reference("digitization.csv")
    assert len(rows) == 251
    for rec in rows:
        parent = None
        if rec["level"] == "commune":
            parent = registry.resolve(rec["district_as_printed"], on=ON, level="district").code
        q = quotas[registry.resolve(rec["unit_name"], on=ON, parent_code=parent).code]
        assert (q.completed, q.completed_component, q.completed_result, q.completed_both) == (
            int(rec["resolved_total"]),
            int(rec["with_component_files"]),
            int(rec["with_result_file"]),
            int(rec["with_both"]),
        ), rec


def test_calibration_level_totals(quotas: dict[str, UnitQuota], registry: UnitRegistry) -> None:
    for level in ("department", "district", "commune"):
        mine = [quotas[u.code] for u in registry.units_in(ON, ON) if u.level == level]
        assert sum(q.received for q in mine) == LEVEL_TOTALS["received"][level]
        assert sum(q.received_online for q in mine) == LEVEL_TOTALS["online"][level]
        assert sum(q.payment_tx_online for q in mine) == LEVEL_TOTALS["payment_tx"][level]
        paying = sum(1 for q in mine if q.payment_tx_online)
        offering = sum(1 for q in mine if q.received_oos)
        assert [paying, offering] == LEVEL_TOTALS["paying_units"][level]


def test_an_inconsistent_quota_is_refused() -> None:
    with pytest.raises(ValueError, match="received_online > received"):
        UnitQuota("U", 1, 2, 0, 0, 0, 0, 0, 0, 0, 0)


def test_simulate_command_same_seed_same_bytes(tmp_path: Path) -> None:
    outs = []
    for name, seed in (("a", "5"), ("b", "5"), ("c", "6")):
        path = tmp_path / f"{name}.jsonl"
        args = ["simulate", "--month", "2024-10", "--seed", seed, "--dossiers", "300",
                "--feedback", "10", "--out", str(path)]  # fmt: skip
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 0, result.output
        outs.append(path.read_bytes())
    assert outs[0] == outs[1] and outs[0] != outs[2]
    assert outs[0].count(b"\n") > 300
