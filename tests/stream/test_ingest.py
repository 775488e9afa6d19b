"""The batch runtime's pieces that need no broker: co-partitioning and dead-letter rows."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from aiokafka.coordinator.assignors.range import RangePartitionAssignor
from aiokafka.coordinator.protocol import ConsumerProtocolMemberMetadata

from dossier_stream.core.engine import DeadLetter
from dossier_stream.core.topics import load_catalog
from dossier_stream.store.deadletters import letter_id
from dossier_stream.stream.processor import dead_letter_headers, dead_letter_row


class _Cluster:
    def __init__(self, partitions: dict[str, int]) -> None:
        self.partitions = partitions

    def partitions_for_topic(self, topic: str) -> set[int]:
        return set(range(self.partitions[topic]))


@pytest.mark.parametrize("members", [1, 2, 3, 4, 7])
def test_the_range_assignor_keeps_every_dossier_partition_number_on_one_member(
    members: int,
) -> None:
    catalog = load_catalog()
    dossier = [t.name for t in catalog.dossier_topics]
    others = [
        catalog.topic_for("feedback.received"),
        catalog.topic_for("unit.reported_totals"),
        catalog.deadletter.name,
    ]
    counts = {name: 6 for name in dossier} | {name: 2 for name in others}
    subscription = [*dossier, *others]
    metadata = {
        f"member-{i}": ConsumerProtocolMemberMetadata(0, subscription, b"") for i in range(members)
    }
    assignment = RangePartitionAssignor.assign(_Cluster(counts), metadata)  # type: ignore[arg-type]
    owner: dict[tuple[str, int], str] = {}
    for member, assigned in assignment.items():
        for topic, partitions in assigned.assignment:
            for p in partitions:
                assert (topic, p) not in owner
                owner[(topic, p)] = member
    assert len(owner) == sum(counts.values())  # every partition has one owner
    for p in range(6):
        assert len({owner[(topic, p)] for topic in dossier}) == 1, p


def test_a_dead_letter_survives_its_round_trip_through_headers() -> None:
    dl = DeadLetter(
        "bad_enum", "bad_enum", "channel: x", b'{"a":1,"b":"\xff"}', "dossier.payments.v1", 3, 41,
        letter_id=letter_id("dossier.payments.v1", 3, 41, 1_727_740_800_000),
    )  # fmt: skip
    now = datetime(2024, 10, 1, tzinfo=UTC)
    row, producer = dead_letter_row(
        "dossier.deadletter.v1", 0, 9, dead_letter_headers(dl), dl.raw, now, 1_727_740_800_123
    )
    assert producer is None
    assert row == (
        dl.letter_id,
        "dossier.payments.v1",
        3,
        41,
        "bad_enum",
        "bad_enum",
        "channel: x",
        b'{"a":1,"b":"\xff"}',  # the bytes as they were, not UTF-8 included
        1,
        now,
    )


def test_a_letter_id_tells_a_recreated_topic_from_a_redelivery() -> None:
    first = letter_id("dossier.payments.v1", 3, 41, 1_727_740_800_000)
    assert first == letter_id("dossier.payments.v1", 3, 41, 1_727_740_800_000)  # redelivered
    assert first != letter_id("dossier.payments.v1", 3, 41, 1_727_740_999_000)  # recreated
    assert first != letter_id("dossier.payments.v1", 3, 42, 1_727_740_800_000)
    assert len(first) == 32 and int(first, 16) >= 0
    # the parts are length-prefixed: no two splits of the same text collide
    assert letter_id("ab", "c") != letter_id("a", "bc")


def test_a_producer_dead_letter_is_counted_and_a_bare_one_is_kept() -> None:
    headers: list[tuple[str, Any]] = [("origin", b"producer"), ("code", b"unroutable")]
    now = datetime(2024, 10, 1, tzinfo=UTC)
    row, producer = dead_letter_row("dossier.deadletter.v1", 0, 5, headers, b"\xff", now, 7)
    assert producer == "unroutable"
    assert row[1:4] == ("dossier.deadletter.v1", 0, 5) and row[7] == b"\xff"
    assert row[0] == letter_id("dossier.deadletter.v1", 0, 5, 7)  # no id header: its own record
    row, producer = dead_letter_row("dossier.deadletter.v1", 0, 6, None, b"x", now)
    assert producer is None and row[4:6] == ("unknown", "unknown")


def test_produce_places_a_key_where_the_worker_expects_it() -> None:
    from dossier_stream.core.partitioner import partition_for
    from dossier_stream.stream.runner import key_partitioner

    every = list(range(6))
    for key in ("000.00.31.H26-241003-0001", "HP-Q-313", "fb-9", ""):
        assert key_partitioner(key.encode(), every, every) == partition_for(key, 6)
    assert key_partitioner(None, every, [2]) == 2  # no key: one of the available partitions


def test_a_repartition_record_names_its_origin_and_nothing_else_does() -> None:
    from dossier_stream.stream.rekey import Origin, Rekeyer, RepartitionTopicError

    catalog = load_catalog()
    rekeyer = Rekeyer(catalog)
    rekeyer.set_partitions({t.name: t.partitions for t in catalog.topics})
    owner = rekeyer.owner("dossier.payments.v1")
    assert owner is not None and rekeyer.owner("dossier.repartition.v1") is None
    good = [("origin_topic", b"dossier.payments.v1"), ("origin_partition", b"4"),
            ("origin_offset", b"17")]  # fmt: skip
    assert rekeyer.origin("dossier.repartition.v1", good) == Origin("dossier.payments.v1", 4, 17)
    assert rekeyer.origin("feedback.repartition.v1", good) is None  # another family
    assert rekeyer.origin("dossier.repartition.v1", good[:2]) is None
    assert rekeyer.origin("dossier.repartition.v1", None) is None
    with pytest.raises(RepartitionTopicError, match="topics create"):
        Rekeyer(catalog).set_partitions({"dossier.payments.v1": 6})


def test_a_repartition_topic_partitioned_unlike_its_family_is_refused() -> None:
    from dossier_stream.stream.rekey import Rekeyer, RepartitionTopicError

    catalog = load_catalog()
    counts = {t.name: t.partitions for t in catalog.topics} | {"dossier.repartition.v1": 4}
    with pytest.raises(RepartitionTopicError, match=r"has 4 partitions and dossier\.\S+ 6"):
        Rekeyer(catalog).set_partitions(counts)
