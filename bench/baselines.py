"""The consumers the worker is measured against, each a scenario of :mod:`bench.scenarios`.

* ``ceiling``: a plain aiokafka consumer decoding every value with orjson.
* ``faust-bare`` (and its ablations ``faust-bare-no-monitor``, ``faust-take``):
  a stock Faust agent doing nothing with the events.
* ``naive``: the straightforward Faust agent (``group_by`` unit, pydantic per
  event, a Table update).
* ``freshness-ceiling``: a plain aiokafka consumer fed live (the broker's floor).

Their timing rules are in :mod:`bench.scenarios`' docstring.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.measure import Progress, peak_rss, wait_done

__all__ = [
    "ceiling",
    "faust_bare",
    "faust_crash",
    "first_message_sensor",
    "freshness_ceiling",
    "naive",
]


# ------------------------------------------------------------------ ceiling
async def ceiling(cfg: dict[str, Any]) -> dict[str, Any]:
    """A plain aiokafka consumer decoding every value with orjson."""
    import orjson  # noqa: PLC0415
    from aiokafka import AIOKafkaConsumer  # noqa: PLC0415

    started = time.monotonic()
    progress = Progress(cfg["expected"])
    consumer = AIOKafkaConsumer(
        *cfg["topics"],
        bootstrap_servers=cfg["bootstrap"],
        group_id=cfg["group"],
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        session_timeout_ms=int(cfg["session_timeout_s"] * 1000),
        heartbeat_interval_ms=2000,
    )
    await consumer.start()
    ready = time.monotonic()
    progress.first = ready
    invalid = 0
    deadline = ready + cfg["timeout_s"]
    try:
        while progress.seen < progress.expected and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=200)
            for messages in batches.values():
                for msg in messages:
                    try:
                        orjson.loads(msg.value)
                    except orjson.JSONDecodeError:
                        invalid += 1
                progress.seen += len(messages)
        progress.last = time.monotonic()
    finally:
        await consumer.stop()
    return progress.result("ceiling", ready, started, not_json=invalid)


# ------------------------------------------------------------------- Faust
def first_message_sensor(app: Any, progress: Progress) -> None:
    """Add a Faust sensor that stamps the first message handed to a stream.

    It removes itself after that message (soon after: not while the sensors
    are being iterated), so it costs nothing per event afterwards.
    """
    import faust  # noqa: PLC0415

    class FirstMessage(faust.Sensor):
        def on_message_in(self, tp: Any, offset: int, message: Any) -> None:
            if progress.first is None:
                progress.first = time.monotonic()
                asyncio.get_running_loop().call_soon(app.sensors.remove, self)

    app.sensors.add(FirstMessage())


def _stock_app(cfg: dict[str, Any], **extra: Any) -> Any:
    """A Faust app with stock settings, but the session timeout, web port and data dir."""
    import faust  # noqa: PLC0415

    from dossier_stream.stream.app import patch_tansu_leave_group  # noqa: PLC0415
    from dossier_stream.stream.embedded import free_port  # noqa: PLC0415

    patch_tansu_leave_group()
    return faust.App(
        cfg["group"],
        broker=f"kafka://{cfg['bootstrap']}",
        broker_session_timeout=cfg["session_timeout_s"],
        web_port=free_port(),
        datadir=str(Path(cfg["workdir"]) / "faust"),
        **extra,
    )


def faust_crash(app: Any) -> object:
    """Why the app or one of its agents crashed (``None`` while all is well)."""
    if getattr(app, "crash_reason", None) is not None:
        return app.crash_reason
    for agent in getattr(app, "agents", {}).values():
        for actor in getattr(agent, "_actors", ()):
            if getattr(actor, "crash_reason", None) is not None:
                return actor.crash_reason
    return None


async def _run_faust(
    name: str,
    cfg: dict[str, Any],
    app: Any,
    progress: Progress,
    started: float,
    extra: Callable[[], dict[str, Any]] = dict,
    *,
    after_start: Callable[[], None] | None = None,
) -> dict[str, Any]:
    first_message_sensor(app, progress)
    await app.start()
    ready = time.monotonic()
    if after_start is not None:
        after_start()
    try:
        if app.crash_reason:
            raise RuntimeError(f"the Faust app crashed at start: {app.crash_reason!r}")
        await wait_done(progress, cfg, lambda: progress.seen, lambda: faust_crash(app))
    finally:
        await app.stop()
    return progress.result(name, ready, started, **extra())


async def faust_bare(cfg: dict[str, Any], variant: str = "faust-bare") -> dict[str, Any]:
    """A stock Faust agent iterating over the events and doing nothing else.

    Variants (ablations, not run by default): ``faust-bare-no-monitor``
    removes Faust's default Monitor sensor once the app is started;
    ``faust-take`` takes batches (``take_events(2000, within=1.0)``, as the
    worker does) instead of one event at a time.
    """
    started = time.monotonic()
    progress = Progress(cfg["expected"])
    app = _stock_app(cfg)
    topic = app.topic(*cfg["topics"], value_serializer="raw")

    def seen(n: int) -> None:
        progress.seen += n
        if progress.seen >= progress.expected and not progress.done.is_set():
            progress.last = time.monotonic()
            progress.done.set()

    async def bare(stream: Any) -> None:
        if variant == "faust-take":
            async for events in stream.take_events(2_000, within=1.0):
                seen(len(events))
        else:
            async for _value in stream:
                seen(1)

    app.agent(topic, name="bare")(bare)

    def drop_monitor() -> None:  # the app adds its Monitor when it starts
        app.sensors.remove(app.monitor)

    after_start = drop_monitor if variant == "faust-bare-no-monitor" else None
    return await _run_faust(variant, cfg, app, progress, started, after_start=after_start)


def _unit_of(value: bytes) -> str:
    """The ``unit_code`` of a raw event (``?`` when it has none): the ``group_by`` key."""
    import orjson  # noqa: PLC0415

    try:
        obj = orjson.loads(value)
    except orjson.JSONDecodeError:
        return "?"
    unit = obj.get("unit_code") if isinstance(obj, dict) else None
    return unit if isinstance(unit, str) else "?"


async def naive(cfg: dict[str, Any]) -> dict[str, Any]:
    """The straightforward Faust agent: group_by unit, pydantic per event, a Table update."""
    from dossier_stream.core.events import InvalidEvent, parse_event  # noqa: PLC0415

    started = time.monotonic()
    progress = Progress(cfg["expected"])
    app = _stock_app(cfg)
    topic = app.topic(*cfg["topics"], value_serializer="raw")
    # the input spans several topics, so the repartition topic is named here
    by_unit = app.topic(
        f"{cfg['group']}-naive-unit-repartition", value_serializer="raw", internal=True
    )
    counts = app.Table("counts", default=int)
    invalid = [0]

    async def per_event(stream: Any) -> None:
        async for value in stream.group_by(_unit_of, name="unit", topic=by_unit):
            try:
                event = parse_event(value)
            except InvalidEvent:
                invalid[0] += 1
            else:
                counts[f"{event.unit_code}|{event.event_type}"] += 1
            progress.seen += 1
            if progress.seen >= progress.expected and not progress.done.is_set():
                progress.last = time.monotonic()
                progress.done.set()

    app.agent(topic, name="naive")(per_event)
    return await _run_faust("naive", cfg, app, progress, started, lambda: {"invalid": invalid[0]})


async def freshness_ceiling(cfg: dict[str, Any]) -> dict[str, Any]:
    """A plain aiokafka consumer fed live: when did each event id arrive (the broker's floor)."""
    import orjson  # noqa: PLC0415
    from aiokafka import AIOKafkaConsumer  # noqa: PLC0415

    started = time.monotonic()
    consumer = AIOKafkaConsumer(
        *cfg["topics"],
        bootstrap_servers=cfg["bootstrap"],
        group_id=cfg["group"],
        auto_offset_reset="earliest",
        session_timeout_ms=int(cfg["session_timeout_s"] * 1000),
        heartbeat_interval_ms=2000,
    )
    await consumer.start()
    print("READY", flush=True)
    arrived: dict[str, float] = {}
    seen = 0
    sent: list[int] = []

    async def control() -> None:
        line = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        sent.append(int(line.split()[1]) if line.startswith("SENT ") else 0)

    task = asyncio.create_task(control())
    deadline = time.monotonic() + cfg["timeout_s"]
    try:
        while time.monotonic() < deadline and not (sent and seen >= sent[0]):
            batches = await consumer.getmany(timeout_ms=100)
            now = time.time()
            for messages in batches.values():
                seen += len(messages)
                for msg in messages:
                    try:
                        event_id = orjson.loads(msg.value).get("event_id")
                    except (orjson.JSONDecodeError, AttributeError):
                        continue
                    if isinstance(event_id, str):
                        arrived.setdefault(event_id, now)
    finally:
        task.cancel()
        await consumer.stop()
    out = Path(cfg["workdir"]) / "visible.json"
    out.write_bytes(json.dumps(arrived).encode())
    return {
        "scenario": "freshness-ceiling",
        "events": seen,
        "expected": sent[0] if sent else 0,
        "complete": bool(sent) and seen >= sent[0],
        "start_s": time.monotonic() - started,
        "visible_file": str(out),
        "peak_rss_bytes": peak_rss(),
    }
