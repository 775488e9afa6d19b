"""ClickHouse views of the indicators, for live monitoring and dashboards.

Migration 2 (appended to :data:`dossier_stream.store.sink.MIGRATIONS`) adds
these; migration 9 makes both views filter the days before ``FINAL``:

* ``units`` — the unit registry (code, name, level, parent, era), written by
  ``dossier-stream init-db`` / ``worker`` / ``demo`` (:func:`write_units`), so
  SQL can roll units up by level and print names;
* ``unit_indicators(start, end)`` — a parametrised view: per unit, every
  indicator's numerator and denominator over ``[start, end]``, summed from the
  per-day counters (``SELECT * FROM unit_indicators(start='2024-09-15',
  end='2024-10-14')``);
* ``unit_indicators_live`` — the same for the windows of live monitoring,
  ending today in Asia/Ho_Chi_Minh: ``window`` is ``7d``, ``30d`` or ``ptd``
  (the monthly report period to date, from the 15th).

Both carry ``level`` and ``name`` from ``units``. Rates are never stored:
``sum(numerator) / sum(denominator)`` per level or city is exact.
``synchronisation`` needs the units' own reports and is left to the report.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from typing import TYPE_CHECKING, Any, Final, Protocol

from dossier_stream.core.indicators import INDICATORS

if TYPE_CHECKING:
    from dossier_stream.core.registry import UnitRegistry

__all__ = [
    "LIVE_WINDOWS",
    "MIGRATION",
    "PREWHERE_MIGRATION",
    "ViewStore",
    "indicator_rows",
    "write_units",
]


class ViewStore(Protocol):
    """What the views need of a store (:class:`~.sink.ClickHouseStore` is one)."""

    client: Any

    def insert_versioned(
        self, table: str, rows: Iterable[tuple[object, ...]], column_names: list[str]
    ) -> int:
        """Insert rows into a ``ReplacingMergeTree(version)`` table."""
        ...


LIVE_WINDOWS: Final = ("7d", "30d", "ptd")

_TUPLES: Final = ", ".join(
    f"('{ind.key}', '{ind.numerator}', '{ind.denominator}')"
    for ind in INDICATORS
    if ind.key != "synchronisation"
)  # constants of the code, not input


def _select(where: str, windows: str = "", days: str = "") -> str:
    window = "w.1 AS window, " if windows else ""
    prewhere = f" PREWHERE day BETWEEN {days}" if days else ""
    return f"""SELECT {window}c.unit_code AS unit_code, u.name AS name, u.level AS level,
           ind.1 AS indicator,
           sumIf(c.value, c.counter = ind.2) AS numerator,
           sumIf(c.value, c.counter = ind.3) AS denominator
    FROM (SELECT unit_code, day, counter, value FROM unit_day_counters FINAL{prewhere}) AS c
    {windows}
    ARRAY JOIN [{_TUPLES}] AS ind
    LEFT JOIN (SELECT code, argMax(name, version) AS name, argMax(level, version) AS level
               FROM units GROUP BY code) AS u ON u.code = c.unit_code
    WHERE {where}
    GROUP BY {"window, " if windows else ""}unit_code, name, level, indicator"""


_LIVE_WITH: Final = """WITH toDate(now('Asia/Ho_Chi_Minh')) AS today,
             if(toDayOfMonth(today) >= 15, toStartOfMonth(today) + 14,
                toStartOfMonth(today) - toIntervalMonth(1) + 14) AS ptd_start
        """
_LIVE_WINDOWS_JOIN: Final = (
    "ARRAY JOIN [('7d', today - 6), ('30d', today - 29), ('ptd', ptd_start)] AS w"
)


MIGRATION: Final = (
    2,
    "units table, indicator views (parametrised and live windows)",
    (
        """CREATE TABLE IF NOT EXISTS units (
            code String,
            name String,
            level LowCardinality(String),
            parent_code String,
            valid_from Nullable(Date),
            valid_to Nullable(Date),
            version UInt64
        ) ENGINE = ReplacingMergeTree(version)
        ORDER BY code""",
        "CREATE VIEW IF NOT EXISTS unit_indicators AS "
        + _select("c.day BETWEEN {start:Date} AND {end:Date}"),
        "CREATE VIEW IF NOT EXISTS unit_indicators_live AS\n        "
        + _LIVE_WITH
        + _select("c.day BETWEEN w.2 AND today", _LIVE_WINDOWS_JOIN),
    ),
)
"""``(version, description, statements)`` of migration 2."""

PREWHERE_MIGRATION: Final = (
    9,
    "indicator views: the days filtered before FINAL (PREWHERE)",
    # The views filtered the days after FINAL had merged every counter row of the
    # store: 2 s a query on the 30-million bench store, 0,2 s filtered before (the
    # day is in the sorting key, so a key's versions go or stay together).
    (
        "CREATE OR REPLACE VIEW unit_indicators AS "
        + _select("c.day BETWEEN {start:Date} AND {end:Date}", days="{start:Date} AND {end:Date}"),
        "CREATE OR REPLACE VIEW unit_indicators_live AS\n        "
        + _LIVE_WITH
        + _select(
            "c.day BETWEEN w.2 AND today",
            _LIVE_WINDOWS_JOIN,
            days="least(today - 29, ptd_start) AND today",
        ),
    ),
)
"""``(version, description, statements)`` of migration 9."""


def write_units(store: ViewStore, registry: UnitRegistry) -> int:
    """Replace the ``units`` table's rows with the registry's; return how many."""
    rows = [
        (u.code, u.name, u.level, u.parent_code or "", u.valid_from, u.valid_to) for u in registry
    ]
    columns = ["code", "name", "level", "parent_code", "valid_from", "valid_to"]
    return store.insert_versioned("units", rows, columns)


def indicator_rows(
    store: ViewStore, start: date, end: date
) -> list[tuple[str, str, str, str, int, int]]:
    """``unit_indicators(start, end)``: ``(unit, name, level, indicator, num, den)`` rows."""
    return [
        (u, n or "", lvl or "", ind, int(num), int(den))
        for u, n, lvl, ind, num, den in store.client.query(
            "SELECT unit_code, name, level, indicator, numerator, denominator "
            "FROM unit_indicators(start={start:Date}, end={end:Date}) "
            "ORDER BY unit_code, indicator",
            parameters={"start": start, "end": end},
        ).result_rows
    ]
