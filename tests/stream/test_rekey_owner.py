"""The owner functions of :class:`~dossier_stream.stream.rekey.Rekeyer` (no broker)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from dossier_stream.core.partitioner import partition_for
from dossier_stream.core.topics import CONTRACT_TOPICS, family_of, load_catalog
from dossier_stream.stream import rekey
from dossier_stream.stream.rekey import Rekeyer


@pytest.fixture
def hashed(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The keys the owner functions hash, in order."""
    seen: list[str] = []

    def counting(key: str, partitions: int) -> int:
        seen.append(key)
        return partition_for(key, partitions)

    monkeypatch.setattr(rekey, "partition_for", counting)
    return seen


def _rekeyer(**kwargs: int) -> Rekeyer:
    catalog = load_catalog()
    rekeyer = Rekeyer(catalog, **kwargs)
    rekeyer.set_partitions({t.name: t.partitions for t in catalog.topics})
    return rekeyer


def test_the_topics_of_a_family_share_one_owner_and_its_memory(hashed: list[str]) -> None:
    rekeyer = _rekeyer()
    dossier_topics = [t for t in CONTRACT_TOPICS if family_of(t) == "dossier"]
    assert len(dossier_topics) == 4
    owners = {id(rekeyer.owner(t)) for t in dossier_topics}
    assert len(owners) == 1
    assert rekeyer.owner("feedback.v1") is not rekeyer.owner(dossier_topics[0])
    event: Any = SimpleNamespace(dossier_id="HP-Q-305-02-240806-000001")
    parts = {rekeyer.owner(t)(event) for t in dossier_topics}  # type: ignore[misc]
    assert parts == {partition_for(event.dossier_id, 6)}
    assert hashed == [event.dossier_id]  # hashed once for the four topics


def test_owners_agree_with_the_partitioner_past_the_memory_bound(hashed: list[str]) -> None:
    rekeyer = _rekeyer(remembered=8)
    owner = rekeyer.owner("dossier.progress.v1")
    assert owner is not None
    keys = [f"D-{i}" for i in range(30)]
    for _ in range(2):
        for key in keys:
            assert owner(SimpleNamespace(dossier_id=key)) == partition_for(key, 6)  # type: ignore[arg-type]
    assert len(hashed) == 60  # a memory of 8 keys forgets each of 30 before it comes back
