"""The start-up check of co-partitioning: topics of one family need one partition count.

The worker keeps every event of a dossier on one member because the range
assignor gives a member the same partition numbers of topics with the same
partition count, and because a key goes to the same partition number of each
topic only when the counts agree. So the topics of one *family* (the part of
a name before its first dot: the ``dossier.*`` topics, and any other family
with several topics) must have one partition count on the broker, whatever
the catalog says. This module decides, from the counts the broker reports,
whether the worker may start; :mod:`dossier_stream.stream.startup` reads them.
Kafka Streams refuses to start in the same case.
"""

from __future__ import annotations

from collections.abc import Mapping

from dossier_stream.core.topics import TopicCatalog

__all__ = ["copartitioned_groups", "partition_count_problem"]


def copartitioned_groups(catalog: TopicCatalog) -> dict[str, tuple[str, ...]]:
    """The catalog's co-partitioned topics by family (families of two topics or more).

    The dead-letter topic belongs to no family (nothing is folded from it).
    """
    groups: dict[str, list[str]] = {}
    for spec in catalog.topics:
        if not spec.deadletter:
            groups.setdefault(spec.name.split(".", 1)[0], []).append(spec.name)
    return {family: tuple(names) for family, names in groups.items() if len(names) > 1}


def partition_count_problem(
    catalog: TopicCatalog, counts: Mapping[str, int], bootstrap: str = "BROKER"
) -> str | None:
    """Why the worker must not start with these partition counts, or ``None``.

    Args:
        catalog: the topic catalog.
        counts: partition count per topic on the broker (a missing topic is absent).
        bootstrap: the broker's address, for the commands of the message.

    Returns:
        Two lines naming the topics, their counts and what to run; ``None``
        when every co-partitioned family has one count.
    """
    groups = copartitioned_groups(catalog)
    missing = sorted(n for names in groups.values() for n in names if n not in counts)
    if missing:
        return (
            f"worker not started: the co-partitioned topic(s) {', '.join(missing)} do not exist "
            f"on {bootstrap}.\n"
            "Create them with the catalog's partition counts: dossier-stream topics create"
        )
    for family, names in sorted(groups.items()):
        found = {name: counts[name] for name in names}
        if len(set(found.values())) <= 1:
            continue
        target = max(found.values())
        listing = ", ".join(f"{name}={n}" for name, n in sorted(found.items()))
        fewer = sorted(name for name, n in found.items() if n < target)
        alter = "; ".join(
            f"kafka-topics.sh --bootstrap-server {bootstrap} --alter --topic {name} "
            f"--partitions {target}"
            for name in fewer
        )
        return (
            f"worker not started: the {family}.* topics are co-partitioned but have different "
            "partition counts: "
            f"{listing}.\n"
            f"Give them all {target} partitions ({alter}), or delete "
            f"{', '.join(fewer)} and run: dossier-stream topics create"
        )
    return None
