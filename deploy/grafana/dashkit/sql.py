"""Indicators, wording and SQL fragments shared by every ClickHouse panel.

Words follow the city's reports (``shared/seeds``, ``spec/indicators.md``): an
indicator is named by its report title (:data:`INDICATORS` of
``dossier_stream.core.indicators``), a level as the reports name it, a rate as
``đạt 72,2% (55.615/77.030 hồ sơ)``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import yaml

from dossier_stream.core.indicators import INDICATORS
from dossier_stream.core.registry import LEVELS

RULES_FILE: Final = Path(__file__).resolve().parents[2] / "prometheus" / "rules.yml"

LEVEL_WORDS: Final = {
    "department": "Sở, ngành",
    "district": "Quận, huyện",
    "commune": "Xã, phường, thị trấn",
}
"""Column header of each level (as the reports' "các Sở, ngành", "các quận, huyện"...)."""
LEVEL_TITLES: Final = {
    "department": "cấp sở, ngành",
    "district": "cấp quận, huyện",
    "commune": "cấp xã, phường, thị trấn",
}
"""A level in a sentence or a title."""

NO_DOSSIERS: Final = "không có hồ sơ"
MET, NOT_MET = "đạt", "chưa đạt"


def _alert_threshold(alert: str) -> float:
    """The ``> x`` ratio of an alert of ``deploy/prometheus/rules.yml``, in percent."""
    doc = yaml.safe_load(RULES_FILE.read_text(encoding="utf-8"))
    for group in doc["groups"]:
        for rule in group["rules"]:
            if rule.get("alert") == alert:
                found = re.search(r"\)\s*>\s*([0-9.]+)", rule["expr"])
                if found is None:
                    raise ValueError(f"{alert}: no '> ratio' in its expression")
                return round(float(found.group(1)) * 100, 6)
    raise KeyError(f"no alert {alert} in {RULES_FILE}")


def alert_names() -> dict[str, list[str]]:
    """The alert names of ``deploy/prometheus/rules.yml`` per rule group, in file order."""
    doc = yaml.safe_load(RULES_FILE.read_text(encoding="utf-8"))
    return {g["name"]: [r["alert"] for r in g["rules"] if "alert" in r] for g in doc["groups"]}


OVERDUE_ALERT: Final = "DossierUnitOverdueRateHigh"
OVERDUE_LIMIT: Final = _alert_threshold(OVERDUE_ALERT)
"""Percent of completed dossiers late above which a unit is flagged (the alert's 5 %)."""
OVERDUE_MIN_COMPLETED: Final = 20
"""Completed dossiers from which the alert judges a unit (``>= 20`` in rules.yml)."""


@dataclass(frozen=True)
class Rate:
    """One indicator as the dashboards use it.

    Attributes:
        key: the indicator's key (``online_submission``...).
        label: its title in the city's reports (Vietnamese).
        numerator, denominator: its counters.
        op: ``">="``, ``"="`` or ``""`` (no target).
        target: the target in percent (0 without one).
        limit: a warning threshold in percent for an indicator without a target
            where more is worse (overdue: the alert's 5 %), else ``None``.
    """

    key: str
    label: str
    numerator: str
    denominator: str
    op: str
    target: int
    limit: float | None = None

    @property
    def target_text(self) -> str:
        """``≥ 60%``, ``= 100%``, ``ngưỡng ≤ 5%`` or ``—``."""
        if self.op:
            return f"{'≥' if self.op == '>=' else '='} {self.target}%"
        if self.limit is not None:
            return f"ngưỡng ≤ {self.limit:g}%"
        return "—"

    def sql_tuple(self) -> str:
        """``(key, label, numerator, denominator, op, target, target text)`` in SQL."""
        return (
            f"({lit(self.key)}, {lit(self.label)}, {lit(self.numerator)}, "
            f"{lit(self.denominator)}, {lit(self.op)}, {self.target}, {lit(self.target_text)})"
        )


def _rates() -> dict[str, Rate]:
    # ``synchronisation`` is left out: its denominator is a unit's report for
    # exactly a closed period (``dossier-stream report``).
    out = {}
    for ind in INDICATORS:
        if ind.key == "synchronisation":
            continue
        op, target = "", 0
        if ind.target is not None:
            op = ">=" if ind.target.startswith(">=") else "="
            target = int(ind.target.removeprefix(op))
        limit = OVERDUE_LIMIT if ind.key == "overdue" else None
        out[ind.key] = Rate(ind.key, ind.title, ind.numerator, ind.denominator, op, target, limit)
    return out


RATES: Final = _rates()
LABELS: Final = {key: rate.label for key, rate in RATES.items()}
TARGETED: Final = tuple(r for r in RATES.values() if r.op)


def lit(text: str) -> str:
    """A ClickHouse string literal."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def ident(text: str) -> str:
    """A ClickHouse quoted identifier (a column name as Grafana shows it)."""
    return '"' + text.replace('"', "") + '"'


def array(rates: Iterable[Rate]) -> str:
    """The rates as a ClickHouse array of tuples (see :meth:`Rate.sql_tuple`)."""
    return "[\n        " + ",\n        ".join(r.sql_tuple() for r in rates) + "\n    ]"


def ratio(num: str, den: str) -> str:
    """Percent rate of two sums, NULL when the denominator is 0 (no dossiers)."""
    return f"100 * {num} / nullIf({den}, 0)"


def meets(num: str, den: str, op: str, target: str) -> str:
    """Whether the exact fraction meets the target (as ``formatting.meets_target``)."""
    return (
        f"{den} > 0 AND (({op} = '>=' AND {num} * 100 >= {target} * {den}) "
        f"OR ({op} = '=' AND {num} * 100 = {target} * {den}))"
    )


def level_word(column: str) -> str:
    """SQL: the Vietnamese name of the level in ``column``."""
    return (
        f"transform({column}, [{', '.join(map(lit, LEVEL_WORDS))}], "
        f"[{', '.join(map(lit, LEVEL_WORDS.values()))}], {column})"
    )


# Every read of ``unit_day_counters FINAL`` filters in ``PREWHERE``, which runs
# before ``FINAL`` merges a key's versions: on a store of years a panel then merges
# its period's rows only (a panel of the city overview on the 30-million bench
# store: ≈ 2 s → 0,2 s). Only sorting-key columns (source, unit_code, day, counter)
# may be named there: a key's versions then go or stay together. A filter on
# ``value`` before ``FINAL`` could drop a newer version and let an older one win,
# so it belongs in ``WHERE`` (tests/deploy/test_grafana.py checks both).
#
# Day arithmetic shared by the ClickHouse queries: ``anchor`` is the local day
# of the end of the dashboard's time range, ``ptd_start`` the first day of the
# city's monthly period containing it (the 15th), ``r30_start`` 29 days before.
DAYS: Final = (
    "toDate($__toTime, 'Asia/Ho_Chi_Minh') AS anchor,\n"
    "    if(toDayOfMonth(anchor) >= 15, toStartOfMonth(anchor) + 14,\n"
    "       toStartOfMonth(addMonths(anchor, -1)) + 14) AS ptd_start,\n"
    "    anchor - 29 AS r30_start"
)
RANGE_DAYS: Final = (
    "day BETWEEN toDate($__fromTime, 'Asia/Ho_Chi_Minh') AND toDate($__toTime, 'Asia/Ho_Chi_Minh')"
)

# The registry as ClickHouse holds it: one row per unit code (``FINAL``: the
# latest write of each), open-ended validity as the extreme dates of ``Date``.
UNITS: Final = """(
        SELECT code, name, level,
            ifNull(valid_from, toDate('1970-01-01')) AS valid_from,
            ifNull(valid_to, toDate('2149-06-06')) AS valid_to
        FROM units FINAL
    )"""

# Per (unit, indicator) over the period to date: the units the report lists
# (existing on a day of the period, or registered with counts in it) and their
# sums; ``num`` / ``den`` of each indicator of ``indicators``.
UNIT_SUMS: Final = f"""(
        SELECT code, name, level, ind,
            sumIf(total, counter = ind.3) AS num,
            sumIf(total, counter = ind.4) AS den
        FROM (
            SELECT u.code AS code, u.name AS name, u.level AS level,
                t.counter AS counter, t.total AS total
            FROM {UNITS} AS u
            LEFT JOIN (
                SELECT unit_code, counter, sum(value) AS total
                FROM unit_day_counters FINAL
                PREWHERE day BETWEEN ptd_start AND anchor
                GROUP BY unit_code, counter
            ) AS t ON t.unit_code = u.code
            WHERE (u.valid_from <= anchor AND u.valid_to >= ptd_start) OR t.total != 0
        )
        ARRAY JOIN indicators AS ind
        GROUP BY code, name, level, ind
    )"""

__all__ = [
    "DAYS",
    "LABELS",
    "LEVELS",
    "LEVEL_TITLES",
    "LEVEL_WORDS",
    "MET",
    "NOT_MET",
    "NO_DOSSIERS",
    "OVERDUE_ALERT",
    "OVERDUE_LIMIT",
    "OVERDUE_MIN_COMPLETED",
    "RANGE_DAYS",
    "RATES",
    "TARGETED",
    "UNITS",
    "UNIT_SUMS",
    "Rate",
    "alert_names",
    "array",
    "ident",
    "level_word",
    "lit",
    "meets",
    "ratio",
]
