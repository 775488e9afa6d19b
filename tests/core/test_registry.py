"""Tests of the unit registry: the shipped Hải Phòng data, name resolution, validation, eras."""

from __future__ import annotations

import csv
import logging
import re
import unicodedata
from datetime import date
from pathlib import Path

import pytest

from dossier_stream.core.registry import (
    LEVELS,
    AmbiguousUnitName,
    Level,
    RegistryError,
    Unit,
    UnitRegistry,
    UnknownUnitName,
    normalize_name,
)

DATA = Path(__file__).resolve().parents[1] / "data"  # copies of ../shared (test_reference_copies)
REFERENCE = DATA / "haiphong-2024-10"
SEED_000 = DATA / "seeds" / "000_9f91dcfb64cb2f43.txt"
HEADER = "code,name,level,parent_code,valid_from,valid_to,aliases,successor_codes\n"
REPORT_DAY = date(2024, 10, 14)  # last day of the October 2024 report period
LAST_DAY = date(2025, 6, 30)  # last day of the era with districts


def need(path: Path) -> Path:
    assert path.exists(), f"{path} is missing: it is a committed copy of ../shared"
    return path


@pytest.fixture(scope="module")
def hp() -> UnitRegistry:
    return UnitRegistry.load_default()


# --- the shipped Hải Phòng registry -------------------------------------------------------


def test_default_registry_has_19_departments_15_districts_217_communes(hp: UnitRegistry) -> None:
    counts = {level: len(hp.units_in(LAST_DAY, LAST_DAY, level)) for level in LEVELS}
    assert counts == {"department": 19, "district": 15, "commune": 217}
    assert len(hp.units_in(LAST_DAY, LAST_DAY)) == 251  # era 2: test_registry_2025.py


def test_default_registry_codes_parents_and_era(hp: UnitRegistry) -> None:
    gso = {"303", "304", "305", "306", "307", "308", "309", *map(str, range(311, 319))}
    assert {u.code for u in hp if u.level == "district"} == {f"HP-Q-{g}" for g in gso}
    for code in ("HP-SO-TUPHAP", "HP-BQLKKT", "HP-TTTP", "HP-SO-LDTBXH"):
        assert hp.get(code).level == "department"
    for unit in hp.units_in(LAST_DAY, LAST_DAY):
        assert (unit.valid_from, unit.valid_to) == (None, LAST_DAY)
        if unit.level == "commune":
            assert unit.parent_code is not None
            assert re.fullmatch(rf"{unit.parent_code}-\d\d", unit.code)
        else:
            assert unit.parent_code is None
    assert hp.children("HP-Q-318") == []
    assert len(hp.children("HP-Q-311")) == 37
    assert hp.get("HP-Q-314-15").name == "Xã Minh Tân (Kiến Thụy)"
    assert hp.parent(hp.get("HP-Q-314-15")) == hp.get("HP-Q-314")
    assert hp.parent(hp.get("HP-Q-314")) is None


def test_default_registry_loads_without_ambiguity_warnings(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="dossier_stream.core.registry"):
        UnitRegistry.load_default()
    assert caplog.records == []


def test_every_reference_csv_name_resolves(hp: UnitRegistry) -> None:
    failures: list[str] = []
    with need(REFERENCE / "digitization.csv").open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            level: Level = row["level"]  # type: ignore[assignment]
            parent = None
            if row["district_as_printed"]:
                parent = hp.resolve(row["district_as_printed"], level="district").code
            unit = hp.resolve(row["unit_name"], on=REPORT_DAY, parent_code=parent)
            if unit.level != level:
                failures.append(f"{row['unit_name']} -> {unit.code}")
    with need(REFERENCE / "online-rates.csv").open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            # Bảng 3 (commune_by_district) names a district meaning "its communes".
            expected = "department" if row["table_level"] == "department" else "district"
            if hp.resolve(row["unit_name"], on=REPORT_DAY).level != expected:
                failures.append(row["unit_name"])
    assert failures == []


def seed_names(text: str) -> list[tuple[str, Level, str | None]]:
    """Every unit name the seed prints in a table or group header: (name, level, district)."""
    names: list[tuple[str, Level, str | None]] = []
    section: Level | None = None
    district: str | None = None
    for line in text.splitlines():
        if line.startswith(("Bảng 1", "1 Sở, ban, ngành")):
            section, district = "department", None
        elif line.startswith(("Bảng 2", "Bảng 3", "2 Quận, huyện")):
            section, district = "district", None
        elif line.startswith("3. Xã, phường, thị trấn"):
            section = "commune"
        elif section == "commune" and re.match(r"- (Huyện|Quận) ", line):
            district = line
            names.append((line, "district", None))
        cells = line.split("\t")
        if section and len(cells) > 2 and cells[0].strip().isdigit():
            names.append((cells[1].strip(), section, district))
    return names


def test_every_unit_name_printed_in_seed_000_resolves(hp: UnitRegistry) -> None:
    names = seed_names(need(SEED_000).read_text(encoding="utf-8"))
    # Bảng 1-3 (18 + 15 + 15 rows), Phụ lục 1-3 (19 + 15 + 217 rows), 14 district headers.
    assert len(names) == 18 + 15 + 15 + 19 + 15 + 217 + 14
    failures: list[str] = []
    for name, level, district in names:
        parent = hp.resolve(district, level="district").code if district else None
        try:
            unit = hp.resolve(name, on=REPORT_DAY, level=level, parent_code=parent)
        except LookupError as exc:
            failures.append(str(exc))
            continue
        try:  # without the district hint: the same unit, or an honest ambiguity
            assert hp.resolve(name) == unit
        except AmbiguousUnitName as exc:
            assert unit in exc.candidates
    assert failures == []


@pytest.mark.parametrize(
    ("prose", "code"),
    [
        ("Sở Tư Pháp", "HP-SO-TUPHAP"),
        ("Sở Lao động Thương binh và Xã hội", "HP-SO-LDTBXH"),
        ("Sở Tài nguyên và Môi trường", "HP-SO-TNMT"),
        ("Sở Kế hoạch và Đầu tư", "HP-SO-KHDT"),
        ("Ủy ban nhân dân huyện An Lão", "HP-Q-313"),
        ("Sở Giao thông vận tải", "HP-SO-GTVT"),
        ("Sở Thông tin và Truyền thông", "HP-SO-TTTT"),
    ],
)
def test_prose_names_of_seed_000_resolve(hp: UnitRegistry, prose: str, code: str) -> None:
    assert hp.resolve(prose, on=REPORT_DAY).code == code


# --- normalization -------------------------------------------------------------------------

SAME = [
    ("Xã An Hòa", unicodedata.normalize("NFD", "Xã An Hòa")),  # NFC vs NFD
    ("Thị Trấn Cát Bà", "Thị trấn Cát Bà"),
    ("Quận Lê Chân", "quận Lê Chân"),
    ("  Xã   Bắc\u00a0Sơn ", "Xã Bắc Sơn"),
    ("Sở Lao động - Thương binh", "Sở Lao động–Thương binh"),
    ("Sở Lao động - Thương binh", "Sở Lao động — Thương binh"),
    ("Sở Lao động-Thương binh", "Sở Lao động − Thương binh"),
    ("- Huyện Kiên Thụy", "Huyện Kiên Thụy"),
    ("Xã An Hòa(An Dương )", "Xã An Hòa (An Dương)"),
    ("Hoà", "Hòa"),
    ("Khoá", "Khóa"),
    ("Thoả", "Thỏa"),
    ("Hoã", "Hõa"),
    ("Hoạ", "Họa"),
    ("Thuỳ", "Thùy"),
    ("Thuý", "Thúy"),
    ("Thuỷ", "Thủy"),
    ("Thuỹ", "Thũy"),
    ("Thuỵ", "Thụy"),
    ("Xoè", "Xòe"),
    ("Khoẻ", "Khỏe"),
    ("Loé", "Lóe"),
    ("Hoẹ", "Họe"),
    ("Uỷ ban", "Ủy ban"),
    ("UBND huyện An Lão", "huyện An Lão"),
    ("UBND. huyện An Lão", "huyện An Lão"),
    ("Ủy ban nhân dân huyện An Lão", "Huyện An Lão"),
    ("Uỷ ban nhân dân huyện An Lão", "Huyện An Lão"),
    ("UỶ BAN NHÂN DÂN HUYỆN AN LÃO", "Huyện An Lão"),
    ("TT. Cát Bà", "Thị trấn Cát Bà"),
    ("TT.Cát Bà", "Thị trấn Cát Bà"),
    ("TT Núi Đèo", "Thị trấn Núi Đèo"),
]

DIFFERENT = [
    ("Huyện Kiên Thụy", "Huyện Kiến Thụy"),  # typo: an alias, not normalization
    ("Quận Kiên An", "Quận Kiến An"),
    ("Bạch Long Vỹ", "Bạch Long Vĩ"),
    ("Phường Bàng La", "Phường Bằng La"),
    ("Sở LĐ-TB&XH", "Sở Lao động - Thương binh và Xã hội"),  # abbreviation: an alias
    ("Sở Lao động - Thương binh", "Sở Lao động Thương binh"),
    ("Xã Hoàng Châu", "Xã Hòang Châu"),  # tone inside a closed syllable is not moved
    ("Văn phòng Ủy ban nhân dân", "Văn phòng"),  # the prefix is stripped only in front
    ("TTTT", "Thị trấn T"),
]


@pytest.mark.parametrize(("a", "b"), SAME)
def test_normalize_makes_equal(a: str, b: str) -> None:
    assert normalize_name(a) == normalize_name(b)


@pytest.mark.parametrize(("a", "b"), DIFFERENT)
def test_normalize_keeps_distinct(a: str, b: str) -> None:
    assert normalize_name(a) != normalize_name(b)


def test_normalize_output_form() -> None:
    assert normalize_name("UBND Huyện Thuỷ Nguyên") == "huyện thủy nguyên"
    assert normalize_name("Sở Lao động – Thương binh và Xã hội") == (
        "sở lao động-thương binh và xã hội"
    )
    assert normalize_name("Quý") == "quý"  # "qu" is a consonant: nothing to move
    assert normalize_name(normalize_name("Xã An Hoà (An Dương)")) == "xã an hòa (an dương)"


# --- resolution ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("HP-Q-313-16", "HP-Q-313-16"),
        ("Huyện Kiên Thụy", "HP-Q-314"),
        ("Quận Kiên An", "HP-Q-307"),
        ("UBND huyện Bạch Long Vỹ", "HP-Q-318"),
        ("Huyện Bạch Long Vỹ", "HP-Q-318"),
        ("Phường Bằng La", "HP-Q-308-06"),
        ("Xã An Hoà (An Dương)", "HP-Q-312-01"),
        ("Xã An Hòa (Vĩnh Bảo)", "HP-Q-316-01"),
        ("Xã Quốc Tuấn (An Lão)", "HP-Q-313-16"),
        ("Xã Quốc Tuấn (Huyện An Lão)", "HP-Q-313-16"),
        ("Xã Quốc Tuấn (UBND huyện An Lão)", "HP-Q-313-16"),
        ("Xã Quốc Tuấn ( An Dương )", "HP-Q-312-12"),
        ("Xã Bắc Sơn (An Dương)", "HP-Q-312-03"),  # a hint, though not a printed form
        ("Xã Minh Tân (Kiên Thụy)", "HP-Q-314-15"),
        ("Xã Minh Tân (Kiến Thụy)", "HP-Q-314-15"),
        ("TT. Cát Bà", "HP-Q-317-06"),
        ("Sở LĐ-TB&XH", "HP-SO-LDTBXH"),
        ("Sở Nông nghiệp và PTNT", "HP-SO-NNPTNT"),
    ],
)
def test_resolve(hp: UnitRegistry, name: str, code: str) -> None:
    assert hp.resolve(name).code == code


def test_bare_quoc_tuan_is_ambiguous_until_a_hint_disambiguates(hp: UnitRegistry) -> None:
    with pytest.raises(AmbiguousUnitName) as info:
        hp.resolve("Xã Quốc Tuấn")
    assert {u.code for u in info.value.candidates} == {"HP-Q-312-12", "HP-Q-313-16"}
    message = str(info.value)
    assert "HP-Q-312-12" in message and "HP-Q-313-16" in message and "parent_code" in message
    assert hp.resolve("Xã Quốc Tuấn", parent_code="HP-Q-313").code == "HP-Q-313-16"
    assert hp.resolve("xã quốc tuấn", parent_code="HP-Q-312").code == "HP-Q-312-12"


def test_names_without_administrative_prefix(hp: UnitRegistry) -> None:
    assert hp.resolve("Kiến Thụy", level="district").code == "HP-Q-314"
    with pytest.raises(AmbiguousUnitName):  # district, thị trấn and phường An Dương
        hp.resolve("An Dương")
    assert hp.resolve("An Dương", level="district").code == "HP-Q-312"
    with pytest.raises(UnknownUnitName):  # an explicit "xã" never falls back to a district
        hp.resolve("Xã Kiến Thụy", on=LAST_DAY)  # (from 2025-07-01 a commune has this name)


def test_resolve_filters_report_what_excluded_the_match(hp: UnitRegistry) -> None:
    with pytest.raises(UnknownUnitName, match="level=commune"):
        hp.resolve("Ủy ban nhân dân quận Hải An", level="commune")
    with pytest.raises(UnknownUnitName, match="on=2025-07-01"):
        hp.resolve("Sở Kế hoạch và Đầu tư", on=date(2025, 7, 1))
    with pytest.raises(UnknownUnitName):  # the hint names An Lão, the filter An Dương
        hp.resolve("Xã Quốc Tuấn (An Lão)", parent_code="HP-Q-312")
    assert hp.resolve("Sở Tư pháp", on=date(2025, 6, 30)).code == "HP-SO-TUPHAP"


def test_unknown_name_suggests_close_matches(hp: UnitRegistry) -> None:
    with pytest.raises(UnknownUnitName) as info:
        hp.resolve("Xã Quốc Tuân (An Lão)")
    assert "Xã Quốc Tuấn (An Lão)" in str(info.value)
    assert info.value.suggestions
    with pytest.raises(UnknownUnitName, match="Công an thành phố"):
        hp.resolve("Công an thành phố")


def test_bad_arguments(hp: UnitRegistry) -> None:
    with pytest.raises(KeyError) as info:
        hp.get("HP-NOPE")
    assert str(info.value).startswith("no unit with code 'HP-NOPE'")
    with pytest.raises(KeyError, match="Huyện An Lão"):
        hp.resolve("Xã Quốc Tuấn", parent_code="Huyện An Lão")
    with pytest.raises(ValueError, match="allowed levels"):
        hp.resolve("Sở Y tế", level="ward")  # type: ignore[arg-type]
    with pytest.raises(KeyError):
        hp.children("HP-NOPE")
    assert "HP-SO-YTE" in hp and "Sở Y tế" not in hp and 42 not in hp


# --- validation ----------------------------------------------------------------------------

D = "D1,Huyện Một,district,,,,,\n"
C = "C1,Xã Một,commune,D1,,,,\n"

DEFECTS = [
    ("code,name,level,parent_code,valid_from,valid_to,aliases\n", 1, "missing column"),
    (HEADER.strip() + ",extra\n", 1, "unknown column(s) 'extra'"),
    ("", 1, "empty"),
    (HEADER + D + ",Xã Hai,commune,D1,,,,\n", 3, "empty code"),
    (HEADER + "D 1,Huyện,district,,,,,\n", 2, "whitespace"),
    (HEADER + D + "C1,,commune,D1,,,,\n", 3, "empty name"),
    (HEADER + "D1,Huyện Một,ward,,,,,\n", 2, "allowed levels: department, district, commune"),
    (HEADER + D + D.replace("Một", "Hai"), 3, "duplicate code 'D1' (first on line 2)"),
    (HEADER + "D1,Huyện Một,district,,2024-02-30,,,\n", 2, "bad valid_from '2024-02-30'"),
    (HEADER + "D1,Huyện Một,district,,,30/06/2025,,\n", 2, "bad valid_to '30/06/2025'"),
    (HEADER + "D1,Huyện Một,district,,2025-01-02,2025-01-01,,\n", 2, "is before valid_from"),
    (HEADER + D + "C1,Xã Một,commune,D9,,,,\n", 3, "parent_code 'D9' does not exist"),
    (HEADER + D + C + "C2,Xã Hai,commune,C1,,,,\n", 4, "a commune's parent must be a district"),
    (HEADER + "S1,Sở,department,,,,,\n" + "C1,Xã,commune,S1,,,,\n", 3, "is a department"),
    (HEADER + D + "D2,Huyện Hai,district,D1,,,,\n", 3, "a district has no parent"),
    (HEADER + "C1,Xã Một,commune,C2,,,,\nC2,Xã Hai,commune,C1,,,,\n", 2, "parent cycle"),
    (HEADER + "C1,Xã Một,commune,C1,,,,\n", 2, "parent cycle C1 -> C1"),
    (HEADER + "C1,Xã Một,commune,,,2025-06-30,,\n", 2, "has no parent_code"),
    (HEADER + D + "C1,Xã Một,commune,D1,2025-07-01,,,\n", 3, "starts on or after 2025-07-01"),
    (HEADER + D.replace(",,,,,", ",,,2025-06-30,,") + C, 3, "outlives its parent"),
    (HEADER + D + "C1,Xã Một,commune,D1,,,,C9\n", 3, "successor code 'C9' does not exist"),
    (HEADER + D + "C1,Xã Một,commune,D1,,,,D1\n", 3, "valid_to is empty"),
    (HEADER + D + C + "C2,Xã,commune,D1,,,", 4, "7 fields but the header has 8"),
]


@pytest.mark.parametrize(("text", "line", "problem"), DEFECTS)
def test_each_defect_names_its_line_and_problem(text: str, line: int, problem: str) -> None:
    with pytest.raises(RegistryError) as info:
        UnitRegistry.from_text(text, source="units.csv")
    assert f"units.csv:{line}:" in str(info.value)
    assert problem in str(info.value)


def test_all_problems_are_reported_at_once() -> None:
    text = HEADER + "D1,Huyện,district,,,,,\nD2,,district,,,,,\nD3,Huyện,town,,,,,\n"
    with pytest.raises(RegistryError) as info:
        UnitRegistry.from_text(text, source="u.csv")
    assert "u.csv:3:" in str(info.value) and "u.csv:4:" in str(info.value)


def test_files_bom_quotes_and_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "units.csv"
    path.write_text(
        "\ufeff" + HEADER + '\nD1,"Huyện Một, mới",district,,,,"Một | H1 |",\n', encoding="utf-8"
    )
    registry = UnitRegistry.from_csv(path)
    assert registry.get("D1").name == "Huyện Một, mới"
    assert registry.get("D1").aliases == ("Một", "H1")
    bad = tmp_path / "latin1.csv"
    bad.write_bytes((HEADER + "D1,Huyện,district,,,,,\n").encode("utf-16"))
    with pytest.raises(RegistryError, match=r"latin1\.csv: not UTF-8"):
        UnitRegistry.from_csv(bad)


def test_alias_shared_by_indistinguishable_units_is_reported_not_fatal(
    caplog: pytest.LogCaptureFixture,
) -> None:
    text = HEADER + D + "C1,Xã Một,commune,D1,,,Xã Chung,\nC2,Xã Hai,commune,D1,,,Xã Chung,\n"
    with caplog.at_level(logging.WARNING, logger="dossier_stream.core.registry"):
        registry = UnitRegistry.from_text(text, source="u.csv")
    messages = [r.getMessage() for r in caplog.records]
    assert any("u.csv:4:" in m and "'xã chung'" in m and "C1 (line 3)" in m for m in messages)
    with pytest.raises(AmbiguousUnitName):
        registry.resolve("Xã Chung")
    assert registry.resolve("C2").name == "Xã Hai"


# --- eras and successors -------------------------------------------------------------------

ERAS = (
    HEADER
    + "D1,Huyện Một,district,,,2025-06-30,,\n"
    + "C1,Xã An Lão,commune,D1,,2025-06-30,,N1|N2\n"
    + "C2,Xã Hai,commune,D1,2024-01-01,2024-12-31,,C3\n"
    + "C3,Xã Ba,commune,D1,2025-01-01,2025-06-30,,N2\n"
    + "N1,Xã An Lão,commune,,2025-07-01,,,\n"
    + "N2,Phường Mới,commune,,2025-07-01,,Phường Mới Lập,\n"
)


@pytest.fixture(scope="module")
def eras() -> UnitRegistry:
    return UnitRegistry.from_text(ERAS, source="eras.csv")


def test_exists_on_is_inclusive(eras: UnitRegistry) -> None:
    c2 = eras.get("C2")
    assert [c2.exists_on(date(*d)) for d in ((2023, 12, 31), (2024, 1, 1), (2024, 12, 31))] == [
        False,
        True,
        True,
    ]
    assert not c2.exists_on(date(2025, 1, 1))
    assert eras.get("N1").exists_on(date(2099, 1, 1))
    assert eras.get("D1").exists_on(date(1990, 1, 1))
    with pytest.raises(ValueError, match="before start"):
        c2.overlaps(date(2024, 2, 1), date(2024, 1, 1))


def test_units_in_a_range_straddling_the_reorganisation(eras: UnitRegistry) -> None:
    codes = [u.code for u in eras.units_in(date(2025, 6, 15), date(2025, 7, 14))]
    assert codes == ["D1", "C1", "C3", "N1", "N2"]  # file order; C2 ended in 2024


def test_units_in_with_units_ending_and_starting_mid_range(eras: UnitRegistry) -> None:
    def codes(start: date, end: date, level: Level | None = None) -> list[str]:
        return [u.code for u in eras.units_in(start, end, level)]

    # C2 ends on 2024-12-31 and C3 starts on 2025-01-01: both are in a range across the change.
    assert codes(date(2024, 12, 15), date(2025, 1, 15)) == ["D1", "C1", "C2", "C3"]
    assert codes(date(2024, 12, 31), date(2024, 12, 31)) == ["D1", "C1", "C2"]
    assert codes(date(2025, 1, 1), date(2025, 1, 1), "commune") == ["C1", "C3"]
    assert codes(date(2025, 7, 1), date(2025, 7, 1)) == ["N1", "N2"]
    assert codes(date(2025, 7, 1), date(2025, 7, 1), "district") == []
    with pytest.raises(ValueError, match="before start"):
        eras.units_in(date(2025, 2, 1), date(2025, 1, 1))


def test_same_name_in_two_eras_resolves_by_date(eras: UnitRegistry) -> None:
    with pytest.raises(AmbiguousUnitName, match="on=<date>"):
        eras.resolve("Xã An Lão")
    assert eras.resolve("Xã An Lão", on=date(2025, 6, 30)).code == "C1"
    assert eras.resolve("Xã An Lão", on=date(2025, 7, 1)).code == "N1"
    assert eras.resolve("Phường Mới Lập", on=date(2025, 7, 1)).code == "N2"


def test_successors(eras: UnitRegistry) -> None:
    assert eras.get("C1").successor_codes == ("N1", "N2")
    assert eras.get("C2").successor_codes == ("C3",)
    assert [eras.get(c).name for c in eras.get("C1").successor_codes] == [
        "Xã An Lão",
        "Phường Mới",
    ]
    assert eras.children("D1") == [eras.get("C1"), eras.get("C2"), eras.get("C3")]
    assert eras.parent(eras.get("N1")) is None


def test_successor_must_exist_the_day_after_the_unit_ends() -> None:
    text = ERAS.replace("2025-01-01,2025-06-30,,N2", "2025-01-01,2025-06-29,,N2")
    expected = r"eras\.csv:5: successor 'N2' does not exist on 2025-06-30"
    with pytest.raises(RegistryError, match=expected):
        UnitRegistry.from_text(text, source="eras.csv")


def test_unit_value_semantics() -> None:
    unit = Unit("X", "Xã X", "commune", "D", None, None)
    assert unit.aliases == () and unit.successor_codes == ()
    with pytest.raises(AttributeError):
        unit.name = "Y"  # type: ignore[misc]
