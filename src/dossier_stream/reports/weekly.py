"""The weekly notice (Friday → Thursday): per indicator with a target, the city and
level figures, how many units meet the target, the 5 lowest units; for on-time,
the units with most completed dossiers at 100 % and those with the highest
overdue rate.
"""

from __future__ import annotations

from typing import Any, Final

from dossier_stream.core.formatting import format_count, format_date, format_rate
from dossier_stream.core.registry import Unit, UnitRegistry
from dossier_stream.reports.document import Count, Document, Heading, Paragraph, Rate, Table
from dossier_stream.reports.view import LEVEL_WORDS, Report, ReportView

__all__ = ["weekly"]

_SHEET_LEVEL: Final = {"department": "sở", "district": "huyện", "commune": "xã"}


_WEEKLY_INDICATORS: Final = (
    "online_submission",
    "online_payment",
    "digital_reuse",
    "digitization",
    "synchronisation",
    "feedback_on_time",
)


def _target_text(target: str) -> str:
    return f"≥ {target[2:]}%" if target.startswith(">=") else f"{target[1:]}%"


def _figure(fig: dict[str, Any]) -> str:
    return (
        f"đạt {fig['rate_text']} ({format_count(fig['numerator'])}/"
        f"{format_count(fig['denominator'])} hồ sơ)"
    )


def _lowest(v: ReportView, key: str, level: str, n: int = 5) -> list[tuple[Unit, Rate]]:
    units = v.report["indicators"][key]["units"]
    rated = [(u, v.rate(key, u.code)) for u in v.of(level) if u.code in units]
    rated = [(u, r) for u, r in rated if r.denominator]
    rated.sort(key=lambda ur: (ur[1].numerator / ur[1].denominator, ur[0].name))
    return rated[:n]


def weekly(report: Report, registry: UnitRegistry) -> Document:
    """The weekly notice of the report's period (Friday → Thursday)."""
    v = ReportView(report, registry)
    doc = Document(
        "THÔNG BÁO",
        "Kết quả thực hiện các chỉ tiêu giải quyết thủ tục hành chính tuần từ ngày "
        f"{format_date(v.period.start)} đến ngày {format_date(v.period.end)}",
    )
    for n, key in enumerate(_WEEKLY_INDICATORS, 1):
        ind = report["indicators"][key]
        doc.blocks.append(Heading(f"{n}. {ind['title']} (chỉ tiêu {_target_text(ind['target'])})"))
        lines = [f"Toàn thành phố {_figure(ind['city'])}."]
        for level in v.levels:
            if level not in ind["levels"]:
                continue
            met, total = ind["units_meeting_target"][level]
            lines.append(
                f"{LEVEL_WORDS[level][1].capitalize()} {_figure(ind['levels'][level])}. "
                f"Số đơn vị đạt chỉ tiêu giao: {met}/{total}."
            )
        doc.blocks += [Paragraph(line) for line in lines]
        for level in v.levels:
            low = _lowest(v, key, level)
            if not low:
                continue
            table = Table(
                f"thap-nhat-{key}-{level}",
                f"5 đơn vị {LEVEL_WORDS[level][1]} có tỷ lệ thấp nhất",
                ["STT", "Đơn vị", "Tỷ lệ", "Số hồ sơ"],
                sheet=f"{n}. Thấp nhất cấp {_SHEET_LEVEL[level]}",
            )
            for i, (u, r) in enumerate(low, 1):
                table.add([str(i), u.name, r, f"{format_count(r.numerator)}/"
                           f"{format_count(r.denominator)}"], u.code)  # fmt: skip
            doc.blocks.append(table)
    doc.blocks += _on_time_section(v, len(_WEEKLY_INDICATORS) + 1)
    return doc


def _on_time_section(v: ReportView, n: int) -> list[Heading | Paragraph | Table]:
    ind = v.report["indicators"]["on_time"]
    blocks: list[Heading | Paragraph | Table] = [
        Heading(f"{n}. Tỷ lệ hồ sơ giải quyết trước hạn, đúng hạn"),
        Paragraph(f"Toàn thành phố {_figure(ind['city'])}."),
    ]
    for level in v.levels:
        if level in ind["levels"]:
            blocks.append(
                Paragraph(f"{LEVEL_WORDS[level][1].capitalize()} {_figure(ind['levels'][level])}.")
            )
        perfect = [u for u in v.of(level) if (f := v.fig("on_time", u.code))[1] and f[0] == f[1]]
        perfect.sort(key=lambda u: (-v.fig("on_time", u.code)[1], u.name))
        if perfect:
            table = Table(
                f"dung-han-{level}",
                f"5 đơn vị {LEVEL_WORDS[level][1]} có nhiều hồ sơ nhất đạt 100% đúng hạn",
                ["STT", "Đơn vị", "Số hồ sơ đã giải quyết", "Tỷ lệ đúng hạn"],
                sheet=f"{n}. Đúng hạn cấp {_SHEET_LEVEL[level]}",
            )
            for i, u in enumerate(perfect[:5], 1):
                done = v.fig("on_time", u.code)[1]
                table.add([str(i), u.name, Count(done), Rate(done, done)], u.code)
            blocks.append(table)
        late = [(u, v.rate("overdue", u.code)) for u in v.of(level)]
        late = [(u, r) for u, r in late if r.numerator]
        late.sort(key=lambda ur: (-ur[1].numerator / ur[1].denominator, -ur[1].numerator,
                                  ur[0].name))  # fmt: skip
        if late:
            table = Table(
                f"qua-han-{level}",
                f"5 đơn vị {LEVEL_WORDS[level][1]} có tỷ lệ quá hạn cao nhất",
                ["STT", "Đơn vị", "Hồ sơ quá hạn"],
                sheet=f"{n}. Quá hạn cấp {_SHEET_LEVEL[level]}",
            )
            for i, (u, r) in enumerate(late[:5], 1):
                text = (
                    f"{format_count(r.numerator)}/{format_count(r.denominator)} hồ sơ "
                    f"({format_rate(r.numerator, r.denominator)})"
                )
                table.add([str(i), u.name, text], u.code)
            blocks.append(table)
    return blocks
