"""Summaries of ``py-spy record --format raw`` output (collapsed stacks).

Each line of the raw format is ``frame;frame;...;frame COUNT``, outermost
frame first, a frame being ``function (path:line)``. :func:`summarize_raw`
adds up the samples per function — *self* (the innermost frame) and *total*
(anywhere in the stack, once per sample) — and per *area* (the library the
innermost frame is in: faust, mode, aiokafka, asyncio, dossier_stream,
pydantic, clickhouse_connect, …).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Profile", "area_of", "summarize_raw"]

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<path>.*?)(?::(?P<line>\d+))?\)$")
_AREAS = (
    ("dossier_stream", "dossier_stream"),
    ("faust", "faust"),
    ("mode", "mode"),
    ("aiokafka", "aiokafka"),
    ("kafka", "aiokafka"),
    ("pydantic", "pydantic"),
    ("clickhouse_connect", "clickhouse_connect"),
    ("chdb", "chdb"),
    ("prometheus_client", "prometheus_client"),
    ("orjson", "orjson"),
    ("bench", "bench"),
    ("asyncio", "asyncio"),
    ("concurrent", "threads"),
    ("threading", "threads"),
    ("selectors", "asyncio"),
)


def _short(path: str) -> str:
    for marker in ("site-packages/", "/src/", "/lib/python3.11/", "/lib/python3."):
        if marker in path:
            return path.split(marker, 1)[1]
    return path


def area_of(path: str) -> str:
    """The library a source path belongs to (``other`` when none is known)."""
    short = _short(path)
    head = short.split("/", 1)[0]
    for prefix, area in _AREAS:
        if head == prefix or head.startswith(prefix + "."):
            return area
    if "<" in path or not path:
        return "builtin"
    return "stdlib" if "/lib/python3" in path else "other"


@dataclass
class Profile:
    """Sample counts per function and per area."""

    samples: int = 0
    self_time: Counter[str] = field(default_factory=Counter)
    total_time: Counter[str] = field(default_factory=Counter)
    area_time: Counter[str] = field(default_factory=Counter)

    def areas(self) -> dict[str, float]:
        """Share of samples per area of the innermost frame, largest first."""
        n = max(self.samples, 1)
        return {k: v / n for k, v in self.area_time.most_common()}

    def text(self, top: int = 40) -> str:
        """A plain-text report: areas, then the top functions by self and total samples."""
        n = max(self.samples, 1)
        lines = [f"{self.samples} samples", "", "by area (innermost frame):"]
        lines += [f"  {v / n:6.1%}  {k}" for k, v in self.area_time.most_common()]
        lines += ["", f"top {top} by self samples:"]
        lines += [f"  {v / n:6.1%}  {k}" for k, v in self.self_time.most_common(top)]
        lines += ["", f"top {top} by total samples (inclusive):"]
        lines += [f"  {v / n:6.1%}  {k}" for k, v in self.total_time.most_common(top)]
        return "\n".join(lines) + "\n"


def _frame(raw: str) -> tuple[str, str]:
    """``(function (short path), path)`` of a raw frame (line numbers dropped)."""
    m = _FRAME.match(raw.strip())
    if m is None:
        return raw.strip(), ""
    path = m.group("path")
    return f"{m.group('func')} ({_short(path)})", path


def summarize_raw(path: Path) -> Profile:
    """Read a py-spy raw file and add up its samples."""
    prof = Profile()
    if not path.exists():
        return prof
    for line in path.read_text("utf-8", errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = [_frame(f) for f in stack.split(";") if f]
        # py-spy may put "process …" / "thread …" pseudo-frames first
        frames = [f for f in frames if f[1] or not f[0].startswith(("process ", "thread "))]
        if not frames:
            continue
        prof.samples += n
        name, fpath = frames[-1]
        prof.self_time[name] += n
        prof.area_time[area_of(fpath)] += n
        for fname in {f[0] for f in frames}:
            prof.total_time[fname] += n
    return prof
