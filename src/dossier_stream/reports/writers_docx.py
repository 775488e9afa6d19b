"""The docx writer behind :func:`~.writers.write_docx`: the report as an administrative document.

The presentation follows Nghị định 30/2020/NĐ-CP (Phụ lục I, thể thức văn
bản hành chính):

* A4; margins top and bottom 20 mm, left 30 mm, right 15 mm; Times New Roman,
  black; body text 14 pt, justified, first line indented 10 mm, 6 pt after;
* the heading block, a borderless two-column table: on the left the parent
  body (upper case, 13 pt) over the issuing body (upper case, bold, a short
  rule under it) and ``Số: …/BC-…``; on the right the Quốc hiệu (upper case,
  bold, 13 pt) over the Tiêu ngữ (bold, 14 pt, underlined) and the place and
  date line (italic, 14 pt);
* the document type (``BÁO CÁO``) and its summary, bold, centered, a short
  rule under them; ``Kính gửi:``;
* ``Nơi nhận:`` (bold italic 12 pt, its list 11 pt) on the left of the
  signatory's capacity (upper case, bold) and name (bold);
* page numbers centered in the top margin from page 2 (not on page 1);
* each appendix on a new page, landscape when its tables are wide, with its
  label, title and ``(Kèm theo Báo cáo số …)`` line, and its tables' header
  rows (two-level where the seed has them) repeated on every page.

Editable paragraphs (what the issuing office completes) are highlighted.
The file is reproducible (fixed times, fixed zip timestamps).
"""

from __future__ import annotations

import io
from typing import Final

import docx
from docx.document import Document as DocxDocument
from docx.enum.section import WD_ORIENT, WD_SECTION
from docx.enum.table import WD_CELL_VERTICAL_ALIGNMENT, WD_TABLE_ALIGNMENT
from docx.enum.text import WD_ALIGN_PARAGRAPH, WD_COLOR_INDEX, WD_PARAGRAPH_ALIGNMENT
from docx.oxml import OxmlElement
from docx.oxml.ns import qn
from docx.section import Section
from docx.shared import Mm, Pt, RGBColor
from docx.table import Table as DocxTable
from docx.table import _Cell as DocxCell
from docx.table import _Row as DocxRow
from docx.text.paragraph import Paragraph as DocxParagraph

from dossier_stream.reports.document import (
    Appendix,
    Document,
    Front,
    Heading,
    Paragraph,
    Signature,
    Table,
    cell_text,
    is_order_column,
)
from dossier_stream.reports.layout import (
    FIXED_TIME,
    captioned,
    column_chars,
    number_columns,
    reproducible_zip,
)

__all__ = ["MARGINS_MM", "balanced", "docx_bytes", "text_width"]

_FONT: Final = "Times New Roman"
_BODY: Final = 14  # points
MARGINS_MM: Final = {"top": 20, "bottom": 20, "left": 30, "right": 15}
"""Page margins (mm), within Nghị định 30/2020's ranges (20-25, 20-25, 30-35, 15-20)."""
_A4: Final = (210, 297)
_INDENT: Final = Mm(10)


def text_width(landscape: bool) -> float:
    """The width (mm) between the margins of a portrait or landscape A4 page."""
    width = _A4[1] if landscape else _A4[0]
    return float(width - MARGINS_MM["left"] - MARGINS_MM["right"])


def _page(section: Section, *, landscape: bool) -> None:
    width, height = (_A4[1], _A4[0]) if landscape else _A4
    section.orientation = WD_ORIENT.LANDSCAPE if landscape else WD_ORIENT.PORTRAIT
    section.page_width, section.page_height = Mm(width), Mm(height)
    section.top_margin, section.bottom_margin = Mm(MARGINS_MM["top"]), Mm(MARGINS_MM["bottom"])
    section.left_margin, section.right_margin = Mm(MARGINS_MM["left"]), Mm(MARGINS_MM["right"])
    section.header_distance = Mm(10)


def _field(paragraph: DocxParagraph, instruction: str) -> None:
    """A simple field (``PAGE``) in ``paragraph``, with a placeholder result."""
    field = OxmlElement("w:fldSimple")
    field.set(qn("w:instr"), instruction)
    run = OxmlElement("w:r")
    text = OxmlElement("w:t")
    text.text = "1"
    run.append(text)
    field.append(run)
    paragraph._p.append(field)


def _setup(out: DocxDocument, title: str) -> None:
    """A4 portrait, Times New Roman everywhere, page numbers from page 2, fixed properties."""
    section = out.sections[0]
    _page(section, landscape=False)
    section.different_first_page_header_footer = True
    _page_numbers(section)
    normal = out.styles["Normal"]
    normal.font.name = _FONT
    normal.font.size = Pt(_BODY)
    normal.font.color.rgb = RGBColor(0, 0, 0)
    normal.paragraph_format.space_after = Pt(0)
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


def _text(
    target: DocxCell | DocxDocument,
    text: str,
    size: int = _BODY,
    *,
    bold: bool = False,
    italic: bool = False,
    underline: bool = False,
    align: WD_PARAGRAPH_ALIGNMENT | None = WD_ALIGN_PARAGRAPH.CENTER,
    first: bool = False,
) -> DocxParagraph:
    """A paragraph of one run (in a cell, ``first`` reuses the cell's empty paragraph)."""
    paragraph = target.paragraphs[0] if first else target.add_paragraph()
    run = paragraph.add_run(text)
    run.font.size = Pt(size)
    run.bold, run.italic, run.underline = bold, italic, underline
    if align is not None:
        paragraph.alignment = align
    return paragraph


def _rule(paragraph: DocxParagraph, width_mm: float, rule_mm: float) -> None:
    """A centered horizontal rule ``rule_mm`` long under ``paragraph`` (a bottom border)."""
    side = Mm(max((width_mm - rule_mm) / 2, 0))
    paragraph.paragraph_format.left_indent = paragraph.paragraph_format.right_indent = side
    borders = OxmlElement("w:pBdr")
    bottom = OxmlElement("w:bottom")
    for key, value in (("val", "single"), ("sz", "6"), ("space", "1"), ("color", "000000")):
        bottom.set(qn(f"w:{key}"), value)
    borders.append(bottom)
    paragraph._p.get_or_add_pPr().append(borders)


def _borderless(out: DocxDocument, rows: int, widths_mm: tuple[float, ...]) -> DocxTable:
    grid: DocxTable = out.add_table(rows=rows, cols=len(widths_mm))
    grid.alignment = WD_TABLE_ALIGNMENT.CENTER
    grid.autofit = False
    for row in grid.rows:
        for cell, width in zip(row.cells, widths_mm, strict=True):
            cell.width = Mm(width)
    for column, width in zip(grid.columns, widths_mm, strict=True):
        column.width = Mm(width)
    return grid


def balanced(text: str, fits: int) -> list[str]:
    """``text`` on one line if it ``fits`` (characters), else on two lines split at the
    word end that makes the longer line shortest (the first line the longer on a tie):
    ``ỦY BAN NHÂN DÂN`` / ``THÀNH PHỐ HẢI PHÒNG``."""
    words = text.split()
    if len(text) <= fits or len(words) < 2:
        return [text]
    splits = [(" ".join(words[:i]), " ".join(words[i:])) for i in range(1, len(words))]
    best = min(splits, key=lambda s: (max(len(s[0]), len(s[1])), -len(s[0])))
    return list(best)


def _lines_in(cell: DocxCell, lines: list[str], size: int, *, bold: bool = False) -> None:
    """A centered paragraph of ``lines`` separated by line breaks, in a new paragraph."""
    paragraph = cell.add_paragraph()
    paragraph.alignment = WD_ALIGN_PARAGRAPH.CENTER
    for n, line in enumerate(lines):
        run = paragraph.add_run(line)
        run.font.size, run.bold = Pt(size), bold
        if n < len(lines) - 1:
            run.add_break()


def _front(out: DocxDocument, front: Front) -> None:
    """The heading block; 7 mm wider than the text, into the right margin, as is usual,
    so that the Quốc hiệu holds on one line."""
    widths = (68.0, text_width(False) + 7.0 - 68.0)
    grid = _borderless(out, 2, widths)
    left, right = grid.rows[0].cells
    fits = int(widths[0] / 2.9)  # upper-case characters of 12 pt bold Times in the column
    _lines_in(left, balanced(front.parent.upper(), fits), 12)
    _lines_in(left, balanced(front.issuer.upper(), fits), 12, bold=True)
    left._tc.remove(left.paragraphs[0]._p)  # the cell's initial empty paragraph
    _rule(_text(left, "", 2), widths[0], 25)
    _text(right, front.NATION, 12, bold=True, first=True)
    _text(right, front.MOTTO, 13, bold=True, underline=True)
    number, dated = grid.rows[1].cells
    _text(number, front.number, 13, first=True).paragraph_format.space_before = Pt(6)
    _text(dated, front.dated, 14, italic=True, first=True).paragraph_format.space_before = Pt(6)


def _title(out: DocxDocument, doc: Document) -> None:
    title = _text(out, doc.title, 14, bold=True)
    title.paragraph_format.space_before = Pt(18)
    title.paragraph_format.keep_with_next = True
    if doc.subtitle:
        summary = _text(out, doc.subtitle, 14, bold=True)
        summary.paragraph_format.keep_with_next = True
        rule = _text(out, "", 6)
        _rule(rule, text_width(False), 50)
        rule.paragraph_format.space_after = Pt(12)
    if doc.front:
        lines = doc.front.addressed()
        for line in lines:
            paragraph = _text(out, line, _BODY)
            paragraph.paragraph_format.space_after = Pt(6 if line == lines[-1] else 0)


def _body(out: DocxDocument, text: str, *, bold: bool = False, editable: bool = False) -> None:
    paragraph = out.add_paragraph()
    run = paragraph.add_run(text)
    run.bold = bold
    if editable:
        run.font.highlight_color = WD_COLOR_INDEX.YELLOW
    paragraph.alignment = WD_ALIGN_PARAGRAPH.JUSTIFY
    fmt = paragraph.paragraph_format
    fmt.first_line_indent, fmt.space_after = _INDENT, Pt(6)
    fmt.keep_with_next = bold


def _signature(out: DocxDocument, block: Signature) -> None:
    widths = (text_width(False) / 2, text_width(False) / 2)
    grid = _borderless(out, 1, widths)
    _row_flags(grid.rows[0], "w:cantSplit")  # kept on one page
    left, right = grid.rows[0].cells
    left_align = WD_ALIGN_PARAGRAPH.LEFT
    _text(left, "Nơi nhận:", 12, bold=True, italic=True, align=left_align, first=True)
    for line in block.distribution:
        _text(left, line, 11, align=left_align)
    for n, line in enumerate(block.authority):
        _text(right, line, _BODY, bold=True, first=n == 0)
    for _ in range(4):
        _text(right, "", _BODY)
    _text(right, block.name, _BODY, bold=True)


def _page_numbers(section: Section) -> None:
    """The page number, centered in the top margin of every page of ``section``."""
    section.header.is_linked_to_previous = False
    number = section.header.paragraphs[0]
    number.alignment = WD_ALIGN_PARAGRAPH.CENTER
    _field(number, "PAGE")


def _appendix(out: DocxDocument, block: Appendix) -> None:
    section = out.add_section(WD_SECTION.NEW_PAGE)
    _page(section, landscape=block.landscape)
    section.different_first_page_header_footer = False
    _page_numbers(section)
    _text(out, block.label, _BODY, bold=True).paragraph_format.keep_with_next = True
    _text(out, block.title.upper(), _BODY, bold=True).paragraph_format.keep_with_next = True
    if block.attached:  # on two lines before "của …", as seed 000 prints it
        attached = out.add_paragraph()
        attached.alignment = WD_ALIGN_PARAGRAPH.CENTER
        attached.paragraph_format.keep_with_next = True
        head, sep, tail = block.attached.partition(" của ")
        run = attached.add_run(head)
        run.italic, run.font.size = True, Pt(_BODY)
        if sep:
            run.add_break()
            run = attached.add_run(sep.strip() + " " + tail)
            run.italic, run.font.size = True, Pt(_BODY)
    _text(out, "", 8).paragraph_format.keep_with_next = True


def _cell(
    cell: DocxCell, text: str, size: int, align: WD_PARAGRAPH_ALIGNMENT, *, bold: bool = False
) -> None:
    """Fill an empty table cell with one run of text, vertically centered."""
    paragraph = cell.paragraphs[0]
    paragraph.alignment = align
    paragraph.paragraph_format.first_line_indent = Pt(0)
    run = paragraph.add_run(text)
    run.font.size = Pt(size)
    if bold:
        run.bold = True
    cell.vertical_alignment = WD_CELL_VERTICAL_ALIGNMENT.CENTER


def _widths(table: Table, size: int, width: float) -> list[float]:
    """Column widths (mm) that fill ``width``.

    Every column first gets the width it must have; what is left goes to the
    columns that would like more for their headers, in proportion to how much
    more, then likewise for their body texts; any rest widens all columns.
    """
    char, pad = 0.55 * size * 0.3528, 4.0  # mm: an average character, the cell margins
    tiers = [[n * char + pad for n in tier] for tier in zip(*column_chars(table), strict=True)]
    widths = tiers[0]
    for tier in tiers[1:]:
        spare = width - sum(widths)
        more = [max(t - w, 0.0) for t, w in zip(tier, widths, strict=True)]
        if spare <= 0 or sum(more) >= spare:
            share = max(spare, 0.0) / sum(more) if sum(more) else 0.0
            widths = [w + m * share for w, m in zip(widths, more, strict=True)]
            break
        widths = [w + m for w, m in zip(widths, more, strict=True)]
    return [w * width / sum(widths) for w in widths]


def _row_flags(row: DocxRow, *tags: str) -> None:
    """Switch on row properties, in schema order: ``w:cantSplit`` (keep the row on one
    page), ``w:tblHeader`` (repeat the row at the top of each page)."""
    properties = row._tr.get_or_add_trPr()
    for tag in tags:
        flag = OxmlElement(tag)
        flag.set(qn("w:val"), "true")
        properties.append(flag)


def _header(grid: DocxTable, table: Table, size: int) -> None:
    """The header rows: one, or two with the bands merged over their columns."""
    center = WD_ALIGN_PARAGRAPH.CENTER
    rows = grid.rows[:2] if table.bands else grid.rows[:1]
    for row in rows:
        _row_flags(row, "w:cantSplit", "w:tblHeader")
    if not table.bands:
        for cell, text in zip(rows[0].cells, table.headers, strict=True):
            _cell(cell, text, size, center, bold=True)
        return
    top, bottom = rows[0].cells, rows[1].cells
    for j, text in enumerate(table.headers):
        if table.band_of(j) is None:
            _cell(top[j].merge(bottom[j]), text, size, center, bold=True)
        else:
            _cell(bottom[j], text, size, center, bold=True)
    for band in table.bands:
        _cell(top[band.first].merge(top[band.last]), band.text, size, center, bold=True)


def _table(out: DocxDocument, table: Table, width: float) -> None:
    """The table, its header rows repeated on each page, then its footnotes."""
    if not table.columns:
        return
    size = 12 if len(table.columns) <= 6 else 11
    widths = [Mm(mm) for mm in _widths(table, size, width)]
    left, center, right = (
        WD_ALIGN_PARAGRAPH.LEFT,
        WD_ALIGN_PARAGRAPH.CENTER,
        WD_ALIGN_PARAGRAPH.RIGHT,
    )
    aligns = [
        right if number else center if is_order_column(header) else left
        for header, number in zip(table.columns, number_columns(table), strict=True)
    ]
    heads = 2 if table.bands else 1
    grid = out.add_table(rows=heads, cols=len(table.columns))
    grid.style = out.styles["Table Grid"]
    grid.alignment = WD_TABLE_ALIGNMENT.CENTER
    grid.autofit = False
    for row in grid.rows:
        for cell, w in zip(row.cells, widths, strict=True):
            cell.width = w
    _header(grid, table, size)
    for row in table.rows:
        line = grid.add_row()
        _row_flags(line, "w:cantSplit")
        for cell, value, align, w in zip(line.cells, row, aligns, widths, strict=True):
            _cell(cell, cell_text(value), size, align)
            cell.width = w
    for column, w in zip(grid.columns, widths, strict=True):
        column.width = w
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
    _setup(out, doc.title)
    if doc.front:
        _front(out, doc.front)
    _title(out, doc)
    width = text_width(False)
    for block, caption in captioned(doc):
        if caption:
            group = _text(out, caption, 13, bold=True, align=WD_ALIGN_PARAGRAPH.LEFT)
            group.paragraph_format.keep_with_next = True
        if isinstance(block, Heading):
            _body(out, block.text, bold=True)
        elif isinstance(block, Paragraph):
            _body(out, block.text, editable=block.editable)
        elif isinstance(block, Signature):
            _signature(out, block)
        elif isinstance(block, Appendix):
            _appendix(out, block)
            width = text_width(block.landscape)
        else:
            if block.captioned:
                title = _text(out, block.title, 13, bold=True)
                title.paragraph_format.space_before = Pt(6)
                title.paragraph_format.keep_with_next = True
            _table(out, block, width)
            out.add_paragraph().paragraph_format.space_after = Pt(0)
    buffer = io.BytesIO()
    out.save(buffer)
    return reproducible_zip(buffer.getvalue())
