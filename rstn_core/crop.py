"""Bounding boxes, cropping and pasting: the r(X, Z) of the fixed-point model and RSTN's Crop.

The fine stage of both methods sees only the smallest rectangle around the (predicted or
ground-truth) target plus a margin; its output is pasted back into a full-size map that is
``fill`` (0) outside the box. Boxes are half-open, ``rows r0:r1, columns c0:c1``.
"""

from __future__ import annotations

import random
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["Box", "bbox", "crop", "paste", "random_margins"]


class Box(NamedTuple):
    """A half-open 2D box: rows ``r0:r1``, columns ``c0:c1`` (Python ints)."""

    r0: int
    r1: int
    c0: int
    c1: int

    @property
    def height(self) -> int:
        """Number of rows, r1 - r0."""
        return self.r1 - self.r0

    @property
    def width(self) -> int:
        """Number of columns, c1 - c0."""
        return self.c1 - self.c0

    @property
    def slices(self) -> tuple[slice, slice]:
        """``(slice(r0, r1), slice(c0, c1))``, to index the last two axes."""
        return slice(self.r0, self.r1), slice(self.c0, self.c1)


def _parse_margin(margin) -> tuple[int, int, int, int]:
    """Return margin as (top, bottom, left, right) non-negative ints, or raise."""
    def ok(m) -> bool:
        return isinstance(m, (int, np.integer)) and not isinstance(m, bool) and m >= 0

    if ok(margin):
        return (int(margin),) * 4
    if isinstance(margin, (tuple, list)) and len(margin) == 4 and all(ok(m) for m in margin):
        return tuple(int(m) for m in margin)
    raise ValueError(
        f"bbox: margin must be a non-negative int or a 4-tuple (top, bottom, left, right) of "
        f"non-negative ints, got {margin!r}."
    )


def bbox(mask, margin=0) -> Box | None:
    r"""Smallest box around the foreground of a mask, grown by a margin and clipped to the image.

    .. math:: r_0 = \max(\min\{i : Z_{ij}\} - m_t, 0), \quad
              r_1 = \min(\max\{i : Z_{ij}\} + 1 + m_b, H)\ \text{(columns likewise)}

    Args:
        mask: binary mask (bool or 0/1; numpy or torch). A (C, H, W) mask uses the union over
            C (the authors' 3-slice window: the box of a window covers its 3 slices).
        margin: frame added on every side (int), or (top, bottom, left, right); MICCAI 2017
            tests with 30 px, RSTN (CVPR 2018) with K = 20 px.
    Shapes:
        mask: (H, W) or (C, H, W).
    Returns:
        A :class:`Box` of Python ints, or None when the mask is empty (no box: the caller
        decides, e.g. keep the empty prediction or fall back to the whole slice).
    Reference:
        Zhou et al., MICCAI 2017 (r(X, Z)); Yu et al., CVPR 2018 (Crop[.; P], K = 20).
    """
    top, bottom, left, right = _parse_margin(margin)
    if not isinstance(mask, torch.Tensor):
        mask = np.asarray(mask)
    if mask.ndim not in (2, 3):
        raise ValueError(
            f"bbox: mask must be (H, W) or (C, H, W), got shape {tuple(mask.shape)}. "
            "Call it per slice (or per 3-slice window)."
        )
    if isinstance(mask, torch.Tensor):
        m = mask.detach()
        if m.dtype != torch.bool and not ((m == 0) | (m == 1)).all():
            raise ValueError("bbox: mask must be binary (bool or 0/1); threshold it first, "
                             "e.g. bbox(p >= 0.5).")
        m = m != 0
        if m.dim() == 3:
            m = m.any(dim=0)  # union over channels
        rows = m.any(dim=1).cpu().numpy()  # rows holding foreground
        cols = m.any(dim=0).cpu().numpy()  # columns holding foreground
    else:
        m = mask
        if m.dtype != bool and not ((m == 0) | (m == 1)).all():
            raise ValueError("bbox: mask must be binary (bool or 0/1); threshold it first, "
                             "e.g. bbox(p >= 0.5).")
        m = m != 0
        if m.ndim == 3:
            m = m.any(axis=0)  # union over channels
        rows = m.any(axis=1)
        cols = m.any(axis=0)
    if not rows.any():
        return None  # empty mask: no box
    height, width = m.shape
    r_idx = np.flatnonzero(rows)
    c_idx = np.flatnonzero(cols)
    r0 = max(int(r_idx[0]) - top, 0)  # first row - top margin, clipped
    r1 = min(int(r_idx[-1]) + 1 + bottom, height)  # last row + 1 + bottom margin, clipped
    c0 = max(int(c_idx[0]) - left, 0)
    c1 = min(int(c_idx[-1]) + 1 + right, width)
    return Box(r0, r1, c0, c1)


def _check_box(box, height: int, width: int, caller: str) -> Box:
    """Return ``box`` as a Box inside an (height, width) image, or raise."""
    if not isinstance(box, tuple) or len(box) != 4:
        raise TypeError(f"{caller}: box must be a Box(r0, r1, c0, c1), got {box!r}.")
    box = Box(*(int(v) for v in box))
    if not (0 <= box.r0 < box.r1 <= height and 0 <= box.c0 < box.c1 <= width):
        raise ValueError(
            f"{caller}: box {tuple(box)} must be non-empty and inside the image of size "
            f"({height}, {width}) (0 <= r0 < r1 <= H, 0 <= c0 < c1 <= W). Build it with bbox()."
        )
    return box


def crop(x, box: Box):
    """Cut a box out of the last two axes: ``x[..., r0:r1, c0:c1]`` (numpy or torch).

    Args:
        x: an image, slice stack or batch; the box applies to its last two axes.
        box: a :class:`Box` inside the image.
    Shapes:
        x: (..., H, W); returns (..., box.height, box.width), a view (no copy).
    Reference:
        Zhou et al., MICCAI 2017 (r(X, Z)); Yu et al., CVPR 2018 (Crop[I; P]).
    """
    if x.ndim < 2:
        raise ValueError(f"crop: x must have at least 2 axes (..., H, W), got shape {tuple(x.shape)}.")
    box = _check_box(box, x.shape[-2], x.shape[-1], "crop")
    rows, cols = box.slices
    return x[..., rows, cols]  # x[..., r0:r1, c0:c1]


def paste(y, box: Box, shape, fill=0):
    r"""Put a crop back at its place in a new full-size array that is ``fill`` elsewhere.

    .. math:: P_{ij} = y_{i - r_0,\, j - c_0} \text{ inside the box}, \quad
              P_{ij} = \text{fill} \text{ outside}

    The torch path pads with ``F.pad``, so gradients flow from the full-size map (and its
    loss on the full slice, as in the authors' RSTN) back into the crop.

    Args:
        y: the crop (numpy or torch), e.g. the fine network's output.
        box: where the crop came from.
        shape: (H, W) of the full image.
        fill: value outside the box (0: the fine stage says "background" there).
    Shapes:
        y: (..., box.height, box.width); returns (..., H, W), same type and dtype as y.
    Reference:
        Yu et al., CVPR 2018; the authors' code pastes the fine output into a zero map.
    """
    if len(shape) != 2:
        raise ValueError(f"paste: shape must be the full image size (H, W), got {tuple(shape)}.")
    height, width = (int(s) for s in shape)
    if y.ndim < 2:
        raise ValueError(f"paste: y must have at least 2 axes (..., h, w), got shape {tuple(y.shape)}.")
    box = _check_box(box, height, width, "paste")
    if tuple(y.shape[-2:]) != (box.height, box.width):
        raise ValueError(
            f"paste: y's last two axes {tuple(y.shape[-2:])} must equal the box size "
            f"({box.height}, {box.width}). Paste with the box the crop was cut with."
        )
    rows, cols = box.slices
    if isinstance(y, torch.Tensor):
        if y.dtype != torch.bool:
            pad = (box.c0, width - box.c1, box.r0, height - box.r1)  # (left, right, top, bottom)
            return F.pad(y, pad, mode="constant", value=fill)  # differentiable
        out = y.new_full(tuple(y.shape[:-2]) + (height, width), bool(fill))
        out[..., rows, cols] = y
        return out
    y = np.asarray(y)
    out = np.full(y.shape[:-2] + (height, width), fill, dtype=y.dtype)
    out[..., rows, cols] = y  # P = y inside the box, fill outside
    return out


def random_margins(rng, low: int, high: int) -> tuple[int, int, int, int]:
    r"""Random (top, bottom, left, right) margins, each an integer uniform in [low, high].

    .. math:: m_\mathrm{top}, m_\mathrm{bottom}, m_\mathrm{left}, m_\mathrm{right}
              \sim \mathcal{U}\{low, \dots, high\}

    The fine stage's training augmentation: MICCAI 2017 draws each margin from {0..60}; the
    authors' code uses [0, 40] (half of the time a fixed 20 px instead).

    Args:
        rng: ``numpy.random.Generator`` (preferred), ``numpy.random.RandomState`` or
            ``random.Random``.
        low, high: inclusive bounds, 0 <= low <= high.
    Returns:
        A tuple of 4 Python ints, ready for ``bbox(mask, margin=...)``.
    Reference:
        Zhou et al., MICCAI 2017 (fine-stage training).
    """
    for name, v in (("low", low), ("high", high)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise TypeError(f"random_margins: {name} must be an int, got {type(v).__name__}.")
    if not 0 <= low <= high:
        raise ValueError(f"random_margins: need 0 <= low <= high, got low={low}, high={high}.")
    if isinstance(rng, np.random.Generator):
        values = rng.integers(low, high, size=4, endpoint=True)  # inclusive high
    elif isinstance(rng, np.random.RandomState):
        values = rng.randint(low, high + 1, size=4)  # exclusive high, hence + 1
    elif isinstance(rng, random.Random):
        values = [rng.randint(low, high) for _ in range(4)]  # inclusive high
    else:
        raise TypeError(
            f"random_margins: rng must be a numpy.random.Generator (np.random.default_rng(seed)), "
            f"RandomState or random.Random, got {type(rng).__name__}."
        )
    return tuple(int(v) for v in values)
