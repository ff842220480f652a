"""The notebooks: their stored form (fast) and one smoke run each (slow), whose outputs the
book build reuses.

Stored form: cell 1 is the `parameters` cell (`scale`, `device`, `fold`, `seed`,
`data_root`, `run_root`); the next code cell is the Colab install, from the repository URL in
_config.yml; then at most five lines of set-up through `rstn_core.book.setup`; no outputs.

Execution: each notebook runs once per CI run, here, with papermill (environment
RSTN_SMOKE=1, no injected parameters, so the executed copy has the stored code). The executed
copy goes into jupyter-book's execution cache (`_build/.jupyter_cache`, the default for
`jupyter-book build . --path-output .`), and the book build (`execute_notebooks: cache`)
renders those outputs instead of running the notebook again. A notebook the cache lacks (not
run here, or changed since) is executed by the build itself, which fails on any error.
Run one: `RSTN_SMOKE=1 python -m pytest -q tests/test_notebooks.py -k 04_fixed_point`.
"""
from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
NB_DIR = ROOT / "notebooks"
NOTEBOOKS = sorted(NB_DIR.glob("*.ipynb"))
CACHE = ROOT / "_build" / ".jupyter_cache"
PARAMETERS = {"scale", "device", "fold", "seed", "data_root", "run_root"}
SETUP_LINES = 5
INSTALL = re.compile(r"git\+(https?://[^\s\"'@]+)")


def _code(nb: dict) -> list:
    return [c for c in nb["cells"] if c["cell_type"] == "code"]


def _source(cell) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def _outputs(nb: dict) -> list:
    return [o for c in _code(nb) for o in c.get("outputs", [])]


def _assigned(src: str) -> set:
    names = set()
    for node in ast.walk(ast.parse(src)):
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names |= {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
    return names


def _statements(src: str) -> list:
    return [ln for ln in src.splitlines() if ln.strip() and not ln.strip().startswith("#")]


def repository_url() -> str:
    """The repository URL of the book: _config.yml's `repository: url:`."""
    return yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]["url"]


def _load(path) -> dict:
    return json.loads(Path(path).read_text())


def test_notebooks_exist():
    assert NOTEBOOKS, f"no notebooks found in {NB_DIR}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_parameters_cell(path):
    nb = _load(path)
    assert nb.get("nbformat") == 4, f"{path.name}: nbformat {nb.get('nbformat')}, expected 4"
    first = _code(nb)[0]
    tags = first.get("metadata", {}).get("tags", [])
    assert "parameters" in tags, (
        f"{path.name}: the first code cell must carry the `parameters` tag (papermill and "
        f"`rstn folds -p` set its variables); it has tags {tags}.")
    names = _assigned(_source(first))
    assert PARAMETERS <= names, (f"{path.name}: the parameters cell does not set "
                                 f"{sorted(PARAMETERS - names)}; every notebook takes "
                                 f"{sorted(PARAMETERS)}.")
    old = names & {"smoke", "run_dir"}
    assert not old, (f"{path.name}: parameters {sorted(old)} are gone: `scale` alone says "
                     "smoke or not, and the run folder parameter is `run_root`.")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_colab_install_cell(path):
    """The second code cell installs rstn_core on Colab only, from _config.yml's URL."""
    src = _source(_code(_load(path))[1])
    assert "google.colab" in src and "pip" in src, (
        f"{path.name}: the code cell after the parameters must be the Colab install.")
    assert not re.search(r"(import|from)\s+rstn_core", src), (
        f"{path.name}: the install cell must not import rstn_core (it may not be there yet).")
    urls = INSTALL.findall(src)
    assert urls == [repository_url()], (
        f"{path.name}: installs from {urls}, but _config.yml's repository URL is "
        f"{repository_url()!r}; run `python tools/set_repo_url.py URL` to set both.")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_setup_cell(path):
    """The third code cell: at most five lines, through book.setup, named for the notebook."""
    src = _source(_code(_load(path))[2])
    lines = _statements(src)
    assert len(lines) <= SETUP_LINES, (f"{path.name}: the set-up cell has {len(lines)} lines; "
                                       f"keep it to {SETUP_LINES} (rstn_core.book.setup).")
    assert "book.setup(" in src and f'notebook="{path.stem}"' in src, (
        f"{path.name}: the set-up cell must call book.setup(..., notebook=\"{path.stem}\").")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_no_copied_set_up(path):
    """No working-directory changes, environment reads or copied helpers in the notebooks."""
    code = "\n".join(_source(c) for c in _code(_load(path)))
    for pattern, why in ((r"os\.chdir", "paths come from cfg.path(...) (book.setup)"),
                         (r"RSTN_SMOKE|os\.environ", "book.setup reads RSTN_SMOKE"),
                         (r"def md_table", "use rstn_core.book.md_table"),
                         (r"torch\.manual_seed\(|(np\.)?random\.seed\(", "book.setup seeds once")):
        hit = re.search(pattern, code)
        assert not hit, f"{path.name}: found {hit.group(0)!r}; {why}."


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_stored_without_outputs(path):
    nb = _load(path)
    dirty = [k for k, c in enumerate(nb["cells"]) if c["cell_type"] == "code"
             and (c.get("outputs") or c.get("execution_count") is not None)]
    assert not dirty, (f"{path.name}: cells {dirty} carry outputs or execution counts; "
                       "clear them before committing (CI executes every notebook).")


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_runs_in_smoke_mode(path, tmp_path, monkeypatch):
    pm = pytest.importorskip("papermill")
    jc = pytest.importorskip("jupyter_cache")
    monkeypatch.setenv("RSTN_SMOKE", "1")
    out = tmp_path / path.name
    # Raises PapermillExecutionError (with the failing cell's traceback) on any error.
    pm.execute_notebook(str(path), str(out), cwd=str(NB_DIR), kernel_name="python3",
                        progress_bar=False)
    nb = _load(out)
    errors = [o for o in _outputs(nb) if o.get("output_type") == "error"]
    assert not errors, f"{path.name}: {errors[0].get('ename')}: {errors[0].get('evalue')}"
    images = [o for o in _outputs(nb) if "image/png" in o.get("data", {})]
    assert images, (f"{path.name}: ran, but shows no figure (no image/png output); every "
                    "notebook shows what it teaches.")
    # Hand the outputs to the book build, so that it does not execute the notebook again.
    # The cache matches code and cell metadata: drop what papermill added to the latter.
    stored, executed = nbformat.read(str(path), as_version=4), nbformat.read(str(out), 4)
    assert len(stored.cells) == len(executed.cells), f"{path.name}: papermill added cells"
    for s, e in zip(stored.cells, executed.cells):
        e.metadata = s.metadata
    nbformat.write(executed, str(out))
    cache = jc.get_cache(str(CACHE))
    cache.cache_notebook_file(str(out), uri=str(path), check_validity=False, overwrite=True)
    assert cache.match_cache_notebook(stored) is not None, (
        f"{path.name}: the executed copy does not match the stored notebook in the book's "
        "execution cache, so the book build would run it a second time.")
