"""The project's partitioner against two independent ones, and the engine's re-route outcome."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from dossier_stream.core import partitioner
from dossier_stream.core.engine import Engine
from dossier_stream.core.partitioner import murmur2, partition_for
from dossier_stream.core.registry import UnitRegistry
from dossier_stream.core.topics import load_catalog
from dossier_stream.core.workdays import WorkCalendar
from dossier_stream.sim import testing as t


class _Cluster:
    """The part of kafka-python's ClusterMetadata its partitioner reads."""

    def __init__(self, partitions: list[int]) -> None:
        self.partitions = partitions

    def topics(self) -> set[str]:
        return {"t"}

    def partitions_for_topic(self, topic: str) -> set[int]:
        return set(self.partitions)

    def available_partitions_for_topic(self, topic: str) -> set[int]:
        return set(self.partitions)


@given(st.text(max_size=80), st.integers(1, 64))
def test_partition_for_is_kafkas_default_partitioner_in_two_other_clients(
    key: str, partitions: int
) -> None:
    from aiokafka.partitioner import DefaultPartitioner
    from kafka.partitioner.default import DefaultPartitioner as KafkaPythonPartitioner

    data = key.encode()
    every = list(range(partitions))
    want = partition_for(key, partitions)
    assert DefaultPartitioner()(data, every, every) == want
    assert KafkaPythonPartitioner().partition("t", None, data, None, None, _Cluster(every)) == want


@given(st.binary(max_size=64))
def test_murmur2_is_the_java_clients(data: bytes) -> None:
    from aiokafka.partitioner import murmur2 as aiokafka_murmur2

    assert murmur2(data) == aiokafka_murmur2(data) & 0xFFFFFFFF


def test_both_routes_of_murmur2_are_kafka_python_s_and_aiokafka_s_on_random_keys() -> None:
    """The native route (what runs compiled) and the words' route, on 30.000 seeded keys."""
    import random

    from aiokafka.partitioner import murmur2 as aiokafka_murmur2
    from kafka.partitioner.default import murmur2 as kafka_python_murmur2

    rnd = random.Random(18)
    keys = [rnd.randbytes(rnd.randrange(0, 90)) for _ in range(20_000)]
    keys += [f"{rnd.choice('ABCDEFGH')}-{rnd.randrange(10**12)}".encode() for _ in range(10_000)]
    for data in keys:
        want = aiokafka_murmur2(data) & 0xFFFFFFFF
        assert kafka_python_murmur2(data) & 0xFFFFFFFF == want
        assert murmur2(data) == want
        assert partitioner.murmur2_bytes(data) == want
        assert partitioner.murmur2_words(data) == want


def test_known_values() -> None:
    # Kafka's Java client: Utils.murmur2("21".getBytes()) == -973932308 (its unit test)
    assert murmur2(b"21") == -973932308 & 0xFFFFFFFF
    assert murmur2(b"") == 275646681


def test_an_event_off_its_partition_is_rerouted_not_folded(
    registry: UnitRegistry, calendar: WorkCalendar
) -> None:
    catalog = load_catalog()
    engine = Engine(registry, calendar, catalog=catalog)
    raw = t.encode(t.received("D-1", "HP-Q-313"))
    home = partition_for("D-1", 6)
    away = (home + 1) % 6

    def owner(event: object) -> int:
        return partition_for(event.dossier_id, 6)  # type: ignore[attr-defined]

    out = engine.process(raw, topic="dossier.submissions.v1", partition=away, owner=owner)
    assert out.kind == "rerouted" and out.event is not None and out.delta == {}
    assert engine.dossiers == {} and engine.counters == {}
    assert engine.stats.events_in == 0
    assert engine.stats.rerouted_by_topic == {"dossier.submissions.v1": 1}
    out = engine.process(raw, topic="dossier.submissions.v1", partition=home, owner=owner)
    assert out.kind == "applied" and "D-1" in engine.dossiers
    assert engine.stats.events_in == 1 and engine.stats.rerouted == 1
    # invalid input is dead-lettered where it arrives: it has no trusted key
    out = engine.process(b"{", topic="dossier.submissions.v1", partition=away, owner=owner)
    assert out.kind == "deadletter" and engine.stats.rerouted == 1
