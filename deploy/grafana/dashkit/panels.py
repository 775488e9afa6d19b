"""Panels, layout, variables, annotations and dashboards (Grafana 11 JSON model).

A panel is one call that returns its JSON; :class:`Layout` places it::

    lay = Layout()
    lay.row("Thông lượng")
    lay.add(prom_stat("Sự kiện / giây", "sum(rate(x[$__rate_interval]))", unit=PER_SECOND), 4, 4)
    lay.add(table_panel("Đơn vị", "Mô tả.", "SELECT ..."), 24, 8)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from dashkit.sql import MET, NO_DOSSIERS, NOT_MET

__all__ = [
    "CLICKHOUSE",
    "COUNT",
    "PERCENT",
    "PER_SECOND",
    "PROMETHEUS",
    "SECONDS",
    "Layout",
    "alert_annotation",
    "ch_query_variable",
    "ch_target",
    "dashboard",
    "prom_stat",
    "prom_target",
    "prom_timeseries",
    "rate_steps",
    "stat_panel",
    "steps",
    "table_panel",
    "timeseries_panel",
]

CLICKHOUSE: Final = {"type": "grafana-clickhouse-datasource", "uid": "dossier-clickhouse"}
PROMETHEUS: Final = {"type": "prometheus", "uid": "dossier-prometheus"}
TIMEZONE: Final = "Asia/Ho_Chi_Minh"
TAGS: Final = ["dossier-stream"]
SCHEMA_VERSION: Final = 39
PLUGIN_VERSION: Final = "4.8.1"
"""The ClickHouse plugin version ``docker-compose.yml`` installs (queries carry it)."""

# Grafana units: built-in ones where they read the same in Vietnamese, else a suffix.
COUNT: Final = "suffix: hồ sơ"
EVENTS: Final = "suffix: sự kiện"
MESSAGES: Final = "suffix: tin nhắn"
PER_SECOND: Final = "suffix: /giây"
SECONDS: Final = "s"
PLAIN: Final = "none"
PERCENT: Final = {"unit": "percent", "decimals": 2, "min": 0, "max": 100, "noValue": NO_DOSSIERS}


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
    """A PromQL query of a panel; ``legend`` is Grafana's legend format (``{{label}}``)."""
    return {
        "refId": ref,
        "datasource": PROMETHEUS,
        "editorMode": "code",
        "expr": expr,
        "legendFormat": legend,
        "range": not instant,
        "instant": instant,
    }


def steps(base: str, *more: tuple[float, str]) -> dict[str, Any]:
    """Absolute thresholds: ``base`` colour, then ``(from value, colour)`` steps."""
    return {
        "mode": "absolute",
        "steps": [{"color": base, "value": None}]
        + [{"color": color, "value": value} for value, color in more],
    }


def rate_steps(op: str, target: int, limit: float | None = None) -> dict[str, Any]:
    """Red below a target, green from it; green below a limit, red above; else blue."""
    if op:
        return steps("red", (target, "green"))
    if limit is not None:
        return steps("green", (limit, "red"))
    return steps("blue")


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
        """Start a row titled ``title`` on a new line."""
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
        """Place ``panel`` ``w`` columns wide and ``h`` high after the previous one."""
        self.panels.append({"id": len(self.panels) + 1, "gridPos": self._place(w, h), **panel})


def _stat_options(color_mode: str, text_mode: str) -> dict[str, Any]:
    return {
        "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
        "colorMode": color_mode,
        "graphMode": "none",
        "justifyMode": "auto",
        "orientation": "auto",
        "textMode": text_mode,
        "wideLayout": True,
        "showPercentChange": False,
    }


def stat_panel(
    title: str,
    description: str,
    target: dict[str, Any],
    *,
    defaults: dict[str, Any],
    thresholds: dict[str, Any],
    text_mode: str = "value",
) -> dict[str, Any]:
    """A stat panel coloured by ``thresholds`` (background colour)."""
    return {
        "type": "stat",
        "title": title,
        "description": description,
        "datasource": target["datasource"],
        "targets": [target],
        "fieldConfig": {"defaults": {**defaults, "thresholds": thresholds}, "overrides": []},
        "options": _stat_options("background", text_mode),
    }


def prom_stat(
    title: str,
    description: str,
    expr: str,
    *,
    unit: str,
    thresholds: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A stat of one PromQL expression (instant); blue unless ``thresholds`` colour it."""
    return stat_panel(
        title,
        description,
        prom_target(expr, title, instant=True),
        defaults={"unit": unit, "color": {"mode": "thresholds"}},
        thresholds=thresholds or steps("blue"),
    )


def _rate_overrides(names: Sequence[str]) -> list[dict[str, Any]]:
    return [
        {
            "matcher": {"id": "byName", "options": name},
            "properties": [
                {"id": "unit", "value": "percent"},
                {"id": "decimals", "value": 2},
                {"id": "noValue", "value": NO_DOSSIERS},
            ],
        }
        for name in names
    ]


def _target_override(name: str) -> dict[str, Any]:
    options = {
        MET: {"color": "green", "index": 0},
        NOT_MET: {"color": "red", "index": 1},
        NO_DOSSIERS: {"color": "orange", "index": 2},
    }
    return {
        "matcher": {"id": "byName", "options": name},
        "properties": [
            {"id": "mappings", "value": [{"type": "value", "options": options}]},
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
    """A ClickHouse table; ``rates`` columns in percent, ``target_columns`` coloured."""
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
    unit: str,
    thresholds: dict[str, Any] | None = None,
    bars: bool = False,
    minimum: float | None = 0,
    maximum: float | None = None,
) -> dict[str, Any]:
    """A time series of ``targets`` (one datasource); thresholds drawn as dashed lines."""
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
        "datasource": targets[0]["datasource"],
        "targets": targets,
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": {
            "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
            "tooltip": {"mode": "multi", "sort": "none"},
        },
    }


def prom_timeseries(
    title: str,
    description: str,
    queries: Sequence[tuple[str, str]],
    *,
    unit: str,
    thresholds: dict[str, Any] | None = None,
    bars: bool = False,
) -> dict[str, Any]:
    """A time series of PromQL ``(expression, legend)`` pairs."""
    targets = [
        prom_target(expr, legend, ref=chr(ord("A") + i)) for i, (expr, legend) in enumerate(queries)
    ]
    return timeseries_panel(
        title, description, targets, unit=unit, thresholds=thresholds, bars=bars
    )


# -------------------------------------------------------------- variables
def ch_query_variable(name: str, label: str, sql: str) -> dict[str, Any]:
    """A template variable filled by a ClickHouse query (``value[, text]`` rows)."""
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


def alert_annotation(name: str, alerts: str, color: str) -> dict[str, Any]:
    """Firing Prometheus alerts whose name matches the regex ``alerts``, as annotations."""
    return {
        "name": name,
        "datasource": PROMETHEUS,
        "enable": True,
        "hide": False,
        "iconColor": color,
        "expr": f'ALERTS{{alertname=~"{alerts}", alertstate="firing"}}',
        "step": "60s",
        "titleFormat": "{{alertname}}",
        "textFormat": "{{instance}} {{topic}} {{unit}}",
        "tagKeys": "severity",
        "useValueForTime": False,
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
    annotations: Sequence[dict[str, Any]] = (),
) -> dict[str, Any]:
    """The dashboard JSON of ``layout``'s panels."""
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
        "annotations": {"list": list(annotations)},
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
