"""The 766 index: profile loading and scoring on hand-built counters."""

from __future__ import annotations

from datetime import date
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dossier_stream.core.index766 import (
    ProfileError,
    format_points,
    load_profile,
    load_published,
    parse_group_scores,
    parse_profile,
)
from dossier_stream.core.index766_score import IndexResult, SubScore, score

PROFILE = """
version: 3
name: test
source: test
aggregation: pooled
groups:
  - key: pub
    title: "công khai, minh bạch"
    max_points: 18
    alert_below: 15
    input: true
    source: annex
  - key: speed
    title: "tiến độ"
    max_points: 20
    alert_below: 18
    source: annex
    subindicators:
      - key: on_time
        title: "đúng hạn"
        numerator: completed_on_time
        denominator: completed
        points: 20
        source: annex 2.1
        estimate: false
        shortfall: "hồ sơ quá hạn"
        remedy: "hồ sơ đúng hạn"
  - key: online
    title: "trực tuyến"
    max_points: 22
    alert_below: 18
    source: annex
    subindicators:
      - key: pay
        title: "thanh toán"
        numerator: received_fee_paid_online
        denominator: received_fee
        points: 10
        rule:
          kind: thresholds
          steps: [{at: 90, points: 10}, {at: 80, points: 6}, {at: 50, points: 2}]
        source: annex 3.6
        shortfall: "hồ sơ chưa thanh toán trực tuyến"
        remedy: "hồ sơ thanh toán trực tuyến"
      - key: dvc
        title: "dịch vụ công trực tuyến"
        numerator: completed_online_result
        denominator: completed
        points: 12
        rule: {kind: linear, full_at: 50}
        source: annex 3.3
        shortfall: "hồ sơ chưa được công nhận"
        remedy: "hồ sơ trực tuyến"
"""


@pytest.fixture
def profile_path(tmp_path: Path) -> Path:
    path = tmp_path / "p.yaml"
    path.write_text(PROFILE, encoding="utf-8")
    return path


def _one(profile_path: Path, **counters: int) -> IndexResult:
    return score(load_profile(profile_path), {"U": counters}, {"U": "department"})


def test_linear_rule_and_printed_points(profile_path: Path) -> None:
    result = _one(profile_path, completed=40, completed_on_time=37)
    sub = result.city.group("speed").sub("on_time")
    assert sub.points == Fraction(37, 2)
    assert format_points(sub.points) == "18,5"
    assert sub.to_full == 3 and sub.to_next == 3
    again = _one(profile_path, completed=40, completed_on_time=40)
    assert again.city.group("speed").points == 20


def test_capped_linear_rule(profile_path: Path) -> None:
    result = _one(profile_path, completed=100, completed_online_result=30)
    sub = result.city.group("online").sub("dvc")
    assert format_points(sub.points) == "7,2"
    assert sub.to_full == 20
    full = _one(profile_path, completed=100, completed_online_result=50)
    assert full.city.group("online").sub("dvc").points == 12
    short = _one(profile_path, completed=100, completed_online_result=49)
    assert short.city.group("online").sub("dvc").points < 12


def test_threshold_rule_next_step_and_full(profile_path: Path) -> None:
    result = _one(profile_path, received_fee=40, received_fee_paid_online=34)  # 85 %
    sub = result.city.group("online").sub("pay")
    assert sub.points == 6
    assert sub.next_target == (Fraction(9, 10), 10)
    assert sub.to_next == 2 and sub.to_full == 2
    assert (
        _one(profile_path, received_fee=40, received_fee_paid_online=36)
        .city.group("online")
        .sub("pay")
        .points
        == 10
    )
    low = (
        _one(profile_path, received_fee=10, received_fee_paid_online=4)
        .city.group("online")
        .sub("pay")
    )
    assert low.points == 0 and low.next_target == (Fraction(1, 2), 2) and low.to_next == 1
    assert low.to_full == 5


def test_group_without_input_is_left_out_of_the_maximum(profile_path: Path) -> None:
    profile = load_profile(profile_path)
    totals = {"U": {"completed": 10, "completed_on_time": 10, "received_fee": 10,
                    "received_fee_paid_online": 10, "completed_online_result": 10}}  # fmt: skip
    bare = score(profile, totals, {"U": "commune"})
    assert bare.city.group("pub").source == "missing" and bare.city.group("pub").points is None
    assert bare.city.max_points == 42 and bare.city.points == 42 and not bare.city.complete
    given_ = score(profile, totals, {"U": "commune"}, published={"pub": Fraction(12)})
    assert given_.city.max_points == 60 and given_.city.points == 54 and given_.city.complete
    assert given_.units["U"].max_points == 42  # units are not scored on input groups


def test_no_dossiers_is_not_scored(profile_path: Path) -> None:
    result = _one(profile_path, completed=4, completed_on_time=4)
    pay = result.city.group("online").sub("pay")
    assert pay.points is None and pay.max_points == 0 and pay.to_full is None
    assert result.city.max_points == 32


@pytest.mark.parametrize(
    ("value", "places", "text"),
    [
        (Fraction(1845, 100), 1, "18,5"),  # float round(18.45, 1) gives 18.4
        (Fraction(1844, 100), 1, "18,4"),
        (Fraction(12), 1, "12"),
        (Fraction(99, 10), 1, "9,9"),
        (Fraction(81075, 1000), 2, "81,08"),
        (Fraction(1, 3), 1, "0,3"),
        (Fraction(8100, 100), 2, "81"),
    ],
)
def test_points_print_as_the_portal(value: Fraction, places: int, text: str) -> None:
    assert format_points(value, places) == text


def test_the_portal_rounding_from_counters(profile_path: Path) -> None:
    # 369/400 = 92,25 % on time -> 18,45 points -> printed 18,5
    result = _one(profile_path, completed=400, completed_on_time=369)
    assert format_points(result.city.group("speed").points) == "18,5"


RULES = st.sampled_from(["on_time", "pay", "dvc"])
NUM_DEN = {"on_time": ("completed_on_time", "completed"),
           "pay": ("received_fee_paid_online", "received_fee"),
           "dvc": ("completed_online_result", "completed")}  # fmt: skip
GROUP = {"on_time": "speed", "pay": "online", "dvc": "online"}


@given(key=RULES, den=st.integers(1, 5000), data=st.data())
def test_dossiers_to_win_back_are_exactly_enough(key: str, den: int, data: st.DataObject) -> None:
    num = data.draw(st.integers(0, den))
    profile = parse_profile(PROFILE)
    n, d = NUM_DEN[key]

    def sub_at(k: int) -> SubScore:
        return (
            score(profile, {"U": {n: num + k, d: den}}, {"U": "district"})
            .city.group(GROUP[key])
            .sub(key)
        )

    now = sub_at(0)
    for k, target in ((now.to_next, now.next_target), (now.to_full, (None, now.sub.points))):
        if k is None or target is None:
            assert now.points == now.sub.points
            continue
        assert sub_at(k).points >= target[1]
        if k > 0:
            assert sub_at(k - 1).points < target[1]


def test_unit_shares_add_up_to_the_city(profile_path: Path) -> None:
    profile = load_profile(profile_path)
    totals = {
        "A": {"completed": 100, "completed_on_time": 80, "completed_online_result": 10,
              "received_fee": 50, "received_fee_paid_online": 20},
        "B": {"completed": 60, "completed_on_time": 59, "completed_online_result": 50,
              "received_fee": 10, "received_fee_paid_online": 10},
        "C": {},
    }  # fmt: skip
    result = score(profile, totals, {"A": "department", "B": "commune", "C": "commune"})
    observed = [g for g in result.city.groups if not g.group.input]
    assert sum(s.total_points for s in result.shares.values()) == sum(g.points for g in observed)
    assert sum(s.total_lost for s in result.shares.values()) == sum(g.lost for g in observed)
    # on the linear on-time rule a unit's loss is its shortfall x points / city's completed
    assert result.shares["A"].lost["on_time"] == Fraction(20 * 20, 160)
    assert result.costliest()[0] == "A" and "C" not in result.costliest()
    assert result.levels["commune"].group("speed").sub("on_time").numerator == 59


def test_bundled_profile_documents_its_sources() -> None:
    profile = load_profile()
    assert [g.max_points for g in profile.groups] == [18, 20, 22, 22, 18]
    assert profile.max_points == 100
    online = profile.group("truc_tuyen")
    assert [s.points for s in online.subindicators] == [10, 12]
    for g in profile.groups:
        assert g.source.startswith("QĐ 766")
        for s in g.subindicators:
            assert s.source.startswith("QĐ 766") and s.shortfall and s.remedy
            assert s.estimate or "estimate" not in s.note
    assert profile.group("cong_khai").input


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("completed_on_time", "completed_in_time"), "unknown counter 'completed_in_time'"),
        (
            ("points: 20\n        source: annex 2.1", "points: 19\n        source: annex 2.1"),
            "sub-indicators give 19 points",
        ),
        (("aggregation: pooled", "aggregation: sum"), "aggregation"),
        (("at: 90, points: 10", "at: 90, points: 9"), "highest step gives 9 points"),
    ],
)
def test_bad_profiles_say_what_is_wrong(
    tmp_path: Path, change: tuple[str, str], message: str
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(PROFILE.replace(*change), encoding="utf-8")
    with pytest.raises(ProfileError, match=message) as err:
        load_profile(path)
    assert str(path) in str(err.value)


def test_published_scores(profile_path: Path, tmp_path: Path) -> None:
    profile = load_profile(profile_path)
    csv_path = tmp_path / "scores.csv"
    csv_path.write_text('from,to,group,points\n2024-09-15,2024-10-14,pub,"12,5"\n', "utf-8")
    got = load_published(csv_path, profile)
    assert got == {(date(2024, 9, 15), date(2024, 10, 14)): {"pub": Fraction(25, 2)}}
    assert parse_group_scores("pub=12", profile) == {"pub": 12}
    assert parse_group_scores(" pub = 12,5 ;", profile) == {"pub": Fraction(25, 2)}
    with pytest.raises(ProfileError, match="is not group=points"):
        parse_group_scores("pub:12", profile)
    with pytest.raises(ProfileError, match="not an input group"):
        parse_group_scores("speed=12", profile)
    csv_path.write_text("from,to,group,points\n2024-09-15,2024-10-14,pub,19\n", "utf-8")
    with pytest.raises(ProfileError, match=r"scores.csv:2: pub = 19 is above its 18"):
        load_published(csv_path, profile)
