"""The topic catalog (``streams/topics.yaml``): loaded, validated, queried.

The catalog is data so an operator can change partition counts or retention
without touching code, but it must agree with the event contract: every
contract event type on exactly the topic the contract names, the four
``dossier.*`` topics co-partitioned (same partition count), one dead-letter
topic, and one *repartition topic* per family of input topics (``dossier``,
``feedback``, ``unit``: the part of a name before its first dot), keyed and
partitioned like that family, where the worker re-publishes the messages a
producer did not key by the family's key (:mod:`dossier_stream.stream.rekey`).
A catalog that breaks a rule stops start-up with a message naming the topic
and the rule.
"""

from __future__ import annotations

import functools
from importlib import resources
from pathlib import Path
from typing import Annotated, Final, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from dossier_stream.core.events import EVENT_TYPES

__all__ = [
    "CONTRACT_TOPICS",
    "CatalogError",
    "TopicCatalog",
    "TopicSpec",
    "family_of",
    "load_catalog",
]

CONTRACT_TOPICS: Final[dict[str, tuple[str, ...]]] = {
    "dossier.submissions.v1": ("dossier.received",),
    "dossier.payments.v1": ("dossier.payment",),
    "dossier.digitization.v1": ("dossier.digitized",),
    "dossier.progress.v1": (
        "dossier.supplement_requested",
        "dossier.supplement_received",
        "dossier.completed",
        "dossier.withdrawn",
    ),
    "feedback.v1": ("feedback.received", "feedback.resolved"),
    "unit.reports.v1": ("unit.reported_totals",),
}
"""Topic → event types, as ``event-contract.md`` fixes them."""


def family_of(topic: str) -> str:
    """The family of a topic: its name up to the first dot (``dossier``, ``feedback``, ``unit``).

    Topics of one family share a key and a partition count; a partition
    number of a family is one *source* of the worker (``dossier:3``).
    """
    return topic.split(".", 1)[0]


class CatalogError(ValueError):
    """The topic catalog is malformed or disagrees with the contract."""


class TopicSpec(BaseModel):
    """One topic of the catalog."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9._-]{1,249}$")]
    event_types: tuple[str, ...]
    key: str
    partitions: Annotated[int, Field(ge=1, le=1000)]
    cleanup_policy: Literal["delete", "compact"]
    retention_ms: Annotated[int, Field(ge=60_000)] | None = None
    deadletter: bool = False
    repartition: bool = False
    """An internal topic: mis-keyed messages of the family, re-published by their key."""

    @model_validator(mode="after")
    def _retention_for_delete(self) -> TopicSpec:
        if self.cleanup_policy == "delete" and self.retention_ms is None:
            raise ValueError("a topic with cleanup_policy 'delete' needs retention_ms")
        return self

    def config(self) -> dict[str, str]:
        """Kafka topic configuration entries."""
        cfg: dict[str, str] = {"cleanup.policy": self.cleanup_policy}
        if self.retention_ms is not None:
            cfg["retention.ms"] = str(self.retention_ms)
        return cfg


class TopicCatalog(BaseModel):
    """The validated catalog."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Literal[1]
    topics: tuple[TopicSpec, ...]

    @model_validator(mode="after")
    def _agrees_with_contract(self) -> TopicCatalog:
        names = [t.name for t in self.topics]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"topic(s) listed twice: {', '.join(dupes)}")
        by_name = {t.name: t for t in self.topics}
        for name, types in CONTRACT_TOPICS.items():
            spec = by_name.get(name)
            if spec is None:
                raise ValueError(f"contract topic {name!r} is missing")
            if tuple(sorted(spec.event_types)) != tuple(sorted(types)):
                raise ValueError(
                    f"topic {name!r} must carry exactly {', '.join(types)} "
                    f"(event-contract.md), not {', '.join(spec.event_types) or 'nothing'}"
                )
        unknown = {e for t in self.topics for e in t.event_types} - set(EVENT_TYPES)
        if unknown:
            raise ValueError(f"unknown event type(s): {', '.join(sorted(unknown))}")
        dossier = {
            t.name: t.partitions
            for t in self.topics
            if t.name.startswith("dossier.") and not t.deadletter
        }
        if len(set(dossier.values())) > 1:
            listing = ", ".join(f"{n}={p}" for n, p in sorted(dossier.items()))
            raise ValueError(
                f"the dossier.* topics are co-partitioned and need one partition count: {listing}"
            )
        if sum(t.deadletter for t in self.topics) != 1:
            raise ValueError("exactly one topic must have 'deadletter: true'")
        self._check_repartition(by_name)
        return self

    def _check_repartition(self, by_name: dict[str, TopicSpec]) -> None:
        """One repartition topic per input family, keyed and partitioned like it."""
        inputs: dict[str, list[TopicSpec]] = {}
        for name in CONTRACT_TOPICS:
            inputs.setdefault(family_of(name), []).append(by_name[name])
        found: dict[str, str] = {}
        for t in self.topics:
            if not t.repartition:
                continue
            family = family_of(t.name)
            members = inputs.get(family)
            if members is None or t.deadletter or t.event_types:
                raise ValueError(
                    f"repartition topic {t.name!r} must be named after a family of input "
                    f"topics ({', '.join(sorted(inputs))}.…) and carry no event_types"
                )
            if family in found:
                raise ValueError(f"two repartition topics for {family}: {found[family]}, {t.name}")
            found[family] = t.name
            want = members[0]
            if t.key != want.key or {m.partitions for m in members} != {t.partitions}:
                raise ValueError(
                    f"repartition topic {t.name!r} must be keyed by {want.key} with the "
                    f"{want.partitions} partitions of {', '.join(m.name for m in members)}"
                )
        missing = sorted(inputs.keys() - found.keys())
        if missing:
            raise ValueError(
                "no repartition topic (repartition: true) for "
                + ", ".join(f"{f}.*" for f in missing)
                + " (see streams/topics.yaml)"
            )

    def get(self, name: str) -> TopicSpec:
        """The topic named ``name``."""
        for spec in self.topics:
            if spec.name == name:
                return spec
        raise KeyError(f"no topic {name!r} in the catalog")

    def topic_for(self, event_type: str) -> str:
        """The topic that carries ``event_type``."""
        for spec in self.topics:
            if event_type in spec.event_types:
                return spec.name
        raise KeyError(f"no topic carries event type {event_type!r}")

    @property
    def deadletter(self) -> TopicSpec:
        """The dead-letter topic."""
        return next(t for t in self.topics if t.deadletter)

    @property
    def input_topics(self) -> tuple[str, ...]:
        """Every topic the worker folds: the six contract topics and the repartition topics."""
        return (*CONTRACT_TOPICS, *(t.name for t in self.topics if t.repartition))

    def repartition_topic(self, family: str) -> str:
        """The repartition topic of a family (``dossier``, ``feedback``, ``unit``)."""
        for spec in self.topics:
            if spec.repartition and family_of(spec.name) == family:
                return spec.name
        raise KeyError(f"no repartition topic for {family!r}")

    def is_repartition(self, name: str) -> bool:
        """Whether ``name`` is one of the catalog's repartition topics."""
        return any(t.repartition and t.name == name for t in self.topics)

    @property
    def dossier_topics(self) -> tuple[TopicSpec, ...]:
        """The co-partitioned ``dossier.*`` input topics."""
        return tuple(
            t for t in self.topics if t.name in CONTRACT_TOPICS and t.name.startswith("dossier.")
        )


def load_catalog(path: str | Path | None = None) -> TopicCatalog:
    """Load and validate a catalog; the bundled ``streams/topics.yaml`` by default.

    Raises:
        CatalogError: naming the file and the problem.
    """
    if path is None:
        text = resources.files("dossier_stream").joinpath("data/topics.yaml").read_text("utf-8")
        source = "streams/topics.yaml"
    else:
        try:
            text = Path(path).read_text("utf-8")
        except OSError as exc:
            raise CatalogError(f"cannot read topic catalog {path}: {exc.strerror}") from None
        source = str(path)
    return _parse(text, source)


@functools.lru_cache(maxsize=8)
def _parse(text: str, source: str) -> TopicCatalog:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise CatalogError(f"{source}: not valid YAML: {exc}") from None
    try:
        return TopicCatalog.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'catalog'}: {e['msg']}"
            for e in exc.errors(include_url=False)
        )
        raise CatalogError(f"{source}: {problems}") from None
