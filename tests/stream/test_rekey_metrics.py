"""The re-keying's and the held partitions' metrics, on a private registry."""

from __future__ import annotations

from dossier_stream.core.engine import Engine, Outcome
from dossier_stream.core.registry import UnitRegistry
from dossier_stream.core.workdays import WorkCalendar
from dossier_stream.sim import testing as t
from dossier_stream.stream.metrics import Metrics
from dossier_stream.stream.processor import Handled


def _samples(metrics: Metrics, name: str) -> dict[tuple[str, ...], float]:
    return {
        tuple(s.labels.values()): s.value
        for family in metrics.registry.collect()
        if family.name == name
        for s in family.samples
        if not s.name.endswith("_created")
    }


def test_rerouted_messages_are_counted_by_arrival_topic_and_not_consumed(
    registry: UnitRegistry, calendar: WorkCalendar
) -> None:
    event = Engine(registry, calendar).parse(t.encode(t.received("D-1", "HP-Q-313")))
    assert not hasattr(event, "reason")
    metrics = Metrics()
    rerouted = Handled("dossier:1", "dossier.submissions.v1", Outcome("rerouted", event=event))
    applied = Handled("dossier:4", "dossier.submissions.v1", Outcome("applied", event=event))
    metrics.observe([rerouted, rerouted, applied])
    assert _samples(metrics, "dossier_stream_rerouted") == {("dossier.submissions.v1",): 2.0}
    consumed = _samples(metrics, "dossier_stream_events_consumed")
    assert consumed == {("dossier.submissions.v1", "dossier.received"): 1.0}  # where folded


def test_held_partitions_are_1_then_0_and_gone_once_revoked() -> None:
    metrics = Metrics()
    a, b = ("dossier.payments.v1", 0), ("feedback.v1", 1)
    metrics.set_held({a: 51}, [a, b])
    assert _samples(metrics, "dossier_stream_partition_undecodable") == {
        ("dossier.payments.v1", "0"): 1.0
    }
    metrics.set_held({}, [a, b])  # it decodes again
    assert _samples(metrics, "dossier_stream_partition_undecodable") == {
        ("dossier.payments.v1", "0"): 0.0
    }
    metrics.set_held({}, [b])  # revoked
    assert _samples(metrics, "dossier_stream_partition_undecodable") == {}
