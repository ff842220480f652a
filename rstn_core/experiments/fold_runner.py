"""Run a notebook once per cross-validation fold with papermill (resumable).

`rstn folds --notebook notebooks/06_rstn_testing.ipynb --folds 0 1 2 3 -p scale paper -p device cuda`
writes runs/notebooks/<notebook>/<scale>/fold<K>.ipynb, with every fold's run folders under
runs/notebooks/<notebook>/<scale>/runs/ (aggregate with `rstn report --runs <that folder>`); a
fold whose output notebook finished (a `.done` marker beside it) is skipped, so an interrupted
sweep continues where it stopped.
"""
from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from rstn_core.io import atomic_path, atomic_write_text

__all__ = ["run_folds", "fold_output"]


def _value(v: str):
    try:
        return json.loads(v)
    except ValueError:
        return v


def fold_output(notebook, fold: int, params: dict, out_root="runs/notebooks") -> Path:
    scale = params.get("scale", "smoke")
    return Path(out_root) / Path(notebook).stem / str(scale) / f"fold{fold}.ipynb"


def run_folds(notebook, folds, params: dict, out_root="runs/notebooks", jobs: int = 1) -> list:
    """papermill once per fold, with `fold` set and the given parameters; returns the outputs."""
    import papermill as pm

    nb = Path(notebook)
    if not nb.is_file():
        raise FileNotFoundError(f"notebook {nb} not found; run from the repository root.")
    params = {k: _value(v) if isinstance(v, str) else v for k, v in params.items()}

    def one(fold):
        out = fold_output(nb, fold, params, out_root)
        done = out.with_suffix(".done")
        if done.is_file():
            print(f"fold {fold}: done before, skipped ({out})")
            return out
        out.parent.mkdir(parents=True, exist_ok=True)
        p = dict(params, fold=fold)
        # One run root for all folds (`rstn report` sees them all); absolute, because the
        # notebook resolves relative paths against the book's folder, not this one.
        p.setdefault("run_root", str((out.parent / "runs").resolve()))
        with atomic_path(out, suffix=".ipynb") as tmp:     # never half a notebook
            pm.execute_notebook(str(nb), str(tmp), parameters=p, cwd=str(nb.parent),
                                progress_bar=False)
        atomic_write_text(done, "ok\n")
        print(f"fold {fold}: {out}")
        return out

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as ex:
        return list(ex.map(one, folds))
