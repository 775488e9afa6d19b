"""Writers: a report :class:`~.document.Document` as Markdown, CSV, xlsx or docx.

Every writer prints the Vietnamese texts of the cells (:func:`cell_text`:
``92,08%``, ``77.030``); the machine formats keep the numbers too.

* **Markdown** (:func:`render_markdown`): the front, title, headings,
  paragraphs (editable ones in italics), group captions, GitHub tables (number
  columns right-aligned; a two-level header as its self-contained column
  names), footnotes in italics, ``Nơi nhận`` and the signatory, appendices.
* **CSV** (:func:`render_csv`): long ("tidy") form, UTF-8 (a file starts with
  a BOM unless turned off, for Excel on Windows), ``\\n`` line ends, one header
  row (:data:`CSV_FIELDS`) and one line per body cell, label cells included,
  so a table can be rebuilt from its lines. ``row`` is the 1-based body row,
  ``unit_code`` its :attr:`Table.row_keys` entry, ``unit_name`` its
  :meth:`Table.row_name` (the first non-empty text cell outside the ``STT``
  column), ``column`` its self-contained column name, ``text`` the printed
  cell, ``value`` the integer of a count, the decimal of an average (dot) or
  the percent of a rate with two decimals and a dot (``92.08``; empty for a
  rate without dossiers, whose text is ``0%``), ``numerator`` and
  ``denominator`` those of a rate.
* **xlsx** (:func:`write_xlsx`, :mod:`.writers_office`): a first sheet with
  the text, then one sheet per table named as a person would; A4, print
  titles, numbers as numbers formatted as the report prints them. Built with
  openpyxl rather than XlsxWriter: its ``types-openpyxl`` stubs keep ``mypy
  --strict`` useful (XlsxWriter ships no type marker), and the tests read the
  files back with the same library.
* **docx** (:func:`write_docx`, :mod:`.writers_docx`, python-docx): the
  administrative document of Nghị định 30/2020/NĐ-CP.

The xlsx and docx files are reproducible: their creation and modification
times are :data:`FIXED_TIME` and their zip members carry a fixed timestamp, so
the same document gives the same bytes. Their modules are imported only when
one is written, so that the text formats do not pay for importing openpyxl and
python-docx.
"""

from __future__ import annotations

import csv
import io
import sys
from pathlib import Path
from typing import Final

from dossier_stream.core.formatting import rate_hundredths
from dossier_stream.reports.document import (
    Average,
    Count,
    Document,
    Front,
    Heading,
    Paragraph,
    Rate,
    Signature,
    Table,
    cell_text,
)
from dossier_stream.reports.layout import FIXED_TIME, captioned, number_columns

__all__ = [
    "CSV_FIELDS",
    "FIXED_TIME",
    "FORMATS",
    "render_csv",
    "render_markdown",
    "write",
    "write_docx",
    "write_xlsx",
]

FORMATS: Final = ("md", "csv", "xlsx", "docx")
"""The formats :func:`write` knows; xlsx and docx need a file."""

CSV_FIELDS: Final = (
    "table",
    "title",
    "group",
    "row",
    "unit_code",
    "unit_name",
    "column",
    "text",
    "value",
    "numerator",
    "denominator",
)
"""The header of :func:`render_csv`."""

# --- Markdown -----------------------------------------------------------------------------

_MD_SPECIAL: Final = str.maketrans({c: "\\" + c for c in "\\`*_[]<>|"})


def _md(text: str) -> str:
    """Plain text as Markdown inline text: one line, special characters escaped."""
    escaped = " ".join(text.split()).translate(_MD_SPECIAL)
    return "\\" + escaped if escaped.startswith(("#", "+", "=")) else escaped


def _md_table(table: Table) -> list[str]:
    numbers = number_columns(table)
    lines = [
        "| " + " | ".join(_md(c) for c in table.columns) + " |",
        "|" + "".join(" ---: |" if n else " --- |" for n in numbers),
    ]
    lines += ["| " + " | ".join(_md(cell_text(c)) for c in row) + " |" for row in table.rows]
    return lines


def _md_front(front: Front) -> list[str]:
    lines = [front.parent.upper(), f"**{front.issuer.upper()}**", front.number]
    right = [f"**{front.NATION}**", f"**{front.MOTTO}**", f"_{_md(front.dated)}_"]
    return ["  \n".join(_md(x) if not x.startswith(("*", "_")) else x for x in lines),
            "  \n".join(right)]  # fmt: skip


def render_markdown(doc: Document) -> str:
    """The document as Markdown (GitHub tables), ending with a newline.

    Editable paragraphs (what the issuing office completes) are in italics;
    a two-level table header is printed with the self-contained column names.

    Args:
        doc: the report.

    Returns:
        The Markdown text.
    """
    parts = _md_front(doc.front) if doc.front else []
    parts.append(f"# {_md(doc.title)}")
    if doc.subtitle:
        parts.append(f"**{_md(doc.subtitle)}**")
    if doc.front:
        parts.append("  \n".join(_md(line) for line in doc.front.addressed()))
    for block, caption in captioned(doc):
        if isinstance(block, Heading):
            parts.append(f"{'#' * min(max(block.level, 1), 6)} {_md(block.text)}")
        elif isinstance(block, Paragraph):
            parts.append(f"_{_md(block.text)}_" if block.editable else _md(block.text))
        elif isinstance(block, Table):
            if caption:
                parts.append(f"**{_md(caption)}**")
            if block.captioned:
                parts.append(f"**{_md(block.title)}**")
            parts.append("\n".join(_md_table(block)))
            parts += [f"_{_md(note)}_" for note in block.notes]
        elif isinstance(block, Signature):
            parts.append("**_Nơi nhận:_**  \n" + "  \n".join(_md(x) for x in block.distribution))
            parts.append("  \n".join(f"**{_md(x)}**" for x in (*block.authority, block.name)))
        else:
            parts.append("---")
            parts.append(f"## {_md(block.label)}")
            lines = [f"**{_md(block.title.upper())}**"]
            if block.attached:
                lines.append(f"_{_md(block.attached)}_")
            parts.append("  \n".join(lines))
    return "\n\n".join(parts) + "\n"


# --- CSV ----------------------------------------------------------------------------------


def _percent_text(rate: Rate) -> str:
    """``92.08`` for 38507/41818 (two decimals, dot); ``""`` without dossiers."""
    h = rate_hundredths(rate.numerator, rate.denominator)
    if h is None:
        return ""
    whole, frac = divmod(abs(h), 100)
    return f"{'-' if h < 0 else ''}{whole}.{frac:02d}"


def render_csv(doc: Document) -> str:
    """The document's tables as CSV, one line per body cell (see the module docstring).

    Args:
        doc: the report.

    Returns:
        The CSV text, header row first.
    """
    buffer = io.StringIO()
    out = csv.writer(buffer, lineterminator="\n")
    out.writerow(CSV_FIELDS)
    for table in doc.tables():
        for i, row in enumerate(table.rows):
            code = table.row_keys[i] if i < len(table.row_keys) else None
            name = table.row_name(i)
            for column, cell in zip(table.columns, row, strict=True):
                value, numerator, denominator = "", "", ""
                if isinstance(cell, Count):
                    value = str(cell.value)
                elif isinstance(cell, Average):
                    value = "" if cell.value is None else f"{cell.value:g}"
                elif isinstance(cell, Rate):
                    value = _percent_text(cell)
                    numerator, denominator = str(cell.numerator), str(cell.denominator)
                out.writerow(
                    [
                        table.key,
                        table.title,
                        table.group or "",
                        i + 1,
                        code or "",
                        name,
                        column,
                        cell_text(cell),
                        value,
                        numerator,
                        denominator,
                    ]
                )
    return buffer.getvalue()


def write_xlsx(doc: Document, path: Path) -> None:
    """Write the document as an Excel workbook (see the module docstring).

    Args:
        doc: the report.
        path: the ``.xlsx`` file to write (replaced if it exists).
    """
    from dossier_stream.reports.writers_office import xlsx_bytes  # noqa: PLC0415

    path.write_bytes(xlsx_bytes(doc))


def write_docx(doc: Document, path: Path) -> None:
    """Write the document as a Word file (see the module docstring).

    Args:
        doc: the report.
        path: the ``.docx`` file to write (replaced if it exists).
    """
    from dossier_stream.reports.writers_docx import docx_bytes  # noqa: PLC0415

    path.write_bytes(docx_bytes(doc))


# --- dispatch -----------------------------------------------------------------------------


def write(doc: Document, fmt: str, path: Path | None = None, *, csv_bom: bool = True) -> None:
    """Write the document in one of :data:`FORMATS`.

    Args:
        doc: the report.
        fmt: ``md``, ``csv``, ``xlsx`` or ``docx``.
        path: the file to write; ``None`` prints a text format on standard output.
        csv_bom: a CSV file starts with a UTF-8 BOM (Excel on Windows then reads
            its diacritics); never on standard output.

    Raises:
        ValueError: an unknown format, or a binary format (xlsx, docx) without a
            file: the message tells to give one with ``--out``.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown report format {fmt!r}: use one of {', '.join(FORMATS)}")
    if fmt in ("xlsx", "docx"):
        if path is None:
            raise ValueError(f"the {fmt} format is a binary file: give its path with --out FILE")
        (write_xlsx if fmt == "xlsx" else write_docx)(doc, path)
        return
    text = render_markdown(doc) if fmt == "md" else render_csv(doc)
    if path is None:
        sys.stdout.write(text)
    else:
        bom = "\ufeff" if fmt == "csv" and csv_bom else ""
        path.write_text(bom + text, encoding="utf-8", newline="")
