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

The benchmark (``bench/``, a package of its own beside the source) keeps the
same rules but the layering: no import cycle, no private name across its
modules or taken from the package's, no module over 600 lines. No test takes a
private name from the package either.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = "dossier_stream"
REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src" / PACKAGE
BENCH = REPO / "bench"
TESTS = REPO / "tests"

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


def module_name(path: Path, root: Path = SRC) -> str:
    """``src/dossier_stream/core/events.py`` → ``dossier_stream.core.events``."""
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules(root: Path = SRC) -> dict[str, Path]:
    """Every module of the package at ``root`` (the source's, or the bench's) by its dotted name."""
    return {module_name(p, root): p for p in sorted(root.rglob("*.py"))}


def resolve(name: str, known: dict[str, Path]) -> str | None:
    """The package module an imported dotted name lives in (a module or its package)."""
    while name:
        if name in known:
            return name
        name = name.rpartition(".")[0]
    return None


def imports(known: dict[str, Path], package: str = PACKAGE) -> Iterator[Import]:
    """Every import of a ``package`` module, lazy and ``TYPE_CHECKING`` ones included."""
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
                if base != package and not base.startswith(f"{package}."):
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


TREES = [pytest.param(SRC, PACKAGE, id="src"), pytest.param(BENCH, "bench", id="bench")]
"""The packages the rules below hold for: the source, and the benchmark beside it."""


@pytest.mark.parametrize(("root", "package"), TREES)
def test_no_import_cycle_lazy_imports_included(root: Path, package: str) -> None:
    known = modules(root)
    graph: dict[str, set[str]] = {m: set() for m in known}
    for i in imports(known, package):
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


def is_private(name: str) -> bool:
    """``_x`` (not a dunder)."""
    return name.startswith("_") and not name.startswith("__")


@pytest.mark.parametrize(("root", "package"), TREES)
def test_no_private_name_across_modules(root: Path, package: str) -> None:
    known = modules(root)
    wrong = [
        f"{i.source}:{i.line} imports {name} from {i.target}"
        for i in imports(known, package)
        for name in i.names
        if is_private(name)
    ]
    wrong += [
        f"{i.source}:{i.line} imports the private module {i.target}"
        for i in imports(known, package)
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


def test_neither_tests_nor_bench_take_a_private_name_of_the_package() -> None:
    """Tests and the bench use the package as a user would: its public names only."""
    wrong = []
    for path in sorted([*TESTS.rglob("*.py"), *BENCH.rglob("*.py")]):
        for node in ast.walk(ast.parse(path.read_text("utf-8"), str(path))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(PACKAGE):
                wrong += [
                    f"{path.relative_to(REPO)}:{node.lineno} imports {alias.name}"
                    for alias in node.names
                    if is_private(alias.name)
                ]
    assert not wrong, "\n".join(wrong)


def private_module_attributes(path: Path, packages: tuple[str, ...]) -> Iterator[str]:
    """``module._name`` where ``module`` is a module of ``packages`` imported by ``path``.

    Catches what an import check cannot: ``from pkg import mod`` then ``mod._x``.
    """
    tree = ast.parse(path.read_text("utf-8"), str(path))
    modules_bound: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and not node.level:
            if node.module.split(".")[0] in packages:
                for alias in node.names:
                    modules_bound[alias.asname or alias.name] = f"{node.module}.{alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in packages and alias.asname:
                    modules_bound[alias.asname] = alias.name
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and is_private(node.attr)
            and isinstance(node.value, ast.Name)
            and node.value.id in modules_bound
        ):
            yield f"{node.lineno}: {modules_bound[node.value.id]}.{node.attr}"


def test_no_private_attribute_of_another_module() -> None:
    """No ``module._x`` across modules: the source's, the bench's and the tests' code."""
    wrong = [
        f"{path.relative_to(REPO)}:{hit}"
        for path in sorted([*SRC.rglob("*.py"), *BENCH.rglob("*.py"), *TESTS.rglob("*.py")])
        for hit in private_module_attributes(path, (PACKAGE, "bench"))
    ]
    assert not wrong, "\n".join(wrong)


def test_the_attribute_rule_finds_module_privates(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("from bench import flat\nfrom x import y\nflat._messages\ny._z\nflat.ok\n")
    assert list(private_module_attributes(sample, ("bench",))) == ["3: bench.flat._messages"]


def test_the_rules_see_what_they_should() -> None:
    """The checks above read both trees: the bench's own imports are found too."""
    bench = modules(BENCH)
    assert "bench.cli" in bench
    assert "bench.scenarios" in bench
    found = {(i.source, i.target) for i in imports(bench, "bench")}
    assert ("bench.cli", "bench.summary") in found
    assert not any(i.target.startswith(PACKAGE) for i in imports(bench, "bench"))


def test_modules_are_small_and_the_top_is_thin() -> None:
    long = [
        f"{p.relative_to(REPO)}: {n} lines"
        for p in sorted([*SRC.rglob("*.py"), *BENCH.rglob("*.py")])
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
