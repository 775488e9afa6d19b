"""A readable Vietnamese summary of a report (``--format text``).

The official layouts (the monthly report with Bảng 1–3, the weekly notice)
build on the same report structure; this is the short form an operator reads
in a terminal.
"""

from __future__ import annotations

from datetime import date
from typing import Any, Final

from dossier_stream.core.formatting import format_count, format_date
from dossier_stream.reports.document import Document, Heading, Paragraph, Table, cell_text

__all__ = ["render_document_text", "render_text"]

LEVEL_NAMES: Final = {
    "department": "các Sở, ban, ngành",
    "district": "các quận, huyện",
    "commune": "các xã, phường, thị trấn",
}


def _rate(fig: dict[str, Any]) -> str:
    if fig.get("no_dossiers"):
        return "không có hồ sơ"
    return (
        f"{fig['rate_text']} ({format_count(fig['numerator'])}/{format_count(fig['denominator'])})"
    )


def render_text(report: dict[str, Any]) -> str:
    """Render the report as a Vietnamese plain-text summary."""
    start = date.fromisoformat(report["period"]["from"])
    end = date.fromisoformat(report["period"]["to"])
    lines = [f"Số liệu từ ngày {format_date(start)} đến {format_date(end)}", ""]
    received = report["received"]
    if received["city"] == 0:
        lines.append("Không có hồ sơ nào được tiếp nhận trong kỳ (no dossiers).")
    else:
        parts = [
            f"{LEVEL_NAMES[lvl]} {format_count(n)} hồ sơ" for lvl, n in received["levels"].items()
        ]
        lines.append(
            f"Tổng số hồ sơ tiếp nhận: {format_count(received['city'])} hồ sơ ({'; '.join(parts)})."
        )
    lines.append("")
    for key, ind in report["indicators"].items():
        target = f" — chỉ tiêu {ind['target'].replace('>=', '≥ ')}%" if ind["target"] else ""
        lines.append(f"{ind['title']} [{key}]{target}")
        lines.append(f"  Toàn thành phố: {_rate(ind['city'])}")
        for lvl, fig in ind["levels"].items():
            met = (ind.get("units_meeting_target") or {}).get(lvl)
            extra = f"; số đơn vị đạt chỉ tiêu: {met[0]}/{met[1]}" if met else ""
            lines.append(f"  {LEVEL_NAMES[lvl].capitalize()}: {_rate(fig)}{extra}")
    pay = report["online_payment_transactions"]
    lines += [
        "",
        f"Thanh toán trực tuyến: {format_count(pay['count'])} giao dịch, "
        f"{format_count(pay['amount_vnd'])} đồng.",
    ]
    for lvl, (n, total) in pay["units_with_transactions"].items():
        lines.append(f"  {LEVEL_NAMES[lvl].capitalize()}: {n}/{total} đơn vị phát sinh giao dịch")
    opd = report["open_past_due"]
    lines.append("")
    lines.append(
        f"Hồ sơ đang xử lý đã quá hạn cuối kỳ: {format_count(sum(opd.values()))} hồ sơ "
        f"tại {len(opd)} đơn vị."
    )
    if "pipeline" in report:
        p = report["pipeline"]
        lines += [
            "",
            f"Pipeline: {format_count(p['events_in'])} sự kiện, {format_count(p['valid'])} hợp lệ, "
            f"{format_count(p['duplicates'])} trùng lặp, {format_count(p['deadletter'])} lỗi "
            "(dead-letter).",
        ]
    return "\n".join(lines) + "\n"


def render_document_text(doc: Document) -> str:
    """A document as the province's plain-text reports print it (seed 000).

    Title lines, headings and paragraphs separated by blank lines; tables as
    tab-separated rows under their caption, footnotes after them.
    """
    out = [doc.title, doc.subtitle, ""] if doc.subtitle else [doc.title, ""]
    for block in doc.blocks:
        if isinstance(block, Heading | Paragraph):
            out += [block.text, ""]
        elif isinstance(block, Table):
            out += [block.title, ""]
            out.append("\t".join(block.columns))
            out += ["\t".join(cell_text(c) for c in row) for row in block.rows]
            out.append("")
            if block.notes:
                out += [*block.notes, ""]
    return "\n".join(out).rstrip("\n") + "\n"
