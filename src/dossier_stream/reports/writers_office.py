"""The xlsx and docx writers behind :func:`~.writers.write_xlsx` and ``write_docx``.

Kept apart from :mod:`dossier_stream.reports.writers` because openpyxl and python-docx
take a noticeable time to import: the text formats do not pay for them. The
layout of both files is described in the docstring of
:mod:`dossier_stream.reports.writers`.
"""

from __future__ import annotations

import io
import zipfile
from typing import Final

import docx
from docx.document import Document as DocxDocument
from docx.enum.table import WD_CELL_VERTICAL_ALIGNMENT, WD_TABLE_ALIGNMENT
from docx.enum.text import WD_ALIGN_PARAGRAPH, WD_PARAGRAPH_ALIGNMENT
from docx.oxml import OxmlElement
from docx.oxml.ns import qn
from docx.shared import Mm, Pt, RGBColor
from docx.table import _Cell as DocxCell
from docx.table import _Row as DocxRow
from docx.text.paragraph import Paragraph as DocxParagraph
from openpyxl import Workbook
from openpyxl.cell.cell import Cell
from openpyxl.styles import Alignment, Border, Font, Side
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.hyperlink import Hyperlink
from openpyxl.worksheet.properties import PageSetupProperties
from openpyxl.worksheet.worksheet import Worksheet
from openpyxl.writer.excel import ExcelWriter

from dossier_stream.reports.document import (
    Count,
    Document,
    Heading,
    Paragraph,
    Rate,
    Table,
    cell_text,
    is_order_column,
)
from dossier_stream.reports.layout import FIXED_TIME, captioned, is_number, number_columns

__all__ = ["docx_bytes", "xlsx_bytes"]

_ZIP_TIME: Final = (1980, 1, 1, 0, 0, 0)
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
_TEXT_WIDTH: Final = 165.0  # mm between the docx margins of _docx_setup
_THIN: Final = Side(style="thin")
_GRID: Final = Border(left=_THIN, right=_THIN, top=_THIN, bottom=_THIN)
_HEADER: Final = Alignment(wrap_text=True, horizontal="center", vertical="center")


def _longest_word(text: str) -> int:
    return max((len(word) for word in text.split()), default=0)


def _column_chars(table: Table) -> list[tuple[float, float, float]]:
    """Per column, in characters: the width it must have, then would like for its body and header.

    It must hold its longest unbreakable text: a printed number or a word
    (header characters count 1.25, being bold). It would like its longest body
    text on one line, then its header on at most three lines.
    """
    out = []
    for j, header in enumerate(table.columns):
        texts = [(cell_text(row[j]), is_number(row[j])) for row in table.rows]
        least = max(
            [1.25 * _longest_word(header)] + [len(t) if n else _longest_word(t) for t, n in texts]
        )
        body = max([least] + [len(t) for t, _ in texts])
        out.append((least, body, max(body, 1.25 * -(-len(header) // 3))))
    return out


def _reproducible_zip(data: bytes) -> bytes:
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


# --- xlsx ---------------------------------------------------------------------------------


def _sheet_names(tables: list[Table]) -> list[str]:
    """Valid, unique (case-insensitively, as Excel wants) sheet names from the table keys."""
    taken = {_SUMMARY_SHEET.casefold()}
    names = []
    for table in tables:
        base = table.key.translate(_SHEET_FORBIDDEN).strip("'") or "bang"
        name, n = base[:31], 1
        while name.casefold() in taken:
            n += 1
            name = f"{base[: 31 - len(str(n)) - 1]}-{n}"
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


def _new_sheet(book: Workbook, title: str) -> Worksheet:
    """A sheet printed one page wide."""
    sheet: Worksheet = book.create_sheet(title)
    sheet.sheet_properties.pageSetUpPr = PageSetupProperties(fitToPage=True)
    sheet.page_setup.fitToWidth = 1
    sheet.page_setup.fitToHeight = 0
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
    """The first sheet: title, subtitle, then headings, paragraphs and links to the tables."""
    sheet = _new_sheet(book, _SUMMARY_SHEET)
    sheet.column_dimensions["A"].width = 100
    width = 85  # characters of the widest (bold) text that fit in column A
    _line(sheet, 1, doc.title, Font(name=_FONT, size=14, bold=True), width)
    if doc.subtitle:
        _line(sheet, 2, doc.subtitle, _BOLD, width)
    row = 4
    for block, caption in captioned(doc):
        if caption:
            _line(sheet, row, caption, _ITALIC, width)
            row += 1
        if isinstance(block, Table):
            link = _line(sheet, row, block.title, _LINK, width)
            link.hyperlink = Hyperlink(ref=link.coordinate, location=f"'{names[id(block)]}'!A1")
        else:
            _line(sheet, row, block.text, _BOLD if isinstance(block, Heading) else _TEXT, width)
        row += 1


def _table_sheet(book: Workbook, table: Table, name: str) -> None:
    """A table's sheet: caption, group caption, frozen header row (3), body, footnotes."""
    sheet = _new_sheet(book, name)
    _line(sheet, 1, table.title, Font(name=_FONT, size=13, bold=True))
    if table.group:
        _line(sheet, 2, table.group, _ITALIC)
    widths = [min(max(want + 2, 6), 60) for _, _, want in _column_chars(table)]
    for c, (text, width) in enumerate(zip(table.columns, widths, strict=True), start=1):
        header = sheet.cell(3, c, text)
        header.font, header.alignment, header.border = _BOLD, _HEADER, _GRID
        sheet.column_dimensions[get_column_letter(c)].width = width
    lines = [_lines(text, width - 2) for text, width in zip(table.columns, widths, strict=True)]
    sheet.row_dimensions[3].height = _LINE * max(lines, default=1)
    order = [is_order_column(text) for text in table.columns]
    for r, row in enumerate(table.rows, start=4):
        tallest = 1
        for c, value in enumerate(row, start=1):
            target = sheet.cell(r, c)
            target.font, target.alignment, target.border = _TEXT, _MIDDLE, _GRID
            if isinstance(value, Count):
                target.value, target.number_format = value.value, "#,##0"
            elif isinstance(value, Rate):
                target.value, target.number_format = value.fraction, "0.00%"
            elif value is not None:
                target.value = value
                target.alignment = _CENTER if order[c - 1] else _WRAP_MIDDLE
                tallest = max(tallest, _lines(value, widths[c - 1] - 2))
        if tallest > 1:
            sheet.row_dimensions[r].height = _LINE * tallest
    for n, note in enumerate(table.notes):
        _line(sheet, 5 + len(table.rows) + n, note, _ITALIC)
    sheet.freeze_panes = "A4"
    sheet.print_title_rows = "3:3"


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
    names = dict(zip(map(id, tables), _sheet_names(tables), strict=True))
    _summary_sheet(book, doc, names)
    for table in tables:
        _table_sheet(book, table, names[id(table)])
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        # ExcelWriter rather than Workbook.save, which stamps the current time.
        ExcelWriter(book, archive).save()
    return _reproducible_zip(buffer.getvalue())


# --- docx ---------------------------------------------------------------------------------


def _docx_setup(out: DocxDocument, title: str) -> None:
    """A4 page, Times New Roman everywhere, black headings, fixed core properties."""
    section = out.sections[0]
    section.page_width, section.page_height = Mm(210), Mm(297)
    section.left_margin, section.right_margin = Mm(30), Mm(15)
    section.top_margin, section.bottom_margin = Mm(20), Mm(20)
    normal = out.styles["Normal"]
    normal.font.name = _FONT
    normal.font.size = Pt(13)
    for level in range(1, 10):
        heading = out.styles[f"Heading {level}"]
        heading.font.size = Pt(14 if level == 1 else 13)
        heading.font.bold, heading.font.italic = True, False
        heading.font.color.rgb = RGBColor(0, 0, 0)
    # Theme fonts (Calibri, Cambria) win over explicit names: drop them everywhere.
    for fonts in out.styles.element.iter(qn("w:rFonts")):
        for attr in ("asciiTheme", "hAnsiTheme", "eastAsiaTheme", "cstheme"):
            fonts.attrib.pop(qn(f"w:{attr}"), None)
        for attr in ("ascii", "hAnsi", "eastAsia", "cs"):
            fonts.set(qn(f"w:{attr}"), _FONT)
    props = out.core_properties
    props.title, props.author, props.last_modified_by = title, "dossier-stream", "dossier-stream"
    props.comments, props.revision = "", 1
    props.created = props.modified = FIXED_TIME


def _docx_line(out: DocxDocument, text: str, *, center: bool = False) -> DocxParagraph:
    """A bold paragraph kept with the next one (title lines, captions)."""
    paragraph = out.add_paragraph()
    paragraph.add_run(text).bold = True
    paragraph.paragraph_format.keep_with_next = True
    if center:
        paragraph.alignment = WD_ALIGN_PARAGRAPH.CENTER
    return paragraph


def _docx_cell(
    cell: DocxCell, text: str, size: int, align: WD_PARAGRAPH_ALIGNMENT, *, bold: bool = False
) -> None:
    """Fill an empty table cell with one run of text, vertically centered."""
    paragraph = cell.paragraphs[0]
    paragraph.alignment = align
    run = paragraph.add_run(text)
    run.font.size = Pt(size)
    if bold:
        run.bold = True
    cell.vertical_alignment = WD_CELL_VERTICAL_ALIGNMENT.CENTER


def _docx_widths(table: Table, size: int) -> list[float]:
    """Column widths (mm) that fill the text width.

    Every column first gets the width it must have; what is left goes to the
    columns that would like more for their body texts, in proportion to how
    much more, then likewise for their headers; any rest widens all columns.
    """
    char, pad = 0.55 * size * 0.3528, 4.0  # mm: an average character, the cell margins
    tiers = [[n * char + pad for n in tier] for tier in zip(*_column_chars(table), strict=True)]
    widths = tiers[0]
    for tier in tiers[1:]:
        spare = _TEXT_WIDTH - sum(widths)
        more = [max(t - w, 0.0) for t, w in zip(tier, widths, strict=True)]
        if spare <= 0 or sum(more) >= spare:
            share = max(spare, 0.0) / sum(more) if sum(more) else 0.0
            widths = [w + m * share for w, m in zip(widths, more, strict=True)]
            break
        widths = [w + m for w, m in zip(widths, more, strict=True)]
    return [w * _TEXT_WIDTH / sum(widths) for w in widths]


def _row_flags(row: DocxRow, *tags: str) -> None:
    """Switch on row properties, in schema order: ``w:cantSplit`` (keep the row on one
    page), ``w:tblHeader`` (repeat the row at the top of each page)."""
    properties = row._tr.get_or_add_trPr()
    for tag in tags:
        flag = OxmlElement(tag)
        flag.set(qn("w:val"), "true")
        properties.append(flag)


def _docx_table(out: DocxDocument, table: Table) -> None:
    """The table, its header row repeated on each page, then its footnotes."""
    if not table.columns:
        return
    size = 12 if len(table.columns) <= 6 else 11
    widths = [Mm(mm) for mm in _docx_widths(table, size)]
    left, center, right = (
        WD_ALIGN_PARAGRAPH.LEFT,
        WD_ALIGN_PARAGRAPH.CENTER,
        WD_ALIGN_PARAGRAPH.RIGHT,
    )
    aligns = [
        right if number else center if is_order_column(header) else left
        for header, number in zip(table.columns, number_columns(table), strict=True)
    ]
    grid = out.add_table(rows=1, cols=len(table.columns))
    grid.style = out.styles["Table Grid"]
    grid.alignment = WD_TABLE_ALIGNMENT.CENTER
    grid.autofit = False
    header = grid.rows[0]
    _row_flags(header, "w:cantSplit", "w:tblHeader")
    for cell, text, width in zip(header.cells, table.columns, widths, strict=True):
        _docx_cell(cell, text, size, center, bold=True)
        cell.width = width
    for row in table.rows:
        line = grid.add_row()
        _row_flags(line, "w:cantSplit")
        for cell, value, align, width in zip(line.cells, row, aligns, widths, strict=True):
            _docx_cell(cell, cell_text(value), size, align)
            cell.width = width
    for column, width in zip(grid.columns, widths, strict=True):
        column.width = width
    for note in table.notes:
        run = out.add_paragraph().add_run(note)
        run.italic, run.font.size = True, Pt(size)


def docx_bytes(doc: Document) -> bytes:
    """The document as the bytes of a docx file (reproducible).

    Args:
        doc: the report.

    Returns:
        The Word file's content.
    """
    out = docx.Document()
    _docx_setup(out, doc.title)
    _docx_line(out, doc.title, center=True).runs[0].font.size = Pt(14)
    if doc.subtitle:
        _docx_line(out, doc.subtitle, center=True).runs[0].font.size = Pt(14)
    for block, caption in captioned(doc):
        if caption:
            _docx_line(out, caption)
        if isinstance(block, Heading):
            if block.level <= 1:
                _docx_line(out, block.text, center=True)
            else:
                out.add_heading(block.text, min(block.level - 1, 9))
        elif isinstance(block, Paragraph):
            paragraph = out.add_paragraph(block.text)
            paragraph.alignment = WD_ALIGN_PARAGRAPH.JUSTIFY
            paragraph.paragraph_format.first_line_indent = Mm(10)
            paragraph.paragraph_format.space_after = Pt(6)
        else:
            _docx_line(out, block.title, center=True).paragraph_format.space_before = Pt(6)
            _docx_table(out, block)
    buffer = io.BytesIO()
    out.save(buffer)
    return _reproducible_zip(buffer.getvalue())
