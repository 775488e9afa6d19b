"""Security basics: SQL only with bound parameters, hostile input as data, secrets kept secret.

* An audit of the source: every SQL text sent to ClickHouse is a constant or
  built only from code constants and names checked against fixed sets;
  every value from outside goes as a bound parameter.
* Hostile unit codes (quotes, SQL, unicode, very long) and dates travel
  through the processing, the store, the views, the report and the
  dead-letter commands as data: they come back byte for byte, and every
  table is still there.
* Secrets (the DSN's password, the SASL password) come from the environment
  or from secret files (``DOSSIER_SECRETS_DIR``) and never show in
  ``--help``, in reprs, in configuration errors or in the worker's logs.

Metric labels bounded by the registry are tested in ``test_metrics.py``.
"""

from __future__ import annotations

import ast
import csv
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, cast

import click
import orjson
import pytest
from click.testing import CliRunner
from clickhouse_connect.driver.exceptions import DatabaseError
from pydantic import SecretStr

from dossier_stream.cli.main import main
from dossier_stream.core.periods import Period
from dossier_stream.core.registry import UnitRegistry
from dossier_stream.core.topics import load_catalog
from dossier_stream.core.workdays import WorkCalendar
from dossier_stream.settings import ConfigError, Settings, load_settings, mask_dsn
from dossier_stream.sim import testing as t
from dossier_stream.store.sink import BatchingSink, ClickHouseStore, connect
from dossier_stream.store.views import indicator_rows, write_units
from dossier_stream.stream.embedded import EmbeddedBroker
from dossier_stream.stream.processor import Message, Processor
from dossier_stream.stream.runner import report_from_store

SRC = Path(__file__).resolve().parents[2] / "src" / "dossier_stream"
DSN_PASSWORD = "S3cr3t-dsn-pw"
SASL_PASSWORD = "S3cr3t-sasl-pw"
SECRET_ENV = {
    "DOSSIER_CLICKHOUSE_DSN": f"https://ingest:{DSN_PASSWORD}@clickhouse.example:8443/dossiers",
    "DOSSIER_SASL_MECHANISM": "PLAIN",
    "DOSSIER_SASL_USERNAME": "dossier",
    "DOSSIER_SASL_PASSWORD": SASL_PASSWORD,
}

HOSTILE_CODES = (
    "x');DROP/**/TABLE/**/units;--",
    "x\\'OR'1'='1",
    '"quoted"`{start:Date}`',
    "Sở-Tư-pháp-\u0301-\U0001f600",
    "\u202eRTL-override",
    "L" * 64,
)
"""Unit codes a registry accepts (no whitespace, no ``|``) that SQL text would choke on."""

HOSTILE_TEXT = (*HOSTILE_CODES, "x'); DROP TABLE units; --", "é" * 10_000, "{limit:UInt64}")

# ---------------------------------------------------------------- the audit of the source
SQL_CALLS = frozenset({"query", "command"})
BUILT_FROM_CONSTANTS = {
    "sql": "migrate(): a statement of the MIGRATIONS constant",
    "table": "checked against a fixed set of table names before use",
    "where": "_dead_letter_filter(): constant clauses, values bound as parameters",
    "order": "find_dead_letters(): one of two constant strings",
    "limit_clause": "find_dead_letters(): a constant placeholder, the limit bound",
}
"""Names an f-string of SQL may interpolate, and why each holds no input."""


def _sql_calls() -> Iterator[tuple[str, int, ast.expr]]:
    for path in sorted(SRC.rglob("*.py")):
        tree = ast.parse(path.read_text("utf-8"), str(path))
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in SQL_CALLS
                and isinstance(node.func.value, ast.Attribute)
                and node.func.value.attr == "client"
                and node.args
            ):
                yield path.name, node.lineno, node.args[0]


def _constant_name(name: str) -> bool:
    return name.lstrip("_").isupper()


def _why_unsafe(expr: ast.expr) -> str | None:
    """``None`` when the SQL text holds no input, else what is wrong with it."""
    if isinstance(expr, ast.Constant) and isinstance(expr.value, str):
        return None
    if isinstance(expr, ast.Name):
        ok = _constant_name(expr.id) or expr.id in BUILT_FROM_CONSTANTS
        return None if ok else f"SQL text from the variable {expr.id!r}"
    if isinstance(expr, ast.BinOp) and isinstance(expr.op, ast.Add):
        return _why_unsafe(expr.left) or _why_unsafe(expr.right)
    if isinstance(expr, ast.JoinedStr):
        for part in expr.values:
            if isinstance(part, ast.FormattedValue):
                for sub in ast.walk(part.value):
                    if isinstance(sub, ast.Name) and not (
                        _constant_name(sub.id) or sub.id in BUILT_FROM_CONSTANTS
                    ):
                        return f"f-string interpolates {sub.id!r}"
        return None
    return f"SQL text built by {type(expr).__name__}"


def test_no_sql_text_is_formatted_from_input() -> None:
    calls = list(_sql_calls())
    assert len(calls) >= 10  # the audit sees the store's queries
    problems = [f"{f}:{line}: {why}" for f, line, e in calls if (why := _why_unsafe(e))]
    assert problems == [], "bind values as parameters ({name:Type}) instead:\n" + "\n".join(
        problems
    )


def test_the_audit_catches_formatted_input() -> None:
    bad = ast.parse("client.query(f\"SELECT * FROM t WHERE unit = '{unit}'\")", mode="eval")
    call = cast(ast.Call, bad.body)
    assert _why_unsafe(call.args[0]) == "f-string interpolates 'unit'"
    concat = ast.parse('"SELECT " + user_sql', mode="eval").body
    assert _why_unsafe(concat) == "SQL text from the variable 'user_sql'"
    percent = ast.parse('"SELECT %s" % unit', mode="eval").body
    assert _why_unsafe(percent) == "SQL text built by BinOp"


# ---------------------------------------------------------------- hostile input as data
def _registry_with(tmp_path: Path, codes: tuple[str, ...]) -> UnitRegistry:
    path = tmp_path / "hostile-units.csv"
    with path.open("w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh)
        out.writerow(
            ["code", "name", "level", "parent_code", "valid_from", "valid_to", "aliases",
             "successor_codes"]
        )  # fmt: skip
        for i, code in enumerate(codes):
            out.writerow([code, f"Đơn vị {i} '); --", "department", "", "", "", "", ""])
    return UnitRegistry.from_csv(path)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ClickHouseStore]:
    s = ClickHouseStore(connect(f"chdb://{tmp_path / 'ch'}"))
    s.migrate()
    try:
        yield s
    finally:
        s.close()


TABLES = ("unit_day_counters", "dossier_facts", "feedback_facts", "unit_reports", "dead_letters")


def test_hostile_unit_codes_are_data_through_store_views_and_report(
    tmp_path: Path, store: ClickHouseStore, calendar: WorkCalendar
) -> None:
    registry = _registry_with(tmp_path, HOSTILE_CODES)
    assert write_units(store, registry) == len(HOSTILE_CODES)
    sink = BatchingSink(store, max_rows=10_000, interval_s=60)
    processor = Processor(registry, calendar, load_catalog(), sink, store)
    messages: list[Message] = []
    for i, code in enumerate(HOSTILE_CODES):
        for n in range(i + 1):
            ev = t.received(f"{code}/{n}", code, channel="online" if n % 2 else "direct")
            messages.append(Message("dossier.submissions.v1", 0, len(messages), t.encode(ev)))
    handled = processor.handle(messages)
    sink.flush()
    assert {h.outcome.kind for h in handled} == {"applied"}

    day = date(2024, 10, 3)
    counters = store.counters(day, day)
    for i, code in enumerate(HOSTILE_CODES):
        assert counters[(code, day, "received")] == i + 1, code
    report = report_from_store(store, registry, Period(day, day))
    assert report["received"]["city"] == sum(range(1, len(HOSTILE_CODES) + 1))
    online = report["indicators"]["online_submission"]["units"]
    assert {code: online[code]["denominator"] for code in HOSTILE_CODES} == {
        code: i + 1 for i, code in enumerate(HOSTILE_CODES)
    }
    rows = {(u, n) for u, n, _, ind, _, _ in indicator_rows(store, day, day)}
    assert {u for u, _ in rows} == set(HOSTILE_CODES)
    assert all(n.endswith("'); --") for _, n in rows)  # names as written
    assert store.source_states("dossier_facts", "dossier:0")  # recovery reads them back
    for table in TABLES:
        store.count(table)  # every table is still there


def test_very_long_and_odd_codes_in_counters_round_trip(store: ClickHouseStore) -> None:
    day = date(2024, 10, 3)
    rows = [("dossier:0", code, day, "received", 7) for code in HOSTILE_TEXT]
    store.write_counters(rows)
    assert store.counters(day, day) == {(c, day, "received"): 7 for c in HOSTILE_TEXT}
    assert store.source_counters("x'); DROP TABLE units; --") == {}


@pytest.mark.parametrize(
    "day",
    [
        "2024-10-01') OR 1=1 --",
        "2024-10-01' UNION SELECT 1 --",
        "2024-10-01 OR 1=1",
        "'; DROP TABLE x",
    ],
)
def test_hostile_dates_reach_clickhouse_only_as_typed_parameters(
    store: ClickHouseStore, day: str
) -> None:
    store.write_counters([("dossier:0", "U", date(2024, 10, 3), "received", 1)])
    with pytest.raises(DatabaseError, match="as Date for query parameter 'start'"):
        store.counters(cast(Any, day), date(2024, 10, 31))  # a value, never SQL text
    assert store.counters(date(2024, 10, 1), date(2024, 10, 31)) == {
        ("U", date(2024, 10, 3), "received"): 1
    }  # the table is intact
    for table in TABLES:
        store.count(table)


@pytest.mark.parametrize(
    "args",
    [
        ["report", "--from", "2024-10-01'); DROP TABLE units; --", "--to", "2024-10-31"],
        ["report", "--period", "2024-10'; DROP TABLE unit_day_counters; --"],
        ["report", "--rolling", "7d", "--as-of", "2024-10-01' OR '1'='1"],
        ["reconcile", "--from", "2024-10-01", "--to", "2024-10-31'--"],
    ],
)
def test_hostile_dates_on_the_command_line_are_refused_before_any_query(
    args: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DOSSIER_CLICKHOUSE_DSN", f"chdb://{tmp_path / 'ch'}")
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2, result.output  # a usage error
    assert not (tmp_path / "ch").exists()  # refused before ClickHouse was even opened


def test_hostile_dead_letter_filters_select_exactly_their_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dsn = f"chdb://{tmp_path / 'ch'}"
    now = datetime(2024, 10, 3, tzinfo=UTC)
    rows = [
        (f"id{i}", text, 0, i, text, "unknown_unit", "why", f"value {i}".encode(), 1, now)
        for i, text in enumerate(HOSTILE_TEXT)
    ]
    store = ClickHouseStore(connect(dsn))
    try:
        store.migrate()
        store.write_dead_letters(rows)
        for i, text in enumerate(HOSTILE_TEXT):
            (by_topic,) = store.find_dead_letters(topic=text)
            (by_reason,) = store.find_dead_letters(reason=text, pending=True, limit=5)
            assert by_topic["offset"] == by_reason["offset"] == i
            assert by_topic["topic"] == by_reason["reason"] == text
        assert store.find_dead_letters(reason="' OR 1=1 --") == []
        assert store.dead_letter_counts(topic="x' OR '1'='1") == []
        assert store.count("dead_letters") == len(HOSTILE_TEXT)
    finally:
        store.close()

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DOSSIER_CLICKHOUSE_DSN", dsn)
    for text in HOSTILE_TEXT[:3]:
        args = ["deadletter", "list", "--topic", text, "--format", "json"]
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 0, result.output
        assert orjson.loads(result.output)["total"] == 1
    result = CliRunner().invoke(
        main, ["deadletter", "replay", "--reason", HOSTILE_TEXT[0], "--dry-run"]
    )
    assert result.exit_code == 0, result.output
    assert result.output.startswith("selected 1 dead letters")


# ---------------------------------------------------------------- secrets
def _commands(group: click.Group, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    yield path
    for name, command in sorted(group.commands.items()):
        if isinstance(command, click.Group):
            yield from _commands(command, (*path, name))
        else:
            yield (*path, name)


def test_help_of_every_command_never_prints_a_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    paths = list(_commands(main))
    assert ("deadletter", "replay") in paths and ("worker",) in paths
    for path in paths:
        result = CliRunner().invoke(main, [*path, "--help"], env=SECRET_ENV)
        assert result.exit_code == 0, (path, result.output)
        for secret in (DSN_PASSWORD, SASL_PASSWORD):
            assert secret not in result.output, path


def test_settings_never_show_secrets_in_reprs_or_errors() -> None:
    settings = Settings(
        clickhouse_dsn=SecretStr(SECRET_ENV["DOSSIER_CLICKHOUSE_DSN"]),
        sasl_password=SecretStr(SASL_PASSWORD),
    )
    for text in (repr(settings), str(settings), str(settings.model_dump())):
        assert DSN_PASSWORD not in text and SASL_PASSWORD not in text
    assert mask_dsn(settings.clickhouse_dsn.get_secret_value()) == (
        "https://ingest:***@clickhouse.example:8443/dossiers"
    )
    assert mask_dsn("https://u:p%40ss%3Aw@h/db") == "https://u:***@h/db"
    assert mask_dsn("chdb:///var/lib/dossier") == "chdb:///var/lib/dossier"
    with pytest.raises(ConfigError) as info:
        load_settings(clickhouse_dsn=f"mysql://u:{DSN_PASSWORD}@h/db", flush_interval_s=-1)
    assert "DOSSIER_CLICKHOUSE_DSN=***" in str(info.value) and DSN_PASSWORD not in str(info.value)


def test_secrets_come_from_files_of_the_secrets_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    for name in SECRET_ENV:
        monkeypatch.delenv(name, raising=False)
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    dsn = f"chdb://{tmp_path / 'from-file'}"
    (secrets / "dossier_clickhouse_dsn").write_text(dsn + "\n")
    (secrets / "DOSSIER_SASL_PASSWORD").write_text(SASL_PASSWORD)
    monkeypatch.setenv("DOSSIER_SECRETS_DIR", str(secrets))
    settings = load_settings()
    assert settings.clickhouse_dsn.get_secret_value() == dsn
    assert settings.sasl_password is not None
    assert settings.sasl_password.get_secret_value() == SASL_PASSWORD

    monkeypatch.setenv("DOSSIER_SASL_PASSWORD", "from-env")  # the environment wins
    from_env = load_settings().sasl_password
    assert from_env is not None and from_env.get_secret_value() == "from-env"

    result = CliRunner().invoke(main, ["init-db"])  # a command reads the DSN from its file
    assert result.exit_code == 0, result.output
    assert f"ClickHouse schema up to date at {dsn};" in result.output
    assert (tmp_path / "from-file").is_dir()

    monkeypatch.setenv("DOSSIER_SECRETS_DIR", str(secrets / "dossier_clickhouse_dsn"))
    with pytest.raises(ConfigError, match=r"DOSSIER_SECRETS_DIR=.*not a directory"):
        load_settings()


CLI = [sys.executable, "-m", "dossier_stream"]


def test_a_worker_that_cannot_reach_clickhouse_masks_the_password(tmp_path: Path) -> None:
    env = {
        **os.environ, **SECRET_ENV, "DOSSIER_LOG_LEVEL": "DEBUG",
        "DOSSIER_CLICKHOUSE_DSN": f"http://ingest:{DSN_PASSWORD}@127.0.0.1:1/db",
    }  # fmt: skip
    proc = subprocess.run(
        [*CLI, "worker"], cwd=tmp_path, env=env, capture_output=True, timeout=120, check=False
    )
    output = (proc.stdout + proc.stderr).decode()
    assert proc.returncode != 0
    assert "Không dùng được ClickHouse tại http://ingest:***@127.0.0.1:1/db" in output
    assert DSN_PASSWORD not in output and SASL_PASSWORD not in output


@pytest.mark.integration
def test_the_worker_start_up_logs_never_print_a_secret(tmp_path: Path) -> None:
    with EmbeddedBroker(tmp_path / "tansu.log") as broker:
        env = {
            **os.environ, **SECRET_ENV, "DOSSIER_LOG_LEVEL": "DEBUG",
            "DOSSIER_BOOTSTRAP_SERVERS": broker.bootstrap, "DOSSIER_METRICS_PORT": "0",
            "DOSSIER_CLICKHOUSE_DSN": f"chdb://{tmp_path / 'ch'}",
            # a DSN with a password needs a ClickHouse server (the test above covers its
            # masking); the SASL settings are loaded, unused by PLAINTEXT, and must not print
        }  # fmt: skip
        subprocess.run([*CLI, "topics", "create"], cwd=tmp_path, env=env, check=True,
                       capture_output=True, timeout=120)  # fmt: skip
        log = tmp_path / "worker.log"
        with log.open("wb") as out:
            worker = subprocess.Popen([*CLI, "worker"], cwd=tmp_path, env=env, stdout=out,
                                      stderr=subprocess.STDOUT)  # fmt: skip
            try:
                deadline = time.monotonic() + 120
                while b"consuming from" not in log.read_bytes():
                    assert worker.poll() is None, log.read_text()
                    assert time.monotonic() < deadline, log.read_text()
                    time.sleep(0.2)
                time.sleep(2)  # let the consumer join and log what it logs
            finally:
                worker.send_signal(signal.SIGINT)
                try:
                    worker.wait(60)
                except subprocess.TimeoutExpired:
                    worker.kill()
                    worker.wait()
    text = log.read_text(errors="replace")
    assert "DEBUG" in text and "consuming from" in text
    assert DSN_PASSWORD not in text and SASL_PASSWORD not in text
