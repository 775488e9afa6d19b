"""The scoring profile of the QĐ 766/QĐ-TTg index: groups, sub-indicators, rules, as data.

The bundled profile is ``data/index766.yaml`` (its comments say which figures
come from the decision's annex and which are estimates); a province replaces
it with ``DOSSIER_INDEX766_PROFILE``. :func:`load_profile` validates it into a
:class:`Profile`; :mod:`dossier_stream.core.index766_score` scores counters
with it. Groups the stream cannot observe (``input: true``) take the published
group scores of :func:`load_published` or :func:`parse_group_scores`.

Numbers are exact: rates and points are :class:`~fractions.Fraction` s, and
:func:`format_points` rounds half-up only for printing (one decimal for groups
and sub-indicators, as the national portal prints ``18,5/20``; two for the
total, ``81,08/100``).
"""

from __future__ import annotations

import csv
import functools
import io
import re
from dataclasses import dataclass
from datetime import date
from fractions import Fraction
from importlib import resources
from math import ceil
from pathlib import Path
from typing import Annotated, Any, Final, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from dossier_stream.core.indicators import INDICATORS

__all__ = [
    "COUNTERS_READ",
    "Group",
    "Profile",
    "ProfileError",
    "Published",
    "Rule",
    "SubIndicator",
    "as_float",
    "dossiers_to_reach",
    "format_points",
    "load_profile",
    "load_published",
    "parse_group_scores",
    "parse_profile",
]

COUNTERS_READ: Final[frozenset[str]] = frozenset(
    name
    for ind in INDICATORS
    if ind.key != "synchronisation"
    for name in (ind.numerator, ind.denominator)
)
"""Counters a sub-indicator may read: those of the indicators every report carries."""

Published = dict[str, Fraction]
"""Published scores of the input groups of one period: ``{group key: points}``."""


class ProfileError(ValueError):
    """The profile or the published scores are malformed; the message names the file."""


class _Step(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    at: Annotated[Fraction, Field(ge=0, le=100)]
    points: Annotated[Fraction, Field(ge=0)]


class _Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: Literal["linear", "thresholds"]
    full_at: Annotated[Fraction, Field(gt=0, le=100)] = Fraction(100)
    steps: tuple[_Step, ...] = ()

    @model_validator(mode="after")
    def _shape(self) -> _Rule:
        if self.kind == "thresholds" and not self.steps:
            raise ValueError("a thresholds rule needs steps")
        if self.kind == "linear" and self.steps:
            raise ValueError("a linear rule has no steps (use full_at)")
        return self


class _Sub(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    key: Annotated[str, Field(pattern=r"^[a-z0-9_]+$")]
    title: str
    numerator: str
    denominator: str
    points: Annotated[Fraction, Field(gt=0)]
    rule: _Rule = _Rule(kind="linear")
    source: str
    estimate: bool = True
    note: str = ""
    shortfall: str
    remedy: str

    @model_validator(mode="after")
    def _counters(self) -> _Sub:
        for name in (self.numerator, self.denominator):
            if name not in COUNTERS_READ:
                raise ValueError(f"unknown counter {name!r}; use one of {sorted(COUNTERS_READ)}")
        if self.rule.kind == "thresholds":
            top = max(s.points for s in self.rule.steps)
            if top != self.points:
                raise ValueError(f"the highest step gives {top} points, not the {self.points}")
        return self


class _Group(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    key: Annotated[str, Field(pattern=r"^[a-z0-9_]+$")]
    title: str
    max_points: Annotated[Fraction, Field(gt=0)]
    alert_below: Annotated[Fraction, Field(ge=0)]
    input: bool = False
    source: str
    note: str = ""
    subindicators: tuple[_Sub, ...] = ()

    @model_validator(mode="after")
    def _points(self) -> _Group:
        if self.input and self.subindicators:
            raise ValueError("an input group has no sub-indicators")
        if not self.input:
            total = sum((s.points for s in self.subindicators), Fraction(0))
            if total != self.max_points:
                raise ValueError(f"sub-indicators give {total} points, the group {self.max_points}")
        if self.alert_below > self.max_points:
            raise ValueError("alert_below is above max_points")
        return self


class _Profile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    version: Annotated[int, Field(ge=1)]
    name: str
    source: str
    aggregation: Literal["pooled"]
    groups: Annotated[tuple[_Group, ...], Field(min_length=1)]

    @model_validator(mode="after")
    def _unique(self) -> _Profile:
        keys = [g.key for g in self.groups] + [s.key for g in self.groups for s in g.subindicators]
        dup = {k for k in keys if keys.count(k) > 1}
        if dup:
            raise ValueError(f"keys used twice: {sorted(dup)}")
        return self


@dataclass(frozen=True, slots=True)
class Rule:
    """How a rate becomes points: linear (capped at ``full_at``) or by thresholds.

    Rates are fractions of 1 (``Fraction(925, 1000)`` is 92,5%).
    """

    kind: str
    full_at: Fraction
    steps: tuple[tuple[Fraction, Fraction], ...]
    """``(rate, points)`` ascending by rate."""

    def points(self, rate: Fraction, max_points: Fraction) -> Fraction:
        """The points a rate earns."""
        if self.kind == "linear":
            return max_points * min(Fraction(1), rate / self.full_at)
        earned = [p for at, p in self.steps if rate >= at]
        return max(earned, default=Fraction(0))

    def next_target(self, rate: Fraction, max_points: Fraction) -> tuple[Fraction, Fraction] | None:
        """``(rate, points)`` of the next threshold (or of full points); ``None`` at full."""
        now = self.points(rate, max_points)
        if now >= max_points:
            return None
        if self.kind == "linear":
            return self.full_at, max_points
        return next((at, p) for at, p in self.steps if p > now)


@dataclass(frozen=True, slots=True)
class SubIndicator:
    """One sub-indicator: what it reads, its points and rule, where it comes from."""

    key: str
    title: str
    numerator: str
    denominator: str
    points: Fraction
    rule: Rule
    source: str
    estimate: bool
    note: str
    shortfall: str
    """Wording of the dossiers that do not count (``hồ sơ quá hạn``)."""
    remedy: str
    """Wording of the dossiers that would win points back (``hồ sơ giải quyết đúng hạn``)."""


@dataclass(frozen=True, slots=True)
class Group:
    """A group of the index; ``input`` groups take published scores, never estimates."""

    key: str
    title: str
    max_points: Fraction
    alert_below: Fraction
    input: bool
    source: str
    note: str
    subindicators: tuple[SubIndicator, ...]

    @property
    def estimate(self) -> bool:
        return any(s.estimate for s in self.subindicators)


@dataclass(frozen=True, slots=True)
class Profile:
    """A validated scoring profile."""

    version: int
    name: str
    source: str
    aggregation: str
    groups: tuple[Group, ...]
    origin: str
    """Where it was read from (``bundled`` or a path)."""

    @property
    def max_points(self) -> Fraction:
        return sum((g.max_points for g in self.groups), Fraction(0))

    def group(self, key: str) -> Group:
        return next(g for g in self.groups if g.key == key)


def _convert(p: _Profile, origin: str) -> Profile:
    def rule(r: _Rule) -> Rule:
        steps = tuple(sorted((s.at / 100, s.points) for s in r.steps))
        return Rule(r.kind, r.full_at / 100, steps)

    groups = tuple(
        Group(
            g.key, g.title, g.max_points, g.alert_below, g.input, g.source, g.note,
            tuple(
                SubIndicator(
                    s.key, s.title, s.numerator, s.denominator, s.points, rule(s.rule),
                    s.source, s.estimate, s.note, s.shortfall, s.remedy,
                )
                for s in g.subindicators
            ),
        )
        for g in p.groups
    )  # fmt: skip
    return Profile(p.version, p.name, p.source, p.aggregation, groups, origin)


def load_profile(path: str | Path | None = None) -> Profile:
    """Load and validate a profile; the bundled ``data/index766.yaml`` by default.

    Raises:
        ProfileError: naming the file and the problem.
    """
    if path is None:
        text = resources.files("dossier_stream").joinpath("data/index766.yaml").read_text("utf-8")
        origin = "bundled"
    else:
        try:
            text = Path(path).read_text("utf-8")
        except OSError as exc:
            raise ProfileError(f"cannot read the 766 profile {path}: {exc.strerror}") from None
        origin = str(path)
    return _parse(text, origin)


def parse_profile(text: str, origin: str = "<text>") -> Profile:
    """Validate a profile given as YAML text (``origin`` names it in errors)."""
    return _parse(text, origin)


@functools.lru_cache(maxsize=8)
def _parse(text: str, origin: str) -> Profile:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ProfileError(f"766 profile {origin}: not valid YAML: {exc}") from None
    try:
        return _convert(_Profile.model_validate(data), origin)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'profile'}: {e['msg']}"
            for e in exc.errors(include_url=False)
        )
        raise ProfileError(f"766 profile {origin}: {problems}") from None


def _points(text: str, where: str) -> Fraction:
    try:
        value = Fraction(text.strip().replace(",", "."))
    except (ValueError, ZeroDivisionError):
        raise ProfileError(f"{where}: points {text!r} is not a number") from None
    if value < 0:
        raise ProfileError(f"{where}: points {text!r} is negative")
    return value


def _check_groups(scores: Published, profile: Profile, where: str) -> Published:
    inputs = {g.key: g for g in profile.groups if g.input}
    for key, value in scores.items():
        group = inputs.get(key)
        if group is None:
            raise ProfileError(
                f"{where}: {key!r} is not an input group of the profile "
                f"(input groups: {', '.join(sorted(inputs)) or 'none'})"
            )
        if value > group.max_points:
            raise ProfileError(f"{where}: {key} = {value} is above its {group.max_points} points")
    return scores


_GROUP_SCORE: Final = re.compile(r"\s*([a-z0-9_]+)\s*=\s*([0-9]+(?:[.,][0-9]+)?)\s*(?:[;,]|$)")


def parse_group_scores(text: str, profile: Profile) -> Published:
    """``"cong_khai=12"`` (``group=points`` separated by ``;`` or ``,``) → published scores.

    Points take a dot or a decimal comma (``cong_khai=12,5``).

    Raises:
        ProfileError: text that is not ``group=points``, an unknown group, too many points.
    """
    where = "DOSSIER_INDEX766_GROUP_SCORES"
    out: Published = {}
    pos = 0
    while pos < len(text.rstrip()):
        match = _GROUP_SCORE.match(text, pos)
        if match is None or match.end() == pos:
            raise ProfileError(f"{where}: {text!r} is not group=points (e.g. cong_khai=12)")
        out[match[1]] = _points(match[2], where)
        pos = match.end()
    return _check_groups(out, profile, where)


def load_published(path: str | Path, profile: Profile) -> dict[tuple[date, date], Published]:
    """Published scores of input groups per period, from a CSV ``from,to,group,points``.

    ``from``/``to`` are ISO dates (the report period, both inclusive); points
    use a dot or a decimal comma. A report uses the rows of exactly its period.

    Raises:
        ProfileError: naming the file and line.
    """
    try:
        text = Path(path).read_text("utf-8-sig")
    except OSError as exc:
        raise ProfileError(f"cannot read the published 766 scores {path}: {exc.strerror}") from None
    reader = csv.DictReader(io.StringIO(text))
    need = {"from", "to", "group", "points"}
    if reader.fieldnames is None or not need <= set(reader.fieldnames):
        raise ProfileError(f"{path}: the header must be from,to,group,points")
    out: dict[tuple[date, date], Published] = {}
    for line, row in enumerate(reader, 2):
        where = f"{path}:{line}"
        try:
            period = (date.fromisoformat(row["from"]), date.fromisoformat(row["to"]))
        except ValueError:
            raise ProfileError(f"{where}: from/to must be dates like 2024-09-15") from None
        scores = out.setdefault(period, {})
        scores[row["group"].strip()] = _points(row["points"], where)
        _check_groups(scores, profile, where)
    return out


def dossiers_to_reach(numerator: int, denominator: int, rate: Fraction) -> int:
    """How many more of the ``denominator`` dossiers must count to reach ``rate`` (exact).

    The smallest ``k ≥ 0`` with ``(numerator + k) / denominator ≥ rate``.
    """
    return max(0, ceil(rate * denominator - numerator))


def format_points(value: Fraction, places: int = 1) -> str:
    """Points as the portal prints them: half-up, decimal comma, no trailing zeros.

    ``Fraction(37, 2)`` → ``"18,5"``; ``Fraction(12)`` → ``"12"``;
    ``format_points(Fraction(8108, 100), 2)`` → ``"81,08"``.
    """
    scale = 10**places
    scaled = (value * scale * 2 + 1) // 2 if value >= 0 else -((-value * scale * 2 + 1) // 2)
    sign = "-" if scaled < 0 else ""
    whole, frac = divmod(abs(int(scaled)), scale)
    if frac == 0:
        return f"{sign}{whole}"
    return f"{sign}{whole},{frac:0{places}d}".rstrip("0")


def as_float(value: Fraction | None, places: int = 4) -> Any:
    """A JSON number rounded to ``places`` decimals (``None`` stays ``None``)."""
    return None if value is None else round(float(value), places)
