"""Batches of boxes of different sizes: crop, zoom, run, zoom back, paste.

The papers feed one slice at a time (batch 1). To run many crops through a net at once, each
crop is placed at the top-left of a zero canvas as large as the batch's largest box; a `valid`
mask marks the real pixels so losses ignore the padding. Optionally the crops are upsampled by an
integer `zoom` before the net and its probabilities average-pooled back to the crop's own pixels,
so losses and DSC stay on the original grid (book: "less background vs. more pixels").
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

from rstn_core.crop import Box

__all__ = ["crop_batch", "paste_batch", "zoom_in", "zoom_out", "fine_forward", "min_canvas"]

#: FCN-8s needs inputs of at least 32 px (five 2x poolings).
MIN_NET_INPUT = 32


def min_canvas(zoom: int) -> int:
    """The smallest crop canvas (native pixels) whose zoomed copy the net can take:
    ceil(32 / zoom)."""
    return -(-MIN_NET_INPUT // zoom)


def crop_batch(x: torch.Tensor, boxes: Sequence[Box], min_size: int = 32):
    """Crop box b of sample b onto a zero canvas; returns (canvas, valid).

    Shapes: x (B, C, H, W); canvas (B, C, h, w) with h, w = the largest box (at least
    `min_size`); valid (B, 1, h, w), 1 on the copied pixels.
    """
    if x.shape[0] != len(boxes):
        raise ValueError(f"crop_batch: {x.shape[0]} samples but {len(boxes)} boxes.")
    if any(b is None for b in boxes):
        raise ValueError("crop_batch: a box is None; drop samples without a box first.")
    h = max(min_size, max(b.height for b in boxes))
    w = max(min_size, max(b.width for b in boxes))
    rows = []
    for b, xb in zip(boxes, x):  # Crop[I; box] (CVPR Eq. 3), padded to the canvas
        c = xb[:, b.r0:b.r1, b.c0:b.c1]
        rows.append(F.pad(c, (0, w - b.width, 0, h - b.height)))
    canvas = torch.stack(rows)
    valid = torch.zeros(x.shape[0], 1, h, w, dtype=x.dtype, device=x.device)
    for i, b in enumerate(boxes):
        valid[i, :, :b.height, :b.width] = 1
    return canvas, valid


def paste_batch(y: torch.Tensor, boxes: Sequence[Box], shape) -> torch.Tensor:
    """Inverse of :func:`crop_batch`: each canvas's box region pasted into a full-size zero map.

    Differentiable (F.pad), so a loss on the full slice reaches the fine net (CVPR: the fine
    output is pasted back into a map that is 0 outside the crop).
    """
    H, W = shape
    out = []
    for b, yb in zip(boxes, y):
        c = yb[:, :b.height, :b.width]
        out.append(F.pad(c, (b.c0, W - b.c1, b.r0, H - b.r1)))
    return torch.stack(out)


def zoom_in(x: torch.Tensor, zoom: int) -> torch.Tensor:
    """Upsample crops by an integer factor (bilinear) before the fine net."""
    if zoom == 1:
        return x
    return F.interpolate(x, scale_factor=zoom, mode="bilinear", align_corners=False)


def zoom_out(p: torch.Tensor, zoom: int) -> torch.Tensor:
    """Average-pool probabilities back to the original grid (each pixel = mean of its zoom^2)."""
    if zoom == 1:
        return p
    return F.avg_pool2d(p, zoom)


def fine_forward(net, x: torch.Tensor, boxes: Sequence[Box], zoom: int = 1):
    """Fine net on the boxes of a batch: probabilities on the native-resolution canvas.

    Returns (prob_canvas (B, C, h, w), valid (B, 1, h, w)); paste with :func:`paste_batch`.
    """
    canvas, valid = crop_batch(x, boxes, min_size=min_canvas(zoom))
    prob = torch.sigmoid(net(zoom_in(canvas, zoom)).float())
    return zoom_out(prob, zoom) * valid, valid
