"""Running one scenario of :mod:`bench.scenarios` in a process of its own, and reading its result.

A scenario prints its result as the last line ``BENCH_RESULT {json}`` on
stdout; its stderr goes to ``stderr.log`` in its run directory.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Final

__all__ = [
    "REPO",
    "RESULT_PREFIX",
    "BenchError",
    "prepare",
    "result_of",
    "run_scenario",
    "scenario_env",
]

RESULT_PREFIX: Final = "BENCH_RESULT "
"""What starts the line a scenario prints its result on."""
REPO: Final = Path(__file__).resolve().parents[1]
"""The repository's root, put on the scenarios' ``PYTHONPATH``."""


class BenchError(RuntimeError):
    """A scenario failed; the message says which and shows the end of its log."""


def scenario_env() -> dict[str, str]:
    """The environment of a scenario's process: this one's, with the repository importable."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    return env


def result_of(name: str, stdout: str, log: Path) -> dict[str, Any]:
    """The result record scenario ``name`` printed on ``stdout`` (its ``log`` in the error)."""
    for line in reversed(stdout.splitlines()):
        if line.startswith(RESULT_PREFIX):
            result: dict[str, Any] = json.loads(line[len(RESULT_PREFIX) :])
            return result
    tail = log.read_text("utf-8", errors="replace")[-3000:] if log.exists() else ""
    raise BenchError(f"scenario {name} printed no result; end of {log}:\n{tail}")


def prepare(
    name: str, cfg: dict[str, Any], workdir: Path, *, tag: str = ""
) -> tuple[Path, list[str], Path]:
    """Scenario ``name``'s run directory with its ``config.json``: the directory,
    the command that runs it there, and the log its stderr goes to."""
    rundir = workdir / f"{name}{tag}"
    rundir.mkdir(parents=True, exist_ok=True)
    cfg_path = rundir / "config.json"
    cfg_path.write_text(json.dumps({**cfg, "workdir": str(rundir)}), "utf-8")
    cmd = [sys.executable, "-m", "bench.scenarios", name, str(cfg_path)]
    return rundir, cmd, rundir / "stderr.log"


def run_scenario(
    name: str,
    cfg: dict[str, Any],
    workdir: Path,
    *,
    timeout: float,
    wrap: list[str] | None = None,
    tag: str = "",
) -> dict[str, Any]:
    """Run one scenario in its own process and return its result record."""
    rundir, cmd, log = prepare(name, cfg, workdir, tag=tag)
    cmd = [*(wrap or []), *cmd]
    with log.open("wb") as err:
        proc = subprocess.run(
            cmd,
            stdout=subprocess.PIPE,
            stderr=err,
            env=scenario_env(),
            cwd=rundir,
            timeout=timeout + 120,
            check=False,
        )
    stdout = proc.stdout.decode("utf-8", errors="replace")
    if proc.returncode != 0 and RESULT_PREFIX not in stdout:
        tail = log.read_text("utf-8", errors="replace")[-3000:]
        raise BenchError(f"scenario {name} exited {proc.returncode}; end of {log}:\n{tail}")
    result = result_of(name, stdout, log)
    if result.get("compiled_modules") == 0:  # said again in the summary's table
        print(f"WARNING: scenario {name}{tag} ran interpreted; see {log}", file=sys.stderr)
    return result
