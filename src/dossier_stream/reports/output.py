"""From a report structure to what the commands print or write.

``--format text`` prints a template as the province's plain-text reports do
(or, with ``--template summary``, a short operator summary); ``json`` is the
report structure plus the template's tables (:func:`tables_json`); ``md``,
``csv``, ``xlsx`` and ``docx`` go through :mod:`dossier_stream.reports.writers`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

import orjson

from dossier_stream.core.periods import Period
from dossier_stream.core.registry import UnitRegistry
from dossier_stream.reports.compare import comparable, comparison
from dossier_stream.reports.document import Average, Count, Document, Rate, cell_text
from dossier_stream.reports.profile import DocumentProfile

__all__ = ["FORMATS", "TEMPLATE_CHOICES", "render_report", "tables_json"]

FORMATS: Final = ("text", "json", "md", "csv", "xlsx", "docx")
TEMPLATE_CHOICES: Final = ("auto", "monthly", "weekly", "summary", "index766")


def tables_json(doc: Document) -> list[dict[str, Any]]:
    """The document's tables as JSON: every cell with its printed text and its numbers."""

    def cell(c: Any) -> Any:
        if isinstance(c, Rate):
            return {"text": c.text, "numerator": c.numerator, "denominator": c.denominator}
        if isinstance(c, Count):
            return {"text": c.text, "value": c.value}
        if isinstance(c, Average):
            return {"text": c.text, "value": c.value}
        return cell_text(c)

    return [
        {
            "key": t.key,
            "title": t.title,
            "group": t.group,
            "columns": t.columns,
            "notes": t.notes,
            "rows": [
                {"unit_code": key, "cells": [cell(c) for c in row]}
                for key, row in zip(t.row_keys, t.rows, strict=True)
            ],
        }
        for t in doc.tables()
    ]


def _document(
    report: dict[str, Any],
    registry: UnitRegistry,
    template: str,
    previous: dict[str, Any] | None,
    profile: DocumentProfile | None,
) -> Document:
    from dossier_stream.reports.templates import TEMPLATES, default_template, monthly  # noqa: PLC0415

    if template == "auto":
        period = Period.from_json(report["period"])
        template = default_template(period)
    if template == "monthly":
        return monthly(report, registry, previous=previous, profile=profile)
    return TEMPLATES[template](report, registry)


def render_report(
    report: dict[str, Any],
    registry: UnitRegistry,
    fmt: str,
    out: Path | None,
    template: str = "auto",
    *,
    previous: dict[str, Any] | None = None,
    profile: DocumentProfile | None = None,
    csv_bom: bool = True,
) -> str | None:
    """Render ``report``; return the text to print, or ``None`` once written to ``out``.

    Args:
        report: the report structure.
        registry: the unit registry.
        fmt: one of :data:`FORMATS`.
        out: the file to write; ``None`` returns the text.
        template: one of :data:`TEMPLATE_CHOICES`.
        previous: the previous month's report (monthly form: the comparisons;
            json: ``previous_period``).
        profile: the province's document settings (bundled Hải Phòng by default).
        csv_bom: a CSV written to a file starts with a UTF-8 BOM, so that
            Excel on Windows reads its diacritics (printed CSV never has one).

    Raises:
        ValueError: a binary format (xlsx, docx) without ``out``; an unknown
            format or template.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    if template not in TEMPLATE_CHOICES:
        raise ValueError(f"unknown template {template!r}; use one of {', '.join(TEMPLATE_CHOICES)}")
    if fmt in ("xlsx", "docx") and out is None:
        raise ValueError(f"--format {fmt} writes a file: give --out FILE.{fmt}")
    if template == "summary":
        if fmt not in ("text", "json"):
            raise ValueError("--template summary prints text or json; choose monthly or weekly")
        doc = None
    else:
        doc = _document(report, registry, template, previous, profile)
    if fmt == "json":
        data = report if doc is None else {**report, "tables": tables_json(doc)}
        if comparable(previous):
            assert previous is not None
            data = {**data, "previous_period": comparison(report, previous)}
        if template == "index766":
            from dossier_stream.reports.index766 import index766_json  # noqa: PLC0415

            data = {**data, "index766": index766_json(report)}
        text = orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS).decode()
        text += "\n"
    elif fmt == "text":
        from dossier_stream.reports.render import render_document_text, render_text  # noqa: PLC0415

        text = render_text(report) if doc is None else render_document_text(doc)
    else:
        from dossier_stream.reports import writers  # noqa: PLC0415

        assert doc is not None
        if fmt in ("xlsx", "docx"):
            assert out is not None
            writers.write(doc, fmt, out)
            return None
        text = writers.render_markdown(doc) if fmt == "md" else writers.render_csv(doc)
    if out is not None:
        bom = "\ufeff" if fmt == "csv" and csv_bom else ""
        out.write_text(bom + text, encoding="utf-8", newline="")
        return None
    return text
