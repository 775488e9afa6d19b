"""Scoring the QĐ 766 index from counters: per unit, per level, city-wide, exactly.

:func:`score` is pure: a :class:`~dossier_stream.core.index766.Profile`, each
unit's counter totals over a period and its level in, an :class:`IndexResult`
out. Any period the reports support works the same (the caller sums the
counters of the period, e.g. from the report structure with
:func:`totals_from_report`); the worker's live figures of the current period
give the live score.

Definitions (exact :class:`~fractions.Fraction` arithmetic throughout):

* A sub-indicator of an entity (a unit, a level, the city) has the rate
  ``numerator / denominator`` of its counters summed over the entity's units
  (the profile's ``pooled`` aggregation: the portal scores a province from all
  its dossiers) and earns ``rule.points(rate)``. Without dossiers
  (denominator 0) it is not scored: no points, and its points leave the
  entity's maximum.
* A group's points are the sum of its sub-indicators'; an ``input`` group
  takes the published score of the period for the city (units and levels are
  not scored on it) and, without one, is left out: the total is then shown
  over the maximum that could be scored (``complete`` is false).
* **A unit's share of the city** (:class:`UnitShare`): on each sub-indicator
  the points the city lost, ``L``, are split among the units in proportion
  to their dossiers that do not count, ``d = denominator − numerator``; a
  unit's share of the points is ``points × its denominator / the city's −
  L × d / Σd``. The shares add up to the city's points and loss exactly; on
  a linear rule a unit's share of the loss is ``d × points / city's
  denominator`` — its shortfall times the weight of one dossier.
* **Winning points back**: per sub-indicator, the number of the entity's
  dossiers that do not count today which would have to count (be completed
  on time, be paid online, be digitized…) to reach the next threshold of the
  rule (``to_next``) and full points (``to_full``): the smallest ``k`` with
  ``rule((numerator + k) / denominator)`` at that level, in integers.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Final

from dossier_stream.core.index766 import (
    Group,
    Profile,
    Published,
    SubIndicator,
    as_float,
    dossiers_to_reach,
    format_points,
)
from dossier_stream.core.indicators import INDICATORS
from dossier_stream.core.registry import LEVELS

__all__ = [
    "EntityScore",
    "GroupScore",
    "IndexResult",
    "SubScore",
    "UnitShare",
    "score",
    "totals_from_indicators",
    "totals_from_report",
]

_ZERO: Final = Fraction(0)
_BY_KEY: Final = {ind.key: ind for ind in INDICATORS}


@dataclass(frozen=True, slots=True)
class SubScore:
    """One sub-indicator of one entity."""

    sub: SubIndicator
    numerator: int
    denominator: int

    @property
    def rate(self) -> Fraction | None:
        return Fraction(self.numerator, self.denominator) if self.denominator else None

    @property
    def points(self) -> Fraction | None:
        """Points earned; ``None`` without dossiers."""
        rate = self.rate
        return None if rate is None else self.sub.rule.points(rate, self.sub.points)

    @property
    def max_points(self) -> Fraction:
        """The sub-indicator's points when scored, else 0."""
        return _ZERO if self.denominator == 0 else self.sub.points

    @property
    def lost(self) -> Fraction:
        return self.max_points - (self.points or _ZERO)

    @property
    def shortfall(self) -> int:
        """Dossiers that do not count (``denominator − numerator``)."""
        return self.denominator - self.numerator

    def _to(self, target: Fraction | None) -> int | None:
        if target is None or self.denominator == 0:
            return None
        return dossiers_to_reach(self.numerator, self.denominator, target)

    @property
    def next_target(self) -> tuple[Fraction, Fraction] | None:
        """``(rate, points)`` of the next threshold; ``None`` at full points or unscored."""
        rate = self.rate
        return None if rate is None else self.sub.rule.next_target(rate, self.sub.points)

    @property
    def to_next(self) -> int | None:
        """More dossiers counting needed for the next threshold (full points on a linear rule)."""
        nxt = self.next_target
        return None if nxt is None else self._to(nxt[0])

    @property
    def to_full(self) -> int | None:
        """More dossiers counting needed for full points; 0 at full, ``None`` unscored."""
        if self.denominator == 0:
            return None
        rule = self.sub.rule
        full = rule.full_at if rule.kind == "linear" else rule.steps[-1][0]
        return self._to(full)

    def to_json(self) -> dict[str, Any]:
        nxt = self.next_target
        return {
            "numerator": self.numerator,
            "denominator": self.denominator,
            "rate": as_float(None if self.rate is None else self.rate * 100, 2),
            "points": as_float(self.points),
            "points_text": None if self.points is None else format_points(self.points),
            "max_points": as_float(self.max_points),
            "lost": as_float(self.lost),
            "shortfall": self.shortfall,
            "next_points": None if nxt is None else as_float(nxt[1]),
            "to_next": self.to_next,
            "to_full": self.to_full,
            "estimate": self.sub.estimate,
        }


@dataclass(frozen=True, slots=True)
class GroupScore:
    """One group of one entity: from the stream, a published input, or missing."""

    group: Group
    subs: tuple[SubScore, ...] = ()
    published: Fraction | None = None

    @property
    def source(self) -> str:
        """``stream``, ``input`` (published score) or ``missing`` (input group without one)."""
        if not self.group.input:
            return "stream"
        return "missing" if self.published is None else "input"

    @property
    def points(self) -> Fraction | None:
        if self.group.input:
            return self.published
        scored = [s.points for s in self.subs if s.points is not None]
        return sum(scored, _ZERO) if scored else None

    @property
    def max_points(self) -> Fraction:
        if self.group.input:
            return _ZERO if self.published is None else self.group.max_points
        return sum((s.max_points for s in self.subs), _ZERO)

    @property
    def lost(self) -> Fraction:
        return self.max_points - (self.points or _ZERO)

    def sub(self, key: str) -> SubScore:
        return next(s for s in self.subs if s.sub.key == key)

    def to_json(self) -> dict[str, Any]:
        pts = self.points
        return {
            "title": self.group.title,
            "source": self.source,
            "points": as_float(pts),
            "points_text": None if pts is None else format_points(pts),
            "max_points": as_float(self.max_points),
            "full_max_points": as_float(self.group.max_points),
            "lost": as_float(self.lost),
            "estimate": self.group.estimate,
            "alert_below": as_float(self.group.alert_below),
            "subindicators": {s.sub.key: s.to_json() for s in self.subs},
        }


@dataclass(frozen=True, slots=True)
class EntityScore:
    """The index of one entity (a unit, a level or the city)."""

    groups: tuple[GroupScore, ...]

    def group(self, key: str) -> GroupScore:
        return next(g for g in self.groups if g.group.key == key)

    @property
    def points(self) -> Fraction:
        return sum((g.points or _ZERO for g in self.groups), _ZERO)

    @property
    def max_points(self) -> Fraction:
        """What could be scored: groups without input or dossiers are left out."""
        return sum((g.max_points for g in self.groups), _ZERO)

    @property
    def lost(self) -> Fraction:
        return self.max_points - self.points

    @property
    def complete(self) -> bool:
        """Every group of the profile scored (the total is over the profile's maximum)."""
        return all(g.max_points == g.group.max_points for g in self.groups)

    def to_json(self) -> dict[str, Any]:
        return {
            "points": as_float(self.points),
            "points_text": format_points(self.points, 2),
            "max_points": as_float(self.max_points),
            "complete": self.complete,
            "lost": as_float(self.lost),
            "groups": {g.group.key: g.to_json() for g in self.groups},
        }


@dataclass(frozen=True, slots=True)
class UnitShare:
    """A unit's share of the city's points and loss, per sub-indicator and in total."""

    points: dict[str, Fraction] = field(default_factory=dict)
    lost: dict[str, Fraction] = field(default_factory=dict)
    """Per sub-indicator key."""

    @property
    def total_points(self) -> Fraction:
        return sum(self.points.values(), _ZERO)

    @property
    def total_lost(self) -> Fraction:
        return sum(self.lost.values(), _ZERO)

    def group_lost(self, group: Group) -> Fraction:
        return sum((self.lost.get(s.key, _ZERO) for s in group.subindicators), _ZERO)


@dataclass(frozen=True, slots=True)
class IndexResult:
    """The index of a period: city, levels, units, and each unit's share of the city."""

    profile: Profile
    city: EntityScore
    levels: dict[str, EntityScore]
    units: dict[str, EntityScore]
    unit_levels: dict[str, str]
    shares: dict[str, UnitShare]

    def loss_share(self, code: str) -> Fraction | None:
        """The unit's share of the points the city lost on what the stream observes."""
        observed = sum((g.lost for g in self.city.groups if not g.group.input), _ZERO)
        return None if observed == 0 else self.shares[code].total_lost / observed

    def costliest(self, group: Group | None = None) -> list[str]:
        """Units that cost the city points, most first (ties by code); ``group`` to restrict."""

        def lost(code: str) -> Fraction:
            share = self.shares[code]
            return share.total_lost if group is None else share.group_lost(group)

        return sorted((c for c in self.shares if lost(c) > 0), key=lambda c: (-lost(c), c))

    def to_json(self) -> dict[str, Any]:
        return {
            "profile": {
                "name": self.profile.name,
                "version": self.profile.version,
                "origin": self.profile.origin,
                "aggregation": self.profile.aggregation,
            },
            "city": self.city.to_json(),
            "levels": {lvl: s.to_json() for lvl, s in self.levels.items()},
            "units": {
                code: {
                    "level": self.unit_levels[code],
                    **s.to_json(),
                    "share_of_city": {
                        "points": as_float(self.shares[code].total_points),
                        "lost": as_float(self.shares[code].total_lost),
                        "loss_share": as_float(self.loss_share(code)),
                    },
                }
                for code, s in self.units.items()
            },
        }


Totals = Mapping[str, Mapping[str, int]]
"""``{unit code: {counter: total over the period}}``."""


def totals_from_indicators(
    figures: Iterable[tuple[str, str, int, int]],
) -> dict[str, dict[str, int]]:
    """Counter totals per unit from ``(indicator key, unit, numerator, denominator)``.

    Every counter of the indicators (but ``synchronisation``, whose
    denominator is not a counter) is the numerator or the denominator of one.
    """
    out: dict[str, dict[str, int]] = {}
    for key, unit, num, den in figures:
        ind = _BY_KEY.get(key)
        if ind is None or key == "synchronisation":
            continue
        per = out.setdefault(unit, {})
        per[ind.numerator] = num
        per[ind.denominator] = den
    return out


def totals_from_report(
    report: Mapping[str, Any],
) -> tuple[dict[str, dict[str, int]], dict[str, str]]:
    """Counter totals and levels of the units a report lists (its ``indicators`` section)."""
    figures = [
        (key, code, f["numerator"], f["denominator"])
        for key, ind in report["indicators"].items()
        for code, f in ind["units"].items()
    ]
    levels = {code: f["level"] for code, f in report["indicators"]["on_time"]["units"].items()}
    return totals_from_indicators(figures), levels


def _entity(profile: Profile, sums: Mapping[str, int], published: Published | None) -> EntityScore:
    groups = []
    for g in profile.groups:
        if g.input:
            groups.append(GroupScore(g, published=(published or {}).get(g.key)))
            continue
        subs = tuple(
            SubScore(s, sums.get(s.numerator, 0), sums.get(s.denominator, 0))
            for s in g.subindicators
        )
        groups.append(GroupScore(g, subs))
    return EntityScore(tuple(groups))


def _sums(totals: Totals, codes: Iterable[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for code in codes:
        for name, value in totals.get(code, {}).items():
            out[name] = out.get(name, 0) + value
    return out


def _shares(
    profile: Profile, city: EntityScore, units: dict[str, EntityScore]
) -> dict[str, UnitShare]:
    shares = {code: UnitShare() for code in units}
    for g in profile.groups:
        if g.input:
            continue
        for s in g.subindicators:
            c = city.group(g.key).sub(s.key)
            if c.denominator == 0:
                continue
            short_total = c.shortfall
            per_dossier = c.lost / short_total if short_total else _ZERO
            for code, unit in units.items():
                u = unit.group(g.key).sub(s.key)
                lost = u.shortfall * per_dossier
                shares[code].lost[s.key] = lost
                shares[code].points[s.key] = (
                    s.points * Fraction(u.denominator, c.denominator) - lost
                )
    return shares


def score(
    profile: Profile,
    totals: Totals,
    unit_levels: Mapping[str, str],
    *,
    published: Published | None = None,
) -> IndexResult:
    """Score every unit, level and the city (see the module docstring).

    Args:
        profile: the scoring profile.
        totals: counter totals per unit over the period.
        unit_levels: ``{unit code: level}`` of the units to score (the city is
            their sum; units absent from ``totals`` have no dossiers).
        published: the published scores of the profile's input groups for
            this period (city only).
    """
    units = {code: _entity(profile, totals.get(code, {}), None) for code in unit_levels}
    levels: dict[str, EntityScore] = {
        lvl: _entity(
            profile, _sums(totals, [c for c, of in unit_levels.items() if of == lvl]), None
        )
        for lvl in LEVELS
        if lvl in unit_levels.values()
    }
    city = _entity(profile, _sums(totals, unit_levels), published)
    return IndexResult(
        profile, city, levels, units, dict(unit_levels), _shares(profile, city, units)
    )
