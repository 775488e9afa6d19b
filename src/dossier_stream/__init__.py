"""dossier-stream: administrative-procedure dossier events in, official indicators out.

The public surface is small; everything else is reached through its module.

The hot modules (the fold, the stores, the sink, the live figures; the list is in
``scripts/compile.py``) may be compiled with mypyc (``scripts/compile``, run by
``scripts/setup``): their extension modules sit beside the ``.py`` files and Python
imports an extension before a source. ``compiled.sha256`` records the sources of that
build. Before any submodule is imported, this package checks the record once (a few
small files hashed) and, when a source was edited since, or when
``DOSSIER_INTERPRETED=1``, puts a finder first on ``sys.meta_path`` that loads every
compiled module from its ``.py`` instead: all of them, since the compiled ones call each
other natively. A stale build is reported in one line on stderr.
"""

from __future__ import annotations

import os
import sys
from hashlib import sha256
from importlib.machinery import EXTENSION_SUFFIXES
from importlib.util import spec_from_file_location
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence
    from importlib.machinery import ModuleSpec
    from types import ModuleType

__all__ = ["INTERPRETED_ENV", "__version__", "compiled_modules"]

__version__ = "0.1.0"

INTERPRETED_ENV = "DOSSIER_INTERPRETED"
"""Set to ``1`` (or ``true``) to run the ``.py`` files of a compiled build."""

_HERE = os.path.dirname(os.path.abspath(__file__))
_RECORD = os.path.join(_HERE, "compiled.sha256")


class _SourcesFirst:
    """Finds the named modules as their ``.py`` files, ahead of any extension module."""

    def __init__(self, sources: dict[str, str]) -> None:
        self.sources = sources

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        source = self.sources.get(fullname)
        if source is None:
            return None
        return spec_from_file_location(fullname, source)


def _read_record() -> dict[str, tuple[str, str]]:
    """Compiled module name → (recorded SHA-256, its source path); empty if not compiled."""
    try:
        with open(_RECORD, encoding="utf-8") as record:
            lines = record.read().splitlines()
    except FileNotFoundError:
        return {}
    modules: dict[str, tuple[str, str]] = {}
    for line in lines:
        if line and not line.startswith("#"):
            sha, _, relative = line.partition("  ")
            name = f"{__name__}." + relative.removesuffix(".py").replace("/", ".")
            modules[name] = (sha, os.path.join(_HERE, relative))
    return modules


def _stale(modules: dict[str, tuple[str, str]]) -> list[str]:
    """The sources that no longer match the build, each with why (in the operator's words).

    A source edited since the build ("đã sửa"), removed ("đã xoá"), or whose
    extension module is gone ("thiếu tệp .so").
    """
    stale = []
    for sha, source in modules.values():
        relative = os.path.relpath(source, _HERE)
        try:
            with open(source, "rb") as file:
                now = sha256(file.read()).hexdigest()
        except FileNotFoundError:
            stale.append(f"{relative} đã xoá")
            continue
        stem = source.removesuffix(".py")
        if now != sha:
            stale.append(f"{relative} đã sửa")
        elif not any(os.path.exists(stem + s) for s in EXTENSION_SUFFIXES):
            stale.append(f"{relative} thiếu tệp .so")
    return stale


def _guard() -> bool:
    """Route the compiled modules to their sources if stale or asked; True if compiled."""
    modules = _read_record()
    if not modules:
        return False
    forced = os.environ.get(INTERPRETED_ENV, "").strip().lower() in {"1", "true", "yes"}
    stale = [] if forced else _stale(modules)
    if stale:
        print(
            f"dossier-stream: bản biên dịch mypyc đã cũ ({'; '.join(stale)}),"
            " chạy bằng mã .py; biên dịch lại: scripts/compile",
            file=sys.stderr,
        )
    if forced or stale:
        sys.meta_path.insert(0, _SourcesFirst({n: s for n, (_, s) in modules.items()}))
        return False
    return True


_COMPILED = _guard()


def compiled_modules() -> tuple[str, ...]:
    """The modules this process runs compiled (empty when interpreted)."""
    return tuple(sorted(_read_record())) if _COMPILED else ()
