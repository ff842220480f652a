"""Every notebook in notebooks/ runs top to bottom in smoke mode and shows a figure.

Each notebook is executed with papermill as CI and the book build run it: parameters
``{"smoke": True}``, environment ``RSTN_SMOKE=1``, working folder ``notebooks/``, kernel
``python3``, output to a temporary folder. The notebooks are found by glob, so a new one is
tested without editing this file. A second set of tests checks the stored notebooks: the
first code cell is tagged ``parameters`` and sets the names `rstn folds` and papermill pass,
and no cell carries outputs (CI re-executes them).
"""
from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NB_DIR = ROOT / "notebooks"
NOTEBOOKS = sorted(NB_DIR.glob("*.ipynb"))
REQUIRED = {"smoke", "device", "fold", "seed", "scale", "data_root", "run_dir"}


def _source(cell) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def _code_cells(nb: dict) -> list:
    return [c for c in nb["cells"] if c["cell_type"] == "code"]


def _outputs(nb: dict) -> list:
    return [o for c in _code_cells(nb) for o in c.get("outputs", [])]


def _assigned_names(src: str) -> set:
    names = set()
    for node in ast.walk(ast.parse(src)):
        targets = node.targets if isinstance(node, ast.Assign) else \
            [node.target] if isinstance(node, ast.AnnAssign) else []
        for t in targets:
            for n in ast.walk(t):
                if isinstance(n, ast.Name):
                    names.add(n.id)
    return names


def test_notebooks_exist():
    assert NOTEBOOKS, f"no notebooks found in {NB_DIR}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_parameters_cell(path):
    nb = json.loads(path.read_text())
    assert nb.get("nbformat") == 4, f"{path.name}: nbformat {nb.get('nbformat')}, expected 4"
    code = _code_cells(nb)
    assert code, f"{path.name}: no code cells"
    first = code[0]
    tags = first.get("metadata", {}).get("tags", [])
    assert "parameters" in tags, (
        f"{path.name}: the first code cell must carry the `parameters` tag (papermill and "
        f"`rstn folds -p` set its variables); it has tags {tags}.")
    missing = REQUIRED - _assigned_names(_source(first))
    assert not missing, (f"{path.name}: the parameters cell does not set {sorted(missing)}; "
                         f"every notebook takes {sorted(REQUIRED)}.")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_stored_without_outputs(path):
    nb = json.loads(path.read_text())
    dirty = [k for k, c in enumerate(nb["cells"]) if c["cell_type"] == "code"
             and (c.get("outputs") or c.get("execution_count") is not None)]
    assert not dirty, (f"{path.name}: cells {dirty} carry outputs or execution counts; "
                       "clear them before committing (CI re-executes every notebook).")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_runs_in_smoke_mode(path, tmp_path, monkeypatch):
    pm = pytest.importorskip("papermill")
    monkeypatch.setenv("RSTN_SMOKE", "1")
    out = tmp_path / path.name
    # Raises PapermillExecutionError (with the failing cell's traceback) on any error.
    pm.execute_notebook(str(path), str(out), parameters={"smoke": True}, cwd=str(NB_DIR),
                        kernel_name="python3", progress_bar=False)
    nb = json.loads(out.read_text())
    errors = [o for o in _outputs(nb) if o.get("output_type") == "error"]
    assert not errors, f"{path.name}: {errors[0].get('ename')}: {errors[0].get('evalue')}"
    images = [o for o in _outputs(nb) if "image/png" in o.get("data", {})]
    assert images, (f"{path.name}: ran, but shows no figure (no image/png output); every "
                    "notebook shows what it teaches.")
