"""The result figures of the book, made from finished fold runs (`rstn figures`).

* :func:`find_context_case` — the slice, over all test cases, where RSTN's final mask beats
  the stepwise model's by the most (CVPR Fig. 2: the stepwise fine net sees only its box, so
  what the box leaves out — or a look-alike it keeps in — cannot be told apart; RSTN's fine net
  also sees the coarse map through g(P)). Found from the stored masks, no hand picking.
* :func:`context_figure` — that slice: ground truth (and the phantom's look-alikes), then
  each method's final mask and the box + margin its fine net looked through.
* :func:`saliency_figure` — the three weight maps g(P(0)) of one slice (CVPR Fig. 5).
* :func:`write_figures` — all of them, plus the convergence curves d(t), as PNG files.

Everything reads what `pipeline.test_fold` wrote: ``<run>/test/results.json`` and
``<run>/test/probs/<id>.npz`` (uint8, 255 x the final mask or probability).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from rstn_core.crop import bbox
from rstn_core.metrics import dsc
from matplotlib.patches import Rectangle
from rstn_core.plots.viz import _new_figure, oriented_slice, overlay
from rstn_core.plots.viz import _new_figure
from rstn_core.config import Config
from rstn_core.data import load_case, target_mask
from rstn_core.experiments.pipeline import fold_cases
from rstn_core.data import target_mask
import torch
from rstn_core.config import Config, scaled_px
from rstn_core.experiments.pipeline import load_method
from rstn_core.algorithms.rstn import rstn_predict, saliency_channels
from rstn_core.plots.viz import _new_figure, curves
from rstn_core.views import VIEW_AXIS, VIEWS, stack3
from rstn_core.io import atomic_savefig

__all__ = ["slice_dsc", "find_context_case", "context_figure", "saliency_figure",
           "write_figures"]


def slice_dsc(label: np.ndarray, mask: np.ndarray, axis: int = 2) -> np.ndarray:
    """DSC(mask, label) of every slice along `axis` (MICCAI Eq. 1 per slice; NaN where both
    are empty)."""
    label, mask = np.asarray(label, bool), np.asarray(mask, bool)
    if label.shape != mask.shape:
        raise ValueError(f"slice_dsc: label {label.shape} and mask {mask.shape} differ.")
    other = tuple(a for a in range(label.ndim) if a != axis)
    inter = (label & mask).sum(axis=other)
    total = label.sum(axis=other) + mask.sum(axis=other)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, 2.0 * inter / np.maximum(total, 1), np.nan)


def find_context_case(cases, axis: int = 2, min_area: int = 20) -> dict:
    """The slice where RSTN's final mask beats the stepwise one's by the most.

    Args:
        cases: iterable of dicts with ``id`` and bool volumes ``label``, ``stepwise``, ``rstn``.
        axis: the slicing axis (2 = axial).
        min_area: slices whose organ has fewer pixels are skipped (a one-pixel slice makes any
            gain look huge).
    Returns:
        {"id", "axis", "index", "gain", "dsc_stepwise", "dsc_rstn" (of the slice),
         "case_dsc_stepwise", "case_dsc_rstn"}.
    """
    best = None
    for c in cases:
        label = np.asarray(c["label"], bool)
        other = tuple(a for a in range(3) if a != axis)
        area = label.sum(axis=other)
        ds, dr = slice_dsc(label, c["stepwise"], axis), slice_dsc(label, c["rstn"], axis)
        gain = np.where(area >= min_area, dr - ds, -np.inf)       # RSTN minus stepwise, per slice
        k = int(np.argmax(gain))
        if np.isfinite(gain[k]) and (best is None or gain[k] > best["gain"]):
            best = {"id": c["id"], "axis": axis, "index": k, "gain": float(gain[k]),
                    "dsc_stepwise": float(ds[k]), "dsc_rstn": float(dr[k]),
                    "case_dsc_stepwise": dsc(c["stepwise"], label),
                    "case_dsc_rstn": dsc(c["rstn"], label)}
    if best is None:
        raise ValueError(f"find_context_case: no slice has at least {min_area} organ pixels; "
                         "lower min_area.")
    return best


def _box_patch(ax, mask2d: np.ndarray, margin: int, color: str):
    """The fine net's field of view on a displayed slice: bbox(mask) + margin, dashed."""
    box = bbox(mask2d, margin)
    if box is None:
        return
    r0, r1, c0, c1 = box
    ax.add_patch(Rectangle((c0 - 0.5, r0 - 0.5), c1 - c0, r1 - r0, fill=False, ls="--",
                           lw=1.2, color=color, gid="box"))


def context_figure(image, label, stepwise, rstn, index: int, view: str = "axial",
                   margins=(9, 6), distractor=None, title: str = ""):
    """CVPR Fig. 2 on our data: one slice, three panels.

    (1) the slice with the ground truth (green) and, if given, the look-alike structures
    (yellow); (2) the stepwise model's final mask (red) and the box + margin its fine net
    cropped (at a fixed point the final mask is the previous round's); (3) the same for RSTN.
    `margins`: (stepwise, RSTN) frames in pixels. Zoomed to the boxes. Volumes are (x, y, z).
    """
    margin = max(margins)
    sl = {k: oriented_slice(np.asarray(v), view, index) for k, v in
          (("image", image), ("label", label), ("stepwise", stepwise), ("rstn", rstn))}
    look = oriented_slice(np.asarray(distractor), view, index) > 0 \
        if distractor is not None else None
    fig = _new_figure(figsize=(12, 4.4))
    axes = fig.subplots(1, 3)
    union = sl["label"] | sl["stepwise"] | sl["rstn"] | (look if look is not None else False)
    rows, cols = np.nonzero(union) if union.any() else (np.array([0]), np.array([0]))
    pad = margin + 8
    lim = (max(rows.min() - pad, 0), min(rows.max() + pad, union.shape[0] - 1),
           max(cols.min() - pad, 0), min(cols.max() + pad, union.shape[1] - 1))
    overlay(axes[0], sl["image"], sl["label"], None, title="ground truth"
            + (" (yellow: look-alikes)" if look is not None and look.any() else ""))
    if look is not None and look.any():
        axes[0].contour(look.astype(np.float32), levels=[0.5], colors=["#f1c40f"],
                        linewidths=1.4)
    for ax, key, name, m in ((axes[1], "stepwise", "stepwise (Algorithm 1)", margins[0]),
                             (axes[2], "rstn", "RSTN (Algorithm 2)", margins[1])):
        overlay(ax, sl["image"], sl["label"], sl[key],
                title=f"{name}: slice DSC {100 * dsc(sl[key], sl['label']):.1f} %")
        _box_patch(ax, sl[key], m, "#00bfff")
    for ax in axes:
        ax.set_xlim(lim[2] - 0.5, lim[3] + 0.5)
        ax.set_ylim(lim[1] + 0.5, lim[0] - 0.5)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def saliency_figure(g: np.ndarray, label_stack: np.ndarray, title: str = ""):
    """CVPR Fig. 5 on our data: the three weight maps g(P) of one window (3, H, W), centred at
    1 (red boosts, blue damps), with the organ of each channel's slice in green. Arrays are
    in view order (rows = first in-plane axis); they are shown transposed and flipped like
    :func:`viz.oriented_slice`."""
    g, lab = np.asarray(g, np.float32), np.asarray(label_stack, bool)
    if g.shape != lab.shape or g.ndim != 3 or g.shape[0] != 3:
        raise ValueError(f"saliency_figure: expected g and label_stack of shape (3, H, W), got "
                         f"{g.shape} and {lab.shape}.")
    span = max(float(np.abs(g - 1).max()), 1e-3)
    fig = _new_figure(figsize=(12, 4.2))
    axes = fig.subplots(1, 3)
    for c, ax in enumerate(axes):
        show = g[c].T[::-1, ::-1]
        im = ax.imshow(show, cmap="RdBu_r", vmin=1 - span, vmax=1 + span,
                       interpolation="nearest")
        if lab[c].any():
            ax.contour(lab[c].T[::-1, ::-1].astype(np.float32), levels=[0.5],
                       colors=["#2ecc40"], linewidths=1.2)
        on = float(g[c][lab[c]].mean()) if lab[c].any() else float("nan")
        off = float(g[c][~lab[c]].mean())
        ax.set_title(f"channel {c} (slice j{c - 1:+d}): organ {on:.2f}, rest {off:.2f}",
                     fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.colorbar(im, ax=list(axes), shrink=0.8, label="weight g(P)")
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def _final_mask(run: Path, case_id: str) -> np.ndarray:
    """The final mask a test run stored for a case (probs/<id>.npz, uint8 255 x P)."""
    path = Path(run) / "test" / "probs" / f"{case_id}.npz"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found; run `rstn test` for this run first.")
    with np.load(path) as z:
        return z["prob"] >= 128


def _context_cases(step_run: Path, rstn_run: Path, root=None):
    """Yield the test cases of one fold with both methods' final masks and the case; the
    run's relative data folders are taken relative to `root` (default: as recorded)."""
    for run in (step_run, rstn_run):
        if not (Path(run) / "test" / "probs").is_dir():
            raise FileNotFoundError(f"{run}: no saved probability maps (test/probs); run "
                                    "`rstn test` for this fold to make the context figure.")
    res = json.loads((Path(rstn_run) / "test" / "results.json").read_text())
    cfg = Config.from_dict(res["config"])
    if root is not None:
        cfg = cfg.replace(root=str(root))
    _, refs = fold_cases(cfg, res["fold"], progress=False)
    for ref in refs:
        case = load_case(ref.image, ref.label)
        yield case, {"id": ref.id, "label": target_mask(case, cfg.target),
                     "stepwise": _final_mask(step_run, ref.id),
                     "rstn": _final_mask(rstn_run, ref.id)}


def _distractor(case):
    """The phantom's look-alike structures (label ``bowel_lookalike``), or None."""
    try:
        m = target_mask(case, "bowel_lookalike")
    except (KeyError, ValueError):
        return None
    return m if m.any() else None


def write_figures(run_root, scale: str, out_dir, rstn_name: str = "rstn",
                  view: str = "axial", min_area: int = 20, root=None) -> dict:
    """Write convergence.png, context_case.png and saliency.png for a run root's folds.

    root: the folder the runs' relative data paths are relative to (default: as recorded in
    their config, i.e. the working directory they were made from).

    The context case is searched over every fold that has both a stepwise and an RSTN test;
    the saliency maps are those of that fold's RSTN (`view`) on the context slice, for
    P(0) of Algorithm 2. Returns {"context": find_context_case(...) + fold, "files": [...]}.
    """

    root, out = Path(run_root) / scale, Path(out_dir)
    pairs = [(p.parents[1], root / rstn_name / p.parents[1].name) for p in
             sorted((root / "stepwise").glob("fold*/test/results.json"))]
    pairs = [(s, r) for s, r in pairs if (r / "test" / "results.json").is_file()]
    if not pairs:
        raise FileNotFoundError(f"no fold under {root} has both stepwise and {rstn_name} test "
                                "results; run `rstn test` for both methods first.")
    out.mkdir(parents=True, exist_ok=True)
    files = []
    # 1. convergence d(t), both methods, all folds
    rows = {name: [r for s, r_ in pairs for r in json.loads(
        ((s if name == "stepwise" else r_) / "test" / "results.json").read_text())["cases"]]
        for name in ("stepwise", "RSTN")}
    fig = _new_figure(figsize=(8, 4.3))
    curves(fig.subplots(), {"stepwise (Algorithm 1)": [r["d"] for r in rows["stepwise"]],
                            "RSTN (Algorithm 2)": [r["d"] for r in rows["RSTN"]]})
    files.append(out / "convergence.png")
    atomic_savefig(fig, files[-1], dpi=90, bbox_inches="tight")   # never half a PNG
    # 2. the context case, found over all folds
    axis = VIEW_AXIS[view]
    best, keep = None, None
    for s, r in pairs:
        for case, c in _context_cases(s, r, root):
            found = find_context_case([c], axis=axis, min_area=min_area)
            if best is None or found["gain"] > best["gain"]:
                best, keep = dict(found, fold=int(s.name[4:])), (case, c, s, r)
    case, c, s, r = keep
    cfg = Config.from_dict(json.loads((r / "test" / "results.json").read_text())["config"])
    margins = (scaled_px(cfg.test.fixed_point_margin, cfg.slice_size),
               scaled_px(cfg.rstn.margin, cfg.slice_size))
    fig = context_figure(case.image, c["label"], c["stepwise"], c["rstn"], best["index"], view,
                         margins=margins, distractor=_distractor(case),
                         title=f"{case.id} (fold {best['fold']}), {view} slice {best['index']}:"
                               f" case DSC stepwise {100 * best['case_dsc_stepwise']:.1f} %,"
                               f" RSTN {100 * best['case_dsc_rstn']:.1f} %")
    files.append(out / "context_case.png")
    atomic_savefig(fig, files[-1], dpi=90, bbox_inches="tight")   # never half a PNG
    # 3. the saliency maps g(P(0)) of that slice, through the fold's RSTN of `view`
    tag = rstn_name.split("-", 1)[1] if "-" in rstn_name else ""
    models = load_method(cfg.replace(device="cpu", run_root=str(run_root)), "rstn",
                         best["fold"], tag)
    with torch.inference_mode():
        p0 = np.asarray(rstn_predict(case.image, models, thr=None, T=1).probs[0], np.float32)
    g = saliency_channels(models.models[view], stack3(p0, view, best["index"]))
    fig = saliency_figure(g, stack3(c["label"].astype(np.float32), view, best["index"]) > 0.5,
                          title=f"g(P(0)) of the {view} RSTN, {case.id} slice {best['index']}")
    files.append(out / "saliency.png")
    atomic_savefig(fig, files[-1], dpi=90, bbox_inches="tight")   # never half a PNG
    return {"context": best, "files": [str(f) for f in files]}
