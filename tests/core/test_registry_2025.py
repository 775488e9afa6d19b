"""Tests of the 2025 era of the bundled Hải Phòng registry (resolution 1669/NQ-UBTVQH15)."""

from __future__ import annotations

import importlib.util
import re
from datetime import date, timedelta
from pathlib import Path
from types import ModuleType

import pytest

from dossier_stream.core.indicators import build_report
from dossier_stream.core.periods import Period
from dossier_stream.core.registry import LEVELS, AmbiguousUnitName, UnitRegistry, UnknownUnitName

REPO = Path(__file__).resolve().parents[2]
REFERENCE = REPO / "tests" / "data" / "haiphong-2024-10"  # a copy of ../shared
LAST_DAY = date(2025, 6, 30)
FIRST_DAY = date(2025, 7, 1)
OCTOBER_2024 = date(2024, 10, 14)


@pytest.fixture(scope="module")
def hp() -> UnitRegistry:
    return UnitRegistry.load_default()


def test_first_day_has_12_departments_and_114_communes_without_districts(
    hp: UnitRegistry,
) -> None:
    counts = {level: len(hp.units_in(FIRST_DAY, FIRST_DAY, level)) for level in LEVELS}
    assert counts == {"department": 12, "district": 0, "commune": 114}
    communes = hp.units_in(FIRST_DAY, FIRST_DAY, "commune")
    kinds = [re.match(r"^(Xã|Phường|Đặc khu) \S", u.name) for u in communes]
    assert all(kinds)
    prefixes = [k[1] for k in kinds if k]
    assert [prefixes.count(p) for p in ("Xã", "Phường", "Đặc khu")] == [67, 45, 2]
    assert {u.name for u in communes if u.name.startswith("Đặc khu")} == {
        "Đặc khu Cát Hải",
        "Đặc khu Bạch Long Vĩ",
    }
    for unit in hp.units_in(FIRST_DAY, FIRST_DAY):
        assert (unit.valid_from, unit.valid_to, unit.parent_code) == (FIRST_DAY, None, None)
        assert unit.successor_codes == ()
        if unit.level == "commune":
            assert re.fullmatch(r"\d{5}", unit.code)  # official code, QĐ 19/2025/QĐ-TTg
    assert hp.units_in(LAST_DAY, LAST_DAY) == [u for u in hp if u.valid_to == LAST_DAY]


def test_a_period_across_1_july_2025_has_both_eras(hp: UnitRegistry) -> None:
    units = hp.units_in(date(2025, 6, 20), date(2025, 7, 10))
    assert len(units) == len(hp) == 251 + 126
    counts = {level: sum(1 for u in units if u.level == level) for level in LEVELS}
    assert counts == {"department": 31, "district": 15, "commune": 331}
    report = build_report({}, hp, Period(date(2025, 6, 20), date(2025, 7, 10)))
    assert report["units_in_period"] == counts
    after = build_report({}, hp, Period(FIRST_DAY, date(2025, 7, 7)))["units_in_period"]
    assert after == {"department": 12, "commune": 114}  # no district level any more


def test_codes_are_unique_and_never_reused(hp: UnitRegistry) -> None:
    codes = [u.code for u in hp]
    assert len(set(codes)) == len(codes) == 377
    assert {u.code for u in hp if u.valid_from} == {c for c in codes if not c.startswith("HP-")}


def test_every_successor_exists_the_day_after_its_predecessor_ends(hp: UnitRegistry) -> None:
    links = 0
    for unit in hp:
        for code in unit.successor_codes:
            successor = hp.get(code)
            assert unit.valid_to is not None
            assert successor.exists_on(unit.valid_to + timedelta(days=1))
            expected = "department" if unit.level == "department" else "commune"
            assert successor.level == expected
            links += 1
    assert links == 286


# Old unit -> new units, as resolutions 1232 and 1669 and the sources in the tool say.
LINKS = {
    "HP-Q-303-08": ("Phường Hạ Lý", ("Phường Hồng Bàng",)),  # via Thượng Lý (1232)
    "HP-Q-303-09": ("Phường Trại Chuối", ("Phường Hồng Bàng",)),
    "HP-Q-303-04": ("Phường Quán Toan", ("Phường Hồng An",)),
    "HP-Q-312-14": ("Xã An Hồng", ("Phường Hồng An",)),
    "HP-Q-312-15": ("Xã An Hưng", ("Phường Hồng An", "Phường An Dương")),
    "HP-Q-305-04": ("Phường Hồ Nam", ("Phường Lê Chân", "Phường An Biên")),  # via Trần Nguyên Hãn
    "HP-Q-305-14": ("Phường Cát Dài", ("Phường Lê Chân", "Phường An Biên")),  # via An Biên
    "HP-Q-306-02": ("Phường Đông Hải 1", ("Phường Đông Hải",)),
    "HP-Q-313-15": ("Thị trấn Trường Sơn", ("Phường Phù Liễn", "Xã An Lão")),
    "HP-Q-314-07": ("Xã Thụy Hương", ("Xã Kiến Thụy",)),  # the Kiến Hưng of 2025, split
    "HP-Q-314-13": ("Xã Đại Hà", ("Xã Kiến Hưng",)),
    "HP-Q-316-25": ("Xã Cổ Am", ("Xã Vĩnh Am",)),  # via Tam Cường
    "HP-Q-316-28": ("Xã Hưng Nhân", ("Xã Vĩnh Hải",)),
    "HP-Q-317-06": ("Thị trấn Cát Bà", ("Đặc khu Cát Hải",)),
    "HP-Q-311-35": ("Xã Hòa Bình (Thủy Nguyên)", ("Phường Hòa Bình",)),
    "HP-Q-317": ("Ủy ban nhân dân huyện Cát Hải", ("Đặc khu Cát Hải",)),
    "HP-Q-318": ("Ủy ban nhân dân huyện Bạch Long Vĩ", ("Đặc khu Bạch Long Vĩ",)),
    "HP-Q-303": ("Ủy ban nhân dân quận Hồng Bàng", ("Phường Hồng Bàng", "Phường Hồng An")),
    "HP-SO-KHDT": ("Sở Kế hoạch và Đầu tư", ("Sở Tài chính",)),
    "HP-SO-GTVT": ("Sở Giao thông vận tải", ("Sở Xây dựng",)),
    "HP-SO-TNMT": ("Sở Tài nguyên và Môi trường", ("Sở Nông nghiệp và Môi trường",)),
    "HP-SO-DULICH": ("Sở Du lịch", ("Sở Văn hóa, Thể thao và Du lịch",)),
    "HP-SO-TUPHAP": ("Sở Tư pháp", ("Sở Tư pháp",)),
}


@pytest.mark.parametrize("code", LINKS)
def test_known_successor_links(hp: UnitRegistry, code: str) -> None:
    name, successors = LINKS[code]
    unit = hp.get(code)
    assert unit.name == name
    assert [hp.get(c).name for c in unit.successor_codes] == list(successors)


# Era-1 communes merged on 2025-01-01 into a unit no public source describes.
UNLINKED = {
    "HP-Q-304": "Lê Lợi, Đồng Quốc Bình, Lạc Viên, Máy Tơ",
    "HP-Q-307": "Lãm Hà, Phù Liễn, Quán Trữ, Tràng Minh",
    "HP-Q-311": "Núi Đèo, Cao Nhân, Hoàng Động, Kiền Bái, Kỳ Sơn, Liên Khê, Lưu Kỳ, Lại Xuân,"
    " Minh Tân (Thủy Nguyên), Ngũ Lão, Phục Lễ, Thủy Sơn, Đông Sơn, Trung Hà, Phù Ninh,"
    " Hợp Thành, Thủy Triều, Tân Dương, Mỹ Đồng, Phả Lễ, Chính Mỹ, Gia Đức, An Sơn,"
    " Gia Minh, Kênh Giang, Lâm Động",
    "HP-Q-312": "Bắc Sơn, Quốc Tuấn (An Dương)",
    "HP-Q-315": "Toàn Thắng, Bạch Đằng, Quang Phục",
    "HP-Q-316": "An Hòa (Vĩnh Bảo), Vinh Quang (Vĩnh Bảo), Hiệp Hòa, Vĩnh Phong, Đồng Minh,"
    " Tam Đa, Vĩnh Long, Nhân Hòa",
}


def test_only_the_documented_units_have_no_successor(hp: UnitRegistry) -> None:
    unlinked = [u for u in hp.units_in(LAST_DAY, LAST_DAY) if not u.successor_codes]
    assert [u.code for u in unlinked if u.level != "commune"] == ["HP-TTTP"]
    found: dict[str, list[str]] = {}
    for unit in unlinked:
        if unit.parent_code:
            found.setdefault(unit.parent_code, []).append(unit.name.split(" ", 1)[1])
    found = {d: [n.removeprefix("trấn ") for n in names] for d, names in found.items()}
    assert found == {d: names.split(", ") for d, names in UNLINKED.items()}
    assert sum(len(v) for v in found.values()) == 47


def test_new_units_from_hai_duong_have_no_predecessor_here(hp: UnitRegistry) -> None:
    taken = {c for u in hp if u.level == "district" for c in u.successor_codes}
    assert len(taken) == 50  # 24 phường, 24 xã, 2 đặc khu on the land of the old city
    new = hp.units_in(FIRST_DAY, FIRST_DAY, "commune")
    linked = {c for u in hp if u.level == "commune" for c in u.successor_codes}
    # Việt Khê comes from 2025 units of unknown make-up; Bạch Long Vĩ had no commune.
    assert {u.code for u in new if u.code in linked} == taken - {"11503", "11948"}
    hai_duong = [u for u in new if u.code not in taken]
    assert len(hai_duong) == 64
    assert "Phường Hải Dương" in {u.name for u in hai_duong}


@pytest.mark.parametrize(
    ("name", "day", "code"),
    [
        ("Phường Hồng Bàng", FIRST_DAY, "11311"),
        ("Quận Hồng Bàng", OCTOBER_2024, "HP-Q-303"),
        ("Hồng Bàng", FIRST_DAY, "11311"),
        ("Hồng Bàng", LAST_DAY, "HP-Q-303"),
        ("Xã An Lão", FIRST_DAY, "11629"),
        ("Thị trấn An Lão", OCTOBER_2024, "HP-Q-313-01"),
        ("Xã An Hưng", FIRST_DAY, "11674"),
        ("Xã An Hưng", LAST_DAY, "HP-Q-312-15"),
        ("Phường An Dương", FIRST_DAY, "11581"),
        ("Phường An Dương", OCTOBER_2024, "HP-Q-305-11"),
        ("UBND phường Lê Chân", FIRST_DAY, "11383"),
        ("Xã Kiến Thụy", FIRST_DAY, "11680"),
        ("Kiến Thụy", LAST_DAY, "HP-Q-314"),
        ("Đặc khu Cát Hải", FIRST_DAY, "11914"),
        ("Cát Hải", FIRST_DAY, "11914"),
        ("Thị trấn Cát Hải", LAST_DAY, "HP-Q-317-05"),
        ("Đặc khu Bạch Long Vĩ", FIRST_DAY, "11948"),
        ("Phường Việt Hoà", FIRST_DAY, "10543"),
        ("Xã Cẩm Giàng", FIRST_DAY, "10903"),
        ("Xã Cẩm Giang", FIRST_DAY, "10888"),
        ("Sở Tư pháp", FIRST_DAY, "HP25-SO-TUPHAP"),
        ("Sở Tư Pháp", OCTOBER_2024, "HP-SO-TUPHAP"),
        ("Sở Công Thương", FIRST_DAY, "HP25-SO-CONGTHUONG"),
        ("Sở Công thương", LAST_DAY, "HP-SO-CONGTHUONG"),
        ("Sở NN&MT", FIRST_DAY, "HP25-SO-NNMT"),
        ("Sở Văn hóa, Thể thao và Du lịch", FIRST_DAY, "HP25-SO-VHTTDL"),
        ("Ban Quản lý Khu kinh tế Hải Phòng", FIRST_DAY, "HP25-BQLKKT"),
        ("Ban Quản lý Khu kinh tế Hải Phòng", OCTOBER_2024, "HP-BQLKKT"),
        ("11311", None, "11311"),
    ],
)
def test_names_of_both_eras_resolve_with_a_date(
    hp: UnitRegistry, name: str, day: date | None, code: str
) -> None:
    assert hp.resolve(name, on=day).code == code


def test_a_name_of_both_eras_needs_a_date(hp: UnitRegistry) -> None:
    for name, codes in (
        ("Sở Tư pháp", {"HP-SO-TUPHAP", "HP25-SO-TUPHAP"}),
        ("Xã An Hưng", {"HP-Q-312-15", "11674"}),
        ("BQL KKT", {"HP-BQLKKT", "HP25-BQLKKT"}),
    ):
        with pytest.raises(AmbiguousUnitName, match="on=<date>") as info:
            hp.resolve(name)
        assert {u.code for u in info.value.candidates} == codes
    assert hp.resolve("Xã An Hưng", parent_code="HP-Q-312").code == "HP-Q-312-15"
    assert hp.resolve("Xã An Hưng", level="commune", on=FIRST_DAY).code == "11674"
    with pytest.raises(UnknownUnitName, match="on=2025-07-01"):
        hp.resolve("Ủy ban nhân dân quận Hồng Bàng", on=FIRST_DAY)
    with pytest.raises(UnknownUnitName, match="on=2025-06-30"):
        hp.resolve("Phường Lê Ích Mộc", on=LAST_DAY)


def _tool() -> ModuleType:
    path = REPO / "tools" / "build_units_haiphong.py"
    spec = importlib.util.spec_from_file_location("build_units_haiphong", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_data_file_is_what_the_tool_builds() -> None:
    data = REPO / "src" / "dossier_stream" / "data" / "units_haiphong.csv"
    assert _tool().build() == data.read_text(encoding="utf-8")
