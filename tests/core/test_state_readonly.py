"""States and their facts are read-only by convention: only their ``__init__`` sets a field.

They stopped being frozen dataclasses for speed (issue 18, third round: a
frozen ``__init__`` sets every field through ``object.__setattr__``). The fold
relies on a state never changing once built — a cached state is shared, and
``state_delta`` compares the parts of two states by identity — so this test
reads the package's source and fails on any assignment to one of their
fields through something other than ``self``.
"""

from __future__ import annotations

import ast
from dataclasses import fields
from pathlib import Path

import dossier_stream
from dossier_stream.core.engine import Outcome
from dossier_stream.core.lifecycle import Completion, DossierState, Payment, Reception, Supplement

PACKAGE = Path(dossier_stream.__file__).parent
# the simulator's own plans have fields of the same names, and it builds no state
OUTSIDE = ("sim",)
FIELDS = {
    f.name for cls in (Completion, DossierState, Payment, Reception, Supplement, Outcome)
    for f in fields(cls)
}  # fmt: skip


def _assigned(target: ast.expr) -> list[ast.Attribute]:
    """The attributes a target of an assignment sets (through tuples and lists)."""
    if isinstance(target, ast.Attribute):
        return [target]
    if isinstance(target, ast.Tuple | ast.List):
        return [a for t in target.elts for a in _assigned(t)]
    if isinstance(target, ast.Starred):
        return _assigned(target.value)
    return []


def _field_assignments(tree: ast.AST) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, ast.AugAssign | ast.AnnAssign):
            targets = [node.target]
        else:
            continue
        for attr in (a for t in targets for a in _assigned(t)):
            on_self = isinstance(attr.value, ast.Name) and attr.value.id == "self"
            if attr.attr in FIELDS and not on_self:
                found.append((node.lineno, ast.unparse(attr)))
    return found


def test_no_module_sets_a_field_of_a_state_or_fact() -> None:
    checked, found = 0, []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.relative_to(PACKAGE).parts[0] in OUTSIDE:
            continue
        checked += 1
        tree = ast.parse(path.read_text(encoding="utf-8"))
        found += [
            f"{path.relative_to(PACKAGE)}:{n}: {text}" for n, text in _field_assignments(tree)
        ]
    assert checked > 50
    assert not found, "states are never changed once built; build a new one:\n" + "\n".join(found)


def test_the_check_sees_an_assignment() -> None:
    tree = ast.parse("state.completion = None\na, rec.due_at = 1, 2\nself.seen = frozenset()\n")
    assert _field_assignments(tree) == [(1, "state.completion"), (2, "rec.due_at")]
