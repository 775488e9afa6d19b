"""The city's report forms, built from the report structure as :class:`Document` s.

* :func:`monthly` — like seed 000 (Hải Phòng, tháng 10/2024): section 1 in
  prose, Bảng 1-3 of online rates, online payments, digitization, e-signed
  results (as seed 001 prints them), overdue dossiers per unit, the
  digitization appendix per unit with communes grouped under their district,
  and an appendix of the indicators of seeds 003/004 (non-cash fees,
  first-time-valid dossiers, average working days completed ahead of due).
* :func:`weekly` — the weekly notice (Friday → Thursday): per indicator with a
  target, the city and level figures, how many units meet the target, the 5
  lowest units; for on-time, the units with most completed dossiers at 100 %
  and those with the highest overdue rate.

Decisions the seeds imply:

* Rows are sorted as the seed sorts them: by the exact rate, highest first,
  then by name in code-point order (the seed's order of equal rates).
* Bảng 1 and 2 list the units that received dossiers of online services
  (a department without any — the city inspectorate in October 2024 — is not
  listed, as in the seed); Bảng 3 lists every district, 0 % and a footnote for
  a district without communes.
* "x/y đơn vị" of online payments and of digitization counts, among the units
  that received dossiers of online services, those with at least one
  transaction / digitized result (11/18, 13/15, 130/217 and 18/18, 15/15,
  214/217 in the seed). E-signed results count among all units (14/19 in
  seed 001).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from typing import Any, Final

from dossier_stream.core.formatting import format_count, format_date, format_rate
from dossier_stream.core.periods import Period, monthly_report
from dossier_stream.core.registry import Unit, UnitRegistry
from dossier_stream.reports.document import Cell, Count, Document, Heading, Paragraph, Rate, Table
from dossier_stream.reports.index766 import index766

__all__ = ["TEMPLATES", "default_template", "monthly", "period_label", "weekly"]

_PREFIX: Final = "Ủy ban nhân dân "
_LEVEL_WORDS: Final = {
    "department": ("các Sở, ngành", "cấp sở, ban ngành", "Cấp sở"),
    "district": ("các quận, huyện", "cấp quận huyện", "Cấp huyện"),
    "commune": ("các xã, phường, thị trấn", "cấp phường, xã", "Cấp xã"),
}
_RATE_COLUMNS: Final = [
    "STT",
    "Cơ quan, đơn vị",
    "Tỷ lệ % hồ sơ trực tuyến trên tổng hồ sơ của các DVCTT",
    "Tỷ lệ % hồ sơ trực tuyến trên tổng hồ sơ",
]
_DIGIT_COLUMNS: Final = [
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

Report = dict[str, Any]


def period_label(period: Period) -> str:
    """``tháng 10/2024`` for a monthly report period, else ``từ ngày … đến ngày …``."""
    month = period.end.month
    if period == monthly_report(period.end.year, month):
        return f"tháng {month}/{period.end.year}"
    return f"từ ngày {format_date(period.start)} đến ngày {format_date(period.end)}"


def default_template(period: Period) -> str:
    """``weekly`` for a Friday-to-Thursday week, else ``monthly``."""
    is_week = len(period) == 7 and period.start.weekday() == 4
    return "weekly" if is_week else "monthly"


class _View:
    """Report figures by unit, with the registry for names and districts."""

    def __init__(self, report: Report, registry: UnitRegistry) -> None:
        self.report, self.registry = report, registry
        self.period = Period(
            date.fromisoformat(report["period"]["from"]), date.fromisoformat(report["period"]["to"])
        )
        listed = report["indicators"]["online_submission"]["units"]
        self.units = [registry.get(code) for code in listed]
        self.levels = [lvl for lvl in ("department", "district", "commune") if self.of(lvl)]

    def of(self, level: str) -> list[Unit]:
        return [u for u in self.units if u.level == level]

    def fig(self, key: str, code: str) -> tuple[int, int]:
        f = self.report["indicators"][key]["units"][code]
        return f["numerator"], f["denominator"]

    def rate(self, key: str, code: str) -> Rate:
        return Rate(*self.fig(key, code))

    def offering(self, level: str) -> list[Unit]:
        """Units of ``level`` that received dossiers of online services."""
        return [
            u for u in self.of(level) if self.fig("online_submission_of_online_services", u.code)[1]
        ]

    def sum_rate(self, key: str, units: Iterable[Unit]) -> Rate:
        pairs = [self.fig(key, u.code) for u in units]
        return Rate(sum(p[0] for p in pairs), sum(p[1] for p in pairs))


def _order(*rates: Rate) -> tuple[float, ...]:
    """Sort key: exact rates, highest first; no dossiers last."""
    return tuple(-(r.numerator / r.denominator) if r.denominator else 1.0 for r in rates)


def _short(unit: Unit) -> str:
    """``Ủy ban nhân dân huyện An Dương`` → ``Huyện An Dương`` (group captions)."""
    name = unit.name.removeprefix(_PREFIX)
    return name[:1].upper() + name[1:]


def _rate_table(key: str, title: str, rows: list[tuple[str, str, Rate, Rate]]) -> Table:
    table = Table(key, title, list(_RATE_COLUMNS))
    rows.sort(key=lambda r: (*_order(r[2], r[3]), r[1]))
    for i, (code, name, oos, all_) in enumerate(rows, 1):
        table.add([str(i), name, oos, all_], code)
    return table


def _online_tables(v: _View) -> list[Table]:
    oos, all_ = "online_submission_of_online_services", "online_submission"
    tables = []
    words = {"department": "cấp sở, ngành", "district": "cấp quận, huyện"}
    if "district" not in v.levels:  # from 1/7/2025: communes report directly
        words["commune"] = "cấp xã, phường, đặc khu"
    levels = [lvl for lvl in words if lvl in v.levels]
    for n, level in enumerate(levels, 1):
        rows = [
            (u.code, u.name, v.rate(oos, u.code), v.rate(all_, u.code)) for u in v.offering(level)
        ]
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


def _section_one(v: _View) -> list[Paragraph]:
    received, online = v.report["received"], v.report["indicators"]["online_submission"]
    first = (
        f"Số liệu báo cáo, thống kê từ ngày {format_date(v.period.start)} đến "
        f"{format_date(v.period.end)}: Tổng số hồ sơ tiếp nhận được cập nhật trên hệ thống là "
        f"{format_count(received['city'])} hồ sơ, trong đó: "
        + "; ".join(
            f"{_LEVEL_WORDS[lvl][0]} là {format_count(received['levels'][lvl])} hồ sơ"
            for lvl in v.levels
        )
        + ". "
    )
    city = online["city"]
    second = (
        f"Số hồ sơ trực tuyến là {format_count(city['numerator'])} hồ sơ (đạt tỷ lệ "
        f"{city['rate_text']}), "
        + ", ".join(
            f"{_LEVEL_WORDS[lvl][0]} {format_count(online['levels'][lvl]['numerator'])} hồ sơ "
            f"(đạt tỷ lệ {online['levels'][lvl]['rate_text']})"
            for lvl in v.levels
        )
        + "."
    )
    return [Paragraph(first + second)]


def _payments(v: _View, label: str) -> Paragraph:
    pay = v.report["online_payment_transactions"]
    per_unit: dict[str, int] = pay["units"]
    parts = []
    for level in v.levels:
        paying, offering = pay["units_with_transactions"][level]
        parts.append(
            f"{_LEVEL_WORDS[level][1]} có {paying}/{offering} đơn vị phát sinh "
            f"{format_count(pay['levels'][level])} giao dịch"
        )
    return Paragraph(
        f"- Theo thống kê trên hệ thống, {label}, trên Hệ thống có "
        f"{len(per_unit)} đơn vị phát sinh {format_count(pay['count'])} giao dịch thanh toán "
        f"trực tuyến với tổng số tiền {format_count(pay['amount_vnd'])} đồng "
        f"(trong đó: {', '.join(parts)})."
    )


def _digitized(v: _View) -> list[Paragraph]:
    out = []
    for level in v.levels:
        units = v.of(level)
        total = sum(v.fig("digitization_result", u.code)[0] for u in units)
        offering = v.offering(level)
        with_any = [u for u in offering if v.fig("digitization_result", u.code)[0]]
        out.append(
            Paragraph(
                f"- {_LEVEL_WORDS[level][2]} có {format_count(total)} hồ sơ của "
                f"{len(with_any)}/{len(offering)} đơn vị giải quyết thủ tục hành chính cho "
                "cá nhân/tổ chức được số hóa."
            )
        )
    out.append(Paragraph("(chi tiết có phụ lục kèm theo)"))
    return out


def _e_signed(v: _View) -> list[Paragraph]:
    signed: dict[str, int] = v.report["e_signed"]["units"]
    out = []
    for level in v.levels:
        units = v.of(level)
        having = [u for u in units if signed.get(u.code)]
        total = sum(signed.get(u.code, 0) for u in units)
        head = (
            f"- {_LEVEL_WORDS[level][2]} có {format_count(total)} hồ sơ của "
            f"{len(having)}/{len(units)} đơn vị"
        )
        if level == "commune" and "district" in v.levels:
            out.append(Paragraph(head + ", cụ thể:"))
            for d in v.of("district"):
                mine = [u for u in having if u.parent_code == d.code]
                if mine:
                    listed = ", ".join(f"{u.name} ({signed[u.code]:02d} kết quả)" for u in mine)
                    out.append(Paragraph(f"+ {_short(d)}: {listed};"))
        elif having:
            listed = ", ".join(f"{_short(u)} ({signed[u.code]:02d} kết quả)" for u in having)
            out.append(Paragraph(f"{head}, cụ thể: {listed}."))
        else:
            out.append(Paragraph(head + "."))
    return out


def _overdue_table(v: _View) -> Table:
    opd: dict[str, int] = v.report["open_past_due"]
    table = Table(
        "qua-han",
        "Bảng 4 - Hồ sơ giải quyết quá hạn và hồ sơ đang xử lý đã quá hạn",
        ["STT", "Đơn vị", "Số hồ sơ đã giải quyết", "Trước hạn, đúng hạn", "Quá hạn",
         "Tỷ lệ quá hạn", "Đang xử lý đã quá hạn"],
    )  # fmt: skip
    rows = []
    for u in v.units:
        late, done = v.fig("overdue", u.code)
        if late or opd.get(u.code):
            rows.append((u, late, done))
    rows.sort(key=lambda r: (-r[1], -opd.get(r[0].code, 0), r[0].name))
    for i, (u, late, done) in enumerate(rows, 1):
        on_time = v.fig("on_time", u.code)[0]
        cells: list[Cell] = [str(i), u.name, Count(done), Count(on_time), Count(late),
                             Rate(late, done), Count(opd.get(u.code, 0))]  # fmt: skip
        table.add(cells, u.code)
    return table


def _digit_table(v: _View, key: str, title: str, units: list[Unit], group: str | None) -> Table:
    table = Table(key, title, list(_DIGIT_COLUMNS), group=group)
    rows = []
    for u in units:
        both = v.rate("digitization", u.code)
        rows.append((_order(both), u.name, u))
    rows.sort(key=lambda r: (r[0], r[1]))
    for i, (_key, name, u) in enumerate(rows, 1):
        kinds = ("digitization_components", "digitization_result", "digitization")
        comp, res, both = (v.rate(k, u.code) for k in kinds)
        counts = (both.denominator, comp.numerator, res.numerator, both.numerator)
        cells: list[Cell] = [str(i), name, *(Count(n) for n in counts), comp, res, both]
        table.add(cells, u.code)
    return table


def _digit_appendix(v: _View) -> list[Heading | Table]:
    blocks: list[Heading | Table] = [
        Heading("Phụ lục 1 - Thực hiện số hóa hồ sơ TTHC của các đơn vị", 2)
    ]
    titles = {"department": "1. Sở, ban, ngành", "district": "2. Quận, huyện"}
    if "district" in v.levels:
        titles["commune"] = "3. Xã, phường, thị trấn"
    else:
        titles["commune"] = "2. Xã, phường, đặc khu"
    for level, title in titles.items():
        if level not in v.levels:
            continue
        blocks.append(Heading(title, 3))
        if level == "commune" and "district" in v.levels:
            districts = sorted(
                v.of("district"), key=lambda d: (not _short(d).startswith("Huyện"), _short(d))
            )
            for d in districts:
                mine = [u for u in v.of("commune") if u.parent_code == d.code]
                if mine:
                    blocks.append(
                        _digit_table(v, f"so-hoa-{d.code}", f"- {_short(d)}", mine, _short(d))
                    )
        else:
            blocks.append(_digit_table(v, f"so-hoa-{level}", title, v.of(level), None))
    return blocks


def _other_indicators(v: _View) -> list[Heading | Table]:
    ahead = v.report["average_days_ahead"]["units"]
    table = Table(
        "chi-tieu-khac",
        "Phụ lục 2 - Thống kê một số chỉ tiêu",
        ["STT", "Tên đơn vị", "Thu phí, lệ phí không dùng tiền mặt (%)",
         "Tỷ lệ hồ sơ hợp lệ ngay từ lần nộp đầu tiên (%)",
         "Số ngày trung bình giải quyết trước hạn", "Kết quả giải quyết được ký số"],
    )  # fmt: skip
    signed: dict[str, int] = v.report["e_signed"]["units"]
    units = [u for lvl in v.levels if lvl != "commune" or "district" not in v.levels
             for u in v.of(lvl)]  # fmt: skip
    for i, u in enumerate(units, 1):
        avg = ahead[u.code]["average"]
        avg_text = "" if avg is None else f"{avg:g}".replace(".", ",")
        cells: list[Cell] = [str(i), u.name, v.rate("cashless_fee", u.code),
                             v.rate("first_time_valid", u.code), avg_text,
                             Count(signed.get(u.code, 0))]  # fmt: skip
        table.add(cells, u.code)
    return [Heading("Phụ lục 2 - Một số chỉ tiêu khác", 2), table]


def monthly(report: Report, registry: UnitRegistry, *, province: str = "Hải Phòng") -> Document:
    """The monthly report (seed 000's form) of the report's period."""
    v = _View(report, registry)
    label = period_label(v.period)
    doc = Document(
        "BÁO CÁO",
        f"Kết quả vận hành, khai thác Hệ thống Thông tin giải quyết thủ tục hành chính "
        f"thành phố {province} {label}",
    )
    doc.blocks += [Heading("1. Số liệu thống kê:"), *_section_one(v)]
    doc.blocks.append(Heading(f"1.1. Tỷ lệ hồ sơ trực tuyến {label}:", 3))
    doc.blocks += _online_tables(v)
    doc.blocks += [Heading("1.2. Về thanh toán trực tuyến:", 3), _payments(v, label)]
    doc.blocks += [Heading("1.3. Số hoá hồ sơ thủ tục hành chính:", 3), *_digitized(v)]
    doc.blocks.append(Heading("1.4. Ký số kết quả giải quyết thủ tục hành chính:", 3))
    doc.blocks += _e_signed(v)
    doc.blocks += [Heading("1.5. Hồ sơ quá hạn:", 3), _overdue_table(v)]
    doc.blocks += _digit_appendix(v)
    doc.blocks += _other_indicators(v)
    return doc


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


def _lowest(v: _View, key: str, level: str, n: int = 5) -> list[tuple[Unit, Rate]]:
    units = v.report["indicators"][key]["units"]
    rated = [(u, v.rate(key, u.code)) for u in v.of(level) if u.code in units]
    rated = [(u, r) for u, r in rated if r.denominator]
    rated.sort(key=lambda ur: (ur[1].numerator / ur[1].denominator, ur[0].name))
    return rated[:n]


def weekly(report: Report, registry: UnitRegistry) -> Document:
    """The weekly notice of the report's period (Friday → Thursday)."""
    v = _View(report, registry)
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
                f"{_LEVEL_WORDS[level][1].capitalize()} {_figure(ind['levels'][level])}. "
                f"Số đơn vị đạt chỉ tiêu giao: {met}/{total}."
            )
        doc.blocks += [Paragraph(line) for line in lines]
        for level in v.levels:
            low = _lowest(v, key, level)
            if not low:
                continue
            table = Table(
                f"thap-nhat-{key}-{level}",
                f"5 đơn vị {_LEVEL_WORDS[level][1]} có tỷ lệ thấp nhất",
                ["STT", "Đơn vị", "Tỷ lệ", "Số hồ sơ"],
            )
            for i, (u, r) in enumerate(low, 1):
                table.add([str(i), u.name, r, f"{format_count(r.numerator)}/"
                           f"{format_count(r.denominator)}"], u.code)  # fmt: skip
            doc.blocks.append(table)
    doc.blocks += _on_time_section(v, len(_WEEKLY_INDICATORS) + 1)
    return doc


def _on_time_section(v: _View, n: int) -> list[Heading | Paragraph | Table]:
    ind = v.report["indicators"]["on_time"]
    blocks: list[Heading | Paragraph | Table] = [
        Heading(f"{n}. Tỷ lệ hồ sơ giải quyết trước hạn, đúng hạn"),
        Paragraph(f"Toàn thành phố {_figure(ind['city'])}."),
    ]
    for level in v.levels:
        if level in ind["levels"]:
            blocks.append(
                Paragraph(f"{_LEVEL_WORDS[level][1].capitalize()} {_figure(ind['levels'][level])}.")
            )
        perfect = [u for u in v.of(level) if (f := v.fig("on_time", u.code))[1] and f[0] == f[1]]
        perfect.sort(key=lambda u: (-v.fig("on_time", u.code)[1], u.name))
        if perfect:
            table = Table(
                f"dung-han-{level}",
                f"5 đơn vị {_LEVEL_WORDS[level][1]} có nhiều hồ sơ nhất đạt 100% đúng hạn",
                ["STT", "Đơn vị", "Số hồ sơ đã giải quyết", "Tỷ lệ đúng hạn"],
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
                f"5 đơn vị {_LEVEL_WORDS[level][1]} có tỷ lệ quá hạn cao nhất",
                ["STT", "Đơn vị", "Hồ sơ quá hạn"],
            )
            for i, (u, r) in enumerate(late[:5], 1):
                text = (
                    f"{format_count(r.numerator)}/{format_count(r.denominator)} hồ sơ "
                    f"({format_rate(r.numerator, r.denominator)})"
                )
                table.add([str(i), u.name, text], u.code)
            blocks.append(table)
    return blocks


TEMPLATES: Final = {"monthly": monthly, "weekly": weekly, "index766": index766}
"""Template name → builder ``(report, registry) -> Document``."""
