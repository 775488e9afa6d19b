"""The memory split ``python -m bench.flat`` prints: real RocksDB stores and chdb, no doubles.

Only what the reading must show is checked (each part present, counted from the
object it names, rendered in MiB), never how much memory a part takes. And the
whole of ``python -m bench.flat`` on a tiny input, as its ``--profile-out`` is used.
"""

from __future__ import annotations

import sys
from datetime import date
from pathlib import Path

from rocksdict import Cache

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # `bench` is a top-level folder, not an installed package
    sys.path.insert(0, str(REPO))

from bench import memlog, memsplit  # noqa: E402

from dossier_stream.store.keyfilter import KeyFilter  # noqa: E402
from dossier_stream.store.sink import ClickHouseStore, connect  # noqa: E402
from dossier_stream.store.statestore import RocksTuning, open_rocks  # noqa: E402

_MIB = 1 << 20


class _Live:
    """What :func:`memsplit.split` reads of the live figures: ``indexed()`` only."""

    def indexed(self) -> int:
        return 7


def test_split_reads_each_part_and_renders_it(tmp_path: Path) -> None:
    tuning = RocksTuning()
    states, counters = open_rocks(tmp_path / "st", tuning), open_rocks(tmp_path / "ct", tuning)
    store = ClickHouseStore(connect(f"chdb://{tmp_path / 'ch'}"))
    cache = Cache(1 << 20)
    try:
        store.migrate()
        for i in range(50):
            states.put(f"D{i}".encode(), b"x" * 100)
        counters.put(b"U1|2025-09-01|received", b"3")
        store.write_counters([("dossier:0", "U1", date(2025, 9, 1), "received", 3)])
        filters = [KeyFilter(1024, ["D1"]), KeyFilter(4096, ["D2", "D3"])]

        m = memsplit.split(
            stores={"st": [states], "ct": [counters], "lv": []},
            filters=filters,
            cache=cache,
            chdb_store=store,
            live=_Live(),
        )

        assert 0 < m["rss_anon"] <= m["rss"] <= m["rss_peak"]
        assert m["py_arenas"] > 0 and m["py_blocks"] > 0
        assert m["malloc_heap"] >= m["malloc_used"] > 0
        assert (m["st_stores"], m["ct_stores"], m["lv_stores"]) == (1, 1, 0)
        assert m["st_memtables"] > 0 and m["st_keys"] >= 40  # RocksDB's estimate of 50
        assert m["filters"] == sum(f.nbytes for f in filters) > 0
        assert m["chdb_parts"] >= 1  # the counters' insert made a part
        assert (m["live_memory"], m["live_indexed"]) == (0, 7)

        line = memsplit.render(m)
        assert line.startswith("  mem MiB: rss ")
        assert f"rss {m['rss'] / _MIB:.0f} " in line
        assert "st 0/" in line and f"/{m['st_keys'] / 1e6:.2f}M" in line
        assert line.endswith("live 0 in memory of 7")
    finally:
        states.close()
        counters.close()
        store.close()


def test_chdb_memory_and_mallinfo_read_real_figures(tmp_path: Path) -> None:
    store = ClickHouseStore(connect(f"chdb://{tmp_path / 'ch'}"))
    try:
        mib = memlog.chdb_memory(store)
        assert "chdb_MemoryTracking_mib" in mib and mib["chdb_MemoryTracking_mib"] > 0
        assert all(k.startswith("chdb_") and k.endswith("_mib") for k in mib)
    finally:
        store.close()
    info = memlog.mallinfo()
    assert set(info) >= {"malloc_heap", "malloc_mmap", "malloc_used", "malloc_free"}
    assert info["malloc_used"] + info["malloc_free"] == info["malloc_heap"]


def test_flat_runs_small_and_writes_its_profiles_into_a_new_directory(tmp_path: Path) -> None:
    from bench import flat

    out = tmp_path / "not" / "yet"  # --profile-out makes the directory
    args = "--events 4000 --base 2000 --segment 2000 --batch 1000 --profile 2 --check"
    assert flat.main([*args.split(), "--profile-out", str(out)]) == 0
    assert [p.name for p in out.iterdir()] == ["segment-2.prof"]
