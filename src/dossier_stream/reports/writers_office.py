"""The xlsx writer behind :func:`~.writers.write_xlsx` (the docx one is :mod:`.writers_docx`).

Kept apart from :mod:`dossier_stream.reports.writers` because openpyxl takes a
noticeable time to import: the text formats do not pay for it.

The workbook, for an office:

* a first sheet ``Báo cáo`` with the front lines, the title, the prose, a link
  to each table, ``Nơi nhận`` and the signatory;
* one sheet per table, its tab named as a person would (:attr:`Table.sheet`:
  ``Bảng 1``, ``PL1 Huyện An Dương``; else the part of the title before `` - ``);
* every sheet on A4, one page wide, landscape when the table has more than
  six columns, its header rows repeated on each printed page (print titles)
  and frozen on screen; a two-level header as the seed prints it (merged band
  cells over the column headers);
* numbers as numbers: counts as integers (``#,##0``), rates as exact fractions
  with as many decimals as the report prints (``0%`` for ``100%``, ``0.0%``
  for ``43,7%``, ``0.00%`` for ``92,08%``), averages as decimals; a
  Vietnamese-locale office suite then shows ``2.510``, ``100%``, ``92,08%``.
"""

from __future__ import annotations

import io
import zipfile
from typing import Final

from openpyxl import Workbook
from openpyxl.cell.cell import Cell
from openpyxl.styles import Alignment, Border, Font, Side
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.hyperlink import Hyperlink
from openpyxl.worksheet.page import PageMargins
from openpyxl.worksheet.properties import PageSetupProperties
from openpyxl.worksheet.worksheet import Worksheet
from openpyxl.writer.excel import ExcelWriter

from dossier_stream.core.formatting import rate_hundredths
from dossier_stream.reports.document import (
    Appendix,
    Average,
    Count,
    Document,
    Heading,
    Paragraph,
    Rate,
    Signature,
    Table,
    is_order_column,
)
from dossier_stream.reports.layout import FIXED_TIME, captioned, column_chars, reproducible_zip

__all__ = ["rate_format", "sheet_names", "xlsx_bytes"]

_FONT: Final = "Times New Roman"
_SUMMARY_SHEET: Final = "Báo cáo"
_SHEET_FORBIDDEN: Final = str.maketrans(dict.fromkeys("[]:*?/\\", "-"))
_SIZE: Final = 12  # points, in xlsx cells
_LINE: Final = 16  # points per line of 12 pt text, for row heights
_TEXT: Final = Font(name=_FONT, size=_SIZE)
_BOLD: Final = Font(name=_FONT, size=_SIZE, bold=True)
_ITALIC: Final = Font(name=_FONT, size=_SIZE, italic=True)
_LINK: Final = Font(name=_FONT, size=_SIZE, color="0563C1", underline="single")
_WRAP: Final = Alignment(wrap_text=True, vertical="top")
_MIDDLE: Final = Alignment(vertical="center")
_CENTER: Final = Alignment(horizontal="center", vertical="center")
_WRAP_MIDDLE: Final = Alignment(wrap_text=True, vertical="center")
_THIN: Final = Side(style="thin")
_GRID: Final = Border(left=_THIN, right=_THIN, top=_THIN, bottom=_THIN)
_HEADER: Final = Alignment(wrap_text=True, horizontal="center", vertical="center")
_WIDE: Final = 6
"""Tables with more columns than this print landscape."""


def rate_format(rate: Rate) -> str:
    """The number format showing ``rate`` as the report prints it (``0%``, ``0.0%``, ``0.00%``)."""
    h = rate_hundredths(rate.numerator, rate.denominator)
    if h is None or h % 100 == 0:
        return "0%"
    return "0.0%" if h % 10 == 0 else "0.00%"


def _average_format(cell: Average) -> str:
    return "0" if cell.decimals == 0 else "0." + "0" * cell.decimals


def _sheet_base(table: Table) -> str:
    return table.sheet or table.title.split(" - ")[0] or table.key


def sheet_names(tables: list[Table]) -> list[str]:
    """Valid, unique (case-insensitively, as Excel wants) sheet names a person understands."""
    taken = {_SUMMARY_SHEET.casefold()}
    names = []
    for table in tables:
        base = _sheet_base(table).translate(_SHEET_FORBIDDEN).strip("' ") or "Bảng"
        name, n = base[:31], 1
        while name.casefold() in taken:
            n += 1
            name = f"{base[: 31 - len(str(n)) - 3]} ({n})"
        taken.add(name.casefold())
        names.append(name)
    return names


def _lines(text: str, width: float) -> int:
    """How many lines ``text`` takes, wrapped at word ends to ``width`` characters."""
    lines, used = 1, 0
    for word in text.split():
        if used and used + 1 + len(word) > width:
            lines, used = lines + 1, len(word)
        else:
            used += len(word) + (1 if used else 0)
    return lines


def _new_sheet(book: Workbook, title: str, *, landscape: bool = False) -> Worksheet:
    """A sheet printed on A4, one page wide."""
    sheet: Worksheet = book.create_sheet(title)
    sheet.sheet_properties.pageSetUpPr = PageSetupProperties(fitToPage=True)
    sheet.page_setup.paperSize = sheet.PAPERSIZE_A4
    sheet.page_setup.orientation = "landscape" if landscape else "portrait"
    sheet.page_setup.fitToWidth = 1
    sheet.page_setup.fitToHeight = 0
    # Nghị định 30/2020: left 30-35 mm, right 15-20 mm, top and bottom 20-25 mm (inches here)
    sheet.page_margins = PageMargins(left=1.18, right=0.6, top=0.79, bottom=0.79)
    return sheet


def _line(sheet: Worksheet, row: int, text: str, font: Font, width: float = 0) -> Cell:
    """Write ``text`` in column A of ``row``, wrapped to ``width`` characters if given."""
    cell = sheet.cell(row, 1, text)
    cell.font = font
    if width:
        cell.alignment = _WRAP
        sheet.row_dimensions[row].height = _LINE * _lines(text, width)
    return cell


def _summary_sheet(book: Workbook, doc: Document, names: dict[int, str]) -> None:
    """The first sheet: front, title, ``Kính gửi``, then the blocks (tables as links)."""
    sheet = _new_sheet(book, _SUMMARY_SHEET)
    sheet.column_dimensions["A"].width = 72  # within the A4 margins, in 12 pt Times
    width = 62  # characters of the widest (bold) text that surely fit in column A
    lines: list[tuple[str, Font]] = []
    if doc.front:
        f = doc.front
        lines += [(f.parent.upper(), _TEXT), (f.issuer.upper(), _BOLD), (f.number, _TEXT),
                  (f.NATION, _BOLD), (f.MOTTO, _BOLD), (f.dated, _ITALIC)]  # fmt: skip
    lines.append((doc.title, Font(name=_FONT, size=14, bold=True)))
    if doc.subtitle:
        lines.append((doc.subtitle, _BOLD))
    if doc.front:
        lines += [(line, _TEXT) for line in doc.front.addressed()]
    for row, (text, font) in enumerate(lines, 1):
        _line(sheet, row, text, font, width)
    row = len(lines) + 2
    for block, caption in captioned(doc):
        if caption and isinstance(block, Table) and (block.group or "") not in block.title:
            _line(sheet, row, caption, _ITALIC, width)
            row += 1
        if isinstance(block, Table):
            link = _line(sheet, row, block.title, _LINK, width)
            link.hyperlink = Hyperlink(ref=link.coordinate, location=f"'{names[id(block)]}'!A1")
        elif isinstance(block, Signature):
            closing = [("Nơi nhận:", _BOLD), *((x, _TEXT) for x in block.distribution)]
            closing += [*((x, _BOLD) for x in block.authority), (block.name, _BOLD)]
            for text, font in closing:
                _line(sheet, row, text, font, width)
                row += 1
            continue
        elif isinstance(block, Appendix):
            for text in (block.label, block.title.upper(), block.attached):
                if text:
                    _line(sheet, row, text, _BOLD if text != block.attached else _ITALIC, width)
                    row += 1
            continue
        elif isinstance(block, Paragraph):
            _line(sheet, row, block.text, _ITALIC if block.editable else _TEXT, width)
        elif isinstance(block, Heading):
            _line(sheet, row, block.text, _BOLD, width)
        row += 1


def _header(sheet: Worksheet, table: Table, top: int, widths: list[float]) -> int:
    """The header rows from ``top``: one, or two under bands; returns the first body row."""
    two = bool(table.bands)
    for c, (text, width) in enumerate(zip(table.headers, widths, strict=True), start=1):
        sheet.column_dimensions[get_column_letter(c)].width = width
        band = table.band_of(c - 1)
        row = top + 1 if two and band else top
        cell = sheet.cell(row, c, text)
        cell.font, cell.alignment, cell.border = _BOLD, _HEADER, _GRID
        if two and band is None:
            sheet.cell(top + 1, c).border = _GRID
            sheet.merge_cells(start_row=top, start_column=c, end_row=top + 1, end_column=c)
    for band in table.bands:
        cell = sheet.cell(top, band.first + 1, band.text)
        cell.font, cell.alignment, cell.border = _BOLD, _HEADER, _GRID
        for c in range(band.first + 2, band.last + 2):
            sheet.cell(top, c).border = _GRID
        sheet.merge_cells(
            start_row=top, start_column=band.first + 1, end_row=top, end_column=band.last + 1
        )
    lines = [_lines(text, width - 2) for text, width in zip(table.headers, widths, strict=True)]
    if two:
        sheet.row_dimensions[top].height = _LINE * 2
        sheet.row_dimensions[top + 1].height = _LINE * max(lines, default=1)
        return top + 2
    sheet.row_dimensions[top].height = _LINE * max(lines, default=1)
    return top + 1


def _table_sheet(book: Workbook, table: Table, name: str) -> None:
    """A table's sheet: caption, group caption, frozen header rows, body, footnotes."""
    sheet = _new_sheet(book, name, landscape=len(table.columns) > _WIDE)
    _line(sheet, 1, table.title, Font(name=_FONT, size=13, bold=True))
    if table.group and table.group not in table.title:
        _line(sheet, 2, table.group, _ITALIC)
    widths = [min(max(want + 2, 6), 60) for _, _, want in column_chars(table)]
    first = _header(sheet, table, 3, widths)
    order = [is_order_column(text) for text in table.columns]
    for r, row in enumerate(table.rows, start=first):
        tallest = 1
        for c, value in enumerate(row, start=1):
            target = sheet.cell(r, c)
            target.font, target.alignment, target.border = _TEXT, _MIDDLE, _GRID
            if isinstance(value, Count):
                target.value, target.number_format = value.value, "#,##0"
            elif isinstance(value, Rate):
                target.value, target.number_format = value.fraction, rate_format(value)
            elif isinstance(value, Average):
                target.value, target.number_format = value.value, _average_format(value)
            elif value is not None:
                target.value = value
                target.alignment = _CENTER if order[c - 1] else _WRAP_MIDDLE
                tallest = max(tallest, _lines(value, widths[c - 1] - 2))
        if tallest > 1:
            sheet.row_dimensions[r].height = _LINE * tallest
    for n, note in enumerate(table.notes):
        _line(sheet, first + 1 + len(table.rows) + n, note, _ITALIC)
    sheet.freeze_panes = f"A{first}"
    sheet.print_title_rows = f"3:{first - 1}"


def xlsx_bytes(doc: Document) -> bytes:
    """The document as the bytes of an xlsx workbook (reproducible).

    Args:
        doc: the report.

    Returns:
        The workbook file's content.
    """
    book = Workbook()
    del book[book.sheetnames[0]]
    book.properties.title = doc.title
    book.properties.creator = "dossier-stream"
    book.properties.created = book.properties.modified = FIXED_TIME.replace(tzinfo=None)
    tables = doc.tables()
    names = dict(zip(map(id, tables), sheet_names(tables), strict=True))
    _summary_sheet(book, doc, names)
    for table in tables:
        _table_sheet(book, table, names[id(table)])
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        # ExcelWriter rather than Workbook.save, which stamps the current time.
        ExcelWriter(book, archive).save()
    return reproducible_zip(buffer.getvalue())
