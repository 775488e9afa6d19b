"""Generate the Grafana dashboards of dossier-stream (``deploy/grafana/dashboards/*.json``).

The dashboards are code: edit this file, then run it to rewrite the JSON that
Grafana provisions (``tests/deploy/test_grafana.py`` fails when they differ)::

    .venv/bin/python deploy/grafana/generate.py
    .venv/bin/python deploy/grafana/generate.py --check    # exit 1 if the JSON is stale

Three dashboards, every datasource referenced by its pinned uid (the ones of
``provisioning/datasources/datasources.yml``):

* *City overview* (ClickHouse): each indicator city-wide and per level, for
  the city's period to date (15th → 14th) and the last 30 days, against the
  targets; units meeting each target; daily city-wide trends; the units with
  most dossiers open past their due time.
* *Unit drill-down* (ClickHouse): template variables ``level`` → ``unit``;
  the unit's indicators, the daily trend of each rate, its daily volumes and
  the list of its dossiers open past their effective due time.
* *Pipeline health* (Prometheus, plus ClickHouse for dead letters): events
  consumed, dead letters, duplicates, consumer lag, processing latency,
  ClickHouse flushes, open dossiers.

Unit levels and names come from the ``units`` table (the unit registry that
``dossier-stream init-db`` and the worker write, :mod:`dossier_stream.store.views`);
counts of codes absent from it are left out, as in the report. Rates are computed on the exact
sums of the ``unit_day_counters`` numerators and denominators (deduplicated
with ``FINAL``, as :class:`dossier_stream.store.sink.ClickHouseStore` reads them),
and targets are compared on exact fractions, as the report does.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from dossier_stream.core.registry import LEVELS
from dossier_stream.core.indicators import INDICATORS

HERE: Final = Path(__file__).resolve().parent
DASHBOARD_DIR: Final = HERE / "dashboards"

CLICKHOUSE: Final = {"type": "grafana-clickhouse-datasource", "uid": "dossier-clickhouse"}
PROMETHEUS: Final = {"type": "prometheus", "uid": "dossier-prometheus"}
TIMEZONE: Final = "Asia/Ho_Chi_Minh"
TAGS: Final = ["dossier-stream"]
SCHEMA_VERSION: Final = 39

# Indicators shown live. ``synchronisation`` is left out: its denominator is a
# unit's report for exactly a closed period (``dossier-stream report``).
LABELS: Final = {
    "online_submission": "Online submission",
    "online_submission_of_online_services": "Online submission (online services)",
    "online_payment": "Online payment",
    "cashless_fee": "Cashless fees",
    "digitization_components": "Digitization: component files",
    "digitization_result": "Digitization: result files",
    "digitization": "Digitization: both",
    "digital_reuse": "Digital data reuse",
    "on_time": "Completed on time",
    "overdue": "Completed overdue",
    "first_time_valid": "Valid at first submission",
    "online_result": "Online dossiers with an e-result",
    "feedback_on_time": "Feedback resolved on time",
}
RECEPTION_RATES: Final = (
    "online_submission",
    "online_submission_of_online_services",
    "online_payment",
    "cashless_fee",
    "digital_reuse",
)
COMPLETION_RATES: Final = (
    "digitization_components",
    "digitization_result",
    "digitization",
    "on_time",
    "overdue",
    "first_time_valid",
)

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


@dataclass(frozen=True)
class Rate:
    """One indicator as the dashboards use it."""

    key: str
    label: str
    title: str
    numerator: str
    denominator: str
    op: str  # ">=", "=" or "" (no target)
    target: int

    @property
    def target_text(self) -> str:
        return f"{'≥' if self.op == '>=' else '='} {self.target}%" if self.op else "—"

    def sql_tuple(self) -> str:
        return (
            f"({_lit(self.key)}, {_lit(self.label)}, {_lit(self.numerator)}, "
            f"{_lit(self.denominator)}, {_lit(self.op)}, {self.target}, {_lit(self.target_text)})"
        )


def _rates() -> dict[str, Rate]:
    out = {}
    for ind in INDICATORS:
        if ind.key == "synchronisation":
            continue
        if ind.key not in LABELS:
            raise KeyError(f"indicator {ind.key!r} has no label in LABELS: add one")
        op, target = "", 0
        if ind.target is not None:
            op = ">=" if ind.target.startswith(">=") else "="
            target = int(ind.target.removeprefix(op))
        out[ind.key] = Rate(
            ind.key, LABELS[ind.key], ind.title, ind.numerator, ind.denominator, op, target
        )
    return out


RATES: Final = _rates()
TARGETED: Final = tuple(r for r in RATES.values() if r.op)


def _lit(text: str) -> str:
    """A ClickHouse string literal."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _ident(text: str) -> str:
    """A ClickHouse quoted identifier (column alias shown by Grafana)."""
    return '"' + text.replace('"', "") + '"'


def _array(rates: Iterable[Rate]) -> str:
    return "[\n        " + ",\n        ".join(r.sql_tuple() for r in rates) + "\n    ]"


def _ratio(num: str, den: str) -> str:
    """Percent rate of two sums, NULL when the denominator is 0 (no dossiers)."""
    return f"100 * {num} / nullIf({den}, 0)"


def _meets(num: str, den: str, op: str, target: str) -> str:
    """Whether the exact fraction meets the target (as ``formatting.meets_target``)."""
    return (
        f"{den} > 0 AND (({op} = '>=' AND {num} * 100 >= {target} * {den}) "
        f"OR ({op} = '=' AND {num} * 100 = {target} * {den}))"
    )


# The registry as ClickHouse holds it: one row per unit code (``FINAL``: the
# latest write of each), open-ended validity as the extreme dates of ``Date``.
UNITS: Final = """(
        SELECT code, name, level,
            ifNull(valid_from, toDate('1970-01-01')) AS valid_from,
            ifNull(valid_to, toDate('2149-06-06')) AS valid_to
        FROM units FINAL
    )"""


# ----------------------------------------------------------------- queries
def sql_indicators_by_level(window: str) -> str:
    """Every indicator city-wide and per level over ``ptd`` or ``r30`` days."""
    start = {"ptd": "ptd_start", "r30": "r30_start"}[window]
    level_cols = ",\n    ".join(
        _ratio(
            f"sumIf(total, counter = ind.3 AND level = {_lit(lvl)})",
            f"sumIf(total, counter = ind.4 AND level = {_lit(lvl)})",
        )
        + f" AS {_ident(lvl.capitalize())}"
        for lvl in LEVELS
    )
    num, den = '"Numerator"', '"Denominator"'
    return f"""WITH
    {DAYS},
    {_array(RATES.values())} AS indicators
SELECT
    ind.2 AS "Indicator",
    ind.7 AS "Target",
    {_ratio(num, den)} AS "City",
    {level_cols},
    sumIf(total, counter = ind.3) AS {num},
    sumIf(total, counter = ind.4) AS {den},
    multiIf(ind.5 = '', '', {den} = 0, 'no dossiers',
            {_meets(num, den, "ind.5", "ind.6")}, 'met', 'not met') AS "City target"
FROM (
    SELECT u.level AS level, c.counter AS counter, sum(c.value) AS total
    FROM unit_day_counters AS c FINAL
    INNER JOIN {UNITS} AS u ON u.code = c.unit_code
    WHERE c.day BETWEEN {start} AND anchor
    GROUP BY level, counter
)
ARRAY JOIN indicators AS ind
GROUP BY ind
ORDER BY indexOf(indicators, ind)"""


def sql_rate_stat(rate: Rate) -> str:
    """One indicator city-wide: period to date and last 30 days."""
    n, d = _lit(rate.numerator), _lit(rate.denominator)
    return f"""WITH
    {DAYS}
SELECT
    {
        _ratio(
            f"sumIf(c.value, c.counter = {n} AND c.day >= ptd_start)",
            f"sumIf(c.value, c.counter = {d} AND c.day >= ptd_start)",
        )
    } AS "Period to date",
    {
        _ratio(
            f"sumIf(c.value, c.counter = {n} AND c.day >= r30_start)",
            f"sumIf(c.value, c.counter = {d} AND c.day >= r30_start)",
        )
    } AS "Last 30 days"
FROM unit_day_counters AS c FINAL
INNER JOIN {UNITS} AS u ON u.code = c.unit_code
WHERE c.day BETWEEN least(ptd_start, r30_start) AND anchor AND c.counter IN ({n}, {d})"""


def sql_units_meeting_targets() -> str:
    """Per targeted indicator and level: units meeting the target / units of the level.

    Units are those existing on a day of the period to date plus any
    registered unit with counts in it; a unit without dossiers does not meet
    its target (as the report's ``units_meeting_target``).
    """
    level_cols = ",\n    ".join(
        f"concat(toString(countIf(level = {_lit(lvl)} AND met)), '/', "
        f"toString(countIf(level = {_lit(lvl)}))) AS {_ident(lvl.capitalize())}"
        for lvl in LEVELS
    )
    return f"""WITH
    {DAYS},
    {_array(TARGETED)} AS indicators
SELECT
    ind.2 AS "Indicator",
    ind.7 AS "Target",
    {level_cols}
FROM (
    SELECT code, level, ind,
        {
        _meets("sumIf(total, counter = ind.3)", "sumIf(total, counter = ind.4)", "ind.5", "ind.6")
    } AS met
    FROM (
        SELECT u.code AS code, u.level AS level, t.counter AS counter, t.total AS total
        FROM {UNITS} AS u
        LEFT JOIN (
            SELECT unit_code, counter, sum(value) AS total
            FROM unit_day_counters FINAL
            WHERE day BETWEEN ptd_start AND anchor
            GROUP BY unit_code, counter
        ) AS t ON t.unit_code = u.code
        WHERE (u.valid_from <= anchor AND u.valid_to >= ptd_start) OR t.total != 0
    )
    ARRAY JOIN indicators AS ind
    GROUP BY code, level, ind
)
GROUP BY ind
ORDER BY indexOf(indicators, ind)"""


def sql_daily_rate(rates: Sequence[Rate], unit: bool) -> str:
    """Daily rates over the time range, city-wide or for ``${unit}``."""
    cols = ",\n    ".join(
        _ratio(
            f"sumIf(c.value, c.counter = {_lit(r.numerator)})",
            f"sumIf(c.value, c.counter = {_lit(r.denominator)})",
        )
        + f" AS {_ident(r.label)}"
        for r in rates
    )
    counters = sorted({x for r in rates for x in (r.numerator, r.denominator)})
    scope = (
        "WHERE c.unit_code = ${unit:sqlstring}"
        if unit
        else f"INNER JOIN {UNITS} AS u ON u.code = c.unit_code\nWHERE 1"
    )
    return f"""SELECT
    toDateTime(c.day, 'Asia/Ho_Chi_Minh') AS time,
    {cols}
FROM unit_day_counters AS c FINAL
{scope}
    AND c.{RANGE_DAYS}
    AND c.counter IN ({", ".join(_lit(x) for x in counters)})
GROUP BY c.day
ORDER BY c.day"""


def sql_unit_indicators() -> str:
    """The unit's indicators: period to date and last 30 days, against targets."""
    ptd = ('"Numerator (period)"', '"Denominator (period)"')
    r30 = ('"Numerator (30 days)"', '"Denominator (30 days)"')
    return f"""WITH
    {DAYS},
    {_array(RATES.values())} AS indicators
SELECT
    ind.2 AS "Indicator",
    ind.7 AS "Target",
    {_ratio(*ptd)} AS "Period to date",
    sumIf(total, counter = ind.3 AND day >= ptd_start) AS {ptd[0]},
    sumIf(total, counter = ind.4 AND day >= ptd_start) AS {ptd[1]},
    multiIf(ind.5 = '', '', {ptd[1]} = 0, 'no dossiers',
            {_meets(*ptd, "ind.5", "ind.6")}, 'met', 'not met') AS "Target (period)",
    {_ratio(*r30)} AS "Last 30 days",
    sumIf(total, counter = ind.3 AND day >= r30_start) AS {r30[0]},
    sumIf(total, counter = ind.4 AND day >= r30_start) AS {r30[1]}
FROM (
    SELECT day, counter, sum(value) AS total
    FROM unit_day_counters FINAL
    WHERE unit_code = ${{unit:sqlstring}} AND day BETWEEN least(ptd_start, r30_start) AND anchor
    GROUP BY day, counter
)
ARRAY JOIN indicators AS ind
GROUP BY ind
ORDER BY indexOf(indicators, ind)"""


def sql_unit_volumes() -> str:
    """The unit's daily received / completed counts over the time range."""
    return f"""SELECT
    toDateTime(day, 'Asia/Ho_Chi_Minh') AS time,
    sumIf(value, counter = 'received') AS "Received",
    sumIf(value, counter = 'received_online') AS "Received online",
    sumIf(value, counter = 'completed') AS "Completed",
    sumIf(value, counter = 'completed_overdue') AS "Completed overdue"
FROM unit_day_counters FINAL
WHERE unit_code = ${{unit:sqlstring}} AND {RANGE_DAYS}
GROUP BY day
ORDER BY day"""


# Dossiers open at the end of the time range and past their effective due
# time, exactly as ``DossierState.is_open_past_due``: received by then, not
# completed or withdrawn by then, not waiting for a supplement, and either
# asked for supplements more than once (overdue by the national rule) or past
# the stated due time plus the closed supplement pauses. The pauses come from
# the supplement list of the stored state (element 8 of the
# ``dossier_stream.store.codec`` array: [epoch µs, requested, event id], sorted);
# ``pause`` is (closed pause µs, start µs of a pause still open or 0).
def sql_open_past_due(extra: str = "") -> str:
    """Rows of the dossiers open and past due at ``t_us`` (defined by the caller)."""
    return f"""SELECT dossier_id, unit_code, received_at, due_at, supplement_requests, pause
    FROM (
        SELECT
            dossier_id, unit_code, received_at, due_at, supplement_requests,
            arrayFold(
                (acc, s) -> if(s.2, if(acc.2 = 0, (acc.1, s.1), acc),
                               if(acc.2 = 0, acc, (acc.1 + s.1 - acc.2, toInt64(0)))),
                arrayFilter(s -> s.1 <= t_us,
                            JSONExtract(state, 8, 'Array(Tuple(Int64, Bool, String))')),
                (toInt64(0), toInt64(0))) AS pause
        FROM dossier_facts FINAL
        WHERE received_at <= $__toTime_ms
            AND (completed_at IS NULL OR completed_at > $__toTime_ms)
            AND (withdrawn_at IS NULL OR withdrawn_at > $__toTime_ms){extra}
    )
    WHERE pause.2 = 0 AND (supplement_requests > 1
        OR t_us > toUnixTimestamp64Micro(assumeNotNull(due_at)) + pause.1)"""


def sql_open_past_due_units() -> str:
    """Units with most dossiers open and past due at the end of the time range."""
    return f"""WITH toUnixTimestamp64Micro($__toTime_ms) AS t_us
SELECT
    o.unit_code AS "Unit",
    u.name AS "Name",
    u.level AS "Level",
    count() AS "Open past due",
    countIf(o.supplement_requests > 1) AS "Of which: several supplement requests"
FROM (
    {sql_open_past_due()}
) AS o
INNER JOIN {UNITS} AS u ON u.code = o.unit_code
GROUP BY o.unit_code, u.name, u.level
ORDER BY count() DESC, o.unit_code
LIMIT 30"""


def sql_open_past_due_list() -> str:
    """The unit's dossiers open and past due at the end of the time range."""
    due_us = "toUnixTimestamp64Micro(assumeNotNull(due_at)) + pause.1"
    of_unit = sql_open_past_due("\n            AND unit_code = ${unit:sqlstring}")
    return f"""WITH toUnixTimestamp64Micro($__toTime_ms) AS t_us
SELECT
    dossier_id AS "Dossier",
    received_at AS "Received",
    due_at AS "Due (stated)",
    supplement_requests AS "Supplement requests",
    fromUnixTimestamp64Micro({due_us}, 'Asia/Ho_Chi_Minh') AS "Effective due",
    round((t_us - ({due_us})) / 3600e6, 1) AS "Hours past effective due",
    if(supplement_requests > 1, 'more than one supplement request', 'past effective due')
        AS "Why"
FROM (
    {of_unit}
)
ORDER BY "Effective due", dossier_id
LIMIT 1000"""


def sql_unit_info() -> str:
    return f"""SELECT code AS "Code", name AS "Name", level AS "Level",
    valid_from AS "Valid from", valid_to AS "Valid to"
FROM {UNITS}
WHERE code = ${{unit:sqlstring}}"""


def sql_level_variable() -> str:
    return f"""SELECT level
FROM {UNITS}
WHERE code IN (SELECT DISTINCT unit_code FROM unit_day_counters)
GROUP BY level
ORDER BY indexOf(['department', 'district', 'commune'], level)"""


def sql_unit_variable() -> str:
    return f"""SELECT u.code AS value, concat(u.code, ' — ', u.name) AS text
FROM {UNITS} AS u
WHERE u.level = ${{level:sqlstring}}
    AND u.code IN (SELECT DISTINCT unit_code FROM unit_day_counters)
ORDER BY u.code"""


def sql_dead_letters_by_reason() -> str:
    return """SELECT
    code AS "Code",
    any(reason) AS "Reason",
    count() AS "Dead letters",
    uniqExact(topic) AS "Topics",
    max(logged_at) AS "Last logged"
FROM dead_letters FINAL
WHERE $__timeFilter(logged_at)
GROUP BY code
ORDER BY count() DESC, code"""


def sql_dead_letters_over_time() -> str:
    return """SELECT
    $__timeInterval(logged_at) AS time,
    code,
    count() AS dead_letters
FROM dead_letters FINAL
WHERE $__timeFilter(logged_at)
GROUP BY time, code
ORDER BY time, code"""


def sql_recent_dead_letters() -> str:
    return """SELECT
    logged_at AS "Logged",
    topic AS "Topic",
    partition AS "Partition",
    offset AS "Offset",
    code AS "Code",
    detail AS "Detail",
    substring(value, 1, 300) AS "Value (start)"
FROM dead_letters FINAL
WHERE $__timeFilter(logged_at)
ORDER BY logged_at DESC, topic, partition, offset
LIMIT 200"""


# ------------------------------------------------------------------ panels
PLUGIN_VERSION: Final = "4.8.1"
"""The ClickHouse plugin version ``docker-compose.yml`` installs (queries carry it)."""


def ch_target(sql: str, *, timeseries: bool = False, ref: str = "A") -> dict[str, Any]:
    """A ClickHouse SQL query of a panel."""
    return {
        "refId": ref,
        "datasource": CLICKHOUSE,
        "editorType": "sql",
        "pluginVersion": PLUGIN_VERSION,
        "queryType": "timeseries" if timeseries else "table",
        "format": 0 if timeseries else 1,
        "rawSql": sql,
    }


def prom_target(expr: str, legend: str, *, ref: str = "A", instant: bool = False) -> dict[str, Any]:
    """A PromQL query of a panel."""
    return {
        "refId": ref,
        "datasource": PROMETHEUS,
        "editorMode": "code",
        "expr": expr,
        "legendFormat": legend,
        "range": not instant,
        "instant": instant,
    }


def _thresholds(op: str, target: int) -> dict[str, Any]:
    steps: list[dict[str, Any]] = [{"color": "red", "value": None}]
    if op:
        steps.append({"color": "green", "value": target})
    else:
        steps = [{"color": "blue", "value": None}]
    return {"mode": "absolute", "steps": steps}


PERCENT: Final = {"unit": "percent", "decimals": 2, "min": 0, "max": 100, "noValue": "no dossiers"}


class Layout:
    """Assigns panel ids and grid positions, row by row (24 columns)."""

    def __init__(self) -> None:
        self.panels: list[dict[str, Any]] = []
        self._x = 0
        self._y = 0
        self._row_h = 0

    def _place(self, w: int, h: int) -> dict[str, int]:
        if self._x + w > 24:
            self._y += self._row_h
            self._x, self._row_h = 0, 0
        pos = {"h": h, "w": w, "x": self._x, "y": self._y}
        self._x += w
        self._row_h = max(self._row_h, h)
        return pos

    def row(self, title: str) -> None:
        if self._x:
            self._y += self._row_h
            self._x, self._row_h = 0, 0
        self.panels.append(
            {
                "id": len(self.panels) + 1,
                "type": "row",
                "title": title,
                "collapsed": False,
                "gridPos": {"h": 1, "w": 24, "x": 0, "y": self._y},
                "panels": [],
            }
        )
        self._y += 1

    def add(self, panel: dict[str, Any], w: int, h: int) -> None:
        self.panels.append({"id": len(self.panels) + 1, "gridPos": self._place(w, h), **panel})


def stat_panel(rate: Rate) -> dict[str, Any]:
    return {
        "type": "stat",
        "title": f"{rate.label} ({rate.target_text})",
        "description": (
            f"{rate.title}. City-wide {rate.numerator} / {rate.denominator}: the city's "
            "monthly period to date (from the 15th) and the last 30 days, both ending on "
            "the last day of the dashboard's time range. Green when the exact fraction "
            f"meets the target {rate.target_text}."
        ),
        "datasource": CLICKHOUSE,
        "targets": [ch_target(sql_rate_stat(rate))],
        "fieldConfig": {
            "defaults": {**PERCENT, "thresholds": _thresholds(rate.op, rate.target)},
            "overrides": [],
        },
        "options": {
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "colorMode": "background",
            "graphMode": "none",
            "justifyMode": "auto",
            "orientation": "vertical",
            "textMode": "value_and_name",
            "wideLayout": True,
            "showPercentChange": False,
        },
    }


def _rate_overrides(names: Sequence[str]) -> list[dict[str, Any]]:
    return [
        {
            "matcher": {"id": "byName", "options": name},
            "properties": [
                {"id": "unit", "value": "percent"},
                {"id": "decimals", "value": 2},
                {"id": "noValue", "value": "no dossiers"},
            ],
        }
        for name in names
    ]


def _target_override(name: str) -> dict[str, Any]:
    return {
        "matcher": {"id": "byName", "options": name},
        "properties": [
            {
                "id": "mappings",
                "value": [
                    {
                        "type": "value",
                        "options": {
                            "met": {"color": "green", "index": 0},
                            "not met": {"color": "red", "index": 1},
                            "no dossiers": {"color": "orange", "index": 2},
                        },
                    }
                ],
            },
            {"id": "custom.cellOptions", "value": {"type": "color-text"}},
        ],
    }


def table_panel(
    title: str,
    description: str,
    sql: str,
    *,
    rates: Sequence[str] = (),
    target_columns: Sequence[str] = (),
) -> dict[str, Any]:
    return {
        "type": "table",
        "title": title,
        "description": description,
        "datasource": CLICKHOUSE,
        "targets": [ch_target(sql)],
        "fieldConfig": {
            "defaults": {"custom": {"align": "auto", "filterable": False}},
            "overrides": [*_rate_overrides(rates), *map(_target_override, target_columns)],
        },
        "options": {"showHeader": True, "cellHeight": "sm", "footer": {"show": False}},
    }


def timeseries_panel(
    title: str,
    description: str,
    targets: list[dict[str, Any]],
    *,
    datasource: dict[str, str],
    unit: str,
    thresholds: dict[str, Any] | None = None,
    bars: bool = False,
    minimum: float | None = 0,
    maximum: float | None = None,
) -> dict[str, Any]:
    defaults: dict[str, Any] = {
        "unit": unit,
        "custom": {
            "drawStyle": "bars" if bars else "line",
            "lineWidth": 1,
            "fillOpacity": 60 if bars else 10,
            "showPoints": "auto",
            "spanNulls": False,
            "thresholdsStyle": {"mode": "dashed" if thresholds else "off"},
        },
    }
    if minimum is not None:
        defaults["min"] = minimum
    if maximum is not None:
        defaults["max"] = maximum
    if thresholds:
        defaults["thresholds"] = thresholds
    return {
        "type": "timeseries",
        "title": title,
        "description": description,
        "datasource": datasource,
        "targets": targets,
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": {
            "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
            "tooltip": {"mode": "multi", "sort": "none"},
        },
    }


# -------------------------------------------------------------- variables
def ch_query_variable(name: str, label: str, sql: str) -> dict[str, Any]:
    return {
        "type": "query",
        "name": name,
        "label": label,
        "datasource": CLICKHOUSE,
        "query": sql,
        "definition": sql,
        "refresh": 1,
        "sort": 0,
        "multi": False,
        "includeAll": False,
        "hide": 0,
        "regex": "",
        "current": {},
        "options": [],
    }


def dashboard(
    uid: str,
    title: str,
    description: str,
    layout: Layout,
    variables: list[dict[str, Any]],
    *,
    refresh: str,
    time_from: str,
) -> dict[str, Any]:
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": TAGS,
        "timezone": TIMEZONE,
        "editable": False,
        "graphTooltip": 1,
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "refresh": refresh,
        "time": {"from": time_from, "to": "now"},
        "timepicker": {},
        "fiscalYearStartMonth": 0,
        "weekStart": "monday",
        "liveNow": False,
        "annotations": {"list": []},
        "links": [
            {
                "type": "dashboards",
                "title": "dossier-stream",
                "tags": TAGS,
                "asDropdown": True,
                "includeVars": False,
                "keepTime": True,
            }
        ],
        "templating": {"list": variables},
        "panels": layout.panels,
    }


# -------------------------------------------------------------- dashboards
def city_overview() -> dict[str, Any]:
    lay = Layout()
    lay.row("Targets, city-wide: period to date and last 30 days")
    for i, rate in enumerate(TARGETED):
        lay.add(stat_panel(rate), w=4 if i == len(TARGETED) - 1 else 5, h=6)
    level_names = [lvl.capitalize() for lvl in LEVELS]
    for window, title in (("ptd", "period to date"), ("r30", "last 30 days")):
        lay.row(f"Indicators by level, {title}")
        lay.add(
            table_panel(
                f"Indicators by level, {title}",
                (
                    "Each indicator city-wide and per level over "
                    + (
                        "the city's monthly period (15th to 14th) up to the last day of the "
                        "time range."
                        if window == "ptd"
                        else "the 30 days ending on the last day of the time range."
                    )
                    + " Sums of the unit numerators and denominators of registered units; "
                    "'City target' compares the exact city-wide fraction with the target."
                ),
                sql_indicators_by_level(window),
                rates=["City", *level_names],
                target_columns=["City target"],
            ),
            w=24,
            h=12,
        )
    lay.row("Units meeting targets and dossiers open past due")
    lay.add(
        table_panel(
            "Units meeting each target, period to date (met / units)",
            (
                "Per level: units whose exact rate meets the target over the period to date, "
                "out of the units existing in the period. A unit without dossiers does not "
                "meet its target (as in the report)."
            ),
            sql_units_meeting_targets(),
        ),
        w=12,
        h=9,
    )
    lay.add(
        table_panel(
            "Units with most dossiers open past due",
            (
                "Dossiers received, neither completed nor withdrawn, not waiting for a "
                "supplement, and past their effective due time (stated due time plus "
                "supplement pauses; more than one supplement request counts as overdue) at "
                "the end of the time range."
            ),
            sql_open_past_due_units(),
        ),
        w=12,
        h=9,
    )
    lay.row("Daily city-wide rates over the time range")
    for rate in TARGETED:
        lay.add(
            timeseries_panel(
                f"{rate.label}, daily ({rate.target_text})",
                f"{rate.title}: city-wide rate of each day (cohort day); dashed line: target.",
                [ch_target(sql_daily_rate([rate], unit=False), timeseries=True)],
                datasource=CLICKHOUSE,
                unit="percent",
                thresholds=_thresholds(rate.op, rate.target),
                maximum=100,
            ),
            w=12,
            h=8,
        )
    return dashboard(
        "dossier-city-overview",
        "City overview",
        "Official indicators city-wide and per level, against the city's targets.",
        lay,
        [],
        refresh="5m",
        time_from="now-30d",
    )


def unit_drilldown() -> dict[str, Any]:
    lay = Layout()
    lay.add(
        table_panel("Unit", "The unit as registered.", sql_unit_info()),
        w=24,
        h=3,
    )
    lay.add(
        table_panel(
            "Indicators of the unit",
            (
                "The unit's indicators over the city's period to date (15th to 14th) and the "
                "last 30 days, both ending on the last day of the time range."
            ),
            sql_unit_indicators(),
            rates=["Period to date", "Last 30 days"],
            target_columns=["Target (period)"],
        ),
        w=24,
        h=12,
    )
    lay.row("Daily trends over the time range")
    reception = [RATES[k] for k in RECEPTION_RATES]
    completion = [RATES[k] for k in COMPLETION_RATES]
    for title, rates in (
        ("Reception rates, daily", reception),
        ("Completion rates, daily", completion),
        ("Feedback resolved on time, daily", [RATES["feedback_on_time"]]),
    ):
        lay.add(
            timeseries_panel(
                title,
                "Rate of each day's cohort (received, completed or resolved that day).",
                [ch_target(sql_daily_rate(rates, unit=True), timeseries=True)],
                datasource=CLICKHOUSE,
                unit="percent",
                maximum=100,
            ),
            w=12,
            h=8,
        )
    lay.add(
        timeseries_panel(
            "Dossiers per day",
            "Received (all channels and online) and completed (all and overdue) per day.",
            [ch_target(sql_unit_volumes(), timeseries=True)],
            datasource=CLICKHOUSE,
            unit="short",
            bars=True,
        ),
        w=12,
        h=8,
    )
    lay.row("Dossiers open past due")
    lay.add(
        table_panel(
            "Dossiers open past their effective due time",
            (
                "At the end of the time range: received, neither completed nor withdrawn, "
                "not waiting for a supplement, and past the stated due time plus supplement "
                "pauses, or asked for supplements more than once (overdue by the national "
                "rule)."
            ),
            sql_open_past_due_list(),
        ),
        w=24,
        h=12,
    )
    return dashboard(
        "dossier-unit-drilldown",
        "Unit drill-down",
        "One unit: its indicators, daily trends and dossiers open past due.",
        lay,
        [
            ch_query_variable("level", "Level", sql_level_variable()),
            ch_query_variable("unit", "Unit", sql_unit_variable()),
        ],
        refresh="5m",
        time_from="now-30d",
    )


def pipeline_health() -> dict[str, Any]:
    rate = "$__rate_interval"
    lay = Layout()
    lay.row("Now")
    stats = (
        ("Events consumed / s", f"sum(rate(dossier_stream_events_consumed_total[{rate}]))", "ops"),
        ("Consumer lag (messages)", "sum(dossier_stream_consumer_lag_messages)", "short"),
        (
            "Dead letters, last hour",
            "sum(increase(dossier_stream_dead_letters_total[1h]))",
            "short",
        ),
        (
            "ClickHouse flush failures, last hour",
            "sum(increase(dossier_stream_clickhouse_flush_failures_total[1h]))",
            "short",
        ),
        (
            "Workers reporting",
            "count(dossier_stream_clickhouse_flushed_rows_total)",
            "short",
        ),
        ("Dossiers open past due", "sum(dossier_stream_open_past_due_dossiers)", "short"),
    )
    for title, expr, unit in stats:
        lay.add(
            {
                "type": "stat",
                "title": title,
                "datasource": PROMETHEUS,
                "targets": [prom_target(expr, title, instant=True)],
                "fieldConfig": {
                    "defaults": {
                        "unit": unit,
                        "color": {"mode": "fixed", "fixedColor": "blue"},
                    },
                    "overrides": [],
                },
                "options": {
                    "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                    "colorMode": "value",
                    "graphMode": "none",
                    "justifyMode": "auto",
                    "orientation": "auto",
                    "textMode": "value",
                    "wideLayout": True,
                    "showPercentChange": False,
                },
            },
            w=4,
            h=4,
        )
    lay.row("Throughput and lag")
    lay.add(
        timeseries_panel(
            "Events consumed per second, by topic",
            "Messages taken from the input topics (valid and invalid).",
            [
                prom_target(
                    f"sum by (topic) (rate(dossier_stream_events_consumed_total[{rate}]))",
                    "{{topic}}",
                )
            ],
            datasource=PROMETHEUS,
            unit="ops",
        ),
        w=12,
        h=8,
    )
    lay.add(
        timeseries_panel(
            "Consumer lag, by partition",
            "High watermark minus the consumer's position, per assigned partition.",
            [
                prom_target(
                    "max by (topic, partition) (dossier_stream_consumer_lag_messages)",
                    "{{topic}}/{{partition}}",
                )
            ],
            datasource=PROMETHEUS,
            unit="short",
        ),
        w=12,
        h=8,
    )
    lay.add(
        timeseries_panel(
            "Events consumed per second, by event type",
            "invalid: messages that were dead-lettered.",
            [
                prom_target(
                    f"sum by (event_type) (rate(dossier_stream_events_consumed_total[{rate}]))",
                    "{{event_type}}",
                )
            ],
            datasource=PROMETHEUS,
            unit="ops",
        ),
        w=12,
        h=8,
    )
    lay.add(
        timeseries_panel(
            "Duplicates ignored per second, by topic",
            "Valid messages that changed nothing (re-sent events).",
            [
                prom_target(
                    f"sum by (topic) (rate(dossier_stream_duplicates_ignored_total[{rate}]))",
                    "{{topic}}",
                )
            ],
            datasource=PROMETHEUS,
            unit="ops",
        ),
        w=12,
        h=8,
    )
    lay.add(
        timeseries_panel(
            "Mis-keyed messages re-routed per second, by topic",
            "Messages whose key does not belong to the partition they arrived on (a producer "
            "keying otherwise), re-published to the repartition topic and folded there.",
            [
                prom_target(
                    f"sum by (topic) (rate(dossier_stream_rerouted_total[{rate}]))",
                    "{{topic}}",
                )
            ],
            datasource=PROMETHEUS,
            unit="ops",
        ),
        w=12,
        h=8,
    )
    lay.add(
        timeseries_panel(
            "Partitions held at an undecodable batch",
            "1 while a partition is held at a record batch that cannot be decoded (the worker "
            "log names the offset and the cause); the other partitions go on.",
            [
                prom_target(
                    "max by (topic, partition) (dossier_stream_partition_undecodable)",
                    "{{topic}}/{{partition}}",
                )
            ],
            datasource=PROMETHEUS,
            unit="short",
        ),
        w=12,
        h=8,
    )
    lay.row("Latency")
    for title, family in (
        ("Event time to state applied", "dossier_stream_event_apply_latency_seconds"),
        ("Event time to stored in ClickHouse", "dossier_stream_event_flush_latency_seconds"),
    ):
        lay.add(
            timeseries_panel(
                title,
                "Quantiles over all workers; events arriving late (backfills) raise them.",
                [
                    prom_target(
                        f"histogram_quantile({q}, sum by (le) (rate({family}_bucket[{rate}])))",
                        f"p{round(q * 100)}",
                        ref=ref,
                    )
                    for ref, q in (("A", 0.5), ("B", 0.95), ("C", 0.99))
                ],
                datasource=PROMETHEUS,
                unit="s",
            ),
            w=12,
            h=8,
        )
    lay.row("ClickHouse flushes")
    lay.add(
        timeseries_panel(
            "Flush duration",
            "Duration of the flushes that had rows, failed or not.",
            [
                prom_target(
                    "histogram_quantile(0.95, sum by (le) "
                    f"(rate(dossier_stream_clickhouse_flush_duration_seconds_bucket[{rate}])))",
                    "p95",
                ),
                prom_target(
                    f"sum(rate(dossier_stream_clickhouse_flush_duration_seconds_sum[{rate}])) / "
                    f"sum(rate(dossier_stream_clickhouse_flush_duration_seconds_count[{rate}]))",
                    "mean",
                    ref="B",
                ),
            ],
            datasource=PROMETHEUS,
            unit="s",
        ),
        w=8,
        h=8,
    )
    lay.add(
        timeseries_panel(
            "Flushes and rows per second",
            "Flushes with rows, and rows written.",
            [
                prom_target(
                    f"sum(rate(dossier_stream_clickhouse_flush_duration_seconds_count[{rate}]))",
                    "flushes",
                ),
                prom_target(
                    f"sum(rate(dossier_stream_clickhouse_flushed_rows_total[{rate}]))",
                    "rows",
                    ref="B",
                ),
            ],
            datasource=PROMETHEUS,
            unit="ops",
        ),
        w=8,
        h=8,
    )
    lay.add(
        timeseries_panel(
            "Flush failures",
            "Failed flushes per interval; the worker retries and pauses consumption.",
            [
                prom_target(
                    f"sum(increase(dossier_stream_clickhouse_flush_failures_total[{rate}]))",
                    "failures",
                )
            ],
            datasource=PROMETHEUS,
            unit="short",
            bars=True,
        ),
        w=8,
        h=8,
    )
    lay.row("Dead letters")
    lay.add(
        timeseries_panel(
            "Dead letters per second, by reason (Prometheus)",
            "Messages dead-lettered by the workers, by reason code.",
            [
                prom_target(
                    f"sum by (reason) (rate(dossier_stream_dead_letters_total[{rate}])) > 0",
                    "{{reason}}",
                )
            ],
            datasource=PROMETHEUS,
            unit="ops",
        ),
        w=12,
        h=8,
    )
    lay.add(
        timeseries_panel(
            "Dead letters logged, by code (ClickHouse)",
            "Dead letters as logged in the dead_letters table, per interval.",
            [ch_target(sql_dead_letters_over_time(), timeseries=True)],
            datasource=CLICKHOUSE,
            unit="short",
            bars=True,
        ),
        w=12,
        h=8,
    )
    lay.add(
        table_panel(
            "Dead letters by reason (ClickHouse)",
            "Every dead letter logged in the time range, by reason code.",
            sql_dead_letters_by_reason(),
        ),
        w=24,
        h=8,
    )
    lay.add(
        table_panel(
            "Latest dead letters (ClickHouse)",
            "Source topic, partition and offset of the latest dead letters, with their reason.",
            sql_recent_dead_letters(),
        ),
        w=24,
        h=10,
    )
    lay.row("Open dossiers")
    lay.add(
        timeseries_panel(
            "Open dossiers, by level",
            "Received and not completed or withdrawn, and those of them past due.",
            [
                prom_target("sum by (level) (dossier_stream_open_dossiers)", "open {{level}}"),
                prom_target(
                    "sum by (level) (dossier_stream_open_past_due_dossiers)",
                    "past due {{level}}",
                    ref="B",
                ),
            ],
            datasource=PROMETHEUS,
            unit="short",
        ),
        w=24,
        h=8,
    )
    return dashboard(
        "dossier-pipeline-health",
        "Pipeline health",
        "The stream workers: throughput, lag, latency, dead letters, ClickHouse flushes.",
        lay,
        [],
        refresh="30s",
        time_from="now-6h",
    )


# -------------------------------------------------------------------- main
def build() -> dict[str, dict[str, Any]]:
    """Every dashboard by file name."""
    return {
        "city-overview.json": city_overview(),
        "unit-drilldown.json": unit_drilldown(),
        "pipeline-health.json": pipeline_health(),
        **_index766_boards(),
    }


def _index766_boards() -> dict[str, dict[str, Any]]:
    """The dashboards of ``index766.py`` beside this file (the QĐ 766 index, its own generator)."""
    spec = importlib.util.spec_from_file_location("dossier_grafana_index766", HERE / "index766.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    boards: dict[str, dict[str, Any]] = module.build(sys.modules[__name__])
    return boards


def render(board: dict[str, Any]) -> str:
    """The JSON text of a dashboard as committed."""
    return json.dumps(board, indent=2, ensure_ascii=False) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--out", type=Path, default=DASHBOARD_DIR, help="output directory")
    parser.add_argument("--check", action="store_true", help="exit 1 if a file would change")
    args = parser.parse_args(argv)
    stale = []
    for name, board in build().items():
        path = args.out / name
        text = render(board)
        if path.exists() and path.read_text(encoding="utf-8") == text:
            continue
        stale.append(path)
        if not args.check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
    for path in stale:
        print(f"{'stale' if args.check else 'wrote'}: {path}", file=sys.stderr)
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
