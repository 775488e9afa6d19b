"""Generate the Grafana dashboards of dossier-stream (``deploy/grafana/dashboards/*.json``).

The dashboards are code: edit ``boards/*.py`` (one module per dashboard) or the
building blocks in ``dashkit/``, then run this script to rewrite the JSON that
Grafana provisions (``tests/deploy/test_grafana.py`` fails when they differ)::

    .venv/bin/python deploy/grafana/generate.py
    .venv/bin/python deploy/grafana/generate.py --check    # exit 1 if the JSON is stale

Every module of ``boards/`` is a dashboard: it defines ``FILE`` (the JSON file
name) and ``build()`` (the dashboard). A new dashboard is a new module there;
a new panel is one call of a :mod:`dashkit.panels` builder placed with
``Layout.add``. Every datasource is referenced by its pinned uid (the ones of
``provisioning/datasources/datasources.yml``). Titles, descriptions, legends
and units are in Vietnamese, worded as the city's reports word them.

* *Tổng quan thành phố* (City overview, ClickHouse): each indicator city-wide
  and per level for the city's period to date (15th → 14th) and the last 30
  days, against the targets; the units below each target per level; overdue
  against the alert's 5 % threshold; the units with most dossiers open past due.
* *Chi tiết đơn vị* (Unit drill-down, ClickHouse): variables ``level`` →
  ``unit``; the unit's indicators, daily trends, volumes and dossiers open past due.
* *Tình trạng hệ thống xử lý* (Pipeline health, Prometheus plus ClickHouse for
  dead letters): workers from ``up``, throughput, lag, latency, flushes, dead
  letters, open dossiers; alert thresholds and firing alerts as annotations.

Rates are computed on the exact sums of the ``unit_day_counters`` numerators
and denominators (``FINAL``, as ``ClickHouseStore`` reads them), targets are
compared on exact fractions, as the report does; SQL reads named columns only.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any, Final

HERE: Final = Path(__file__).resolve().parent
DASHBOARD_DIR: Final = HERE / "dashboards"
BOARDS_DIR: Final = HERE / "boards"
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))  # dashkit, for the board modules

from dashkit.sql import LABELS, RATES, TARGETED  # noqa: E402

__all__ = ["LABELS", "RATES", "TARGETED", "board_modules", "build", "main", "render"]


def _load(path: Path) -> ModuleType:
    name = f"dossier_grafana_board_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while being created
    spec.loader.exec_module(module)
    return module


def board_modules() -> dict[str, ModuleType]:
    """Every dashboard module of ``boards/`` by the file name it writes."""
    modules = {}
    for path in sorted(BOARDS_DIR.glob("*.py")):
        if path.name.startswith("_"):
            continue
        module = _load(path)
        if module.FILE in modules:
            raise ValueError(f"{path}: {module.FILE} is written by another board too")
        modules[module.FILE] = module
    return modules


def build() -> dict[str, dict[str, Any]]:
    """Every dashboard by file name."""
    return {name: module.build() for name, module in board_modules().items()}


def render(board: dict[str, Any]) -> str:
    """The JSON text of a dashboard as committed."""
    return json.dumps(board, indent=2, ensure_ascii=False) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n", 1)[0])
    parser.add_argument("--out", type=Path, default=DASHBOARD_DIR, help="output directory")
    parser.add_argument("--check", action="store_true", help="exit 1 if a file would change")
    args = parser.parse_args(argv)
    stale = []
    for name, board in build().items():
        path = args.out / name
        text = render(board)
        if path.exists() and path.read_text(encoding="utf-8") == text:
            continue
        stale.append(path)
        if not args.check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
    for path in stale:
        print(f"{'stale' if args.check else 'wrote'}: {path}", file=sys.stderr)
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
