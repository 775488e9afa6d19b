"""The pure parts of issue 12 (A): tombstones in the engine, the co-partitioning decision."""

from __future__ import annotations

from datetime import date

from dossier_stream.core.copartition import copartitioned_groups, partition_count_problem
from dossier_stream.core.engine import Engine
from dossier_stream.core.registry import UnitRegistry
from dossier_stream.core.topics import load_catalog
from dossier_stream.core.workdays import WorkCalendar
from dossier_stream.sim import testing as t

REPORTS = "unit.reports.v1"
OCT = (date(2024, 9, 15), date(2024, 10, 14))
NOV = (date(2024, 10, 15), date(2024, 11, 14))


def _engine(registry: UnitRegistry, calendar: WorkCalendar) -> Engine:
    engine = Engine(registry, calendar, catalog=load_catalog())
    for unit, (start, end), total in (
        ("HP-Q-313", OCT, 40), ("HP-Q-313", NOV, 41), ("HP-SO-TUPHAP", OCT, 7),
    ):  # fmt: skip
        raw = t.encode(
            t.reported_totals(unit, start=start.isoformat(), end=end.isoformat(), total=total)
        )
        assert engine.process(raw, topic=REPORTS, partition=0, offset=0).kind == "applied"
    return engine


def test_a_tombstone_on_the_reports_topic_deletes_every_report_of_its_unit(
    registry: UnitRegistry, calendar: WorkCalendar
) -> None:
    engine = _engine(registry, calendar)
    out, deleted = engine.tombstone(b"HP-Q-313", topic=REPORTS, partition=0, offset=3)
    assert out.kind == "applied" and out.dead_letter is None and out.event is None
    assert set(deleted) == {("HP-Q-313", *OCT), ("HP-Q-313", *NOV)}
    assert deleted[("HP-Q-313", *OCT)][1] == 40  # what was deleted, for the store's row
    assert set(engine.reported) == {("HP-SO-TUPHAP", *OCT)}  # the other unit's report counts
    again, nothing = engine.tombstone(b"HP-Q-313", topic=REPORTS, partition=0, offset=3)
    assert again.kind == "duplicate" and nothing == {}
    # a report after the tombstone counts again
    later = t.reported_totals("HP-Q-313", start="2024-09-15", end="2024-10-14", total=44)
    assert engine.process(t.encode(later), topic=REPORTS).kind == "applied"
    assert engine.reported[("HP-Q-313", *OCT)][1] == 44
    assert (engine.stats.valid, engine.stats.duplicates, engine.stats.deadletter) == (5, 1, 0)
    assert engine.stats.events_in == 6


def test_a_null_value_elsewhere_or_without_a_key_is_a_dead_letter(
    registry: UnitRegistry, calendar: WorkCalendar
) -> None:
    engine = _engine(registry, calendar)
    for topic, key in (
        ("dossier.payments.v1", b"D1"), ("feedback.v1", b"F1"), (REPORTS, None), (REPORTS, b""),
        (REPORTS, b"\xff"),
    ):  # fmt: skip
        out, deleted = engine.tombstone(key, topic=topic, partition=1, offset=9)
        assert out.kind == "deadletter" and deleted == {}
        assert out.dead_letter is not None
        assert (out.dead_letter.code, out.dead_letter.topic) == ("null_value", topic)
        assert (out.dead_letter.partition, out.dead_letter.offset, out.dead_letter.raw) == (
            1, 9, b"",
        )  # fmt: skip
    assert len(engine.reported) == 3  # nothing deleted
    assert engine.stats.deadletter_by_code == {"null_value": 5}


def test_an_engine_without_a_catalog_knows_the_contract_reports_topic(
    registry: UnitRegistry, calendar: WorkCalendar
) -> None:
    engine = Engine(registry, calendar)
    raw = t.encode(t.reported_totals("HP-Q-313", start="2024-09-15", end="2024-10-14", total=1))
    engine.process(raw)
    out, deleted = engine.tombstone(b"HP-Q-313", topic=REPORTS)
    assert out.kind == "applied" and list(deleted) == [("HP-Q-313", *OCT)]


def test_the_dossier_topics_are_one_co_partitioned_group() -> None:
    catalog = load_catalog()
    groups = copartitioned_groups(catalog)
    # the repartition topic of a family is co-partitioned with it (re-keyed input lands there)
    assert set(groups["dossier"]) == {t.name for t in catalog.dossier_topics} | {
        "dossier.repartition.v1"
    }
    assert set(groups["feedback"]) == {"feedback.v1", "feedback.repartition.v1"}
    assert all(catalog.deadletter.name not in names for names in groups.values())


def test_partition_counts_that_differ_stop_the_worker_with_what_to_run() -> None:
    catalog = load_catalog()
    counts = {t.name: t.partitions for t in catalog.topics}
    assert partition_count_problem(catalog, counts) is None
    feedback = partition_count_problem(catalog, {**counts, "feedback.v1": 9})
    assert feedback is not None and "feedback.repartition.v1" in feedback
    odd = {**counts, "dossier.payments.v1": 3, "dossier.progress.v1": 8}
    problem = partition_count_problem(catalog, odd, "kafka:9092")
    assert problem is not None
    first, second = problem.splitlines()
    assert "dossier.payments.v1=3" in first and "dossier.progress.v1=8" in first
    assert "dossier.submissions.v1=6" in first
    # partitions can only be added: every topic below the largest count gets an --alter
    assert "--alter --topic dossier.payments.v1 --partitions 8" in second
    assert "--alter --topic dossier.submissions.v1 --partitions 8" in second
    assert "--alter --topic dossier.progress.v1" not in second
    assert second.endswith("dossier-stream topics create")
    missing = {k: v for k, v in counts.items() if k != "dossier.digitization.v1"}
    problem = partition_count_problem(catalog, missing)
    assert problem is not None and "dossier.digitization.v1" in problem
    assert problem.endswith("dossier-stream topics create")
