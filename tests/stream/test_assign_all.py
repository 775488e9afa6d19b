"""A worker alone on its topics assigns itself every partition (``DOSSIER_ASSIGN_ALL``).

It joins no consumer group, so the embedded broker does not hold its start
for half the session timeout (3 s; the demo sets it). It still starts from
the group's commits and commits there as a member would. Another client
(kafka-python's admin, not the worker's aiokafka) reads the group: committed
offsets, and no member while the worker runs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from kafka import KafkaAdminClient  # type: ignore[import-untyped]

from dossier_stream.core.periods import monthly_report
from dossier_stream.core.registry import UnitRegistry
from dossier_stream.core.topics import load_catalog
from dossier_stream.core.workdays import WorkCalendar
from dossier_stream.settings import Settings
from dossier_stream.sim.simulate import SimConfig, simulate
from dossier_stream.stream.embedded import EmbeddedBroker
from dossier_stream.stream.runner import Worker, create_topics, open_store, produce_lines

pytestmark = pytest.mark.integration

_GROUP = "assign-all-test"


def _committed(admin: KafkaAdminClient) -> int:
    """The sum of the group's committed offsets, read by kafka-python."""
    offsets = admin.list_group_offsets(_GROUP)[_GROUP]
    return sum(o.offset for o in offsets.values() if o.offset > 0)


async def _group_state(bootstrap: str) -> tuple[str, int]:
    """The group's state and members (aiokafka's admin: kafka-python's rejects Tansu's answer)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        (described,) = await admin.describe_consumer_groups([_GROUP])
    finally:
        await admin.close()
    _error, _name, state, _kind, _protocol, members = described.groups[0]
    return state, len(members)


def test_a_lone_worker_reads_every_partition_and_commits_to_its_group(
    worker_settings: Callable[..., Settings],
    broker: EmbeddedBroker,
    registry: UnitRegistry,
    calendar: WorkCalendar,
) -> None:
    catalog = load_catalog()
    settings = worker_settings(app_id=_GROUP, flush_interval_s=0.5, assign_all=True)
    config = SimConfig(
        monthly_report(2024, 10), seed=5, dossiers=80, duplicate_rate=0.0, invalid_rate=0.0
    )
    lines = simulate(config, registry, calendar).lines
    first, second = lines[: len(lines) // 2], lines[len(lines) // 2 :]
    store = open_store(settings)
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    seen: dict[str, Any] = {}

    async def run(part: list[bytes], name: str) -> int:
        await produce_lines(settings, catalog, part)
        worker = Worker(settings, catalog, registry, calendar, store)
        await worker.start()
        try:
            assert await worker.wait_for(len(part), timeout=120), worker.processor.stats
            seen[f"{name} group"] = await _group_state(broker.bootstrap)
            seen[f"{name} rebalances"] = worker.rebalances
        finally:
            await worker.stop()
        seen[f"{name} committed"] = await asyncio.to_thread(_committed, admin)
        return worker.processor.stats.events_in

    async def scenario() -> tuple[int, int]:
        await create_topics(settings, catalog)
        return await run(first, "first"), await run(second, "second")

    try:
        read_first, read_second = asyncio.run(scenario())
        period = monthly_report(2024, 10)
        received = store.counters(period.start, period.end)
    finally:
        store.close()
        admin.close()
    # each worker read only what its group had not committed, and committed all it read
    assert (read_first, read_second) == (len(first), len(second))
    assert (seen["first committed"], seen["second committed"]) == (len(first), len(lines))
    # never a member: nothing joined, so nothing to rebalance (its one assignment counts)
    assert seen["first group"] == seen["second group"] == ("Empty", 0)
    assert seen["first rebalances"] == seen["second rebalances"] == 1
    assert sum(v for (_, _, c), v in received.items() if c == "received") == 80
