"""ClickHouse queries more than one dashboard shows."""

from __future__ import annotations

from dashkit.sql import LEVEL_WORDS, UNITS, level_word, lit

__all__ = [
    "open_past_due_rows",
    "open_past_due_units",
    "sql_level_variable",
    "sql_unit_variable",
]


def open_past_due_rows(extra: str = "") -> str:
    """Dossiers open and past due at ``t_us`` (µs, defined by the caller), with ``pause``.

    Exactly as ``DossierState.is_open_past_due``: received by the end of the
    time range, not completed or withdrawn by then, not waiting for a
    supplement, and either asked for supplements more than once by the end of
    the range (overdue by the national rule; later requests do not count) or
    past the stated due time plus the closed supplement pauses. The pauses
    come from the named columns ``supplement_at`` / ``supplement_requested``
    (sorted by time); ``pause`` is (closed pause µs, start µs of a pause still
    open or 0). ``extra``: more ``AND`` conditions.
    """
    return f"""SELECT dossier_id, unit_code, received_at, due_at,
        requests_by_t AS supplement_requests, pause
    FROM (
        SELECT
            dossier_id, unit_code, received_at, due_at,
            arrayCount(
                (at, requested) -> requested AND toUnixTimestamp64Micro(at) <= t_us,
                supplement_at,
                supplement_requested) AS requests_by_t,
            arrayFold(
                (acc, at, requested) -> if(at > t_us, acc,
                    if(requested, if(acc.2 = 0, (acc.1, at), acc),
                       if(acc.2 = 0, acc, (acc.1 + at - acc.2, toInt64(0))))),
                arrayMap(x -> toUnixTimestamp64Micro(x), supplement_at),
                supplement_requested,
                (toInt64(0), toInt64(0))) AS pause
        FROM dossier_facts FINAL
        WHERE received_at <= $__toTime_ms
            AND (completed_at IS NULL OR completed_at > $__toTime_ms)
            AND (withdrawn_at IS NULL OR withdrawn_at > $__toTime_ms){extra}
    )
    WHERE pause.2 = 0 AND (requests_by_t > 1
        OR t_us > toUnixTimestamp64Micro(assumeNotNull(due_at)) + pause.1)"""


def open_past_due_units(limit: int = 30) -> str:
    """Units with most dossiers open and past due at the end of the time range."""
    return f"""WITH toUnixTimestamp64Micro($__toTime_ms) AS t_us
SELECT
    o.unit_code AS "Mã đơn vị",
    u.name AS "Đơn vị",
    {level_word("u.level")} AS "Cấp",
    count() AS "Hồ sơ chưa giải quyết, quá hạn",
    countIf(o.supplement_requests > 1) AS "Trong đó: yêu cầu bổ sung quá 1 lần"
FROM (
    {open_past_due_rows()}
) AS o
INNER JOIN {UNITS} AS u ON u.code = o.unit_code
GROUP BY o.unit_code, u.name, u.level
ORDER BY count() DESC, o.unit_code
LIMIT {limit}"""


def sql_level_variable() -> str:
    """Levels with data: value = the level code, text = its Vietnamese name."""
    return f"""SELECT level AS value, {level_word("level")} AS text
FROM {UNITS}
WHERE code IN (SELECT DISTINCT unit_code FROM unit_day_counters)
GROUP BY level
ORDER BY indexOf([{", ".join(map(lit, LEVEL_WORDS))}], level)"""


def sql_unit_variable() -> str:
    return f"""SELECT u.code AS value, concat(u.code, ' — ', u.name) AS text
FROM {UNITS} AS u
WHERE u.level = ${{level:sqlstring}}
    AND u.code IN (SELECT DISTINCT unit_code FROM unit_day_counters)
ORDER BY u.code"""
