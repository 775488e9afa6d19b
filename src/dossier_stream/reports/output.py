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
from dossier_stream.reports.document import Count, Document, Rate, cell_text

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


def _document(report: dict[str, Any], registry: UnitRegistry, template: str) -> Document:
    from dossier_stream.reports.templates import TEMPLATES, default_template  # noqa: PLC0415

    if template == "auto":
        period = Period.from_json(report["period"])
        template = default_template(period)
    return TEMPLATES[template](report, registry)


def render_report(
    report: dict[str, Any],
    registry: UnitRegistry,
    fmt: str,
    out: Path | None,
    template: str = "auto",
) -> str | None:
    """Render ``report``; return the text to print, or ``None`` once written to ``out``.

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
        doc = _document(report, registry, template)
    if fmt == "json":
        data = report if doc is None else {**report, "tables": tables_json(doc)}
        if template == "index766":
            from dossier_stream.reports.index766 import index766_json  # noqa: PLC0415

            data["index766"] = index766_json(report)
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
        out.write_text(text, encoding="utf-8")
        return None
    return text
