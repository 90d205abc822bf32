"""Rules of the code's shape: no import cycles, and vendor model libraries imported only
inside their family's folder (`models/<family>/`), so stages speak the protocol."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "alphafactory"
#: Top-level modules only a family folder may import (`sklearn.metrics` is a metric, not a model).
VENDOR = ("lightgbm", "xgboost", "ngboost", "torch", "skops", "sklearn")
ALLOWED_SKLEARN = ("sklearn.metrics",)


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = ("alphafactory", *path.relative_to(PACKAGE).with_suffix("").parts)
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def _imports(path: Path) -> list[str]:
    """Every module `path` imports, at module level or inside functions."""
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
            names.extend(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets = set()
        for imported in _imports(path):
            parts = imported.split(".")
            # importing a.b.c runs the __init__ of a.b too
            for cut in range(2, len(parts) + 1):
                target = ".".join(parts[:cut])
                if target in modules and target != name and not name.startswith(target + "."):
                    targets.add(target)
        graph[name] = targets
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
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

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycles() -> None:
    graph = _graph()
    assert len(graph) > 50 and sum(len(t) for t in graph.values()) > 100
    assert _cycles(graph) == []


def test_vendor_libraries_only_inside_their_family_folder() -> None:
    checked = 0
    offenders = []
    for name, path in _modules().items():
        in_family = name.startswith("alphafactory.models.") and path.parent.parent.name == "models"
        for imported in _imports(path):
            top = imported.split(".")[0]
            if top not in VENDOR or imported.startswith(ALLOWED_SKLEARN):
                continue
            checked += 1
            if not in_family:
                offenders.append(f"{name} imports {imported}")
    assert checked > 0, "no vendor import found at all: the scan is broken"
    assert offenders == []


def test_test_modules_outside_packages_have_unique_names() -> None:
    """pytest imports a test file of a folder without `__init__.py` by its bare name, so two
    such files with one name fail the whole collection ('import file mismatch')."""
    tests = Path(__file__).parent
    seen: dict[str, list[str]] = {}
    for path in sorted(tests.rglob("test_*.py")):
        if not (path.parent / "__init__.py").exists():
            seen.setdefault(path.name, []).append(str(path.relative_to(tests)))
    assert len(seen) > 50  # the walk found the suite
    assert {name: where for name, where in seen.items() if len(where) > 1} == {}
