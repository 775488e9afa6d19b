"""The city's report forms, built from the report structure as :class:`Document` s.

* :func:`~.monthly.monthly` — like seed 000 (Hải Phòng, tháng 10/2024): an
  administrative document (Nghị định 30/2020/NĐ-CP) with section 1 in prose,
  Bảng 1-4, sections 2 and 3, the signatory and the appendices.
* :func:`~.weekly.weekly` — the weekly notice (Friday → Thursday).

Decisions the seeds imply:

* Rows are sorted as the seed sorts them: by the exact rate, highest first,
  then by name in code-point order (the seed's order of equal rates).
* Bảng 1 and 2 list the units that received dossiers of online services
  (a department without any — the city inspectorate in October 2024 — is not
  listed, as in the seed); Bảng 3 lists every district, 0 % and a footnote for
  a district without communes.
* Every "x/y đơn vị" counts among the same units (:meth:`~.view.ReportView.counted`).
"""

from __future__ import annotations

from typing import Final

from dossier_stream.core.periods import Period
from dossier_stream.reports.index766 import index766
from dossier_stream.reports.monthly import monthly
from dossier_stream.reports.view import period_label
from dossier_stream.reports.weekly import weekly

__all__ = ["TEMPLATES", "default_template", "monthly", "period_label", "weekly"]


def default_template(period: Period) -> str:
    """``weekly`` for a Friday-to-Thursday week, else ``monthly``."""
    is_week = len(period) == 7 and period.start.weekday() == 4
    return "weekly" if is_week else "monthly"


TEMPLATES: Final = {"monthly": monthly, "weekly": weekly, "index766": index766}
"""Template name → builder ``(report, registry) -> Document``."""
