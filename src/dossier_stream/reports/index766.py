"""The QĐ 766 index as a report: ``--template index766`` and the monthly report's part 3.

:func:`index766` is the template (every format of ``dossier-stream report``):
the city's estimated points per group and sub-indicator, per level, the units
that cost the city the most points with the dossiers behind it, how many
dossiers would win the points back, and every unit's own estimate.
:func:`part3_blocks` writes section 3 of the monthly report as seed 000 words
it ("Nhóm chỉ số về … đạt 18,5/20 điểm …: Sở Tài nguyên và Môi trường (2.793
hồ sơ chưa thực hiện số hóa đầy đủ; …)").

The profile is ``DOSSIER_INDEX766_PROFILE`` (bundled by default); the
published scores of the groups the stream cannot see come from
``DOSSIER_INDEX766_SCORES`` (the rows of exactly the report's period) or else
``DOSSIER_INDEX766_GROUP_SCORES`` (:func:`inputs`). Every figure is labelled an
estimate ("ước tính"); a group without a published score is left out of the
total, which is then printed over the maximum that could be scored.
"""

from __future__ import annotations

from collections.abc import Mapping
from fractions import Fraction
from typing import Any, Final

from dossier_stream.core.formatting import format_count, format_date
from dossier_stream.core.index766 import (
    Group,
    Profile,
    Published,
    format_points,
    load_profile,
    load_published,
    parse_group_scores,
)
from dossier_stream.core.index766_score import IndexResult, score, totals_from_report
from dossier_stream.core.periods import Period, monthly_report
from dossier_stream.core.registry import UnitRegistry
from dossier_stream.reports.document import Block, Count, Document, Heading, Paragraph, Rate, Table

__all__ = ["index766", "index766_json", "index766_result", "inputs", "part3_blocks"]

_LEVEL_NAMES: Final = {"department": "Cấp sở, ngành", "district": "Cấp huyện", "commune": "Cấp xã"}
_TOP: Final = 3
"""Units named per group in part 3 (the seed names three or four, then "...")."""


def _label(period: Period) -> str:
    month = period.end.month
    if period == monthly_report(period.end.year, month):
        return f"tháng {month}/{period.end.year}"
    return f"từ ngày {format_date(period.start)} đến ngày {format_date(period.end)}"


def _pts(value: Fraction | None, places: int = 1) -> str:
    return "—" if value is None else format_points(value, places)


def inputs(period: Period, settings: Any = None) -> tuple[Profile, Published | None]:
    """The profile and the published input-group scores of ``period``, from the settings.

    Raises:
        ProfileError: a malformed profile or scores file (a ``ValueError``:
            the command line prints it as a usage error).
    """
    if settings is None:
        from dossier_stream.settings import Settings  # noqa: PLC0415

        settings = Settings()
    profile = load_profile(settings.index766_profile)
    published: Published | None = None
    if settings.index766_scores is not None:
        published = load_published(settings.index766_scores, profile).get(
            (period.start, period.end)
        )
    if published is None and settings.index766_group_scores:
        published = parse_group_scores(settings.index766_group_scores, profile)
    return profile, published


def index766_result(
    report: Mapping[str, Any], profile: Profile, published: Published | None
) -> IndexResult:
    """Score the units the report lists over its period."""
    totals, levels = totals_from_report(report)
    return score(profile, totals, levels, published=published)


def _resolve(
    report: Mapping[str, Any], profile: Profile | None, published: Published | None
) -> tuple[IndexResult, Period]:
    period = Period.from_json(report["period"])
    if profile is None:
        profile, read = inputs(period)
        published = read if published is None else published
    return index766_result(report, profile, published), period


def index766_json(report: Mapping[str, Any]) -> dict[str, Any]:
    """The scores as JSON (``--format json``): city, levels, units and their shares."""
    result, _period = _resolve(report, None, None)
    return result.to_json()


def _verb(result: IndexResult) -> str:
    return "đạt " if result.city.max_points else ""


def _total_sentence(result: IndexResult) -> str:
    city = result.city
    if city.max_points == 0:
        return "chưa có điểm (chưa có hồ sơ trong kỳ, chưa có điểm công bố)"
    text = f"{_pts(city.points, 2)}/{_pts(city.max_points, 2)} điểm"
    missing = [g.group.title for g in city.groups if g.source == "missing"]
    if missing:
        text += " (chưa gồm nhóm chỉ số về " + ", ".join(missing) + " do chưa có điểm công bố)"
    return text


def _unit_items(result: IndexResult, code: str, group: Group) -> str:
    """``2.793 hồ sơ chưa thực hiện số hóa đầy đủ; 2.701 hồ sơ chưa cấp kết quả điện tử``."""
    share, unit = result.shares[code], result.units[code].group(group.key)
    items: dict[str, int] = {}
    for sub in group.subindicators:
        if share.lost.get(sub.key, Fraction(0)) > 0:
            items.setdefault(sub.shortfall, unit.sub(sub.key).shortfall)
    return "; ".join(f"{format_count(n)} {text}" for text, n in items.items())


def _group_line(result: IndexResult, registry: UnitRegistry, group: Group) -> str:
    g = result.city.group(group.key)
    head = f"- Nhóm chỉ số về {group.title}"
    if g.source == "missing":
        return f"{head}: chưa có điểm công bố của Cổng Dịch vụ công quốc gia."
    if g.max_points == 0:
        return f"{head}: chưa có hồ sơ trong kỳ để tính điểm."
    text = f"{head} đạt {_pts(g.points)}/{_pts(g.max_points)} điểm"
    if g.source == "input":
        return text + " (theo điểm công bố của Cổng Dịch vụ công quốc gia)."
    if len(g.subs) > 1:
        text += ", trong đó " + ", ".join(
            f"chỉ số về {s.sub.title} đạt {_pts(s.points)}/{_pts(s.max_points)} điểm"
            for s in g.subs
            if s.denominator
        )
    units = result.costliest(group)
    if g.lost == 0 or not units:
        return text + ", nhóm chỉ tiêu này đạt điểm tối đa."
    named = "; ".join(
        f"{registry.get(code).name} ({_unit_items(result, code, group)})" for code in units[:_TOP]
    )
    end = "..." if len(units) > _TOP else "."
    return f"{text}. Các đơn vị làm giảm điểm nhiều nhất: {named}{end}"


def _win_back(result: IndexResult, group: Group) -> str | None:
    g = result.city.group(group.key)
    if group.input:
        return None
    parts = [
        f"{format_count(s.to_full)} {s.sub.remedy} (chỉ số về {s.sub.title})"
        for s in g.subs
        if s.to_full
    ]
    if not parts:
        return None
    return f"Để nhóm chỉ số về {group.title} đạt điểm tối đa, toàn thành phố cần thêm " + (
        "; ".join(parts) + "."
    )


def part3_blocks(
    report: Mapping[str, Any],
    registry: UnitRegistry,
    *,
    province: str = "thành phố Hải Phòng",
    profile: Profile | None = None,
    published: Published | None = None,
) -> list[Block]:
    """Section 3 of the monthly report: the estimated 766 points and who costs them.

    Args:
        report: the report structure (:func:`~dossier_stream.core.indicators.build_report`).
        registry: unit names.
        province: the province as the report names it (``thành phố Hải Phòng``; the
            ``province`` of the document settings file).
        profile: the scoring profile; from the settings when omitted (with
            the published scores, unless ``published`` is given).
        published: the published scores of the input groups for the period.
    """
    result, period = _resolve(report, profile, published)
    return _part3(result, registry, province, period)


def _part3(
    result: IndexResult, registry: UnitRegistry, province: str, period: Period
) -> list[Block]:
    blocks: list[Block] = [
        Paragraph(
            "Điểm ước tính theo Bộ chỉ số chỉ đạo, điều hành và đánh giá chất lượng phục vụ "
            "người dân, doanh nghiệp (Quyết định số 766/QĐ-TTg) của "
            f"{province} {_label(period)} {_verb(result)}{_total_sentence(result)}, cụ thể:"
        )
    ]
    for group in result.profile.groups:
        blocks.append(Paragraph(_group_line(result, registry, group)))
    for group in result.profile.groups:
        line = _win_back(result, group)
        if line:
            blocks.append(Paragraph(line))
    return blocks


_SUB_COLUMNS: Final = [
    "STT", "Nhóm chỉ số, chỉ số", "Điểm", "Điểm tối đa", "Tỷ lệ", "Số hồ sơ chưa đạt",
    "Hồ sơ cần thêm để đạt mức kế tiếp", "Hồ sơ cần thêm để đạt điểm tối đa", "Ghi chú",
]  # fmt: skip


def _city_table(result: IndexResult) -> Table:
    table = Table(
        "chi-so-766", "Bảng 1 - Điểm ước tính theo nhóm chỉ số và chỉ số", list(_SUB_COLUMNS)
    )
    for n, g in enumerate(result.city.groups, 1):
        note = {"missing": "chưa có điểm công bố", "input": "điểm công bố"}.get(
            g.source, "ước tính"
        )
        full = g.group.max_points
        table.add(
            [str(n), f"Nhóm chỉ số về {g.group.title}", _pts(g.points), _pts(full), None, None,
             None, None, note],
        )  # fmt: skip
        for m, s in enumerate(g.subs, 1):
            table.add(
                [f"{n}.{m}", s.sub.title, _pts(s.points), _pts(s.sub.points),
                 Rate(s.numerator, s.denominator), Count(s.shortfall),
                 None if s.to_next is None else Count(s.to_next),
                 None if s.to_full is None else Count(s.to_full),
                 "ước tính" if s.sub.estimate else ""],
            )  # fmt: skip
    table.notes.append(f"Tổng: {_total_sentence(result)}.")
    return table


def _level_table(result: IndexResult) -> Table:
    groups = [g for g in result.profile.groups if not g.input]
    columns = ["STT", "Cấp", *(f"Nhóm {g.title}" for g in groups), "Tổng"]
    table = Table("chi-so-766-cap", "Bảng 2 - Điểm ước tính theo cấp", columns)
    for n, (level, ent) in enumerate(result.levels.items(), 1):
        cells = [
            f"{_pts(ent.group(g.key).points)}/{_pts(ent.group(g.key).max_points)}" for g in groups
        ]
        total = f"{_pts(ent.points, 2)}/{_pts(ent.max_points, 2)}"
        table.add([str(n), _LEVEL_NAMES[level], *cells, total])
    return table


def _costliest_table(result: IndexResult, registry: UnitRegistry) -> Table:
    columns = [
        "STT", "Đơn vị", "Điểm thành phố bị mất do đơn vị", "Tỷ lệ trong tổng điểm bị mất",
        "Hồ sơ chưa đạt", "Điểm ước tính của đơn vị",
    ]  # fmt: skip
    table = Table("don-vi-mat-diem", "Bảng 3 - Các đơn vị làm giảm điểm của thành phố", columns)
    for n, code in enumerate(result.costliest(), 1):
        share = result.loss_share(code) or Fraction(0)
        unit = result.units[code]
        items = "; ".join(
            text for g in result.profile.groups if (text := _unit_items(result, code, g))
        )
        table.add(
            [str(n), registry.get(code).name, _pts(result.shares[code].total_lost, 2),
             f"{format_points(share * 100, 2)}%", items,
             f"{_pts(unit.points, 2)}/{_pts(unit.max_points, 2)}"],
            code,
        )  # fmt: skip
    return table


def _units_table(result: IndexResult, registry: UnitRegistry) -> Table:
    subs = [s for g in result.profile.groups for s in g.subindicators]
    columns = ["STT", "Đơn vị", *(s.title for s in subs), "Tổng"]
    table = Table("don-vi-766", "Phụ lục - Điểm ước tính của từng đơn vị", columns)
    for n, (code, ent) in enumerate(result.units.items(), 1):
        cells: list[Any] = [
            _pts(ent.group(g.key).sub(s.key).points)
            for g in result.profile.groups
            for s in g.subindicators
        ]
        total = f"{_pts(ent.points, 2)}/{_pts(ent.max_points, 2)}" if ent.max_points else "—"
        table.add([str(n), registry.get(code).name, *cells, total], code)
    return table


def index766(
    report: Mapping[str, Any],
    registry: UnitRegistry,
    *,
    province: str = "thành phố Hải Phòng",
    profile: Profile | None = None,
    published: Published | None = None,
) -> Document:
    """The ``index766`` template (see the module docstring)."""
    result, period = _resolve(report, profile, published)
    prof = result.profile
    doc = Document(
        "ĐIỂM ƯỚC TÍNH THEO BỘ CHỈ SỐ 766",
        f"Bộ chỉ số chỉ đạo, điều hành và đánh giá chất lượng phục vụ người dân, doanh nghiệp "
        f"(Quyết định số 766/QĐ-TTg) - {province} {_label(period)}",
    )
    doc.blocks.append(
        Paragraph(
            f"Hồ sơ ước tính: {prof.name}, phiên bản {prof.version} "
            f"({'mặc định' if prof.origin == 'bundled' else prof.origin}). Điểm tính từ số liệu "
            "của hệ thống, không phải điểm công bố của Cổng Dịch vụ công quốc gia."
        )
    )
    doc.blocks += [Heading("1. Kết quả chung:"), *_part3(result, registry, province, period)]
    doc.blocks += [Heading("2. Chi tiết:"), _city_table(result), _level_table(result)]
    doc.blocks += [_costliest_table(result, registry), _units_table(result, registry)]
    return doc
