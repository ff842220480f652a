"""Batched inference of 2D nets over a 3D volume, one view at a time.

Every slice j of a view is predicted from the window [j-1, j, j+1] (clamped at the edges) and
each window predicts its 3 slices, so a slice gets up to 3 predictions that are averaged
(authors' code). Windows go through the net in batches under `torch.inference_mode`; in the
fine stage only windows whose box is non-empty are run at all — the others predict 0, as a
fine map is 0 outside its box.

Two speed options, off by default (config `test.channels_last`, `test.compile`), switched on
for a block with :func:`inference_options`: channels-last memory format for nets and inputs
(CUDA only; ignored on CPU), and `torch.compile` of each net (book/performance.md measures it:
slower than eager on the CPU scales, hence off).
"""
from __future__ import annotations

import contextlib
import contextvars

import numpy as np
import torch

from rstn_core.engine.batching import fine_forward, paste_batch
from rstn_core.crop import bbox
from rstn_core.engine.train import autocast
from rstn_core.views import from_view, to_view

__all__ = ["WindowAccumulator", "coarse_probability", "fine_probability", "window_index",
           "inference_options", "prepare_net"]

_DEFAULTS = {"channels_last": False, "compile": False}
_OPTIONS: contextvars.ContextVar[dict] = contextvars.ContextVar("rstn_inference_options",
                                                                default=_DEFAULTS)


@contextlib.contextmanager
def inference_options(**options):
    """Inference options for the block: channels_last (CUDA only) and compile (torch.compile,
    each net compiled once on first use and kept with it), e.g.
    ``with inference_options(compile=cfg.test.compile): test_fold(cfg, ...)``."""
    unknown = set(options) - set(_DEFAULTS)
    if unknown:
        raise ValueError(f"inference_options: unknown {sorted(unknown)}; expected a subset of "
                         f"{sorted(_DEFAULTS)}.")
    token = _OPTIONS.set({**_DEFAULTS, **{k: bool(v) for k, v in options.items()}})
    try:
        yield
    finally:
        _OPTIONS.reset(token)


def _cuda(device) -> bool:
    return str(device).startswith("cuda")


def prepare_net(net, device: str = "cpu"):
    """What to call for `net` under the current options: the net itself (channels-last
    weights on CUDA when asked), or its `torch.compile`d module, made once and kept on the
    net (outside its state dict)."""
    opts = _OPTIONS.get()
    if opts["channels_last"] and _cuda(device) and not getattr(net, "_rstn_channels_last", 0):
        net.to(memory_format=torch.channels_last)
        object.__setattr__(net, "_rstn_channels_last", True)
    if not opts["compile"]:
        return net
    compiled = getattr(net, "_rstn_compiled", None)
    if compiled is None:
        compiled = torch.compile(net)
        object.__setattr__(net, "_rstn_compiled", compiled)   # not a sub-module: no new keys
    return compiled


def _input(x: torch.Tensor, device) -> torch.Tensor:
    """A batch on `device`, channels-last when that option is on (CUDA)."""
    x = x.to(device)
    if _OPTIONS.get()["channels_last"] and _cuda(device):
        x = x.contiguous(memory_format=torch.channels_last)
    return x


def window_index(n: int, centres: np.ndarray) -> np.ndarray:
    """(len(centres), 3) slice indices j-1, j, j+1 clamped to [0, n)."""
    return np.clip(centres[:, None] + np.arange(-1, 2)[None, :], 0, n - 1)


class WindowAccumulator:
    """Averages 3-slice window predictions back into one probability per slice."""

    def __init__(self, n: int, h: int, w: int):
        self.n = n
        self.sum = np.zeros((n, h, w), np.float32)
        # each slice is covered by the channels of up to 3 windows (all windows are counted,
        # also those skipped for having no box: their prediction is 0)
        self.count = np.bincount(window_index(n, np.arange(n)).ravel(), minlength=n)

    def add(self, centres: np.ndarray, preds: np.ndarray):
        idx = window_index(self.n, centres)
        for k in range(3):
            np.add.at(self.sum, idx[:, k], preds[:, k])

    def mean(self) -> np.ndarray:
        return self.sum / self.count[:, None, None]


def _stacks(vol_v: np.ndarray, centres: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(vol_v[window_index(len(vol_v), centres)],
                                                 dtype=np.float32))


@torch.inference_mode()
def coarse_probability(net, vol01: np.ndarray, view: str, batch_size: int = 8,
                       device: str = "cpu") -> np.ndarray:
    """P_v: a coarse net's probability for every voxel, from all windows of `view`.

    vol01: (X, Y, Z) windowed volume in [0, 1]. Returns (X, Y, Z) float32.
    """
    net.eval()
    run = prepare_net(net, device)
    vol_v = to_view(vol01, view)
    acc = WindowAccumulator(*vol_v.shape)
    for s in range(0, len(vol_v), batch_size):
        centres = np.arange(s, min(s + batch_size, len(vol_v)))
        x = _input(_stacks(vol_v, centres), device)
        with autocast(device):
            p = torch.sigmoid(run(x).float())
        acc.add(centres, p.cpu().numpy())
    return from_view(acc.mean(), view)


@torch.inference_mode()
def fine_probability(net, vol01: np.ndarray, ref: np.ndarray, view: str, margin: int,
                     zoom: int = 1, batch_size: int = 8, device: str = "cpu", saliency=None,
                     weight_ref: np.ndarray | None = None, boxes_from: np.ndarray | None = None):
    """A fine net's probability for every voxel, inside the boxes of a reference map.

    Per window: box = minimal rectangle of (ref >= 0.5) over its 3 slices + `margin` (MICCAI
    Algorithm 1 / CVPR Crop[.; P]); RSTN first weights the **full** slice by the saliency
    g(P) of `weight_ref` (default `ref`): I = X ⊙ g(P) (CVPR Eq. 2), then crops.
    `boxes_from` overrides the map the boxes come from (the weak oracle: GT boxes, predicted
    weights). Returns ((X, Y, Z) float32 probability, number of windows run).
    """
    net.eval()
    run = prepare_net(net, device)
    vol_v = to_view(vol01, view)
    box_v = to_view(np.asarray(ref if boxes_from is None else boxes_from) >= 0.5, view)
    w_v = None
    if saliency is not None:
        saliency.eval()
        w_v = to_view((ref if weight_ref is None else weight_ref).astype(np.float32), view)
    n, H, W = vol_v.shape
    acc = WindowAccumulator(n, H, W)
    centres_all = np.arange(n)
    boxes_all = [bbox(box_v[idx], margin) for idx in window_index(n, centres_all)]
    todo = np.array([j for j in centres_all if boxes_all[j] is not None], dtype=np.int64)
    for s in range(0, len(todo), batch_size):
        centres = todo[s:s + batch_size]
        boxes = [boxes_all[j] for j in centres]
        x = _input(_stacks(vol_v, centres), device)
        with autocast(device):
            if saliency is not None:
                x = saliency(x, _stacks(w_v, centres).to(device))   # I = X ⊙ g(P; eta)
            p, _ = fine_forward(run, x, boxes, zoom)
        full = paste_batch(p.float(), boxes, (H, W))               # 0 outside the box
        acc.add(centres, full.cpu().numpy())
    return from_view(acc.mean(), view), len(todo)
