"""Fusing the three views, and the authors' connected-component post-processing.

One 2D network per view (coronal, sagittal, axial) gives three volumes. The stepwise model
fuses binary masks by majority vote; RSTN averages the probabilities and thresholds at 0.5.
The authors' code then keeps the 6-connected components of at least half the largest one.
"""

from __future__ import annotations

import numpy as np
import scipy.ndimage as ndi

__all__ = ["majority_vote", "mean_probability", "keep_large_components"]


def _to_numpy(x) -> np.ndarray:
    """numpy view of a numpy array or a (detached, CPU) torch tensor."""
    if hasattr(x, "detach") and hasattr(x, "cpu"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def _stack(arrays, caller: str) -> np.ndarray:
    """Stack a non-empty sequence of same-shape arrays (or take a (K, ...) array) to (K, ...)."""
    if isinstance(arrays, np.ndarray) or (hasattr(arrays, "detach") and hasattr(arrays, "cpu")):
        stacked = _to_numpy(arrays)
        if stacked.ndim < 1 or stacked.shape[0] == 0:
            raise ValueError(f"{caller}: expected at least one map, got shape {stacked.shape}.")
        return stacked
    items = [_to_numpy(a) for a in arrays]
    if not items:
        raise ValueError(f"{caller}: expected at least one map (one per view), got none.")
    shapes = {a.shape for a in items}
    if len(shapes) != 1:
        raise ValueError(
            f"{caller}: all maps must have the same shape, got {[a.shape for a in items]}. "
            "Bring every view back to (x, y, z) with views.from_view first."
        )
    return np.stack(items)


def majority_vote(masks) -> np.ndarray:
    r"""Per-voxel majority vote of K binary masks: on when more than half of them say so.

    .. math:: Z_i = \mathbb{I}\Big[\sum_{v=1}^{K} Z^{v}_i > K / 2\Big]

    Args:
        masks: a sequence of K binary masks (bool or 0/1, numpy or torch) of equal shape, or
            one (K, ...) array. With the three views, a voxel needs 2 of 3 votes.
    Returns:
        A bool numpy array of the masks' shape.
    Reference:
        Zhou et al., MICCAI 2017 (fusion of the coarse and fine views).
    """
    stacked = _stack(masks, "majority_vote")
    if stacked.dtype != bool and not ((stacked == 0) | (stacked == 1)).all():
        raise ValueError("majority_vote: masks must be binary (bool or 0/1); threshold "
                         "probabilities first, or fuse them with mean_probability.")
    k = stacked.shape[0]
    votes = np.count_nonzero(stacked, axis=0)  # Σ_v Z^v_i
    return 2 * votes > k  # more than half: Σ > K/2


def mean_probability(probs) -> np.ndarray:
    r"""Per-voxel mean of K probability maps (RSTN's view fusion; threshold it at 0.5 after).

    .. math:: P_i = \frac{1}{K}\sum_{v=1}^{K} P^{v}_i

    Args:
        probs: a sequence of K probability maps of equal shape (numpy or torch), or a (K, ...)
            array.
    Returns:
        float32 numpy array of the maps' shape.
    Reference:
        Yu et al., CVPR 2018 (Algorithm 2: P = (P_C + P_S + P_A) / 3).
    """
    stacked = _stack(probs, "mean_probability")
    return stacked.astype(np.float32, copy=False).mean(axis=0, dtype=np.float32)  # (1/K) Σ_v P^v


def keep_large_components(mask, ratio: float = 0.5) -> np.ndarray:
    r"""Keep the connected components of at least ``ratio`` times the largest one's size.

    .. math:: Z' = \bigcup \{ C_k : |C_k| \ge \rho \max_j |C_j| \}

    Components use face connectivity: 6-connected in 3D, 4-connected in 2D (diagonal
    neighbours are separate components), ``scipy.ndimage.generate_binary_structure(ndim, 1)``.

    Args:
        mask: binary mask (numpy or torch), any number of axes (2D or 3D in practice).
        ratio: ρ in [0, 1]; 0.5 as the authors' post-processing, 0 keeps everything,
            1 keeps only the largest component(s).
    Returns:
        bool numpy array of the mask's shape; an empty mask gives an empty mask.
    Reference:
        The authors' public code (post-processing of the fused volume).
    """
    if not 0.0 <= ratio <= 1.0:
        raise ValueError(f"keep_large_components: ratio must be in [0, 1], got {ratio}.")
    m = _to_numpy(mask)
    if m.ndim < 1:
        raise ValueError(f"keep_large_components: mask must have at least 1 axis, got shape {m.shape}.")
    if m.dtype != bool and not ((m == 0) | (m == 1)).all():
        raise ValueError("keep_large_components: mask must be binary (bool or 0/1); threshold it first.")
    m = m != 0
    structure = ndi.generate_binary_structure(m.ndim, 1)  # face neighbours: 6 in 3D, 4 in 2D
    labels, n = ndi.label(m, structure=structure)
    if n == 0:
        return np.zeros(m.shape, dtype=bool)  # empty in, empty out
    sizes = np.bincount(labels.ravel(), minlength=n + 1)  # |C_k|; index 0 is background
    sizes[0] = 0
    keep = sizes >= ratio * sizes[1:].max()  # |C_k| >= ρ max_j |C_j|
    keep[0] = False
    return keep[labels]
