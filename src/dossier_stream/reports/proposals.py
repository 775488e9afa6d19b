"""Part 3 of the monthly report (Kiến nghị): its sections, each a function of the report.

:data:`PART_THREE` lists them in order. What the data supports is pre-filled
(the units with most overdue dossiers, most dossiers of online services not
received online, most completed dossiers not fully digitized, as seed 000's
part 3 names them) and marked editable; what it cannot know (the national
portal's score, the proposals) is a placeholder. The 766 index (issue 16)
fills :func:`part_three_index` with its computed paragraphs.

"Hồ sơ quá hạn" of a unit is its dossiers completed past due plus its
dossiers still open past due at the period's end (:meth:`.ReportView.late`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from dossier_stream.core.formatting import format_count
from dossier_stream.core.registry import Unit
from dossier_stream.reports.document import Block, Paragraph
from dossier_stream.reports.index766 import part3_blocks
from dossier_stream.reports.profile import DocumentProfile
from dossier_stream.reports.view import ReportView

__all__ = [
    "PART_THREE",
    "PartThree",
    "part_three_digitization",
    "part_three_index",
    "part_three_online",
    "part_three_overdue",
    "part_three_proposals",
]

PartThree = Callable[[ReportView, DocumentProfile], list[Block]]
"""A section of part 3 (Kiến nghị): blocks from the report and the province's profile."""

TOP: Final = 3
"""How many units a part-3 sentence names (seed 000 names three, then ``...``)."""


def _names(parts: list[str]) -> str:
    return ", ".join(parts) + ("..." if parts else "")


def part_three_index(v: ReportView, profile: DocumentProfile) -> list[Block]:
    """The national portal's 766 index of the province, estimated from the stream.

    The points per group, the units that cost the most and the dossiers that would win
    them back (:func:`~.index766.part3_blocks`); the published score and rank stay an
    editable line, since only the portal publishes them.
    """
    blocks = part3_blocks(v.report, v.registry, province=profile.province)
    blocks.append(
        Paragraph(
            f"Kết quả đánh giá của Cổng Dịch vụ công quốc gia đối với {profile.province} năm "
            f"{v.period.end.year} tính đến thời điểm hiện tại đạt … điểm, xếp hạng thứ …",
            editable=True,
        )
    )
    return blocks


def part_three_overdue(v: ReportView, profile: DocumentProfile) -> list[Block]:
    """The units with most overdue dossiers, as seed 000's part 3 names them."""
    del profile
    late = sorted(((u, v.late(u.code)) for u in v.units), key=lambda ul: (-ul[1], ul[0].name))
    late = [(u, n) for u, n in late if n][:TOP]
    if not late:
        text = "trong kỳ không có hồ sơ quá hạn."
    else:
        first, *rest = late
        names = [f"{first[0].name} với tổng số hồ sơ quá hạn là {format_count(first[1])} hồ sơ"]
        names += [f"{u.name} có {format_count(n)} hồ sơ quá hạn" for u, n in rest]
        text = f"một số đơn vị chưa xử lý hồ sơ đúng hạn như {_names(names)}"
    rate = v.report["indicators"]["on_time"]["city"]["rate_text"]
    return [
        Paragraph(
            f"- Nhóm chỉ số về tiến độ, kết quả giải quyết: tỷ lệ hồ sơ giải quyết trước hạn, "
            f"đúng hạn đạt {rate}; {text}",
            editable=True,
        )
    ]


def _shortfall(v: ReportView, key: str) -> list[tuple[Unit, int]]:
    """Departments and districts by dossiers missing from ``key``'s numerator, most first."""
    units = [u for lvl in ("department", "district") for u in v.of(lvl)]
    gaps = [(u, (f := v.fig(key, u.code))[1] - f[0]) for u in units]
    return sorted([(u, n) for u, n in gaps if n > 0], key=lambda un: (-un[1], un[0].name))[:TOP]


def part_three_online(v: ReportView, profile: DocumentProfile) -> list[Block]:
    """The units with most dossiers of online services not received online."""
    del profile
    gaps = _shortfall(v, "online_submission_of_online_services")
    listed = [
        f"{u.name} ({format_count(n)} hồ sơ chưa được công nhận là hồ sơ trực tuyến)"
        for u, n in gaps
    ]
    if not listed:
        return []
    return [
        Paragraph(
            "- Nhóm chỉ số về cung cấp dịch vụ trực tuyến: nhiều hồ sơ của các đơn vị chưa được "
            f"công nhận là hồ sơ trực tuyến: {'; '.join(listed)}...",
            editable=True,
        )
    ]


def part_three_digitization(v: ReportView, profile: DocumentProfile) -> list[Block]:
    """The units with most completed dossiers not fully digitized."""
    del profile
    listed = []
    for u, n in _shortfall(v, "digitization"):
        res, done = v.fig("digitization_result", u.code)
        gaps = [f"{format_count(n)} hồ sơ chưa thực hiện số hóa đầy đủ"]
        if done > res:
            gaps.append(f"{format_count(done - res)} hồ sơ chưa cấp kết quả điện tử")
        listed.append(f"{u.name} ({'; '.join(gaps)})")
    if not listed:
        return []
    return [
        Paragraph(
            "- Nhóm chỉ số về số hóa hồ sơ: nhiều hồ sơ của các đơn vị chưa được công nhận là "
            f"số hóa: {'; '.join(listed)}.",
            editable=True,
        )
    ]


def part_three_proposals(v: ReportView, profile: DocumentProfile) -> list[Block]:
    """The proposals: a placeholder the issuing office writes."""
    del v
    return [
        Paragraph(
            f"Theo kết quả trên, {profile.issuer} kính đề xuất {profile.recipients[0]} chỉ đạo:"
        ),
        Paragraph(
            "[Các kiến nghị, đề xuất theo từng nhóm chỉ số: công khai, minh bạch; tiến độ, kết "
            "quả giải quyết; cung cấp dịch vụ trực tuyến; số hóa hồ sơ.]",
            editable=True,
        ),
    ]


PART_THREE: Final[tuple[PartThree, ...]] = (
    part_three_index,
    part_three_overdue,
    part_three_online,
    part_three_digitization,
    part_three_proposals,
)
"""The sections of part 3 (Kiến nghị), in order."""
