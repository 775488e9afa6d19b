"""Tình trạng xử lý: the stream workers' throughput, lag, latency, ClickHouse flushes,
dead letters and open dossiers (Prometheus, plus ClickHouse for dead letters), with
the alerts of ``deploy/prometheus/rules.yml`` as annotations and their thresholds."""

from __future__ import annotations

from typing import Any, Final

from dashkit.panels import (
    COUNT,
    EVENTS,
    MESSAGES,
    PER_SECOND,
    SECONDS,
    Layout,
    alert_annotation,
    ch_target,
    dashboard,
    prom_stat,
    prom_timeseries,
    steps,
    table_panel,
    timeseries_panel,
)
from dashkit.sql import alert_names

FILE: Final = "pipeline-health.json"
RATE: Final = "$__rate_interval"
LAG_LIMIT: Final = 1000
"""Messages behind on a topic from which ``DossierStreamConsumerLagGrowing`` may fire."""
DEAD_LETTER_LIMIT: Final = 1
"""Percent of the input dead-lettered above which ``DossierStreamDeadLetterRateHigh`` fires."""

PIPELINE_RULES: Final = "dossier-stream-pipeline"
"""The rule group of ``rules.yml`` whose alerts are about the workers (the others: figures)."""
QUANTILES: Final = (("A", 0.5), ("B", 0.95), ("C", 0.99))


# ----------------------------------------------------------------- queries
def sql_dead_letters_by_reason() -> str:
    return """SELECT
    code AS "Mã lỗi",
    any(reason) AS "Lý do",
    count() AS "Số thư lỗi",
    uniqExact(topic) AS "Số topic",
    max(logged_at) AS "Ghi nhận gần nhất"
FROM dead_letters FINAL
WHERE $__timeFilter(logged_at)
GROUP BY code
ORDER BY count() DESC, code"""


def sql_dead_letters_over_time() -> str:
    return """SELECT
    $__timeInterval(logged_at) AS time,
    code AS "Mã lỗi",
    count() AS "Số thư lỗi"
FROM dead_letters FINAL
WHERE $__timeFilter(logged_at)
GROUP BY time, code
ORDER BY time, code"""


def sql_recent_dead_letters() -> str:
    return """SELECT
    logged_at AS "Thời điểm ghi nhận",
    topic AS "Topic",
    partition AS "Phân vùng",
    offset AS "Offset",
    code AS "Mã lỗi",
    detail AS "Chi tiết",
    substring(value, 1, 300) AS "Nội dung (phần đầu)"
FROM dead_letters FINAL
WHERE $__timeFilter(logged_at)
ORDER BY logged_at DESC, topic, partition, offset
LIMIT 200"""


# ------------------------------------------------------------------ panels
def _now(lay: Layout) -> None:
    lay.row("Hiện tại")
    stats = (
        prom_stat(
            "Tiến trình xử lý đang chạy",
            "Số worker Prometheus thu thập được (up == 1); đỏ khi không còn worker nào "
            "(cảnh báo DossierStreamWorkerDown).",
            'count(up{job="dossier-stream"} == 1) or vector(0)',
            unit="none",
            thresholds=steps("red", (1, "green")),
        ),
        prom_stat(
            "Tiến trình xử lý không phản hồi",
            "Số worker Prometheus không thu thập được (up == 0).",
            'count(up{job="dossier-stream"} == 0) or vector(0)',
            unit="none",
            thresholds=steps("green", (1, "red")),
        ),
        prom_stat(
            "Sự kiện tiếp nhận mỗi giây",
            "Tin nhắn đọc từ các topic đầu vào (hợp lệ và không hợp lệ).",
            f"sum(rate(dossier_stream_events_consumed_total[{RATE}]))",
            unit=PER_SECOND,
        ),
        prom_stat(
            "Độ trễ tiêu thụ (số tin nhắn)",
            f"Tổng số tin nhắn chưa đọc; vàng từ {LAG_LIMIT} (ngưỡng của cảnh báo "
            "DossierStreamConsumerLagGrowing).",
            "sum(dossier_stream_consumer_lag_messages)",
            unit=MESSAGES,
            thresholds=steps("green", (LAG_LIMIT, "orange")),
        ),
        prom_stat(
            "Thư lỗi trong 1 giờ qua",
            "Tin nhắn không hợp lệ chuyển vào hàng thư lỗi (dead letter) trong 1 giờ qua.",
            "sum(increase(dossier_stream_dead_letters_total[1h])) or vector(0)",
            unit=MESSAGES,
            thresholds=steps("green", (1, "orange")),
        ),
        prom_stat(
            "Lỗi ghi ClickHouse trong 1 giờ qua",
            "Số lần ghi vào ClickHouse thất bại; đỏ từ 1 (cảnh báo "
            "DossierStreamClickHouseFlushFailing).",
            "sum(increase(dossier_stream_clickhouse_flush_failures_total[1h])) or vector(0)",
            unit="none",
            thresholds=steps("green", (1, "red")),
        ),
    )
    for panel in stats:
        lay.add(panel, w=4, h=4)


def _throughput(lay: Layout) -> None:
    lay.row("Thông lượng và độ trễ tiêu thụ")
    consumed = "dossier_stream_events_consumed_total"
    lay.add(
        prom_timeseries(
            "Sự kiện tiếp nhận mỗi giây, theo topic",
            "Tin nhắn đọc từ các topic đầu vào (hợp lệ và không hợp lệ).",
            [(f"sum by (topic) (rate({consumed}[{RATE}]))", "{{topic}}")],
            unit=PER_SECOND,
        ),
        12,
        8,
    )
    lay.add(
        prom_timeseries(
            "Độ trễ tiêu thụ, theo phân vùng",
            f"Offset cuối của phân vùng trừ vị trí đã đọc; đường nét đứt: {LAG_LIMIT} tin nhắn.",
            [
                (
                    "max by (topic, partition) (dossier_stream_consumer_lag_messages)",
                    "{{topic}}/{{partition}}",
                )
            ],
            unit=MESSAGES,
            thresholds=steps("green", (LAG_LIMIT, "orange")),
        ),
        12,
        8,
    )
    lay.add(
        prom_timeseries(
            "Sự kiện tiếp nhận mỗi giây, theo loại sự kiện",
            "invalid: tin nhắn không hợp lệ đã chuyển vào hàng thư lỗi.",
            [(f"sum by (event_type) (rate({consumed}[{RATE}]))", "{{event_type}}")],
            unit=PER_SECOND,
        ),
        12,
        8,
    )
    lay.add(
        prom_timeseries(
            "Sự kiện trùng lặp bỏ qua mỗi giây, theo topic",
            "Tin nhắn hợp lệ không làm thay đổi gì (sự kiện gửi lại).",
            [
                (
                    f"sum by (topic) (rate(dossier_stream_duplicates_ignored_total[{RATE}]))",
                    "{{topic}}",
                )
            ],
            unit=PER_SECOND,
        ),
        12,
        8,
    )


def _upstream(lay: Layout) -> None:
    lay.row("Nguồn đẩy dữ liệu: khóa sai và lô không giải mã được")
    lay.add(
        prom_timeseries(
            "Tin nhắn khóa sai chuyển phân vùng mỗi giây, theo topic",
            "Tin nhắn nằm trên phân vùng không phải của mã hồ sơ (hệ thống nguồn đặt khóa khác): "
            "được gửi lại vào topic phân vùng lại và xử lý ở đó, số liệu vẫn chính xác.",
            [(f"sum by (topic) (rate(dossier_stream_rerouted_total[{RATE}]))", "{{topic}}")],
            unit=PER_SECOND,
        ),
        12,
        8,
    )
    lay.add(
        prom_timeseries(
            "Phân vùng đang dừng ở lô không giải mã được",
            "1 khi một phân vùng dừng tại lô bản ghi không giải mã được (nhật ký của worker ghi "
            "offset và nguyên nhân); các phân vùng khác vẫn được xử lý.",
            [
                (
                    "max by (topic, partition) (dossier_stream_partition_undecodable)",
                    "{{topic}}/{{partition}}",
                )
            ],
            unit=COUNT,
            thresholds=steps("green", (1, "red")),
        ),
        12,
        8,
    )


def _latency(lay: Layout) -> None:
    lay.row("Độ trễ xử lý")
    for title, family in (
        ("Từ thời điểm sự kiện đến khi cập nhật trạng thái", "dossier_stream_event_apply_latency"),
        ("Từ thời điểm sự kiện đến khi lưu vào ClickHouse", "dossier_stream_event_flush_latency"),
    ):
        lay.add(
            prom_timeseries(
                title,
                "Phân vị trên tất cả worker; sự kiện đến muộn (nạp bù) làm tăng các giá trị này.",
                [
                    (
                        f"histogram_quantile({q}, sum by (le) "
                        f"(rate({family}_seconds_bucket[{RATE}])))",
                        f"phân vị {round(q * 100)}",
                    )
                    for _, q in QUANTILES
                ],
                unit=SECONDS,
            ),
            12,
            8,
        )


def _flushes(lay: Layout) -> None:
    lay.row("Ghi vào ClickHouse")
    duration = "dossier_stream_clickhouse_flush_duration_seconds"
    lay.add(
        prom_timeseries(
            "Thời gian mỗi lần ghi",
            "Thời gian của các lần ghi có dữ liệu, thành công hay không.",
            [
                (
                    f"histogram_quantile(0.95, sum by (le) (rate({duration}_bucket[{RATE}])))",
                    "phân vị 95",
                ),
                (
                    f"sum(rate({duration}_sum[{RATE}])) / sum(rate({duration}_count[{RATE}]))",
                    "trung bình",
                ),
            ],
            unit=SECONDS,
        ),
        8,
        8,
    )
    lay.add(
        prom_timeseries(
            "Số lần ghi và số dòng mỗi giây",
            "Số lần ghi có dữ liệu và số dòng đã ghi.",
            [
                (f"sum(rate({duration}_count[{RATE}]))", "lần ghi"),
                (f"sum(rate(dossier_stream_clickhouse_flushed_rows_total[{RATE}]))", "dòng"),
            ],
            unit=PER_SECOND,
        ),
        8,
        8,
    )
    lay.add(
        prom_timeseries(
            "Lỗi ghi ClickHouse",
            "Số lần ghi thất bại trong mỗi khoảng; worker thử lại và tạm dừng đọc tin nhắn.",
            [
                (
                    f"sum(increase(dossier_stream_clickhouse_flush_failures_total[{RATE}]))",
                    "lỗi ghi",
                )
            ],
            unit="none",
            thresholds=steps("green", (1, "red")),
            bars=True,
        ),
        8,
        8,
    )


def _dead_letters(lay: Layout) -> None:
    lay.row("Thư lỗi (dead letter)")
    consumed = "dossier_stream_events_consumed_total"
    lay.add(
        prom_timeseries(
            "Tỷ lệ thư lỗi trên đầu vào",
            f"Phần trăm tin nhắn đầu vào chuyển vào hàng thư lỗi; đường nét đứt: "
            f"{DEAD_LETTER_LIMIT}% (cảnh báo DossierStreamDeadLetterRateHigh).",
            [
                (
                    f"100 * sum(rate(dossier_stream_dead_letters_total[{RATE}])) "
                    f"/ sum(rate({consumed}[{RATE}]))",
                    "thư lỗi (%)",
                )
            ],
            unit="percent",
            thresholds=steps("green", (DEAD_LETTER_LIMIT, "red")),
        ),
        12,
        8,
    )
    lay.add(
        prom_timeseries(
            "Thư lỗi mỗi giây, theo lý do (Prometheus)",
            "Tin nhắn các worker chuyển vào hàng thư lỗi, theo mã lý do.",
            [
                (
                    f"sum by (reason) (rate(dossier_stream_dead_letters_total[{RATE}])) > 0",
                    "{{reason}}",
                )
            ],
            unit=PER_SECOND,
        ),
        12,
        8,
    )
    lay.add(
        timeseries_panel(
            "Thư lỗi đã ghi, theo mã lỗi (ClickHouse)",
            "Thư lỗi ghi trong bảng dead_letters, theo từng khoảng thời gian.",
            [ch_target(sql_dead_letters_over_time(), timeseries=True)],
            unit=EVENTS,
            bars=True,
        ),
        24,
        8,
    )
    lay.add(
        table_panel(
            "Thư lỗi theo lý do (ClickHouse)",
            "Mọi thư lỗi ghi nhận trong khoảng thời gian đang xem, theo mã lý do.",
            sql_dead_letters_by_reason(),
        ),
        24,
        8,
    )
    lay.add(
        table_panel(
            "Thư lỗi mới nhất (ClickHouse)",
            "Topic, phân vùng và offset gốc của các thư lỗi mới nhất, với lý do.",
            sql_recent_dead_letters(),
        ),
        24,
        10,
    )


def _open_dossiers(lay: Layout) -> None:
    lay.row("Hồ sơ đang giải quyết")
    lay.add(
        prom_timeseries(
            "Hồ sơ đang giải quyết, theo cấp",
            "Hồ sơ đã tiếp nhận, chưa giải quyết hoặc rút; và số hồ sơ trong đó đã quá hạn.",
            [
                ("sum by (level) (dossier_stream_open_dossiers)", "đang giải quyết {{level}}"),
                ("sum by (level) (dossier_stream_open_past_due_dossiers)", "quá hạn {{level}}"),
            ],
            unit=COUNT,
        ),
        24,
        8,
    )


SECTIONS: Final = [_now, _throughput, _upstream, _latency, _flushes, _dead_letters, _open_dossiers]
"""The rows of the dashboard in order; a section adds its row and panels to the layout."""


def build() -> dict[str, Any]:
    """The Pipeline health dashboard."""
    groups = alert_names()
    pipeline = groups.pop(PIPELINE_RULES)
    others = [name for names in groups.values() for name in names]
    lay = Layout()
    for section in SECTIONS:
        section(lay)
    return dashboard(
        "dossier-pipeline-health",
        "Tình trạng hệ thống xử lý",
        "Các worker xử lý luồng: thông lượng, độ trễ, thư lỗi, ghi vào ClickHouse; "
        "cảnh báo đang kích hoạt hiện trên các biểu đồ.",
        lay,
        [],
        refresh="30s",
        time_from="now-6h",
        annotations=[
            alert_annotation("Cảnh báo hệ thống xử lý", "|".join(pipeline), "red"),
            alert_annotation("Cảnh báo chỉ tiêu, đơn vị", "|".join(others), "orange"),
        ],
    )
