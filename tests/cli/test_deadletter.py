"""``deadletter list`` and ``deadletter replay``: the store's reads and marks, the commands.

The unit tests seed ``dead_letters`` in an embedded ClickHouse and run the
commands in-process; the integration test runs the whole loop on real parts:
events of a unit missing from the registry are dead-lettered by a worker,
listed, replayed once the registry has the unit, and counted.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner
from pydantic import SecretStr

from dossier_stream.cli.deadletter import plan_replay, printable, route_of
from dossier_stream.cli.main import main
from dossier_stream.core.engine import Engine
from dossier_stream.core.periods import monthly_report
from dossier_stream.core.registry import UnitRegistry
from dossier_stream.core.topics import load_catalog
from dossier_stream.core.workdays import WorkCalendar
from dossier_stream.settings import Settings
from dossier_stream.sim import testing as t
from dossier_stream.store.deadletters import DEAD_LETTER_COLUMNS
from dossier_stream.store.sink import ClickHouseStore, connect
from dossier_stream.stream.embedded import EmbeddedBroker
from dossier_stream.stream.runner import Worker, create_topics, open_store, produce_lines

T0 = datetime(2024, 10, 3, 1, 0, tzinfo=UTC)
_NO_UNIT = {k: v for k, v in t.payment("D9", "HP-SO-TUPHAP").items() if k != "unit_code"}
LONG = t.encode(_NO_UNIT | {"note": "x" * 200})


def _letter(
    offset: int,
    reason: str,
    value: str | bytes,
    *,
    topic: str = "dossier.submissions.v1",
    exact: int = 1,
) -> tuple[Any, ...]:
    raw = value if isinstance(value, bytes) else value.encode()
    at = T0 + timedelta(minutes=offset)
    code = reason.split(":")[0]
    return (f"id{offset}", topic, 0, offset, reason, code, f"why {offset}", raw, exact, at)


LETTERS = (
    _letter(1, "unknown_unit", t.encode(t.received("D1", "HP-SO-TUPHAP"))),  # fixed since
    _letter(2, "unknown_unit", t.encode(t.received("D2", "NO-SUCH-UNIT"))),  # still unknown
    _letter(3, "not_json", "\x1b[31mred\x1b[0m and not JSON"),
    _letter(4, "unroutable", '{"event_type": "dossier.teleported"}', topic="events.jsonl"),
    # logged before migration 5: stored as text, its original bytes lost
    _letter(5, "not_json", '{"event_id": "\ufffd", "event_type": "dossier.withdrawn"}', exact=0),
    _letter(6, "missing_field:unit_code", LONG, topic="dossier.payments.v1"),
)


@pytest.fixture
def dsn(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A seeded store, closed: the commands open it themselves (one chdb user at a time)."""
    monkeypatch.chdir(tmp_path)
    dsn = f"chdb://{tmp_path / 'ch'}"
    monkeypatch.setenv("DOSSIER_CLICKHOUSE_DSN", dsn)
    monkeypatch.delenv("DOSSIER_UNITS_FILE", raising=False)
    store = ClickHouseStore(connect(dsn))
    try:
        store.migrate()
        store.write_dead_letters(LETTERS)
    finally:
        store.close()
    return dsn


def _store(dsn: str) -> ClickHouseStore:
    store = ClickHouseStore(connect(dsn))
    store.migrate()
    return store


def _invoke(args: Sequence[str]) -> str:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_the_store_filters_counts_and_marks_letters(dsn: str) -> None:
    store = _store(dsn)
    try:
        assert [r["offset"] for r in store.find_dead_letters()] == [6, 5, 4, 3, 2, 1]
        assert [r["offset"] for r in store.find_dead_letters(oldest_first=True, limit=2)] == [1, 2]
        assert len(store.find_dead_letters(reason="unknown_unit")) == 2
        assert len(store.find_dead_letters(reason="missing_field")) == 1  # by code
        assert len(store.find_dead_letters(reason="missing_field:unit_code")) == 1  # by reason
        assert len(store.find_dead_letters(topic="events.jsonl")) == 1
        assert store.dead_letter_counts()[0] == ("not_json", 2, 0)
        first = store.find_dead_letters(reason="unknown_unit", oldest_first=True)
        assert first[0]["logged_at"] == T0 + timedelta(minutes=1)  # aware, UTC
        assert first[0]["replayed_at"] is None

        at = datetime(2024, 10, 4, 9, 30, tzinfo=UTC)
        assert store.mark_dead_letters_replayed(first[:1], at) == 1
        assert store.count("dead_letters") == len(LETTERS)  # marked in place, not added
        again = store.find_dead_letters(reason="unknown_unit", oldest_first=True)
        assert again[0] == first[0] | {"replayed_at": at}
        assert [
            r["offset"] for r in store.find_dead_letters(pending=True, reason="unknown_unit")
        ] == [2]
        assert ("unknown_unit", 2, 1) in store.dead_letter_counts()
    finally:
        store.close()


def test_list_prints_reason_counts_then_rows_with_values_cut_and_escaped(dsn: str) -> None:
    out = _invoke(["deadletter", "list"])
    lines = out.splitlines()
    assert lines[0] == "dead letters: 6 (0 replayed, 6 pending)"
    counts = lines[1 : lines.index("")]
    assert counts[0].split() == ["letters", "replayed", "reason"]
    assert [c.split() for c in counts[1:]] == [
        ["2", "0", "not_json"], ["2", "0", "unknown_unit"],
        ["1", "0", "missing_field:unit_code"], ["1", "0", "unroutable"],
    ]  # fmt: skip
    rows = lines[lines.index("") + 1 :]
    assert rows[0].split()[:4] == ["logged", "at", "(UTC)", "topic"]
    assert rows[1].startswith("2024-10-03 01:06:00  dossier.payments.v1")  # the newest first
    assert "\x1b" not in out and "\\x1b[31mred\\x1b[0m and not JSON" in out
    value = rows[1].split("  ")[-1]
    assert value.endswith("…") and len(value) == 60 and value.startswith('{"event_id"')


def test_list_filters_limits_and_prints_json_for_machines(dsn: str) -> None:
    out = _invoke(["deadletter", "list", "--reason", "unknown_unit", "--limit", "1"])
    assert out.splitlines()[0] == "dead letters: 2 (0 replayed, 2 pending) [reason=unknown_unit]"
    assert out.rstrip().endswith("(the newest 1 of 2; --limit N for more)")
    doc = orjson.loads(
        _invoke(["deadletter", "list", "--topic", "dossier.payments.v1", "--format", "json"])
    )
    assert doc["total"] == 1 and doc["replayed"] == 0
    assert doc["reasons"] == [{"reason": "missing_field:unit_code", "letters": 1, "replayed": 0}]
    (letter,) = doc["letters"]
    assert letter["value"] == LONG.decode()  # whole, not cut
    assert letter["logged_at"] == "2024-10-03T01:06:00+00:00" and letter["replayed_at"] is None
    empty = _invoke(["deadletter", "list", "--reason", "x'); DROP TABLE dead_letters; --"])
    assert empty.startswith("dead letters: 0 (0 replayed, 0 pending)")
    assert _invoke(["deadletter", "list"]).startswith("dead letters: 6 ")  # still there


def test_replay_dry_run_says_what_it_would_do_and_sends_nothing(dsn: str) -> None:
    out = _invoke(["deadletter", "replay", "--dry-run"]).splitlines()
    assert out[:5] + out[-1:] == [
        "selected 6 dead letters (not replayed yet; --all for every one)",
        "  to re-publish: 3 (dossier.payments.v1: 1, dossier.submissions.v1: 2)",
        "  with this registry: 1 pass the checks, 2 would dead-letter again "
        "(missing_field:unit_code: 1, unknown_unit: 1)",
        "  still unroutable (no topic carries them; left as they are): 2",
        "  lossy (logged before migration 5, not UTF-8 originally; the bytes are not kept; "
        "left as they are): 1",
        "dry run: nothing sent, nothing marked",
    ]
    # then each letter: its id, where it would go, the SHA-256 and length of its bytes
    targets = {1: "dossier.submissions.v1", 2: "dossier.submissions.v1", 3: "(unroutable)",
               4: "(unroutable)", 5: "(lossy)", 6: "dossier.payments.v1"}  # fmt: skip
    listed = {line.split()[0]: line.split()[1:4] for line in out[5:-1]}
    assert listed == {
        letter[0]: [
            targets[letter[3]], f"sha256:{hashlib.sha256(letter[7]).hexdigest()}",
            str(len(letter[7])),
        ]
        for letter in LETTERS
    }  # fmt: skip
    store = _store(dsn)
    try:
        assert len(store.find_dead_letters(pending=True)) == len(LETTERS)
    finally:
        store.close()


def test_replay_plan_routes_by_event_type_and_keeps_what_it_cannot_reproduce(
    registry: UnitRegistry, calendar: WorkCalendar
) -> None:
    catalog = load_catalog()
    columns = DEAD_LETTER_COLUMNS[:-1]
    letters = [dict(zip(columns, row, strict=True)) for row in LETTERS]
    plan = plan_replay(letters, catalog, Engine(registry, calendar, catalog=catalog))
    assert [(letter["offset"], topic) for letter, topic, _ in plan.routed] == [
        (1, "dossier.submissions.v1"), (2, "dossier.submissions.v1"), (6, "dossier.payments.v1"),
    ]  # fmt: skip
    assert [value for _, _, value in plan.routed][2] == LONG  # the original bytes
    assert [letter["offset"] for letter in plan.unroutable] == [3, 4]
    assert [letter["offset"] for letter in plan.lossy] == [5]
    assert plan.forecast == {"valid": 1, "unknown_unit": 1, "missing_field:unit_code": 1}
    assert route_of(b'{"event_type": 7}', catalog) is None
    assert route_of(b"[]", catalog) is None


def test_printable_escapes_what_a_terminal_would_interpret() -> None:
    assert printable("a\x1b[2Jb\n\t\u202ec") == "a\\x1b[2Jb\\n\\t\\u202ec"
    assert printable("Kiến Thụy, Hoà") == "Kiến Thụy, Hoà"  # letters and combining marks stay
    assert printable("x" * 10, 5) == "xxxx…"


# ---------------------------------------------------------------- on real parts
CLI = [sys.executable, "-m", "dossier_stream"]
HEADER = "code,name,level,parent_code,valid_from,valid_to,aliases,successor_codes\n"


def _cli(args: list[str], cwd: Path, env: dict[str, str]) -> str:
    proc = subprocess.run(
        [*CLI, *args], cwd=cwd, env={**os.environ, "DOSSIER_LOG_LEVEL": "WARNING", **env},
        capture_output=True, timeout=300, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr.decode()[-3000:]
    return proc.stdout.decode()


async def _logged(store: ClickHouseStore, letters: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while store.count("dead_letters") < letters:
        assert time.monotonic() < deadline, f"{store.count('dead_letters')} of {letters} logged"
        await asyncio.sleep(0.2)


async def _run_worker(
    settings: Settings, registry: UnitRegistry, calendar: WorkCalendar, events: int,
    letters: int, lines: Sequence[bytes] = (),
) -> Worker:  # fmt: skip
    """Start a worker, publish ``lines``, wait for ``events`` and ``letters`` rows, stop."""
    catalog = load_catalog()
    await create_topics(settings, catalog)
    store = open_store(settings)
    worker = Worker(settings, catalog, registry, calendar, store)
    await worker.start()
    try:
        if lines:
            await produce_lines(settings, catalog, lines)
        assert await worker.wait_for(events, timeout=120), worker.processor.stats
        await _logged(store, letters)
    finally:
        await worker.stop()
        store.close()
    return worker


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[EmbeddedBroker]:
    with EmbeddedBroker(tmp_path / "tansu-1.log") as b:
        yield b


@pytest.mark.integration
def test_letters_of_a_missing_unit_are_replayed_once_the_registry_has_it(
    tmp_path: Path, broker: EmbeddedBroker, calendar: WorkCalendar
) -> None:
    old_units, new_units = tmp_path / "units-old.csv", tmp_path / "units-new.csv"
    old_units.write_text(HEADER + "T-SO-A,Sở Thử nghiệm A,department,,,,,\n")
    new_units.write_text(old_units.read_text() + "T-SO-B,Sở Thử nghiệm B,department,,,,,\n")
    lines = [t.encode(t.received(f"A{i}", "T-SO-A")) for i in range(5)]
    for i in range(20):  # a unit the running registry does not know yet
        lines += [t.encode(t.received(f"B{i}", "T-SO-B")), t.encode(t.completed(f"B{i}", "T-SO-B"))]
    lines += [t.encode(t.received("C1", "T-SO-C")), b"not json"]  # still wrong after the fix
    dsn = f"chdb://{tmp_path / 'ch'}"
    settings = Settings(
        bootstrap_servers=broker.bootstrap,
        clickhouse_dsn=SecretStr(dsn),
        data_dir=tmp_path / "data",
        app_id="deadletter-test",
        metrics_port=0,
    )
    asyncio.run(
        _run_worker(settings, UnitRegistry.from_csv(old_units), calendar, len(lines), 42, lines)
    )

    env = {"DOSSIER_CLICKHOUSE_DSN": dsn, "DOSSIER_BOOTSTRAP_SERVERS": broker.bootstrap}
    args = ["deadletter", "list", "--reason", "unknown_unit", "--format", "json"]
    listed = orjson.loads(_cli(args, tmp_path, env))
    assert listed["total"] == 41 and listed["replayed"] == 0
    assert {orjson.loads(r["value"])["unit_code"] for r in listed["letters"]} == {
        "T-SO-B",
        "T-SO-C",
    }
    text = _cli(["deadletter", "list"], tmp_path, env)
    assert text.startswith("dead letters: 42 (0 replayed, 42 pending)\n")

    # the fix: the registry gains the unit; the letters are replayed while the worker is
    # down (one chdb user at a time), then the worker resumes with the new registry
    env["DOSSIER_UNITS_FILE"] = str(new_units)
    replay = ["deadletter", "replay", "--reason", "unknown_unit"]
    dry = _cli([*replay, "--dry-run"], tmp_path, env)
    assert "  to re-publish: 41 (dossier.progress.v1: 20, dossier.submissions.v1: 21)\n" in dry
    assert (
        "  with this registry: 40 pass the checks, 1 would dead-letter again (unknown_unit: 1)"
        in dry
    )
    assert dry.endswith("dry run: nothing sent, nothing marked\n")
    done = _cli(replay, tmp_path, env)
    assert done.endswith(
        "re-published 41 dead letters and marked 41 replayed; 0 still unroutable\n"
    )
    again = _cli(replay, tmp_path, env)
    assert again.startswith("selected 0 dead letters (not replayed yet; --all for every one)")
    assert again.endswith("nothing to re-publish\n")
    rest = _cli(["deadletter", "replay", "--dry-run"], tmp_path, env)
    assert "  still unroutable (no topic carries them; left as they are): 1\n" in rest
    listed = orjson.loads(_cli(args, tmp_path, env))
    assert listed["replayed"] == 41

    worker = asyncio.run(
        _run_worker(settings, UnitRegistry.from_csv(new_units), calendar, events=41, letters=43)
    )
    stats = worker.processor.stats  # the same consumer group: only the replayed messages
    assert (stats.events_in, stats.valid, stats.deadletter) == (41, 40, 1)

    store = open_store(settings)
    try:
        period = monthly_report(2024, 10)
        counters = store.counters(period.start, period.end)
        for counter in ("received", "received_online", "completed"):
            assert (
                sum(v for (u, _, c), v in counters.items() if (u, c) == ("T-SO-B", counter)) == 20
            )
        assert sum(v for (u, _, c), v in counters.items() if (u, c) == ("T-SO-A", "received")) == 5
        letters = store.find_dead_letters(reason="unknown_unit")
        replayed = [r for r in letters if r["replayed_at"] is not None]
        (pending,) = [r for r in letters if r["replayed_at"] is None]
        assert len(replayed) == 41
        assert orjson.loads(pending["value"])["unit_code"] == "T-SO-C"  # dead-lettered again
    finally:
        store.close()
    final = orjson.loads(_cli(["deadletter", "list", "--format", "json"], tmp_path, env))
    assert (final["total"], final["replayed"]) == (43, 41)
