"""Event files as the commands read them, and what became of their bad lines.

* :func:`read_events`: a JSON Lines file (one event per line), blank lines
  skipped, a UTF-8 byte order mark at the start of the file (or of a line)
  removed; a file that is one JSON array (pretty-printed or not) is refused
  with a message saying that JSON Lines is expected and how to convert it.
* :func:`deadletter_summary`: the lines dead-lettered, counted per reason with
  the first few line numbers, for stderr; :func:`write_deadletters` writes
  every one of them (line number, reason, detail, the line) as JSON Lines.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import click
import orjson

if TYPE_CHECKING:
    from dossier_stream.core.engine import DeadLetter

__all__ = ["EventLines", "deadletter_summary", "read_events", "write_deadletters"]

BOM = b"\xef\xbb\xbf"
SHOWN = 5
"""Dead letters shown one by one in a summary."""


@dataclass(frozen=True, slots=True)
class EventLines:
    """The non-blank lines of an event file and their 1-based line numbers."""

    lines: list[bytes]
    numbers: list[int]


def _is_json_array(head: bytes, path: Path) -> bool:
    if not head.lstrip().startswith(b"["):
        return False
    try:
        return isinstance(orjson.loads(path.read_bytes().removeprefix(BOM)), list)
    except orjson.JSONDecodeError:
        return head.lstrip()[:2] in (b"[{", b"[\n", b"[\r", b"[ ")


def read_events(path: Path) -> EventLines:
    """Read ``path`` as JSON Lines (see the module docstring).

    Raises:
        click.ClickException: the file is a JSON array, not JSON Lines.
    """
    lines: list[bytes] = []
    numbers: list[int] = []
    with path.open("rb") as fh:
        for n, raw in enumerate(fh, start=1):
            line = raw.rstrip(b"\r\n").removeprefix(BOM)
            if n == 1 and _is_json_array(line, path):
                raise click.ClickException(
                    f"{path} là một mảng JSON; cần tệp JSON Lines: mỗi dòng một sự kiện "
                    "(một đối tượng JSON). Chuyển đổi, ví dụ: jq -c '.[]' "
                    f"{path} > {path.with_suffix('.jsonl').name}"
                )
            if line.strip():
                lines.append(line)
                numbers.append(n)
    return EventLines(lines, numbers)


def deadletter_summary(letters: Sequence[DeadLetter], total: int, *, where: str) -> str:
    """Lines for stderr: how many lines were dead-lettered, per reason, the first few.

    ``letters`` carry their line number as ``offset``; ``where`` names the
    input (a file name).
    """
    if not letters:
        return f"{where}: {total} dòng, không có dòng lỗi."
    by_reason = Counter(d.reason for d in letters)
    out = [
        f"{where}: {len(letters)}/{total} dòng bị loại (thư lỗi), theo lý do: "
        + ", ".join(f"{reason} {n}" for reason, n in by_reason.most_common())
    ]
    for d in letters[:SHOWN]:
        detail = d.detail.replace("\n", " ")[:120]
        out.append(f"  dòng {d.offset}: {d.reason} ({detail})")
    if len(letters) > SHOWN:
        out.append(f"  … và {len(letters) - SHOWN} dòng khác (--deadletters FILE ghi tất cả)")
    return "\n".join(out)


def write_deadletters(path: Path, letters: Sequence[DeadLetter]) -> None:
    """Every dead letter as a JSON line: ``line``, ``reason``, ``code``, ``detail``, ``value``."""
    with path.open("wb") as fh:
        for d in letters:
            fh.write(
                orjson.dumps(
                    {
                        "line": d.offset,
                        "reason": d.reason,
                        "code": d.code,
                        "detail": d.detail,
                        "value": d.raw.decode("utf-8", errors="replace"),
                    }
                )
                + b"\n"
            )
