"""Tổng quan thành phố: each indicator city-wide and per level against its target,
the units below each target, overdue against the alert's threshold, and the units
with most dossiers open past due (ClickHouse)."""

from __future__ import annotations

from typing import Any, Final

from dashkit.panels import (
    PERCENT,
    Layout,
    ch_target,
    dashboard,
    rate_steps,
    stat_panel,
    table_panel,
    timeseries_panel,
)
from dashkit.queries import open_past_due_units
from dashkit.sql import (
    DAYS,
    LEVEL_TITLES,
    LEVEL_WORDS,
    LEVELS,
    MET,
    NO_DOSSIERS,
    NOT_MET,
    OVERDUE_LIMIT,
    OVERDUE_MIN_COMPLETED,
    RANGE_DAYS,
    RATES,
    TARGETED,
    UNIT_SUMS,
    UNITS,
    Rate,
    array,
    ident,
    level_word,
    lit,
    meets,
    ratio,
)

FILE: Final = "city-overview.json"
WINDOWS: Final = {"ptd": "kỳ báo cáo đến nay", "r30": "30 ngày gần nhất"}
BELOW_TARGET_TITLE: Final = "Đơn vị chưa đạt chỉ tiêu, {level} (kỳ báo cáo đến nay)"
"""Title of the below-target list of a level (``level``: :data:`LEVEL_TITLES`)."""


# ----------------------------------------------------------------- queries
def sql_indicators_by_level(window: str) -> str:
    """Every indicator city-wide and per level over ``ptd`` or ``r30`` days."""
    start = {"ptd": "ptd_start", "r30": "r30_start"}[window]
    level_cols = ",\n    ".join(
        ratio(
            f"sumIf(total, counter = ind.3 AND level = {lit(lvl)})",
            f"sumIf(total, counter = ind.4 AND level = {lit(lvl)})",
        )
        + f" AS {ident(LEVEL_WORDS[lvl])}"
        for lvl in LEVELS
    )
    num, den = '"Tử số"', '"Mẫu số"'
    return f"""WITH
    {DAYS},
    {array(RATES.values())} AS indicators
SELECT
    ind.2 AS "Chỉ tiêu",
    ind.7 AS "Mục tiêu",
    {ratio(num, den)} AS "Toàn thành phố",
    {level_cols},
    sumIf(total, counter = ind.3) AS {num},
    sumIf(total, counter = ind.4) AS {den},
    multiIf(ind.5 = '', '', {den} = 0, {lit(NO_DOSSIERS)},
            {meets(num, den, "ind.5", "ind.6")}, {lit(MET)}, {lit(NOT_MET)}) AS "Đánh giá"
FROM (
    SELECT u.level AS level, c.counter AS counter, sum(c.value) AS total
    FROM unit_day_counters AS c FINAL
    INNER JOIN {UNITS} AS u ON u.code = c.unit_code
    PREWHERE c.day BETWEEN {start} AND anchor
    GROUP BY level, counter
)
ARRAY JOIN indicators AS ind
GROUP BY ind
ORDER BY indexOf(indicators, ind)"""


def sql_rate_stat(rate: Rate) -> str:
    """One indicator city-wide: period to date and last 30 days."""
    n, d = lit(rate.numerator), lit(rate.denominator)
    cols = ",\n    ".join(
        ratio(
            f"sumIf(c.value, c.counter = {n} AND c.day >= {start})",
            f"sumIf(c.value, c.counter = {d} AND c.day >= {start})",
        )
        + f" AS {ident(words.capitalize())}"
        for start, words in (("ptd_start", WINDOWS["ptd"]), ("r30_start", WINDOWS["r30"]))
    )
    return f"""WITH
    {DAYS}
SELECT
    {cols}
FROM unit_day_counters AS c FINAL
INNER JOIN {UNITS} AS u ON u.code = c.unit_code
PREWHERE c.day BETWEEN least(ptd_start, r30_start) AND anchor AND c.counter IN ({n}, {d})"""


def sql_units_meeting_targets() -> str:
    """Per targeted indicator and level: units meeting the target / units of the level.

    A unit without dossiers does not meet its target (as the report's
    ``units_meeting_target``).
    """
    level_cols = ",\n    ".join(
        f"concat(toString(countIf(level = {lit(lvl)} AND met)), '/', "
        f"toString(countIf(level = {lit(lvl)}))) AS {ident(LEVEL_WORDS[lvl])}"
        for lvl in LEVELS
    )
    return f"""WITH
    {DAYS},
    {array(TARGETED)} AS indicators
SELECT
    ind.2 AS "Chỉ tiêu",
    ind.7 AS "Mục tiêu",
    {level_cols}
FROM (
    SELECT level, ind, {meets("num", "den", "ind.5", "ind.6")} AS met
    FROM {UNIT_SUMS}
)
GROUP BY ind
ORDER BY indexOf(indicators, ind)"""


def sql_units_below_target(level: str) -> str:
    """The units of ``level`` that do not meet a target, worst rate first per indicator."""
    return f"""WITH
    {DAYS},
    {array(TARGETED)} AS indicators
SELECT
    ind.2 AS "Chỉ tiêu",
    ind.7 AS "Mục tiêu",
    code AS "Mã đơn vị",
    name AS "Đơn vị",
    {ratio("num", "den")} AS "Tỷ lệ",
    num AS "Tử số",
    den AS "Mẫu số"
FROM {UNIT_SUMS}
WHERE level = {lit(level)} AND NOT ({meets("num", "den", "ind.5", "ind.6")})
ORDER BY indexOf(indicators, ind), "Tỷ lệ" ASC NULLS LAST, den DESC, code"""


def sql_units_overdue() -> str:
    """Units whose overdue rate is above the alert's threshold (from enough completed)."""
    rate = RATES["overdue"]
    return f"""WITH
    {DAYS},
    {array([rate])} AS indicators
SELECT
    code AS "Mã đơn vị",
    name AS "Đơn vị",
    {level_word("level")} AS "Cấp",
    {ratio("num", "den")} AS "Tỷ lệ quá hạn",
    num AS "Hồ sơ quá hạn",
    den AS "Hồ sơ đã giải quyết"
FROM {UNIT_SUMS}
WHERE den >= {OVERDUE_MIN_COMPLETED} AND num * 100 > {OVERDUE_LIMIT:g} * den
ORDER BY num / den DESC, den DESC, code"""


def sql_daily_rate(rate: Rate) -> str:
    """The city-wide rate of each day of the time range (cohort day)."""
    n, d = lit(rate.numerator), lit(rate.denominator)
    return f"""SELECT
    toDateTime(c.day, 'Asia/Ho_Chi_Minh') AS time,
    {ratio(f"sumIf(c.value, c.counter = {n})", f"sumIf(c.value, c.counter = {d})")}
        AS {ident(rate.label)}
FROM unit_day_counters AS c FINAL
INNER JOIN {UNITS} AS u ON u.code = c.unit_code
PREWHERE c.{RANGE_DAYS}
    AND c.counter IN ({n}, {d})
GROUP BY c.day
ORDER BY c.day"""


# ------------------------------------------------------------------ panels
def rate_stat(rate: Rate) -> dict[str, Any]:
    """One indicator city-wide, coloured against its target (or threshold)."""
    return stat_panel(
        f"{rate.label} ({rate.target_text})",
        f"{rate.label}, toàn thành phố: kỳ báo cáo đến nay (từ ngày 15) và 30 ngày gần nhất, "
        "cùng kết thúc vào ngày cuối của khoảng thời gian đang xem. Màu xanh khi đạt "
        f"{rate.target_text} (so sánh trên phân số chính xác).",
        ch_target(sql_rate_stat(rate)),
        defaults={**PERCENT, "color": {"mode": "thresholds"}},
        thresholds=rate_steps(rate.op, rate.target, rate.limit),
        text_mode="value_and_name",
    )


def build() -> dict[str, Any]:
    """The City overview dashboard."""
    lay = Layout()
    lay.row("Chỉ tiêu toàn thành phố: kỳ báo cáo đến nay và 30 ngày gần nhất")
    shown = [*TARGETED, RATES["overdue"]]
    for rate in shown:
        lay.add(rate_stat(rate), w=24 // len(shown), h=6)
    levels = [LEVEL_WORDS[lvl] for lvl in LEVELS]
    for window, words in WINDOWS.items():
        lay.row(f"Chỉ tiêu theo cấp, {words}")
        lay.add(
            table_panel(
                f"Kết quả các chỉ tiêu theo cấp, {words}",
                f"Mỗi chỉ tiêu của toàn thành phố và từng cấp trong {words} (kỳ báo cáo: "
                "từ ngày 15 tháng trước đến ngày 14), tính trên tổng tử số và mẫu số của "
                "các đơn vị; 'Đánh giá' so sánh phân số chính xác của toàn thành phố với "
                "chỉ tiêu giao.",
                sql_indicators_by_level(window),
                rates=["Toàn thành phố", *levels],
                target_columns=["Đánh giá"],
            ),
            w=24,
            h=12,
        )
    lay.row("Đơn vị chưa đạt chỉ tiêu giao (kỳ báo cáo đến nay)")
    lay.add(
        table_panel(
            "Số đơn vị đạt chỉ tiêu giao (đạt/tổng số đơn vị)",
            "Theo cấp: số đơn vị có tỷ lệ đạt chỉ tiêu trong kỳ báo cáo đến nay, trên số "
            "đơn vị của cấp trong kỳ. Đơn vị không có hồ sơ là chưa đạt (như trong báo cáo).",
            sql_units_meeting_targets(),
        ),
        w=24,
        h=7,
    )
    for level in LEVELS:
        lay.add(
            table_panel(
                BELOW_TARGET_TITLE.format(level=LEVEL_TITLES[level]),
                "Các đơn vị chưa đạt từng chỉ tiêu giao, tỷ lệ thấp nhất trước; tử số và mẫu "
                "số là số hồ sơ. Đơn vị không có hồ sơ đứng cuối (không có hồ sơ).",
                sql_units_below_target(level),
                rates=["Tỷ lệ"],
            ),
            w=8,
            h=12,
        )
    lay.row("Hồ sơ giải quyết quá hạn và hồ sơ chưa giải quyết đã quá hạn")
    lay.add(
        table_panel(
            f"Đơn vị có tỷ lệ giải quyết quá hạn trên {OVERDUE_LIMIT:g}%",
            f"Kỳ báo cáo đến nay: đơn vị có trên {OVERDUE_LIMIT:g}% hồ sơ đã giải quyết bị "
            f"quá hạn (từ {OVERDUE_MIN_COMPLETED} hồ sơ đã giải quyết), như cảnh báo "
            "DossierUnitOverdueRateHigh; tỷ lệ cao nhất trước.",
            sql_units_overdue(),
            rates=["Tỷ lệ quá hạn"],
        ),
        w=12,
        h=9,
    )
    lay.add(
        table_panel(
            "Đơn vị có nhiều hồ sơ chưa giải quyết đã quá hạn nhất",
            "Hồ sơ đã tiếp nhận, chưa giải quyết, chưa rút, không chờ bổ sung và đã quá "
            "hạn xử lý thực tế (hạn ghi trên phiếu cộng thời gian tạm dừng chờ bổ sung; "
            "yêu cầu bổ sung quá 1 lần là quá hạn) vào cuối khoảng thời gian đang xem.",
            open_past_due_units(),
        ),
        w=12,
        h=9,
    )
    lay.row("Tỷ lệ toàn thành phố theo ngày")
    for rate in shown:
        lay.add(
            timeseries_panel(
                f"{rate.label}, theo ngày ({rate.target_text})",
                f"{rate.label}: tỷ lệ toàn thành phố của từng ngày (ngày tiếp nhận hoặc "
                "giải quyết); đường nét đứt: chỉ tiêu hoặc ngưỡng.",
                [ch_target(sql_daily_rate(rate), timeseries=True)],
                unit="percent",
                thresholds=rate_steps(rate.op, rate.target, rate.limit),
                maximum=100,
            ),
            w=12,
            h=8,
        )
    return dashboard(
        "dossier-city-overview",
        "Tổng quan thành phố",
        "Các chỉ tiêu của toàn thành phố và từng cấp so với chỉ tiêu giao; đơn vị chưa đạt.",
        lay,
        [],
        refresh="5m",
        time_from="now-30d",
    )
