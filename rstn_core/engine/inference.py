"""Batched inference of 2D nets over a 3D volume, one view at a time.

Every slice j of a view is predicted from the window [j-1, j, j+1] (clamped at the edges,
:func:`rstn_core.views.window_indices`) and each window predicts its 3 slices, so a slice gets
up to 3 predictions that are averaged (authors' code). Windows go through the net in batches
under `torch.inference_mode`; in the fine stage only windows whose box is non-empty are run at
all — the others predict 0, as a fine map is 0 outside its box.

Speed options are arguments, never global state: `amp` (mixed precision,
:mod:`rstn_core.engine.device`), `channels_last` (CUDA only; ignored on the CPU), and
:func:`prepare_net`'s `compile` (applied once when the nets are loaded).
"""
from __future__ import annotations

import numpy as np
import torch

from rstn_core.crop import bbox
from rstn_core.engine.batching import fine_forward, paste_batch
from rstn_core.engine.device import autocast, is_cuda
from rstn_core.views import from_view, to_view, window_indices

__all__ = ["WindowAccumulator", "coarse_probability", "fine_probability", "prepare_net"]


def prepare_net(net, device: str = "cpu", channels_last: bool = False, compile: bool = False):
    """The module to call for `net` at test time: the net in eval mode (its weights in
    channels-last memory format on CUDA when asked), or its `torch.compile`d wrapper.

    Call it once when the nets are loaded and keep what it returns (book/performance.md:
    compiling is slower than eager at the CPU scales, hence off by default).
    """
    net.eval()
    if channels_last and is_cuda(device):
        net.to(memory_format=torch.channels_last)
    return torch.compile(net) if compile else net


def _input(x: torch.Tensor, device, channels_last: bool = False) -> torch.Tensor:
    """A batch on `device`, channels-last when asked (CUDA)."""
    x = x.to(device)
    if channels_last and is_cuda(device):
        x = x.contiguous(memory_format=torch.channels_last)
    return x


class WindowAccumulator:
    r"""Averages 3-slice window predictions back into one probability per slice.

    .. math:: P_s = \frac{1}{n_s} \sum_{(j, c):\ w(j, c) = s} Q_{j, c}

    n_s counts every window channel that covers slice s — also those of windows skipped for
    having no box (their prediction is 0). The batch-by-batch form of
    :func:`rstn_core.views.average_windows`, which needs all windows at once.

    Shapes:
        add(centres (B,), preds (B, 3, H, W)); mean() -> (n, H, W) float32.
    """

    def __init__(self, n: int, h: int, w: int):
        self.n = n
        self.sum = np.zeros((n, h, w), np.float32)
        self.count = np.bincount(window_indices(np.arange(n), n).ravel(), minlength=n)

    def add(self, centres: np.ndarray, preds: np.ndarray):
        idx = window_indices(centres, self.n)
        for k in range(3):
            np.add.at(self.sum, idx[:, k], preds[:, k])            # Σ Q_{j,c} into slice w(j, c)

    def mean(self) -> np.ndarray:
        return self.sum / self.count[:, None, None]                 # / n_s


def _stacks(vol_v: np.ndarray, centres: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(vol_v[window_indices(centres, len(vol_v))],
                                                 dtype=np.float32))


@torch.inference_mode()
def coarse_probability(net, vol01: np.ndarray, view: str, batch_size: int = 8,
                       device: str = "cpu", amp: str = "auto",
                       channels_last: bool = False) -> np.ndarray:
    """P_v = f(X; θC): a coarse net's probability for every voxel, from all windows of `view`.

    Args:
        net: a coarse net (or what :func:`prepare_net` returned); vol01: the volume windowed
        to [0, 1]; view: one of rstn_core.views.VIEWS; amp, channels_last: speed options.
    Shapes:
        vol01 (X, Y, Z); returns (X, Y, Z) float32.
    """
    net.eval()
    vol_v = to_view(vol01, view)
    acc = WindowAccumulator(*vol_v.shape)
    for s in range(0, len(vol_v), batch_size):
        centres = np.arange(s, min(s + batch_size, len(vol_v)))
        x = _input(_stacks(vol_v, centres), device, channels_last)
        with autocast(device, amp):
            p = torch.sigmoid(net(x).float())
        acc.add(centres, p.cpu().numpy())
    return from_view(acc.mean(), view)


@torch.inference_mode()
def fine_probability(net, vol01: np.ndarray, prev: np.ndarray, view: str, margin: int,
                     zoom: int = 1, batch_size: int = 8, device: str = "cpu", saliency=None,
                     weights_from: np.ndarray | None = None,
                     boxes_from: np.ndarray | None = None, amp: str = "auto",
                     channels_last: bool = False):
    """A fine net's probability for every voxel, inside the boxes of the previous map.

    Per window: box = minimal rectangle of Z = I[prev > 0.5] over its 3 slices + `margin` (MICCAI
    Algorithm 1 / CVPR Crop[.; P]); RSTN first weights the **full** slice by the saliency
    g(P) of `weights_from` (default `prev`): I = X ⊙ g(P) (CVPR Eq. 2), then crops.

    Args:
        net: a fine net; vol01: the volume windowed to [0, 1]; prev: the previous map Z(t-1)
            or P(t-1) (boxes, and RSTN's weights); view: one of VIEWS; margin: pixels added to
            each side of a box; zoom: crops upsampled by this factor; saliency: RSTN's g, or
            None (stepwise); weights_from: the map g reads instead of `prev`; boxes_from: the
            map the boxes come from instead of `prev` (the weak oracle: GT boxes).
    Shapes:
        vol01, prev (X, Y, Z). Returns ((X, Y, Z) float32 probability, number of windows run).
    """
    net.eval()
    vol_v = to_view(vol01, view)
    box_v = to_view(np.asarray(prev if boxes_from is None else boxes_from) > 0.5, view)
    w_v = None
    if saliency is not None:
        saliency.eval()
        w_v = to_view(np.asarray(prev if weights_from is None else weights_from, np.float32),
                      view)
    n, H, W = vol_v.shape
    acc = WindowAccumulator(n, H, W)
    centres_all = np.arange(n)
    boxes_all = [bbox(box_v[idx], margin) for idx in window_indices(centres_all, n)]
    todo = np.array([j for j in centres_all if boxes_all[j] is not None], dtype=np.int64)
    for s in range(0, len(todo), batch_size):
        centres = todo[s:s + batch_size]
        boxes = [boxes_all[j] for j in centres]
        x = _input(_stacks(vol_v, centres), device, channels_last)
        with autocast(device, amp):
            if saliency is not None:
                x = saliency(x, _stacks(w_v, centres).to(device))   # I = X ⊙ g(P; eta)
            p, _ = fine_forward(net, x, boxes, zoom)                 # f(Crop[I; P]; θF)
        full = paste_batch(p.float(), boxes, (H, W))               # 0 outside the box
        acc.add(centres, full.cpu().numpy())
    return from_view(acc.mean(), view), len(todo)
