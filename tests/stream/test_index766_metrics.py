"""The 766 gauges: the city's estimated points per group, from the live figures."""

from __future__ import annotations

import math
from importlib import resources
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest

from dossier_stream.core.index766 import load_profile
from dossier_stream.core.periods import monthly_report
from dossier_stream.stream.livefigures import LiveSnapshot
from dossier_stream.stream.metrics import Metrics

PERIOD = monthly_report(2024, 10)


def _value(prom: CollectorRegistry, name: str, group: str) -> float | None:
    return prom.get_sample_value(f"dossier_stream_index766_group_{name}", {"group": group})


def test_group_points_of_the_city_from_two_units() -> None:
    prom = CollectorRegistry()
    metrics = Metrics(prom)
    assert _value(prom, "alert_below_points", "tien_do") == 18
    assert _value(prom, "alert_below_points", "cong_khai") is None  # input group: not estimated
    assert math.isnan(_value(prom, "points", "tien_do") or 0.0)
    snap = LiveSnapshot(
        PERIOD,
        PERIOD,
        {
            ("on_time", "HP-S-01", "department"): (37, 40),
            ("on_time", "HP-X-01", "commune"): (3, 10),
            ("online_payment", "HP-X-01", "commune"): (3, 4),
        },
    )
    metrics.set_live(snap)
    # on time: 40/50 of 20 points; satisfaction: 6 x (80% / 90%), no feedback yet
    assert _value(prom, "points", "tien_do") == 16.0
    assert _value(prom, "max_points", "tien_do") == 20.0
    assert math.isclose(_value(prom, "points", "hai_long") or 0.0, 6 * 80 / 90)
    assert _value(prom, "max_points", "hai_long") == 6.0
    # online payment 3/4 of 10; no online dossier with an electronic result among 50 completed
    assert _value(prom, "points", "truc_tuyen") == 7.5
    assert _value(prom, "max_points", "truc_tuyen") == 22.0
    metrics.set_live(LiveSnapshot(PERIOD, PERIOD))
    assert math.isnan(_value(prom, "points", "tien_do") or 0.0)
    assert _value(prom, "max_points", "tien_do") == 0.0
    assert b"dossier_stream_index766_group_points" in generate_latest(prom)


def test_a_profile_of_its_own(tmp_path: Path) -> None:
    source = resources.files("dossier_stream").joinpath("data/index766.yaml").read_text("utf-8")
    old = 'alert_below: 18\n    source: "QĐ 766 Phụ lục, nhóm 2"'
    assert old in source
    path = tmp_path / "p.yaml"
    path.write_text(source.replace(old, old.replace("18", "19.5")), encoding="utf-8")
    prom = CollectorRegistry()
    Metrics(prom, index766=load_profile(path))
    assert _value(prom, "alert_below_points", "tien_do") == 19.5
