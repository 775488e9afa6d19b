"""Layout decisions every writer shares: which columns hold numbers, which captions to print.

Kept apart from the writers so that :mod:`~.writers` (text formats) and
:mod:`~.writers_office` (xlsx, docx) both read them without importing each other.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Final

from dossier_stream.reports.document import Cell, Count, Document, Heading, Paragraph, Rate, Table

__all__ = ["FIXED_TIME", "captioned", "is_number", "number_columns"]

FIXED_TIME: Final = datetime(2000, 1, 1, tzinfo=UTC)
"""Creation and modification time written into xlsx and docx files."""


def is_number(cell: Cell) -> bool:
    return isinstance(cell, Count | Rate)


def number_columns(table: Table) -> list[bool]:
    """Per column: it holds numbers (counts or rates) and nothing else but empty cells."""
    return [
        any(is_number(row[j]) for row in table.rows)
        and all(row[j] is None or is_number(row[j]) for row in table.rows)
        for j in range(len(table.columns))
    ]


def captioned(doc: Document) -> list[tuple[Heading | Paragraph | Table, str | None]]:
    """The blocks, each with the group caption to print before it (``None``: none).

    A table's group caption is printed when it differs from the previous
    table's group, or when text came between them.
    """
    out: list[tuple[Heading | Paragraph | Table, str | None]] = []
    current: str | None = None
    for block in doc.blocks:
        if isinstance(block, Table):
            caption = block.group if block.group and block.group != current else None
            current = block.group
            out.append((block, caption))
        else:
            current = None
            out.append((block, None))
    return out
