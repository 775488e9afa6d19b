"""Issue 14's command-line list: each quoted failure of a new user's first hour, fixed.

In-process with click's ``CliRunner`` where possible; real subprocesses for the
unreachable broker (aiokafka's warnings) and the demo followed by ``report``.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner, Result

from dossier_stream.cli.main import main
from dossier_stream.sim import testing as t

REPO = Path(__file__).resolve().parents[2]


def _run(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> Result:
    runner = CliRunner()
    old = Path.cwd()
    os.chdir(cwd)
    try:
        return runner.invoke(main, args, env={"DOSSIER_LOG_LEVEL": None, **(env or {})})
    finally:
        os.chdir(old)


def _guided(result: Result, *needles: str, code: int = 1) -> None:
    """Exit ``code``, no traceback, each needle in the message."""
    text = result.output + (result.stderr if result.stderr_bytes is not None else "")
    assert result.exit_code == code, text
    assert "Traceback" not in text, text
    assert not isinstance(result.exception, Exception) or isinstance(
        result.exception, SystemExit
    ), text
    for needle in needles:
        assert needle in text, (needle, text)


def _events(path: Path, extra: list[bytes] = ()) -> Path:  # type: ignore[assignment]
    lines = [
        t.encode(t.received("D1", "HP-SO-TUPHAP", at="2024-10-01T08:00:00+07:00")),
        t.encode(t.received("D2", "HP-SO-TUPHAP", at="2024-10-02T08:00:00+07:00")),
        *extra,
    ]
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ----------------------------------------------------- 1. one store, empty stores
def test_report_on_an_empty_store_says_so_and_fails(tmp_path: Path) -> None:
    result = _run(["report", "--period", "2024-10"], tmp_path)
    _guided(result, "Không có số liệu", "--allow-empty", "kho dữ liệu trống")
    allowed = _run(["report", "--period", "2024-10", "--allow-empty"], tmp_path)
    assert allowed.exit_code == 0, allowed.output
    assert "BÁO CÁO" in allowed.output or "Tổng số hồ sơ" in allowed.output


def test_reconcile_on_an_empty_store_says_there_was_nothing_to_check(tmp_path: Path) -> None:
    result = _run(["reconcile", "--period", "2024-10"], tmp_path)
    _guided(result, "Không có gì để đối chiếu")
    assert "Every indicator" not in result.output


def test_report_finds_the_demos_store(tmp_path: Path) -> None:
    """The store under .dossier-stream/demo is read when no other is configured."""
    from dossier_stream.settings import Settings
    from dossier_stream.stream.runner import open_store

    demo = tmp_path / ".dossier-stream" / "demo" / "clickhouse"
    store = open_store(Settings(clickhouse_dsn=f"chdb://{demo}"))  # type: ignore[arg-type]
    store.write_counters([("dossier:0", "HP-SO-TUPHAP", __import__("datetime").date(2024, 10, 1),
                           "received", 3)])  # fmt: skip
    store.close()
    result = _run(["report", "--period", "2024-10", "--format", "json"], tmp_path)
    assert result.exit_code == 0, result.output
    assert "Đọc kho dữ liệu của lần chạy demo" in result.stderr
    assert orjson.loads(result.stdout)["received"]["city"] == 3
    assert not (tmp_path / ".dossier-stream" / "clickhouse").exists()
    # a configured store is never replaced by the demo's
    other = _run(
        ["report", "--period", "2024-10"],
        tmp_path,
        env={"DOSSIER_CLICKHOUSE_DSN": f"chdb://{tmp_path / 'other'}"},
    )
    _guided(other, "kho dữ liệu trống")


def test_the_demos_last_lines_give_a_report_command_with_the_same_figures(tmp_path: Path) -> None:
    """README's first command runs the demo; the command it prints gives the same report."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert ".venv/bin/dossier-stream demo" in readme.split("```bash", 1)[1].split("```", 1)[0]
    events = _events(tmp_path / "ev.jsonl", [b"not json", b'{"event_type": "x"}'])
    exe = [sys.executable, "-m", "dossier_stream"]
    env = {**os.environ, "DOSSIER_METRICS_PORT": "0"}
    env.pop("DOSSIER_LOG_LEVEL", None)
    env.pop("DOSSIER_CLICKHOUSE_DSN", None)
    demo = subprocess.run(
        [*exe, "demo", "--events", str(events), "--period", "2024-10",
         "--deadletters", "bad.jsonl"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert demo.returncode == 0, demo.stderr
    assert "Traceback" not in demo.stderr
    assert " INFO " not in demo.stdout and "pipeline:" not in demo.stdout  # a clean report
    assert "2 thư lỗi, theo lý do: unroutable 2" in demo.stderr
    letters = [orjson.loads(x) for x in (tmp_path / "bad.jsonl").read_bytes().splitlines()]
    assert sorted(x["value"] for x in letters) == ["not json", '{"event_type": "x"}']
    assert all(x["reason"] == "unroutable" for x in letters)
    command = re.search(r"^\s*(dossier-stream report [^#\n]*?)\s*#", demo.stderr, re.M)
    assert command, demo.stderr
    args = command.group(1).split()[1:]
    assert args == ["report", "--period", "2024-10"]
    report = subprocess.run(
        [*exe, *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
        check=False,
    )  # fmt: skip
    assert report.returncode == 0, report.stderr
    assert report.stdout == demo.stdout
    assert "2" in report.stdout


# ------------------------------------------------------------- 2. errors as guidance
def test_unreachable_broker_is_guidance_fast_and_closes_the_producer(tmp_path: Path) -> None:
    events = _events(tmp_path / "ev.jsonl")
    env = {**os.environ, "DOSSIER_BOOTSTRAP_SERVERS": f"127.0.0.1:{_free_port()}"}
    env.pop("DOSSIER_LOG_LEVEL", None)
    for args in (["topics", "create"], ["produce", str(events)]):
        proc = subprocess.run(
            [sys.executable, "-m", "dossier_stream", *args], cwd=tmp_path, env=env,
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert proc.returncode == 1, proc.stderr
        assert "Traceback" not in proc.stderr, proc.stderr
        assert "Unclosed" not in proc.stderr, proc.stderr
        assert "Không kết nối được Kafka" in proc.stderr
        assert "DOSSIER_BOOTSTRAP_SERVERS" in proc.stderr
        assert len(proc.stderr.strip().splitlines()) <= 3, proc.stderr
    worker = subprocess.run(
        [sys.executable, "-m", "dossier_stream", "worker"], cwd=tmp_path, capture_output=True,
        env={**env, "DOSSIER_METRICS_PORT": "0", "DOSSIER_CLICKHOUSE_DSN": f"chdb://{tmp_path}/ch"},
        text=True, timeout=120, check=False,
    )  # fmt: skip
    assert worker.returncode == 1 and "Traceback" not in worker.stderr, worker.stderr
    assert "DOSSIER_BOOTSTRAP_SERVERS" in worker.stderr
    assert "--bootstrap-servers" not in worker.stderr  # the worker has no such option
    debug = subprocess.run(
        [sys.executable, "-m", "dossier_stream", "--debug", "topics", "create"], cwd=tmp_path,
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert debug.returncode != 0 and "Traceback" in debug.stderr


def test_unreachable_clickhouse_is_guidance(tmp_path: Path) -> None:
    dsn = f"http://127.0.0.1:{_free_port()}/default"
    result = _run(["report", "--period", "2024-10"], tmp_path, {"DOSSIER_CLICKHOUSE_DSN": dsn})
    _guided(result, "Không dùng được ClickHouse", "DOSSIER_CLICKHOUSE_DSN")


@pytest.mark.parametrize("command", ["replay", "simulate"])
def test_unwritable_output_is_guidance(tmp_path: Path, command: str) -> None:
    out = tmp_path / "no" / "such" / "dir" / "out.txt"
    if command == "replay":
        args = ["replay", str(_events(tmp_path / "ev.jsonl")), "--out", str(out)]
    else:
        args = ["simulate", "--month", "2024-10", "--dossiers", "10", "--out", str(out)]
    result = _run(args, tmp_path)
    text = result.output + result.stderr
    assert result.exit_code != 0 and "Traceback" not in text, text
    assert "--out" in text or "Không đọc/ghi được" in text, text
    assert not isinstance(result.exception, OSError)


def test_missing_file_is_a_usage_error(tmp_path: Path) -> None:
    result = _run(["replay", str(tmp_path / "missing.jsonl")], tmp_path)
    _guided(result, "does not exist", code=2)


# ---------------------------------------------------------------- 3. bad input visible
def test_replay_prints_a_dead_letter_summary_and_writes_every_rejected_line(
    tmp_path: Path,
) -> None:
    bad = [b"not json", b"", b'{"event_type": "dossier.teleported"}', b"[1, 2]"]
    events = _events(tmp_path / "ev.jsonl", bad)
    out = tmp_path / "dead.jsonl"
    result = _run(["replay", str(events), "--deadletters", str(out), "--format", "json"], tmp_path)
    assert result.exit_code == 0, result.output
    assert "3/5 dòng bị loại" in result.stderr
    assert "dòng 3: not_json" in result.stderr
    rows = [orjson.loads(x) for x in out.read_bytes().splitlines()]
    assert [r["line"] for r in rows] == [3, 5, 6]  # physical line numbers (5 is after a blank)
    assert all(r["reason"] for r in rows)
    assert orjson.loads(result.stdout)["pipeline"]["deadletter"] == 3


def test_a_json_array_is_refused_with_the_format_expected(tmp_path: Path) -> None:
    events = [t.received(f"D{i}", "HP-SO-TUPHAP") for i in range(3)]
    path = tmp_path / "events.json"
    path.write_bytes(orjson.dumps(events, option=orjson.OPT_INDENT_2))
    result = _run(["replay", str(path)], tmp_path)
    _guided(result, "mảng JSON", "JSON Lines", "jq -c")


def test_a_byte_order_mark_is_ignored(tmp_path: Path) -> None:
    path = _events(tmp_path / "ev.jsonl")
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    result = _run(["replay", str(path), "--format", "json"], tmp_path)
    assert result.exit_code == 0, result.output
    assert orjson.loads(result.stdout)["pipeline"]["deadletter"] == 0
    assert "không có dòng lỗi" in result.stderr


# ------------------------------------------------------- 4. contradicting options
@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--period", "2024-10", "--from", "2024-09-15", "--to", "2024-10-14"], "--period"),
        (["--rolling", "7d", "--period", "2024-10"], "--rolling"),
        (["--as-of", "2024-10-14"], "--as-of chỉ dùng với --rolling"),
        (["--period", "week:2024-09-18"], "week:2024-09-13"),
        (["--from", "2024-09-15"], "--from cần đi kèm --to"),
        (["--period", "2024-10", "--template", "weekly"], "--template weekly"),
    ],
)
def test_contradicting_options_are_refused(tmp_path: Path, args: list[str], needle: str) -> None:
    result = _run(["report", *args], tmp_path)
    _guided(result, needle, code=2)
    assert not (tmp_path / ".dossier-stream").exists()  # refused before opening anything


def test_replay_refuses_the_same_contradictions(tmp_path: Path) -> None:
    events = _events(tmp_path / "ev.jsonl")
    _guided(_run(["replay", str(events), "--from", "2024-10-01"], tmp_path), "--to", code=2)
    weekly = _run(["replay", str(events), "--template", "weekly", "--period", "2024-10"], tmp_path)
    _guided(weekly, "thứ Sáu đến thứ Năm", code=2)
    week = _run(["replay", str(events), "--template", "weekly", "--period", "week:2024-09-27"],
                tmp_path)  # fmt: skip
    assert week.exit_code == 0, week.output


# ------------------------------------------------------------ 5. progress, stderr
def test_simulate_and_replay_say_what_they_do_on_stderr(tmp_path: Path) -> None:
    out = tmp_path / "sim.jsonl"
    sim = _run(["simulate", "--month", "2024-10", "--dossiers", "20", "--out", str(out)], tmp_path)
    assert sim.exit_code == 0, sim.output
    assert "Mô phỏng" in sim.stderr and sim.stdout == ""
    replay = _run(["replay", str(out), "--format", "json"], tmp_path)
    assert replay.exit_code == 0
    assert "Đọc" in replay.stderr
    orjson.loads(replay.stdout)  # stdout is the report only


# --------------------------------------------------------- 6. units and calendar
def test_units_resolve_suggests_only_options_the_cli_has(tmp_path: Path) -> None:
    result = _run(["units", "resolve", "Xã Quốc Tuấn"], tmp_path)
    _guided(result, "--parent", "--level", "--on")
    assert "parent_code=" not in result.output and "level=..." not in result.output
    for opt in re.findall(r"--[a-z-]+", result.output):
        assert opt in {"--parent", "--level", "--on"}, opt
    ok = _run(["units", "resolve", "Xã Quốc Tuấn", "--parent", "HP-Q-313"], tmp_path)
    assert ok.exit_code == 0 and ok.output.startswith("HP-Q-313-16"), ok.output


def test_calendar_due_prints_a_readable_date_time(tmp_path: Path) -> None:
    result = _run(["calendar", "due", "2025-01-24", "3"], tmp_path)
    assert result.exit_code == 0, result.output
    assert "datetime.datetime" not in result.output
    iso, readable = result.output.strip().split("\t")
    assert iso.startswith("2025-02-") and iso.endswith("+07:00")
    assert re.fullmatch(r"\d\d:\d\d (thứ \w+|Chủ nhật), \d\d/02/2025", readable), readable
