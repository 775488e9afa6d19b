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
from typing import ClassVar, Final

from dossier_stream.core.formatting import format_count, format_rate, rate_percent

__all__ = [
    "ORDER_COLUMNS",
    "Appendix",
    "Average",
    "Band",
    "Block",
    "Cell",
    "Count",
    "Document",
    "Front",
    "Heading",
    "Paragraph",
    "Rate",
    "Signature",
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


@dataclass(frozen=True, slots=True)
class Average:
    """A decimal figure (an average), printed with a decimal comma (``1,5``).

    ``value`` is already rounded as the report rounds it (two decimals);
    ``None`` (no dossiers) prints as an empty cell.
    """

    value: float | None

    @property
    def text(self) -> str:
        return "" if self.value is None else f"{self.value:g}".replace(".", ",")

    @property
    def decimals(self) -> int:
        """How many decimals the printed text shows (``1,5`` → 1)."""
        text = self.text
        return len(text) - text.index(",") - 1 if "," in text else 0


Cell = str | Count | Rate | Average | None
"""A table cell: text, a count, a rate, an average, or empty."""


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
    """A paragraph of running text (already formatted, Vietnamese).

    ``editable`` marks text the drafting office completes or checks before
    signing (what the stream cannot know, or sentences it only proposes):
    the docx highlights it.
    """

    text: str
    editable: bool = False


@dataclass(frozen=True, slots=True)
class Band:
    """A header cell over several columns (``Số lượng hồ sơ đã giải quyết`` over 4).

    ``first`` and ``last`` are 0-based column indexes, inclusive.
    """

    text: str
    first: int
    last: int


@dataclass(frozen=True, slots=True)
class Front:
    """The heading block of an administrative document (Nghị định 30/2020/NĐ-CP).

    Attributes:
        parent: the issuing body's parent (``Ủy ban nhân dân thành phố Hải Phòng``).
        issuer: the issuing body (``Sở Thông tin và Truyền thông``).
        number: the number and symbol line (``Số:      /BC-STTTT``).
        dated: the place and date line (``Hải Phòng, ngày      tháng      năm 2024``).
        recipients: the addressees of ``Kính gửi:``.
    """

    parent: str
    issuer: str
    number: str
    dated: str
    recipients: tuple[str, ...]

    NATION: ClassVar[str] = "CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM"
    MOTTO: ClassVar[str] = "Độc lập - Tự do - Hạnh phúc"

    def addressed(self) -> list[str]:
        """``Kính gửi: Ủy ban nhân dân thành phố.``; several: ``Kính gửi:`` then ``- …;`` lines."""
        if len(self.recipients) == 1:
            return [f"Kính gửi: {self.recipients[0]}."]
        lines = [f"- {r};" for r in self.recipients]
        lines[-1] = lines[-1][:-1] + "."
        return ["Kính gửi:", *lines]


@dataclass(frozen=True, slots=True)
class Signature:
    """The closing block: ``Nơi nhận:`` with its list, and the signatory.

    Attributes:
        distribution: the lines of ``Nơi nhận:`` (``- Như trên;`` … ``- Lưu: VT, CNTT.``).
        authority: the signatory's capacity lines (``KT. GIÁM ĐỐC``, ``PHÓ GIÁM ĐỐC``).
        name: the signatory's full name.
    """

    distribution: tuple[str, ...]
    authority: tuple[str, ...]
    name: str


@dataclass(frozen=True, slots=True)
class Appendix:
    """The start of an appendix: a new page, its label, title and ``(Kèm theo …)`` line.

    Attributes:
        label: ``Phụ lục 1``.
        title: ``THỰC HIỆN SỐ HÓA HỒ SƠ TTHC CỦA CÁC ĐƠN VỊ`` (printed upper case).
        attached: ``(Kèm theo Báo cáo số …)``; empty when the report has no front.
        landscape: its pages are landscape (wide tables).
    """

    label: str
    title: str
    attached: str = ""
    landscape: bool = False


@dataclass(slots=True)
class Table:
    """A table with one header row (two with :attr:`bands`) and typed body rows.

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
        bands: header cells over several columns, printed above the column
            headers (the seed's two-level header); a column under no band has
            one header cell over both rows.
        labels: the column headers as printed under the bands (``Tổng số``);
            empty: the :attr:`columns` themselves. ``columns`` stay the
            self-contained names machines read (CSV, JSON).
        captioned: print :attr:`title` above the table; ``False`` when the
            heading before it already says what it is (the seed's appendix).
        sheet: the spreadsheet tab name (``Bảng 1``, ``PL1 Huyện An Dương``);
            empty: taken from the title.
    """

    key: str
    title: str
    columns: list[str]
    rows: list[list[Cell]] = field(default_factory=list)
    row_keys: list[str | None] = field(default_factory=list)
    group: str | None = None
    notes: list[str] = field(default_factory=list)
    bands: list[Band] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    captioned: bool = True
    sheet: str = ""

    @property
    def headers(self) -> list[str]:
        """The column headers as printed (:attr:`labels`, else :attr:`columns`)."""
        return list(self.labels) if self.labels else list(self.columns)

    def band_of(self, column: int) -> Band | None:
        """The band over ``column``, if any."""
        return next((b for b in self.bands if b.first <= column <= b.last), None)

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


Block = Heading | Paragraph | Table | Signature | Appendix


@dataclass(slots=True)
class Document:
    """A whole report: the front (if any), title lines, then blocks in reading order."""

    title: str
    subtitle: str = ""
    blocks: list[Block] = field(default_factory=list)
    front: Front | None = None

    def tables(self) -> list[Table]:
        """The tables, in order."""
        return [b for b in self.blocks if isinstance(b, Table)]
