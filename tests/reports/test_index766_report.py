"""The 766 index on the simulated month: shares add up, the costliest units, every format."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Any

import orjson
import pytest

from dossier_stream.core.engine import Engine
from dossier_stream.core.index766 import load_profile
from dossier_stream.core.index766_score import score, totals_from_report
from dossier_stream.core.periods import monthly_report
from dossier_stream.core.registry import UnitRegistry
from dossier_stream.core.workdays import WorkCalendar
from dossier_stream.reports.index766 import index766_result, part3_blocks
from dossier_stream.reports.output import render_report
from dossier_stream.sim.simulate import SimConfig, simulate

OCTOBER = monthly_report(2024, 10)

# The bundled profile, written out again by hand: sub-indicator -> (indicator of the
# report, points, rate of full points). The test scores from the report's own figures.
BY_HAND = {
    "dung_han": ("on_time", 20, Fraction(1)),
    "thanh_toan": ("online_payment", 10, Fraction(1)),
    "dvc_truc_tuyen": ("online_result", 12, Fraction(1, 2)),
    "ket_qua_dien_tu": ("digitization_result", 7, Fraction(1)),
    "so_hoa_ho_so": ("digitization", 8, Fraction(4, 5)),
    "tai_su_dung": ("digital_reuse", 7, Fraction(4, 5)),
    "pakn_dung_han": ("feedback_on_time", 6, Fraction(1)),
    "hai_long_pakn": ("feedback_on_time", 6, Fraction(1)),
    "hai_long_tthc": ("on_time", 6, Fraction(9, 10)),
}


@pytest.fixture(scope="module")
def month(registry: UnitRegistry, calendar: WorkCalendar) -> dict[str, Any]:
    sim = simulate(SimConfig(OCTOBER, seed=9, dossiers=3_000, feedback=30), registry, calendar)
    engine = Engine(registry, calendar)
    for raw in sim.lines:
        engine.process(raw)
    return engine.report(OCTOBER)


def test_unit_points_add_up_to_the_city(month: dict[str, Any]) -> None:
    result = index766_result(month, load_profile(), None)
    assert len(result.units) > 200
    for group in result.profile.groups:
        if group.input:
            continue
        city = result.city.group(group.key)
        for sub in city.subs:
            key = sub.sub.key
            assert sum(s.points.get(key, Fraction(0)) for s in result.shares.values()) == sub.points
            assert sum(s.lost.get(key, Fraction(0)) for s in result.shares.values()) == sub.lost
        assert sum(s.group_lost(group) for s in result.shares.values()) == city.lost
    observed = sum((g.points or 0 for g in result.city.groups if not g.group.input), Fraction(0))
    assert sum(s.total_points for s in result.shares.values()) == observed == result.city.points
    assert sum(result.loss_share(c) or 0 for c in result.units) == 1
    # a level's pooled score is its own; the city's counters are the sum of the levels'
    for sub in result.city.group("so_hoa").subs:
        levels = [lvl.group("so_hoa").sub(sub.sub.key) for lvl in result.levels.values()]
        assert sum(s.denominator for s in levels) == sub.denominator


def test_costliest_units_are_the_largest_shortfall_times_weight(month: dict[str, Any]) -> None:
    ind = month["indicators"]
    weights: dict[str, Fraction] = {}
    for key, (name, points, full) in BY_HAND.items():
        city = ind[name]["city"]
        rate = Fraction(city["numerator"], city["denominator"])
        lost = points - points * min(Fraction(1), rate / full)
        short = city["denominator"] - city["numerator"]
        weights[key] = lost / short if short else Fraction(0)
    cost = {
        code: sum(
            (fig[code]["denominator"] - fig[code]["numerator"]) * weights[key]
            for key, (name, _p, _f) in BY_HAND.items()
            for fig in [ind[name]["units"]]
        )
        for code in ind["on_time"]["units"]
    }
    expected = sorted((c for c in cost if cost[c] > 0), key=lambda c: (-cost[c], c))
    result = index766_result(month, load_profile(), None)
    assert result.costliest() == expected
    assert len(expected) >= 10
    for code in expected[:10]:
        assert result.shares[code].total_lost == cost[code]


def test_part3_names_the_costliest_units_with_their_counts(
    month: dict[str, Any], registry: UnitRegistry
) -> None:
    profile = load_profile()
    result = index766_result(month, profile, None)
    texts = [b.text for b in part3_blocks(month, registry, profile=profile)]
    assert texts[0].startswith("Điểm ước tính theo Bộ chỉ số")
    assert "tháng 10/2024 đạt" in texts[0]
    assert (
        "/82 điểm (chưa gồm nhóm chỉ số về công khai, minh bạch do chưa có điểm công bố)"
        in texts[0]
    )
    assert texts[1] == (
        "- Nhóm chỉ số về công khai, minh bạch: "
        "chưa có điểm công bố của Cổng Dịch vụ công quốc gia."
    )
    group = profile.group("tien_do")
    top = result.costliest(group)[0]
    overdue = month["indicators"]["overdue"]["units"][top]["numerator"]
    line = next(
        t for t in texts if t.startswith("- Nhóm chỉ số về tiến độ, kết quả giải quyết đạt")
    )
    name = registry.get(top).name
    assert (
        f"Các đơn vị làm giảm điểm nhiều nhất: {name} ({overdue:,} hồ sơ quá hạn)".replace(",", ".")
        in line
    )
    with_input = part3_blocks(
        month, registry, profile=profile, published={"cong_khai": Fraction(12)}
    )
    assert "/100 điểm, cụ thể:" in with_input[0].text
    assert with_input[1].text == (
        "- Nhóm chỉ số về công khai, minh bạch đạt 12/18 điểm "
        "(theo điểm công bố của Cổng Dịch vụ công quốc gia)."
    )


@pytest.mark.parametrize("fmt", ["text", "md", "json", "csv", "xlsx", "docx"])
def test_every_format(
    month: dict[str, Any], registry: UnitRegistry, tmp_path: Path, fmt: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    scores = tmp_path / "scores.csv"
    scores.write_text("from,to,group,points\n2024-09-15,2024-10-14,cong_khai,12\n", "utf-8")
    monkeypatch.setenv("DOSSIER_INDEX766_SCORES", str(scores))
    out = tmp_path / f"r.{fmt}" if fmt in ("xlsx", "docx") else None
    text = render_report(month, registry, fmt, out, "index766")
    if out is not None:
        assert text is None and out.stat().st_size > 2000
        return
    assert text is not None
    if fmt == "json":
        tables = {t["key"]: t for t in orjson.loads(text)["tables"]}
        assert {"chi-so-766", "chi-so-766-cap", "don-vi-mat-diem", "don-vi-766"} <= set(tables)
        first = tables["chi-so-766"]["rows"][0]["cells"]
        assert first[1:4] == ["Nhóm chỉ số về công khai, minh bạch", "12", "18"]
        scores = orjson.loads(text)["index766"]
        assert (
            scores["city"]["groups"]["cong_khai"] | {"source": "input", "points": 12.0}
            == (scores["city"]["groups"]["cong_khai"])
        )
        assert scores["city"]["max_points"] == 100 and scores["city"]["complete"]
        shares = [u["share_of_city"]["points"] for u in scores["units"].values()]
        assert sum(shares) + 12 == pytest.approx(scores["city"]["points"], abs=0.01)
    else:
        assert "Bảng 3 - Các đơn vị làm giảm điểm của thành phố" in text
        if fmt != "csv":  # csv holds the tables only
            assert "Nhóm chỉ số về công khai, minh bạch đạt 12/18 điểm" in text


def test_a_profile_from_the_settings(
    month: dict[str, Any], registry: UnitRegistry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bundled = Path(str(load_profile.__globals__["resources"].files("dossier_stream"))) / "data"
    text = (bundled / "index766.yaml").read_text("utf-8")
    path = tmp_path / "p.yaml"
    path.write_text(
        text.replace("version: 1", "version: 7").replace("alert_below: 15", "alert_below: 14")
    )
    monkeypatch.setenv("DOSSIER_INDEX766_PROFILE", str(path))
    out = render_report(month, registry, "text", None, "index766")
    assert out is not None and "phiên bản 7" in out and str(path) in out
    path.write_text("version: 1\n")
    with pytest.raises(ValueError, match=r"766 profile .*p\.yaml"):
        render_report(month, registry, "text", None, "index766")


def test_the_dossiers_to_win_back_win_the_points_back(month: dict[str, Any]) -> None:
    profile = load_profile()
    totals, levels = totals_from_report(month)
    result = score(profile, totals, levels)
    checked = 0
    for code in result.costliest()[:5]:
        for group in result.units[code].groups:
            for sub in group.subs:
                if not sub.to_full:
                    continue
                more = dict(totals[code])
                more[sub.sub.numerator] += sub.to_full
                again = score(profile, {code: more}, {code: levels[code]})
                assert again.units[code].group(group.group.key).sub(sub.sub.key).points == (
                    sub.sub.points
                )
                more[sub.sub.numerator] -= 1
                fewer = score(profile, {code: more}, {code: levels[code]})
                assert fewer.units[code].group(group.group.key).sub(sub.sub.key).lost > 0
                checked += 1
    assert checked >= 5


def test_an_empty_period_says_there_is_nothing_to_score(registry: UnitRegistry) -> None:
    from dossier_stream.core.indicators import build_report

    empty = build_report({}, registry, OCTOBER)
    texts = [b.text for b in part3_blocks(empty, registry, profile=load_profile())]  # type: ignore[union-attr]
    assert "tháng 10/2024 đạt chưa có điểm" not in texts[0]
    assert "chưa có điểm (chưa có hồ sơ trong kỳ, chưa có điểm công bố)" in texts[0]
    assert (
        texts[2]
        == "- Nhóm chỉ số về tiến độ, kết quả giải quyết: chưa có hồ sơ trong kỳ để tính điểm."
    )
    assert len(texts) == 6  # no unit to name, nothing to win back
