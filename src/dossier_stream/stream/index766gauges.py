"""Prometheus gauges of the city's estimated QĐ 766 score, per group, for the current period.

Families (on the worker's registry, set at every metrics refresh from the
live figures of :mod:`dossier_stream.stream.livefigures`):

* ``dossier_stream_index766_group_points{group}``: the group's estimated
  points over the current monthly period to date (``NaN`` while the group has
  no dossiers, so no alert compares it);
* ``dossier_stream_index766_group_max_points{group}``: the points that could
  be scored (a sub-indicator without dossiers leaves the maximum);
* ``dossier_stream_index766_group_alert_below_points{group}``: the profile's
  ``alert_below`` of the group; the rule ``DossierIndex766GroupBelowThreshold``
  fires when the points stay below it.

Only the groups the stream observes are exported (the profile's ``input``
groups come from published scores). ``group`` is the profile's group key
(``tien_do``, ``truc_tuyen``, ``so_hoa``, ``hai_long`` in the bundled profile).

Several workers: each scores the dossiers of the partitions it owns. Dossiers
are spread over partitions by a hash of their id, so each worker's score is an
estimate of the city's from a sample of its dossiers (exactly the city's with
one worker, as in the compose stack and the demo); the alert takes the lowest.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Gauge

from dossier_stream.core.index766 import Profile
from dossier_stream.core.index766_score import score, totals_from_indicators
from dossier_stream.stream.livefigures import LiveSnapshot

__all__ = ["Index766Gauges"]

_PREFIX = "dossier_stream_index766_group_"


class Index766Gauges:
    """The three gauge families of the module docstring, for one profile."""

    def __init__(self, registry: CollectorRegistry, profile: Profile) -> None:
        self.profile = profile
        self.points = Gauge(
            f"{_PREFIX}points", "Estimated QĐ 766 points of the city, current period to date.",
            ["group"], registry=registry,
        )  # fmt: skip
        self.max_points = Gauge(
            f"{_PREFIX}max_points", "QĐ 766 points the group could score (groups with dossiers).",
            ["group"], registry=registry,
        )  # fmt: skip
        alert = Gauge(
            f"{_PREFIX}alert_below_points", "Profile threshold under which the group alerts.",
            ["group"], registry=registry,
        )  # fmt: skip
        for group in profile.groups:
            if not group.input:
                alert.labels(group.key).set(float(group.alert_below))
                self.points.labels(group.key).set(float("nan"))
                self.max_points.labels(group.key).set(0)

    def update(self, snap: LiveSnapshot) -> None:
        """Score the snapshot's units as one city and set the gauges."""
        per_unit = totals_from_indicators(
            (ind, unit, num, den) for (ind, unit, _level), (num, den) in snap.indicators.items()
        )
        city: dict[str, int] = {}
        for totals in per_unit.values():
            for name, value in totals.items():
                city[name] = city.get(name, 0) + value
        result = score(self.profile, {"city": city}, {"city": "city"})
        for group in result.city.groups:
            if group.group.input:
                continue
            points = group.points
            self.points.labels(group.group.key).set(
                float("nan") if points is None else float(points)
            )
            self.max_points.labels(group.group.key).set(float(group.max_points))
