"""Writing a phantom data set to disk (MSD-like layout), resumably, in parallel worker processes.

Every case depends only on (config, seed, case id), so cases can be made in any order, in any
process: the files are the same with 1 worker or 16.
"""
from __future__ import annotations

import json
import multiprocessing as mp
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from numbers import Integral
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from rstn_core.data.errors import DataError
from rstn_core.data.labels import PHANTOM_LABELS
from rstn_core.data.phantom.anatomy import make_case
from rstn_core.data.phantom.config import GENERATOR_VERSION, PhantomConfig
from rstn_core.io import atomic_save_nifti, atomic_write_json

__all__ = ["write_dataset"]

# Linux: workers are forked (they start in milliseconds, inherit the imports, and work from
# any caller, also a script without an `if __name__ == "__main__"` guard); they use only
# numpy, scipy.ndimage and nibabel, none of the caller's torch thread pools. Elsewhere
# (macOS, Windows) fork is unsafe or missing: "spawn", which re-imports rstn_core (~2 s a
# worker) and needs that guard in a calling script.
_START_METHOD = "fork" if sys.platform.startswith("linux") else "spawn"


def _dataset_json(cfg: PhantomConfig, seed: int, entries: list) -> dict:
    """The dataset.json of a phantom data set: MSD fields, per-case facts, generator settings."""
    return {
        "name": "rstn_phantom",
        "description": "Synthetic contrast-enhanced abdominal CT for small-organ segmentation "
                       "(rstn_core.data.phantom): pancreas with cysts among look-alike neighbours.",
        "reference": "rstn_core; anatomy after NIH Pancreas-CT and MSD Task07 (see data/README.md)",
        "licence": "CC0-1.0 (synthetic)",
        "release": f"generator v{GENERATOR_VERSION}",
        "tensorImageSize": "3D",
        "modality": {"0": "CT"},
        "labels": {str(k): v for k, v in PHANTOM_LABELS.items()},
        "numTraining": len(entries),
        "numTest": 0,
        "training": [{"image": f"./imagesTr/{e['id']}.nii.gz",
                      "label": f"./labelsTr/{e['id']}.nii.gz", "meta": e.get("meta", {})}
                     for e in entries],
        "test": [],
        "generator": {"module": "rstn_core.data.phantom", "version": GENERATOR_VERSION,
                      "seed": int(seed), "config": cfg.to_dict()},
    }


def _generate_and_write(job: tuple) -> tuple[int, dict]:
    """Make one case and write its image (int16 HU) and labels (uint8); runs in a worker.

    Args:
        job: (config dict, seed, case index, image path, label path).
    Returns:
        (case index, the case's meta).
    """
    cfg_d, seed, i, img_path, lab_path = job
    case = make_case(PhantomConfig.from_dict(cfg_d), seed, i)
    atomic_save_nifti(np.rint(case.image).astype(np.int16), case.affine, img_path)
    atomic_save_nifti(case.labels, case.affine, lab_path)
    return i, case.meta


def _check_workers(workers) -> int:
    """`workers` as an int >= 1 (None = every core, `os.cpu_count()`); else a one-line DataError."""
    if workers is None:
        return os.cpu_count() or 1
    if isinstance(workers, bool) or not isinstance(workers, Integral) or workers < 1:
        raise DataError(f"write_dataset: workers must be an integer >= 1 (1 = in this process), "
                        f"got {workers!r}; use e.g. --workers 4, or leave it out for every core.")
    return int(workers)


def _old_metas(root: Path, cfg: PhantomConfig, seed: int) -> dict:
    """Per-case meta of the cases dataset.json already lists; {} if there is none yet.

    Raises `DataError` when `root` holds something else, or a phantom of other settings.
    """
    djson = root / "dataset.json"
    if not djson.exists():
        return {}
    try:
        old = json.loads(djson.read_text())
        gen = old["generator"]
    except (ValueError, KeyError, TypeError):
        raise DataError(f"{djson}: not a phantom dataset.json; choose an empty --out folder "
                        "or delete it.") from None
    if gen.get("config") != cfg.to_dict() or gen.get("seed") != int(seed) or \
            gen.get("version") != GENERATOR_VERSION:
        raise DataError(f"{root} holds a phantom made with other settings (seed "
                        f"{gen.get('seed')}); use another output folder or delete it.")
    return {Path(e["image"]).name.split(".")[0]: e.get("meta", {})
            for e in old.get("training", [])}


def write_dataset(root, cfg: PhantomConfig, n_cases: int, seed: int = 0, progress: bool = True,
                  workers: int | None = None) -> dict:
    """Write `n_cases` phantom cases as an MSD-like data set under `root`.

    Layout: ``imagesTr/phantom_XXX.nii.gz`` (int16 HU), ``labelsTr/phantom_XXX.nii.gz`` (uint8,
    `PHANTOM_LABELS`), ``dataset.json`` (labels, numTraining, training list with per-case
    facts, the generator config and seed). Every file is written atomically (temporary file +
    os.replace), and dataset.json after every finished case. Resumable: cases already on disk
    are skipped when `dataset.json` records the same config and seed; a different config or
    seed raises `DataError`.

    Parallel: the cases are made in `workers` processes (`ProcessPoolExecutor`), each case in
    one process; the files are the same as with ``workers=1`` (a case depends only on
    (config, seed, case id)). Memory: each worker holds one case at a time, ~2 GB at paper
    scale (512 x 512 x 383), ~0.1 GB at standard scale. Workers are forked on Linux; on
    macOS and Windows they are spawned, so a calling script needs the
    ``if __name__ == "__main__":`` guard there.

    Args:
        root: output folder (created).
        cfg: `PhantomConfig`; n_cases: number of cases (ids 0..n_cases-1); seed: data set seed.
        progress: show a tqdm bar (cases done / total).
        workers: processes to use; None = every core (`os.cpu_count()`), 1 = in this process
            (no pool). Never more than the cases left to make.
    Returns:
        dict(root, written, skipped, seconds, workers) (workers: the processes used).
    """
    if not isinstance(cfg, PhantomConfig):
        raise DataError(f"write_dataset: cfg must be a PhantomConfig, got {type(cfg).__name__}; "
                        "use phantom_preset(scale).")
    if int(n_cases) < 1:
        raise DataError(f"write_dataset: n_cases must be >= 1, got {n_cases}.")
    workers = _check_workers(workers)
    root = Path(root)
    t0 = time.perf_counter()
    djson = root / "dataset.json"
    old_meta = _old_metas(root, cfg, seed)
    (root / "imagesTr").mkdir(parents=True, exist_ok=True)
    (root / "labelsTr").mkdir(parents=True, exist_ok=True)
    ids = [f"phantom_{i:03d}" for i in range(int(n_cases))]
    todo, metas = [], {}
    for i, cid in enumerate(ids):
        ip, lp = root / "imagesTr" / f"{cid}.nii.gz", root / "labelsTr" / f"{cid}.nii.gz"
        if ip.is_file() and lp.is_file() and cid in old_meta:
            metas[cid] = old_meta[cid]
            continue
        todo.append((cfg.to_dict(), int(seed), i, str(ip), str(lp)))

    def record():
        atomic_write_json(djson, _dataset_json(cfg, seed, [{"id": c, "meta": metas[c]}
                                                           for c in ids if c in metas]))

    record()                     # the settings first, so an interrupted run can be resumed
    n_proc = min(workers, len(todo))
    bar = tqdm(total=len(ids), initial=len(ids) - len(todo), desc="phantom", unit="case",
               disable=not progress)
    try:
        if n_proc <= 1:
            for job in todo:
                i, meta = _generate_and_write(job)
                metas[ids[i]] = meta
                record()
                bar.update(1)
        else:
            ctx = mp.get_context(_START_METHOD)
            with ProcessPoolExecutor(max_workers=n_proc, mp_context=ctx) as pool:
                futures = [pool.submit(_generate_and_write, job) for job in todo]
                try:
                    for fut in as_completed(futures):
                        i, meta = fut.result()
                        metas[ids[i]] = meta
                        record()
                        bar.update(1)
                except BaseException:
                    for fut in futures:
                        fut.cancel()
                    raise
    except BrokenProcessPool:
        raise RuntimeError(f"a phantom worker process died (killed, e.g. out of memory) after "
                           f"{len(metas)}/{len(ids)} cases; rerun with fewer workers "
                           f"(finished cases are kept).") from None
    finally:
        bar.close()
    return {"root": str(root), "written": len(todo), "skipped": len(ids) - len(todo),
            "seconds": round(time.perf_counter() - t0, 2), "workers": max(n_proc, 1)}
