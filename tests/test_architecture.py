"""The package's shape: no import cycles, the layers in order, no private names across modules.

Read from the source with :mod:`ast`, so the rules hold for imports inside functions too.
Imports under ``if TYPE_CHECKING:`` are annotations only and are not counted.
The picture these rules keep true is ``docs/reference/architecture.md``.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src"

#: The team layer, the federation layer and what sits above all layers.
TEAM = ("atdata.local",)
FEDERATION = ("atdata.atmosphere", "atdata.promote")
ABOVE = ("atdata.cli", "atdata.appview", "atdata.stack")
#: The one core module allowed to reach up: ``load_dataset`` resolves a reference in any layer.
ENTRY_POINTS = {"atdata", "atdata.load"}


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(SRC.rglob("*.py")):
        parts = path.relative_to(SRC).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _runtime_nodes(tree: ast.AST) -> Iterator[ast.AST]:
    """Every node except those under ``if TYPE_CHECKING:``."""
    for child in ast.iter_child_nodes(tree):
        if isinstance(child, ast.If) and _is_type_checking(child):
            for other in child.orelse:
                yield other
                yield from _runtime_nodes(other)
            continue
        yield child
        yield from _runtime_nodes(child)


def _package(name: str) -> str:
    return name if MODULES[name].name == "__init__.py" else name.rpartition(".")[0]


def _imports(name: str) -> Iterator[tuple[str, list[str]]]:
    """(imported module, names taken from it) for each runtime import in ``name``."""
    tree = ast.parse(MODULES[name].read_text())
    for node in _runtime_nodes(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = _package(name).split(".")[: len(_package(name).split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.startswith("atdata"):
                yield target, [alias.name for alias in node.names]
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("atdata"):
                    yield alias.name, []


def _edges() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {name: set() for name in MODULES}
    for name in MODULES:
        for target, names in _imports(name):
            for candidate in [target, *(f"{target}.{n}" for n in names)]:
                if candidate in MODULES and candidate != name:
                    edges[name].add(candidate)
    return edges


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in sorted(edges[node]):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def _in(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def test_no_import_cycles() -> None:
    # A package __init__ that re-exports its submodules is not a knot: the submodules
    # importing each other is. Edges into a package's own __init__ from inside it are dropped.
    edges = _edges()
    for name, targets in edges.items():
        edges[name] = {
            t
            for t in targets
            if not (MODULES[t].name == "__init__.py" and name.startswith(t + "."))
        }
    cycles = _cycles(edges)
    assert not cycles, "\n".join(" <-> ".join(c) for c in cycles)


def test_layers_import_only_downwards() -> None:
    edges = _edges()
    wrong = []
    for name, targets in sorted(edges.items()):
        if _in(name, FEDERATION):
            forbidden = TEAM + ABOVE
        elif _in(name, TEAM):
            forbidden = FEDERATION + ABOVE
        elif _in(name, ABOVE) or name in ENTRY_POINTS:
            continue
        else:  # the core
            forbidden = TEAM + FEDERATION + ABOVE
        wrong += [f"{name} -> {t}" for t in sorted(targets) if _in(t, forbidden)]
    assert not wrong, "\n".join(wrong)


def _defined_names(tree: ast.AST) -> set[str]:
    """Private names a module defines itself: functions, classes, ``self.``/``cls.`` attributes, variables."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif (
            isinstance(node, ast.Attribute)
            and isinstance(node.ctx, ast.Store)
            and isinstance(node.value, ast.Name)
            and node.value.id in ("self", "cls")
        ):
            names.add(node.attr)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    return {n for n in names if n.startswith("_") and not n.startswith("__")}


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def test_no_module_uses_another_modules_private_names() -> None:
    """``from m import _x`` and ``obj._x`` only for names the module defines itself.

    Private *modules* (``atdata._tar``) are the package's own implementation and may be
    imported anywhere inside it; a private *name* belongs to the module that defines it.
    """
    wrong = []
    for name, path in MODULES.items():
        tree = ast.parse(path.read_text())
        own = _defined_names(tree)
        for target, names in _imports(name):
            for imported in names:
                if _private(imported) and f"{target}.{imported}" not in MODULES:
                    wrong.append(f"{name}: from {target} import {imported}")
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and _private(node.attr)
                and not (
                    isinstance(node.value, ast.Name)
                    and node.value.id in ("self", "cls", "sys", "os")
                )
                and node.attr not in own
            ):
                wrong.append(f"{name}:{node.lineno}: .{node.attr}")
    assert not wrong, "\n".join(wrong)
