"""Layout decisions every writer shares: which columns hold numbers, which captions to print.

Kept apart from the writers so that :mod:`~.writers` (text formats),
:mod:`~.writers_office` (xlsx) and :mod:`~.writers_docx` read them without
importing each other.
"""

from __future__ import annotations

import io
import zipfile
from datetime import UTC, datetime
from typing import Final

from dossier_stream.reports.document import (
    Average,
    Block,
    Cell,
    Count,
    Document,
    Rate,
    Table,
    cell_text,
)

__all__ = [
    "FIXED_TIME",
    "captioned",
    "column_chars",
    "group_caption",
    "is_number",
    "number_columns",
    "reproducible_zip",
]

_ZIP_TIME: Final = (1980, 1, 1, 0, 0, 0)

FIXED_TIME: Final = datetime(2000, 1, 1, tzinfo=UTC)
"""Creation and modification time written into xlsx and docx files."""


def is_number(cell: Cell) -> bool:
    return isinstance(cell, Count | Rate | Average)


def number_columns(table: Table) -> list[bool]:
    """Per column: it holds numbers (counts or rates) and nothing else but empty cells."""
    return [
        any(is_number(row[j]) for row in table.rows)
        and all(row[j] is None or is_number(row[j]) for row in table.rows)
        for j in range(len(table.columns))
    ]


def group_caption(group: str) -> str:
    """A group caption as the seed prints it: ``- Huyện An Dương``."""
    return f"- {group}"


def captioned(doc: Document) -> list[tuple[Block, str | None]]:
    """The blocks, each with the group caption to print before it (``None``: none).

    A table's group caption (:func:`group_caption`) is printed when it differs
    from the previous table's group, or when something else came between them.
    """
    out: list[tuple[Block, str | None]] = []
    current: str | None = None
    for block in doc.blocks:
        if isinstance(block, Table):
            fresh = block.group and block.group != current
            caption = group_caption(block.group) if block.group and fresh else None
            current = block.group
            out.append((block, caption))
        else:
            current = None
            out.append((block, None))
    return out


def _longest_word(text: str) -> int:
    return max((len(word) for word in text.split()), default=0)


def column_chars(table: Table) -> list[tuple[float, float, float]]:
    """Per column, in characters: the width it must have, would like for its header, then
    would like for its body.

    It must hold its longest unbreakable text: a printed number or a word
    (header characters count 1.25, being bold); a column under a band also its
    share of the band's longest word. It would like its header on at most
    four lines, then its longest body text on one line. Headers come first:
    a long unit name may wrap in its cell, a header of one word a line is
    hard to read.
    """
    out = []
    for j, header in enumerate(table.headers):
        texts = [(cell_text(row[j]), is_number(row[j])) for row in table.rows]
        least = max(
            [1.25 * _longest_word(header)] + [len(t) if n else _longest_word(t) for t, n in texts]
        )
        if band := table.band_of(j):
            least = max(least, 1.25 * _longest_word(band.text) / (band.last - band.first + 1))
        heading = max(least, 1.1 * -(-len(header) // 4))
        out.append((least, heading, max([heading] + [len(t) for t, _ in texts])))
    return out


def reproducible_zip(data: bytes) -> bytes:
    """The same zip archive, members in the same order, with a fixed timestamp."""
    buffer = io.BytesIO()
    with (
        zipfile.ZipFile(io.BytesIO(data)) as source,
        zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as target,
    ):
        for info in source.infolist():
            member = zipfile.ZipInfo(info.filename, date_time=_ZIP_TIME)
            member.compress_type = zipfile.ZIP_DEFLATED
            member.external_attr = 0o600 << 16
            target.writestr(member, source.read(info))
    return buffer.getvalue()
