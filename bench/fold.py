"""Micro-benchmark of the functional core: ``Engine.process`` and the fact row.

``python -m bench.fold [--events N]`` routes the benchmark's workload (the
simulator's month, :func:`bench.workload.simulate_events`) as ``produce``
does and times, per routed line: ``parse`` (:func:`~dossier_stream.core.events.parse_event`),
``process`` (:meth:`~dossier_stream.core.engine.Engine.process`: parse, checks, fold,
counter delta; one fresh engine per topic family), ``fact`` and ``dumps``
(:func:`~dossier_stream.stream.processor.dossier_fact` and
:func:`~dossier_stream.store.codec.dumps_dossier` of the state each applied dossier
event left, per state) and ``fold`` (``process`` plus ``fact``: the worker's
fold). Each figure is the best of ``--repeat`` runs (``time.perf_counter``).
Like the worker, the timed fold keeps the states, not the outcomes nor a list
of lines (see :class:`Feed`): what stays alive is what the garbage collector
walks. ``--check`` prints a SHA-256 over every observable result (outcomes,
deltas and counters in their order, dead letters, encoded states, fact rows)
to compare two versions of the source on the same workload.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import hashlib
import time
from array import array
from collections.abc import Callable, Iterator, Sequence

import orjson

from dossier_stream.core.engine import Engine, Outcome, PipelineStats
from dossier_stream.core.events import DossierEvent, InvalidEvent, parse_event
from dossier_stream.core.lifecycle import DossierState
from dossier_stream.core.registry import UnitRegistry
from dossier_stream.core.topics import TopicCatalog, load_catalog
from dossier_stream.core.workdays import WorkCalendar
from dossier_stream.store.codec import dumps_dossier, dumps_feedback
from dossier_stream.stream.processor import dossier_fact

__all__ = ["Feed", "main"]


class Feed:
    """The lines a topic carries, routed by ``event_type`` as ``produce`` does.

    The others (the dead-letter topic's) are only counted: ``unroutable``.
    One bytes blob with offsets, not a list of lines, whose 100.000 references
    every full garbage collection would visit: the worker holds one batch.
    Iterating yields ``(topic, line)``, each line a fresh ``bytes``.
    """

    def __init__(self, lines: Sequence[bytes], catalog: TopicCatalog) -> None:
        self.topics: list[str] = []
        self.ends, self.topic_ids = array("q"), array("B")
        self.unroutable, routed = 0, []
        for raw in lines:
            try:
                obj = orjson.loads(raw)
                event_type = obj["event_type"] if isinstance(obj, dict) else None
                topic = catalog.topic_for(event_type if isinstance(event_type, str) else "")
            except (orjson.JSONDecodeError, KeyError):
                self.unroutable += 1
                continue
            if topic not in self.topics:
                self.topics.append(topic)
            self.topic_ids.append(self.topics.index(topic))
            self.ends.append((self.ends[-1] if self.ends else 0) + len(raw))
            routed.append(raw)
        self.blob = b"".join(routed)

    def __len__(self) -> int:
        return len(self.ends)

    def __iter__(self) -> Iterator[tuple[str, bytes]]:
        blob, topics, start = self.blob, self.topics, 0
        for end, topic in zip(self.ends, self.topic_ids, strict=True):
            yield topics[topic], blob[start:end]
            start = end


def _fold(
    feed: Feed,
    registry: UnitRegistry,
    calendar: WorkCalendar,
    catalog: TopicCatalog,
    outcomes: list[Outcome] | None = None,
) -> dict[str, Engine]:
    """Process every line, one fresh engine per topic family; outcomes kept if asked."""
    families = ("dossier", "feedback", "unit")
    engines = {f: Engine(registry, calendar, catalog=catalog) for f in families}
    for offset, (topic, raw) in enumerate(feed):
        engine = engines[topic.split(".", 1)[0]]
        outcome = engine.process(raw, topic=topic, partition=0, offset=offset)
        if outcomes is not None:
            outcomes.append(outcome)
    return engines


def _applied_states(
    feed: Feed, registry: UnitRegistry, calendar: WorkCalendar
) -> list[DossierState]:
    """Replay the dossier lines, keeping the state after each applied event."""
    states: list[DossierState] = []
    engine = Engine(registry, calendar)
    for topic, raw in feed:
        if topic.startswith("dossier."):
            out = engine.process(raw)
            if out.kind == "applied" and isinstance(out.event, DossierEvent):
                states.append(engine.dossiers[out.event.dossier_id])
    return states


def _best(run: Callable[[], object], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        gc.collect()
        t0 = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - t0)
    return best


def _each(encode: Callable[[DossierState], object], states: Sequence[DossierState]) -> None:
    for state in states:  # keeping none of the results: the sink keeps one batch
        encode(state)


def _parse_all(feed: Feed) -> None:
    for _, raw in feed:
        with contextlib.suppress(InvalidEvent):
            parse_event(raw)


def fingerprint(
    outcomes: Sequence[Outcome], engines: dict[str, Engine], states: Sequence[DossierState]
) -> str:
    """SHA-256 over every observable result of a fold (see the module docs)."""
    h = hashlib.sha256()
    for out in outcomes:
        dead, event = out.dead_letter, out.event
        h.update(repr((out.kind, list(out.delta.items()), dead and dead.to_json())).encode())
        h.update(b"-" if event is None else event.model_dump_json().encode())
    for family, engine in sorted(engines.items()):
        totals = (list(engine.counters.items()), engine.stats.to_json())
        h.update(repr((family, totals, sorted(engine.reported.items()))).encode())
        for key in sorted(engine.dossiers):
            h.update(dumps_dossier(engine.dossiers[key]))
        for key in sorted(engine.feedback):
            h.update(dumps_feedback(engine.feedback[key]))
    for state in states:
        h.update(repr(dossier_fact(state, "dossier:0")).encode())
    return h.hexdigest()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the micro-benchmark and print µs per event."""
    parser = argparse.ArgumentParser(prog="python -m bench.fold", description=__doc__)
    parser.add_argument("--events", type=int, default=100_000, help="simulated lines")
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure (best kept)")
    parser.add_argument("--check", action="store_true", help="print a results fingerprint")
    args = parser.parse_args(argv)

    from bench.workload import simulate_events  # noqa: PLC0415

    registry, calendar = UnitRegistry.load_default(), WorkCalendar.default()
    catalog = load_catalog()
    feed = Feed(simulate_events(args.events, registry, calendar), catalog)
    n = len(feed)  # routed lines
    if args.check:
        outcomes: list[Outcome] = []
        engines = _fold(feed, registry, calendar, catalog, outcomes)
        states = _applied_states(feed, registry, calendar)
        print(f"fingerprint {fingerprint(outcomes, engines, states)}")
        del outcomes, engines, states  # out of the heap the collector walks while timing
    stats = PipelineStats()
    for engine in _fold(feed, registry, calendar, catalog).values():  # warm-up
        stats.add(engine.stats)
    print(
        f"{n + feed.unroutable} lines: {n} routed ({feed.unroutable} unroutable): "
        f"{stats.valid} applied, {stats.duplicates} duplicates, {stats.deadletter} dead letters"
    )
    parse_s = _best(lambda: _parse_all(feed), args.repeat)
    process_s = _best(lambda: _fold(feed, registry, calendar, catalog), args.repeat)
    states = _applied_states(feed, registry, calendar)
    m = max(len(states), 1)  # applied dossier events
    dumps_s = _best(lambda: _each(dumps_dossier, states), args.repeat)
    fact_s = _best(lambda: _each(lambda s: dossier_fact(s, "dossier:0"), states), args.repeat)
    print(f"parse    {parse_s / n * 1e6:8.2f} µs/event")
    print(f"process  {process_s / n * 1e6:8.2f} µs/event")
    print(f"dumps    {dumps_s / m * 1e6:8.2f} µs/state ({len(states)} states)")
    print(f"fact     {fact_s / m * 1e6:8.2f} µs/state (dossier_fact, dumps included)")
    print(f"fold     {(process_s + fact_s) / n * 1e6:8.2f} µs/event (process + fact)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
