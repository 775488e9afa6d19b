"""``produce_lines`` against the embedded broker: where every line lands, in what order.

The producer packs record batches itself (:mod:`dossier_stream.stream.produce`);
these tests read everything back and check what the worker relies on: each
keyed line on the partition :func:`partition_for` gives its key, the file's
order within every partition, unroutable lines on the dead-letter topic with
their reason, and progress that adds up to what was sent.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson

from dossier_stream.core.partitioner import partition_for
from dossier_stream.core.periods import monthly_report
from dossier_stream.core.registry import UnitRegistry
from dossier_stream.core.topics import TopicCatalog, load_catalog
from dossier_stream.core.workdays import WorkCalendar
from dossier_stream.settings import Settings
from dossier_stream.sim.simulate import SimConfig, simulate
from dossier_stream.stream.embedded import EmbeddedBroker
from dossier_stream.stream.produce import CHUNK
from dossier_stream.stream.runner import create_topics, produce_lines

_KEYS = {"dossier": "dossier_id", "feedback": "feedback_id", "unit": "unit_code"}


async def _read_all(bootstrap: str, catalog: TopicCatalog, n: int) -> dict[tuple[str, int], Any]:
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(
        *[t.name for t in catalog.topics],
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    got: dict[tuple[str, int], list[Any]] = {}
    try:
        for _ in range(200):
            if sum(len(v) for v in got.values()) >= n:
                break
            for tp, records in (await consumer.getmany(timeout_ms=500)).items():
                got.setdefault((tp.topic, tp.partition), []).extend(records)
    finally:
        await consumer.stop()
    return got


def test_every_line_lands_on_its_keys_partition_in_file_order(
    broker: EmbeddedBroker, registry: UnitRegistry, calendar: WorkCalendar
) -> None:
    sim = simulate(
        SimConfig(monthly_report(2024, 10), seed=3, dossiers=2_500, invalid_rate=0.01),
        registry,
        calendar,
    )
    lines = [*sim.lines, b'{"event_type": "nobody.carries.this"}', b"not json"]
    settings = Settings().model_copy(update={"bootstrap_servers": broker.bootstrap})
    catalog = load_catalog(settings.topics_file)
    asyncio.run(create_topics(settings, catalog))
    acked: list[int] = []
    stats = asyncio.run(
        produce_lines(settings, catalog, lines, source="test", progress=acked.append)
    )
    assert stats.sent == len(lines) > 2 * CHUNK
    assert sum(acked) == len(lines) and len(acked) == -(-len(lines) // CHUNK)

    got = asyncio.run(_read_all(broker.bootstrap, catalog, len(lines)))
    assert sum(len(v) for v in got.values()) == len(lines)
    counts: dict[str, int] = {}
    for (topic, _), records in got.items():
        counts[topic] = counts.get(topic, 0) + len(records)
    assert counts == stats.per_topic

    position: dict[bytes, int] = {}  # line number of each value sent once (not a duplicate)
    for i, raw in enumerate(lines):
        position[raw] = -1 if raw in position else i
    partitions = {t: 1 + max(p for (tt, p) in got if tt == t) for t, _ in got}
    dead = catalog.deadletter.name
    keyed = 0
    for (topic, partition), records in got.items():
        order = [position[r.value] for r in records if position[r.value] >= 0]
        assert order == sorted(order), f"{topic}:{partition} out of the file's order"
        for r in records:
            if topic == dead:
                headers = dict(r.headers)
                assert headers["reason"] == b"unroutable"
                assert headers["source_topic"] == b"test"
                continue
            key = orjson.loads(r.value).get(_KEYS[topic.split(".", 1)[0]])
            if isinstance(key, str):
                keyed += 1
                assert r.key == key.encode()
                assert partition == partition_for(key, partitions[topic])
            else:
                assert r.key is None  # the worker dead-letters it
    assert stats.unroutable == len(got.get((dead, 0), ())) >= 2
    assert keyed > 0.9 * len(lines)


def test_a_paced_feed_is_not_held_back_in_open_batches(broker: EmbeddedBroker) -> None:
    """With ``rate`` each line reaches the broker within a few ms, not when a batch fills."""
    settings = Settings().model_copy(update={"bootstrap_servers": broker.bootstrap})
    catalog = load_catalog(settings.topics_file)
    asyncio.run(create_topics(settings, catalog))
    lines = [
        orjson.dumps({"event_type": "dossier.received", "dossier_id": f"D-{i}", "unit_code": "X"})
        for i in range(200)
    ]

    async def run() -> list[float]:
        from aiokafka import AIOKafkaConsumer

        consumer = AIOKafkaConsumer(
            "dossier.submissions.v1",
            bootstrap_servers=broker.bootstrap,
            group_id=None,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=10,
        )
        await consumer.start()
        feed = asyncio.create_task(produce_lines(settings, catalog, lines, rate=100))
        delays: list[float] = []  # from entering its batch (the record's timestamp) to here
        try:
            while len(delays) < len(lines):
                for records in (await consumer.getmany(timeout_ms=200)).values():
                    now = time.time()
                    delays += [now - r.timestamp / 1000 for r in records]
        finally:
            await feed
            await consumer.stop()
        return delays

    delays = sorted(asyncio.run(run()))
    # 200 small lines over 2 s never fill a 256 KiB batch: held until the end, most would
    # wait a second or more; the linger bounds it (the slack is for a loaded machine)
    assert delays[len(delays) // 2] < 0.25


def test_every_codec_round_trips(broker: EmbeddedBroker) -> None:
    """Lines published with every codec (batches built here, then compressed) read back whole."""
    from dossier_stream.stream.produce import COMPRESSION_CODECS

    settings = Settings().model_copy(update={"bootstrap_servers": broker.bootstrap})
    catalog = load_catalog(settings.topics_file)
    asyncio.run(create_topics(settings, catalog))
    sent: list[bytes] = []
    for codec in COMPRESSION_CODECS:
        lines = [
            orjson.dumps({"event_type": "unit.reported_totals", "unit_code": f"U{i}", "c": codec})
            for i in range(300)
        ]
        stats = asyncio.run(produce_lines(settings, catalog, lines, compression=codec))
        assert stats.per_topic == {"unit.reports.v1": 300}
        sent += lines
    got = asyncio.run(_read_all(broker.bootstrap, catalog, len(sent)))
    assert sorted(r.value for records in got.values() for r in records) == sorted(sent)
