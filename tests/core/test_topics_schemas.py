"""The topic catalog and the checked-in JSON Schemas."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from click.testing import CliRunner

from dossier_stream.cli.main import main
from dossier_stream.core.events import EVENT_TYPES
from dossier_stream.core.topics import CONTRACT_TOPICS, CatalogError, load_catalog
from dossier_stream.sim import testing as t

REPO = Path(__file__).resolve().parents[2]


def test_bundled_catalog_agrees_with_the_contract() -> None:
    cat = load_catalog()
    for event_type in EVENT_TYPES:
        assert event_type in CONTRACT_TOPICS[cat.topic_for(event_type)]
    assert cat.deadletter.name == "dossier.deadletter.v1"
    assert len({t.partitions for t in cat.dossier_topics}) == 1
    assert cat.get("unit.reports.v1").config() == {"cleanup.policy": "compact"}


def test_repository_catalog_is_the_bundled_one() -> None:
    assert load_catalog(REPO / "streams" / "topics.yaml") == load_catalog()


BASE = (REPO / "streams" / "topics.yaml").read_text("utf-8")


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (
            "name: dossier.payments.v1\n    event_types: [dossier.payment]\n    key: dossier_id\n"
            "    partitions: 6",
            "name: dossier.payments.v1\n    event_types: [dossier.payment]\n"
            "    key: dossier_id\n    partitions: 3",
            "co-partitioned",
        ),
        (
            "event_types: [dossier.digitized]",
            "event_types: [dossier.digitized, dossier.completed]",
            "must carry exactly",
        ),
        ("name: feedback.v1", "name: feedback.v2", "contract topic 'feedback.v1' is missing"),
        ("    deadletter: true\n", "", "deadletter"),
        ("partitions: 2", "partitions: 0", "greater than or equal to 1"),
        (
            "  - name: unit.repartition.v1\n",
            "  - name: other.repartition.v1\n",
            "must be named after a family of input topics",
        ),
        (
            "name: feedback.repartition.v1\n    event_types: []\n    key: feedback_id\n"
            "    partitions: 2",
            "name: feedback.repartition.v1\n    event_types: []\n    key: feedback_id\n"
            "    partitions: 3",
            "must be keyed by feedback_id with the 2 partitions of feedback.v1",
        ),
        (
            "name: dossier.repartition.v1\n    event_types: []\n    key: dossier_id",
            "name: dossier.repartition.v1\n    event_types: []\n    key: unit_code",
            "must be keyed by dossier_id",
        ),
        ("    repartition: true\n", "", r"no repartition topic \(repartition: true\) for dossier"),
    ],
)
def test_broken_catalogs_are_rejected_with_the_problem(
    tmp_path: Path, old: str, new: str, message: str
) -> None:
    assert old in BASE
    path = tmp_path / "topics.yaml"
    path.write_text(BASE.replace(old, new, 1), "utf-8")
    with pytest.raises(CatalogError, match=message):
        load_catalog(path)


def test_missing_catalog_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match="cannot read topic catalog"):
        load_catalog(tmp_path / "nope.yaml")


def test_checked_in_schemas_are_up_to_date() -> None:
    result = CliRunner().invoke(
        main, ["schemas", "export", "--check", "--dir", str(REPO / "schemas")]
    )
    assert result.exit_code == 0, result.output


def test_check_fails_when_schemas_are_stale(tmp_path: Path) -> None:
    runner = CliRunner()
    assert runner.invoke(main, ["schemas", "export", "--dir", str(tmp_path)]).exit_code == 0
    assert (
        runner.invoke(main, ["schemas", "export", "--check", "--dir", str(tmp_path)]).exit_code == 0
    )
    victim = tmp_path / "dossier.payment.schema.json"
    victim.write_text(victim.read_text().replace('"minimum": 0', '"minimum": 1'))
    (tmp_path / "dossier.renamed.schema.json").write_text("{}")
    result = runner.invoke(main, ["schemas", "export", "--check", "--dir", str(tmp_path)])
    assert result.exit_code == 1
    assert "dossier.payment.schema.json: differs" in result.output
    assert "dossier.renamed.schema.json: not generated" in result.output


def test_schemas_accept_valid_events_and_reject_naive_timestamps() -> None:
    schema = json.loads((REPO / "schemas" / "event.schema.json").read_text())
    validator = jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )
    validator.validate(t.received("D1", "U1"))
    validator.validate(t.reported_totals("U1", start="2024-09-15", end="2024-10-14", total=3))
    with pytest.raises(jsonschema.ValidationError):
        validator.validate(t.received("D1", "U1") | {"received_at": "2024-10-03T08:15:00"})
    no_due = t.received("D1", "U1")
    del no_due["processing_working_days"]
    with pytest.raises(jsonschema.ValidationError):
        validator.validate(no_due)
