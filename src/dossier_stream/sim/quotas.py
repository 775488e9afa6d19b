"""How many dossiers of each kind a simulated unit must have in the period.

A :class:`UnitQuota` holds exact counts (received, online, of online services,
completed with which files, overdue, online payment transactions); the
simulator turns each quota into dossier lives that produce exactly those
counts. Quotas come from a *calibration* — the counts behind a published
report, bundled as CSV in ``data/calibration/`` (built by
``tools/calibrate_haiphong_2024_10.py`` from seed 000, tháng 10/2024) — or are
drawn at random for any other period (:func:`random_quotas`).
"""

from __future__ import annotations

import csv
import io
import math
import random
from dataclasses import dataclass, fields
from importlib import resources
from typing import Final

from dossier_stream.core.periods import Period, monthly_report
from dossier_stream.core.registry import Unit

__all__ = ["CALIBRATIONS", "UnitQuota", "calibration_for", "load_calibration", "random_quotas"]

CALIBRATIONS: Final = {"haiphong-2024-10": monthly_report(2024, 10)}
"""Bundled calibrations and the report period each reproduces."""

_LEVEL_MEDIAN: Final = {"department": 60.0, "district": 25.0, "commune": 6.0}


@dataclass(frozen=True, slots=True)
class UnitQuota:
    """Exact counts of one unit over the period (see ``spec/indicators.md``).

    Attributes:
        code: unit code.
        received: dossiers received in the period.
        received_online: of those, received online.
        received_oos: of those, of a procedure offered online.
        received_oos_online: of a procedure offered online and received online.
        completed: dossiers completed in the period (received in it or before).
        completed_component: completed with component files.
        completed_result: completed with a result file.
        completed_both: completed with both.
        completed_overdue: completed after the effective due time.
        payment_tx_online: online payment transactions paid in the period.
    """

    code: str
    received: int
    received_online: int
    received_oos: int
    received_oos_online: int
    completed: int
    completed_component: int
    completed_result: int
    completed_both: int
    completed_overdue: int
    payment_tx_online: int

    def __post_init__(self) -> None:
        problems = [
            (self.received_online > self.received, "received_online > received"),
            (self.received_oos > self.received, "received_oos > received"),
            (
                self.received_oos_online > min(self.received_oos, self.received_online),
                "received_oos_online > received_oos or received_online",
            ),
            (
                self.received_online - self.received_oos_online > self.received - self.received_oos,
                "more online dossiers outside online services than such dossiers",
            ),
            (
                self.completed_both > min(self.completed_component, self.completed_result)
                or self.completed_component + self.completed_result - self.completed_both
                > self.completed,
                "file counts do not fit the completed dossiers",
            ),
            (self.completed_overdue > self.completed, "completed_overdue > completed"),
            (self.payment_tx_online > self.received, "more online transactions than dossiers"),
        ]
        bad = [what for cond, what in problems if cond]
        if bad or min(getattr(self, f.name) for f in fields(self)[1:]) < 0:
            raise ValueError(f"unit {self.code}: inconsistent quota: {'; '.join(bad) or '< 0'}")


def load_calibration(name: str) -> dict[str, UnitQuota]:
    """Load a bundled calibration (``haiphong-2024-10``) as ``{unit_code: quota}``.

    Raises:
        KeyError: no calibration of that name is bundled.
    """
    if name not in CALIBRATIONS:
        known = ", ".join(sorted(CALIBRATIONS))
        raise KeyError(f"no calibration named {name!r}; bundled: {known}")
    path = resources.files("dossier_stream").joinpath("data", "calibration", f"{name}.csv")
    out: dict[str, UnitQuota] = {}
    for row in csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"))):
        code = row.pop("code")
        row.pop("level")
        out[code] = UnitQuota(code, **{k: int(v) for k, v in row.items()})
    return out


def calibration_for(period: Period) -> str | None:
    """The name of the bundled calibration of exactly ``period``, if any."""
    return next((name for name, p in CALIBRATIONS.items() if p == period), None)


def random_quotas(units: list[Unit], dossiers: int, rng: random.Random) -> dict[str, UnitQuota]:
    """Quotas for any period: ``dossiers`` received, spread over ``units``.

    Volumes are log-normal (sigma 0.6) around a level median (department 60,
    district 25, commune 6). Per unit: 75 % of dossiers are of online
    services, received online at 70 % (others 8 %); completions are 70 % of
    receptions (files: components 85 %, results 75 %, independently); one
    unit in ten completes 1-8 % late, the others on time (as in the published
    reports: a few units with overdue dossiers, most with none); 60 % of units
    take online payments, for up to 30 % of dossiers.
    """
    weights = [rng.lognormvariate(math.log(_LEVEL_MEDIAN[u.level]), 0.6) for u in units]
    counts = dict.fromkeys((u.code for u in units), 0)
    for unit in rng.choices(units, weights=weights, k=dossiers):
        counts[unit.code] += 1

    def some(n: int, p: float) -> int:
        return sum(rng.random() < p for _ in range(n))

    out = {}
    for code, received in counts.items():
        oos = some(received, 0.75)
        oos_online = some(oos, 0.7)
        online = oos_online + some(received - oos, 0.08)
        completed = some(received, 0.7)
        component, result = some(completed, 0.85), some(completed, 0.75)
        both = max(0, component + result - completed) + some(
            min(component, result) - max(0, component + result - completed), 0.6
        )
        tx = some(received, rng.uniform(0.05, 0.3)) if rng.random() < 0.6 else 0
        late = rng.uniform(0.01, 0.08) if rng.random() < 0.1 else 0.0
        overdue = some(completed, late)
        out[code] = UnitQuota(
            code, received, online, oos, oos_online, completed, component, result, both,
            overdue, tx,
        )  # fmt: skip
    return out
