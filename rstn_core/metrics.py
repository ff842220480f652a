"""Evaluation metrics: the Dice-Sørensen coefficient and how the papers report it, plus the
boundary metrics current benchmarks add beside it.

Both papers score a case by DSC(Y, Z) = 2|Y ∩ Z| / (|Y| + |Z|) and report mean ± std,
max and min over all test cases (82 for NIH); RSTN is compared with the stepwise model
case by case with a paired t-test (CVPR 2018: 67 wins of 82, p = 3.62e-8).

The papers report DSC only. MSD, nnU-Net and MONAI also report how far the predicted surface
lies from the true one, in millimetres: HD95 (the 95th percentile of the symmetric surface
distances) and NSD (normalised surface Dice: the share of both surfaces within a tolerance of
the other). Both use the voxel spacing, so an anisotropic CT voxel counts by its size in mm;
`tests/test_metrics.py` checks them against MONAI's `compute_hausdorff_distance` and
`compute_surface_dice`.
"""

from __future__ import annotations

import math
import warnings
from typing import Sequence

import numpy as np
import scipy.stats
from scipy.ndimage import binary_erosion, distance_transform_edt

__all__ = ["dsc", "surface_distances", "hd95", "nsd", "surface_metrics", "summarize",
           "format_summary", "paired_comparison"]


def _as_binary_numpy(x, name: str) -> np.ndarray:
    """Return ``x`` (numpy or torch, bool or 0/1) as a numpy bool array, or raise."""
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # a torch tensor, without importing torch
        x = x.detach().cpu().numpy()
    x = np.asarray(x)
    if x.dtype == bool:
        return x
    if not np.issubdtype(x.dtype, np.number):
        raise TypeError(f"dsc: {name} must be a numeric or bool array, got dtype {x.dtype}.")
    if not ((x == 0) | (x == 1)).all():
        raise ValueError(
            f"dsc: {name} must be binary (bool or 0/1), got values in "
            f"[{x.min()}, {x.max()}]. Threshold probabilities first, e.g. dsc(p >= 0.5, y)."
        )
    return x.astype(bool)


def dsc(a, b) -> float:
    r"""Dice-Sørensen coefficient of two binary masks.

    .. math:: \mathrm{DSC}(Y, Z) = \frac{2 |Y \cap Z|}{|Y| + |Z|}

    Args:
        a, b: binary masks (numpy or torch; bool or 0/1), any shape, the same for both.
    Shapes:
        a, b: any, equal; returns a Python float in [0, 1].
    Returns:
        The DSC; 1.0 when both masks are empty (they agree perfectly), 0.0 when exactly one is.
    Reference:
        Dice 1945; Zhou et al., MICCAI 2017; Yu et al., CVPR 2018 (the evaluation metric).
    """
    a = _as_binary_numpy(a, "a")
    b = _as_binary_numpy(b, "b")
    if a.shape != b.shape:
        raise ValueError(
            f"dsc: a and b must have the same shape, got {a.shape} and {b.shape}. "
            "Compare masks of the same volume (or slice)."
        )
    size_sum = int(np.count_nonzero(a)) + int(np.count_nonzero(b))  # |Y| + |Z|
    if size_sum == 0:
        return 1.0  # both empty: perfect agreement
    intersection = int(np.count_nonzero(a & b))  # |Y ∩ Z|
    return 2.0 * intersection / size_sum  # DSC = 2|Y∩Z|/(|Y|+|Z|)


def _spacing3(spacing, ndim: int, caller: str) -> tuple:
    sp = (1.0,) * ndim if spacing is None else tuple(float(v) for v in np.ravel(spacing))
    if len(sp) == 1:
        sp = sp * ndim
    if len(sp) != ndim or not all(np.isfinite(v) and v > 0 for v in sp):
        raise ValueError(f"{caller}: spacing must be {ndim} positive numbers (mm per voxel along "
                         f"each axis), got {spacing!r}. Pass case.spacing.")
    return sp


def surface_distances(a, b, spacing=None) -> tuple[np.ndarray, np.ndarray]:
    r"""Distances in mm from each surface voxel of `a` to the surface of `b`, and back.

    The surface of a mask is the mask minus its erosion (6-connected in 3D; outside the
    volume counts as background), as MONAI's `get_mask_edges`. Distances come from an exact
    Euclidean distance transform with ``sampling=spacing``, computed inside the bounding box
    of both masks plus one voxel (every surface voxel lies in it, so nothing is lost).

    .. math:: d_{A \to B}(x) = \min_{y \in \partial B} \lVert x - y \rVert, \quad x \in \partial A

    Args:
        a, b: binary masks of the same shape (numpy or torch; bool or 0/1).
        spacing: voxel size in mm along each axis (e.g. `case.spacing`); None = 1 mm.
    Returns:
        (d_ab, d_ba): 1-D float64 arrays, one distance per surface voxel of `a` (of `b`);
        empty when that mask is empty; ``inf`` everywhere when the other mask is empty.
    """
    a = _as_binary_numpy(a, "a")
    b = _as_binary_numpy(b, "b")
    if a.shape != b.shape:
        raise ValueError(f"surface_distances: a and b must have the same shape, got {a.shape} "
                         f"and {b.shape}. Compare masks of the same volume.")
    sp = _spacing3(spacing, a.ndim, "surface_distances")
    both = a | b
    if not both.any():
        return np.zeros(0), np.zeros(0)
    idx = np.nonzero(both)
    box = tuple(slice(max(int(i.min()) - 1, 0), int(i.max()) + 2) for i in idx)  # box + 1
    a, b = a[box], b[box]
    sa = a & ~binary_erosion(a, border_value=0)                       # ∂A
    sb = b & ~binary_erosion(b, border_value=0)                       # ∂B
    if not sa.any() or not sb.any():
        return np.full(int(sa.sum()), np.inf), np.full(int(sb.sum()), np.inf)
    d_ab = distance_transform_edt(~sb, sampling=sp)[sa]               # d(x, ∂B), x ∈ ∂A
    d_ba = distance_transform_edt(~sa, sampling=sp)[sb]               # d(y, ∂A), y ∈ ∂B
    return d_ab, d_ba


def hd95(pred, label, spacing=None) -> float:
    r"""95th-percentile symmetric Hausdorff distance in mm (MSD, nnU-Net, MONAI's HD95).

    .. math:: \mathrm{HD}_{95} = \max\big(P_{95}(d_{Z \to Y}),\; P_{95}(d_{Y \to Z})\big)

    Args:
        pred, label: binary masks of the same shape; spacing: mm per voxel along each axis.
    Returns:
        a float in mm: 0.0 when both masks are empty (they agree), ``inf`` when exactly one is
        (MONAI returns nan and inf there).
    """
    d_ab, d_ba = surface_distances(pred, label, spacing)
    if d_ab.size == 0 and d_ba.size == 0:
        return 0.0
    if d_ab.size == 0 or d_ba.size == 0 or not np.isfinite(d_ab).all():
        return math.inf
    return float(max(np.percentile(d_ab, 95), np.percentile(d_ba, 95)))


def nsd(pred, label, tolerance_mm: float, spacing=None) -> float:
    r"""Normalised surface Dice at a tolerance (Nikolov et al. 2021; MSD's NSD; MONAI's
    `compute_surface_dice` without sub-voxel areas): the share of both surfaces that lies
    within `tolerance_mm` of the other.

    .. math:: \mathrm{NSD}_\tau = \frac{|\{x \in \partial Z: d_{Z\to Y}(x) \le \tau\}| +
              |\{y \in \partial Y: d_{Y\to Z}(y) \le \tau\}|}{|\partial Z| + |\partial Y|}

    Args:
        pred, label: binary masks of the same shape; tolerance_mm: τ in mm (>= 0);
        spacing: mm per voxel along each axis.
    Returns:
        a float in [0, 1]: 1.0 when both masks are empty (as `dsc`; MONAI returns nan),
        0.0 when exactly one is.
    """
    if not (isinstance(tolerance_mm, (int, float)) and tolerance_mm >= 0):
        raise ValueError(f"nsd: tolerance_mm must be a number >= 0 (mm), got {tolerance_mm!r}; "
                         "e.g. nsd(pred, label, 2.0, case.spacing).")
    d_ab, d_ba = surface_distances(pred, label, spacing)
    n = d_ab.size + d_ba.size
    if n == 0:
        return 1.0
    return float((np.count_nonzero(d_ab <= tolerance_mm) +
                  np.count_nonzero(d_ba <= tolerance_mm)) / n)


def surface_metrics(pred, label, spacing=None, tolerances=(1.0, 2.0)) -> dict:
    """HD95 and NSD at each tolerance from one pair of distance transforms.

    Args:
        pred, label: binary masks of the same shape; spacing: mm per voxel;
        tolerances: NSD tolerances in mm.
    Returns:
        ``{"hd95": mm or None, "nsd_1mm": ..., "nsd_2mm": ...}`` — JSON-safe: HD95 is None
        when exactly one mask is empty (infinite), see :func:`hd95` and :func:`nsd`.
    """
    d_ab, d_ba = surface_distances(pred, label, spacing)
    out = {}
    if d_ab.size == 0 and d_ba.size == 0:
        out["hd95"] = 0.0
    elif d_ab.size == 0 or d_ba.size == 0 or not np.isfinite(d_ab).all():
        out["hd95"] = None
    else:
        out["hd95"] = float(max(np.percentile(d_ab, 95), np.percentile(d_ba, 95)))
    n = d_ab.size + d_ba.size
    for tol in tolerances:
        ok = np.count_nonzero(d_ab <= tol) + np.count_nonzero(d_ba <= tol)
        out[f"nsd_{tol:g}mm"] = 1.0 if n == 0 else float(ok / n)
    return out


def _as_float_vector(values, name: str, caller: str) -> np.ndarray:
    """Return ``values`` as a 1-D float64 array, or raise a ValueError."""
    if hasattr(values, "detach") and hasattr(values, "cpu"):
        values = values.detach().cpu().numpy()
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(
            f"{caller}: {name} must be a 1-D sequence of per-case numbers, got shape {arr.shape}."
        )
    if arr.size == 0:
        raise ValueError(f"{caller}: {name} is empty; pass at least one per-case value.")
    return arr


def summarize(values: Sequence[float]) -> dict:
    r"""Mean ± std, max, min and count of per-case scores, as the papers report them.

    .. math:: \bar v = \frac{1}{n}\sum_i v_i, \qquad
              s = \sqrt{\frac{1}{n-1}\sum_i (v_i - \bar v)^2}

    Args:
        values: per-case scores (e.g. DSC of each test volume); a non-empty 1-D sequence.
    Returns:
        ``dict(mean, std, max, min, n)`` of Python floats (``n`` an int). ``std`` is the sample
        standard deviation (ddof=1), 0.0 when n = 1.
    Reference:
        Zhou et al., MICCAI 2017 (results reported as mean ± std, max, min over 82 cases).
    """
    v = _as_float_vector(values, "values", "summarize")
    n = int(v.size)
    std = float(np.std(v, ddof=1)) if n > 1 else 0.0  # sample std, ddof = 1
    return {"mean": float(np.mean(v)), "std": std, "max": float(np.max(v)),
            "min": float(np.min(v)), "n": n}


def format_summary(s: dict, scale: float = 100, digits: int = 2) -> str:
    """Format a :func:`summarize` result as ``"82.37 ± 5.68"`` (mean ± std, scaled).

    Args:
        s: a dict with at least ``mean`` and ``std``.
        scale: multiply both by this (100 turns a DSC in [0, 1] into percent).
        digits: decimals to print.
    Returns:
        The string ``f"{mean*scale:.{digits}f} ± {std*scale:.{digits}f}"``.
    """
    missing = [k for k in ("mean", "std") if k not in s]
    if missing:
        raise ValueError(
            f"format_summary: expected a dict with 'mean' and 'std' (from summarize), "
            f"missing {missing}."
        )
    return f"{s['mean'] * scale:.{digits}f} ± {s['std'] * scale:.{digits}f}"


def paired_comparison(a: Sequence[float], b: Sequence[float]) -> dict:
    r"""Case-by-case comparison of method ``a`` against method ``b`` (paired t-test).

    .. math:: g_i = a_i - b_i, \qquad t = \frac{\bar g}{s_g / \sqrt{n}}

    Args:
        a, b: per-case scores of the two methods, in the same case order, equal length.
    Returns:
        ``dict(n, mean_gain, std_gain, wins, losses, ties, largest_gain, largest_loss, p_value)``:
        gains ``a - b``; wins/losses/ties count gains > 0, < 0, == 0; ``largest_gain`` is the
        maximum gain and ``largest_loss`` the minimum gain (negative when ``a`` loses somewhere,
        as the paper's "largest loss -3.85"); ``std_gain`` uses ddof=1 (0.0 for n = 1);
        ``p_value`` is the two-sided ``scipy.stats.ttest_rel`` p, nan when undefined
        (n < 2, or all gains zero).
    Reference:
        Yu et al., CVPR 2018 (RSTN vs stepwise: 67/82 wins, mean gain 2.13 ± 2.67, p = 3.62e-8).
    """
    a = _as_float_vector(a, "a", "paired_comparison")
    b = _as_float_vector(b, "b", "paired_comparison")
    if a.shape != b.shape:
        raise ValueError(
            f"paired_comparison: a and b must hold one score per case each, got {a.size} and "
            f"{b.size} values. Evaluate both methods on the same cases."
        )
    gain = a - b  # g_i = a_i - b_i
    n = int(gain.size)
    p_value = math.nan
    if n >= 2:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # zero-variance gains -> nan
            p_value = float(scipy.stats.ttest_rel(a, b).pvalue)  # paired t-test on g
    return {
        "n": n,
        "mean_gain": float(np.mean(gain)),
        "std_gain": float(np.std(gain, ddof=1)) if n > 1 else 0.0,
        "wins": int(np.count_nonzero(gain > 0)),
        "losses": int(np.count_nonzero(gain < 0)),
        "ties": int(np.count_nonzero(gain == 0)),
        "largest_gain": float(np.max(gain)),
        "largest_loss": float(np.min(gain)),
        "p_value": p_value,
    }
