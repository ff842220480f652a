r"""Pancreatic cysts: segment the pancreas first, then the cyst near it (book chapter, 2019).

A cyst is often < 0.1 % of the volume, and > 95 % of its voxels lie inside the pancreas in
121 of 131 of the chapter's cases. So the cyst networks see a restricted input (the
chapter's cyst stage; the book's Extensions page gives the equation):

.. math:: X'_i = X_i \cdot \mathbb{1}\{\exists\, j:\ P_j > 0.5 \text{ and } |i - j| < t\},
          \qquad t = 15 \text{ voxels}

The indicator has a zero gradient almost everywhere, so the two stages train separately:
training cuts X' around the **ground-truth** pancreas, testing around the **predicted** one.
With RSTN this gives the chapter's four stages (coarse/fine pancreas, then coarse/fine cyst on
X'); with the stepwise model the same four stages are two fixed-point models.

Run folders of a cyst study (``cfg.run_root`` = its root, e.g. ``runs/cyst``)::

    <root>/pancreas/<scale>/<method>/fold<K>/      stages 1-2 (target "pancreas")
    <root>/cyst_whole/<scale>/<method>/fold<K>/    the whole-image cyst baseline
    <root>/cyst_region/<scale>/<method>/fold<K>/   stages 3-4: cyst nets on X'
        region.json                                t, its unit and the fill value
        test/results.json                          rows + region facts per case

The pipeline has no hook for a per-case input transform yet, so `train_region_fold` and
`test_region_fold` repeat `pipeline.train_fold` / `test_fold` with X' in place of X (the
proposed hook is an ``image_transform(case) -> image_hu`` argument of `training_slices`,
`train_fold` and `test_fold`).
"""
from __future__ import annotations

import json
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from scipy.ndimage import distance_transform_edt

from rstn_core.config import Config, scaled_px
from rstn_core.io import atomic_write_json
from rstn_core.metrics import dsc, format_summary, summarize
from rstn_core.data.labels import target_mask
from rstn_core.data import load_case
from rstn_core.engine.slices import SliceSet
from rstn_core.views import to_view, window
from rstn_core.experiments.pipeline import fold_cases, fold_dir, train_fold
from rstn_core.experiments.pipeline import fold_dir, test_fold
from rstn_core.experiments.pipeline import fold_dir, train_fold

__all__ = ["CHAPTER_CYST_TABLE", "STUDY_PARTS", "pancreas_region", "restrict_to_region",
           "RegionSpec", "region_image", "load_prediction", "region_training_slices",
           "train_region_fold", "test_region_fold", "study_config", "cyst_fold",
           "final_dsc", "cyst_rows", "cyst_table"]

#: The chapter's cyst table (JHMI, 131 cases, DSC %): (target, method, mean, std, max, min).
CHAPTER_CYST_TABLE = (
    ("pancreas", "stepwise", 79.23, 9.72, 93.82, 69.54),
    ("pancreas", "RSTN", 83.81, 10.51, 94.34, 20.77),
    ("cyst", "stepwise, whole image", 60.46, 31.37, 95.67, 0.00),
    ("cyst", "RSTN, whole image", 60.73, 32.46, 96.50, 0.00),
    ("cyst", "stepwise, inside pancreas", 63.44, 27.71, 95.55, 0.00),
    ("cyst", "RSTN, inside pancreas", 67.19, 27.91, 96.05, 0.00),
)
#: Sub-folders of a cyst study's run root, and the target each one trains.
STUDY_PARTS = {"pancreas": "pancreas", "cyst_whole": "cyst", "cyst_region": "cyst"}


# --------------------------------------------------------------------------------------------
# X' = X · 1{region}
# --------------------------------------------------------------------------------------------
def _binary(x, caller: str, name: str) -> np.ndarray:
    if hasattr(x, "detach") and hasattr(x, "cpu"):       # torch tensor
        x = x.detach().cpu().numpy()
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{caller}: {name} must be a numpy array (or tensor), got "
                        f"{type(x).__name__}.")
    if x.dtype == bool:
        return x
    if not np.issubdtype(x.dtype, np.number):
        raise TypeError(f"{caller}: {name} must be a bool or 0/1 array, got dtype {x.dtype}.")
    if x.size and not ((x == 0) | (x == 1)).all():
        raise ValueError(f"{caller}: {name} must be binary (bool or 0/1), got values in "
                         f"[{x.min()}, {x.max()}]; threshold a probability map first, e.g. "
                         f"prob > 0.5.")
    return x.astype(bool)


def pancreas_region(mask, t: float = 15, spacing=None) -> np.ndarray:
    r"""The voxels near the pancreas: :math:`\{i : \exists j,\ P_j > 0.5,\ |i - j| < t\}`.

    .. math:: R_i = \mathbb{1}\{\min_{j:\,M_j} \lVert i - j \rVert_2 < t\}

    The distance is **Euclidean, in voxels** by default (the chapter's t = 15 voxels; it does
    not say which norm), computed with one exact Euclidean distance transform
    (`scipy.ndimage.distance_transform_edt` on the complement of the mask, cropped to the
    mask's box plus t) rather than loops. With `spacing` the distance is in millimetres and
    `t` is read in mm, so anisotropic voxels (thick slices) are handled.

    Args:
        mask: binary pancreas mask M (bool or 0/1), any number of dimensions (usually
            (X, Y, Z)); the ground truth in training, the prediction P > 0.5 in testing.
        t: the distance bound, strict (``< t``); > 0. Voxels by default, mm with `spacing`.
        spacing: None (voxel units) or the voxel size per axis in mm, e.g. `case.spacing`.
    Shapes:
        returns: bool array of mask's shape. An empty mask gives an empty region (nothing
        is near no pancreas), so X' is all background.
    Reference:
        Zhou et al., book chapter 2019 (cyst stage; the book's Extensions page).
    """
    m = _binary(mask, "pancreas_region", "mask")
    if isinstance(t, bool) or not isinstance(t, (int, float, np.integer, np.floating)) \
            or not np.isfinite(t) or t <= 0:
        raise ValueError(f"pancreas_region: t must be a positive number (voxels, or mm with "
                         f"spacing), got {t!r}.")
    if m.ndim == 0:
        raise ValueError("pancreas_region: mask must have at least one dimension, got a scalar.")
    if spacing is None:
        sp = np.ones(m.ndim)
    else:
        sp = np.asarray(spacing, dtype=float).ravel()
        if sp.shape != (m.ndim,) or not np.all(np.isfinite(sp)) or (sp <= 0).any():
            raise ValueError(f"pancreas_region: spacing must be {m.ndim} positive sizes in mm "
                             f"(one per axis of the mask {m.shape}), got {spacing!r}.")
    out = np.zeros(m.shape, dtype=bool)
    idx = np.argwhere(m)
    if len(idx) == 0:
        return out
    reach = np.ceil(float(t) / sp).astype(int)          # no voxel beyond this is < t away
    lo = np.maximum(idx.min(0) - reach, 0)
    hi = np.minimum(idx.max(0) + reach + 1, m.shape)
    box = tuple(slice(a, b) for a, b in zip(lo, hi))
    d = distance_transform_edt(~m[box], sampling=sp)   # min_j |i - j| over mask voxels j
    out[box] = d < t                                    # chapter's region: |i - j| < t
    return out


def restrict_to_region(image_hu, region, fill_hu: float = -1000.0) -> np.ndarray:
    r"""X' = X · 1{region} on the network's input: voxels outside the region set to 'zero'.

    .. math:: X'_i = X_i \text{ if } R_i \text{ else } x_{\mathrm{fill}}

    "Zero" is meant for the **windowed** input the network sees: the window [-100, 240] HU
    maps -100 HU (and anything below) to 0. This function works in HU and fills with
    `fill_hu` = -1000 HU (air), which windows to exactly 0 for every window whose lower end
    is >= -1000 HU, so ``window(X') == window(X) * region`` holds exactly. (Filling with 0 HU
    would be a bug: 0 HU windows to 100/340 ≈ 0.29, a grey, not zero.)

    Args:
        image_hu: (X, Y, Z) CT volume in HU (numpy).
        region: bool mask of the same shape (`pancreas_region`).
        fill_hu: the value outside the region, HU; any value <= the window's lower end works.
    Shapes:
        returns: float32 array of image_hu's shape.
    Reference:
        Zhou et al., book chapter 2019 (cyst stage; the book's Extensions page).
    """
    if not isinstance(image_hu, np.ndarray):
        raise TypeError(f"restrict_to_region: image_hu must be a numpy array in HU, got "
                        f"{type(image_hu).__name__}.")
    r = _binary(region, "restrict_to_region", "region")
    if r.shape != image_hu.shape:
        raise ValueError(f"restrict_to_region: region {r.shape} and image {image_hu.shape} must "
                         f"have the same shape; build the region from this case's mask.")
    if not np.isfinite(fill_hu):
        raise ValueError(f"restrict_to_region: fill_hu must be a finite HU value, got {fill_hu}.")
    x = np.where(r, image_hu, np.float32(fill_hu))              # chapter's X' = X · 1{R}
    return x.astype(np.float32)


@dataclass(frozen=True)
class RegionSpec:
    """How X' is cut: distance bound `t` in `unit` ("voxel", the chapter, or "mm"), and the
    HU value outside the region (see `restrict_to_region`)."""
    t: float = 15.0
    unit: str = "voxel"
    fill_hu: float = -1000.0

    def __post_init__(self):
        if self.unit not in ("voxel", "mm"):
            raise ValueError(f"RegionSpec: unit must be 'voxel' or 'mm', got {self.unit!r}.")
        if isinstance(self.t, bool) or not isinstance(self.t, (int, float)) or self.t <= 0:
            raise ValueError(f"RegionSpec: t must be a positive number, got {self.t!r}.")

    def region(self, mask, spacing) -> np.ndarray:
        return pancreas_region(mask, self.t, spacing if self.unit == "mm" else None)

    def to_dict(self) -> dict:
        return {k: (float(v) if k != "unit" else v) for k, v in asdict(self).items()}


def region_image(case, spec: RegionSpec, pancreas=None) -> tuple[np.ndarray, np.ndarray]:
    """(X', region) of a case: around `pancreas` (a binary mask, e.g. the prediction), or
    around the case's ground-truth pancreas when `pancreas` is None (training)."""
    mask = target_mask(case, "pancreas") if pancreas is None else pancreas
    region = spec.region(mask, case.spacing)                  # {i: ∃ j, M_j, |i - j| < t}
    return restrict_to_region(case.image, region, spec.fill_hu), region   # X' = X · 1{R}


def load_prediction(run: Path | str, case_id: str, shape=None) -> np.ndarray:
    """The final mask P > 0.5 that `test_fold` stored for a case (test/probs/<id>.npz)."""
    path = Path(run) / "test" / "probs" / f"{case_id}.npz"
    if not path.is_file():
        raise FileNotFoundError(f"no stored prediction {path}; test the pancreas run first "
                                f"(`rstn test ... --runs <root>/pancreas`, or cyst_fold).")
    with np.load(path) as z:
        prob = z["prob"].astype(np.float32) / 255.0
    if shape is not None and prob.shape != tuple(shape):
        raise ValueError(f"{path}: prediction of shape {prob.shape}, but the case is "
                         f"{tuple(shape)}; it comes from another data set.")
    return prob > 0.5                                                 # P_j > 0.5


# --------------------------------------------------------------------------------------------
# Training and testing on X' (the pipeline's train_fold / test_fold, with X' for X)
# --------------------------------------------------------------------------------------------
def region_training_slices(cfg: Config, refs, view: str, spec: RegionSpec):
    """`pipeline.training_slices` on X' cut around the **ground-truth** pancreas."""
    imgs, labs = [], []
    for ref in refs:
        case = load_case(ref.image, ref.label)
        x, _ = region_image(case, spec)                               # X' (GT pancreas)
        img = np.round(window(x) * 255).astype(np.uint8)
        imgs.append(np.ascontiguousarray(to_view(img, view)))
        labs.append(np.ascontiguousarray(to_view(target_mask(case, cfg.target)
                                                 .astype(np.uint8), view)))
    return SliceSet(imgs, labs, cfg.train.drop_smallest,
                    max(1, scaled_px(cfg.train.min_target_px ** 0.5, cfg.slice_size) ** 2))


def _check_region(spec: RegionSpec, folder: Path):
    path = folder / "region.json"
    if path.is_file():
        old = json.loads(path.read_text())
        if old != spec.to_dict():
            raise FileExistsError(f"{folder} was trained with region {old}, not "
                                  f"{spec.to_dict()}; use another run root or delete it.")
    else:
        atomic_write_json(path, spec.to_dict())


def train_region_fold(cfg: Config, method: str, fold: int, spec: RegionSpec = RegionSpec(),
                      views=None, resume: bool = False, progress: bool = True) -> dict:
    """`pipeline.train_fold` with X' (GT pancreas region) as the input of every net.

    Stepwise: 3 views x (coarse, fine) cyst nets; RSTN: one per view, started from the
    stepwise X' nets of the same folder root (trained first if missing), as `train_fold`.
    """
    if method not in ("stepwise", "rstn"):
        raise ValueError(f"unknown method {method!r}; expected 'stepwise' or 'rstn'.")
    train_refs, _ = fold_cases(cfg, fold, progress)
    methods = {method, "stepwise"} if method == "rstn" and cfg.rstn.from_stepwise else {method}
    for m in sorted(methods):
        folder = fold_dir(cfg, m, fold)
        folder.mkdir(parents=True, exist_ok=True)
        _check_region(spec, folder)
    return train_fold(cfg, method, fold, views, resume, progress,
                      slices_fn=lambda v: region_training_slices(cfg, train_refs, v, spec))


def test_region_fold(cfg: Config, method: str, fold: int, region_from, spec: RegionSpec =
                     RegionSpec(), progress: bool = True) -> dict:
    """`pipeline.test_fold` with X' cut around the **predicted** pancreas.

    Args:
        region_from: the pancreas run folder whose test/probs/<id>.npz give P (its
            `test_fold` must have run), or ``"gt"`` for the ground-truth pancreas (an upper
            bound of the region step).
    Writes <cyst run>/test/results.json (or test-gt-region/ for ``"gt"``); every case row
    also has ``region``: the region's share of the volume, the share of the cyst inside it
    (an upper bound of the cyst recall), the pancreas DSC, and whether it was empty.
    """
    folder = fold_dir(cfg, method, fold)
    if not (folder / "region.json").is_file():
        raise FileNotFoundError(f"no region-trained run in {folder}; run train_region_fold "
                                f"(or cyst_fold) for {method} fold {fold} first.")
    _check_region(spec, folder)
    gt = isinstance(region_from, str) and region_from == "gt"

    def case_input(case, label):
        panc_gt = target_mask(case, "pancreas")
        panc = panc_gt if gt else load_prediction(region_from, case.id, case.image.shape)
        image, region = region_image(case, spec, panc)                # X' (predicted P)
        if not region.any():
            warnings.warn(f"{case.id}: the predicted pancreas is empty, so X' is empty.")
        n_lab = int(label.sum())
        return image, {"region": {
            "fraction": float(region.mean()),
            "cyst_inside": float((label & region).sum() / n_lab) if n_lab else 1.0,
            "pancreas_dsc": dsc(panc, panc_gt), "empty": not bool(region.any())}}

    return test_fold(cfg, method, fold, progress, case_input=case_input,
                     test_dir="test-gt-region" if gt else "test",
                     extra={"region": {**spec.to_dict(), "from": "gt" if gt else str(region_from)}})


# --------------------------------------------------------------------------------------------
# The whole study of one fold: pancreas -> region -> cyst, and the whole-image baseline
# --------------------------------------------------------------------------------------------
def study_config(cfg: Config, part: str) -> Config:
    """The config of one part of a cyst study rooted at `cfg.run_root` (see `STUDY_PARTS`)."""
    if part not in STUDY_PARTS:
        raise ValueError(f"unknown study part {part!r}; expected one of {list(STUDY_PARTS)}.")
    return cfg.replace(target=STUDY_PARTS[part], run_root=str(Path(cfg.run_root) / part))


def _cached_test(cfg, method, fold, progress, retest):
    path = fold_dir(cfg, method, fold) / "test" / "results.json"
    if path.is_file() and not retest:
        return dict(json.loads(path.read_text()), path=str(path))
    return test_fold(cfg, method, fold, progress=progress)


def cyst_fold(cfg: Config, method: str, fold: int, region_from=None,
              spec: RegionSpec = RegionSpec(), baseline: bool = True, progress: bool = True,
              retest: bool = False) -> dict:
    """One fold of the chapter's cyst study, for one method ("stepwise" or "rstn").

    1-2. pancreas nets (target "pancreas"), trained and tested (skipped when done);
    3-4. cyst nets trained on X' around the ground-truth pancreas, tested on X' around the
         pancreas predicted in 1-2 (or `region_from`: another pancreas run folder, or "gt");
    and, with `baseline`, the whole-image cyst nets (target "cyst" on X).
    Finished nets are skipped; stored results are reused unless `retest`.

    Returns {"pancreas": results, "cyst_whole": results, "cyst_region": results}
    (each a `test_fold`-style dict; "pancreas" is absent when `region_from` is given).
    """
    if method not in ("stepwise", "rstn"):
        raise ValueError(f"unknown method {method!r}; expected 'stepwise' or 'rstn'.")
    out = {}
    if region_from is None:
        cp = study_config(cfg, "pancreas")
        train_fold(cp, method, fold, progress=progress)
        out["pancreas"] = _cached_test(cp, method, fold, progress, retest)
        region_from = fold_dir(cp, method, fold)
    if baseline:
        cw = study_config(cfg, "cyst_whole")
        train_fold(cw, method, fold, progress=progress)
        out["cyst_whole"] = _cached_test(cw, method, fold, progress, retest)
    cr = study_config(cfg, "cyst_region")
    train_region_fold(cr, method, fold, spec, progress=progress)
    path = fold_dir(cr, method, fold) / ("test-gt-region" if region_from == "gt" else "test") \
        / "results.json"
    if path.is_file() and not retest and json.loads(path.read_text())["region"]["from"] == \
            ("gt" if region_from == "gt" else str(region_from)):
        out["cyst_region"] = dict(json.loads(path.read_text()), path=str(path))
    else:
        out["cyst_region"] = test_region_fold(cr, method, fold, region_from, spec, progress)
    return out


# --------------------------------------------------------------------------------------------
# The chapter's table
# --------------------------------------------------------------------------------------------
def final_dsc(row: dict, method: str) -> float:
    """A case's final DSC as `test_fold` stores it: stepwise stops at d(t) > 0.95 (MICCAI),
    RSTN at DSC(Z(t-1), Z(t)) > 0.99 (CVPR)."""
    return row["stop"]["0.95" if method == "stepwise" else "0.99"]["dsc"]


def cyst_rows(root, scale: str) -> list[dict]:
    """Per row of the chapter's table: label, method, final DSC per case, folds, region facts.

    Reads ``<root>/{pancreas,cyst_whole,cyst_region}/<scale>/<method>/fold*/test/results.json``.
    """
    names = {"pancreas": ("pancreas", ""), "cyst_whole": ("cyst", ", whole image"),
             "cyst_region": ("cyst", ", inside pancreas")}
    out = []
    for part, (target, suffix) in names.items():
        for method in ("stepwise", "rstn"):
            paths = sorted((Path(root) / part / scale / method).glob("fold*/test/results.json"))
            if not paths:
                continue
            results = [json.loads(p.read_text()) for p in paths]
            rows = [r for res in results for r in res["cases"]]
            out.append({"target": target, "method": ("RSTN" if method == "rstn" else method)
                        + suffix, "part": part, "folds": sorted(r["fold"] for r in results),
                        "dsc": [final_dsc(r, method) for r in rows],
                        "region": [r["region"] for r in rows if "region" in r]})
    return out


def cyst_table(root, scale: str) -> str:
    """The chapter's cyst table from a study's results, plus the number of cases with DSC 0
    (cyst missed entirely: no overlap at all) and, for the X' rows, the mean share of the
    cyst inside the predicted region."""
    rows = cyst_rows(root, scale)
    if not rows:
        return f"no cyst-study results under {root} for scale {scale!r}; run cyst_fold first."
    lines = ["| target | method | mean DSC (%) | max | min | # DSC = 0 | n | cyst in region |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        s = summarize(r["dsc"])
        inside = (f"{100 * np.mean([g['cyst_inside'] for g in r['region']]):.1f} %"
                  if r["region"] else "–")
        lines.append(f"| {r['target']} | {r['method']} | {format_summary(s)} | "
                     f"{100 * s['max']:.2f} | {100 * s['min']:.2f} | "
                     f"{sum(d == 0 for d in r['dsc'])} | {s['n']} | {inside} |")
    return "\n".join(lines)
