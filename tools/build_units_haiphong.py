"""Build ``src/dossier_stream/data/units_haiphong.csv`` from the October 2024 reference.

Reads ``../shared/reference/haiphong-2024-10/{digitization,online-rates}.csv``
(relative to the repository) and writes the registry of the era that ends on
2025-06-30: 19 department-level units, 15 districts and 217 communes. The output
is deterministic; the data file is committed, so the package never reads
``../shared`` at run time.

Codes: departments ``HP-SO-<SHORT>`` (plus ``HP-BQLKKT``, ``HP-TTTP``), districts
``HP-Q-<GSO district code>``, communes ``HP-Q-<GSO>-<NN>`` numbered in the order
``digitization.csv`` lists them within their district.

Names: as the province prints them, except the typos listed in ``FIXES`` below
(checked against GSO-derived commune lists); tone marks in the modern placement
(Hòa, Thủy). Every spelling printed in the reference tables or in seed 000 that
differs from the name is kept as an alias, plus the abbreviations used in the
city's other reports (``EXTRA_ALIASES``).

Usage::

    .venv/bin/python tools/build_units_haiphong.py          # write the file
    .venv/bin/python tools/build_units_haiphong.py --check  # exit 1 if stale
"""

from __future__ import annotations

import csv
import io
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
REFERENCE = REPO.parent / "shared" / "reference" / "haiphong-2024-10"
OUTPUT = REPO / "src" / "dossier_stream" / "data" / "units_haiphong.csv"
VALID_TO = "2025-06-30"
HEADER = (
    "code",
    "name",
    "level",
    "parent_code",
    "valid_from",
    "valid_to",
    "aliases",
    "successor_codes",
)

sys.path.insert(0, str(REPO / "src"))
from dossier_stream.registry import UnitRegistry, normalize_name  # noqa: E402

# Printed department name (digitization.csv) -> code.
DEPARTMENT_CODES = {
    "Ban quản lý khu kinh tế": "HP-BQLKKT",
    "Sở Công thương": "HP-SO-CONGTHUONG",
    "Sở Du lịch": "HP-SO-DULICH",
    "Sở Giao thông vận tải": "HP-SO-GTVT",
    "Sở Giáo dục và Đào tạo": "HP-SO-GDDT",
    "Sở Khoa học và Công nghệ": "HP-SO-KHCN",
    "Sở Lao động - Thương binh và Xã hội": "HP-SO-LDTBXH",
    "Sở Ngoại vụ": "HP-SO-NGOAIVU",
    "Sở Nông nghiệp và Phát triển nông thôn": "HP-SO-NNPTNT",
    "Sở Nội vụ": "HP-SO-NOIVU",
    "Sở Thông tin và Truyền thông": "HP-SO-TTTT",
    "Sở Tài chính": "HP-SO-TAICHINH",
    "Sở Văn hóa và Thể thao": "HP-SO-VHTT",
    "Sở Xây dựng": "HP-SO-XAYDUNG",
    "Sở Y tế": "HP-SO-YTE",
    "Sở Tư pháp": "HP-SO-TUPHAP",
    "Sở Tài nguyên và Môi trường": "HP-SO-TNMT",
    "Sở Kế hoạch và Đầu tư": "HP-SO-KHDT",
    "Thanh tra thành phố": "HP-TTTP",
}

# GSO district code -> (kind, name). Official style "Ủy ban nhân dân <kind> <name>".
DISTRICTS = {
    "303": ("quận", "Hồng Bàng"),
    "304": ("quận", "Ngô Quyền"),
    "305": ("quận", "Lê Chân"),
    "306": ("quận", "Hải An"),
    "307": ("quận", "Kiến An"),
    "308": ("quận", "Đồ Sơn"),
    "309": ("quận", "Dương Kinh"),
    "311": ("huyện", "Thủy Nguyên"),
    "312": ("huyện", "An Dương"),
    "313": ("huyện", "An Lão"),
    "314": ("huyện", "Kiến Thụy"),
    "315": ("huyện", "Tiên Lãng"),
    "316": ("huyện", "Vĩnh Bảo"),
    "317": ("huyện", "Cát Hải"),
    "318": ("huyện", "Bạch Long Vĩ"),
}

# Typos in the printed district names (bare name -> correct bare name).
DISTRICT_FIXES = {"Kiên Thụy": "Kiến Thụy", "Kiên An": "Kiến An", "Bạch Long Vỹ": "Bạch Long Vĩ"}

# Printed commune name -> official name (typos, old tone placement, case).
FIXES = {
    "Xã An Hoà (An Dương)": "Xã An Hòa (An Dương)",
    "Xã Hoà Bình (Thủy Nguyên)": "Xã Hòa Bình (Thủy Nguyên)",
    "Thị Trấn Cát Bà": "Thị trấn Cát Bà",
    "Xã Minh Tân (Kiên Thụy)": "Xã Minh Tân (Kiến Thụy)",
    "Thị trấn Núi Đồi": "Thị trấn Núi Đối",
    "Xã Kiên Quốc": "Xã Kiến Quốc",
    "Xã Kiên Bái": "Xã Kiền Bái",
    "Xã An Tiên": "Xã An Tiến",
    "Xã Tụ Cường": "Xã Tự Cường",
    "Xã Trần Dương": "Xã Trấn Dương",
    "Xã Vĩnh Quang (Vĩnh Bảo)": "Xã Vinh Quang (Vĩnh Bảo)",
    "Phường Văn Đầu": "Phường Văn Đẩu",
    "Phường Bằng La": "Phường Bàng La",
}

# Spellings seen outside the reference CSVs (seed 000 prose, the city's other reports).
EXTRA_ALIASES = {
    "HP-BQLKKT": ("Ban Quản lý Khu kinh tế Hải Phòng", "Ban Quản lý Khu kinh tế HP", "BQL KKT"),
    "HP-SO-CONGTHUONG": ("Sở Công Thương",),
    "HP-SO-GDDT": ("Sở GD&ĐT",),
    "HP-SO-KHCN": ("Sở KH&CN",),
    "HP-SO-KHDT": ("Sở KH&ĐT",),
    "HP-SO-LDTBXH": ("Sở Lao động Thương binh và Xã hội", "Sở LĐ-TB&XH"),
    "HP-SO-NNPTNT": ("Sở Nông nghiệp và PTNT", "Sở NN&PTNT"),
    "HP-SO-TNMT": ("Sở Tài Nguyên và Môi trường", "Sở TN&MT"),
    "HP-SO-TTTT": ("Sở Thông tin và TT", "Sở TT&TT"),
    "HP-SO-TUPHAP": ("Sở Tư Pháp",),
    "HP-SO-VHTT": ("Sở VH&TT",),
    "HP-TTTP": ("Thanh tra thành phố Hải Phòng",),
}
# The GSO spells Ngô Quyền's ward "Đổng Quốc Bình"; the province prints "Đồng" (kept).
COMMUNE_EXTRA_ALIASES = {"Phường Đồng Quốc Bình": ("Phường Đổng Quốc Bình",)}


def _read(name: str) -> list[dict[str, str]]:
    with (REFERENCE / name).open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def _district_gso(printed: str) -> str:
    """Return the GSO code of a printed district name ("UBND huyện Kiên Thụy")."""
    bare = normalize_name(printed).split(" ", 1)[1]
    for wrong, right in DISTRICT_FIXES.items():
        if bare == normalize_name(wrong):
            bare = normalize_name(right)
    for gso, (_, name) in DISTRICTS.items():
        if normalize_name(name) == bare:
            return gso
    raise SystemExit(f"unknown district {printed!r}; add it to DISTRICTS or DISTRICT_FIXES")


def _aliases(name: str, printed: list[str]) -> str:
    return "|".join(dict.fromkeys(p for p in printed if p != name))


def build() -> str:
    """Return the registry CSV text."""
    digitization, online = _read("digitization.csv"), _read("online-rates.csv")
    printed: dict[str, list[str]] = {}  # code -> printed spellings, first seen first
    departments: list[str] = []
    communes: dict[str, list[tuple[str, str]]] = {gso: [] for gso in DISTRICTS}
    for row in digitization:
        level, unit = row["level"], row["unit_name"]
        if level == "department":
            departments.append(unit)
            printed.setdefault(DEPARTMENT_CODES[unit], []).append(unit)
        elif level == "district":
            printed.setdefault(f"HP-Q-{_district_gso(unit)}", []).append(unit)
        else:
            gso = _district_gso(row["district_as_printed"])
            printed.setdefault(f"HP-Q-{gso}", []).append(row["district_as_printed"])
            code = f"HP-Q-{gso}-{len(communes[gso]) + 1:02d}"
            communes[gso].append((code, unit))
            printed.setdefault(code, []).append(unit)
    for row in online:
        unit = row["unit_name"]
        if row["table_level"] == "department":
            printed.setdefault(DEPARTMENT_CODES[unit], []).append(unit)
        else:
            printed.setdefault(f"HP-Q-{_district_gso(unit)}", []).append(unit)

    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(HEADER)
    for unit in departments:
        code = DEPARTMENT_CODES[unit]
        spellings = printed[code] + list(EXTRA_ALIASES.get(code, ()))
        writer.writerow([code, unit, "department", "", "", VALID_TO, _aliases(unit, spellings), ""])
    for gso, (kind, bare) in DISTRICTS.items():
        code, name = f"HP-Q-{gso}", f"Ủy ban nhân dân {kind} {bare}"
        writer.writerow(
            [code, name, "district", "", "", VALID_TO, _aliases(name, printed.get(code, [])), ""]
        )
    for gso, rows in communes.items():
        for code, unit in rows:
            name = FIXES.get(unit, unit)
            spellings = printed[code] + list(COMMUNE_EXTRA_ALIASES.get(unit, ()))
            cells = [code, name, "commune", f"HP-Q-{gso}", "", VALID_TO, _aliases(name, spellings)]
            writer.writerow([*cells, ""])
    return out.getvalue()


def main(argv: list[str]) -> int:
    """Write (or with ``--check``, compare) the data file; return the exit status."""
    text = build()
    registry = UnitRegistry.from_text(text, source="<built>")
    counts = {
        level: sum(1 for u in registry if u.level == level)
        for level in ("department", "district", "commune")
    }
    if counts != {"department": 19, "district": 15, "commune": 217}:
        raise SystemExit(f"unexpected unit counts {counts}")
    if "--check" in argv:
        current = OUTPUT.read_text(encoding="utf-8") if OUTPUT.exists() else ""
        if current != text:
            print(f"{OUTPUT} is stale; run tools/build_units_haiphong.py", file=sys.stderr)
            return 1
        return 0
    OUTPUT.write_text(text, encoding="utf-8", newline="")
    print(f"wrote {OUTPUT} ({len(registry)} units: {counts})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
