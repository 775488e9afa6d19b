""":class:`~dossier_stream.core.partitioner.KeyOwner`: the re-keying check's partition of a key."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from dossier_stream.core.partitioner import KeyOwner, partition_for


def test_a_key_owner_is_the_partitioner_of_the_key_and_hashes_each_key_once() -> None:
    hashed: list[str] = []

    def counting(key: str, partitions: int) -> int:
        hashed.append(key)
        return partition_for(key, partitions)

    owner = KeyOwner(lambda event: event.dossier_id, 6, bound=4, hasher=counting)
    keys = ["D-1", "D-2", "D-3", "D-1", "D-2", "D-3"]
    events: list[Any] = [SimpleNamespace(dossier_id=k) for k in keys]
    assert [owner(e) for e in events] == [partition_for(k, 6) for k in keys]
    assert hashed == keys[:3]
    # past the bound the memory is emptied at once, and the answers do not change
    more: list[Any] = [SimpleNamespace(dossier_id=f"D-{i}") for i in range(10)]
    assert [owner(e) for e in more] == [partition_for(f"D-{i}", 6) for i in range(10)]
    assert len(owner.seen) <= 4


def test_a_key_owner_defaults_to_kafkas_partitioner() -> None:
    owner = KeyOwner(lambda event: event["k"], 12)
    assert all(owner({"k": f"F-{i}"}) == partition_for(f"F-{i}", 12) for i in range(50))
