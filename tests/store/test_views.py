"""The ClickHouse indicator views and ``report --rolling`` agree with the report."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import date, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from dossier_stream.core.indicators import build_report
from dossier_stream.core.periods import Period, monthly_report
from dossier_stream.core.registry import UnitRegistry
from dossier_stream.core.workdays import VN_TZ, WorkCalendar
from dossier_stream.sim.simulate import SimConfig, simulate
from dossier_stream.store.sink import MIGRATIONS, ClickHouseStore, connect
from dossier_stream.store.views import LIVE_WINDOWS, indicator_rows, write_units

OCTOBER = monthly_report(2024, 10)


@pytest.fixture
def store(tmp_path: Path, registry: UnitRegistry, calendar: WorkCalendar) -> ClickHouseStore:
    store = ClickHouseStore(connect(f"chdb://{tmp_path / 'ch'}"))
    store.migrate()
    write_units(store, registry)
    sim = simulate(SimConfig(OCTOBER, seed=4, dossiers=1_500, feedback=20), registry, calendar)
    store.write_counters(("s", u, d, c, v) for (u, d, c), v in sim.truth.items())
    return store


def test_parametrised_view_equals_the_report(
    store: ClickHouseStore, registry: UnitRegistry
) -> None:
    period = Period(date(2024, 10, 1), date(2024, 10, 14))
    report = build_report(store.counters(period.start, period.end), registry, period)
    rows = indicator_rows(store, period.start, period.end)
    assert rows
    for unit, name, level, indicator, num, den in rows:
        fig = report["indicators"][indicator]["units"][unit]
        assert (num, den) == (fig["numerator"], fig["denominator"]), (unit, indicator)
        assert (name, level) == (registry.get(unit).name, registry.get(unit).level)
    assert "synchronisation" not in {r[3] for r in rows}
    store.close()


def test_live_view_windows_end_today(store: ClickHouseStore) -> None:
    store.write_counters(
        [
            ("t", "HP-SO-TUPHAP", _today() - timedelta(days=d), "received", 1)
            for d in (0, 6, 7, 29, 30)
        ]
    )
    rows = store.client.query(
        "SELECT window, sum(denominator) FROM unit_indicators_live "
        "WHERE indicator = 'online_submission' AND unit_code = 'HP-SO-TUPHAP' GROUP BY window"
    ).result_rows
    got = dict(rows)
    assert set(got) <= set(LIVE_WINDOWS)
    assert got["7d"] == 2 and got["30d"] == 4  # days 0 and 6; 0, 6, 7 and 29
    # the simulated October 2024 is far in the past: in no live window
    store.close()


def _today() -> date:
    return datetime.now(VN_TZ).date()


@pytest.mark.integration
def test_report_rolling_command(tmp_path: Path, store: ClickHouseStore) -> None:
    dsn = f"chdb://{tmp_path / 'ch'}"
    store.close()
    env = {**os.environ, "DOSSIER_CLICKHOUSE_DSN": dsn, "DOSSIER_LOG_LEVEL": "WARNING"}
    out = subprocess.run(
        [sys.executable, "-m", "dossier_stream", "report", "--rolling", "7d",
         "--as-of", "2024-10-14", "--format", "json"],
        env=env, capture_output=True, timeout=120, check=True, cwd=tmp_path,
    ).stdout  # fmt: skip
    report = orjson.loads(out)
    assert report["period"] == {"from": "2024-10-08", "to": "2024-10-14"}
    assert report["received"]["city"] > 0


def test_an_older_store_gets_views_that_filter_before_final(tmp_path: Path) -> None:
    """Migration 9 replaces both views; what they give does not change."""
    store = ClickHouseStore(connect(f"chdb://{tmp_path / 'old'}"))
    try:
        store.migrate(before=9)
        today = _today()
        store.write_counters(
            [("t", "HP-SO-TUPHAP", today - timedelta(days=d), "received", 1) for d in (0, 6, 40)]
            + [("t", "HP-SO-TUPHAP", date(2024, 10, 1), "received_online", 3)]
        )

        def read() -> tuple[object, object, str]:
            period = indicator_rows(store, date(2024, 10, 1), date(2024, 10, 14))
            live = store.client.query(
                "SELECT window, indicator, numerator, denominator FROM unit_indicators_live "
                "ORDER BY window, indicator, unit_code"
            ).result_rows
            texts = store.client.query(
                "SELECT create_table_query FROM system.tables WHERE name LIKE 'unit_indicators%'"
            ).result_rows
            return period, live, " ".join(t for (t,) in texts)

        period, live, texts = read()
        assert "PREWHERE" not in texts
        assert store.migrate() == [v for v, _, _ in MIGRATIONS if v >= 9]
        after = read()
        assert after[:2] == (period, live)
        assert after[2].count("PREWHERE") == 2
        assert ("online_submission", 3, 0) in {(r[3], r[4], r[5]) for r in period}
        assert {(w, d) for w, i, _, d in live if i == "online_submission"} >= {("7d", 2)}
    finally:
        store.close()
