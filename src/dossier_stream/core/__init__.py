"""The functional core: the event contract, the unit registry, working days, periods,
the dossier lifecycle fold, counters, indicators and the per-event engine.

Plain Python with no I/O but reading the bundled data files; it imports nothing of
the other subpackages.
"""

from __future__ import annotations

from dossier_stream.core.counters import (
    COMPLETED_COUNTERS,
    FEEDBACK_COUNTERS,
    RECEIVED_COUNTERS,
    CounterKey,
    accumulate,
    dossier_counters,
    feedback_counters,
    open_past_due,
)
from dossier_stream.core.engine import DeadLetter, Engine, Outcome, PipelineStats
from dossier_stream.core.events import DossierEvent, InvalidEvent, UnitReportedTotals, parse_event
from dossier_stream.core.formatting import format_count, format_date, format_rate, rate_percent
from dossier_stream.core.indicators import INDICATORS, Indicator, build_report, sum_counters
from dossier_stream.core.lifecycle import DossierState, FeedbackState
from dossier_stream.core.periods import Period, monthly_report, parse_period, rolling
from dossier_stream.core.registry import (
    AmbiguousUnitName,
    RegistryError,
    Unit,
    UnitRegistry,
    UnknownUnitName,
)
from dossier_stream.core.topics import CatalogError, TopicCatalog, load_catalog
from dossier_stream.core.workdays import VN_TZ, CalendarError, WorkCalendar

__all__ = [
    "COMPLETED_COUNTERS",
    "FEEDBACK_COUNTERS",
    "INDICATORS",
    "RECEIVED_COUNTERS",
    "VN_TZ",
    "AmbiguousUnitName",
    "CalendarError",
    "CatalogError",
    "CounterKey",
    "DeadLetter",
    "DossierEvent",
    "DossierState",
    "Engine",
    "FeedbackState",
    "Indicator",
    "InvalidEvent",
    "Outcome",
    "Period",
    "PipelineStats",
    "RegistryError",
    "TopicCatalog",
    "Unit",
    "UnitRegistry",
    "UnitReportedTotals",
    "UnknownUnitName",
    "WorkCalendar",
    "accumulate",
    "build_report",
    "dossier_counters",
    "feedback_counters",
    "format_count",
    "format_date",
    "format_rate",
    "load_catalog",
    "monthly_report",
    "open_past_due",
    "parse_event",
    "parse_period",
    "rate_percent",
    "rolling",
    "sum_counters",
]
