"""Helpers of the crash, outage and two-worker tests (real broker, real worker processes).

* :class:`WorkerProcess` runs ``dossier-stream worker`` (the real command) in
  its own process, with its log in a file the test follows line by line, and
  ends it with SIGKILL or SIGINT.
* :class:`GroupWatch` reads the consumer group's committed offsets from the
  broker, tells when every message of the input topics is committed, and
  records how long each partition with unread messages went without any
  progress (the "partition left unread after a rebalance" trap).
* :func:`counter_mismatches` and :func:`report_mismatches` compare what is
  stored with the simulator's ground truth, per (unit, day, counter), and with
  the report of an in-memory replay of the same events.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import orjson

from dossier_stream.core.engine import Engine
from dossier_stream.core.periods import Period
from dossier_stream.core.registry import UnitRegistry
from dossier_stream.core.topics import TopicCatalog
from dossier_stream.core.workdays import WorkCalendar
from dossier_stream.store.sink import ClickHouseStore
from dossier_stream.stream.runner import report_from_store

CLI = [sys.executable, "-m", "dossier_stream"]
WIDE = (date(2000, 1, 1), date(2099, 12, 31))
NOT_IN_TRUTH = "completed_ahead_working_days"  # the simulator leaves it out of its truth


class WorkerProcess:
    """``dossier-stream worker`` in a separate process, its output in ``log``.

    Args:
        env: the environment (``DOSSIER_*``) on top of this process's.
        log: where its stdout and stderr go (appended, so restarts add up).
        cwd: its working directory.
    """

    def __init__(self, env: Mapping[str, str], log: Path, cwd: Path) -> None:
        self.env = {**os.environ, **env}
        self.log = log
        self.cwd = cwd
        self.proc: subprocess.Popen[bytes] | None = None
        self._offset = 0
        self._partial = b""
        self.started_at = 0.0

    def start(self) -> None:
        """Start it; its log is followed from here on."""
        with self.log.open("ab") as fh:
            fh.write(b"=== start\n")
            self._offset = fh.tell()
        self._partial = b""
        out = self.log.open("ab")
        try:
            self.proc = subprocess.Popen(
                [*CLI, "worker"],
                cwd=self.cwd,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        finally:
            out.close()
        self.started_at = time.monotonic()

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def new_lines(self) -> list[str]:
        """Complete lines written since the last call."""
        with self.log.open("rb") as fh:
            fh.seek(self._offset)
            data = fh.read()
            self._offset = fh.tell()
        data = self._partial + data
        *lines, self._partial = data.split(b"\n")
        return [line.decode(errors="replace") for line in lines]

    async def wait_line(self, match: Callable[[str], bool], timeout: float) -> str:
        """The next line for which ``match`` is true (polled every millisecond)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.new_lines():
                if match(line):
                    return line
            if not self.alive:
                raise AssertionError(f"the worker exited ({self.returncode}): {self.tail()}")
            await asyncio.sleep(0.001)
        raise AssertionError(f"no matching line within {timeout} s: {self.tail()}")

    def kill(self) -> None:
        """SIGKILL: no flush, no commit, no LeaveGroup."""
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(30)

    def interrupt(self, timeout: float = 60) -> int:
        """SIGINT (a clean stop: flush, commit, leave); returns the exit code."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"the worker did not stop in {timeout} s: {self.tail()}") from None

    @property
    def returncode(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def tail(self, n: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-n:]


@dataclass
class GroupWatch:
    """Committed offsets of one consumer group, and per-partition stalls.

    Args:
        bootstrap: the broker.
        group: the consumer group (the app id).
        sent: messages produced per topic (the input topics' ends).
        also: more topics whose committed offsets to read (the dead-letter topic).
    """

    bootstrap: str
    group: str
    sent: dict[str, int]
    also: list[str] = field(default_factory=list)
    committed: dict[tuple[str, int], int] = field(default_factory=dict)
    longest_stall: float = 0.0
    stalled: tuple[str, int] | None = None
    _since: dict[tuple[str, int], float] = field(default_factory=dict)
    _last: dict[tuple[str, int], int] = field(default_factory=dict)
    _admin: Any = None
    _partitions: list[Any] = field(default_factory=list)

    async def __aenter__(self) -> GroupWatch:
        from aiokafka.admin import AIOKafkaAdminClient
        from aiokafka.structs import TopicPartition

        self._admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap)
        await self._admin.start()
        described = await self._admin.describe_topics([*self.sent, *self.also])
        self._partitions = [
            TopicPartition(t["topic"], p["partition"]) for t in described for p in t["partitions"]
        ]
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._admin.close()

    async def poll(self) -> dict[tuple[str, int], int]:
        """Read the committed offsets (Tansu wants the partitions named)."""
        got = await self._admin.list_consumer_group_offsets(self.group, partitions=self._partitions)
        self.committed = {(tp.topic, tp.partition): max(m.offset, 0) for tp, m in got.items()}
        return self.committed

    def per_topic(self) -> dict[str, int]:
        """Committed offsets summed per input topic."""
        out: dict[str, int] = {}
        for (topic, _), offset in self.committed.items():
            if topic in self.sent:
                out[topic] = out.get(topic, 0) + offset
        return out

    def done(self) -> bool:
        """Whether every produced message of every watched topic is committed."""
        return self.per_topic() == self.sent

    def track_stalls(self, now: float, active: bool, ends: Mapping[tuple[str, int], int]) -> None:
        """Record how long partitions that still have messages went without progress.

        Args:
            now: the monotonic time of the last :meth:`poll`.
            active: whether a worker is up and past its start-up (stalls count).
            ends: the end offset of each partition (read from a fetch, which Tansu
                reports correctly, unlike ListOffsets).
        """
        for tp, offset in self.committed.items():
            since = self._since.get(tp)
            moved = self._last.get(tp) != offset
            if not active or offset >= ends.get(tp, 0) or since is None or moved:
                self._since[tp] = now
            elif now - since > self.longest_stall:
                self.longest_stall, self.stalled = now - since, tp
            self._last[tp] = offset


async def partition_ends(bootstrap: str, topics: list[str]) -> dict[tuple[str, int], int]:
    """The true end offset of every partition of ``topics`` (from a fetch's high watermark)."""
    from aiokafka import AIOKafkaConsumer
    from aiokafka.structs import TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [
            TopicPartition(topic, p)
            for topic in topics
            for p in sorted(consumer.partitions_for_topic(topic) or set())
        ]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends: dict[tuple[str, int], int] = {}
        deadline = time.monotonic() + 60
        while len(ends) < len(tps) and time.monotonic() < deadline:
            await consumer.getmany(*tps, timeout_ms=200, max_records=100_000)
            for tp in tps:
                high = consumer.highwater(tp)
                if high is not None and await consumer.position(tp) >= high:
                    ends[(tp.topic, tp.partition)] = high
        return ends
    finally:
        await consumer.stop()


def topic_names(catalog: TopicCatalog) -> list[str]:
    return [t.name for t in catalog.topics]


def counter_mismatches(
    store: ClickHouseStore, truth: Mapping[tuple[str, date, str], int]
) -> list[tuple[tuple[str, date, str], int, int]]:
    """Every (unit, day, counter) whose stored total differs from the truth: (key, got, want)."""
    stored = {k: v for k, v in store.counters(*WIDE).items() if k[2] != NOT_IN_TRUTH}
    keys = stored.keys() | truth.keys()
    return sorted(
        (k, stored.get(k, 0), truth.get(k, 0)) for k in keys if stored.get(k, 0) != truth.get(k, 0)
    )


def replay(lines: list[bytes], registry: UnitRegistry, calendar: WorkCalendar) -> Engine:
    """Every line through one in-memory engine (``dossier-stream replay``)."""
    engine = Engine(registry, calendar)
    for line in lines:
        engine.process(line)
    return engine


def report_mismatches(
    store: ClickHouseStore, engine: Engine, registry: UnitRegistry, period: Period
) -> list[str]:
    """Paths where the report read from the store differs from the in-memory replay's."""
    got = orjson.loads(orjson.dumps(report_from_store(store, registry, period), default=str))
    want = orjson.loads(orjson.dumps(engine.report(period), default=str))
    out: list[str] = []

    def walk(a: Any, b: Any, path: str) -> None:
        if isinstance(a, dict) and isinstance(b, dict):
            for key in a.keys() | b.keys():
                walk(a.get(key), b.get(key), f"{path}/{key}")
        elif a != b:
            out.append(f"{path}: {a!r} != {b!r}")

    walk(got, want, "")
    return sorted(out)[:50]


def reconcile(env: Mapping[str, str], cwd: Path, period: str) -> dict[str, Any]:
    """``dossier-stream reconcile --period P --format json`` (exit 0 means no difference)."""
    proc = subprocess.run(
        [*CLI, "reconcile", "--period", period, "--format", "json"],
        cwd=cwd,
        env={**os.environ, "DOSSIER_LOG_LEVEL": "WARNING", **env},
        capture_output=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, (proc.stdout.decode()[-3000:], proc.stderr.decode()[-3000:])
    result: dict[str, Any] = orjson.loads(proc.stdout)
    return result
