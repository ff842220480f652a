"""Batched inference of 2D nets over a 3D volume, one view at a time.

Every slice j of a view is predicted from the window [j-1, j, j+1] (clamped at the edges,
:func:`rstn_core.views.window_indices`) and each window predicts its 3 slices, so a slice gets
up to 3 predictions that are averaged (authors' code). Windows go through the net in batches
under `torch.inference_mode`; in the fine stage only windows whose box is non-empty are run at
all — the others predict 0, as a fine map is 0 outside its box.

The fine stage works on the box only (`crop_local=True`, the default): the image windows,
RSTN's saliency g(P) and the accumulation are computed on the box plus the halo g needs
(layers x k//2 pixels), never on full slices; the result is the full-slice computation's
(tests/test_inference.py: max |Δp| <= 1e-5). :class:`ViewCache` keeps each view's image
slices, gathered once per volume and reused by every round.

Speed options are arguments, never global state: `amp` (mixed precision,
:mod:`rstn_core.engine.device`; bf16 autocast on the CPU measured 1.4x faster but moves
probabilities by ~3e-3, so it stays off there), `channels_last` (on CUDA when asked; on the
CPU the input batches are always channels-last, which measured 1.4-1.7x faster with the same
probabilities: book/performance.md), and :func:`prepare_net`'s `compile` (applied once when
the nets are loaded). :func:`prepare_net` folds eval BatchNorm into the convolutions.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from rstn_core.crop import Box
from rstn_core.engine.batching import min_canvas, zoom_in, zoom_out
from rstn_core.engine.device import autocast, is_cuda
from rstn_core.views import from_view, to_view, window_indices

__all__ = [
    "ViewCache",
    "WindowAccumulator",
    "coarse_probability",
    "fine_probability",
    "fold_batchnorm",
    "prepare_net",
    "saliency_halo",
    "window_boxes",
]


def fold_batchnorm(net: nn.Module) -> nn.Module:
    r"""Fold every eval BatchNorm2d that directly follows a Conv2d (inside an nn.Sequential)
    into that convolution, in place; the BatchNorm becomes an Identity.

    .. math:: W' = W \cdot \frac{\gamma}{\sqrt{\sigma^2 + \epsilon}}, \qquad
              b' = (b - \mu) \frac{\gamma}{\sqrt{\sigma^2 + \epsilon}} + \beta

    For inference only: the folded net computes the eval-mode outputs (to rounding) and has
    no BatchNorm left to train.

    Args:
        net: any module (FCN-8s: the encoder's conv -> BN pairs).
    Returns:
        `net`, changed in place.
    """
    for seq in [m for m in net.modules() if isinstance(m, nn.Sequential)]:
        for i in range(len(seq) - 1):
            conv, bn = seq[i], seq[i + 1]
            if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d) \
                    and bn.track_running_stats and bn.running_mean is not None:
                seq[i] = fuse_conv_bn_eval(conv.eval(), bn.eval())    # W', b'
                seq[i + 1] = nn.Identity()
    return net


def prepare_net(net, device: str = "cpu", channels_last: bool = False, compile: bool = False):
    """The module to call for `net` at test time: the net in eval mode with its BatchNorm
    folded into the convolutions (:func:`fold_batchnorm`, in place), its weights in
    channels-last memory format on CUDA when asked, or its `torch.compile`d wrapper.

    Call it once when the nets are loaded and keep what it returns; the net is for
    inference from then on (book/performance.md: compiling is slower than eager at the CPU
    scales, hence off by default). On the CPU the weights stay as they are: channels-last
    input batches (:func:`coarse_probability`, :func:`fine_probability`) get the speed-up.
    """
    net.eval()
    fold_batchnorm(net)
    if channels_last and is_cuda(device):
        net.to(memory_format=torch.channels_last)
    return torch.compile(net) if compile else net


def _input(x: torch.Tensor, device, channels_last: bool = False) -> torch.Tensor:
    """A batch on `device` in channels-last memory format: always on the CPU (1.4-1.7x
    faster there with the same probabilities, book/performance.md), on CUDA when asked."""
    x = x.to(device)
    if channels_last or not is_cuda(device):
        x = x.contiguous(memory_format=torch.channels_last)
    return x


class ViewCache:
    """Each view's slices of one windowed volume, gathered once (C-contiguous float32) and
    reused by the coarse pass and every fine round; pass one per volume, never share it
    between volumes.

    Shapes:
        vol01 (X, Y, Z); view(v) -> (n, H, W) float32, to_view(vol01, v) as a copy.
    """

    def __init__(self, vol01: np.ndarray):
        self.vol01 = np.asarray(vol01, np.float32)
        if self.vol01.ndim != 3:
            raise ValueError(f"ViewCache: expected a 3-D volume (X, Y, Z), got shape "
                             f"{self.vol01.shape}; pass the whole windowed volume.")
        self._views: dict[str, np.ndarray] = {}

    def view(self, view: str) -> np.ndarray:
        """The view's slices (n, H, W), gathered on first use."""
        if view not in self._views:
            self._views[view] = np.ascontiguousarray(to_view(self.vol01, view))
        return self._views[view]


def _view_slices(vol01, view: str, cache: ViewCache | None) -> np.ndarray:
    if cache is None:
        return to_view(vol01, view)
    if np.shape(vol01) != cache.vol01.shape:
        raise ValueError(f"ViewCache: the cache holds a volume of shape {cache.vol01.shape}, "
                         f"the call passes {np.shape(vol01)}; build one ViewCache(x) per "
                         "volume and pass that volume's x.")
    return cache.view(view)


class WindowAccumulator:
    r"""Averages 3-slice window predictions back into one probability per slice.

    .. math:: P_s = \frac{1}{n_s} \sum_{(j, c):\ w(j, c) = s} Q_{j, c}

    n_s counts every window channel that covers slice s — also those of windows skipped for
    having no box (their prediction is 0). The batch-by-batch form of
    :func:`rstn_core.views.average_windows`, which needs all windows at once.

    Shapes:
        add(centres (B,), preds (B, 3, H, W)); add_box(centre, box, pred (3, h, w));
        mean() -> (n, H, W) float32.
    """

    def __init__(self, n: int, h: int, w: int):
        self.n = n
        self.sum = np.zeros((n, h, w), np.float32)
        self.count = np.bincount(window_indices(np.arange(n), n).ravel(),
                                 minlength=n).astype(np.float32)

    def add(self, centres: np.ndarray, preds: np.ndarray):
        """Σ Q_{j,c} into slice w(j, c) for whole-slice predictions (in place, per slice)."""
        for b, idx in enumerate(window_indices(centres, self.n)):
            for c in range(3):
                self.sum[idx[c]] += preds[b, c]

    def add_box(self, centre: int, box: Box, pred: np.ndarray):
        """Σ Q_{j,c} into slice w(j, c), inside `box` only (0 elsewhere)."""
        for c, s in enumerate(window_indices(centre, self.n)[0]):
            self.sum[s, box.r0:box.r1, box.c0:box.c1] += pred[c]

    def mean(self) -> np.ndarray:
        """P_s = sum / n_s, (n, H, W) float32."""
        return self.sum / self.count[:, None, None]                 # / n_s


def _stacks(vol_v: np.ndarray, centres: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(vol_v[window_indices(centres, len(vol_v))],
                                                 dtype=np.float32))


def _margins(margin) -> tuple[int, int, int, int]:
    if isinstance(margin, (int, np.integer)) and not isinstance(margin, bool) and margin >= 0:
        return (int(margin),) * 4
    if isinstance(margin, (tuple, list)) and len(margin) == 4 and all(
            isinstance(m, (int, np.integer)) and not isinstance(m, bool) and m >= 0
            for m in margin):
        return tuple(int(m) for m in margin)
    raise ValueError(f"margin must be a non-negative int or a 4-tuple (top, bottom, left, "
                     f"right) of them, got {margin!r}.")


def window_boxes(mask_v: np.ndarray, margin) -> list[Box | None]:
    """The box of every window of a view: bbox of the union of its 3 slices' masks + margin
    (MICCAI r(X, Z); CVPR Crop[.; P]), from per-slice row/column profiles, vectorised.

    Args:
        mask_v: the view's binary mask, (n, H, W) bool; margin: int or (top, bottom, left,
        right), as :func:`rstn_core.crop.bbox`.
    Returns:
        n boxes, `bbox(mask_v[window_indices(j, n)[0]], margin)` for every centre j.
    """
    top, bottom, left, right = _margins(margin)
    n, H, W = mask_v.shape
    idx = window_indices(np.arange(n), n)
    rows = mask_v.any(axis=2)[idx].any(axis=1)                    # (n, H): rows of the window
    cols = mask_v.any(axis=1)[idx].any(axis=1)                    # (n, W)
    has = rows.any(axis=1)
    r_first, r_last = rows.argmax(1), H - 1 - rows[:, ::-1].argmax(1)
    c_first, c_last = cols.argmax(1), W - 1 - cols[:, ::-1].argmax(1)
    return [Box(max(int(r_first[j]) - top, 0), min(int(r_last[j]) + 1 + bottom, H),
                max(int(c_first[j]) - left, 0), min(int(c_last[j]) + 1 + right, W))
            if has[j] else None for j in range(n)]


def saliency_halo(saliency) -> int:
    """Pixels around a box that g(P) reads: layers x k//2 (one k x k conv, or two)."""
    return 0 if saliency is None else int(saliency.layers) * (int(saliency.kernel_size) // 2)


@torch.inference_mode()
def coarse_probability(net, vol01: np.ndarray, view: str, batch_size: int = 8,
                       device: str = "cpu", amp: str = "auto",
                       channels_last: bool = False, cache: ViewCache | None = None
                       ) -> np.ndarray:
    """P_v = f(X; θC): a coarse net's probability for every voxel, from all windows of `view`.

    Args:
        net: a coarse net (or what :func:`prepare_net` returned); vol01: the volume windowed
        to [0, 1]; view: one of rstn_core.views.VIEWS; amp, channels_last: speed options;
        cache: the volume's :class:`ViewCache` (its slices gathered once for all passes).
    Shapes:
        vol01 (X, Y, Z); returns (X, Y, Z) float32.
    """
    net.eval()
    vol_v = _view_slices(vol01, view, cache)
    acc = WindowAccumulator(*vol_v.shape)
    for s in range(0, len(vol_v), batch_size):
        centres = np.arange(s, min(s + batch_size, len(vol_v)))
        x = _input(_stacks(vol_v, centres), device, channels_last)
        with autocast(device, amp):
            p = torch.sigmoid(net(x).float())
        acc.add(centres, p.cpu().numpy())
    return from_view(acc.mean(), view)


def _grow(box: Box, halo: int, H: int, W: int) -> Box:
    return Box(max(box.r0 - halo, 0), min(box.r1 + halo, H),
               max(box.c0 - halo, 0), min(box.c1 + halo, W))


def _gather(v: np.ndarray, idx, box: Box) -> np.ndarray:
    """The window's 3 slices of `v` inside `box`: (3, h, w) float32."""
    return np.asarray(v[idx, box.r0:box.r1, box.c0:box.c1], np.float32)   # one gather


def _crop_inputs(vol_v, w_v, centres, boxes, saliency, halo, zoom, device) -> torch.Tensor:
    """Crop[X ⊙ g(P); box] of each window on a zero canvas (B, 3, h, w): X and P gathered on
    the box (+ the halo g reads) only; g run per window on its own crop, so its zero padding
    at the slice's edges is the full-slice computation's."""
    n, H, W = vol_v.shape
    h = max(min_canvas(zoom), max(b.height for b in boxes))       # as batching.crop_batch
    w = max(min_canvas(zoom), max(b.width for b in boxes))
    canvas = torch.zeros(len(boxes), 3, h, w)
    for k, (j, b) in enumerate(zip(centres, boxes)):
        idx = window_indices(j, n)[0]
        x = torch.from_numpy(_gather(vol_v, idx, b))
        if saliency is not None:
            g_box = _grow(b, halo, H, W)
            p = torch.from_numpy(_gather(w_v, idx, g_box)).to(device)[None]
            g = saliency.weights(p)[0].cpu()                       # g(P; η) on box + halo
            r, c = b.r0 - g_box.r0, b.c0 - g_box.c0
            x = x * g[:, r:r + b.height, c:c + b.width]            # I = X ⊙ g(P), in the box
        canvas[k, :, :b.height, :b.width] = x
    return canvas


@torch.inference_mode()
def fine_probability(net, vol01: np.ndarray, prev: np.ndarray, view: str, margin: int,
                     zoom: int = 1, batch_size: int = 8, device: str = "cpu", saliency=None,
                     weights_from: np.ndarray | None = None,
                     boxes_from: np.ndarray | None = None, amp: str = "auto",
                     channels_last: bool = False, cache: ViewCache | None = None):
    """A fine net's probability for every voxel, inside the boxes of the previous map.

    Per window: box = minimal rectangle of Z = I[prev > 0.5] over its 3 slices + `margin` (MICCAI
    Algorithm 1 / CVPR Crop[.; P]); RSTN weights the image by the saliency g(P) of
    `weights_from` (default `prev`) and crops: Crop[X ⊙ g(P); box] (CVPR Eq. 2-3). Only the
    box is computed: X, P and g on the box plus g's halo (:func:`saliency_halo`), the net on
    the crop, its output added into the box of the window's 3 slices; the same numbers as
    weighting the full slice first (tests/test_inference.py).

    Args:
        net: a fine net; vol01: the volume windowed to [0, 1]; prev: the previous map Z(t-1)
            or P(t-1) (boxes, and RSTN's weights); view: one of VIEWS; margin: pixels added to
            each side of a box; zoom: crops upsampled by this factor; saliency: RSTN's g, or
            None (stepwise); weights_from: the map g reads instead of `prev`; boxes_from: the
            map the boxes come from instead of `prev` (the weak oracle: GT boxes); cache: the
            volume's :class:`ViewCache` (image slices gathered once for every round).
    Shapes:
        vol01, prev (X, Y, Z). Returns ((X, Y, Z) float32 probability, number of windows run).
    """
    net.eval()
    vol_v = _view_slices(vol01, view, cache)
    box_v = to_view(np.asarray(prev if boxes_from is None else boxes_from) > 0.5, view)
    w_v = None
    if saliency is not None:
        saliency.eval()
        w_v = to_view(np.asarray(prev if weights_from is None else weights_from, np.float32),
                      view)
    n, H, W = vol_v.shape
    acc = WindowAccumulator(n, H, W)
    boxes_all = window_boxes(box_v, margin)
    todo = [j for j in range(n) if boxes_all[j] is not None]
    halo = saliency_halo(saliency)
    for s in range(0, len(todo), batch_size):
        centres = todo[s:s + batch_size]
        boxes = [boxes_all[j] for j in centres]
        canvas = _crop_inputs(vol_v, w_v, centres, boxes, saliency, halo, zoom, device)
        x = _input(canvas, device, channels_last)
        with autocast(device, amp):
            p = torch.sigmoid(net(zoom_in(x, zoom)).float())       # f(Crop[I; P]; θF)
        p = zoom_out(p, zoom).cpu().numpy()
        for k, (j, b) in enumerate(zip(centres, boxes)):
            acc.add_box(j, b, p[k, :, :b.height, :b.width])        # 0 outside the box
    return from_view(acc.mean(), view), len(todo)
