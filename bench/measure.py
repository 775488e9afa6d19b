"""What the benchmark's scenarios measure in their own process: memory, CPU, progress.

Shared by :mod:`bench.scenarios` (the worker's scenarios), :mod:`bench.baselines`
(the consumers it is compared with), :mod:`bench.curve` and
:mod:`bench.open_dossiers`. Linux's ``/proc`` is read directly; elsewhere the
functions fall back or return nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import resource
import time
from collections.abc import Callable
from typing import Any

__all__ = ["Progress", "cpu_delta", "peak_rss", "rss", "thread_cpu", "wait_done"]

_LOG = logging.getLogger("bench.measure")


def peak_rss() -> int:
    """Peak resident set size of this process, in bytes.

    ``VmHWM`` of ``/proc/self/status``: the high-water mark of this process's
    own address space. ``ru_maxrss`` would not do: Linux carries it over
    ``fork`` + ``exec``, so a child reports its parent's peak when larger.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def thread_cpu(pid: int | str = "self") -> dict[str, float]:
    """CPU seconds (user + system) of each thread of ``pid``, summed per thread name.

    Read from ``/proc/<pid>/task/*/stat`` (Linux; empty elsewhere). Threads that
    ended are not counted: the caller takes differences over a window in which
    the worker's threads (the event loop, chdb's pools, RocksDB's) all live.
    """
    tick = os.sysconf("SC_CLK_TCK")
    out: dict[str, float] = {}
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/stat", encoding="utf-8", errors="replace") as fh:
                stat = fh.read()
        except OSError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        out[name] = out.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / tick
    return out


def cpu_delta(after: dict[str, float], before: dict[str, float]) -> dict[str, float]:
    """``after`` − ``before`` per name, largest first (names new in ``after`` count whole)."""
    delta = {k: round(v - before.get(k, 0.0), 2) for k, v in after.items()}
    return dict(sorted(((k, v) for k, v in delta.items() if v > 0), key=lambda kv: -kv[1]))


def rss() -> int:
    """Current resident set size of this process, in bytes."""
    with open("/proc/self/statm", encoding="ascii") as fh:
        pages = int(fh.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE")


class Progress:
    """What a consumer saw and when (monotonic seconds)."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.seen = 0
        self.first: float | None = None
        self.last: float | None = None
        self.done = asyncio.Event()

    def result(self, name: str, ready: float, started: float, **extra: Any) -> dict[str, Any]:
        """The scenario's result record."""
        first = self.first if self.first is not None else ready
        last = self.last if self.last is not None else time.monotonic()
        seconds = max(last - first, 1e-9)
        return {
            "scenario": name,
            "events": self.seen,
            "expected": self.expected,
            "complete": self.seen >= self.expected,
            "seconds": seconds,
            "events_per_s": self.seen / seconds,
            "start_s": ready - started,
            "ready_to_last_s": last - ready,
            "peak_rss_bytes": peak_rss(),
            **extra,
        }


async def wait_done(
    progress: Progress,
    cfg: dict[str, Any],
    count: Callable[[], int],
    crashed: Callable[[], object] = lambda: None,
) -> None:
    """Wait until done, a crash, the time limit, or ``idle_s`` without progress."""
    deadline = time.monotonic() + cfg["timeout_s"]
    last_n, last_change = -1, time.monotonic()
    while not progress.done.is_set():
        n = count()
        now = time.monotonic()
        if (reason := crashed()) is not None:
            raise RuntimeError(f"crashed at {n} of {progress.expected}: {reason!r}")
        if n != last_n:
            last_n, last_change = n, now
        elif now - last_change > cfg["idle_s"]:
            _LOG.warning("no progress for %.0f s at %s of %s", cfg["idle_s"], n, progress.expected)
            return
        if now > deadline:
            _LOG.warning("time limit: %s of %s", n, progress.expected)
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(progress.done.wait(), 0.05)
