"""The monthly report (seed 000's form) as an administrative document.

Front (issuing body, Quốc hiệu, number, place and date; from the province's
:class:`~.profile.DocumentProfile`), ``BÁO CÁO`` and its summary, ``Kính
gửi``, the opening sentence, then:

1. the figures: received and online in prose (with the change from the
   previous month when the store has it), Bảng 1-3 of online rates, online
   payments, digitization, e-signed results (as seed 001 prints them, with the
   units that did not sign any), the on-time rate and Bảng 4 of the units with
   overdue or open-past-due dossiers;
2. ``Công tác vận hành hệ thống``: what the stream cannot know, as editable
   placeholders;
3. ``Kiến nghị``: the sections of :data:`~.proposals.PART_THREE`, each a
   function of the report (see :mod:`.proposals`);

the closing sentence, ``Nơi nhận`` and the signatory, and the appendices: Phụ
lục 1 (digitization per unit, the seed's two-level header,
communes grouped under their district) and Phụ lục 2 (other indicators),
landscape too.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from dossier_stream.core.formatting import format_count, format_date
from dossier_stream.core.registry import Unit, UnitRegistry
from dossier_stream.reports.compare import change, comparable, point_change
from dossier_stream.reports.document import (
    Appendix,
    Average,
    Band,
    Block,
    Cell,
    Count,
    Document,
    Front,
    Heading,
    Paragraph,
    Rate,
    Signature,
    Table,
)
from dossier_stream.reports.profile import DocumentProfile, load_profile
from dossier_stream.reports.proposals import PART_THREE, PartThree
from dossier_stream.reports.view import (
    LEVEL_WORDS,
    Report,
    ReportView,
    count_text,
    month_label,
    order_key,
    short_name,
)

__all__ = ["PART_THREE", "PartThree", "monthly"]

RATE_COLUMNS: Final = [
    "STT",
    "Cơ quan, đơn vị",
    "Tỷ lệ % hồ sơ trực tuyến trên tổng hồ sơ của các DVCTT",
    "Tỷ lệ % hồ sơ trực tuyến trên tổng hồ sơ",
]
DIGIT_COLUMNS: Final = [
    "STT",
    "Đơn vị",
    "Tổng số hồ sơ đã giải quyết",
    "Có file thành phần hồ sơ đính kèm",
    "Có file kết quả đính kèm",
    "Có file thành phần hồ sơ và file KQ đính kèm",
    "Tỷ lệ có file thành phần hồ sơ đính kèm",
    "Tỷ lệ có file kết quả đính kèm",
    "Tỷ lệ có file thành phần hồ sơ và file KQ đính kèm",
]
"""The digitization columns as machines read them (CSV, JSON); printed under two bands."""
DIGIT_LABELS: Final = [
    "STT",
    "Đơn vị",
    "Tổng số",
    "Có file thành phần hồ sơ đính kèm",
    "Có file kết quả đính kèm",
    "Có file thành phần hồ sơ và file KQ đính kèm",
    "Có file thành phần hồ sơ đính kèm",
    "Có file kết quả đính kèm",
    "Có file thành phần hồ sơ và file KQ đính kèm",
]
DIGIT_BANDS: Final = [
    Band("Số lượng hồ sơ đã giải quyết", 2, 5),
    Band("Tỷ lệ số hóa hồ sơ đã giải quyết (%)", 6, 8),
]


# --- part 1: the figures ------------------------------------------------------------------


def _rate_table(key: str, title: str, rows: list[tuple[str, str, Rate, Rate]]) -> Table:
    table = Table(key, title, list(RATE_COLUMNS), sheet=title.split(" - ", 1)[0])
    rows.sort(key=lambda r: (*order_key(r[2], r[3]), r[1]))
    for i, (code, name, oos, all_) in enumerate(rows, 1):
        table.add([str(i), name, oos, all_], code)
    return table


def _online_tables(v: ReportView) -> list[Table]:
    oos, all_ = "online_submission_of_online_services", "online_submission"
    tables = []
    words = {"department": "cấp sở, ngành", "district": "cấp quận, huyện"}
    if "district" not in v.levels:  # from 1/7/2025: communes report directly
        words["commune"] = "cấp xã, phường, đặc khu"
    levels = [lvl for lvl in words if lvl in v.levels]
    for n, level in enumerate(levels, 1):
        offering = [
            u for u in v.of(level) if v.fig("online_submission_of_online_services", u.code)[1]
        ]
        rows = [(u.code, u.name, v.rate(oos, u.code), v.rate(all_, u.code)) for u in offering]
        title = f"Bảng {n} - Tỷ lệ hồ sơ trực tuyến {words[level]}"
        tables.append(_rate_table(f"bang-{n}", title, rows))
    if "district" in v.levels:
        rows, notes = [], []
        for d in v.of("district"):
            communes = [u for u in v.of("commune") if u.parent_code == d.code]
            rows.append((d.code, d.name, v.sum_rate(oos, communes), v.sum_rate(all_, communes)))
            if not v.registry.children(d.code):
                notes.append(f"* {d.name} không có cấp xã")
        table = _rate_table("bang-3", "Bảng 3 - Tỷ lệ hồ sơ trực tuyến cấp xã, phường", rows)
        table.notes = notes
        tables.append(table)
    return tables


def _section_one(v: ReportView, previous: Report | None) -> list[Paragraph]:
    received, online = v.report["received"], v.report["indicators"]["online_submission"]
    first = (
        f"Số liệu báo cáo, thống kê từ ngày {format_date(v.period.start)} đến "
        f"{format_date(v.period.end)}: Tổng số hồ sơ tiếp nhận được cập nhật trên hệ thống là "
        f"{format_count(received['city'])} hồ sơ, trong đó: Số hồ sơ tiếp nhận trên địa bàn "
        "thành phố tại "
        + "; ".join(
            f"{LEVEL_WORDS[lvl][0]} là {format_count(received['levels'][lvl])} hồ sơ"
            for lvl in v.levels
        )
        + ". "
    )
    city = online["city"]
    second = (
        f"Số hồ sơ trực tuyến là {format_count(city['numerator'])} hồ sơ (đạt tỷ lệ "
        f"{city['rate_text']}), "
        + ", ".join(
            f"{LEVEL_WORDS[lvl][0]}{' là' if lvl == v.levels[-1] else ''} "
            f"{format_count(online['levels'][lvl]['numerator'])} hồ sơ "
            f"(đạt tỷ lệ {online['levels'][lvl]['rate_text']})"
            for lvl in v.levels
        )
        + "."
    )
    out = [Paragraph(first + second)]
    if previous is not None and comparable(previous):
        label = month_label(ReportView(previous, v.registry).period)
        before_online = previous["indicators"]["online_submission"]["city"]["numerator"]
        out.append(
            Paragraph(
                "So với tháng trước: tổng số hồ sơ tiếp nhận "
                f"{change(received['city'], previous['received']['city'], 'hồ sơ')} so với "
                f"{label} ({format_count(previous['received']['city'])} hồ sơ); số hồ sơ trực "
                f"tuyến {change(city['numerator'], before_online, 'hồ sơ')} so với {label} "
                f"({format_count(before_online)} hồ sơ)."
            )
        )
    return out


def _payments(v: ReportView, previous: Report | None) -> list[Paragraph]:
    pay = v.report["online_payment_transactions"]
    per_unit: dict[str, int] = pay["units"]
    parts = []
    for level in v.levels:
        counted = v.counted(level)
        paying = [u for u in counted if per_unit.get(u.code)]
        parts.append(
            f"{LEVEL_WORDS[level][1]} có {len(paying)}/{len(counted)} đơn vị phát sinh "
            f"{format_count(pay['levels'][level])} giao dịch"
        )
    text = (
        f"- Theo thống kê trên hệ thống, trong {v.label}, trên Hệ thống có "
        f"{len(per_unit)} đơn vị phát sinh {format_count(pay['count'])} giao dịch thanh toán "
        f"trực tuyến với tổng số tiền {format_count(pay['amount_vnd'])} đồng "
        f"(trong đó: {', '.join(parts)})"
    )
    before = previous["online_payment_transactions"] if previous else None
    if previous is not None and before and before["count"] and comparable(previous):
        label = month_label(ReportView(previous, v.registry).period)
        text += (
            f" {change(pay['count'], before['count'], 'giao dịch')} và "
            f"{change(pay['amount_vnd'], before['amount_vnd'], 'đồng')} so với {label} là "
            f"{len(before['units'])} đơn vị phát sinh {format_count(before['count'])} giao dịch "
            f"thanh toán trực tuyến với tổng số tiền {format_count(before['amount_vnd'])} đồng"
        )
    return [
        Paragraph(text + "."),
        Paragraph(
            "- Trên hệ thống, hiện nay có … thủ tục hành chính của … Sở, ngành và … thủ tục "
            "hành chính của … quận huyện và phường xã đã được thiết lập thông tin thanh toán "
            "trực tuyến.",
            editable=True,
        ),
    ]


def _digitized(v: ReportView) -> list[Paragraph]:
    out = []
    for level in v.levels:
        total = sum(v.fig("digitization_result", u.code)[0] for u in v.of(level))
        counted = v.counted(level)
        with_any = [u for u in counted if v.fig("digitization_result", u.code)[0]]
        out.append(
            Paragraph(
                f"- {LEVEL_WORDS[level][2]} có {format_count(total)} hồ sơ của "
                f"{len(with_any)}/{len(counted)} đơn vị giải quyết thủ tục hành chính cho "
                "cá nhân/tổ chức được số hóa."
            )
        )
    out.append(Paragraph("(chi tiết có phụ lục kèm theo)"))
    return out


def _e_signed(v: ReportView) -> list[Paragraph]:
    """Seed 001's 1.3: per level, the results signed and by how many units, each named.

    ``x/y`` counts among :meth:`~.ReportView.counted`; a unit outside them
    with signed results (a department without online services) is named
    after them (``ngoài ra: …``), so that the names add up to the total.
    """
    signed: dict[str, int] = v.report["e_signed"]["units"]

    def named(units: list[Unit], name: Callable[[Unit], str]) -> str:
        return ", ".join(f"{name(u)} ({count_text(signed[u.code])} kết quả)" for u in units)

    out, missing = [], []
    for level in v.levels:
        counted = v.counted(level)
        done = [u for u in counted if signed.get(u.code)]
        others = [u for u in v.of(level) if signed.get(u.code) and u not in counted]
        total = sum(signed.get(u.code, 0) for u in v.of(level))
        missing.append(f"{len(counted) - len(done):02d}/{len(counted):02d} {LEVEL_WORDS[level][3]}")
        head = (
            f"- {LEVEL_WORDS[level][2]} có {format_count(total)} hồ sơ của "
            f"{len(done)}/{len(counted)} đơn vị"
        )
        if not done and not others:
            out.append(Paragraph(head + "."))
        elif level == "commune" and "district" in v.levels:
            out.append(Paragraph(head + ", cụ thể:"))
            for d in v.of("district"):
                if mine := [u for u in done if u.parent_code == d.code]:
                    out.append(Paragraph(f"+ {short_name(d)}: {named(mine, lambda u: u.name)};"))
            if others:
                out.append(Paragraph(f"+ Ngoài ra: {named(others, lambda u: u.name)}."))
        else:
            extra = f"; ngoài ra: {named(others, short_name)}" if others else ""
            out.append(Paragraph(f"{head}, cụ thể: {named(done, short_name)}{extra}."))
    out.append(Paragraph(f"- Các đơn vị chưa thực hiện: {', '.join(missing)}."))
    return out


def _overdue(v: ReportView, previous: Report | None) -> list[Paragraph | Table]:
    ind = v.report["indicators"]["on_time"]["city"]
    text = (
        f"- Tỷ lệ hồ sơ giải quyết trước hạn, đúng hạn toàn thành phố đạt {ind['rate_text']} "
        f"({format_count(ind['numerator'])}/{format_count(ind['denominator'])} hồ sơ)"
    )
    before = previous["indicators"]["on_time"]["city"] if previous else None
    if previous is not None and before and before["denominator"] and comparable(previous):
        label = month_label(ReportView(previous, v.registry).period)
        text += (
            f"; số hồ sơ giải quyết trước hạn, đúng hạn "
            f"{change(ind['numerator'], before['numerator'], 'hồ sơ')} so với {label}, tỷ lệ "
            f"{point_change((ind['numerator'], ind['denominator']), (before['numerator'], before['denominator']))} "  # noqa: E501
            f"so với {label} ({before['rate_text']})"
        )
    blocks: list[Paragraph | Table] = [Paragraph(text + ".")]
    opd: dict[str, int] = v.report["open_past_due"]
    table = Table(
        "qua-han",
        "Bảng 4 - Hồ sơ giải quyết quá hạn và hồ sơ đang xử lý đã quá hạn",
        ["STT", "Đơn vị", "Số hồ sơ đã giải quyết", "Trước hạn, đúng hạn", "Quá hạn",
         "Tỷ lệ quá hạn", "Đang xử lý đã quá hạn"],
        sheet="Bảng 4",
    )  # fmt: skip
    rows = [(u, *v.fig("overdue", u.code)) for u in v.units if v.late(u.code)]
    rows.sort(key=lambda r: (-r[1], -opd.get(r[0].code, 0), r[0].name))
    for i, (u, late, done) in enumerate(rows, 1):
        on_time = v.fig("on_time", u.code)[0]
        cells: list[Cell] = [str(i), u.name, Count(done), Count(on_time), Count(late),
                             Rate(late, done), Count(opd.get(u.code, 0))]  # fmt: skip
        table.add(cells, u.code)
    if rows:
        blocks.append(table)
    else:
        blocks.append(Paragraph("- Trong kỳ không có hồ sơ quá hạn."))
    return blocks


# --- part 2 and part 3 --------------------------------------------------------------------


def _part_two() -> list[Block]:
    return [
        Heading("2. Công tác vận hành hệ thống:"),
        Paragraph(
            "- Hỗ trợ … lượt công dân đăng nhập và nộp hồ sơ; … lượt công dân tái sử dụng kết "
            "quả giải quyết TTHC; hỗ trợ … lượt cán bộ một cửa toàn thành phố xử lý hồ sơ giải "
            "quyết thủ tục hành chính.",
            editable=True,
        ),
        Paragraph(
            "- [Các công việc đã thực hiện trong tháng: công khai, kiểm thử thủ tục hành chính "
            "trên Cổng Dịch vụ công quốc gia; kết nối, tích hợp các hệ thống; đôn đốc, hướng dẫn "
            "các đơn vị.]",
            editable=True,
        ),
    ]


# --- appendices ---------------------------------------------------------------------------


def _digit_table(
    v: ReportView, key: str, sheet: str, units: list[Unit], group: str | None
) -> Table:
    title = f"Phụ lục 1 - {sheet}"
    table = Table(key, title, list(DIGIT_COLUMNS), group=group, bands=list(DIGIT_BANDS),
                  labels=list(DIGIT_LABELS), captioned=False, sheet=f"PL1 {sheet}")  # fmt: skip
    rows = sorted(
        ((order_key(v.rate("digitization", u.code)), u.name, u) for u in units),
        key=lambda r: (r[0], r[1]),
    )
    for i, (_key, name, u) in enumerate(rows, 1):
        kinds = ("digitization_components", "digitization_result", "digitization")
        comp, res, both = (v.rate(k, u.code) for k in kinds)
        counts = (both.denominator, comp.numerator, res.numerator, both.numerator)
        cells: list[Cell] = [str(i), name, *(Count(n) for n in counts), comp, res, both]
        table.add(cells, u.code)
    return table


def _digit_appendix(v: ReportView, attached: str) -> list[Block]:
    blocks: list[Block] = [
        Appendix("Phụ lục 1", "THỰC HIỆN SỐ HÓA HỒ SƠ TTHC CỦA CÁC ĐƠN VỊ", attached, True)
    ]
    titles = {"department": ("1. Sở, ban, ngành:", "Sở, ban, ngành")}
    if "district" in v.levels:
        titles["district"] = ("2. Quận, huyện:", "Quận, huyện")
        titles["commune"] = ("3. Xã, phường, thị trấn:", "Xã, phường")
    else:
        titles["commune"] = ("2. Xã, phường, đặc khu:", "Xã, phường, đặc khu")
    for level, (heading, sheet) in titles.items():
        if level not in v.levels:
            continue
        blocks.append(Heading(heading, 3))
        if level == "commune" and "district" in v.levels:
            districts = sorted(
                v.of("district"),
                key=lambda d: (not short_name(d).startswith("Huyện"), short_name(d)),
            )
            for d in districts:
                mine = [u for u in v.of("commune") if u.parent_code == d.code]
                if mine:
                    group = short_name(d)
                    blocks.append(_digit_table(v, f"so-hoa-{d.code}", group, mine, group))
        else:
            blocks.append(_digit_table(v, f"so-hoa-{level}", sheet, v.of(level), None))
    return blocks


def _other_indicators(v: ReportView, attached: str) -> list[Block]:
    ahead = v.report["average_days_ahead"]["units"]
    table = Table(
        "chi-tieu-khac",
        "Phụ lục 2 - Một số chỉ tiêu khác",
        ["STT", "Tên đơn vị", "Thu phí, lệ phí không dùng tiền mặt (%)",
         "Tỷ lệ hồ sơ hợp lệ ngay từ lần nộp đầu tiên (%)",
         "Số ngày trung bình giải quyết trước hạn", "Kết quả giải quyết được ký số"],
        captioned=False,
        sheet="PL2 Một số chỉ tiêu khác",
    )  # fmt: skip
    signed: dict[str, int] = v.report["e_signed"]["units"]
    units = [u for lvl in v.levels if lvl != "commune" or "district" not in v.levels
             for u in v.of(lvl)]  # fmt: skip
    for i, u in enumerate(units, 1):
        cells: list[Cell] = [str(i), u.name, v.rate("cashless_fee", u.code),
                             v.rate("first_time_valid", u.code),
                             Average(ahead[u.code]["average"]),
                             Count(signed.get(u.code, 0))]  # fmt: skip
        table.add(cells, u.code)
    return [Appendix("Phụ lục 2", "MỘT SỐ CHỈ TIÊU KHÁC", attached, landscape=True), table]


# --- the document -------------------------------------------------------------------------


def monthly(
    report: Report,
    registry: UnitRegistry,
    *,
    previous: Report | None = None,
    profile: DocumentProfile | None = None,
    part_three: tuple[PartThree, ...] = PART_THREE,
) -> Document:
    """The monthly report of the report's period as an administrative document.

    Args:
        report: the report structure (:func:`~dossier_stream.core.indicators.build_report`).
        registry: the unit registry (names, districts).
        previous: the previous month's report, for the ``tăng/giảm … so với tháng``
            sentences; ``None`` or a month without dossiers leaves them out.
        profile: who issues, receives and signs; the bundled Hải Phòng one by default.
        part_three: the sections of part 3 (:data:`PART_THREE`).
    """
    profile = profile or load_profile()
    v = ReportView(report, registry)
    label, year = v.label, v.period.end.year
    doc = Document(
        "BÁO CÁO",
        "Kết quả vận hành, khai thác Hệ thống Thông tin giải quyết thủ tục hành chính "
        f"{profile.province} {label}",
        front=Front(
            profile.parent, profile.issuer, profile.number(), profile.dated(year),
            tuple(profile.recipients),
        ),
    )  # fmt: skip
    blocks = doc.blocks
    blocks.append(Paragraph(profile.opening(label)))
    blocks += [Heading("1. Số liệu thống kê:"), *_section_one(v, previous)]
    blocks.append(Heading(f"1.1. Tỷ lệ hồ sơ trực tuyến trong {label}:", 3))
    blocks += _online_tables(v)
    blocks += [Heading("1.2. Về thanh toán trực tuyến:", 3), *_payments(v, previous)]
    blocks += [Heading("1.3. Số hoá hồ sơ thủ tục hành chính:", 3), *_digitized(v)]
    blocks.append(
        Heading(
            "1.4. Ký số kết quả giải quyết thủ tục hành chính và đính kèm kết quả đã ký số khi "
            "trả kết quả giải quyết thủ tục hành chính cho cá nhân/tổ chức:",
            3,
        )
    )
    blocks += _e_signed(v)
    blocks.append(Heading("1.5. Tiến độ giải quyết hồ sơ:", 3))
    blocks += _overdue(v, previous)
    blocks += _part_two()
    blocks.append(Heading("3. Kiến nghị:"))
    for section in part_three:
        blocks += section(v, profile)
    blocks.append(Paragraph(profile.closing()))
    blocks.append(
        Signature(
            profile.distribution_lines(),
            tuple(profile.signatory.authority),
            profile.signatory.name,
        )
    )
    attached = profile.attached(year)
    blocks += _digit_appendix(v, attached)
    blocks += _other_indicators(v, attached)
    return doc
