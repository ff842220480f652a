"""Figures for the book: CT slices with contours, the three views, the rounds of Algorithms
1 and 2, an interactive viewer, and convergence curves.

Conventions:

* Volumes are numpy arrays ``(x, y, z)`` in RAS+ (axis 0 left -> Right, axis 1 posterior ->
  Anterior, axis 2 inferior -> Superior). The views keep the authors' names: coronal = axis 0,
  sagittal = axis 1, axial = axis 2 (anatomically, axis-0 slices are sagittal and axis-1
  slices coronal; see book/deviations.md). Panel titles give the axis too.
* Display follows the radiological convention. Axial: anterior up, the patient's right on
  the viewer's left. Axis 0 (fixed x): superior up, anterior on the left. Axis 1 (fixed y):
  superior up, the patient's right on the left. :func:`oriented_slice` does this
  reorientation; letters at the panel edges (A/P, S/I, R/L) say which way is which.
* CT intensities are shown through the window [-100, 240] HU (as the networks see them);
  an image already in [0, 1] is shown as it is.
* Ground truth is drawn as a green contour, the prediction as a red contour. Masks are
  bool or 0/1; a float array (a probability map) is shown as its mask ``P >= 0.5``.
* The figures returned here are ``matplotlib.figure.Figure`` objects that pyplot does not
  manage: end a notebook cell with the figure (or call ``display(fig)``) to show it; it is
  never shown twice or kept alive by pyplot, and it shows as a PNG even in a kernel where
  pyplot was never imported. ``fig.savefig(path)`` works as usual.
"""
from __future__ import annotations

import io
import math
from typing import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from rstn_core.views import HU_WINDOW, VIEW_AXIS, VIEWS, window as _hu_window
from rstn_core.metrics import dsc

__all__ = ["LABEL_COLOR", "PRED_COLOR", "oriented_slice", "overlay", "three_views",
           "iteration_figure", "curves"]

LABEL_COLOR = "#2ecc40"   # ground truth: green
PRED_COLOR = "#ff3b30"    # prediction: red

# Letters for the positive / negative end of each RAS axis.
_AXIS_LETTERS = {0: ("R", "L"), 1: ("A", "P"), 2: ("S", "I")}


# -- helpers ------------------------------------------------------------------------------

class _Figure(Figure):
    """A Figure that shows itself in Jupyter even when no pyplot backend is active."""

    def _repr_png_(self) -> bytes:
        return _render_png(self, dpi=100, tight=True)


def _new_figure(**kwargs) -> Figure:
    return _Figure(layout="constrained", **kwargs)


def _as_numpy(x, name: str, caller: str) -> np.ndarray:
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # a torch tensor, without importing torch
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def _check_volume(volume, caller: str) -> np.ndarray:
    volume = _as_numpy(volume, "volume", caller)
    if volume.ndim != 3:
        raise ValueError(f"{caller}: expected a 3-D volume (x, y, z), got shape {volume.shape}. "
                         "Pass the whole volume, not one slice (overlay() draws one slice).")
    return volume


def _check_mask(mask, shape: tuple, name: str, caller: str) -> np.ndarray | None:
    if mask is None:
        return None
    mask = _as_numpy(mask, name, caller)
    if mask.shape != tuple(shape):
        raise ValueError(f"{caller}: {name} must have the volume's shape {tuple(shape)}, got "
                         f"{mask.shape}.")
    return _binary(mask)


def _binary(mask: np.ndarray) -> np.ndarray:
    """Bool mask; a probability map (float) is thresholded at 0.5, as Z = 1[P >= 0.5]."""
    if mask.dtype == bool:
        return mask
    if np.issubdtype(mask.dtype, np.floating):
        return mask >= 0.5
    return mask != 0


def _check_view(view: str, caller: str) -> int:
    if view not in VIEW_AXIS:
        raise ValueError(f"{caller}: unknown view {view!r}; expected one of {list(VIEWS)}.")
    return VIEW_AXIS[view]


def _check_spacing(spacing, caller: str) -> tuple[float, float, float]:
    if spacing is None:
        return (1.0, 1.0, 1.0)
    sp = tuple(float(s) for s in spacing)
    if len(sp) != 3 or not all(s > 0 and math.isfinite(s) for s in sp):
        raise ValueError(f"{caller}: spacing must be 3 positive numbers (mm along x, y, z), got "
                         f"{spacing!r}.")
    return sp


def _in_plane_axes(axis: int) -> tuple[int, int]:
    """(column axis, row axis) of the displayed slice along ``axis``."""
    b, c = [a for a in range(3) if a != axis]
    return b, c


def oriented_slice(array, view: str, index: int) -> np.ndarray:
    """Slice ``index`` of a 3-D (x, y, z) array along ``view``, oriented for display.

    Rows run along the higher remaining axis, from its positive end at the top (anterior for
    axial, superior otherwise); columns along the lower remaining axis, from its positive end
    on the left (the patient's right, or anterior for the axis-0 view): the radiological
    convention. Works for images and masks alike.

    Shapes: array (X, Y, Z); returns (Y, X) for axial, (Z, Y) for coronal (axis 0),
    (Z, X) for sagittal (axis 1).
    """
    axis = _check_view(view, "oriented_slice")
    array = _as_numpy(array, "array", "oriented_slice")
    if array.ndim != 3:
        raise ValueError(f"oriented_slice: expected a 3-D (x, y, z) array, got shape {array.shape}.")
    n = array.shape[axis]
    if not 0 <= int(index) < n:
        raise ValueError(f"oriented_slice: index {index} is outside [0, {n}) along the {view} "
                         f"axis {axis}.")
    s = np.take(array, int(index), axis=axis)   # (first remaining axis, second remaining axis)
    return s.T[::-1, ::-1]                       # rows: second axis, top = positive end


def _aspect(view: str, spacing: tuple[float, float, float]) -> float:
    col_axis, row_axis = _in_plane_axes(VIEW_AXIS[view])
    return spacing[row_axis] / spacing[col_axis]


def _edge_letters(view: str) -> dict:
    col_axis, row_axis = _in_plane_axes(VIEW_AXIS[view])
    return {"top": _AXIS_LETTERS[row_axis][0], "bottom": _AXIS_LETTERS[row_axis][1],
            "left": _AXIS_LETTERS[col_axis][0], "right": _AXIS_LETTERS[col_axis][1]}


def _centre(volume_shape: tuple, *masks) -> tuple[int, int, int]:
    """Centroid (rounded) of the first non-empty mask, else the volume's centre."""
    for m in masks:
        if m is not None and m.any():
            return tuple(int(round(c)) for c in np.argwhere(m).mean(axis=0))
    return tuple(s // 2 for s in volume_shape)


def _to_display(image: np.ndarray, window) -> np.ndarray:
    image = np.asarray(image, dtype=np.float32)
    if window == "auto":
        finite = image[np.isfinite(image)]
        if finite.size and finite.min() >= 0.0 and finite.max() <= 1.0:
            return image                               # already windowed to [0, 1]
        window = HU_WINDOW
    if window is None:
        return image
    lo, hi = window
    return _hu_window(image, lo, hi)


def _shown_ratio(ax) -> float:
    """Height / width of the part of the image an Axes shows (limits times pixel aspect)."""
    (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
    aspect = ax.get_aspect()
    aspect = 1.0 if aspect == "auto" else float(aspect)
    return abs(y1 - y0) * aspect / max(abs(x1 - x0), 1e-9)


def _fit_height(fig: Figure, axes, ncols: int, nrows: int, panel_width: float, extra: float) -> None:
    """Resize ``fig`` so that panels of ``panel_width`` inches show their images without
    large empty bands (the tallest panel sets the row height, clipped to [0.35, 2.5])."""
    ratio = min(max(max(_shown_ratio(ax) for ax in axes), 0.35), 2.5)
    fig.set_size_inches(ncols * panel_width, nrows * panel_width * ratio + extra)


def _draw_contour(ax, mask: np.ndarray, color: str, gid: str, linewidth: float) -> bool:
    if mask is None or not mask.any():
        return False
    cs = ax.contour(mask.astype(np.float32), levels=[0.5], colors=[color],
                    linewidths=linewidth, antialiased=True)
    cs.set_gid(gid)
    return True


def _zoom_limits(ax, masks: Sequence[np.ndarray | None], margin: int, shape: tuple) -> None:
    union = None
    for m in masks:
        if m is not None and m.any():
            union = m if union is None else (union | m)
    if union is None:
        return
    rows, cols = np.nonzero(union)
    r0, r1 = max(rows.min() - margin, 0), min(rows.max() + margin, shape[0] - 1)
    c0, c1 = max(cols.min() - margin, 0), min(cols.max() + margin, shape[1] - 1)
    ax.set_xlim(c0 - 0.5, c1 + 0.5)
    ax.set_ylim(r1 + 0.5, r0 - 0.5)                    # top row at the top


# -- public API ---------------------------------------------------------------------------

def overlay(ax, image_slice, label=None, pred=None, *, window="auto", aspect: float = 1.0,
            title: str | None = None, label_color: str = LABEL_COLOR,
            pred_color: str = PRED_COLOR, linewidth: float = 1.5, legend: bool = False,
            edge_letters: Mapping[str, str] | None = None, zoom_margin: int | None = None):
    """Draw one CT slice with the label contour (green) and the prediction contour (red).

    The slice is drawn as given (row 0 at the top): use :func:`oriented_slice` first to get
    the radiological orientation of a slice of an (x, y, z) volume.

    Args:
        ax: a matplotlib Axes.
        image_slice: (H, W) in HU (shown through ``window``) or already in [0, 1].
        label, pred: optional (H, W) binary masks; a contour is drawn only for a mask that is
            given and non-empty.
        window: ``"auto"`` (HU window [-100, 240] unless the image is already in [0, 1]),
            a ``(lo, hi)`` pair in HU, or None (the image is shown as it is, on [0, 1]).
        aspect: height / width of one pixel (row spacing / column spacing).
        edge_letters: optional ``{"top": "A", "bottom": "P", "left": "R", "right": "L"}``.
        zoom_margin: if an int, zoom onto the union of the masks plus this many pixels.
    Returns:
        ``ax``.
    """
    img = _as_numpy(image_slice, "image_slice", "overlay")
    if img.ndim != 2:
        raise ValueError(f"overlay: image_slice must be 2-D (H, W), got shape {img.shape}. "
                         "For a volume use three_views() or oriented_slice().")
    masks = []
    for name, m in (("label", label), ("pred", pred)):
        if m is not None:
            m = _as_numpy(m, name, "overlay")
            if m.shape != img.shape:
                raise ValueError(f"overlay: {name} must have the slice's shape {img.shape}, got "
                                 f"{m.shape}.")
            m = _binary(m)
        masks.append(m)
    label, pred = masks
    ax.imshow(_to_display(img, window), cmap="gray", vmin=0.0, vmax=1.0,
              interpolation="nearest", aspect=aspect)
    # The prediction is drawn first and wider, so where the two agree both stay visible.
    drawn = {"pred": _draw_contour(ax, pred, pred_color, "pred", 1.6 * linewidth),
             "label": _draw_contour(ax, label, label_color, "label", linewidth)}
    ax.set_xlim(-0.5, img.shape[1] - 0.5)
    ax.set_ylim(img.shape[0] - 0.5, -0.5)
    if zoom_margin is not None:
        _zoom_limits(ax, [label, pred], int(zoom_margin), img.shape)
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=10)
    if edge_letters:
        pos = {"top": (0.5, 0.98, "center", "top"), "bottom": (0.5, 0.02, "center", "bottom"),
               "left": (0.02, 0.5, "left", "center"), "right": (0.98, 0.5, "right", "center")}
        for side, letter in edge_letters.items():
            x, y, ha, va = pos[side]
            ax.text(x, y, letter, transform=ax.transAxes, ha=ha, va=va, color="#f1c40f",
                    fontsize=9, fontweight="bold", gid=f"edge-{side}")
    if legend and (drawn["label"] or drawn["pred"]):
        ax.legend(handles=_legend_handles(drawn["label"], drawn["pred"], label_color, pred_color),
                  loc="lower right", fontsize=8, framealpha=0.7)
    return ax


def _legend_handles(with_label: bool, with_pred: bool, label_color=LABEL_COLOR,
                    pred_color=PRED_COLOR) -> list:
    handles = []
    if with_label:
        handles.append(Line2D([], [], color=label_color, lw=2, label="ground truth"))
    if with_pred:
        handles.append(Line2D([], [], color=pred_color, lw=2, label="prediction"))
    return handles


def _view_title(view: str, index: int) -> str:
    axis = VIEW_AXIS[view]
    return f"{view} (axis {axis}), {'xyz'[axis]} = {index}"


def three_views(volume, label=None, pred=None, index=None, spacing=None, *, window="auto",
                zoom_margin: int | None = None, title: str | None = None,
                panel_size: float = 2.8) -> Figure:
    """The three views of a volume through one point, with label and prediction contours.

    Args:
        volume: (X, Y, Z) CT volume in RAS+, in HU or already windowed to [0, 1].
        label, pred: optional (X, Y, Z) binary masks.
        index: the point ``(x, y, z)`` the three slices pass through; default: the centroid
            of the label (else of the prediction, else the volume's centre).
        spacing: voxel size in mm ``(sx, sy, sz)``, for the pixel aspect ratio (default 1).
        zoom_margin: if an int, zoom each panel onto its masks plus this many pixels.
    Returns:
        A Figure with 3 axes: coronal (axis 0), sagittal (axis 1), axial (axis 2).
    """
    volume = _check_volume(volume, "three_views")
    label = _check_mask(label, volume.shape, "label", "three_views")
    pred = _check_mask(pred, volume.shape, "pred", "three_views")
    sp = _check_spacing(spacing, "three_views")
    if index is None:
        index = _centre(volume.shape, label, pred)
    index = tuple(int(i) for i in index)
    if len(index) != 3:
        raise ValueError(f"three_views: index must be a point (x, y, z), got {index!r}.")

    fig = _new_figure(figsize=(3 * panel_size, panel_size + 0.6))
    axes = fig.subplots(1, 3)
    for ax, view in zip(axes, VIEWS):
        axis = VIEW_AXIS[view]
        j = index[axis]
        overlay(ax, oriented_slice(volume, view, j),
                None if label is None else oriented_slice(label, view, j),
                None if pred is None else oriented_slice(pred, view, j),
                window=window, aspect=_aspect(view, sp), title=_view_title(view, j),
                edge_letters=_edge_letters(view), zoom_margin=zoom_margin)
    _fit_height(fig, axes, 3, 1, panel_size, 0.6)
    handles = _legend_handles(label is not None and label.any(), pred is not None and pred.any())
    if handles:
        fig.legend(handles=handles, loc="outside lower center", ncols=len(handles), fontsize=9,
                   frameon=False)
    if title:
        fig.suptitle(title)
    return fig


def _as_mask_list(masks, shape: tuple, caller: str) -> list[np.ndarray]:
    if masks is None:
        return []
    if hasattr(masks, "ndim") and masks.ndim == 3:  # one mask, not a list
        masks = [masks]
    out = [_check_mask(m, shape, f"masks[{t}]", caller) for t, m in enumerate(masks)]
    return out


def _dsc(a: np.ndarray, b: np.ndarray) -> float:
    return dsc(a, b)


def iteration_figure(volume, label, masks, view: str = "axial", index: int | None = None, *,
                     spacing=None, zoom_margin: int | None = None, titles=None,
                     ncols: int = 4, panel_size: float = 2.6, window="auto") -> Figure:
    """One panel per round of Algorithm 1 or 2: Z(0) (coarse), Z(1), ..., on one slice.

    Each panel shows the ground truth (green) and that round's mask (red). The title gives the
    round, the 3-D DSC against the label (if given) and d(t) = DSC(Z(t-1), Z(t)).

    Args:
        volume: (X, Y, Z) CT volume. label: (X, Y, Z) binary mask or None.
        masks: list of (X, Y, Z) binary masks, masks[t] = Z(t).
        view: "coronal", "sagittal" or "axial".
        index: the slice along ``view``; default: the slice where the label (else the last
            mask) has the largest area.
        zoom_margin: if an int, zoom every panel onto the label and masks plus this margin.
        titles: optional list of panel titles (one per mask).
    Returns:
        A Figure with len(masks) axes.
    """
    volume = _check_volume(volume, "iteration_figure")
    axis = _check_view(view, "iteration_figure")
    label = _check_mask(label, volume.shape, "label", "iteration_figure")
    masks = _as_mask_list(masks, volume.shape, "iteration_figure")
    if not masks:
        raise ValueError("iteration_figure: masks is empty; pass [Z(0), Z(1), ...] from "
                         "fixed_point_predict(...).masks or rstn_predict(...).masks.")
    if titles is not None and len(titles) != len(masks):
        raise ValueError(f"iteration_figure: {len(titles)} titles for {len(masks)} masks.")
    sp = _check_spacing(spacing, "iteration_figure")
    if index is None:
        ref = label if label is not None and label.any() else masks[-1]
        other = tuple(a for a in range(3) if a != axis)
        index = int(np.argmax(ref.sum(axis=other))) if ref.any() else volume.shape[axis] // 2

    n = len(masks)
    ncols = max(1, min(int(ncols), n))
    nrows = math.ceil(n / ncols)
    fig = _new_figure(figsize=(ncols * panel_size, nrows * panel_size + 0.6))
    grid = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False).ravel())
    img = oriented_slice(volume, view, index)
    lab = None if label is None else oriented_slice(label, view, index)
    for t, ax in enumerate(grid):
        if t >= n:
            ax.remove()
            continue
        if titles is not None:
            head = titles[t]
        else:
            head = "Z(0), coarse" if t == 0 else f"Z({t}), round {t}"
            parts = []
            if label is not None:
                parts.append(f"DSC {100 * _dsc(label, masks[t]):.1f}%")
            if t > 0:
                parts.append(f"d = {_dsc(masks[t - 1], masks[t]):.3f}")
            if parts:
                head += "\n" + ", ".join(parts)
        overlay(ax, img, lab, oriented_slice(masks[t], view, index), window=window,
                aspect=_aspect(view, sp), title=head, zoom_margin=zoom_margin,
                edge_letters=_edge_letters(view) if t == 0 else None)
    _fit_height(fig, grid[:n], ncols, nrows, panel_size, 1.1)
    handles = _legend_handles(label is not None and label.any(), True)
    fig.legend(handles=handles, loc="outside lower center", ncols=len(handles), fontsize=9,
               frameon=False)
    fig.suptitle(_view_title(view, index), fontsize=11)
    return fig


def _render_png(fig: Figure, dpi: int = 80, tight: bool = False) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight" if tight else None)
    return buf.getvalue()


def curves(ax, d_curves: Mapping[str, Sequence[Sequence[float]]], *,
           thresholds: Sequence[float] = (0.95, 0.99), show_cases: bool = True,
           colors: Mapping[str, str] | None = None):
    """Convergence plot: d(t) = DSC(Z(t-1), Z(t)) against the round t, per method.

    Each case is a thin line; the bold line is the mean over the cases that reached round t
    (cases that stopped early drop out, so the legend gives the number of cases).

    Args:
        ax: a matplotlib Axes.
        d_curves: ``{method name: [d-list of case 1, d-list of case 2, ...]}``, where a
            d-list is ``[d(1), d(2), ...]`` (e.g. ``result.d`` of fixed_point_predict).
        thresholds: stopping thresholds drawn as dashed lines (R, thr).
    Returns:
        ``ax``.
    """
    if not d_curves:
        raise ValueError("curves: d_curves is empty; pass {name: [d(t) list per case]}.")
    default = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"]
    t_max = 1
    for k, (name, cases) in enumerate(d_curves.items()):
        color = (colors or {}).get(name, default[k % len(default)])
        cases = [list(map(float, c)) for c in cases if len(c)]
        if not cases:
            continue
        length = max(len(c) for c in cases)
        t_max = max(t_max, length)
        if show_cases:
            for c in cases:
                ax.plot(range(1, len(c) + 1), c, color=color, alpha=0.25, lw=0.8)
        mean = [float(np.mean([c[t] for c in cases if len(c) > t])) for t in range(length)]
        ax.plot(range(1, length + 1), mean, color=color, lw=2.2, marker="o", ms=4,
                label=f"{name} (mean of {len(cases)} case{'s' if len(cases) != 1 else ''})")
    for thr in thresholds:
        ax.axhline(thr, color="0.5", ls="--", lw=0.8)
        ax.text(0.01, thr, f"{thr:g}", transform=ax.get_yaxis_transform(), va="bottom",
                fontsize=8, color="0.35")
    ax.set_xlabel("round $t$")
    ax.set_ylabel(r"$d^{(t)} = \mathrm{DSC}(Z^{(t-1)}, Z^{(t)})$")
    ax.set_xticks(range(1, t_max + 1))
    ax.set_xlim(0.7, t_max + 0.3)
    lo = ax.get_ylim()[0]
    ax.set_ylim(min(lo, min(thresholds, default=1.0) - 0.02), 1.005)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    return ax
