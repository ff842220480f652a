"""A fold of an experiment, end to end: data -> train -> test -> results.json.

Run folders (built from the settings, so they are predictable and never collide):

    runs/<scale>/<method>[-<variant>]/fold<K>/
        config.json                 every knob, written before the first iteration
        <view>_coarse/, <view>_fine/    (stepwise)  checkpoint_*.pt, loss.csv
        <view>/                          (rstn)      checkpoint_*.pt, loss.csv
        train.json                  seconds and iterations per net
        test/results.json           per-case rows of the papers' tables, timings
        test/probs/<case>.npz       final probability map as uint8 (0..255)
"""
from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from rstn_core.algorithms.rstn import load_rstn, train_rstn
from rstn_core.algorithms.stepwise import load_stepwise, train_coarse, train_fine
from rstn_core.config import SCALES, Config, get_config, scaled_px
from rstn_core.data import (CaseCache, DataError, fold_split, list_cases, load_case, load_folds,
                            make_folds, save_folds, target_mask)
from rstn_core.data.labels import target_values
from rstn_core.data.phantom import phantom_preset, write_dataset
from rstn_core.engine import distributed
from rstn_core.engine.device import check_device
from rstn_core.engine.loader import batch_source
from rstn_core.engine.slices import SliceSet
from rstn_core.experiments.evaluate import evaluate_rstn_case, evaluate_stepwise_case
from rstn_core.experiments.report import fold_table, report
from rstn_core.errors import ConfigError, RunFolderError
from rstn_core.io import atomic_savez, atomic_write_json, read_json
from rstn_core.views import VIEWS

__all__ = ["dataset_root", "fold_cases", "fold_dir", "training_slices", "train_fold",
           "test_fold", "main_job", "variant_name", "load_method", "check_run"]

METHODS = ("stepwise", "rstn", "unet3d")   # unet3d: the 3D peer, rstn_core.experiments.unet3d
MIN_SLICE = 32        # FCN-8s pools five times by 2: a slice needs at least 32 x 32 pixels


def dataset_root(cfg: Config, progress: bool = True) -> Path:
    """The data set of a run: `cfg.data_root`, or the phantom of the scale (written if absent)."""
    if cfg.data_root:
        root = cfg.path("data_root")
        if not root.exists():
            raise FileNotFoundError(f"data root {root} not found; check --data, or drop it to "
                                    "use the phantom.")
        return root
    root = cfg.path("data_dir") / f"phantom_{cfg.scale}"
    if cfg.seed != 0 or asdict(cfg.phantom) != asdict(phantom_preset(cfg.scale)):
        key = json.dumps([cfg.seed, asdict(cfg.phantom)], sort_keys=True)  # another data set
        root = root.with_name(f"{root.name}_{hashlib.sha1(key.encode()).hexdigest()[:8]}")
    # resumable: writes missing cases, refuses a folder made with another phantom config
    write_dataset(root, cfg.phantom, cfg.n_cases, cfg.seed, progress=progress)
    return root


def _n_images(root: Path) -> int:
    return len(list((root / "imagesTr").glob("*.nii.gz")))


def fold_cases(cfg: Config, fold: int, progress: bool = True):
    """(train refs, test refs) of a fold: 4 contiguous blocks of the sorted case ids (as the
    authors), fixed in `folds.json` beside the data (or in the run root when the data folder
    is read-only) the first time, and read from there afterwards. With `cfg.validation` = v
    > 0 it is (fit refs, validation refs) instead: :func:`validation_split`."""
    root = dataset_root(cfg, progress)
    refs = [r for r in list_cases(root) if r.label is not None]
    if not refs:
        raise DataError(f"{root}: no case has a label; training and testing need labelled "
                        "cases (labelsTr/ of a data set); point --data at one with labels.")
    if cfg.data_root is None:
        refs = refs[:cfg.n_cases]
    by_id = {r.id: r for r in refs}
    if len(by_id) < cfg.folds:
        raise DataError(f"{root}: {len(by_id)} labelled cases cannot make folds={cfg.folds} "
                        f"folds; use --set folds={max(2, len(by_id))} or add cases.")
    folds = None
    for path in (root / "folds.json", cfg.path("run_root") / cfg.scale / "folds.json"):
        if path.is_file():
            saved = load_folds(path)
            if sorted(i for f in saved for i in f) == sorted(by_id):
                if len(saved) != cfg.folds:     # never reuse another k's split silently
                    raise RunFolderError(
                        f"{path} splits these cases into {len(saved)} folds, but this run has "
                        f"folds={cfg.folds}; use --set folds={len(saved)}, or move {path.name} "
                        "away to split them again.")
                folds = saved
                break
    if folds is None:
        folds = make_folds(sorted(by_id), cfg.folds)
        try:
            save_folds(folds, root / "folds.json", seed=cfg.seed)
        except OSError:                     # a read-only data set: keep them with the runs
            save_folds(folds, cfg.path("run_root") / cfg.scale / "folds.json", seed=cfg.seed)
    train_ids, test_ids = fold_split(sorted(by_id), fold, folds=folds)
    if cfg.validation:              # settings are chosen here, never on the test fold
        train_ids, test_ids = validation_split(train_ids, cfg.validation)
    return [by_id[i] for i in train_ids], [by_id[i] for i in test_ids]


def validation_split(train_ids, n_val: int):
    """(fit ids, validation ids): the last `n_val` sorted cases of a fold's training cases
    are held out as its validation split (`Config.validation`); the test fold is untouched."""
    ids = sorted(train_ids)
    if not 1 <= n_val < len(ids):
        raise ValueError(f"validation={n_val}: a fold has {len(ids)} training cases; hold out "
                         f"between 1 and {len(ids) - 1}.")
    return ids[:-n_val], ids[-n_val:]


def variant_name(cfg: Config) -> str:
    """CVPR Table 1's name of an RSTN variant ("3x3", "two-layer 3x3"), plus the fine and g
    learning-rate multipliers and g's initialisation where they differ from the scale's
    default ("3x3, fine lr x10", "3x3, g lr x1")."""
    r = cfg.rstn
    name = f"{'two-layer ' if r.layers == 2 else ''}{r.kernel_size}x{r.kernel_size}"
    if cfg.scale in SCALES:
        d = get_config(cfg.scale).rstn
        if r.fine_lr_mult != d.fine_lr_mult:
            name += f", fine lr x{r.fine_lr_mult:g}"
        if r.saliency_lr_mult != d.saliency_lr_mult:
            name += f", g lr x{r.saliency_lr_mult:g}"
        if r.saliency_init != d.saliency_init:
            name += f", g init {r.saliency_init}"
    return name


def fold_dir(cfg: Config, method: str, fold: int, tag: str = "") -> Path:
    name = method + (f"-{tag}" if tag else "")
    return cfg.path("run_root") / cfg.scale / name / f"fold{fold}"


# settings that change how a run executes, never what it computes: a run may resume with others.
# The folders (root, data_dir, cache_dir, run_root) are where files live, not what they hold:
# `--runs ./runs` and `--runs runs`, or a moved folder, resume; data_root is compared resolved.
EXECUTION_ONLY = {"device": None, "root": None, "data_dir": None, "cache_dir": None,
                  "cache_views": None,
                  "run_root": None, "train": ("workers", "prefetch", "activation_checkpointing"),
                  "test": ("channels_last", "compile", "batch_size")}


def _settings(cfg: Config) -> dict:
    """A config's settings without the execution-only ones (what _check_config compares),
    with data_root as a resolved path."""
    d = cfg.to_dict()
    if cfg.data_root is not None:
        d["data_root"] = str(cfg.path("data_root").resolve())
    out = {}
    for k, v in d.items():
        drop = EXECUTION_ONLY.get(k, ())
        if drop is None:
            continue
        out[k] = {kk: vv for kk, vv in v.items() if kk not in drop} if drop else v
    return out


#: config sections a method's nets do not depend on: a stepwise fold stays valid when only
#: RSTN's settings change (RSTN starts from it), and so on
UNUSED_BY = {"stepwise": ("rstn",), "unet3d": ("rstn",)}


def _check_config(cfg: Config, folder: Path, method: str | None = None):
    """config.json is written before step 1; a folder made with other settings is refused
    (the sections `method` does not use, UNUSED_BY, are left out of the comparison)."""
    path = folder / "config.json"
    unused = UNUSED_BY.get(method, ())
    mine = {k: v for k, v in _settings(cfg).items() if k not in unused}
    if path.is_file():
        # read through Config so a folder made before a field was added still matches
        # (the new field takes its default); unknown keys are refused by from_dict
        saved = Config.from_dict(read_json(path, "run config", "delete the run folder"),
                                 source=str(path))
        old = {k: v for k, v in _settings(saved).items() if k not in unused}
        if old != mine:
            diff = sorted(k for k in set(old) | set(mine) if old.get(k) != mine.get(k))
            raise RunFolderError(f"{folder} was made with other settings ({', '.join(diff)}); "
                                 "use another --runs folder or delete it.")
    else:
        atomic_write_json(path, cfg.to_dict())


def _case_view(cfg: Config, ref, cache, view: str):
    """One view's (N, H, W) uint8 windowed slices and binary target, view axis first
    (from the memory-mapped per-case cache, rebuilt when the source file changes)."""
    names = {int(k): v for k, v in cache.info(ref)["label_names"].items()}
    values = target_values(names, cfg.target)
    if not values:
        raise DataError(f"{ref.id}: no label of target {cfg.target!r}; known: "
                        f"{sorted(set(names.values()) - {'background'})}.")
    img, lab = cache.get(ref)[view]
    if min(img.shape[1:]) < MIN_SLICE:
        raise DataError(f"{ref.image}: its {view} slices are {img.shape[1]} x {img.shape[2]} px; "
                        f"the FCN needs at least {MIN_SLICE} x {MIN_SLICE} (five 2x2 poolings); "
                        "resample the scan or leave this view out (--view).")
    return np.asarray(img), np.isin(lab, values).astype(np.uint8)


def training_slices(cfg: Config, refs, view: str, cache=None):
    cache = cache or _cache(cfg)
    imgs, labs = [], []
    for r in refs:
        img, lab = _case_view(cfg, r, cache, view)
        imgs.append(img)
        labs.append(lab)
    return SliceSet(imgs, labs, cfg.train.drop_smallest,
                    max(1, scaled_px(cfg.train.min_target_px ** 0.5, cfg.slice_size) ** 2))


def _cache(cfg: Config):
    # cache_views=false: no per-view files, every view read from the scan (data/cache.py)
    return CaseCache(cfg.path("cache_dir"), store=cfg.cache_views)


def _set_threads(cfg: Config):
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)


def check_run(cfg: Config, method: str, fold: int, views=None) -> Config:
    """Every setting of a run checked before anything is written or computed: the config
    (`Config.validated`), the device (CUDA present), the method, the fold (0..folds-1) and
    the views. Returns the checked config; raises ConfigError (one line)."""
    cfg = cfg.validated()
    try:
        check_device(cfg.device)
    except ValueError as e:
        raise ConfigError(f"device: {e}") from None
    if method not in METHODS:
        raise ConfigError(f"unknown method {method!r}; expected one of {list(METHODS)}.")
    if isinstance(fold, bool) or not isinstance(fold, int) or not 0 <= fold < cfg.folds:
        raise ConfigError(f"fold {fold!r} is out of range: the config has folds={cfg.folds}, so "
                          f"use 0..{cfg.folds - 1} (or --set folds=N).")
    runs = cfg.path("run_root")
    for parent in [runs, *runs.parents]:
        if parent.exists():
            if not parent.is_dir():
                raise ConfigError(f"run_root {runs}: {parent} is a file, not a folder; give "
                                  "--runs a folder (it is created when missing).")
            break
    bad = [v for v in views or () if v not in VIEWS]
    if bad or (views is not None and not list(views)):
        raise ConfigError(f"views {list(views)!r}: expected a non-empty list of names from "
                          f"{list(VIEWS)}.")
    return cfg


def _peer_elsewhere(method: str, verb: str) -> None:
    """The 3D peer has its own module (it imports this one): point there, one line."""
    if method == "unet3d":
        raise ConfigError(f"method unet3d is run by rstn_core.experiments.unet3d."
                          f"{verb}_unet3d (`rstn {verb} --method unet3d`), not {verb}_fold.")


def train_fold(cfg: Config, method: str, fold: int, views=None, resume=False, progress=True,
               tag: str = "", slices_fn=None) -> dict:
    """Train the nets of one fold: stepwise = 3 views x (coarse, fine); rstn = one RSTN per
    view, started from the stepwise nets of the same fold (trained first if missing).

    slices_fn(view) -> SliceSet replaces the training slices (e.g. the cyst chapter's X').
    Under torchrun every rank calls this; rank 0 writes the data, caches and files first.
    Every setting is checked first (`check_run`): a bad one never reaches config.json.
    """
    cfg = check_run(cfg, method, fold, views)
    _peer_elsewhere(method, "train")
    _set_threads(cfg)
    distributed.setup(cfg.device)
    if distributed.world_size() > 1:
        distributed.check_batch(cfg.train.batch_size)
    progress = progress and distributed.is_main()
    out = fold_dir(cfg, method, fold, tag)
    with distributed.main_first():          # rank 0 writes the phantom, folds, config.json
        train_refs, _ = fold_cases(cfg, fold, progress)
        out.mkdir(parents=True, exist_ok=True)
        _check_config(cfg, out, method)
    cache = _cache(cfg)
    views = views or list(cfg.views)
    stats = {}
    stepwise_dir = fold_dir(cfg, "stepwise", fold)
    if method == "rstn" and cfg.rstn.from_stepwise:
        if not all((stepwise_dir / f"{v}_{k}" / "checkpoint_final.pt").is_file()
                   for v in views for k in ("coarse", "fine")):
            stats.update({f"stepwise/{k}": s for k, s in
                          train_fold(cfg, "stepwise", fold, views, resume, progress,
                                     slices_fn=slices_fn).items()})
    for v in views:
        with distributed.main_first():      # rank 0 builds the per-case caches
            slices = slices_fn(v) if slices_fn else training_slices(cfg, train_refs, v, cache)
        slices = batch_source(slices, cfg.train.workers, cfg.train.prefetch)
        if method == "stepwise":
            _, stats[f"{v}_coarse"] = train_coarse(cfg, slices, out / f"{v}_coarse", resume,
                                                   progress)
            _, stats[f"{v}_fine"] = train_fine(cfg, slices, out / f"{v}_fine", resume, progress)
        elif method == "rstn":
            init = stepwise_dir if cfg.rstn.from_stepwise else None
            _, stats[v] = train_rstn(cfg, slices, out / v, init, resume, progress)
        else:
            raise ValueError(f"unknown method {method!r}; expected 'stepwise' or 'rstn'.")
        if hasattr(type(slices), "close"):
            slices.close()                  # stop the DataLoader workers of this view
    summary = {k: {kk: vv for kk, vv in s.items() if kk != "losses"} for k, s in stats.items()}
    if distributed.is_main():
        old = (json.loads((out / "train.json").read_text()) if (out / "train.json").is_file()
               else {})
        atomic_write_json(out / "train.json", {**old, **summary})
    distributed.barrier()
    return stats


def load_method(cfg: Config, method: str, fold: int, tag: str = "", equal_time: bool = False):
    """The trained nets of a fold run, ready for testing: StepwiseNets or RSTNModels.

    equal_time (stepwise): fine nets at the coarse nets' training time (snapshots)."""
    folder = fold_dir(cfg, method, fold, tag)
    if method == "stepwise":
        return load_stepwise(cfg, folder, equal_time)
    return load_rstn(cfg, folder)


def test_fold(cfg: Config, method: str, fold: int, progress=True, tag: str = "",
              equal_time: bool = False, *, case_input=None, test_dir: str | None = None,
              extra: dict | None = None) -> dict:
    """Evaluate one fold's test cases with all rounds; write test/results.json (+ probs).

    equal_time (stepwise): fine nets at the coarse nets' training time, into test_equal_time/.
    case_input(case, label) -> (image, row_extra): what the nets see instead of `case.image`,
        and fields added to the case's row (the cyst study cuts X' around the predicted
        pancreas here); `test_dir` and `extra` (top-level fields of results.json) go with it.
    """
    cfg = check_run(cfg, method, fold)
    _peer_elsewhere(method, "test")
    _set_threads(cfg)
    _, test_refs = fold_cases(cfg, fold, progress)
    folder = fold_dir(cfg, method, fold, tag)
    if not folder.is_dir():
        raise FileNotFoundError(f"no trained run in {folder}; run `rstn train --method {method} "
                                f"--fold {fold} --scale {cfg.scale}` first.")
    rows, times = [], []
    models = None
    test_dir = test_dir or ("test_equal_time" if equal_time else "test")
    for ref in tqdm(test_refs, desc=f"test {cfg.target} {method} fold {fold}",
                    disable=not progress):
        case = load_case(ref.image, ref.label)
        label = target_mask(case, cfg.target)
        image, row_extra = case_input(case, label) if case_input else (case.image, {})
        if models is None:
            models = load_method(cfg, method, fold, tag, equal_time)
        t0 = time.perf_counter()
        if method == "stepwise":
            row, res = evaluate_stepwise_case(image, label, models, cfg.test.max_rounds,
                                              spacing=case.spacing)
            # > 0.5 exactly on Z(t), ordered by confidence (organs.merge_organs breaks ties)
            final = res.confidence(row["stop"]["0.95"]["iterations"])
        else:
            row, res = evaluate_rstn_case(image, label, models, cfg.test.max_rounds,
                                          cfg.test.thr, spacing=case.spacing)
            final = res.confidence(row["stop"]["0.99"]["iterations"])
        times.append(time.perf_counter() - t0)
        atomic_savez(folder / test_dir / "probs" / f"{ref.id}.npz",
                     prob=np.round(final * 255).astype(np.uint8))
        rows.append({"id": ref.id, **row, **row_extra})
    res = {"method": method, "fold": fold, "scale": cfg.scale, "target": cfg.target,
           "variant": variant_name(cfg) if method == "rstn" else "", **(extra or {}),
           "cases": rows, "seconds_per_case": float(np.mean(times)) if times else 0.0,
           "config": cfg.to_dict()}
    res["equal_time"] = equal_time
    path = atomic_write_json(folder / test_dir / "results.json", res)
    res["path"] = str(path)
    return res


def main_job(cfg: Config, methods=("stepwise",), folds=(0,), progress=True) -> str:
    """The README's first command: phantom -> train -> test -> the table, with timings."""
    t0 = time.perf_counter()
    root = dataset_root(cfg, progress)
    print(f"data: {root} ({_n_images(root)} cases)")
    for method in methods:
        for fold in folds:
            t1 = time.perf_counter()
            train_fold(cfg, method, fold, progress=progress)
            res = test_fold(cfg, method, fold, progress=progress)
            print(f"\n{fold_table(res)}\n({method} fold {fold}: "
                  f"{time.perf_counter() - t1:.0f} s train + test)")
    text = report(cfg.run_root, scale=cfg.scale, book_path=None)
    out = cfg.path("run_root") / cfg.scale
    print(f"\nall done in {time.perf_counter() - t0:.0f} s. Runs, checkpoints, loss curves and "
          f"results: {out}/  (tables: `rstn report --runs {cfg.run_root}`)")
    return text
