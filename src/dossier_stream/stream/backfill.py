"""Backfill with every core: several worker processes in one consumer group, one store.

A backfill (months of history after an outage, a migration or a new
province) is a backlog that one worker process reads on one core. The
``dossier.*`` partitions are independent, so :func:`run_backfill` starts
``processes`` ordinary ``dossier-stream worker`` processes in the worker's
consumer group (``DOSSIER_APP_ID``): the range assignor splits the partitions
between them, each partition number of the co-partitioned topics on one
process, as for the two-worker deployment. They share one store:

* a ``chdb://`` DSN is served by a :class:`~dossier_stream.store.storeserver.StoreServer`
  started in this process (chdb lets one process open a data path), and the
  workers reach it over HTTP;
* an ``http(s)://`` DSN (a ClickHouse server) is handed to them as it is.

Nothing else changes: every worker folds, stores and commits as it always
does, a rebalance while they join moves partitions with their stored states,
and so the figures are those of one worker (a test compares them with the
in-memory replay). The backfill is done when the group's committed offset
reaches, on every input partition, the end it had when the backfill began
(the true end, read from a fetch's high watermark: the embedded broker's
``ListOffsets`` answer is short), and then on the dead-letter topic the end
it has once the inputs are done (the workers' own dead letters are logged
into ``dead_letters`` from there). Then the workers are stopped cleanly
(SIGINT: flush, commit, leave the group).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from dossier_stream.core.topics import TopicCatalog
from dossier_stream.settings import Settings

__all__ = [
    "BackfillError",
    "BackfillResult",
    "committed_offsets",
    "describe",
    "input_topics",
    "run_backfill",
    "true_ends",
]

_POLL_S = 0.5
_STOP_S = 60.0
_READY = b"partitions assigned:"


class BackfillError(RuntimeError):
    """A backfill could not finish (a worker died, or the time limit passed)."""


@dataclass(slots=True)
class BackfillResult:
    """What a backfill did.

    Attributes:
        processes: worker processes.
        messages: input messages between the committed offsets at the start
            and the ends (what the backfill had to read).
        seconds: from the first worker ready (its first partitions
            assigned, as logged at ``INFO``; else the first offset committed)
            to the last offset needed: start-up left out, the rebalances as
            the others join counted.
        wall_s: from starting the processes to the last offset needed.
        logs: each worker's log file.
    """

    processes: int
    messages: int
    seconds: float
    wall_s: float
    logs: list[Path] = field(default_factory=list)

    @property
    def events_per_s(self) -> float:
        """Messages per second over :attr:`seconds`."""
        return self.messages / self.seconds if self.seconds > 0 else float("nan")


def input_topics(catalog: TopicCatalog) -> list[str]:
    """The topics the worker reads events from (the dead-letter topic aside)."""
    return [
        *(t.name for t in catalog.dossier_topics),
        catalog.topic_for("feedback.received"),
        catalog.topic_for("unit.reported_totals"),
    ]


async def true_ends(settings: Settings, topics: Sequence[str]) -> dict[tuple[str, int], int]:
    """The end offset of every partition of ``topics``, from a fetch's high watermark.

    The embedded broker reports ``ListOffsets`` ends short by the size of the
    last record batch less one, so the consumer reads from a little before
    that answer and takes the high watermark of the fetch.
    """
    from aiokafka import AIOKafkaConsumer, TopicPartition  # noqa: PLC0415

    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers,
        enable_auto_commit=False,
        **settings.kafka_options(),
    )
    await consumer.start()
    try:
        tps = [
            TopicPartition(topic, p)
            for topic in topics
            for p in sorted(consumer.partitions_for_topic(topic) or set())
        ]
        consumer.assign(tps)
        listed = await consumer.end_offsets(tps)
        for tp in tps:  # a record batch holds at most a few thousand records
            consumer.seek(tp, max(0, listed[tp] - 20_000))
        ends: dict[tuple[str, int], int] = {}
        deadline = time.monotonic() + 60
        while len(ends) < len(tps) and time.monotonic() < deadline:
            await consumer.getmany(*tps, timeout_ms=200, max_records=50_000)
            for tp in tps:
                high = consumer.highwater(tp)
                if high is not None and await consumer.position(tp) >= high:
                    ends[(tp.topic, tp.partition)] = high
                    consumer.pause(tp)
        if len(ends) < len(tps):
            raise BackfillError("could not read the end of every input partition in 60 s")
        return ends
    finally:
        await consumer.stop()


async def committed_offsets(
    settings: Settings, group: str, partitions: Sequence[tuple[str, int]]
) -> dict[tuple[str, int], int]:
    """The committed offset of ``group`` on each of ``partitions`` (0 when none).

    The partitions are named: the embedded broker answers a request for all
    of a group's offsets with a frame aiokafka cannot decode.
    """
    from aiokafka import TopicPartition  # noqa: PLC0415
    from aiokafka.admin import AIOKafkaAdminClient  # noqa: PLC0415

    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.bootstrap_servers, **settings.kafka_options()
    )
    await admin.start()
    try:
        tps = [TopicPartition(t, p) for t, p in partitions]
        offsets = await admin.list_consumer_group_offsets(group, partitions=tps)
    finally:
        await admin.close()
    return {(tp.topic, tp.partition): max(meta.offset, 0) for tp, meta in offsets.items()}


def _short(done: dict[tuple[str, int], int], ends: dict[tuple[str, int], int]) -> int:
    return sum(max(0, end - done.get(tp, 0)) for tp, end in ends.items())


def _stop(procs: Sequence[subprocess.Popen[bytes]]) -> None:
    """Stop the workers cleanly (SIGINT), killing any that does not stop in time."""
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
    deadline = time.monotonic() + _STOP_S
    for proc in procs:
        try:
            proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _first_ready(logs: Sequence[Path]) -> bool:
    """Whether a worker's log shows a partition assignment (its consumer is ready)."""
    for log in logs:
        try:
            if _READY in log.read_bytes():
                return True
        except OSError:
            continue
    return False


async def _wait(
    settings: Settings,
    ends: dict[tuple[str, int], int],
    procs: Sequence[subprocess.Popen[bytes]],
    logs: Sequence[Path],
    deadline: float,
    on_progress: Callable[[int], object] | None,
) -> tuple[float | None, dict[tuple[str, int], int]]:
    """Poll the group's offsets until every end in ``ends`` is committed.

    Returns:
        When the first worker was ready (its first assignment logged; at
        ``INFO``) or else when the first offset was committed, and the
        committed offsets at the start.
    """
    group = settings.app_id
    first: float | None = None
    start = await committed_offsets(settings, group, list(ends))
    last_poll = 0.0
    while True:
        for proc in procs:
            if proc.poll() is not None:
                raise BackfillError(f"a worker process exited with code {proc.returncode}")
        now = time.monotonic()
        if now > deadline:
            raise BackfillError("the time limit passed before the backlog was read")
        if first is None and _first_ready(logs):
            first = now
        if now - last_poll >= _POLL_S:
            last_poll = now
            done = await committed_offsets(settings, group, list(ends))
            if first is None and done != start:
                first = time.monotonic()
            left = _short(done, ends)
            if on_progress is not None:
                on_progress(left)
            if left == 0:
                return first, start
        await asyncio.sleep(0.1)


def run_backfill(
    settings: Settings,
    catalog: TopicCatalog,
    *,
    processes: int,
    workdir: Path,
    timeout_s: float = 24 * 3600.0,
    on_progress: Callable[[int], object] | None = None,
    extra_env: dict[str, str] | None = None,
) -> BackfillResult:
    """Read the backlog of every input topic with ``processes`` worker processes.

    Args:
        settings: the worker's settings (broker, store, group); the workers
            get them through the environment and ``.env`` as usual, with the
            store's DSN, the data directory and the metrics port set here.
        catalog: the topic catalog.
        processes: how many worker processes (the cores to use).
        workdir: where each worker keeps its data directory and log.
        timeout_s: give up (and stop the workers) after this long.
        on_progress: called with the messages left, every poll.
        extra_env: more environment for the workers.

    Returns:
        What was read, and how fast.

    Raises:
        BackfillError: a worker died or the time limit passed (the workers
            are stopped; what they committed is stored).
    """
    from dossier_stream.store.sink import ClickHouseStore, connect  # noqa: PLC0415
    from dossier_stream.store.storeserver import StoreServer  # noqa: PLC0415

    if processes < 1:
        raise ValueError("processes must be at least 1")
    workdir.mkdir(parents=True, exist_ok=True)
    dsn = settings.clickhouse_dsn.get_secret_value()
    server = None
    parts = urlsplit(dsn)
    if parts.scheme == "chdb":
        server = StoreServer(Path(parts.netloc + parts.path).resolve())
        dsn = server.start()
    migrating = ClickHouseStore(connect(dsn))  # once, before the workers start at once
    try:
        migrating.migrate()
    finally:
        migrating.close()
    procs: list[subprocess.Popen[bytes]] = []
    logs = [workdir / f"worker-{i}.log" for i in range(processes)]
    try:
        ends = asyncio.run(true_ends(settings, input_topics(catalog)))
        env = {
            **os.environ,
            **(extra_env or {}),
            "DOSSIER_BOOTSTRAP_SERVERS": settings.bootstrap_servers,
            "DOSSIER_CLICKHOUSE_DSN": dsn,
            "DOSSIER_APP_ID": settings.app_id,
            "DOSSIER_METRICS_PORT": "0",
            "DOSSIER_METRICS_HOST": "127.0.0.1",
        }
        began = time.monotonic()
        for i, log in enumerate(logs):
            data = workdir / f"worker-{i}"
            with log.open("wb") as err:
                procs.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "dossier_stream", "worker"],
                        env={**env, "DOSSIER_DATA_DIR": str(data)},
                        stdin=subprocess.DEVNULL,
                        stdout=err,
                        stderr=subprocess.STDOUT,
                    )
                )
        deadline = began + timeout_s
        first, start = asyncio.run(_wait(settings, ends, procs, logs, deadline, on_progress))
        finished = time.monotonic()
        dead = catalog.deadletter.name
        dead_ends = asyncio.run(true_ends(settings, [dead]))
        asyncio.run(_wait(settings, dead_ends, procs, [], deadline, None))
        messages = _short(start, ends)
    finally:
        _stop(procs)
        if server is not None:
            server.stop()
    return BackfillResult(
        processes=processes,
        messages=messages,
        seconds=finished - (first if first is not None else began),
        wall_s=finished - began,
        logs=logs,
    )


def describe(result: BackfillResult) -> dict[str, Any]:
    """The result as JSON-ready data."""
    return {
        "processes": result.processes,
        "messages": result.messages,
        "seconds": result.seconds,
        "wall_s": result.wall_s,
        "events_per_s": result.events_per_s,
    }
