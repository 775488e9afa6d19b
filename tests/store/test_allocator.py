"""The embedded engine's jemalloc returns freed pages at once (store/allocator.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from dossier_stream.store.allocator import EMBEDDED_JEMALLOC_CONF, prepare_embedded_allocator

_PROBE = """
import os, sys
from dossier_stream.store.sink import connect

def rss_mib():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS"):
            return int(line.split()[1]) // 1024

client = connect("chdb://" + sys.argv[1])
client.command("SELECT 1")
before = rss_mib()
client.command("SELECT length(groupArray(number)) FROM numbers(10000000)")
print(os.environ.get("JE_MALLOC_CONF"), rss_mib() - before)
"""


def _probe(tmp_path: Path, conf: str | None) -> tuple[str, int]:
    """``(JE_MALLOC_CONF seen after connect, MiB still resident after a big query)``."""
    env = {k: v for k, v in os.environ.items() if k != "JE_MALLOC_CONF"}
    if conf is not None:
        env["JE_MALLOC_CONF"] = conf
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, str(tmp_path / (conf or "default"))],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout.split()
    return out[0], int(out[1])


def test_connect_makes_chdb_give_freed_pages_back_and_keeps_an_operators_choice(
    tmp_path: Path,
) -> None:
    conf, kept = _probe(tmp_path, None)
    assert conf == EMBEDDED_JEMALLOC_CONF
    assert kept < 40  # the query's ~160 MiB array went back to the system at once
    conf, kept = _probe(tmp_path, "dirty_decay_ms:5000")  # chdb's built-in decay
    assert conf == "dirty_decay_ms:5000"
    assert kept > 80  # kept by jemalloc: what the default above saves


def test_nothing_changes_once_chdb_is_loaded() -> None:
    import chdb  # noqa: F401

    assert "chdb" in sys.modules
    assert prepare_embedded_allocator() is False
