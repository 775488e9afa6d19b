"""Re-keying at ingress: mis-keyed messages go through their family's repartition topic.

The worker folds a dossier's events where its state lives: the partition
number its ``dossier_id`` belongs to (:func:`~dossier_stream.core.partitioner.partition_for`,
the partitioner ``produce`` uses), the same number on each ``dossier.*``
topic (likewise ``feedback_id`` on ``feedback.v1``, ``unit_code`` on
``unit.reports.v1``). A producer that keys otherwise (no key, ``unit_code``,
random keys, another partitioner such as librdkafka's CRC32) puts events on
other partitions, where folding them would split a dossier's state across
workers and silently miscount. So, like Kafka Streams:

* **Fast path.** A valid event whose key belongs to the partition it arrived
  on is folded there, as before (one dictionary look-up per message; a
  murmur2 hash the first time a key is seen on any topic of its family).
* **Re-key.** Any other valid event is *not* folded where it arrived: the
  shell re-publishes its original bytes to the family's repartition topic of
  the catalog (``dossier.repartition.v1`` …, same partition count), keyed by
  its key, on the partition that key belongs to, with headers naming where
  it came from. The source offset is committed only after that publish is
  acknowledged: nothing is lost, and a crash in between re-publishes it
  again, which the fold absorbs as a duplicate.
* **Folded by its owner.** The repartition topic's partition *n* is the same
  source (``dossier:n``) as partition *n* of the family's input topics, so
  the worker that owns ``dossier:n`` folds it, with the origin's topic (the
  event-type check), partition and offset (dead letters name the origin). A
  message read from a repartition topic is never re-routed again.

Invalid messages are dead-lettered where they arrive (they have no trusted
key). Counted per arrival topic in ``dossier_stream_rerouted_total``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from operator import attrgetter
from typing import Any, Final, NamedTuple

from dossier_stream.core.events import Event
from dossier_stream.core.partitioner import KeyOwner, partition_for
from dossier_stream.core.topics import CONTRACT_TOPICS, TopicCatalog, family_of

__all__ = [
    "KEYS_REMEMBERED",
    "ORIGIN_HEADERS",
    "Origin",
    "Rekeyer",
    "RepartitionTopicError",
    "Republish",
    "header_value",
]

_LOG = logging.getLogger(__name__)

ORIGIN_HEADERS: Final = ("origin_topic", "origin_partition", "origin_offset")
"""Headers of a re-published message: where it was first read."""


class RepartitionTopicError(LookupError):
    """A repartition topic is missing on the broker or partitioned unlike its family."""


class Origin(NamedTuple):
    """Where a re-published message was first read."""

    topic: str
    partition: int
    offset: int


class Republish(NamedTuple):
    """A message to re-publish: to ``topic``'s ``partition``, keyed by ``key``."""

    topic: str
    partition: int
    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]


def header_value(headers: Any, name: str) -> str | None:
    """The value of header ``name`` (from a list of pairs or a mapping), decoded."""
    items = headers.items() if isinstance(headers, dict) else headers or []
    for key, value in items:
        if key == name:
            return value.decode() if isinstance(value, bytes) else str(value)
    return None


KEYS_REMEMBERED: Final = 1 << 16
"""Keys whose partition an owner function remembers (a dossier's events hash once).

One owner function serves every topic of a family (same key, same partition
count): a dossier's events arrive on up to four ``dossier.*`` topics, and
with one memory per topic its key was hashed once per topic (83 % of the
bench's dossier messages hashed, against 30 % with one per family)."""


def _owner(key: Callable[[Event], str], partitions: int, remembered: int) -> Callable[[Event], int]:
    """``partition_for(key(event), partitions)``, remembered for the last ``remembered`` keys.

    A :class:`~dossier_stream.core.partitioner.KeyOwner` (compiled with the fold:
    called in C from it); the partitioner is this module's, read now.
    """
    return KeyOwner(key, partitions, bound=remembered, hasher=partition_for)


class Rekeyer:
    """Which partition owns an event, and the re-publish of one that arrived elsewhere.

    Args:
        catalog: the topic catalog (families, their keys and repartition topics).
        remembered: keys whose partition each owner function remembers.
    """

    def __init__(self, catalog: TopicCatalog, *, remembered: int = KEYS_REMEMBERED) -> None:
        self.catalog = catalog
        self.remembered = remembered
        self._key: dict[str, Callable[[Event], str]] = {}
        self._target: dict[str, tuple[str, int]] = {}  # family → (repartition topic, partitions)
        self._owners: dict[str, Callable[[Event], int]] = {}  # input topic → owner

    def set_partitions(self, counts: Mapping[str, int]) -> None:
        """Take the partition counts of the topics on the broker (before any batch).

        Args:
            counts: partitions per topic on the broker; each family's repartition
                topic must be there, with the partition count of the family's topics.

        Raises:
            RepartitionTopicError: a repartition topic is missing or partitioned unlike its
                family (the message says what to run).
        """
        owners: dict[str, Callable[[Event], int]] = {}
        shared: dict[str, Callable[[Event], int]] = {}  # family → its topics' owner
        for topic in CONTRACT_TOPICS:
            family = family_of(topic)
            repartition = self.catalog.repartition_topic(family)
            n = counts.get(repartition)
            if not n:
                raise RepartitionTopicError(
                    f"the repartition topic {repartition} does not exist on the broker: "
                    "run `dossier-stream topics create`"
                )
            if counts.get(topic, n) != n:
                raise RepartitionTopicError(
                    f"the repartition topic {repartition} has {n} partitions and {topic} "
                    f"{counts[topic]}: they must be equal; delete {repartition} (it holds "
                    "nothing once every worker is stopped and caught up) and run "
                    "`dossier-stream topics create`"
                )
            key = self._key.setdefault(family, attrgetter(self.catalog.get(topic).key))
            self._target[family] = (repartition, n)
            owner = shared.get(family)
            if owner is None:  # every topic of the family has n partitions (checked above)
                owner = shared[family] = _owner(key, n, self.remembered)
            owners[topic] = owner
        self._owners = owners

    def owner(self, topic: str) -> Callable[[Event], int] | None:
        """The owner function for messages read from ``topic`` (``None``: never re-routed)."""
        return self._owners.get(topic)

    def republish(
        self, topic: str, partition: int, offset: int, value: bytes, event: Event
    ) -> Republish:
        """The re-publish of a message read at ``topic:partition@offset`` (original bytes)."""
        family = family_of(topic)
        target, n = self._target[family]
        key = self._key[family](event)
        headers = [
            ("origin_topic", topic.encode()),
            ("origin_partition", str(partition).encode()),
            ("origin_offset", str(offset).encode()),
        ]
        return Republish(target, partition_for(key, n), key.encode(), value, headers)

    def origin(self, topic: str, headers: Any) -> Origin | None:
        """Where a message of repartition topic ``topic`` was first read (``None``: unknown).

        A message without valid origin headers (not written by a worker) has
        none: it is folded as read from the repartition topic, which the
        event-type check dead-letters (``wrong_topic``).
        """
        origin = header_value(headers, "origin_topic")
        if origin not in CONTRACT_TOPICS or family_of(origin) != family_of(topic):
            return None
        try:
            partition = int(header_value(headers, "origin_partition") or "")
            offset = int(header_value(headers, "origin_offset") or "")
        except ValueError:
            return None
        return Origin(origin, partition, offset)
