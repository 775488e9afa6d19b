"""The ``open-templates`` and ``open-dossiers`` scenarios: RSS per open dossier.

``open-templates`` (a process of its own) writes the open states of a
simulated month. ``open-dossiers`` stores ``count`` of them, each decoded
afresh under a new dossier id, in a state store and divides the RSS it grew
by ``count``. The store is chosen by ``cfg["store"]``:

* ``"rocksdb"`` (the default): a :class:`~dossier_stream.store.statestore.DossierStore`
  made by :func:`~dossier_stream.store.statestore.open_dossier_store` in the run
  directory, with its default LRU size and RocksDB tuning (write-back: the
  states the LRU holds at the end, dirty, are counted in memory, the others
  were encoded and written to RocksDB as the LRU evicted them);
* ``"processor"``: whatever the worker's processor makes
  (``Processor._engine("dossier:0")``; a ``dict`` until it makes a
  ``DossierStore``).

With ``"rocksdb"`` and ``cfg["compare"]`` (default true), the scenario then
runs itself again in a child process with ``"processor"`` and reports that
figure under ``compare``, so one run shows both.
"""

from __future__ import annotations

import gc
import logging
import time
from pathlib import Path
from typing import Any

from bench.measure import peak_rss, rss

__all__ = ["open_dossiers", "open_templates"]

_LOG = logging.getLogger("bench.open_dossiers")


def _processor_store() -> tuple[Any, str]:
    """A dossier state store as the worker's processor makes it, and how it was made."""
    from dossier_stream.core.engine import Engine  # noqa: PLC0415
    from dossier_stream.core.registry import UnitRegistry  # noqa: PLC0415
    from dossier_stream.core.topics import load_catalog  # noqa: PLC0415
    from dossier_stream.core.workdays import WorkCalendar  # noqa: PLC0415
    from dossier_stream.store.sink import BatchingSink  # noqa: PLC0415
    from dossier_stream.stream.processor import Processor  # noqa: PLC0415

    class NoStore:
        """Stands in for ClickHouse: nothing stored, writes dropped.

        Every read returns an empty ``dict`` (an empty iterable and an empty
        mapping alike), every ``write_*`` / ``insert_*`` zero rows.
        """

        def __getattr__(self, name: str) -> Any:
            if name.startswith(("write", "insert")):
                return lambda *a, **k: 0
            return lambda *a, **k: {}

    registry, calendar, catalog = (
        UnitRegistry.load_default(),
        WorkCalendar.default(),
        load_catalog(),
    )
    try:
        store: Any = NoStore()
        sink = BatchingSink(store, max_rows=10**9, interval_s=3600.0)
        processor = Processor(registry, calendar, catalog, sink, store)
        engine = processor._engine("dossier:0")
        how = "Processor._engine('dossier:0') (what the worker's processor makes)"
    except Exception as exc:  # the processor's API moved: measure the Engine's default
        _LOG.warning("processor path failed (%s); measuring Engine's default store", exc)
        engine = Engine(registry, calendar, catalog=catalog)
        how = "Engine(registry, calendar, catalog=catalog) (fallback)"
    return engine.dossiers, how


def open_templates(cfg: dict[str, Any]) -> dict[str, Any]:
    """Write open dossier states of a simulated month to ``cfg["out"]`` (JSON).

    A process of its own, so that the memory of the simulation is not reused
    by (and hidden in) the states ``open-dossiers`` measures.
    """
    import orjson  # noqa: PLC0415

    templates = open_state_templates(int(cfg.get("limit", 2_000)))
    Path(cfg["out"]).write_bytes(orjson.dumps(templates))
    return {"scenario": "open-templates", "templates": len(templates), "out": cfg["out"]}


def open_state_templates(limit: int) -> list[list[Any]]:
    """Encoded open dossier states (received, not completed nor withdrawn) from a simulation."""
    import orjson  # noqa: PLC0415

    from dossier_stream.core.engine import Engine  # noqa: PLC0415
    from dossier_stream.core.periods import monthly_report  # noqa: PLC0415
    from dossier_stream.core.registry import UnitRegistry  # noqa: PLC0415
    from dossier_stream.core.workdays import WorkCalendar  # noqa: PLC0415
    from dossier_stream.sim.simulate import SimConfig, simulate  # noqa: PLC0415
    from dossier_stream.store.codec import dumps_dossier  # noqa: PLC0415

    registry, calendar = UnitRegistry.load_default(), WorkCalendar.default()
    sim = simulate(SimConfig(period=monthly_report(2024, 10), dossiers=4_000), registry, calendar)
    engine = Engine(registry, calendar)
    for raw in sim.lines:
        engine.process(raw)
    states = [
        s
        for s in engine.dossiers.values()
        if s.received is not None and s.completion is None and s.withdrawn_at is None
    ]
    return [orjson.loads(dumps_dossier(s)) for s in states[:limit]]


def _rocksdb_store(workdir: Path) -> tuple[Any, str, dict[str, Any]]:
    """A fresh :class:`DossierStore` in ``workdir``, how it was made, and its settings."""
    from dataclasses import asdict  # noqa: PLC0415

    from dossier_stream.store.statestore import open_dossier_store  # noqa: PLC0415

    store = open_dossier_store(workdir / "states", "dossier:0")
    how = f"open_dossier_store({str(workdir / 'states')!r}, 'dossier:0')"
    return store, how, {"cache_entries": store.cache_entries, "tuning": asdict(store.tuning)}


def _rocksdb_figures(store: Any) -> dict[str, Any]:
    """What RocksDB itself holds after the load (memtables, table readers, cache, disk)."""
    db = store._db
    disk = sum(f.stat().st_size for f in Path(store.path).iterdir() if f.is_file())
    return {
        "memtables_bytes": db.property_int_value("rocksdb.cur-size-all-mem-tables"),
        "table_readers_bytes": db.property_int_value("rocksdb.estimate-table-readers-mem"),
        "block_cache_bytes": db.property_int_value("rocksdb.block-cache-usage"),
        "disk_bytes": disk,
        "lru_states": len(store._lru),
        "dirty_states": len(store._dirty),  # written back only when evicted
    }


def _compare(cfg: dict[str, Any], workdir: Path) -> dict[str, Any] | None:
    """The same measure with the processor's store, in a child process (or ``None``)."""
    from bench.launch import BenchError, run_scenario  # noqa: PLC0415

    child = {k: v for k, v in cfg.items() if k != "workdir"} | {
        "store": "processor",
        "compare": False,
    }
    try:
        return run_scenario(
            "open-dossiers", child, workdir, timeout=float(cfg.get("timeout", 1800)), tag="-compare"
        )
    except (BenchError, OSError) as exc:  # the comparison is a bonus: report, do not fail
        _LOG.warning("comparison with the processor's store failed: %s", exc)
        return None


def open_dossiers(cfg: dict[str, Any]) -> dict[str, Any]:
    """RSS per open dossier with ``count`` open dossier states in a state store.

    Open states of a simulated month (written by ``open-templates``) serve as
    templates; each of the ``count`` states is decoded afresh
    (:func:`~dossier_stream.store.codec.loads_dossier`, as recovery from
    ``dossier_facts`` does) with a new dossier id and stored under it. RSS is
    read from ``/proc`` after a full garbage collection, before and after.
    """
    import orjson  # noqa: PLC0415

    from dossier_stream.store.codec import loads_dossier  # noqa: PLC0415

    started = time.monotonic()
    count = int(cfg["count"])
    kind_asked = cfg.get("store", "rocksdb")
    workdir = Path(cfg.get("workdir", "."))
    templates = orjson.loads(Path(cfg["templates"]).read_bytes())
    settings: dict[str, Any] = {}
    if kind_asked == "rocksdb":
        store, how, settings = _rocksdb_store(workdir)
    elif kind_asked == "processor":
        store, how = _processor_store()
    else:
        raise ValueError(f"unknown store {kind_asked!r}: rocksdb or processor")
    kind = f"{type(store).__module__}.{type(store).__qualname__}"
    gc.collect()
    before = rss()
    t0 = time.monotonic()
    for i in range(count):
        template = templates[i % len(templates)]
        prefix = template[1].rsplit("-", 1)[0]
        encoded = orjson.dumps([template[0], f"{prefix}-{i:07d}", *template[2:]])
        state = loads_dossier(encoded)
        store[state.dossier_id] = state
    load_s = time.monotonic() - t0
    gc.collect()
    after = rss()
    held = len(store)
    result: dict[str, Any] = {
        "scenario": "open-dossiers",
        "open_dossiers": held,
        "store": kind,
        "store_made_by": how,
        **settings,
        "rss_before_bytes": before,
        "rss_after_bytes": after,
        "bytes_per_open_dossier": (after - before) / max(held, 1),
        "load_s": load_s,
        "start_s": t0 - started,
        "peak_rss_bytes": peak_rss(),
        "templates": len(templates),
    }
    if kind_asked == "rocksdb":
        result["rocksdb"] = _rocksdb_figures(store)
        store.destroy()
        if cfg.get("compare", True):
            other = _compare(cfg, workdir)
            if other is not None:
                result["compare"] = other
    return result
