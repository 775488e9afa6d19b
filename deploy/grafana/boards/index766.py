"""The *Chỉ số 766* Grafana dashboard (``dashboards/index766.json``), generated from the profile.

``generate.py`` writes it with the other dashboards (one module of ``boards/``);
the SQL is generated from the scoring profile
(:func:`dossier_stream.core.index766.load_profile`, the bundled one; a province
with its own profile sets ``DOSSIER_INDEX766_PROFILE`` and runs
``generate.py`` again). Panels, all on ClickHouse over the city's monthly
period to date (15th → 14th) ending on the last day of the time range, the
period of the worker's gauges:

* the city's estimated points per group (gauges, red under the profile's
  alert threshold) and the total over what the stream observes;
* the units that cost the city the most points: on each sub-indicator the
  points the city loses are shared among the units in proportion to their
  dossiers that do not count (the rule of :mod:`dossier_stream.core.index766_score`);
* a drill-down (variables ``level`` → ``unit``): the unit's counters, rate,
  points per sub-indicator, and the dossiers it needs for full points.

Rates and points are computed in floating point here (display only); the
report (``--template index766``) computes them exactly.
"""

from __future__ import annotations

import os
from fractions import Fraction
from typing import Any, Final

from dashkit.panels import CLICKHOUSE, Layout, ch_query_variable, ch_target, dashboard, table_panel
from dashkit.queries import sql_level_variable, sql_unit_variable
from dashkit.sql import DAYS

from dossier_stream.core.index766 import Profile, SubIndicator, load_profile

FILE: Final = "index766.json"

LEVEL_TEXT: Final = (
    "multiIf(u.level = 'department', 'Cấp sở, ngành', u.level = 'district', 'Cấp huyện', 'Cấp xã')"
)


def _lit(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _ident(text: str) -> str:
    return '"' + text.replace('"', "") + '"'


def _frac(value: Fraction) -> str:
    return f"({value.numerator} / {value.denominator})"


def _col(name: str) -> str:
    return f"c_{name}"


def points_sql(sub: SubIndicator, n: str, d: str) -> str:
    """The sub-indicator's points for sums ``n`` / ``d`` (NULL without dossiers)."""
    rule = sub.rule
    if rule.kind == "linear":
        earned = f"{_frac(sub.points)} * least(1, ({n} / {d}) / {_frac(rule.full_at)})"
    else:
        branches = ", ".join(
            f"{n} * {at.denominator} >= {at.numerator} * {d}, {_frac(p)}"
            for at, p in sorted(rule.steps, reverse=True)
        )
        earned = f"multiIf({branches}, 0)"
    return f"if({d} = 0, NULL, {earned})"


def _counters(profile: Profile) -> list[str]:
    names = {
        n for g in profile.groups for s in g.subindicators for n in (s.numerator, s.denominator)
    }
    return sorted(names)


def _per_unit(profile: Profile, days: str) -> str:
    """Counter sums of every registered unit over the period to date."""
    sums = ",\n        ".join(
        f"sumIf(c.value, c.counter = {_lit(n)}) AS {_col(n)}" for n in _counters(profile)
    )
    return f"""(
    WITH {days}
    SELECT u.code AS code, u.name AS name, u.level AS level,
        {sums}
    FROM unit_day_counters AS c FINAL
    INNER JOIN (SELECT code, name, level FROM units FINAL) AS u ON u.code = c.unit_code
    PREWHERE c.day BETWEEN ptd_start AND anchor
    GROUP BY u.code, u.name, u.level
)"""


def _subs(profile: Profile) -> list[tuple[str, SubIndicator]]:
    return [(g.key, s) for g in profile.groups if not g.input for s in g.subindicators]


def sql_city_groups(profile: Profile, days: str) -> str:
    """One row: the city's estimated points per observed group, and the total."""
    sums = ", ".join(f"sum({_col(n)}) AS {_col(n)}" for n in _counters(profile))
    cols = []
    for group in profile.groups:
        if group.input:
            continue
        parts = [
            f"ifNull({points_sql(s, _col(s.numerator), _col(s.denominator))}, 0)"
            for s in group.subindicators
        ]
        cols.append(f"{' + '.join(parts)} AS {_ident(group.title)}")
    total = " + ".join(f"`{g.title}`" for g in profile.groups if not g.input)
    return f"""SELECT
    {("," + chr(10) + "    ").join(cols)},
    {total} AS "Tổng (các nhóm quan sát được)"
FROM (SELECT {sums} FROM {_per_unit(profile, days)})"""


def sql_costliest(profile: Profile, days: str, limit: int = 20) -> str:
    """Units ranked by the points of the city they cost (pooled shares of the loss)."""
    losses, shortfalls = [], []
    for _group, s in _subs(profile):
        n, d = _col(s.numerator), _col(s.denominator)
        city = points_sql(s, f"sum({n}) OVER ()", f"sum({d}) OVER ()")
        lost_city = f"({_frac(s.points)} - ifNull({city}, {_frac(s.points)}))"
        short_total = f"sum({d} - {n}) OVER ()"
        losses.append(f"if({short_total} = 0, 0, {lost_city} * ({d} - {n}) / {short_total})")
        shortfalls.append(f"{d} - {n} AS {_ident(f'{s.title}: {s.shortfall}')}")
    lost = " + ".join(f"({x})" for x in losses)
    return f"""SELECT name AS "Đơn vị", level_text AS "Cấp",
    round(lost, 2) AS "Điểm thành phố bị mất",
    round(100 * lost / nullIf(sum(lost) OVER (), 0), 2) AS "Tỷ lệ trong tổng điểm bị mất (%)",
    * EXCEPT (name, level_text, lost, code, level)
FROM (
    SELECT u.name AS name, {LEVEL_TEXT} AS level_text, u.code AS code, u.level AS level,
        {lost} AS lost,
        {("," + chr(10) + "        ").join(shortfalls)}
    FROM {_per_unit(profile, days)} AS u
)
WHERE lost > 0
ORDER BY lost DESC, code
LIMIT {limit}"""


def sql_unit_subindicators(profile: Profile, days: str) -> str:
    """The drill-down unit's sub-indicators: counters, rate, points, dossiers to full points."""
    selects = []
    for order, (group_key, s) in enumerate(_subs(profile), 1):
        n, d = _col(s.numerator), _col(s.denominator)
        rule = s.rule
        full = rule.full_at if rule.kind == "linear" else rule.steps[-1][0]
        need = f"if({d} = 0, NULL, greatest(0, toInt64(ceil({_frac(full)} * {d} - {n}))))"
        group = profile.group(group_key).title
        selects.append(
            f"""SELECT {order} AS "STT", {_lit(group)} AS "Nhóm", {_lit(s.title)} AS "Chỉ số",
    {n} AS "Tử số", {d} AS "Mẫu số", round(100 * {n} / nullIf({d}, 0), 2) AS "Tỷ lệ (%)",
    round({points_sql(s, n, d)}, 2) AS "Điểm", {_frac(s.points)} AS "Điểm tối đa",
    {need} AS {_ident(f"Hồ sơ cần thêm để đạt điểm tối đa ({s.remedy})")}
FROM {_per_unit(profile, days)} WHERE code = ${{unit:sqlstring}}"""
        )
    return "SELECT * FROM (\n" + "\nUNION ALL\n".join(selects) + '\n) ORDER BY "STT"'


def _gauge(profile: Profile) -> dict[str, Any]:
    observed = float(sum((x.max_points for x in profile.groups if not x.input), Fraction(0)))
    overrides = [
        {
            "matcher": {"id": "byName", "options": group.title},
            "properties": [
                {"id": "max", "value": float(group.max_points)},
                {
                    "id": "thresholds",
                    "value": {
                        "mode": "absolute",
                        "steps": [
                            {"color": "red", "value": None},
                            {"color": "green", "value": float(group.alert_below)},
                        ],
                    },
                },
            ],
        }
        for group in profile.groups
        if not group.input
    ]
    return {
        "type": "gauge",
        "title": "Điểm ước tính theo nhóm chỉ số (kỳ đến nay)",
        "description": (
            "Điểm ước tính của thành phố theo Bộ chỉ số 766 từ số liệu của hệ thống, kỳ báo cáo "
            "tháng (từ ngày 15) đến ngày cuối của khoảng thời gian. Đỏ: dưới ngưỡng cảnh báo của "
            "hồ sơ chấm điểm. Nhóm công khai, minh bạch không quan sát được từ hệ thống."
        ),
        "datasource": CLICKHOUSE,
        "targets": [ch_target(sql_city_groups(profile, DAYS))],
        "fieldConfig": {
            "defaults": {"unit": "none", "decimals": 1, "min": 0, "noValue": "chưa có hồ sơ"},
            "overrides": [
                *overrides,
                {
                    "matcher": {"id": "byName", "options": "Tổng (các nhóm quan sát được)"},
                    "properties": [
                        {"id": "max", "value": observed},
                        {"id": "decimals", "value": 2},
                    ],
                },
            ],
        },
        "options": {
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "showThresholdMarkers": True,
            "showThresholdLabels": False,
            "orientation": "auto",
        },
    }


def index766_dashboard(profile: Profile | None = None) -> dict[str, Any]:
    """The dashboard of ``profile`` (default: ``DOSSIER_INDEX766_PROFILE`` or the bundled one)."""
    profile = profile or load_profile(os.environ.get("DOSSIER_INDEX766_PROFILE") or None)
    lay = Layout()
    lay.row("Thành phố")
    lay.add(_gauge(profile), w=24, h=8)
    lay.row("Đơn vị làm giảm điểm")
    lay.add(
        table_panel(
            "Các đơn vị làm giảm điểm của thành phố nhiều nhất",
            "Điểm thành phố bị mất do từng đơn vị: trên mỗi chỉ số, điểm thành phố bị mất được "
            "chia cho các đơn vị theo số hồ sơ chưa đạt (mẫu số − tử số) của đơn vị.",
            sql_costliest(profile, DAYS),
        ),
        w=24,
        h=12,
    )
    lay.row("Chi tiết đơn vị")
    lay.add(
        table_panel(
            "Điểm ước tính của đơn vị theo chỉ số",
            "Tử số, mẫu số, tỷ lệ và điểm của đơn vị chọn ở trên trên từng chỉ số, và số hồ sơ "
            "còn thiếu để đạt điểm tối đa.",
            sql_unit_subindicators(profile, DAYS),
        ),
        w=24,
        h=10,
    )
    variables = [
        ch_query_variable("level", "Cấp", sql_level_variable()),
        ch_query_variable("unit", "Đơn vị", sql_unit_variable()),
    ]
    return dashboard(
        "dossier-index766",
        "Chỉ số 766 (ước tính)",
        f"Điểm ước tính theo Bộ chỉ số 766 ({profile.name}, phiên bản {profile.version}).",
        lay,
        variables,
        refresh="1m",
        time_from="now-30d",
    )


def build() -> dict[str, Any]:
    """The Chỉ số 766 dashboard."""
    return index766_dashboard()
