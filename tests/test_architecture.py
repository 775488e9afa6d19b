"""The package's layering, checked on the source so that it cannot silently regress.

Rules (README, "Architecture"):

* subpackages import one way: ``cli`` → ``stream`` / ``reports`` / ``sim`` → ``store`` →
  ``core``; ``settings`` is a leaf every layer above ``core`` may read; ``core`` imports
  nothing of the others;
* no import cycle between modules, counting imports inside functions and under
  ``TYPE_CHECKING``;
* no private name (``_x``) imported from another module, and no private module of a
  subpackage imported from another subpackage;
* no module over 600 lines, and few modules at the package's top.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

PACKAGE = "dossier_stream"
SRC = Path(__file__).resolve().parents[1] / "src" / PACKAGE

LAYERS: dict[str, int] = {
    "core": 0,
    "settings": 0,
    "store": 1,
    "stream": 2,
    "reports": 2,
    "sim": 2,
    "cli": 3,
    "__main__": 4,
    "__init__": 4,
}
"""Rank of each top-level part: a module may import its own part or a lower rank."""

TOP_LEVEL_MODULES = {"__init__.py", "__main__.py", "settings.py"}
MAX_LINES = 600


@dataclass(frozen=True, slots=True)
class Import:
    """One ``import`` of a package module, with the names it takes."""

    source: str
    target: str
    names: tuple[str, ...]
    line: int


def module_name(path: Path) -> str:
    """``src/dossier_stream/core/events.py`` → ``dossier_stream.core.events``."""
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    """Every module of the package by its dotted name."""
    return {module_name(p): p for p in sorted(SRC.rglob("*.py"))}


def resolve(name: str, known: dict[str, Path]) -> str | None:
    """The package module an imported dotted name lives in (a module or its package)."""
    while name:
        if name in known:
            return name
        name = name.rpartition(".")[0]
    return None


def imports(known: dict[str, Path]) -> Iterator[Import]:
    """Every import of a package module, lazy and ``TYPE_CHECKING`` ones included."""
    for source, path in known.items():
        is_package = path.name == "__init__.py"
        tree = ast.parse(path.read_text("utf-8"), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    target = resolve(alias.name, known)
                    if target and target != source:
                        yield Import(source, target, (), node.lineno)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = source if is_package else source.rpartition(".")[0]
                    for _ in range(node.level - 1):
                        anchor = anchor.rpartition(".")[0]
                    base = f"{anchor}.{base}" if base else anchor
                if not base.startswith(PACKAGE):
                    continue
                for alias in node.names:
                    submodule = f"{base}.{alias.name}"
                    if submodule in known:
                        yield Import(source, submodule, (), node.lineno)
                    else:
                        target = resolve(base, known)
                        if target and target != source:
                            yield Import(source, target, (alias.name,), node.lineno)


def part(module: str) -> str:
    """The top-level part of the package a module belongs to (``core``, ``cli``, …)."""
    pieces = module.split(".")
    return pieces[1] if len(pieces) > 1 else "__init__"


def test_subpackages_import_one_way() -> None:
    known = modules()
    wrong = [
        f"{i.source}:{i.line} imports {i.target}"
        for i in imports(known)
        if part(i.source) != part(i.target) and LAYERS[part(i.target)] >= LAYERS[part(i.source)]
    ]
    assert not wrong, "imports against the layering:\n" + "\n".join(wrong)


def test_core_imports_nothing_of_the_shell() -> None:
    known = modules()
    wrong = [
        f"{i.source}:{i.line} imports {i.target}"
        for i in imports(known)
        if part(i.source) == "core" and part(i.target) != "core"
    ]
    assert not wrong, "\n".join(wrong)


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a path that starts and ends at the same node, or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_no_import_cycle_lazy_imports_included() -> None:
    known = modules()
    graph: dict[str, set[str]] = {m: set() for m in known}
    for i in imports(known):
        # A package's __init__ re-exports its modules; importing a module of a package runs
        # that __init__ first, which is not a dependency of the module on its siblings.
        if i.source.rpartition(".")[0] == i.target or known[i.source].name == "__init__.py":
            continue
        graph[i.source].add(i.target)
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " → ".join(cycle or [])


def test_the_cycle_finder_finds_cycles() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_private_name_across_modules() -> None:
    known = modules()
    wrong = [
        f"{i.source}:{i.line} imports {name} from {i.target}"
        for i in imports(known)
        for name in i.names
        if name.startswith("_") and not name.startswith("__")
    ]
    wrong += [
        f"{i.source}:{i.line} imports the private module {i.target}"
        for i in imports(known)
        if i.target.rpartition(".")[2].startswith("_")
        and not i.target.endswith("__")
        and part(i.source) != part(i.target)
    ]
    assert not wrong, "\n".join(wrong)


def test_every_subpackage_declares_its_public_surface() -> None:
    for init in sorted(SRC.glob("*/__init__.py")):
        tree = ast.parse(init.read_text("utf-8"))
        names = {
            t.id
            for node in tree.body
            if isinstance(node, ast.Assign | ast.AnnAssign)
            for t in (node.targets if isinstance(node, ast.Assign) else [node.target])
            if isinstance(t, ast.Name)
        }
        assert "__all__" in names, f"{init.relative_to(SRC)} has no __all__"


def test_modules_are_small_and_the_top_is_thin() -> None:
    long = [
        f"{p.relative_to(SRC)}: {n} lines"
        for p in sorted(SRC.rglob("*.py"))
        if (n := len(p.read_text("utf-8").splitlines())) > MAX_LINES
    ]
    assert not long, "modules over 600 lines:\n" + "\n".join(long)
    top = {p.name for p in SRC.glob("*.py")}
    assert top <= TOP_LEVEL_MODULES, f"modules at the package's top: {sorted(top)}"


def test_the_core_loads_no_kafka_clickhouse_or_faust() -> None:
    """Importing every core module (what the fast core tests use) loads none of the shell."""
    import subprocess
    import sys

    core = [m for m in modules() if part(m) == "core"]
    heavy = ["aiokafka", "faust", "clickhouse_connect", "chdb", "rocksdict", "prometheus_client"]
    code = (
        "import importlib, sys\n"
        f"for m in {core!r}: importlib.import_module(m)\n"
        f"print(','.join(h for h in {heavy!r} if h in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == "", f"core modules load {out}"
