"""The package's floor plan, enforced: lower floors never import higher ones, rstn_core
imports sit at module top, no cycles, no module over 600 lines."""
import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "rstn_core"

#: Floor of every top-level module or sub-package (rstn_core/__init__.py re-exports only).
FLOORS = {
    "io": 0, "views": 0, "crop": 0, "losses": 0, "metrics": 0, "fusion": 0, "saliency": 0,
    "errors": 0,
    "data": 1,
    "config_types": 2, "config": 2,
    "networks": 3,
    "engine": 4,
    "algorithms": 5,
    "experiments": 6,
    "plots": 7,
    "bench": 8,
    "book": 9, "cli": 9,
}


def _modules():
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def _floor(dotted: str) -> int | None:
    parts = dotted.split(".")
    if parts[0] != "rstn_core" or len(parts) < 2:
        return None
    return FLOORS.get(parts[1])


def _name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports(tree):
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node, node.module
        elif isinstance(node, ast.Import):
            for a in node.names:
                yield node, a.name


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_go_down_and_sit_at_the_top(path):
    name = _name(path)
    if name == "rstn_core":
        return
    mine = _floor(name)
    assert mine is not None, f"{name}: give it a floor in tests/test_layering.py FLOORS"
    tree = ast.parse(path.read_text())
    top = {id(n) for n in tree.body}
    for node, module in _imports(tree):
        if not module.startswith("rstn_core.") :    # bare `import rstn_core` (its path): fine
            continue
        assert id(node) in top, f"{name}:{node.lineno}: import {module} inside a function"
        other = _floor(module)
        assert other is not None, f"{name}: imports {module}, which has no floor"
        assert other <= mine, f"{name} (floor {mine}) imports {module} (floor {other})"
    assert not any(isinstance(n, ast.ImportFrom) and n.level for n in ast.walk(tree)), \
        f"{name}: use absolute imports (from rstn_core.x import y)"


def test_no_import_cycles():
    graph = {}
    for path in _modules():
        tree = ast.parse(path.read_text())
        graph[_name(path)] = {m for _, m in _imports(tree) if m.startswith("rstn_core")}
    names = set(graph)

    def resolve(m):                       # "rstn_core.data" or a name inside a module
        while m and m not in names:
            m = m.rpartition(".")[0]
        return m

    state = {}

    def visit(n, stack):
        state[n] = 1
        for m in sorted(graph.get(n, ())):
            m = resolve(m)
            if not m or m == n or n.startswith(m + "."):  # a package importing its own parts
                continue
            if state.get(m) == 1:
                raise AssertionError("import cycle: " + " -> ".join(stack + [n, m]))
            if m not in state:
                visit(m, stack + [n])
        state[n] = 2

    for n in sorted(graph):
        if n not in state:
            visit(n, [])


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_modules_stay_small(path):
    n = len(path.read_text().splitlines())
    assert n <= 600, f"{path.relative_to(PACKAGE)}: {n} lines; split it by idea"


def test_package_init_does_not_shadow_modules():
    import rstn_core
    for name in getattr(rstn_core, "__all__", []):
        assert not (PACKAGE / f"{name}.py").exists() and not (PACKAGE / name).is_dir(), \
            f"rstn_core.{name} is both a module and a re-exported name"
