"""Evaluation metrics: the Dice-Sørensen coefficient and how the papers report it.

Both papers score a case by DSC(Y, Z) = 2|Y ∩ Z| / (|Y| + |Z|) and report mean ± std,
max and min over all test cases (82 for NIH); RSTN is compared with the stepwise model
case by case with a paired t-test (CVPR 2018: 67 wins of 82, p = 3.62e-8).
"""

from __future__ import annotations

import math
import warnings
from typing import Sequence

import numpy as np
import scipy.stats

__all__ = ["dsc", "summarize", "format_summary", "paired_comparison"]


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
