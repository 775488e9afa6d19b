"""Smoke test of the benchmark harness (``python -m bench``) on a tiny workload.

No speed assertions: the speed targets live in ``bench/`` (its README), never
in timed unit tests. This checks that every scenario runs to completion and
that the final line carries positive numbers.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # `bench` is a top-level folder, not an installed package
    sys.path.insert(0, str(REPO))

from bench.cli import parse_args, percentile  # noqa: E402
from bench.profile import area_of, summarize_raw  # noqa: E402

FINAL = re.compile(
    r"ratio_to_ceiling=(\S+) ratio_to_faust_bare=(\S+) ratio_to_naive=(\S+) p99_freshness_s=(\S+)"
    r"(?P<more>( \w+=\S+)*)"
)
MORE = (
    "ratio_to_ceiling_min", "ratio_to_ceiling_max", "ratio_to_faust_bare_min",
    "ratio_to_faust_bare_max", "scale_flatness", "scale_peak_rss_mib", "backfill_speedup",
    "year_report_s",
)  # fmt: skip


@pytest.mark.integration
def test_bench_runs_every_scenario_and_prints_the_final_line(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    options = (
        "--events 3000 --freshness-seconds 1 --open-dossiers 20000 --timeout 120 --repeat 2 "
        "--scale-sizes 3000,6000"
    )
    proc = subprocess.run(
        [sys.executable, "-m", "bench", *options.split(), "--out", str(out)],
        cwd=REPO,
        capture_output=True,
        timeout=900,
        check=False,
    )
    stderr = proc.stderr.decode(errors="replace")
    assert proc.returncode == 0, stderr[-3000:]
    last = proc.stdout.decode().strip().splitlines()[-1]
    match = FINAL.fullmatch(last)
    assert match, last
    values = [float(v) for v in match.groups()[:4]]
    assert all(math.isfinite(v) and v > 0 for v in values), last
    more = dict(kv.split("=") for kv in match.group("more").split())
    assert tuple(more) == MORE, last
    assert all(math.isfinite(float(v)) and float(v) > 0 for v in more.values()), last

    results = json.loads(out.read_text("utf-8"))
    for name in ("ceiling", "faust-bare", "naive", "dossier-stream"):
        scenario = results["scenarios"][name]
        assert scenario["complete"], scenario
        # later repetitions also read the dead letters the earlier workers published
        assert scenario["events"] == scenario["expected"] >= 3000
        assert scenario["peak_rss_bytes"] > 0
    assert results["freshness"]["measured_events"] > 0
    assert len(results["repetitions"]["ratio_to_faust_bare"]["values"]) == 2
    assert [r["size"] for r in results["scale"]["runs"]] == [3000, 6000]
    assert all(r["complete"] and r["events"] == r["size"] for r in results["scale"]["runs"])
    again = results["scale"]["again"]  # the smallest size once more, after the largest
    assert again["complete"] and again["size"] == again["events"] == 3000
    assert again["chdb"] != results["scale"]["runs"][0]["chdb"]
    assert results["scale"]["drift"] > 0
    assert results["backfill"]["processes"] >= 2
    for run in results["backfill"]["one"] + results["backfill"]["many"]:
        assert run["messages"] == 3000 - results["workload"]["unroutable"], run
    assert results["year_report"]["median_s"] > 0
    assert results["open_dossiers"]["open_dossiers"] == 20_000
    assert results["open_dossiers"]["bytes_per_open_dossier"] > 0


def test_options_and_helpers(tmp_path: Path) -> None:
    args = parse_args(["--events", "10", "--scenarios", "naive,ceiling"])
    assert args.events == 10
    assert args.scenarios == ["ceiling", "naive"]  # always in the harness's order
    with pytest.raises(SystemExit):
        parse_args(["--scenarios", "nope"])
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert percentile([0.0, 10.0], 99) == pytest.approx(9.9)
    assert math.isnan(percentile([], 50))

    raw = tmp_path / "raw.txt"
    raw.write_text(
        "main (x/site-packages/faust/streams.py:10);ack (x/site-packages/faust/consumer.py:5) 3\n"
        "main (x/site-packages/faust/streams.py:10);handle (x/src/dossier_stream/engine.py:9) 1\n",
        "utf-8",
    )
    prof = summarize_raw(raw)
    assert prof.samples == 4
    assert prof.areas() == {"faust": 0.75, "dossier_stream": 0.25}
    assert prof.total_time["main (faust/streams.py)"] == 4
    assert area_of("/x/lib/python3.11/asyncio/events.py") == "asyncio"


def test_tiled_scale_input_moves_ids_and_dates() -> None:
    from bench.curve import spread
    from bench.scale import shift_line, tiled_lines

    line = (
        b'{"event_id":"e1","event_type":"dossier.received","occurred_at":'
        b'"2024-10-03T08:00:00+07:00","dossier_id":"D1","period_start":"2024-02-30"}'
    )
    assert shift_line(line, 0) is line
    moved = shift_line(line, 2)
    assert moved == (
        b'{"event_id":"T2-e1","event_type":"dossier.received","occurred_at":'
        b'"2024-07-25T08:00:00+07:00","dossier_id":"T2-D1","period_start":"2024-02-30"}'
    )  # 70 days back, the same weekday; a date that is no date is left as it is
    tiles = list(tiled_lines([b"a", line], 5))
    assert tiles[:2] == [b"a", line] and tiles[3] == shift_line(line, 1) and len(tiles) == 5
    s = spread([2.0, float("nan"), 1.0, 4.0])
    assert (s["median"], s["min"], s["max"]) == (2.0, 1.0, 4.0)


def test_window_split_reads_threads_and_formats_per_event() -> None:
    import time

    from bench.measure import thread_cpu
    from bench.summary import window_line

    deadline = time.process_time() + 0.05
    while time.process_time() < deadline:  # some CPU on this thread
        pass
    names = thread_cpu()  # CPU seconds per thread name (the main thread's is the program's)
    assert names and all(v >= 0 for v in names.values())
    assert 0.04 <= sum(names.values()) <= time.process_time() + 0.02  # clock ticks of 10 ms
    assert thread_cpu(2**22 + 1) == {}  # no such process (above the kernel's pid limit)
    window = {
        "window_s": 2.0,
        "threads_cpu_s": {
            "python": 1.5,
            "rocksdb:low": 0.25,
            "MergeMutate": 0.1,
            "ThreadPool": 0.1,
        },
        "broker_cpu_s": 0.05,
        "fetch_wait_s": 0.5,
        "fetches": 40,
        "records_per_fetch": 2500.0,
        "flush_s": 0.3,
    }
    assert window_line(window, 100_000) == (
        "µs/event: wall 20.0, main thread CPU 15.0, rocksdb 2.5, chdb 2.0, broker 0.5; "
        "fetch wait 5.0 (40 fetches, 2,500 records each), flush 3.0"
    )
    assert "broker ?;" in window_line({**window, "broker_cpu_s": None}, 100_000)


def test_summary_flags_records_that_ran_interpreted() -> None:
    from bench.curve import median_record
    from bench.summary import interpreted

    results = {
        "scenarios": {"ceiling": {"compiled_modules": 12}, "dossier-stream": {}},
        "scale": {"runs": [{"compiled_modules": 12}, {"compiled_modules": 0}]},
        "year_report": {"compiled_modules": 0},
    }
    assert interpreted(results) == ["scale.runs[1]", "year_report"]
    assert interpreted({"scale": {"runs": [{"compiled_modules": 3}]}}) == []
    # the median of repetitions is one record: it says 0 if any repetition ran interpreted
    reps = [{"events_per_s": v, "compiled_modules": c} for v, c in ((1, 13), (2, 13), (3, 0))]
    assert median_record(reps)["events_per_s"] == 2
    assert median_record(reps)["compiled_modules"] == 0
    assert median_record(reps[:2])["compiled_modules"] == 13


def test_scale_flatness_is_taken_against_the_smallest_size_before_and_after() -> None:
    from bench.curve import flatness

    runs = [
        {"events_per_s": 12_000.0, "complete": True},
        {"events_per_s": 9_000.0, "complete": True},
    ]
    again = {"events_per_s": 10_000.0, "complete": True}
    got = flatness(runs, again)
    assert got["flatness"] == pytest.approx(9_000 / 11_000)
    assert got["flatness_before"] == pytest.approx(0.75)
    assert got["flatness_after"] == pytest.approx(0.9)
    assert got["drift"] == pytest.approx(10_000 / 12_000)
    # no second run (or an incomplete one): against the first run alone
    assert flatness(runs, None)["flatness"] == pytest.approx(0.75)
    assert flatness(runs, {**again, "complete": False})["flatness"] == pytest.approx(0.75)
    assert math.isnan(flatness(runs, None)["drift"])
    # the largest size did not complete: no flatness, rather than a smaller size's
    assert math.isnan(flatness([runs[0], {**runs[1], "complete": False}], again)["flatness"])
