"""Chi tiết đơn vị: one unit's indicators, daily trends and its dossiers open past due
(ClickHouse; template variables ``level`` → ``unit``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from dashkit.panels import (
    COUNT,
    Layout,
    ch_query_variable,
    ch_target,
    dashboard,
    table_panel,
    timeseries_panel,
)
from dashkit.queries import open_past_due_rows, sql_level_variable, sql_unit_variable
from dashkit.sql import (
    DAYS,
    MET,
    NO_DOSSIERS,
    NOT_MET,
    RANGE_DAYS,
    RATES,
    UNITS,
    Rate,
    array,
    ident,
    level_word,
    lit,
    meets,
    ratio,
)

FILE: Final = "unit-drilldown.json"
RECEPTION_RATES: Final = (
    "online_submission",
    "online_submission_of_online_services",
    "online_payment",
    "cashless_fee",
    "digital_reuse",
)
COMPLETION_RATES: Final = (
    "digitization_components",
    "digitization_result",
    "digitization",
    "on_time",
    "overdue",
    "first_time_valid",
)
OPEN_PAST_DUE_TITLE: Final = "Hồ sơ chưa giải quyết đã quá hạn xử lý thực tế"


# ----------------------------------------------------------------- queries
def sql_daily_rates(rates: Sequence[Rate]) -> str:
    """Daily rates of ``${unit}`` over the time range."""
    cols = ",\n    ".join(
        ratio(
            f"sumIf(c.value, c.counter = {lit(r.numerator)})",
            f"sumIf(c.value, c.counter = {lit(r.denominator)})",
        )
        + f" AS {ident(r.label)}"
        for r in rates
    )
    counters = sorted({x for r in rates for x in (r.numerator, r.denominator)})
    return f"""SELECT
    toDateTime(c.day, 'Asia/Ho_Chi_Minh') AS time,
    {cols}
FROM unit_day_counters AS c FINAL
PREWHERE c.unit_code = ${{unit:sqlstring}}
    AND c.{RANGE_DAYS}
    AND c.counter IN ({", ".join(lit(x) for x in counters)})
GROUP BY c.day
ORDER BY c.day"""


def sql_unit_indicators() -> str:
    """The unit's indicators: period to date and last 30 days, against targets."""
    ptd = ('"Tử số (kỳ báo cáo)"', '"Mẫu số (kỳ báo cáo)"')
    r30 = ('"Tử số (30 ngày)"', '"Mẫu số (30 ngày)"')
    return f"""WITH
    {DAYS},
    {array(RATES.values())} AS indicators
SELECT
    ind.2 AS "Chỉ tiêu",
    ind.7 AS "Mục tiêu",
    {ratio(*ptd)} AS "Kỳ báo cáo đến nay",
    sumIf(total, counter = ind.3 AND day >= ptd_start) AS {ptd[0]},
    sumIf(total, counter = ind.4 AND day >= ptd_start) AS {ptd[1]},
    multiIf(ind.5 = '', '', {ptd[1]} = 0, {lit(NO_DOSSIERS)},
            {meets(*ptd, "ind.5", "ind.6")}, {lit(MET)}, {lit(NOT_MET)}) AS "Đánh giá (kỳ báo cáo)",
    {ratio(*r30)} AS "30 ngày gần nhất",
    sumIf(total, counter = ind.3 AND day >= r30_start) AS {r30[0]},
    sumIf(total, counter = ind.4 AND day >= r30_start) AS {r30[1]}
FROM (
    SELECT day, counter, sum(value) AS total
    FROM unit_day_counters FINAL
    PREWHERE unit_code = ${{unit:sqlstring}} AND day BETWEEN least(ptd_start, r30_start) AND anchor
    GROUP BY day, counter
)
ARRAY JOIN indicators AS ind
GROUP BY ind
ORDER BY indexOf(indicators, ind)"""


def sql_unit_volumes() -> str:
    """The unit's daily received / completed counts over the time range."""
    return f"""SELECT
    toDateTime(day, 'Asia/Ho_Chi_Minh') AS time,
    sumIf(value, counter = 'received') AS "Tiếp nhận",
    sumIf(value, counter = 'received_online') AS "Tiếp nhận trực tuyến",
    sumIf(value, counter = 'completed') AS "Đã giải quyết",
    sumIf(value, counter = 'completed_overdue') AS "Giải quyết quá hạn"
FROM unit_day_counters FINAL
PREWHERE unit_code = ${{unit:sqlstring}} AND {RANGE_DAYS}
GROUP BY day
ORDER BY day"""


def sql_open_past_due_list() -> str:
    """The unit's dossiers open and past due at the end of the time range."""
    due_us = "toUnixTimestamp64Micro(assumeNotNull(due_at)) + pause.1"
    of_unit = open_past_due_rows("\n            AND unit_code = ${unit:sqlstring}")
    return f"""WITH toUnixTimestamp64Micro($__toTime_ms) AS t_us
SELECT
    dossier_id AS "Mã hồ sơ",
    received_at AS "Ngày tiếp nhận",
    due_at AS "Hạn xử lý (trên phiếu)",
    supplement_requests AS "Số lần yêu cầu bổ sung",
    fromUnixTimestamp64Micro({due_us}, 'Asia/Ho_Chi_Minh') AS "Hạn xử lý thực tế",
    round((t_us - ({due_us})) / 3600e6, 1) AS "Số giờ quá hạn",
    if(supplement_requests > 1, 'yêu cầu bổ sung quá 1 lần', 'quá hạn xử lý thực tế')
        AS "Lý do"
FROM (
    {of_unit}
)
ORDER BY "Hạn xử lý thực tế", dossier_id
LIMIT 1000"""


def sql_unit_info() -> str:
    return f"""SELECT code AS "Mã đơn vị", name AS "Tên đơn vị", {level_word("level")} AS "Cấp",
    valid_from AS "Hiệu lực từ", valid_to AS "Hiệu lực đến"
FROM {UNITS}
WHERE code = ${{unit:sqlstring}}"""


# ------------------------------------------------------------------ panels
def build() -> dict[str, Any]:
    """The Unit drill-down dashboard."""
    lay = Layout()
    lay.add(table_panel("Thông tin đơn vị", "Đơn vị theo danh mục đơn vị.", sql_unit_info()), 24, 3)
    lay.add(
        table_panel(
            "Kết quả các chỉ tiêu của đơn vị",
            "Các chỉ tiêu của đơn vị trong kỳ báo cáo đến nay (từ ngày 15 đến ngày 14) và "
            "30 ngày gần nhất, cùng kết thúc vào ngày cuối của khoảng thời gian đang xem.",
            sql_unit_indicators(),
            rates=["Kỳ báo cáo đến nay", "30 ngày gần nhất"],
            target_columns=["Đánh giá (kỳ báo cáo)"],
        ),
        w=24,
        h=12,
    )
    lay.row("Diễn biến theo ngày")
    for title, keys in (
        ("Tỷ lệ khi tiếp nhận, theo ngày", RECEPTION_RATES),
        ("Tỷ lệ khi giải quyết, theo ngày", COMPLETION_RATES),
        ("Tỷ lệ phản ánh, kiến nghị xử lý đúng hạn, theo ngày", ("feedback_on_time",)),
    ):
        lay.add(
            timeseries_panel(
                title,
                "Tỷ lệ của hồ sơ tiếp nhận, giải quyết hoặc phản ánh xử lý trong từng ngày.",
                [ch_target(sql_daily_rates([RATES[k] for k in keys]), timeseries=True)],
                unit="percent",
                maximum=100,
            ),
            w=12,
            h=8,
        )
    lay.add(
        timeseries_panel(
            "Số hồ sơ theo ngày",
            "Hồ sơ tiếp nhận (tất cả và trực tuyến) và đã giải quyết (tất cả và quá hạn).",
            [ch_target(sql_unit_volumes(), timeseries=True)],
            unit=COUNT,
            bars=True,
        ),
        w=12,
        h=8,
    )
    lay.row("Hồ sơ chưa giải quyết đã quá hạn")
    lay.add(
        table_panel(
            OPEN_PAST_DUE_TITLE,
            "Vào cuối khoảng thời gian đang xem: hồ sơ đã tiếp nhận, chưa giải quyết, chưa "
            "rút, không chờ bổ sung, và đã quá hạn ghi trên phiếu cộng thời gian tạm dừng chờ "
            "bổ sung, hoặc đã yêu cầu bổ sung quá 1 lần (quá hạn theo quy định).",
            sql_open_past_due_list(),
        ),
        w=24,
        h=12,
    )
    return dashboard(
        "dossier-unit-drilldown",
        "Chi tiết đơn vị",
        "Một đơn vị: các chỉ tiêu, diễn biến theo ngày và hồ sơ chưa giải quyết đã quá hạn.",
        lay,
        [
            ch_query_variable("level", "Cấp", sql_level_variable()),
            ch_query_variable("unit", "Đơn vị", sql_unit_variable()),
        ],
        refresh="5m",
        time_from="now-30d",
    )
