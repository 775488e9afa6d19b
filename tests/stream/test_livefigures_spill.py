"""The live figures with their index of open dossiers spilled to disk equal those kept in memory."""

from __future__ import annotations

import zlib
from datetime import datetime, timedelta
from pathlib import Path

import orjson

from dossier_stream.core.engine import Engine
from dossier_stream.core.periods import monthly_report
from dossier_stream.core.registry import UnitRegistry
from dossier_stream.core.topics import load_catalog
from dossier_stream.core.workdays import VN_TZ, WorkCalendar
from dossier_stream.sim.simulate import SimConfig, simulate
from dossier_stream.stream.livefigures import LiveFigures
from dossier_stream.stream.processor import Handled, source_of


def _routed(lines: list[bytes]) -> list[tuple[str, str, bytes]]:
    """(source, topic, raw) per line, dossiers over three partitions; half the completions lost."""
    catalog = load_catalog()
    out = []
    for raw in lines:
        try:
            obj = orjson.loads(raw)
            topic = catalog.topic_for(obj["event_type"])
        except (orjson.JSONDecodeError, KeyError, TypeError):
            continue
        key = str(obj.get("dossier_id") or obj.get("feedback_id") or obj.get("unit_code") or "")
        if topic == "dossier.completed" and zlib.crc32(key.encode()) % 2 == 0:
            continue  # left open: due times pass while the clock moves
        partition = zlib.crc32(key.encode()) % 3 if topic.startswith("dossier.") else 0
        out.append((source_of(topic, partition), topic, raw))
    return out


def test_a_spilled_index_gives_the_same_figures_at_every_step(
    registry: UnitRegistry, calendar: WorkCalendar, tmp_path: Path
) -> None:
    period = monthly_report(2024, 10)
    sim = simulate(SimConfig(period=period, seed=5, dossiers=500, feedback=20), registry, calendar)
    clock = [datetime(2024, 10, 1, 8, 0, tzinfo=VN_TZ)]
    engines: dict[str, Engine] = {}
    catalog = load_catalog()
    memory = LiveFigures(registry, clock=lambda: clock[0])
    spilled = LiveFigures(
        registry, clock=lambda: clock[0], spill=tmp_path / "live", index_entries=3
    )
    items = _routed(sim.lines)
    assert len(items) > 1_000
    checked = 0
    for start in range(0, len(items), 40):  # batches of 40 messages
        handled = []
        for source, topic, raw in items[start : start + 40]:
            engine = engines.setdefault(source, Engine(registry, calendar, catalog=catalog))
            handled.append(Handled(source, topic, engine.process(raw, topic=topic)))
        memory.update(handled, engines)
        spilled.update(handled, engines)
        # an hour a batch (due times pass), and two days every 20 batches: a new day sums
        # everything again, so most snapshots come from the updates alone
        clock[0] += timedelta(hours=1 if checked % 20 else 48)
        assert spilled.snapshot(engines) == memory.snapshot(engines)
        assert spilled.indexed() == memory.indexed()
        checked += 1
    clock[0] = datetime(2024, 11, 10, 20, 0, tzinfo=VN_TZ)  # the next period: summed again
    final = memory.snapshot(engines)
    assert spilled.snapshot(engines) == final
    assert sum(final.open.values()) > 50 and sum(final.past_due.values()) > 0
    assert checked > 10
    assert any((tmp_path / "live").iterdir())  # something was spilled
    # revoking a source drops what it spilled; the rest stays equal
    del engines["dossier:1"]
    assert spilled.snapshot(engines) == memory.snapshot(engines)
    spilled.close()
    assert not any((tmp_path / "live").iterdir())


def test_sources_loaded_at_their_recovery_give_the_figures_of_sources_loaded_after_a_batch(
    registry: UnitRegistry, calendar: WorkCalendar, tmp_path: Path
) -> None:
    """``load`` right after recovery (``Processor.on_recovered``), then every batch added."""
    period = monthly_report(2024, 10)
    sim = simulate(SimConfig(period=period, seed=7, dossiers=300, feedback=20), registry, calendar)
    clock = [datetime(2024, 10, 1, 8, 0, tzinfo=VN_TZ)]
    engines: dict[str, Engine] = {}
    catalog = load_catalog()
    after = LiveFigures(registry, clock=lambda: clock[0])  # summed by update, after a batch
    early = LiveFigures(registry, clock=lambda: clock[0], spill=tmp_path / "live", index_entries=5)
    items = _routed(sim.lines)
    seen: dict[str, list[tuple[str, bytes]]] = {}
    batches = [items[start : start + 40] for start in range(0, len(items), 40)]
    for n, batch in enumerate(batches):
        if n == len(batches) // 2:  # dossier:1 reassigned: a new engine, recovered from its past
            engine = Engine(registry, calendar, catalog=catalog)
            for topic, raw in seen["dossier:1"]:
                engine.process(raw, topic=topic)
            engines["dossier:1"] = engine
            early.load(engines)
            assert early._sources["dossier:1"].engine is engine  # summed now, not by update
        handled = []
        for source, topic, raw in batch:
            engine = engines.get(source)
            if engine is None:  # recovered empty: loaded before its first message is folded
                engine = engines[source] = Engine(registry, calendar, catalog=catalog)
                early.load(engines)
            seen.setdefault(source, []).append((topic, raw))
            handled.append(Handled(source, topic, engine.process(raw, topic=topic)))
        after.update(handled, engines)
        early.update(handled, engines)
        clock[0] += timedelta(hours=5)  # due times pass; a new day sums everything again
        assert early.snapshot(engines) == after.snapshot(engines)
        assert early.indexed() == after.indexed()
    clock[0] = datetime(2024, 11, 10, 20, 0, tzinfo=VN_TZ)  # the next period: summed again
    final = after.snapshot(engines)
    assert early.snapshot(engines) == final
    assert sum(final.open.values()) > 20 and sum(final.past_due.values()) > 0
    early.close()
