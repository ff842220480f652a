"""FLOP counting: what one forward pass (or training iteration) of the nets costs.

A FLOP here is what `torch.utils.flop_counter.FlopCounterMode` counts: 2 x the multiply-adds
of convolutions and matrix products (and of their backward, when the call runs one). Pooling,
interpolation, activations and biases are not counted. Nets are built on the meta device, so
counting costs no memory and no arithmetic.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from rstn_core.networks.fcn8s import FCN8s

__all__ = ["count_flops", "fcn8s_flops", "authors_fcn8s_flops", "rate"]


def count_flops(fn, *args, **kwargs) -> int:
    """FLOPs of one call ``fn(*args, **kwargs)``: 2 x multiply-adds of convolutions and matrix
    products (their backward too, when the call runs one).

    Args:
        fn: any callable running torch operations; args, kwargs: passed to it.
    Returns:
        The total FLOP count (int).
    """
    with FlopCounterMode(display=False) as counter:
        fn(*args, **kwargs)
    return int(counter.get_total_flops())


def _meta_fcn8s(width=1.0, fc_kernel=7, batch_norm=False) -> FCN8s:
    with torch.device("meta"):
        return FCN8s(3, 3, width=width, fc_kernel=fc_kernel, batch_norm=batch_norm).eval()


def fcn8s_flops(h: int, w: int, batch: int = 1, width: float = 1.0, fc_kernel: int = 7,
                batch_norm: bool = False) -> int:
    """FLOPs of one `FCN8s` forward pass of a (batch, 3, h, w) input, counted on the meta device.

    Width 1 at 512x512: ~2.2e11 (VGG16's convolutions ~1.6e11 + fc6/fc7).

    Args:
        h, w: input size in pixels; batch: slices per pass; width, fc_kernel, batch_norm: as
        `FCN8s`.
    Returns:
        FLOPs of the whole batch (int).
    """
    if h < 1 or w < 1 or batch < 1:
        raise ValueError(f"fcn8s_flops: got h={h}, w={w}, batch={batch}; all must be >= 1.")
    net = _meta_fcn8s(width, fc_kernel, batch_norm)
    return count_flops(net, torch.empty(batch, 3, h, w, device="meta"))


def authors_fcn8s_flops(h: int, w: int) -> int:
    """FLOPs of one forward pass of the authors' (Caffe-style) full-width FCN-8s at h x w.

    Their net pads conv1_1 by 100, pools in ceil mode and runs an un-padded 7x7 fc6 (then
    crops with offsets 5/9/31); the frozen bilinear deconvolutions (3 -> 3 channels) are left
    out, as are the up-sampling steps of our count. This is what their 0.45 s / 2.3 s bought.

    Args:
        h, w: input size before the pad of 100.
    Returns:
        FLOPs of one slice (int).
    """
    net = _meta_fcn8s()
    x = torch.empty(1, 3, h + 200, w + 200, device="meta")            # pad 100 on each side

    def forward(x):
        feats = []
        for layer in net.features:
            if isinstance(layer, nn.MaxPool2d):
                x = F.max_pool2d(x, 2, 2, ceil_mode=True)            # Caffe pools round up
                feats.append(x)
            else:
                x = layer(x)
        x = F.relu(F.conv2d(x, net.fc6.weight, net.fc6.bias))         # 7x7 fc6, no padding
        x = F.relu(net.fc7(x))
        net.score_fr(x), net.score_pool4(feats[3]), net.score_pool3(feats[2])

    return count_flops(forward, x)


def rate(flops: float, seconds: float, peak: float | None) -> tuple[float | None, float | None]:
    """Achieved FLOP/s = flops / seconds, and its fraction of `peak` (None when unknown).

    Returns:
        (FLOP/s or None when seconds <= 0, fraction of peak or None).
    """
    achieved = flops / seconds if seconds > 0 else None
    return achieved, (achieved / peak if (achieved is not None and peak) else None)
