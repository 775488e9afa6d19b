"""Compile dossier-stream's hot pure modules with mypyc, in place (scripts/compile).

The extension modules land beside their sources (``core/engine.cpython-311-….so``
next to ``core/engine.py``) plus one shared library, ``dossier_stream/native__mypyc…so``;
the editable install imports them instead of the ``.py`` files. ``compiled.sha256``
(``sha256sum`` format) records the sources they were built from: the package's
``__init__`` falls back to every ``.py`` when one of them no longer matches (an edited
source is never silently ignored). ``DOSSIER_INTERPRETED=1`` forces the ``.py`` files.

Never fails the set-up: without a C compiler or the Python headers, or when mypyc
refuses a module, it says so in one line, removes any earlier build and exits 0 (the
package then runs interpreted). Up to date when the record matches the sources, the
module list and the mypy version: then it does nothing.

Usage: scripts/compile [--force] [--clean]
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
PACKAGE = SRC / "dossier_stream"
RECORD = PACKAGE / "compiled.sha256"
BUILD = ROOT / "build" / "mypyc"
GROUP = "dossier_stream.native"
"""The shared library's module: ``dossier_stream/native__mypyc….so``."""

MODULES = [
    "core/lifecycle.py",
    "core/counters.py",
    "core/engine.py",
    "core/workdays.py",
    "stream/processor.py",
    "store/codec.py",
    "core/partitioner.py",
    "store/keyfilter.py",
    "store/statestore.py",
    "store/counterstore.py",
    "store/batching.py",
    "stream/livefigures.py",
    "core/plainjson.py",
]
"""The compiled modules (paths under ``src/dossier_stream``), chosen by measurement
(bench/README.md, "The hot modules compiled with mypyc, shipped" and "The stores and the
live figures compiled"): the fold (lifecycle, counters, engine, workdays, processor,
codec), the re-keying check's murmur2 and memory of keys (partitioner), the stores' Bloom filter
(keyfilter), the dossier and counter stores (statestore, counterstore), the batching
sink (batching), the live figures (livefigures) and the proof that spares
``parse_event`` orjson's reading (plainjson). They form one group: they call each
other natively, so they are used all together or not at all. A compiled module must
never be handed a ``dict`` subclass typed as ``dict`` (mypyc's C lookups skip the
subclass' methods: the holidays calendar is read as a ``Mapping`` for this reason). Their
classes are native: an interpreted subclass is refused, and a method replaced on an
instance is refused or, on the stores (whose ``MutableMapping`` base gives them a
``__dict__``), ignored by the compiled callers; tests record at RocksDB's edge and
``bench.shell`` times through stand-ins. A module-level name a test patches must be
neither ``Final`` (mypyc inlines it) nor a compiled function (called natively). And a
compiled ``MutableMapping`` subclass shares ``MutableMapping``'s ABC registry:
``isinstance({}, DossierStore)`` is true when compiled, so test ``type(x) is``."""


def say(message: str) -> None:
    """One line on stderr, like scripts/setup's."""
    print(f"scripts/compile: {message}", file=sys.stderr)


def digest(path: Path) -> str:
    """The SHA-256 of a file, in hex."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def mypy_version() -> str:
    """The version of the mypy (and so mypyc) in use."""
    from mypy.version import __version__  # noqa: PLC0415 - mypy is a dev dependency

    return __version__


def record_text() -> str:
    """What ``compiled.sha256`` holds for the sources as they are now."""
    lines = [f"# built by scripts/compile with mypy {mypy_version()}; do not edit"]
    lines += [f"{digest(PACKAGE / m)}  {m}" for m in MODULES]
    return "\n".join(lines) + "\n"


def built() -> list[Path]:
    """Every extension module of an earlier build, in the package's tree."""
    return sorted(PACKAGE.rglob("*.so"))


def clean() -> None:
    """Remove an earlier build: the record first, then the extension modules."""
    RECORD.unlink(missing_ok=True)
    for path in built():
        path.unlink()


def missing_toolchain() -> str | None:
    """Why a C extension cannot be built here, or None when it can."""
    compiler = (os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc").split()[0]
    if shutil.which(compiler) is None:
        return f"no C compiler ({compiler}; Debian: apt-get install gcc)"
    include = Path(sysconfig.get_paths()["include"]) / "Python.h"
    if not include.exists():
        return f"no Python headers ({include}; Debian: apt-get install python3-dev)"
    return None


def build() -> None:
    """Run mypyc on MODULES and build the extensions in place, in a child process."""
    paths = [f"dossier_stream/{m}" for m in MODULES]
    code = (
        "import sys\n"
        "from setuptools import setup\n"
        "from mypyc.build import mypycify\n"
        f"ext = mypycify({paths!r}, opt_level='3', group_name={GROUP!r},"
        f" target_dir={str(BUILD / 'c')!r})\n"
        "setup(name='dossier-stream-native', ext_modules=ext, script_args=['-q',"
        f" 'build_ext', '--inplace', '--build-temp', {str(BUILD / 'temp')!r},"
        f" '--build-lib', {str(BUILD / 'lib')!r}])\n"
    )
    # From src/ with no mypy configuration: the module names come from the paths, and
    # the project's strict settings (and pydantic's plugin) are mypy's job, not mypyc's.
    env = {**os.environ, "MYPY_CACHE_DIR": str(BUILD / "mypy-cache")}
    subprocess.run(
        [sys.executable, "-c", code],
        cwd=SRC,
        env=env,
        check=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def main(argv: list[str]) -> int:
    """Build unless up to date; say why not in one line when it cannot."""
    if "--clean" in argv:
        clean()
        say("removed the compiled modules; dossier-stream runs interpreted")
        return 0
    if "--force" not in argv and RECORD.exists() and RECORD.read_text() == record_text():
        suffix = sysconfig.get_config_var("EXT_SUFFIX")  # this Python's: .cpython-311-….so
        if all((PACKAGE / m).with_suffix(suffix).exists() for m in MODULES):
            return 0
    clean()
    if why := missing_toolchain():
        say(f"{why}: dossier-stream runs interpreted")
        return 0
    try:
        build()
    except subprocess.CalledProcessError as failed:
        clean()
        tail = (failed.stdout or "").strip().splitlines()[-1:] or ["?"]
        say(f"mypyc failed ({tail[0]}): dossier-stream runs interpreted")
        return 0
    RECORD.write_text(record_text())
    say(f"compiled {len(MODULES)} modules with mypyc")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
