"""Compare report outputs with the city's published tables of tháng 10/2024.

The reference tables (``tests/data/haiphong-2024-10/``, a copy of
``shared/reference/haiphong-2024-10/``) name units as printed, typos
included; they are resolved through the registry's aliases, so the
comparison is by unit, whatever the printed spelling.
"""

from __future__ import annotations

import csv
import io
from datetime import date
from fractions import Fraction
from pathlib import Path
from typing import Any

from dossier_stream.core.formatting import format_rate
from dossier_stream.core.registry import Level, UnitRegistry

REFERENCE = Path(__file__).parent / "data" / "haiphong-2024-10"
ON = date(2024, 10, 1)
LEVEL_TOTALS = {
    "received": {"department": 41_818, "district": 4_853, "commune": 30_359},
    "online": {"department": 38_507, "district": 3_596, "commune": 13_512},
    "payment_tx": {"department": 4_904, "district": 1_104, "commune": 9_244},
    "paying_units": {"department": [11, 18], "district": [13, 15], "commune": [130, 217]},
}

Cells = dict[str, dict[str, Any]]
"""``{column: {"text": ..., "value"|"numerator"/"denominator": ...}}`` of one row."""


def reference(name: str) -> list[dict[str, str]]:
    with (REFERENCE / name).open(encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def rate_matches(printed: str, numerator: int, denominator: int) -> bool:
    """Our rate prints as ``printed``, or differs by 0,01 where the exact value ends in 5.

    The issue allows the seed's own rounding slips only where the exact
    percent has a 5 at the third decimal (half-up vs. half-down).
    """
    ours = format_rate(numerator, denominator)
    theirs = _percent(printed)
    if _percent(ours) == theirs:  # the seed once keeps a trailing zero: 82,50%
        return True
    if denominator == 0:
        return False
    exact = Fraction(numerator * 100, denominator)
    thousandths = exact * 1000
    if thousandths.denominator != 1 or thousandths.numerator % 10 != 5:
        return False
    return abs(theirs - _percent(ours)) == Fraction(1, 100)


def _percent(text: str) -> Fraction:
    return Fraction(text.rstrip("%").replace(",", "."))


def rows_from_csv(text: str) -> dict[tuple[str, str], Cells]:
    """``{(table, unit_code): cells}`` from the long CSV of ``report --format csv``."""
    out: dict[tuple[str, str], Cells] = {}
    for rec in csv.DictReader(io.StringIO(text)):
        cell: dict[str, Any] = {"text": rec["text"]}
        if rec["numerator"]:
            cell |= {"numerator": int(rec["numerator"]), "denominator": int(rec["denominator"])}
        elif rec["value"] and "," not in rec["text"] and not rec["text"].endswith("%"):
            cell["value"] = int(rec["value"])
        out.setdefault((rec["table"], rec["unit_code"]), {})[rec["column"]] = cell
    return out


def rows_from_json(report: dict[str, Any]) -> dict[tuple[str, str], Cells]:
    """The same from the ``tables`` of ``report --format json``."""
    out: dict[tuple[str, str], Cells] = {}
    for table in report["tables"]:
        for row in table["rows"]:
            cells = {}
            for column, cell in zip(table["columns"], row["cells"], strict=True):
                cells[column] = cell if isinstance(cell, dict) else {"text": cell}
            out[(table["key"], row["unit_code"])] = cells
    return out


def compare(rows: dict[tuple[str, str], Cells], registry: UnitRegistry) -> list[str]:
    """Every reference row against ``rows``; returns the differences (empty when equal)."""
    problems: list[str] = []

    def check_rate(where: str, cell: dict[str, Any] | None, printed: str) -> None:
        if cell is None:
            problems.append(f"{where}: missing")
        elif not rate_matches(printed, cell["numerator"], cell["denominator"]):
            problems.append(f"{where}: {cell['text']} != {printed}")

    tables = {"department": "bang-1", "district": "bang-2", "commune_by_district": "bang-3"}
    for rec in reference("online-rates.csv"):
        level = "department" if rec["table_level"] == "department" else "district"
        code = registry.resolve(rec["unit_name"], on=ON, level=level).code
        cells = rows.get((tables[rec["table_level"]], code), {})
        where = f"{rec['table_level']} {rec['unit_name']}"
        check_rate(
            where + " (DVCTT)",
            cells.get("Tỷ lệ % hồ sơ trực tuyến trên tổng hồ sơ của các DVCTT"),
            rec["online_rate_of_online_service_dossiers"],
        )
        check_rate(
            where + " (all)",
            cells.get("Tỷ lệ % hồ sơ trực tuyến trên tổng hồ sơ"),
            rec["online_rate_of_all_dossiers"],
        )
    counts = {
        "resolved_total": "Tổng số hồ sơ đã giải quyết",
        "with_component_files": "Có file thành phần hồ sơ đính kèm",
        "with_result_file": "Có file kết quả đính kèm",
        "with_both": "Có file thành phần hồ sơ và file KQ đính kèm",
    }
    rates = {
        "rate_component_files": "Tỷ lệ có file thành phần hồ sơ đính kèm",
        "rate_result_file": "Tỷ lệ có file kết quả đính kèm",
        "rate_both": "Tỷ lệ có file thành phần hồ sơ và file KQ đính kèm",
    }
    for rec in reference("digitization.csv"):
        parent = None
        if rec["level"] == "commune":
            parent = registry.resolve(rec["district_as_printed"], on=ON, level="district").code
        level: Level = "commune"
        if rec["level"] in ("department", "district"):
            level = "department" if rec["level"] == "department" else "district"
        unit = registry.resolve(rec["unit_name"], on=ON, level=level, parent_code=parent)
        table = f"so-hoa-{parent}" if parent else f"so-hoa-{rec['level']}"
        cells = rows.get((table, unit.code), {})
        where = f"digitization {rec['unit_name']}"
        for ref_col, col in counts.items():
            got = cells.get(col, {}).get("value")
            if got != int(rec[ref_col]):
                problems.append(f"{where} {ref_col}: {got} != {rec[ref_col]}")
        for ref_col, col in rates.items():
            check_rate(f"{where} {ref_col}", cells.get(col), rec[ref_col])
    return problems


def compare_totals(report: dict[str, Any]) -> list[str]:
    """The level totals of section 1 and of the online payments."""
    online = report["indicators"]["online_submission"]["levels"]
    pay = report["online_payment_transactions"]
    got = {
        "received": report["received"]["levels"],
        "online": {lvl: f["numerator"] for lvl, f in online.items()},
        "payment_tx": pay["levels"],
        "paying_units": pay["units_with_transactions"],
    }
    return [
        f"{what}: {got[what]} != {expected}"
        for what, expected in LEVEL_TOTALS.items()
        if got[what] != expected
    ]
