"""A readable Vietnamese summary of a report (``--format text``).

The official layouts (the monthly report with Bảng 1–3, the weekly notice)
build on the same report structure; this is the short form an operator reads
in a terminal.
"""

from __future__ import annotations

from datetime import date
from typing import Any, Final

from dossier_stream.core.formatting import format_count, format_date
from dossier_stream.reports.document import (
    Document,
    Front,
    Heading,
    Paragraph,
    Signature,
    Table,
    cell_text,
)
from dossier_stream.reports.layout import captioned

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


def _front_lines(front: Front) -> list[str]:
    return [
        front.parent.upper(),
        front.issuer.upper(),
        front.NATION,
        front.MOTTO,
        front.number,
        front.dated,
        "",
    ]


def _table_lines(table: Table) -> list[str]:
    out = [table.title, ""] if table.captioned else []
    if table.bands:
        top = []
        for j, header in enumerate(table.headers):
            band = table.band_of(j)
            top.append(header if band is None else band.text if band.first == j else "")
        out.append("\t".join(top))
        out.append("\t".join(h if table.band_of(j) else "" for j, h in enumerate(table.headers)))
    else:
        out.append("\t".join(table.headers))
    out += ["\t".join(cell_text(c) for c in row) for row in table.rows]
    out.append("")
    if table.notes:
        out += [*table.notes, ""]
    return out


def render_document_text(doc: Document) -> str:
    """A document as the province's plain-text reports print it (seed 000).

    The front lines, title lines, ``Kính gửi``, headings and paragraphs
    separated by blank lines; tables as tab-separated rows (a two-level header
    on two rows, as the seed prints it), footnotes after them; ``Nơi nhận`` and
    the signatory; each appendix's label, title and ``(Kèm theo …)`` line.
    """
    out = _front_lines(doc.front) if doc.front else []
    out += [doc.title, doc.subtitle, ""] if doc.subtitle else [doc.title, ""]
    if doc.front:
        out += [*doc.front.addressed(), ""]
    for block, caption in captioned(doc):
        if caption:
            out += [caption, ""]
        if isinstance(block, Heading | Paragraph):
            out += [block.text, ""]
        elif isinstance(block, Table):
            out += _table_lines(block)
        elif isinstance(block, Signature):
            out += ["Nơi nhận:", *block.distribution, "", *block.authority, "", block.name, ""]
        else:
            out += [block.label, block.title.upper()]
            out += [block.attached, ""] if block.attached else [""]
    return "\n".join(out).rstrip("\n") + "\n"
