"""The two reads a report makes, aggregated in ClickHouse.

A report needs, per unit, each counter summed over the period's days, and the
number of dossiers open and past due at the period's end. Both are computed
by ClickHouse, so a year's report reads a few thousand rows, not a row per
(unit, day, counter) and a state per open dossier:

* :func:`counter_totals` gives exactly what
  :func:`~dossier_stream.core.indicators.sum_counters` gives on
  :meth:`ClickHouseStore.counters <dossier_stream.store.sink.ClickHouseStore.counters>`
  of the same days: the per-(unit, day, counter) sums that are not zero,
  summed per (unit, counter) (a (unit, counter) whose nonzero days cancel
  out listed with 0, as it is there), without grouping by day. Eras play
  no part: a dossier counts for the unit named in its events, whatever day
  the unit's era ends (``spec/units.md``), and the report chooses its units
  from the registry.
* :func:`open_past_due_counts` gives exactly what
  :func:`~dossier_stream.core.counters.open_past_due` gives on the decoded
  states of the dossiers open at the instant, from the named columns of
  ``dossier_facts`` (``DossierState.is_open_past_due`` written in SQL: the
  supplement pauses folded from ``supplement_at`` / ``supplement_requested``,
  which are sorted as the state's supplements are). Instants are compared as
  integer microseconds since the epoch, as Python compares aware datetimes.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from dossier_stream.store.sink import ClickHouseStore

__all__ = ["counter_totals", "micros", "open_past_due_counts"]

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO: Final = timedelta(microseconds=1)

_COUNTER_TOTALS: Final = """SELECT unit_code, counter, sum(value), countIf(value != 0)
FROM unit_day_counters FINAL
PREWHERE day BETWEEN {start:Date} AND {end:Date}
GROUP BY unit_code, counter"""
"""Per (unit, counter): the total and how many (source, day) rows are not zero.

The days are filtered before ``FINAL`` merges the versions (``PREWHERE``): ``day`` is
in the sorting key, so all versions of a key are kept or dropped together. A filter
on any column outside the key must stay in ``WHERE``: before ``FINAL`` it could drop
a newer version and let an older one win. On a store of many years the merge then
reads the period's rows only (bench/README, twelfth round)."""

_NONZERO_DAYS: Final = """SELECT DISTINCT unit_code, counter
FROM (
    SELECT unit_code, day, counter, sum(value) AS v
    FROM unit_day_counters FINAL
    PREWHERE day BETWEEN {start:Date} AND {end:Date}
    WHERE has({keys:Array(Tuple(String, String))}, (toString(unit_code), toString(counter)))
    GROUP BY unit_code, day, counter
    HAVING v != 0
)"""
"""Which of ``keys`` have a day whose sum over the sources is not zero."""

_OPEN_PAST_DUE: Final = """SELECT unit_code, count()
FROM (
    SELECT
        unit_code,
        arrayCount(
            (at, requested) -> requested != 0 AND toUnixTimestamp64Micro(at) <= {t_us:Int64},
            supplement_at,
            supplement_requested) AS requests_by_t,
        toUnixTimestamp64Micro(assumeNotNull(due_at)) AS due_us,
        arrayFold(
            (acc, at, requested) -> if(at > {t_us:Int64}, acc,
                if(requested != 0,
                    if(acc.3 = 0, (acc.1, at, toUInt8(1)), acc),
                    if(acc.3 = 0, acc, (acc.1 + at - acc.2, toInt64(0), toUInt8(0))))),
            arrayMap(x -> toUnixTimestamp64Micro(x), supplement_at),
            supplement_requested,
            (toInt64(0), toInt64(0), toUInt8(0))) AS pause
    FROM dossier_facts FINAL
    WHERE received_at IS NOT NULL
        AND toUnixTimestamp64Micro(assumeNotNull(received_at)) <= {t_us:Int64}
        AND (completed_at IS NULL
            OR toUnixTimestamp64Micro(assumeNotNull(completed_at)) > {t_us:Int64})
        AND (withdrawn_at IS NULL
            OR toUnixTimestamp64Micro(assumeNotNull(withdrawn_at)) > {t_us:Int64})
)
WHERE pause.3 = 0 AND (requests_by_t > 1 OR {t_us:Int64} > due_us + pause.1)
GROUP BY unit_code"""
"""``pause`` = (closed pauses µs, start µs of the pause open at ``t_us``, 1 if one is open):
``DossierState.pause``/``paused_at`` up to ``t_us`` (a supplement after it is left out)."""


def micros(at: datetime) -> int:
    """An aware instant as integer microseconds since the epoch (exact, no float)."""
    return (at - _EPOCH) // _MICRO


def counter_totals(store: ClickHouseStore, start: date, end: date) -> dict[str, dict[str, int]]:
    """``{unit_code: {counter: total}}`` over the days [start, end], every source.

    Exactly ``sum_counters(store.counters(start, end), Period(start, end))``,
    whose keys are the (unit, counter) with a day whose sum over the sources
    is not zero. One pass sums per (unit, counter): a total that is not zero
    has such a day, a total of zero made of zero rows only has none. Only a
    total of zero made of rows that cancel out (counters never go below zero
    today, so none in practice) is settled day by day, in a second read of
    those keys alone.
    """
    period = {"start": start, "end": end}
    out: dict[str, dict[str, int]] = {}
    cancelled: list[tuple[str, str]] = []
    for unit, counter, total, nonzero in store.client.query(
        _COUNTER_TOTALS, parameters=period
    ).result_rows:
        if total:
            out.setdefault(unit, {})[counter] = int(total)
        elif nonzero:
            cancelled.append((unit, counter))
    if cancelled:
        rows = store.client.query(
            _NONZERO_DAYS, parameters={**period, "keys": cancelled}
        ).result_rows
        for unit, counter in rows:
            out.setdefault(unit, {})[counter] = 0
    return out


def open_past_due_counts(store: ClickHouseStore, at: datetime) -> dict[str, int]:
    """``{unit_code: n}``: dossiers open at ``at`` (aware) and past their effective due time.

    Exactly ``open_past_due([loads_dossier(s) for s in store.open_states(at)], at)``.
    """
    if at.tzinfo is None:
        raise ValueError("at must be an aware datetime")
    rows = store.client.query(_OPEN_PAST_DUE, parameters={"t_us": micros(at)}).result_rows
    return {unit: int(n) for unit, n in rows if n}
