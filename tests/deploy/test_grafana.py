"""Grafana provisioning and dashboards (``deploy/grafana``), checked against the real parts.

* The dashboards are what ``deploy/grafana/generate.py`` generates, and every
  datasource reference (panels, queries, template variables) uses a uid and
  type provisioned in ``provisioning/datasources/datasources.yml``.
* Every ClickHouse query (panels and template variables) runs on chdb against
  the schema of :data:`dossier_stream.store.sink.MIGRATIONS`, filled by the real
  processor with a simulated month: the Grafana ClickHouse plugin's macros
  and the template variables are substituted as the plugin and Grafana do,
  and a query that errors or returns nothing (or only NULLs) fails. Query
  variables take the value of a unit that has data for every panel.
* The figures of the main panels equal the report's (``report_from_store``)
  and the core's open-past-due count.
* Every PromQL expression parses (``promtool check rules`` on a rules file
  made of them) and uses only metric families documented in
  :mod:`dossier_stream.stream.metrics`.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import re
import shutil
import subprocess
import sys
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import orjson
import pytest
import yaml

from dossier_stream.core.counters import open_past_due
from dossier_stream.core.lifecycle import DossierState
from dossier_stream.core.periods import Period, monthly_report
from dossier_stream.core.registry import UnitRegistry
from dossier_stream.core.topics import load_catalog
from dossier_stream.core.workdays import VN_TZ, WorkCalendar
from dossier_stream.sim import testing as t
from dossier_stream.sim.simulate import SimConfig, Simulation, simulate
from dossier_stream.store.codec import loads_dossier
from dossier_stream.store.sink import BatchingSink, ClickHouseStore, connect
from dossier_stream.store.views import write_units
from dossier_stream.stream import metrics as metrics_module
from dossier_stream.stream.processor import Message, Processor
from dossier_stream.stream.runner import report_from_store

REPO = Path(__file__).resolve().parents[2]
GRAFANA = REPO / "deploy" / "grafana"
DASHBOARD_DIR = GRAFANA / "dashboards"
DATASOURCES = GRAFANA / "provisioning" / "datasources" / "datasources.yml"
PROVIDERS = GRAFANA / "provisioning" / "dashboards" / "dashboards.yml"
COMPOSE = REPO / "docker-compose.yml"
CH_TYPE = "grafana-clickhouse-datasource"
INTERVAL_S = 3600  # the $__interval Grafana would pick for a month on a wide panel
OPEN_PAST_DUE = "Hồ sơ chưa giải quyết đã quá hạn xử lý thực tế"


@functools.cache
def _generator() -> ModuleType:
    """``deploy/grafana/generate.py`` as a module (it is a script, not a package)."""
    name = "dossier_grafana_generate"
    spec = importlib.util.spec_from_file_location(name, GRAFANA / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while being created
    spec.loader.exec_module(module)
    return module


def _level_words() -> dict[str, str]:
    words: dict[str, str] = sys.modules["dashkit.sql"].LEVEL_WORDS if _generator() else {}
    return words


def _dashboards() -> dict[str, dict[str, Any]]:
    return {p.name: json.loads(p.read_text(encoding="utf-8")) for p in DASHBOARD_DIR.glob("*.json")}


def _panels(board: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in board.get("panels", []):
        yield panel
        yield from panel.get("panels", [])  # panels of collapsed rows


def _datasource_refs(board: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    """Every datasource reference of a dashboard, with where it is."""
    for panel in _panels(board):
        where = f"{board['title']} / panel {panel.get('title')!r}"
        if "datasource" in panel:
            yield where, panel["datasource"]
        for target in panel.get("targets", []):
            yield f"{where} / query {target.get('refId')}", target.get("datasource")
    for var in board.get("templating", {}).get("list", []):
        if "datasource" in var:
            yield f"{board['title']} / variable {var['name']}", var["datasource"]
    for ann in board.get("annotations", {}).get("list", []):
        if "datasource" in ann:
            yield f"{board['title']} / annotation {ann.get('name')}", ann["datasource"]


def _provisioned() -> dict[str, str]:
    doc = yaml.safe_load(DATASOURCES.read_text(encoding="utf-8"))
    return {ds["uid"]: ds["type"] for ds in doc["datasources"]}


# ------------------------------------------------------------ static checks
def test_dashboards_are_the_generated_ones() -> None:
    generated = _generator().build()
    render = _generator().render
    on_disk = {p.name: p.read_text(encoding="utf-8") for p in DASHBOARD_DIR.glob("*.json")}
    assert set(on_disk) == set(generated), "run deploy/grafana/generate.py"
    for name, board in generated.items():
        assert on_disk[name] == render(board), f"{name} is stale: run deploy/grafana/generate.py"


def test_provisioning_pins_the_uids_and_keeps_secrets_out() -> None:
    doc = yaml.safe_load(DATASOURCES.read_text(encoding="utf-8"))
    by_uid = {ds["uid"]: ds for ds in doc["datasources"]}
    assert set(by_uid) == {"dossier-clickhouse", "dossier-prometheus"}
    ch = by_uid["dossier-clickhouse"]
    assert ch["type"] == CH_TYPE
    for key in ("host", "port", "username", "defaultDatabase"):
        assert re.fullmatch(r"\$\{[A-Z_]+\}", str(ch["jsonData"][key])), key
    assert re.fullmatch(r"\$\{[A-Z_]+\}", ch["secureJsonData"]["password"])
    assert "password" not in ch["jsonData"]
    assert by_uid["dossier-prometheus"]["type"] == "prometheus"
    providers = yaml.safe_load(PROVIDERS.read_text(encoding="utf-8"))["providers"]
    assert [p["type"] for p in providers] == ["file"]


def test_every_datasource_reference_is_provisioned() -> None:
    provisioned = _provisioned()
    boards = _dashboards()
    assert {"city-overview.json", "unit-drilldown.json", "pipeline-health.json"} <= set(boards)
    uids = set()
    for board in boards.values():
        for where, ref in _datasource_refs(board):
            assert isinstance(ref, dict), f"{where}: datasource must be {{type, uid}}, got {ref!r}"
            assert ref.get("uid") in provisioned, f"{where}: unknown datasource uid {ref!r}"
            assert ref.get("type") == provisioned[ref["uid"]], f"{where}: wrong type {ref!r}"
            uids.add(ref["uid"])
        for panel in _panels(board):
            if panel.get("type") == "row":
                assert not panel.get("targets"), f"row {panel['title']!r} has queries"
                continue
            assert panel.get("targets"), f"{board['title']} / {panel.get('title')!r}: no query"
            for target in panel["targets"]:
                assert target["datasource"] == panel["datasource"], panel["title"]
    assert uids == set(provisioned)
    ids = [[p["id"] for p in _panels(b)] for b in boards.values()]
    assert all(len(i) == len(set(i)) for i in ids), "panel ids must be unique per dashboard"


def test_queries_carry_the_plugin_version_compose_installs() -> None:
    compose = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    plugins = compose["services"]["grafana"]["environment"]["GF_INSTALL_PLUGINS"]
    installed = dict(p.strip().split(" ", 1) for p in plugins.split(","))
    for board in _dashboards().values():
        for panel in _panels(board):
            for target in panel.get("targets", []):
                if target["datasource"]["type"] == CH_TYPE:
                    assert target["pluginVersion"] == installed[CH_TYPE], panel["title"]
                    assert target["editorType"] == "sql"
                    assert target["format"] == (0 if target["queryType"] == "timeseries" else 1)


# ------------------------------------------------- macros and variables
_VAR = re.compile(r"\$\{(\w+)(?::(\w+))?\}|\$(?!__)(\w+)")
_MACRO = re.compile(r"\$__(\w+)")


def _sqlstring(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def substitute_variables(sql: str, variables: dict[str, str]) -> str:
    """Grafana's template interpolation for the ClickHouse plugin (single values)."""

    def repl(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(3)
        fmt = m.group(2)
        if name not in variables:
            raise AssertionError(f"unknown template variable ${name} in:\n{sql}")
        value = variables[name]
        if fmt is None or fmt == "raw":
            return value
        if fmt == "sqlstring":
            return _sqlstring(value)
        raise AssertionError(f"variable format {fmt!r} is not handled by this test")

    return _VAR.sub(repl, sql)


def _macro_args(sql: str, start: int) -> tuple[list[str], int]:
    """Arguments of a macro call whose '(' is at ``start``; returns (args, end index)."""
    depth, args, last = 0, [], start + 1
    for i in range(start, len(sql)):
        ch = sql[i]
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth == 0:
                args.append(sql[last:i].strip())
                return args, i + 1
        elif ch == "," and depth == 1:
            args.append(sql[last:i].strip())
            last = i + 1
    raise AssertionError(f"unbalanced macro call in:\n{sql}")


def expand_macros(sql: str, start: datetime, end: datetime, interval_s: int) -> str:
    """The ClickHouse plugin's backend macros, expanded as in its ``pkg/macros``."""

    def dt(at: datetime) -> str:
        return f"toDateTime({int(at.timestamp())})"

    def dt64(at: datetime) -> str:
        return f"fromUnixTimestamp64Milli({int(at.timestamp() * 1000)})"

    def day(at: datetime) -> str:
        return f"toDate('{at.astimezone(UTC):%Y-%m-%d}')"

    def between(col: str, lo: str, hi: str) -> str:
        return f"{col} >= {lo} AND {col} <= {hi}"

    plain = {
        "fromTime": dt(start),
        "toTime": dt(end),
        "fromTime_ms": dt64(start),
        "toTime_ms": dt64(end),
        "interval_s": str(max(interval_s, 1)),
    }
    with_args = {
        "timeFilter": lambda c: between(c, dt(start), dt(end)),
        "timeFilter_ms": lambda c: between(c, dt64(start), dt64(end)),
        "dateFilter": lambda c: between(c, day(start), day(end)),
        "timeInterval": lambda c: (
            f"toStartOfInterval(toDateTime({c}), INTERVAL {max(interval_s, 1)} second)"
        ),
        "timeInterval_ms": lambda c: (
            f"toStartOfInterval(toDateTime64({c}, 3), INTERVAL {max(interval_s, 1) * 1000} "
            "millisecond)"
        ),
    }
    out, pos = [], 0
    for m in _MACRO.finditer(sql):
        if m.start() < pos:
            continue
        name = m.group(1)
        out.append(sql[pos : m.start()])
        if name in with_args:
            args, pos = _macro_args(sql, m.end())
            assert len(args) == 1, f"$__{name} takes one argument: {args}"
            out.append(with_args[name](args[0]))
        elif name in plain:
            out.append(plain[name])
            pos = m.end()
        else:
            raise AssertionError(f"macro $__{name} is not one the ClickHouse plugin expands")
    out.append(sql[pos:])
    return "".join(out)


def test_macro_expansion_matches_the_plugin() -> None:
    start = datetime(2024, 9, 14, 17, 0, tzinfo=UTC)
    end = datetime(2024, 10, 14, 16, 59, 59, 999000, tzinfo=UTC)
    sql = "SELECT $__timeInterval(at) WHERE $__timeFilter(toDateTime(at)) AND x < $__toTime_ms"
    assert expand_macros(sql, start, end, 60) == (
        "SELECT toStartOfInterval(toDateTime(at), INTERVAL 60 second) "
        "WHERE toDateTime(at) >= toDateTime(1726333200) AND toDateTime(at) <= "
        "toDateTime(1728925199) AND x < fromUnixTimestamp64Milli(1728925199999)"
    )
    assert substitute_variables(
        "u = ${unit:sqlstring} AND $level", {"unit": "a'b", "level": "x"}
    ) == ("u = 'a''b' AND x")
    with pytest.raises(AssertionError, match="not one the ClickHouse plugin"):
        expand_macros("$__nope", start, end, 60)
    with pytest.raises(AssertionError, match="unknown template variable"):
        substitute_variables("${missing}", {})


# ------------------------------------------------------- data in chdb
@dataclass
class Loaded:
    store: ClickHouseStore
    registry: UnitRegistry
    sim: Simulation
    period: Period
    states: list[DossierState]
    unit: str


# Hand-made dossiers of one unit around the supplement rules of "open past due"
# at the end of October 2024's period (14/10 23:59:59): received 1/10, due 4/10.
PAUSE_UNIT = "HP-SO-TUPHAP"
PAUSE_CASES: dict[str, tuple[bool, list[tuple[str, str]]]] = {
    # id: (open past due at the end?, [(event, local time)])
    "PAUSE-none": (True, []),
    "PAUSE-long": (False, [("requested", "2024-10-02T08:00"), ("received", "2024-10-13T08:00")]),
    "PAUSE-short": (True, [("requested", "2024-10-02T08:00"), ("received", "2024-10-04T08:00")]),
    "PAUSE-open": (False, [("requested", "2024-10-10T08:00")]),
    "PAUSE-twice": (
        True,
        [
            ("requested", "2024-10-02T08:00"),
            ("received", "2024-10-03T08:00"),
            ("requested", "2024-10-05T08:00"),
            ("received", "2024-10-06T08:00"),
        ],
    ),
    "PAUSE-twice-open": (
        False,
        [
            ("requested", "2024-10-02T08:00"),
            ("received", "2024-10-03T08:00"),
            ("requested", "2024-10-12T08:00"),
        ],
    ),
    "PAUSE-later": (True, [("requested", "2024-10-20T08:00")]),
    "PAUSE-completed-later": (True, [("completed", "2024-10-20T08:00")]),
    "PAUSE-withdrawn": (False, [("withdrawn", "2024-10-10T08:00")]),
}


def _pause_case_lines() -> list[bytes]:
    lines = []
    for did, (_, steps) in PAUSE_CASES.items():
        lines.append(
            t.encode(
                t.received(
                    did, PAUSE_UNIT, at="2024-10-01T08:00:00+07:00", channel="direct",
                    due_at="2024-10-04T17:00:00+07:00",
                )
            )
        )  # fmt: skip
        for what, local in steps:
            at = f"{local}:00+07:00"
            event = {
                "requested": t.supplement_requested,
                "received": t.supplement_received,
                "completed": t.completed,
                "withdrawn": t.withdrawn,
            }[what](did, PAUSE_UNIT, at=at)
            lines.append(t.encode(event))
    return lines


def _partition(raw: bytes, partitions: int) -> int:
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return 0
    if not isinstance(obj, dict):
        return 0
    key = obj.get("dossier_id") or obj.get("feedback_id") or obj.get("unit_code")
    return zlib.crc32(key.encode()) % partitions if isinstance(key, str) else 0


@pytest.fixture(scope="module")
def loaded(
    tmp_path_factory: pytest.TempPathFactory, registry: UnitRegistry, calendar: WorkCalendar
) -> Iterator[Loaded]:
    """A simulated month folded by the real processor into chdb, in worker-sized batches."""
    period = monthly_report(2024, 10)
    sim = simulate(
        SimConfig(period=period, seed=5, dossiers=2_000, feedback=600, invalid_rate=0.01),
        registry,
        calendar,
    )
    store = ClickHouseStore(connect(f"chdb://{tmp_path_factory.mktemp('grafana') / 'ch'}"))
    try:
        store.migrate()
        write_units(store, registry)  # as init-db and the worker do
        catalog = load_catalog()
        sink = BatchingSink(store, max_rows=1_000_000, interval_s=3600)
        processor = Processor(registry, calendar, catalog, sink, store)
        logged_at = period.ends_at.astimezone(UTC) - timedelta(hours=2)
        messages = []
        for offset, raw in enumerate([*sim.lines, *_pause_case_lines()]):
            try:
                topic = catalog.topic_for(orjson.loads(raw)["event_type"])
            except (orjson.JSONDecodeError, KeyError, TypeError):
                topic = catalog.dossier_topics[0].name  # the worker dead-letters it
            partitions = 6 if topic.startswith("dossier.") else 1
            messages.append(Message(topic, _partition(raw, partitions), offset, raw))
        for i in range(0, len(messages), 2_000):  # several flushes: versions replace rows
            for handled in processor.handle(messages[i : i + 2_000]):
                dead = handled.outcome.dead_letter
                if dead is None:
                    continue
                sink.add_dead_letter(
                    (dead.letter_id, dead.topic or "", dead.partition or 0, dead.offset or 0,
                     dead.reason, dead.code, dead.detail, dead.raw, 1, logged_at)
                )  # fmt: skip
            sink.flush()
        states = [loads_dossier(raw) for raw in store.open_states(period.ends_at)]
        past_due = open_past_due(states, period.ends_at)
        resolved = {u for (u, d, c) in sim.truth if c == "feedback_resolved" and d in period}
        received: dict[str, int] = {}
        for (u, d, c), n in sim.truth.items():
            if c == "received" and d in period:
                received[u] = received.get(u, 0) + n
        # the unit the drill-down shows: data for every panel, the busiest such unit
        unit = max((u for u in past_due if u in resolved), key=lambda u: (received[u], u))
        yield Loaded(store, registry, sim, period, states, unit)
    finally:
        store.close()


def _variables(
    board: dict[str, Any], loaded: Loaded, start: datetime, end: datetime
) -> dict[str, str]:
    """Resolve the dashboard's variables in order, as Grafana does, choosing ``loaded.unit``."""
    wanted = {"unit": loaded.unit, "level": loaded.registry.get(loaded.unit).level}
    values: dict[str, str] = {}
    for var in board.get("templating", {}).get("list", []):
        assert var["type"] == "query", f"variable {var['name']}: type {var['type']!r}"
        assert var["datasource"]["type"] == CH_TYPE
        sql = expand_macros(substitute_variables(var["query"], values), start, end, INTERVAL_S)
        try:
            rows = loaded.store.client.query(sql).result_rows
        except Exception as exc:
            raise AssertionError(f"variable {var['name']} fails: {exc}\n{sql}") from exc
        options = [str(r[0]) for r in rows]
        assert options, f"variable {var['name']} has no values:\n{sql}"
        if len(rows[0]) > 1:  # value, text
            assert all(isinstance(r[1], str) and r[1] for r in rows)
        choice = wanted.get(var["name"], options[0])
        assert choice in options, f"variable {var['name']}: {choice!r} not among {options}"
        values[var["name"]] = choice
    return values


def _run(sql: str, loaded: Loaded) -> tuple[list[str], list[tuple[Any, ...]]]:
    try:
        result = loaded.store.client.query(sql)
    except Exception as exc:
        raise AssertionError(f"query fails: {exc}\n{sql}") from exc
    return list(result.column_names), [tuple(r) for r in result.result_rows]


def _clickhouse_queries(
    board: dict[str, Any], loaded: Loaded
) -> Iterator[tuple[str, list[str], list[tuple[Any, ...]]]]:
    """Every ClickHouse panel query of ``board`` run over the simulated period."""
    start, end = loaded.period.starts_at, loaded.period.ends_at
    variables = _variables(board, loaded, start, end)
    for panel in _panels(board):
        for target in panel.get("targets", []):
            if target["datasource"]["type"] != CH_TYPE:
                continue
            sql = substitute_variables(target["rawSql"], variables)
            sql = expand_macros(sql, start, end, INTERVAL_S)
            columns, rows = _run(sql, loaded)
            yield panel["title"], columns, rows


@pytest.mark.parametrize("name", sorted(p.name for p in DASHBOARD_DIR.glob("*.json")))
def test_every_clickhouse_query_runs_and_returns_data(name: str, loaded: Loaded) -> None:
    ran = 0
    for title, columns, rows in _clickhouse_queries(_dashboards()[name], loaded):
        ran += 1
        assert rows, f"{name} / {title!r}: no rows although the period has data"
        assert any(v is not None for row in rows for v in row), f"{name} / {title!r}: only NULLs"
        assert len(set(columns)) == len(columns), f"{name} / {title!r}: duplicate column names"
    assert ran > 0


def _panel_result(name: str, title: str, loaded: Loaded) -> list[dict[str, Any]]:
    for panel_title, columns, rows in _clickhouse_queries(_dashboards()[name], loaded):
        if panel_title == title:
            return [dict(zip(columns, row, strict=True)) for row in rows]
    raise AssertionError(f"no panel {title!r} in {name}")


def test_indicators_by_level_equal_the_report(loaded: Loaded) -> None:
    report = report_from_store(loaded.store, loaded.registry, loaded.period)
    labels = _generator().LABELS
    words = _level_words()
    title = "Kết quả các chỉ tiêu theo cấp, kỳ báo cáo đến nay"
    rows = _panel_result("city-overview.json", title, loaded)
    assert [r["Chỉ tiêu"] for r in rows] == list(labels.values())
    by_label = {label: key for key, label in labels.items()}
    for row in rows:
        fig = report["indicators"][by_label[row["Chỉ tiêu"]]]
        assert (row["Tử số"], row["Mẫu số"]) == (
            fig["city"]["numerator"],
            fig["city"]["denominator"],
        ), row["Chỉ tiêu"]
        for scope, want in [("Toàn thành phố", fig["city"])] + [
            (words[lvl], f) for lvl, f in fig["levels"].items()
        ]:
            if want["denominator"] == 0:
                assert row[scope] is None
            else:
                exact = 100 * want["numerator"] / want["denominator"]
                assert row[scope] == pytest.approx(exact), (row["Chỉ tiêu"], scope)
                assert round(row[scope], 2) == pytest.approx(want["rate"], abs=0.01)
    # the 30-day window of a 30-day period is the same days
    title = "Kết quả các chỉ tiêu theo cấp, 30 ngày gần nhất"
    rolling = _panel_result("city-overview.json", title, loaded)
    assert rolling == rows


def test_units_meeting_targets_equal_the_report(loaded: Loaded) -> None:
    report = report_from_store(loaded.store, loaded.registry, loaded.period)
    labels = _generator().LABELS
    title = "Số đơn vị đạt chỉ tiêu giao (đạt/tổng số đơn vị)"
    rows = _panel_result("city-overview.json", title, loaded)
    targeted = [k for k, v in report["indicators"].items() if v["target"] and k in labels]
    assert [r["Chỉ tiêu"] for r in rows] == [labels[k] for k in targeted]
    for key, row in zip(targeted, rows, strict=True):
        for level, (met, total) in report["indicators"][key]["units_meeting_target"].items():
            assert row[_level_words()[level]] == f"{met}/{total}", (key, level)


def test_open_past_due_equals_the_core(loaded: Loaded) -> None:
    at = loaded.period.ends_at
    expected = open_past_due(loaded.states, at)
    assert expected, "the simulated month must leave dossiers open past due"
    title = "Đơn vị có nhiều hồ sơ chưa giải quyết đã quá hạn nhất"
    top = _panel_result("city-overview.json", title, loaded)
    column = "Hồ sơ chưa giải quyết, quá hạn"
    assert top[0][column] == max(expected.values())
    for row in top:
        assert row[column] == expected[row["Mã đơn vị"]], row["Mã đơn vị"]
    listed = _panel_result("unit-drilldown.json", OPEN_PAST_DUE, loaded)
    want = sorted(
        s.dossier_id
        for s in loaded.states
        if s.received is not None and s.received.unit_code == loaded.unit and s.is_open_past_due(at)
    )
    assert sorted(r["Mã hồ sơ"] for r in listed) == want


def test_open_past_due_follows_the_supplement_rules(loaded: Loaded) -> None:
    board = _dashboards()["unit-drilldown.json"]
    panel = next(p for p in _panels(board) if p["title"] == OPEN_PAST_DUE)
    start, end = loaded.period.starts_at, loaded.period.ends_at
    variables = {**_variables(board, loaded, start, end), "unit": PAUSE_UNIT}
    sql = expand_macros(
        substitute_variables(panel["targets"][0]["rawSql"], variables), start, end, INTERVAL_S
    )
    columns, rows = _run(sql, loaded)
    listed = {row[columns.index("Mã hồ sơ")]: dict(zip(columns, row, strict=True)) for row in rows}
    for did, (past_due, _) in PAUSE_CASES.items():
        assert (did in listed) == past_due, did
    # the closed two-day pause moves the effective due time
    assert listed["PAUSE-short"]["Hạn xử lý thực tế"] == datetime(2024, 10, 6, 17, tzinfo=VN_TZ)
    assert listed["PAUSE-twice"]["Lý do"] == "yêu cầu bổ sung quá 1 lần"
    want = {
        s.dossier_id
        for s in loaded.states
        if s.received is not None and s.received.unit_code == PAUSE_UNIT and s.is_open_past_due(end)
    }
    assert set(listed) == want


# ----------------------------------------------------------- Prometheus
_DOCUMENTED = re.compile(r"``(dossier_stream_\w+)(?:\{[^}]*\})?`` (counter|gauge|histogram)")
_METRIC = re.compile(r"\bdossier_stream_\w+")


def _documented_metrics() -> dict[str, str]:
    doc = metrics_module.__doc__ or ""
    found = {name: kind for name, kind in _DOCUMENTED.findall(doc)}
    assert found, "the metrics module docstring lists no metric family"
    return found


def _prometheus_exprs() -> list[tuple[str, str]]:
    exprs = []
    for board in _dashboards().values():
        for panel in _panels(board):
            for target in panel.get("targets", []):
                if target["datasource"]["type"] == "prometheus":
                    exprs.append((f"{board['title']} / {panel['title']}", target["expr"]))
    return exprs


def test_promql_uses_documented_metrics_only() -> None:
    documented = _documented_metrics()
    exprs = _prometheus_exprs()
    assert exprs
    used = set()
    for where, expr in exprs:
        for name in _METRIC.findall(expr):
            family = name
            for suffix in ("_bucket", "_count", "_sum"):
                base = name.removesuffix(suffix)
                if base != name and documented.get(base) == "histogram":
                    family = base
            assert family in documented, f"{where}: {name} is not a documented metric"
            used.add(family)
    assert {
        "dossier_stream_events_consumed_total",
        "dossier_stream_consumer_lag_messages",
        "dossier_stream_dead_letters_total",
        "dossier_stream_event_apply_latency_seconds",
        "dossier_stream_event_flush_latency_seconds",
        "dossier_stream_clickhouse_flush_duration_seconds",
        "dossier_stream_clickhouse_flush_failures_total",
    } <= used


def test_promql_parses(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (Debian package prometheus, scripts/setup installs it)")
    rules = [
        {
            "record": f"grafana:panel_expression_{i}",
            # Grafana's own interval variables, as Grafana would substitute them
            "expr": re.sub(r"\$__(rate_interval|interval|range)", "5m", expr),
        }
        for i, (_, expr) in enumerate(_prometheus_exprs())
    ]
    path = tmp_path / "panels.rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "grafana", "rules": rules}]}))
    proc = subprocess.run(
        [promtool, "check", "rules", str(path)], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_index766_city_points_equal_the_core(loaded: Loaded) -> None:
    from dossier_stream.core.index766 import load_profile
    from dossier_stream.reports.index766 import index766_result

    report = report_from_store(loaded.store, loaded.registry, loaded.period)
    result = index766_result(report, load_profile(), None)
    (row,) = _panel_result("index766.json", "Điểm ước tính theo nhóm chỉ số (kỳ đến nay)", loaded)
    for group in result.city.groups:
        if not group.group.input:
            assert row[group.group.title] == pytest.approx(float(group.points or 0)), (
                group.group.key
            )
    assert row["Tổng (các nhóm quan sát được)"] == pytest.approx(float(result.city.points))
    costliest = _panel_result(
        "index766.json", "Các đơn vị làm giảm điểm của thành phố nhiều nhất", loaded
    )
    names = [loaded.registry.get(code).name for code in result.costliest()[: len(costliest)]]
    assert [r["Đơn vị"] for r in costliest] == names
    for r, code in zip(costliest, result.costliest(), strict=False):
        assert r["Điểm thành phố bị mất"] == pytest.approx(
            float(result.shares[code].total_lost), abs=0.006
        )
    unit = _panel_result("index766.json", "Điểm ước tính của đơn vị theo chỉ số", loaded)
    subs = [s for g in result.units[loaded.unit].groups for s in g.subs]
    assert [(r["Tử số"], r["Mẫu số"]) for r in unit] == [(s.numerator, s.denominator) for s in subs]
    need = [next(v for k, v in r.items() if k.startswith("Hồ sơ cần thêm")) for r in unit]
    assert need == [s.to_full for s in subs]


# ------------------------------------------------- issue 14: words and named columns
_VIETNAMESE = re.compile(r"[À-ÃÈ-ÊÌÍÒ-ÕÙÚÝà-ãè-êìíò-õùúýĂăĐđĨĩŨũƠơƯưẠ-ỹ]")
_POSITIONAL_JSON = re.compile(r"JSONExtract\w*\(\s*[^,()]+,\s*-?\d+\s*[,)]", re.IGNORECASE)


def _sql_texts() -> Iterator[tuple[str, str]]:
    for name, board in _dashboards().items():
        for panel in _panels(board):
            for target in panel.get("targets", []):
                if "rawSql" in target:
                    yield f"{name} / {panel['title']}", target["rawSql"]
        for var in board.get("templating", {}).get("list", []):
            yield f"{name} / variable {var['name']}", var["query"]


def test_every_title_description_and_legend_is_vietnamese() -> None:
    for name, board in _dashboards().items():
        assert _VIETNAMESE.search(board["title"]), name
        assert _VIETNAMESE.search(board["description"]), name
        for panel in _panels(board):
            title = panel["title"]
            assert _VIETNAMESE.search(title), f"{name}: English-only panel title {title!r}"
            if panel["type"] != "row":
                assert _VIETNAMESE.search(panel["description"]), f"{name} / {title}"
            for target in panel.get("targets", []):
                legend = re.sub(r"\{\{\w+\}\}|[/ ]", "", target.get("legendFormat", ""))
                if legend and target.get("instant") is False:
                    assert _VIETNAMESE.search(legend), f"{name} / {title}: legend {legend!r}"
        for var in board["templating"]["list"]:
            assert _VIETNAMESE.search(var["label"]), f"{name}: variable {var['name']}"
    # and the regex does tell English from Vietnamese
    assert not _VIETNAMESE.search("Units meeting each target, period to date")
    assert _VIETNAMESE.search("Đơn vị chưa đạt chỉ tiêu")


def test_no_sql_reads_json_by_position() -> None:
    texts = list(_sql_texts())
    assert texts
    for where, sql in texts:
        assert not _POSITIONAL_JSON.search(sql), f"{where}: positional JSONExtract"
    assert _POSITIONAL_JSON.search("JSONExtract(state, 8, 'Array(Int64)')")
    assert any("supplement_at" in sql for _, sql in texts)


_COUNTER_READ = re.compile(r"FROM\s+unit_day_counters(?:\s+AS\s+\w+)?\s+FINAL\b", re.IGNORECASE)
_TOKENS = re.compile(r"\(|\)|\bPREWHERE\b|\bWHERE\b|\bGROUP\s+BY\b|\bORDER\s+BY\b", re.IGNORECASE)
_NOT_KEY = re.compile(r"\b(?:value|version)\b")
"""The columns of ``unit_day_counters`` outside its sorting key."""


def prewhere_of_counter_reads(sql: str) -> list[str | None]:
    """The ``PREWHERE`` clause of each ``unit_day_counters FINAL`` read (``None``: none).

    The read's own clauses are those at its parenthesis depth: a joined subquery's
    are skipped, and the read ends at a ``)`` that closes its own subquery.
    """
    clauses: list[str | None] = []
    for read in _COUNTER_READ.finditer(sql):
        depth, begin, clause = 0, -1, None
        for token in _TOKENS.finditer(sql, read.end()):
            word = token.group().upper()
            if word == "(":
                depth += 1
                continue
            if depth and word == ")":
                depth -= 1
                continue
            if depth:
                continue
            if begin >= 0:  # the first clause word or closing ) after PREWHERE ends it
                clause = sql[begin : token.start()]
                break
            if word != "PREWHERE":
                break
            begin = token.end()
        else:
            clause = sql[begin:] if begin >= 0 else None
        clauses.append(clause)
    return clauses


def test_counter_reads_filter_their_key_before_final() -> None:
    """Every panel reading the counters filters in ``PREWHERE``, on sorting-key columns only.

    ``PREWHERE`` runs before ``FINAL`` merges a key's versions: the period's rows only
    are merged (dashkit/sql.py). A non-key column there could let an older version win.
    """
    texts = list(_sql_texts())
    reads = 0
    for where, sql in texts:
        for clause in prewhere_of_counter_reads(sql):
            reads += 1
            assert clause is not None, f"{where}: unit_day_counters FINAL read without PREWHERE"
            assert re.search(r"\bday\b", clause), f"{where}: PREWHERE without the days"
            assert not _NOT_KEY.search(clause), f"{where}: a non-key column in PREWHERE"
    assert reads >= 30  # 35 panels and variables read the counters today
    # and the reading of the clauses tells the cases apart
    joined = "FROM unit_day_counters AS c FINAL\nINNER JOIN (SELECT code FROM units FINAL) AS u"
    assert prewhere_of_counter_reads(f"{joined} ON u.code = c.unit_code\nWHERE c.day = 1") == [None]
    assert prewhere_of_counter_reads(
        f"{joined} ON u.code = c.unit_code PREWHERE c.day = 1 AND c.value > 0 WHERE x"
    ) == [" c.day = 1 AND c.value > 0 "]
    assert prewhere_of_counter_reads(
        "(SELECT 1 FROM unit_day_counters FINAL PREWHERE day = d)"
    ) == [" day = d"]


def test_below_target_lists_are_the_units_the_report_marks_not_meeting(loaded: Loaded) -> None:
    from dossier_stream.core.formatting import meets_target

    report = report_from_store(loaded.store, loaded.registry, loaded.period)
    city = _generator().board_modules()["city-overview.json"]
    words = sys.modules["dashkit.sql"].LEVEL_TITLES
    labels = _generator().LABELS
    for level in ("department", "district", "commune"):
        title = city.BELOW_TARGET_TITLE.format(level=words[level])
        rows = _panel_result("city-overview.json", title, loaded)
        got = {(r["Chỉ tiêu"], r["Mã đơn vị"]): (r["Tử số"], r["Mẫu số"]) for r in rows}
        assert len(got) == len(rows), f"{title}: a unit listed twice for an indicator"
        want = {
            (labels[key], code): (fig["numerator"], fig["denominator"])
            for key, ind in report["indicators"].items()
            if ind["target"] and key in labels
            for code, fig in ind["units"].items()
            if fig["level"] == level
            and not meets_target(fig["numerator"], fig["denominator"], ind["target"])
        }
        assert want, f"the simulated month has units below target at {level} level"
        assert got == want, level
        # worst first within each indicator; units without dossiers last
        for label in {k for k, _ in got}:
            rates = [r["Tỷ lệ"] for r in rows if r["Chỉ tiêu"] == label]
            known = [x for x in rates if x is not None]
            assert known == sorted(known) and rates[: len(known)] == known, label


def test_overdue_is_judged_against_the_alerts_threshold(loaded: Loaded) -> None:
    rules = yaml.safe_load((REPO / "deploy" / "prometheus" / "rules.yml").read_text())
    expr = next(
        r["expr"]
        for g in rules["groups"]
        for r in g["rules"]
        if r.get("alert") == "DossierUnitOverdueRateHigh"
    )
    limit = float(re.search(r"\)\s*>\s*([0-9.]+)", expr).group(1)) * 100  # type: ignore[union-attr]
    sql = sys.modules["dashkit.sql"]
    assert sql.OVERDUE_LIMIT == pytest.approx(limit) == 5
    assert f">= {sql.OVERDUE_MIN_COMPLETED}" in expr
    report = report_from_store(loaded.store, loaded.registry, loaded.period)
    units = report["indicators"]["overdue"]["units"]
    want = {
        code
        for code, fig in units.items()
        if fig["denominator"] >= 20 and fig["numerator"] * 100 > limit * fig["denominator"]
    }
    rows = _panel_result("city-overview.json", "Đơn vị có tỷ lệ giải quyết quá hạn trên 5%", loaded)
    assert want and {r["Mã đơn vị"] for r in rows} == want
    board = _dashboards()["city-overview.json"]
    stat = next(p for p in _panels(board) if p["title"].startswith(sql.RATES["overdue"].label))
    steps = stat["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert steps == [{"color": "green", "value": None}, {"color": "red", "value": 5}]


def test_pipeline_health_counts_workers_from_up_and_shows_alerts() -> None:
    board = _dashboards()["pipeline-health.json"]
    stats = {p["title"]: p for p in _panels(board) if p["type"] == "stat"}
    workers = stats["Tiến trình xử lý đang chạy"]["targets"][0]["expr"]
    assert 'up{job="dossier-stream"}' in workers
    for panel in stats.values():  # every stat has a threshold colour of its own
        assert panel["fieldConfig"]["defaults"]["color"] == {"mode": "thresholds"}
    coloured = [
        p for p in stats.values() if len(p["fieldConfig"]["defaults"]["thresholds"]["steps"]) > 1
    ]
    assert len(coloured) >= 4
    anns = board["annotations"]["list"]
    assert all(a["expr"].startswith("ALERTS{alertname=~") for a in anns)
    shown = {
        name
        for a in anns
        for name in re.search(r'=~"([^"]+)"', a["expr"]).group(1).split("|")  # type: ignore[union-attr]
    }
    rules = yaml.safe_load((REPO / "deploy" / "prometheus" / "rules.yml").read_text())
    alerts = {r["alert"] for g in rules["groups"] for r in g["rules"] if "alert" in r}
    assert shown == alerts  # every alert of the rules shows on the dashboard
