r"""Many organs: one coarse-to-fine model per organ, merged by confidence (book chapter, 2019).

Each organ is trained and tested **alone**, through the same pipeline and CLI, with the target
in the run root (so runs of different organs never share a folder)::

    rstn train --method stepwise --fold 0 --scale standard --target duodenum \
               --runs runs/organs/duodenum
    rstn test  --method stepwise --fold 0 --scale standard --target duodenum \
               --runs runs/organs/duodenum
    -> runs/organs/<target>/<scale>/<method>/fold<K>/test/{results.json, probs/<case>.npz}

A voxel claimed by several organs goes to the most confident one (the chapter's multi-organ
study; the book's Extensions page):

.. math:: \ell(i) = \begin{cases} \arg\max_k P_k(i) & \text{if } \max_k P_k(i) > 0.5 \\
          0 \text{ (background)} & \text{otherwise} \end{cases}
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from rstn_core.config import Config
from rstn_core.metrics import dsc, format_summary, summarize
from rstn_core.experiments.pipeline import test_fold, train_fold
from rstn_core.data import load_case
from rstn_core.data.labels import target_mask
from rstn_core.experiments.pipeline import fold_cases

__all__ = ["ORGANS", "CHAPTER_NAMES", "CHAPTER_ORGAN_TABLE", "organ_config", "organ_fold",
           "organ_commands", "merge_organs", "load_organ_probs", "merged_fold", "organ_rows",
           "organ_table", "hard_target_gain"]

#: The chapter's seven targets, as `target_mask` names of the phantom.
ORGANS = ("adrenal_glands", "duodenum", "gallbladder", "ivc", "kidney_left", "kidney_right",
          "pancreas")
CHAPTER_NAMES = {"adrenal_glands": "adrenal gland", "duodenum": "duodenum",
                 "gallbladder": "gallbladder", "ivc": "inferior vena cava",
                 "kidney_left": "kidney left", "kidney_right": "kidney right",
                 "pancreas": "pancreas"}
#: The chapter's table (JHMI, 200 cases, DSC %): stepwise C, stepwise F, RSTN C, RSTN F.
CHAPTER_ORGAN_TABLE = {
    "adrenal_glands": (57.38, 61.65, 60.70, 63.76),
    "duodenum": (67.42, 69.39, 71.40, 73.42),
    "gallbladder": (82.57, 82.12, 87.08, 87.10),
    "ivc": (71.77, 71.15, 79.12, 79.69),
    "kidney_left": (92.56, 92.78, 96.08, 96.21),
    "kidney_right": (94.98, 95.39, 95.80, 95.97),
    "pancreas": (83.68, 85.79, 86.09, 87.60),
}
COLUMNS = (("stepwise", "coarse"), ("stepwise", "fine"), ("rstn", "coarse"), ("rstn", "fine"))
_FINE_KEY = {"stepwise": "0.95", "rstn": "0.99"}   # the stop rule `test_fold` stores


def _check_target(target: str):
    if not isinstance(target, str) or not target or "/" in target or target.startswith("."):
        raise ValueError(f"organ target must be a plain name such as 'duodenum', got "
                         f"{target!r}; known here: {', '.join(ORGANS)}.")


def organ_config(cfg: Config, target: str, root="runs/organs") -> Config:
    """`cfg` for one organ: ``target`` set, run root ``<root>/<target>``."""
    _check_target(target)
    return cfg.replace(target=target, run_root=str(Path(root) / target))


def organ_fold(cfg: Config, target: str, method: str, fold: int, root="runs/organs",
               progress: bool = True) -> dict:
    """Train (finished nets are skipped) and test one organ alone; returns `test_fold`'s dict."""
    c = organ_config(cfg, target, root)
    train_fold(c, method, fold, progress=progress)
    return test_fold(c, method, fold, progress=progress)


def organ_commands(targets=ORGANS, methods=("stepwise", "rstn"), folds=(0, 1, 2, 3),
                   scale: str = "standard", root="runs/organs") -> list[str]:
    """The CLI lines of a multi-organ study (train then test, per organ, method and fold)."""
    lines = []
    for target in targets:
        _check_target(target)
        for method in methods:
            for fold in folds:
                common = (f"--method {method} --fold {fold} --scale {scale} --target {target} "
                          f"--runs {Path(root) / target}")
                lines += [f"rstn train {common} --quiet", f"rstn test {common} --quiet"]
    return lines


def merge_organs(probs: dict, threshold: float = 0.5, values: dict | None = None) -> np.ndarray:
    r"""One label map from per-organ probability maps: the most confident organ wins.

    .. math:: \ell(i) = v_{k^*} \text{ if } P_{k^*}(i) > \text{threshold}, \text{ else } 0,
              \qquad k^* = \arg\max_k P_k(i)

    Exact ties go to the organ listed **first** in `probs`. Stepwise runs save their final
    mask coded with the views' mean fine probability (> 0.5 on the mask, `test_fold`), so two
    overlapping stepwise masks are decided by confidence too, not by the dict order.

    Args:
        probs: {organ name: probability map in [0, 1] (float or bool)}, all of one shape.
        threshold: a voxel is claimed when P > threshold (the chapter: 0.5); in [0, 1).
        values: {organ name: label value 1..255}; default 1, 2, ... in the order of `probs`.
    Shapes:
        returns: uint8 label map of the maps' shape, 0 = background.
    Reference:
        Zhou et al., book chapter 2019 (multi-organ study; the book's Extensions page).
    """
    if not isinstance(probs, dict):
        raise TypeError(f"merge_organs: probs must be a dict {{organ name: probability map}}, "
                        f"got {type(probs).__name__}.")
    if not probs:
        raise ValueError("merge_organs: probs is empty; give at least one organ's map.")
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) \
            or not 0 <= threshold < 1:
        raise ValueError(f"merge_organs: threshold must be in [0, 1), got {threshold!r}.")
    names = list(probs)
    if values is None:
        values = {n: k + 1 for k, n in enumerate(names)}
    missing = [n for n in names if n not in values]
    vals = [values.get(n) for n in names]
    if missing or any(isinstance(v, bool) or not isinstance(v, (int, np.integer))
                      or not 1 <= v <= 255 for v in vals) or len(set(vals)) != len(vals):
        raise ValueError(f"merge_organs: values must give every organ a distinct integer "
                         f"label in 1..255 (0 is the background); got {values!r} for "
                         f"{names}.")
    shape = None
    best_p = best_k = None
    for k, name in enumerate(names):
        p = probs[name]
        if hasattr(p, "detach") and hasattr(p, "cpu"):
            p = p.detach().cpu().numpy()
        p = np.asarray(p)
        if p.dtype == bool:
            p = p.astype(np.float32)
        if not np.issubdtype(p.dtype, np.number):
            raise TypeError(f"merge_organs: {name!r} must be a numeric or bool array, got dtype "
                            f"{p.dtype}.")
        if shape is None:
            shape = p.shape
            best_p = np.full(shape, -np.inf, np.float32)
            best_k = np.zeros(shape, np.int64)
        elif p.shape != shape:
            raise ValueError(f"merge_organs: every map must have one shape; {names[0]!r} is "
                             f"{shape} but {name!r} is {p.shape}.")
        if p.size and not np.isfinite(p).all():
            raise ValueError(f"merge_organs: {name!r} must hold probabilities in [0, 1], got "
                             f"NaN or inf values.")
        if p.size and (p.min() < 0 or p.max() > 1):
            raise ValueError(f"merge_organs: {name!r} must hold probabilities in [0, 1], got "
                             f"values in [{p.min()}, {p.max()}]"
                             f"{' (uint8 0..255? divide by 255)' if p.max() > 1 else ''}.")
        p = p.astype(np.float32, copy=False)
        win = p > best_p                                   # strict: ties stay with the earlier
        best_p[win] = p[win]                               # max_k P_k(i)
        best_k[win] = k                                    # argmax_k P_k(i)
    lut = np.array(vals, dtype=np.uint8)
    return np.where(best_p > threshold, lut[best_k], 0).astype(np.uint8)   # chapter's merge ℓ(i)


def load_organ_probs(root, targets, scale: str, method: str, fold: int, case_id: str) -> dict:
    """{target: probability map} of one test case from each organ's stored prediction."""
    out = {}
    for t in targets:
        path = (Path(root) / t / scale / method / f"fold{fold}" / "test" / "probs"
                / f"{case_id}.npz")
        if not path.is_file():
            raise FileNotFoundError(f"no stored prediction {path}; run `rstn test --method "
                                    f"{method} --fold {fold} --scale {scale} --target {t} "
                                    f"--runs {Path(root) / t}` first.")
        with np.load(path) as z:
            out[t] = z["prob"].astype(np.float32) / 255.0
    return out


def merged_fold(cfg: Config, method: str, fold: int, targets=ORGANS, root="runs/organs",
                threshold: float = 0.5) -> dict:
    """Per organ, the test cases' DSC alone and after `merge_organs`.

    Returns {"alone": {target: [dsc]}, "merged": {target: [dsc]}, "ids": [case ids]}.
    """
    targets = list(targets)
    _, test_refs = fold_cases(cfg, fold, progress=False)
    alone = {t: [] for t in targets}
    merged = {t: [] for t in targets}
    for ref in test_refs:
        case = load_case(ref.image, ref.label)
        probs = load_organ_probs(root, targets, cfg.scale, method, fold, case.id)
        lab = merge_organs(probs, threshold)
        for k, t in enumerate(targets):
            y = target_mask(case, t)
            alone[t].append(dsc(probs[t] > threshold, y))
            merged[t].append(dsc(lab == k + 1, y))
    return {"alone": alone, "merged": merged, "ids": [r.id for r in test_refs]}


def organ_rows(root, scale: str, targets=None) -> dict:
    """{target: {(method, "coarse"|"fine"): [per-case DSC over every fold found]}}.

    Reads ``<root>/<target>/<scale>/<method>/fold*/test/results.json``. Coarse = the fused
    coarse mask Z(0) before post-processing; fine = the stop rule `test_fold` stores
    (stepwise d(t) > 0.95, RSTN > 0.99).
    """
    root = Path(root)
    if targets is None:
        targets = sorted(p.name for p in root.iterdir() if (p / scale).is_dir()) \
            if root.is_dir() else []
    out = {}
    for t in targets:
        cols = {}
        for method in ("stepwise", "rstn"):
            for path in sorted((root / t / scale / method).glob("fold*/test/results.json")):
                res = json.loads(path.read_text())
                if res.get("target") != t:
                    raise ValueError(f"{path} holds target {res.get('target')!r}, not {t!r}; "
                                     f"keep each organ's runs under {root}/<target>.")
                for r in res["cases"]:
                    cols.setdefault((method, "coarse"), []).append(r["coarse"])
                    cols.setdefault((method, "fine"), []).append(
                        r["stop"][_FINE_KEY[method]]["dsc"])
        if cols:
            out[t] = cols
    return out


def organ_table(root, scale: str, targets=None, std: bool = False) -> str:
    """The chapter's multi-organ table (DSC %, mean over all test cases of the folds found),
    columns stepwise C / F and RSTN C / F; † marks a fine stage worse than its coarse stage;
    "–" a run not made."""
    rows = organ_rows(root, scale, targets)
    if not rows:
        return f"no organ results under {root} for scale {scale!r}; run organ_fold first."
    lines = ["| organ | stepwise C | stepwise F | RSTN C | RSTN F | n |",
             "|---|---|---|---|---|---|"]
    for t, cols in rows.items():
        cells = []
        for method, stage in COLUMNS:
            v = cols.get((method, stage))
            if not v:
                cells.append("–")
                continue
            s = summarize(v)
            cell = format_summary(s) if std else f"{100 * s['mean']:.2f}"
            c = cols.get((method, "coarse"))
            if stage == "fine" and c and np.mean(v) < np.mean(c):
                cell += " †"
            cells.append(cell)
        n = max(len(v) for v in cols.values())
        lines.append(f"| {CHAPTER_NAMES.get(t, t)} | " + " | ".join(cells) + f" | {n} |")
    gain = hard_target_gain({t: {k: float(np.mean(v)) for k, v in cols.items()}
                             for t, cols in rows.items()})
    if gain is not None:
        lines.append(f"\nRSTN F − stepwise F over the hard targets (kidneys excluded): "
                     f"{100 * gain:+.2f} points.")
    return "\n".join(lines)


def hard_target_gain(means: dict) -> float | None:
    """Mean of RSTN F − stepwise F over the targets other than the kidneys (the chapter:
    +4.29 points over its five hard targets). `means`: {target: {(method, stage): mean}}."""
    # the chapter's gain: mean over hard targets of RSTN F - stepwise F
    gains = [m[("rstn", "fine")] - m[("stepwise", "fine")] for t, m in means.items()
             if not t.startswith("kidney") and ("rstn", "fine") in m
             and ("stepwise", "fine") in m]
    return float(np.mean(gains)) if gains else None
