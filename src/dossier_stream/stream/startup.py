"""Checks the worker runs against the broker before it joins its group.

:func:`check_partition_counts` reads the partition counts of the catalog's
co-partitioned topics and raises :class:`StartupError` (a message of two
lines, see :func:`~dossier_stream.core.copartition.partition_count_problem`)
when they disagree: a worker that started anyway would fold one dossier's
events on two members, and every figure of those dossiers would be wrong
without a single error.
"""

from __future__ import annotations

import asyncio
import logging

from dossier_stream.core.copartition import copartitioned_groups, partition_count_problem
from dossier_stream.core.topics import TopicCatalog
from dossier_stream.settings import Settings

__all__ = ["StartupError", "check_partition_counts", "partition_counts"]

_LOG = logging.getLogger(__name__)


class StartupError(RuntimeError):
    """The worker must not start; the message says why and what to run."""


async def partition_counts(settings: Settings, topics: list[str]) -> dict[str, int]:
    """Partition count per existing topic among ``topics``, as the broker reports it."""
    from aiokafka.admin import AIOKafkaAdminClient  # noqa: PLC0415

    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.bootstrap_servers, **settings.kafka_options()
    )
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = [t for t in topics if t in existing]
        described = await admin.describe_topics(wanted) if wanted else []
    finally:
        await admin.close()
    return {
        d["topic"]: len(d["partitions"])
        for d in described
        if d.get("error_code", 0) == 0 and d.get("partitions")
    }


async def check_partition_counts(
    settings: Settings, catalog: TopicCatalog, *, timeout: float = 30.0
) -> None:
    """Refuse to start when co-partitioned topics disagree on their partition count.

    A broker that cannot be asked within ``timeout`` seconds is logged and
    the start goes on (the consumer then reports the broker as it does).

    Raises:
        StartupError: a family of co-partitioned topics has two counts, or
            one of its topics is missing.
    """
    topics = [name for names in copartitioned_groups(catalog).values() for name in names]
    reading = asyncio.ensure_future(partition_counts(settings, topics))
    done, _ = await asyncio.wait({reading}, timeout=timeout)
    if not done:
        reading.cancel()
        _LOG.warning("partition counts not checked: no answer from the broker in %s s", timeout)
        return
    if (exc := reading.exception()) is not None:
        _LOG.warning("partition counts not checked: %s", exc)
        return
    problem = partition_count_problem(catalog, reading.result(), settings.bootstrap_servers)
    if problem is not None:
        raise StartupError(problem)
