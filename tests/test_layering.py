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


#: The optional dependency of the 3D peer: imported lazily (inside functions) by this module only.
LAZY_OPTIONAL = {"monai": "experiments/unet3d.py"}


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_optional_dependencies_are_imported_lazily_by_their_one_module(path):
    """The library imports without MONAI: only rstn_core/experiments/unet3d.py imports it,
    inside a function (the one exception to "imports at module top")."""
    rel = path.relative_to(PACKAGE).as_posix()
    tree = ast.parse(path.read_text())
    in_functions = {id(n) for f in ast.walk(tree)
                    if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef)) for n in ast.walk(f)}
    for node, module in _imports(tree):
        root = module.split(".")[0]
        if root in LAZY_OPTIONAL:
            assert rel == LAZY_OPTIONAL[root], \
                f"{rel}:{node.lineno} imports {module}; only {LAZY_OPTIONAL[root]} may (lazily)"
            assert id(node) in in_functions, \
                f"{rel}:{node.lineno}: import {module} at module top; import it inside the " \
                "function that needs it (an optional dependency)"


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_modules_stay_small(path):
    n = len(path.read_text().splitlines())
    assert n <= 600, f"{path.relative_to(PACKAGE)}: {n} lines; split it by idea"


def test_package_init_does_not_shadow_modules():
    import rstn_core
    for name in getattr(rstn_core, "__all__", []):
        assert not (PACKAGE / f"{name}.py").exists() and not (PACKAGE / name).is_dir(), \
            f"rstn_core.{name} is both a module and a re-exported name"


# -- the tests mirror the modules ----------------------------------------------------------------
TESTS = Path(__file__).resolve().parent

#: Modules without a test file of their own, and why. Re-export-only ``__init__.py``s and
#: ``__main__.py`` are skipped by rule (an ``__init__`` with a function or class needs a file).
NO_TEST_FILE = {
    **{f"data/phantom/{m}.py": "tested through the package in test_phantom.py"
       for m in ("anatomy", "body", "canvas", "geometry", "lookalikes", "pancreas", "render",
                 "tissues", "write")},
    **{f"bench/{m}.py": "tested in tests/test_bench*.py"
       for m in ("authors_fcn", "command", "ddp_probe", "flops", "gpu_jobs", "gpu_parts",
                 "hardware", "plot", "published", "render", "suite", "timing",
                 "measure/algorithms", "measure/nets", "measure/training", "measure/volumes")},
}


def _needs_test_file(path):
    if path.name == "__main__.py":
        return False
    if path.name == "__init__.py":
        tree = ast.parse(path.read_text())
        return any(isinstance(n, (ast.FunctionDef, ast.ClassDef)) for n in tree.body)
    return True


def test_every_module_has_a_test_file_named_for_it():
    """rstn_core/<pkg>/<module>.py -> tests/test_<module>.py, or tests/test_<pkg>_<module>.py
    where two modules share a name (an ``__init__`` with code: tests/test_<pkg>.py)."""
    have = {p.stem for p in TESTS.glob("test_*.py")}
    missing = []
    for path in _modules():
        rel = path.relative_to(PACKAGE).as_posix()
        if rel in NO_TEST_FILE or not _needs_test_file(path):
            continue
        name = path.parent.name if path.name == "__init__.py" else path.stem
        if not {f"test_{name}", f"test_{path.parent.name}_{name}"} & have:
            missing.append(f"{rel} -> tests/test_{name}.py")
    assert not missing, "modules without a test file: " + ", ".join(missing)


def test_no_allow_listed_module_is_gone():
    gone = [rel for rel in NO_TEST_FILE if not (PACKAGE / rel).is_file()]
    assert not gone, f"drop from NO_TEST_FILE in tests/test_layering.py: {gone}"


@pytest.mark.parametrize("path", sorted(TESTS.glob("*.py")), ids=lambda p: p.name)
def test_no_test_file_imports_another_test_file(path):
    """Shared helpers live in tests/helpers.py, shared fixtures in tests/conftest.py."""
    tree = ast.parse(path.read_text())
    for node, module in _imports(tree):
        assert not module.split(".")[-1].startswith("test_"), \
            f"{path.name}:{node.lineno} imports {module}; move what it needs to tests/helpers.py"
    for node in ast.walk(tree):                  # scripts that a test writes and runs
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            assert "from tests." + "test_" not in node.value, \
                f"{path.name}:{node.lineno}: a script imports from a test file"
