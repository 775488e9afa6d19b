"""Recovery and durability of the worker's shell, on chdb (no broker).

Each test is a hole of the recovery path that an interrupted flush, a failed
read or a restart could open, checked on the real store:

* counters written by a flush whose facts never were are rewritten from the
  states on recovery (zeros for keys no stored state gives);
* a recovery read that fails leaves no half-loaded partition;
* a late, older ``unit.reported_totals`` cannot replace a newer one after a
  restart;
* the batching writer keeps what a failed flush did not write, never writes
  a table twice, lets newer rows win, and drops lost partitions' rows;
* row versions never go back within a process;
* a revocation stores what is buffered, or drops only the revoked rows if
  it cannot, and forgets the sources; dead letters read back are buffered,
  and only those ``produce`` wrote are counted;
* the retry loop, its backoff and giving up, and holding a batch back.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest

from dossier_stream.core.periods import monthly_report
from dossier_stream.core.registry import UnitRegistry
from dossier_stream.core.topics import load_catalog
from dossier_stream.core.workdays import WorkCalendar
from dossier_stream.settings import ConfigError, load_settings
from dossier_stream.sim import testing as t
from dossier_stream.store import sink as sink_module
from dossier_stream.store.batching import BatchingSink
from dossier_stream.store.sink import ClickHouseStore, connect
from dossier_stream.stream.durable import Backoff, GiveUp, hold_back, until_done
from dossier_stream.stream.processor import Message, Processor

UNIT = "HP-SO-TUPHAP"
PERIOD = monthly_report(2024, 10)
SUBMISSIONS, PROGRESS, REPORTS = "dossier.submissions.v1", "dossier.progress.v1", "unit.reports.v1"


class _Store(ClickHouseStore):
    """The chdb store, with writes and reads that fail while told to."""

    def __init__(self, path: Path) -> None:
        super().__init__(connect(f"chdb://{path}"))
        self.fail_facts = False
        self.fail_reads = 0

    def write_rows(self, table: str, columns: Any, rows: Any) -> int:
        if self.fail_facts:
            raise ConnectionError("ClickHouse is down (test)")
        return super().write_rows(table, columns, rows)

    def source_reports(self, source: str) -> Any:
        if self.fail_reads:
            self.fail_reads -= 1
            raise ConnectionError("ClickHouse is down (test)")
        return super().source_reports(source)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[_Store]:
    s = _Store(tmp_path / "ch")
    s.migrate()
    try:
        yield s
    finally:
        s.close()


def _processor(store: ClickHouseStore, registry: UnitRegistry, calendar: WorkCalendar) -> Processor:
    sink = BatchingSink(store, max_rows=10_000, interval_s=60)
    return Processor(registry, calendar, load_catalog(), sink, store)


def _dossier(n: int) -> list[Message]:
    d = f"D{n}"
    return [
        Message(SUBMISSIONS, 0, 2 * n, t.encode(t.received(d, UNIT, channel="online"))),
        Message(PROGRESS, 0, 2 * n + 1, t.encode(t.completed(d, UNIT))),
    ]


def test_counters_of_a_flush_whose_facts_were_lost_are_rewritten_on_recovery(
    store: _Store, registry: UnitRegistry, calendar: WorkCalendar
) -> None:
    first = _processor(store, registry, calendar)
    first.handle(_dossier(1))
    first.sink.flush()  # D1 stored whole
    first.handle(_dossier(2))
    store.fail_facts = True  # the process dies between the counters and the facts insert
    with pytest.raises(ConnectionError):
        first.sink.flush()
    assert store.counters(PERIOD.start, PERIOD.end)[(UNIT, date(2024, 10, 3), "received")] == 2
    store.fail_facts = False

    second = _processor(store, registry, calendar)  # the restarted worker
    second.recover(["dossier:0"])
    second.sink.flush()
    counters = store.counters(PERIOD.start, PERIOD.end)
    assert counters[(UNIT, date(2024, 10, 3), "received")] == 1  # only D1's state is stored
    # the messages of D2 were not acknowledged: they come again and count once
    second.handle(_dossier(2))
    second.sink.flush()
    assert store.counters(PERIOD.start, PERIOD.end) == first.engines["dossier:0"].counters

    # a source none of whose states were stored: every key it wrote goes back to 0
    lost = _processor(store, registry, calendar)
    lost.handle([Message(SUBMISSIONS, 1, 0, t.encode(t.received("D9", UNIT, at=_AT_9)))])
    store.fail_facts = True
    with pytest.raises(ConnectionError):
        lost.sink.flush()
    store.fail_facts = False
    assert store.source_counters("dossier:1") != {}
    fresh = _processor(store, registry, calendar)
    fresh.recover(["dossier:1"])
    fresh.sink.flush()
    assert store.source_counters("dossier:1") == {}


_AT_9 = "2024-10-09T09:00:00+07:00"


def test_a_failed_recovery_read_leaves_no_half_loaded_partition(
    store: _Store, registry: UnitRegistry, calendar: WorkCalendar
) -> None:
    first = _processor(store, registry, calendar)
    first.handle(_dossier(1))
    first.sink.flush()
    second = _processor(store, registry, calendar)
    store.fail_reads = 1  # the dossier states were read, then the reports read failed
    with pytest.raises(ConnectionError):
        second.recover(["dossier:0"])
    assert second.engines == {}
    second.recover(["dossier:0"])  # the retry loads everything
    assert set(second.engines["dossier:0"].dossiers) == {"D1"}
    assert second.engines["dossier:0"].counters == first.engines["dossier:0"].counters


def test_an_older_unit_report_read_after_a_restart_does_not_replace_the_newer(
    store: _Store, registry: UnitRegistry, calendar: WorkCalendar
) -> None:
    newer = t.reported_totals(
        UNIT, start="2024-09-15", end="2024-10-14", total=120, at="2024-10-15T10:00:00+07:00"
    )
    older = t.reported_totals(
        UNIT, start="2024-09-15", end="2024-10-14", total=100, at="2024-10-15T08:00:00+07:00"
    )
    first = _processor(store, registry, calendar)
    first.handle([Message(REPORTS, 0, 0, t.encode(newer))])
    first.sink.flush()
    restarted = _processor(store, registry, calendar)
    restarted.handle([Message(REPORTS, 0, 1, t.encode(older))])
    restarted.sink.flush()
    key = (UNIT, date(2024, 9, 15), date(2024, 10, 14))
    assert store.reported_totals(PERIOD.start, PERIOD.end) == {key: 120}


class _Recorder:
    """A store that records writes and fails the tables it is told to."""

    def __init__(self) -> None:
        self.failing: set[str] = set()
        self.written: list[tuple[str, list[Any]]] = []

    def _write(self, table: str, rows: list[Any]) -> int:
        if table in self.failing:
            raise ConnectionError(f"{table} is down (test)")
        self.written.append((table, rows))
        return len(rows)

    def write_counters(self, rows: Any) -> int:
        return self._write("unit_day_counters", list(rows))

    def write_rows(self, table: str, columns: Any, rows: Any) -> int:
        return self._write(table, list(rows))

    def write_dead_letters(self, rows: Any) -> int:
        return self._write("dead_letters", list(rows))


def test_a_failed_flush_keeps_what_it_did_not_write_and_newer_rows_win() -> None:
    rec = _Recorder()
    sink = BatchingSink(cast(ClickHouseStore, rec), max_rows=100, interval_s=60)
    day = date(2024, 10, 3)
    sink.add_counter("dossier:0", (UNIT, day, "received"), 1)
    sink.add_fact("dossier_facts", ("dossier_id",), "D1", ("D1", "old"), source="dossier:0")
    rec.failing = {"dossier_facts"}
    with pytest.raises(ConnectionError):
        sink.flush()
    assert rec.written == [("unit_day_counters", [("dossier:0", UNIT, day, "received", 1)])]
    assert len(sink) == 1  # the fact waits; the written counters are not written again
    sink.add_fact("dossier_facts", ("dossier_id",), "D1", ("D1", "new"), source="dossier:0")
    rec.failing = set()
    assert sink.flush() == 1
    assert rec.written[-1] == ("dossier_facts", [("D1", "new")])
    assert sink.flush() == 0


def test_discard_drops_only_the_lost_partitions_rows() -> None:
    sink = BatchingSink(cast(ClickHouseStore, _Recorder()), max_rows=100, interval_s=60)
    day = date(2024, 10, 3)
    for source in ("dossier:0", "dossier:1"):
        sink.add_counter(source, (UNIT, day, "received"), 1)
        sink.add_fact("dossier_facts", ("dossier_id",), source, (source,), source=source)
    sink.add_dead_letter(("t", 0, 0, "r", "c", "", "", None))
    assert sink.discard(["dossier:1"]) == 2
    assert len(sink) == 3


def test_row_versions_never_go_back(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = iter([2_000, 1_000, 1_000, 3_000])
    monkeypatch.setattr(sink_module.time, "time_ns", lambda: next(clock))
    clock_ = sink_module.VersionClock()
    assert [clock_.next() for _ in range(4)] == [2_000, 2_001, 2_002, 3_000]


def test_backoff_doubles_up_to_its_bound() -> None:
    delays = Backoff(0.5, 3).delays()
    assert [next(delays) for _ in range(6)] == [0.5, 1, 2, 3, 3, 3]
    with pytest.raises(ValueError):
        Backoff(2, 1)


def test_until_done_retries_then_gives_up_when_told() -> None:
    calls: list[int] = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionError("down")
        return "stored"

    backoff = Backoff(0.001, 0.002)
    assert asyncio.run(until_done(flaky, what="flush", backoff=backoff, give_up=lambda: None)) == (
        "stored"
    )
    assert len(calls) == 3

    def down() -> None:
        raise ConnectionError("down")

    with pytest.raises(GiveUp, match="stopping") as info:
        asyncio.run(until_done(down, what="flush", backoff=backoff, give_up=lambda: "stopping"))
    assert isinstance(info.value.__cause__, ConnectionError)


def test_a_stop_during_the_wait_gives_up_without_waiting_it_out() -> None:
    stopping: list[bool] = []

    def down() -> None:
        raise ConnectionError("down")

    async def run() -> float:
        asyncio.get_running_loop().call_later(0.2, stopping.append, True)
        t0 = time.monotonic()
        with pytest.raises(GiveUp, match="stopping"):
            await until_done(
                down,
                what="flush",
                backoff=Backoff(30, 30),
                give_up=lambda: "stopping" if stopping else None,
            )
        return time.monotonic() - t0

    assert asyncio.run(run()) < 2


def test_hold_back_marks_messages_without_acknowledging_them() -> None:
    acked = SimpleNamespace(acked=True)
    fresh = SimpleNamespace(acked=False)
    events = [SimpleNamespace(message=acked), SimpleNamespace(message=fresh)]
    assert hold_back(events) == 1
    assert fresh.acked is True


def test_retry_bounds_are_validated() -> None:
    assert load_settings(flush_retry_min_s=1, flush_retry_max_s=1).flush_retry_max_s == 1
    with pytest.raises(ConfigError, match="DOSSIER_FLUSH_RETRY_MAX_S"):
        load_settings(flush_retry_min_s=5, flush_retry_max_s=1)
    with pytest.raises(ConfigError, match="DOSSIER_FLUSH_RETRY_MIN_S"):
        load_settings(flush_retry_min_s=0)


def test_the_app_keeps_fausts_co_partitioning_assignor(
    tmp_path: Path, registry: UnitRegistry, calendar: WorkCalendar
) -> None:
    """faust-streaming picks aiokafka's round-robin assignor when an app has no
    changelog tables and no standby replicas; this app has no tables, so it
    must keep a standby count for the dossier topics to stay co-partitioned."""
    from dossier_stream.stream.app import build_app

    settings = load_settings(data_dir=tmp_path, bootstrap_servers="127.0.0.1:9")
    sink = BatchingSink(cast(ClickHouseStore, _Recorder()), max_rows=10, interval_s=60)
    processor = Processor(registry, calendar, load_catalog(), sink, cast(ClickHouseStore, None))
    app = build_app(settings, load_catalog(), processor)
    assert not app.tables.changelog_topics
    assert app.conf.table_standby_replicas > 0


def test_a_revocation_stores_what_is_buffered_then_forgets_the_sources(
    store: _Store, registry: UnitRegistry, calendar: WorkCalendar
) -> None:
    p = _processor(store, registry, calendar)
    p.handle(_dossier(1))
    p.revoke(["dossier:0"])
    assert "dossier:0" not in p.engines and len(p.sink) == 0
    assert p.stats.valid == 2  # a released source's figures stay in the totals
    assert store.source_counters("dossier:0")[(UNIT, date(2024, 10, 3), "received")] == 1


def test_a_revocation_whose_flush_fails_drops_only_the_revoked_rows(
    store: _Store, registry: UnitRegistry, calendar: WorkCalendar
) -> None:
    p = _processor(store, registry, calendar)
    p.handle(_dossier(1))
    p.handle([Message(SUBMISSIONS, 1, 0, t.encode(t.received("D9", UNIT, at=_AT_9)))])
    store.fail_facts = True
    p.revoke(["dossier:0"])  # logged, not raised: the next owner reads dossier:0 again
    store.fail_facts = False
    assert set(p.engines) == {"dossier:1"}
    assert p.sink.flush() == 1  # D9's state; the counters went in before the facts failed
    stored = store.client.query("SELECT dossier_id, source FROM dossier_facts FINAL").result_rows
    assert stored == [("D9", "dossier:1")]


def test_a_dead_letter_read_back_is_buffered_and_only_producer_ones_are_counted(
    store: _Store, registry: UnitRegistry, calendar: WorkCalendar
) -> None:
    p = _processor(store, registry, calendar)
    now = datetime(2024, 10, 1, tzinfo=UTC)
    dead = "dossier.deadletter.v1"
    producer = [("origin", b"producer"), ("code", b"unroutable")]
    assert p.log_dead_letter(dead, 0, 0, [("code", b"bad_enum")], b"{}", now) is None
    handled = p.log_dead_letter(dead, 0, 1, producer, b"x", now)
    assert handled is not None and handled.outcome.kind == "deadletter"
    assert (p.stats.events_in, p.stats.deadletter_by_code) == (1, {"unroutable": 1})
    assert len(p.sink) == 2
