"""The printable shape of a report: headings, paragraphs and tables of typed cells.

Templates (:mod:`dossier_stream.reports.templates`) turn the report structure of
:func:`~dossier_stream.core.indicators.build_report` into a :class:`Document`; writers
(:mod:`dossier_stream.reports.writers`) turn a document into Markdown, CSV, xlsx or
docx. Keeping cells typed (a count, a rate as numerator and denominator, a
text) lets every writer print the Vietnamese text *and* keep the number: an
xlsx cell holds ``0.9208`` with a percent format, a CSV row holds ``92,08%``
with ``38507`` and ``41818``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from dossier_stream.core.formatting import format_count, format_rate, rate_percent

__all__ = [
    "ORDER_COLUMNS",
    "Block",
    "Cell",
    "Count",
    "Document",
    "Heading",
    "Paragraph",
    "Rate",
    "Table",
    "cell_text",
    "is_order_column",
]


@dataclass(frozen=True, slots=True)
class Rate:
    """A rate cell: printed as a Vietnamese percent (``92,08%``), stored as a fraction.

    A zero denominator prints ``0%``, as the official tables do.
    """

    numerator: int
    denominator: int

    @property
    def text(self) -> str:
        return format_rate(self.numerator, self.denominator)

    @property
    def percent(self) -> float | None:
        """The percent rounded half-up to two decimals; ``None`` without dossiers."""
        return rate_percent(self.numerator, self.denominator)

    @property
    def fraction(self) -> float:
        """The exact ratio (0 without dossiers), e.g. for a spreadsheet cell."""
        return self.numerator / self.denominator if self.denominator else 0.0


@dataclass(frozen=True, slots=True)
class Count:
    """A count cell: printed with a dot for thousands (``77.030``)."""

    value: int

    @property
    def text(self) -> str:
        return format_count(self.value)


Cell = str | Count | Rate | None
"""A table cell: text, a count, a rate, or empty."""


def cell_text(cell: Cell) -> str:
    """The cell as the province prints it (empty string for ``None``)."""
    if cell is None:
        return ""
    if isinstance(cell, str):
        return cell
    return cell.text


@dataclass(frozen=True, slots=True)
class Heading:
    """A section heading; ``level`` 1 is the document's own title level."""

    text: str
    level: int = 2


@dataclass(frozen=True, slots=True)
class Paragraph:
    """A paragraph of running text (already formatted, Vietnamese)."""

    text: str


@dataclass(slots=True)
class Table:
    """A table with one header row and typed body rows.

    Attributes:
        key: stable machine name (``bang-1``, ``so-hoa-cap-xa``), used for CSV
            rows and sheet names.
        title: the caption as printed (``Bảng 1 - Tỷ lệ hồ sơ trực tuyến cấp sở, ngành``).
        columns: header texts; ``columns[i]`` heads ``row[i]``.
        rows: body rows, each as long as ``columns``.
        row_keys: the unit code of each row (``None`` for a total row); not
            printed in the official forms, kept in CSV/JSON for machines.
        group: an optional group caption the table belongs to (``Huyện An Dương``).
        notes: footnotes printed under the table (``* ... không có cấp xã``).
    """

    key: str
    title: str
    columns: list[str]
    rows: list[list[Cell]] = field(default_factory=list)
    row_keys: list[str | None] = field(default_factory=list)
    group: str | None = None
    notes: list[str] = field(default_factory=list)

    def add(self, cells: list[Cell], key: str | None = None) -> None:
        """Append a body row (and its unit code)."""
        if len(cells) != len(self.columns):
            raise ValueError(
                f"table {self.key!r}: row has {len(cells)} cells for {len(self.columns)} columns"
            )
        self.rows.append(cells)
        self.row_keys.append(key)

    def row_name(self, index: int) -> str:
        """The name of body row ``index`` (0-based), e.g. the unit it is about.

        It is the row's first non-empty text (``str``) cell outside the
        order-number columns (headed ``STT``, ``TT`` or ``Số TT``, any case);
        counts, rates and empty cells are never names. ``""`` when the row has
        no such cell.
        """
        for column, cell in zip(self.columns, self.rows[index], strict=True):
            if isinstance(cell, str) and cell.strip() and not is_order_column(column):
                return cell
        return ""


ORDER_COLUMNS: Final = frozenset({"stt", "tt", "số tt"})
"""Casefolded headers of order-number columns (``STT``: số thứ tự)."""


def is_order_column(header: str) -> bool:
    """Whether a column header names the order-number column (``STT``)."""
    return " ".join(header.split()).casefold() in ORDER_COLUMNS


Block = Heading | Paragraph | Table


@dataclass(slots=True)
class Document:
    """A whole report: title lines, then blocks in reading order."""

    title: str
    subtitle: str = ""
    blocks: list[Block] = field(default_factory=list)

    def tables(self) -> list[Table]:
        """The tables, in order."""
        return [b for b in self.blocks if isinstance(b, Table)]
