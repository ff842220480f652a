"""The three 2D views of a CT volume, intensity windowing and 3-slice windows.

Volumes are numpy arrays with axes (x, y, z) in RAS+ orientation. The authors' names are kept:
coronal slices are taken along axis 0, sagittal along axis 1, axial along axis 2. Each 2D
input stacks 3 neighbouring slices [j-1, j, j+1] (clamped at the volume's ends) as its 3
channels, and the network predicts the same 3 slices; a slice's probability is the mean over
the windows that contain it.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse
import torch

__all__ = ["VIEWS", "VIEW_AXIS", "HU_WINDOW", "window", "window_uint8", "window_indices", "to_view", "from_view", "stack3", "view_stacks",
           "average_windows"]

VIEWS = ("coronal", "sagittal", "axial")
VIEW_AXIS = {"coronal": 0, "sagittal": 1, "axial": 2}
#: The soft-tissue window of the authors' code: clip to [-100, 240] HU (the one home of it).
HU_WINDOW = (-100.0, 240.0)

_OFFSETS = np.array([-1, 0, 1])  # the window [j-1, j, j+1]


def _axis(view: str) -> int:
    """Axis of ``view`` in an (x, y, z) volume, or a ValueError."""
    if view not in VIEW_AXIS:
        raise ValueError(f"unknown view {view!r}; expected one of {list(VIEWS)}.")
    return VIEW_AXIS[view]


def _check_3d(volume, caller: str, what: str = "volume (x, y, z)") -> np.ndarray:
    if hasattr(volume, "detach") and hasattr(volume, "cpu"):
        volume = volume.detach().cpu().numpy()
    volume = np.asarray(volume)
    if volume.ndim != 3:
        raise ValueError(f"{caller}: expected a 3-D {what}, got shape {volume.shape}.")
    return volume


def window(hu, lo: float = HU_WINDOW[0], hi: float = HU_WINDOW[1]):
    r"""Clip CT intensities to a window [lo, hi] (HU) and rescale it linearly to [0, 1].

    .. math:: w(x) = \frac{\min(\max(x, lo), hi) - lo}{hi - lo}

    Args:
        hu: intensities in Hounsfield units (numpy or torch, any shape).
        lo, hi: the window; [-100, 240] HU (soft tissue) as the authors' code.
    Returns:
        float32 array (or tensor) of the same shape, values in [0, 1].
    Reference:
        The authors' public code (clip to [-100, 240], then (x + 100) / 340).
    """
    if not hi > lo:
        raise ValueError(f"window: need hi > lo, got lo={lo}, hi={hi}.")
    if hasattr(hu, "clamp") and hasattr(hu, "detach"):  # torch tensor
        x = hu.to(torch.float32)
        return (x.clamp(lo, hi) - lo) / (hi - lo)  # (clip(x) - lo) / (hi - lo)
    x = np.asarray(hu, dtype=np.float32)
    return ((np.clip(x, lo, hi) - lo) / np.float32(hi - lo)).astype(np.float32)


def window_uint8(hu, lo: float = HU_WINDOW[0], hi: float = HU_WINDOW[1]) -> np.ndarray:
    r""":func:`window` stored in one byte per voxel (the per-view training cache).

    .. math:: u(x) = \mathrm{round}(255 \cdot w(x))

    Args:
        hu: intensities in HU (numpy, any shape); lo, hi: the window.
    Returns:
        uint8 array of the same shape, 0..255.
    """
    return np.rint(window(hu, lo, hi) * np.float32(255.0)).astype(np.uint8)


def to_view(volume, view: str) -> np.ndarray:
    """Move the view's slicing axis first: slice j of ``to_view(v, view)`` is that view's slice j.

    Args:
        volume: (x, y, z) array; view: one of :data:`VIEWS`.
    Shapes:
        returns (n_slices, H, W): coronal (x, y, z), sagittal (y, x, z), axial (z, x, y);
        a view of the input (``np.moveaxis``), no copy.
    """
    axis = _axis(view)
    return np.moveaxis(_check_3d(volume, "to_view"), axis, 0)


def from_view(slices, view: str) -> np.ndarray:
    """Inverse of :func:`to_view`: put the slice axis back at the view's place.

    Args:
        slices: (n_slices, H, W) array in the view's order; view: one of :data:`VIEWS`.
    Shapes:
        returns the (x, y, z) volume (a view, no copy).
    """
    axis = _axis(view)
    return np.moveaxis(_check_3d(slices, "from_view", "stack of slices (n, H, W)"), 0, axis)


def window_indices(centres, n_slices: int) -> np.ndarray:
    r"""Slice indices of the 3-slice windows centred on `centres`, clamped at the ends.

    .. math:: w(j, c) = \mathrm{clip}(j + c - 1,\ 0,\ n - 1), \qquad c = 0, 1, 2

    Args:
        centres: window centres j (1-D ints, or one int); n_slices: slices n of the view.
    Shapes:
        returns (len(centres), 3) int64.
    """
    return _window_indices(np.atleast_1d(np.asarray(centres, dtype=np.int64)), int(n_slices))


def _window_indices(centres: np.ndarray, n_slices: int) -> np.ndarray:
    """(N, 3) slice indices [j-1, j, j+1] of each centre j, clamped to [0, n_slices - 1]."""
    return np.clip(centres[:, None] + _OFFSETS[None, :], 0, n_slices - 1)  # clamp at both ends


def _check_indices(indices, n_slices: int, caller: str) -> np.ndarray:
    idx = np.asarray(indices)
    if idx.ndim != 1 or not (np.issubdtype(idx.dtype, np.integer) or idx.size == 0):
        raise ValueError(f"{caller}: indices must be a 1-D sequence of ints, got {idx!r}.")
    idx = idx.astype(np.int64)
    if idx.size and (idx.min() < 0 or idx.max() >= n_slices):
        raise ValueError(
            f"{caller}: indices must lie in [0, {n_slices - 1}] (the view has {n_slices} "
            f"slices), got values in [{idx.min()}, {idx.max()}]."
        )
    return idx


def stack3(volume, view: str, j: int) -> np.ndarray:
    r"""The 3-slice input centred on slice j of a view: slices j-1, j, j+1, clamped.

    .. math:: S_j = [V_{\max(j-1, 0)},\ V_j,\ V_{\min(j+1, n-1)}]

    Args:
        volume: (x, y, z) array; view: one of :data:`VIEWS`; j: slice index in [0, n).
    Shapes:
        returns (3, H, W) (a copy).
    Reference:
        Zhou et al., MICCAI 2017 and Yu et al., CVPR 2018 (3 neighbouring slices as channels).
    """
    v = to_view(volume, view)
    n = v.shape[0]
    if isinstance(j, bool) or not isinstance(j, (int, np.integer)) or not 0 <= j < n:
        raise ValueError(f"stack3: j must be an int in [0, {n - 1}] for the {view} view, got {j!r}.")
    return v[_window_indices(np.array([int(j)]), n)[0]]  # [j-1, j, j+1], clamped


def view_stacks(volume, view: str, indices=None) -> np.ndarray:
    r"""All 3-slice windows of a view at once (vectorised :func:`stack3`).

    .. math:: S[k] = [V_{\max(j_k-1, 0)},\ V_{j_k},\ V_{\min(j_k+1, n-1)}]

    Args:
        volume: (x, y, z) array; view: one of :data:`VIEWS`.
        indices: centres j_k (1-D ints); None means every slice 0..n-1.
    Shapes:
        returns (N, 3, H, W), N = len(indices) (a copy, the volume's dtype).
    Reference:
        The authors' code (3 slices in, 3 slices out).
    """
    v = to_view(volume, view)
    n = v.shape[0]
    idx = np.arange(n) if indices is None else _check_indices(indices, n, "view_stacks")
    return v[_window_indices(idx, n)]  # fancy indexing with an (N, 3) index array


def average_windows(window_preds, indices=None, n_slices: int | None = None) -> np.ndarray:
    r"""Per-slice mean of 3-slice window predictions (inverse of :func:`view_stacks`).

    .. math:: P_s = \frac{1}{|\{(k, c) : w(j_k, c) = s\}|} \sum_{(k, c) : w(j_k, c) = s} Q_{k, c}

    where :math:`w(j, c) = \mathrm{clip}(j + c - 1, 0, n - 1)` is the slice channel c of the
    window centred on j came from. Clamped edges are counted as they are: the first window
    [0, 0, 1] gives slice 0 two votes. A slice no window covers is 0.

    Args:
        window_preds: (N, 3, H, W) predictions (numpy or torch), channel c for slice j_k + c - 1.
        indices: the centres j_k; None means 0..N-1 (all windows of the view).
        n_slices: number of slices of the view. Defaults to N when ``indices`` is None; it is
            required when ``indices`` is given (the clamping must match the volume's ends).
    Shapes:
        returns (n_slices, H, W) float32.
    Reference:
        The authors' code (test-time averaging of the windows a slice appears in).
    """
    if hasattr(window_preds, "detach") and hasattr(window_preds, "cpu"):
        window_preds = window_preds.detach().cpu().numpy()
    q = np.asarray(window_preds)
    if q.ndim != 4 or q.shape[1] != 3:
        raise ValueError(
            f"average_windows: window_preds must be (N, 3, H, W), got shape {q.shape}."
        )
    n_windows, _, height, width = q.shape
    if indices is None:
        n = n_windows if n_slices is None else int(n_slices)
        if n < n_windows:
            raise ValueError(
                f"average_windows: {n_windows} windows (centres 0..{n_windows - 1}) do not fit "
                f"n_slices={n}; pass indices= or the view's true number of slices."
            )
        idx = np.arange(n_windows)
    else:
        if n_slices is None:
            raise ValueError(
                "average_windows: with indices= also pass n_slices= (the view's number of "
                "slices, e.g. to_view(volume, view).shape[0]) so the edge clamping matches."
            )
        n = int(n_slices)
        idx = _check_indices(indices, n, "average_windows")
        if idx.size != n_windows:
            raise ValueError(
                f"average_windows: got {n_windows} windows but {idx.size} indices; pass one "
                "centre per window."
            )
    if n < 1:
        raise ValueError(f"average_windows: n_slices must be >= 1, got {n}.")
    targets = _window_indices(idx, n).ravel()  # w(j_k, c), flattened over (k, c)
    counts = np.bincount(targets, minlength=n)  # how many window channels cover each slice
    # P = A Q with A[s, (k, c)] = 1 / count(s) where w(j_k, c) = s: a sparse mean, no loop
    # (scipy.sparse is ~6x faster than np.add.at here; rows of uncovered slices stay 0)
    weights = (1.0 / counts[targets]).astype(np.float32)
    a = scipy.sparse.csr_matrix((weights, (targets, np.arange(targets.size))),
                                shape=(n, targets.size))
    flat = q.reshape(n_windows * 3, height * width).astype(np.float32, copy=False)
    return np.asarray(a @ flat, dtype=np.float32).reshape(n, height, width)
