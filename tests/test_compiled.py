"""The mypyc build (scripts/compile): used when fresh, never when stale, same figures.

scripts/setup compiles the hot modules in place wherever a C compiler and the Python
headers exist (CI included), so these tests run against the compiled build there. The
guard's tests copy the package, extension modules included, to a temporary directory
and edit the copy: the working tree is never touched.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

import dossier_stream

SRC = Path(dossier_stream.__file__).resolve().parent
ROOT = SRC.parents[1]
RECORD = SRC / "compiled.sha256"

WHICH = (
    "import json, dossier_stream\n"
    "import dossier_stream.core.engine as e, dossier_stream.store.codec as c\n"
    "print(json.dumps([list(dossier_stream.compiled_modules()), e.__file__, c.__file__]))\n"
)
"""Which modules a fresh process runs compiled, and where engine and codec come from."""

FOLD = """
import hashlib, json
from datetime import date, timedelta
import dossier_stream
from dossier_stream.core.engine import Engine
from dossier_stream.core.periods import monthly_report
from dossier_stream.core.registry import UnitRegistry
from dossier_stream.core.topics import load_catalog
from dossier_stream.core.workdays import WorkCalendar
from dossier_stream.sim.simulate import SimConfig, simulate
from dossier_stream.store.codec import dossier_fact, dumps_dossier, loads_dossier

registry, calendar = UnitRegistry.load_default(), WorkCalendar.default()
h = hashlib.sha256()
day = date(2023, 1, 1)
while day < date(2027, 1, 1):  # every day's kind, and due dates across the holidays
    h.update(repr((calendar.is_working_day(day), calendar.add_working_days(day, 5))).encode())
    day += timedelta(days=1)
period = monthly_report(2024, 9)  # 2 and 3 September: the national day off
lines = simulate(SimConfig(period=period, seed=3, dossiers=1500), registry, calendar).lines
engine = Engine(registry, calendar, catalog=load_catalog())
for offset, raw in enumerate(lines):
    outcome = engine.process(raw, partition=0, offset=offset)
    h.update(repr((outcome.kind, sorted(outcome.delta.items()))).encode())
h.update(repr(sorted(engine.counters.items())).encode())
for key in sorted(engine.dossiers):
    state = engine.dossiers[key]
    assert loads_dossier(dumps_dossier(state)) == state
    h.update(repr((state, dossier_fact(state, "sim"))).encode())
h.update(repr(engine.stats.to_json()).encode())
h.update(json.dumps(engine.report(period), sort_keys=True, default=str).encode())
print(json.dumps([list(dossier_stream.compiled_modules()), len(lines), h.hexdigest()]))
"""
"""Folds a simulated September and hashes everything the compiled modules produce."""

STORES = """
import hashlib, json, tempfile
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
import dossier_stream
from dossier_stream.core.engine import Engine
from dossier_stream.core.periods import monthly_report
from dossier_stream.core.registry import UnitRegistry
from dossier_stream.core.topics import load_catalog
from dossier_stream.core.workdays import VN_TZ, WorkCalendar
from dossier_stream.sim.simulate import SimConfig, simulate
from dossier_stream.store.batching import BatchingSink
from dossier_stream.store.codec import DOSSIER_FACT_COLUMNS, dossier_fact
from dossier_stream.store.counterstore import CounterStore
from dossier_stream.store.statestore import DossierStore
from dossier_stream.stream.livefigures import LiveFigures
from dossier_stream.stream.processor import Handled

class Writer:  # the sink's RowWriter: hashes what a flush writes
    def __init__(self, h):
        self.h = h
    def write_counters(self, rows):
        rows = list(rows)
        self.h.update(repr(rows).encode())
        return len(rows)
    def write_rows(self, table, columns, rows):
        self.h.update(repr((table, tuple(columns), [tuple(r) for r in rows])).encode())
        return len(rows)
    def write_dead_letters(self, rows):
        return len(rows)

registry, calendar = UnitRegistry.load_default(), WorkCalendar.default()
h = hashlib.sha256()
period = monthly_report(2024, 9)
lines = simulate(SimConfig(period=period, seed=5, dossiers=1500), registry, calendar).lines
clock = [datetime(2024, 9, 20, 9, 0, tzinfo=VN_TZ)]
with tempfile.TemporaryDirectory() as tmp:
    # small caches: the LRU evicts and reads back, the counter cache trims and reads back,
    # the live figures' index spills to RocksDB
    states = DossierStore(Path(tmp) / "s", cache_entries=40)
    counters = CounterStore(Path(tmp) / "c", cache_entries=30)
    engine = Engine(registry, calendar, catalog=load_catalog(), dossiers=states, counters=counters)
    engines = {"dossier:0": engine}
    live = LiveFigures(registry, clock=lambda: clock[0], spill=Path(tmp) / "l", index_entries=25)
    sink = BatchingSink(Writer(h), max_rows=400, interval_s=3600.0)
    for start in range(0, len(lines), 250):
        handled, touched, facts = [], set(), {}
        for offset, raw in enumerate(lines[start : start + 250], start):
            out = engine.process(raw, partition=0, offset=offset)
            h.update(repr((out.kind, sorted(out.delta.items()))).encode())
            handled.append(Handled("dossier:0", "t", out))
            touched.update(out.delta)
            if out.kind == "applied" and hasattr(out.event, "dossier_id"):
                facts[out.event.dossier_id] = None
        sink.add_counters("dossier:0", [(k, counters.get(k, 0)) for k in sorted(touched)])
        rows = [(d, partial(dossier_fact, states[d], "dossier:0")) for d in facts]
        sink.add_facts("dossier_facts", DOSSIER_FACT_COLUMNS, rows, source="dossier:0")
        counters.trim()
        live.update(handled, engines)
        if start % 1000 == 0:
            clock[0] += timedelta(hours=7)
            snap = live.snapshot(engines)
            h.update(repr((snap.window, sorted(snap.indicators.items()), sorted(snap.open.items()),
                           sorted(snap.past_due.items()))).encode())
        if sink.due():
            sink.flush()
    sink.flush()
    h.update(repr((len(states), list(states.items()), sorted(counters.items()))).encode())
    h.update(repr((live.indexed(), states.flush(), counters.cached)).encode())
    live.close(); states.close(); counters.close()
print(json.dumps([list(dossier_stream.compiled_modules()), len(lines), h.hexdigest()]))
"""
"""Folds a simulated September into the RocksDB stores, with the live figures and the sink."""


def run(code: str, cwd: Path, *, interpreted: bool = False, path: Path | None = None) -> object:
    """Run ``code`` in a fresh interpreter; its JSON output and its stderr."""
    env = {k: v for k, v in os.environ.items() if k != dossier_stream.INTERPRETED_ENV}
    if interpreted:
        env[dossier_stream.INTERPRETED_ENV] = "1"
    if path is not None:
        env["PYTHONPATH"] = str(path)
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout), done.stderr


def toolchain() -> bool:
    """A C compiler and the Python headers: scripts/compile can build here."""
    compiler = (os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc").split()[0]
    headers = Path(sysconfig.get_paths()["include"]) / "Python.h"
    return shutil.which(compiler) is not None and headers.exists()


needs_build = pytest.mark.skipif(
    not RECORD.exists(), reason="not compiled here (scripts/compile: no compiler or headers)"
)


def test_the_build_is_there_wherever_it_can_be() -> None:
    """Where scripts/setup can compile (CI), the tests below do run against the build."""
    if not toolchain():
        pytest.skip("no C compiler or Python headers: scripts/setup leaves the package interpreted")
    assert RECORD.exists(), "scripts/setup did not compile: run scripts/compile and read why"
    (compiled, engine, _), err = run(WHICH, ROOT)
    assert "dossier_stream.core.engine" in compiled
    assert engine.endswith(".so"), engine
    assert err == ""


@needs_build
def test_the_switch_runs_the_sources() -> None:
    (compiled, engine, codec), _ = run(WHICH, ROOT, interpreted=True)
    assert compiled == []
    assert engine.endswith("engine.py")
    assert codec.endswith("codec.py")


@needs_build
def test_an_edited_source_is_not_shadowed_by_its_stale_build(tmp_path: Path) -> None:
    copy = tmp_path / "dossier_stream"
    shutil.copytree(SRC, copy, ignore=shutil.ignore_patterns("__pycache__"))
    (fresh, engine, _), err = run(WHICH, tmp_path, path=tmp_path)
    assert engine.startswith(str(copy / "core" / "engine.")) and engine.endswith(".so")
    assert fresh, "the copy runs compiled before the edit"
    assert err == ""

    codec = copy / "store" / "codec.py"
    codec.write_text(codec.read_text("utf-8") + "\nEDITED = True\n", "utf-8")
    edited = WHICH.replace("print(json.dumps([", "print(json.dumps([c.EDITED, ")
    (seen, compiled, engine, codec_file), err = run(edited, tmp_path, path=tmp_path)
    assert seen is True, "the edit is what runs"
    assert codec_file == str(codec)
    assert compiled == [], "one stale source: none of the group runs compiled"
    assert engine == str(copy / "core" / "engine.py"), "the unedited modules fall back too"
    assert err.count("\n") == 1
    assert "store/codec.py đã sửa" in err
    assert "scripts/compile" in err


@needs_build
def test_a_missing_extension_is_named_as_missing_not_as_edited(tmp_path: Path) -> None:
    copy = tmp_path / "dossier_stream"
    shutil.copytree(SRC, copy, ignore=shutil.ignore_patterns("__pycache__"))
    for built in (copy / "store").glob("codec.*.so"):
        built.unlink()
    (compiled, engine, _), err = run(WHICH, tmp_path, path=tmp_path)
    assert compiled == [], "one module without its extension: none of the group runs compiled"
    assert engine == str(copy / "core" / "engine.py")
    assert err.count("\n") == 1
    assert "store/codec.py thiếu tệp .so" in err
    assert "đã sửa" not in err


@needs_build
def test_compiled_and_interpreted_fold_alike() -> None:
    (compiled, n, digest), _ = run(FOLD, ROOT)
    (interpreted, m, reference), _ = run(FOLD, ROOT, interpreted=True)
    assert "dossier_stream.core.workdays" in compiled
    assert "dossier_stream.store.codec" in compiled
    assert interpreted == []
    assert n == m > 5_000
    assert digest == reference


@needs_build
def test_compiled_and_interpreted_stores_live_figures_and_sink_alike() -> None:
    """The stores, the live figures and the sink: the same outcomes, rows and figures."""
    (compiled, n, digest), _ = run(STORES, ROOT)
    (interpreted, m, reference), _ = run(STORES, ROOT, interpreted=True)
    for module in ("statestore", "counterstore", "batching"):
        assert f"dossier_stream.store.{module}" in compiled
    assert "dossier_stream.stream.livefigures" in compiled
    assert interpreted == []
    assert n == m > 5_000
    assert digest == reference


def test_without_a_compiler_setup_goes_on_interpreted(tmp_path: Path) -> None:
    """scripts/compile never fails the set-up: one line, the old build gone, exit 0."""
    (tmp_path / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "compile.py", tmp_path / "scripts")
    copy = tmp_path / "src" / "dossier_stream"
    shutil.copytree(SRC, copy, ignore=shutil.ignore_patterns("__pycache__"))
    (copy / "core" / "stale.cpython-311-x86_64-linux-gnu.so").write_bytes(b"an earlier build")
    (copy / "compiled.sha256").write_text("0  core/stale.py\n", "utf-8")
    done = subprocess.run(
        [sys.executable, str(tmp_path / "scripts" / "compile.py"), "--force"],
        env={**os.environ, "CC": "no-such-compiler"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0
    assert done.stderr.count("\n") == 1
    assert "no-such-compiler" in done.stderr
    assert "interpreted" in done.stderr
    assert not list(copy.rglob("*.so"))
    assert not (copy / "compiled.sha256").exists()
    (compiled, engine, _), err = run(WHICH, tmp_path, path=tmp_path / "src")
    assert compiled == []
    assert engine == str(copy / "core" / "engine.py")
    assert err == ""
