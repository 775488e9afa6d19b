"""Reports: the official report forms (templates), their document model, the text,
Markdown, CSV, xlsx and docx writers, and reconcile (counters against facts).
"""

from __future__ import annotations

from dossier_stream.reports.output import render_report
from dossier_stream.reports.reconcile import reconcile, render_text

__all__ = ["reconcile", "render_report", "render_text"]
