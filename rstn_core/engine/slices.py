"""Training slices of one view: 3-slice windows, positive-slice selection, random fine crops.

MICCAI training: coarse nets see whole slices where the target is present; fine nets
see each slice cropped to the ground-truth box plus a random margin per side. As the authors'
code, a network maps 3 neighbouring slices to the labels of the same 3 slices.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from rstn_core.crop import Box, bbox, random_margins
from rstn_core.data.errors import DataError
from rstn_core.views import window_indices

__all__ = ["SliceSet", "positive_threshold"]


def positive_threshold(counts: np.ndarray, drop_smallest: float, min_pixels: int = 1) -> float:
    r"""Smallest foreground pixel count a coarse training slice must have.

    .. math:: \tau = \max(m,\ q_{\delta}(\{c_s : c_s > 0\}))

    MICCAI keeps the slices whose target has at least m = 100 pixels (at 512 px, ~25 mm²);
    the authors' code instead drops the smallest δ = 2 % of the positive slices, with the
    quantile computed over all volumes, test fold included (a leak). Here both rules are
    available and `counts` must come from the training fold only.

    Args:
        counts: target pixels per slice c_s (training fold); drop_smallest: δ in [0, 1);
        min_pixels: m (>= 1).
    """
    pos = counts[counts > 0]
    if pos.size == 0:
        return float(max(1, min_pixels))
    return max(float(max(1, min_pixels)), float(np.quantile(pos, drop_smallest)))


@dataclass
class SliceSet:
    """The windows of one view over the training cases.

    Args:
        images: per case, (N, H, W) uint8 windowed slices ([-100, 240] HU -> 0..255), view first.
        labels: per case, (N, H, W) binary target of the same shape.
        drop_smallest: share of the smallest positive slices dropped (authors: 0.02).
        min_pixels: a positive slice needs at least this many target pixels (MICCAI: 100 at
            512 px; scaled to the slice size by the caller).
    """
    images: list
    labels: list
    drop_smallest: float = 0.02
    min_pixels: int = 1

    def __post_init__(self):
        if len(self.images) != len(self.labels) or not self.images:
            raise ValueError(f"SliceSet: need the same, non-zero number of images and labels; "
                             f"got {len(self.images)} and {len(self.labels)}.")
        counts = [lab.reshape(lab.shape[0], -1).sum(1) for lab in self.labels]
        self.threshold = positive_threshold(np.concatenate(counts), self.drop_smallest,
                                            self.min_pixels)
        self.all = np.array([(c, j) for c, lab in enumerate(self.labels)
                             for j in range(lab.shape[0])], dtype=np.int64)
        self.positive = np.array([(c, j) for c, cnt in enumerate(counts)
                                  for j in np.flatnonzero(cnt >= self.threshold)],
                                 dtype=np.int64).reshape(-1, 2)
        if len(self.positive) == 0:
            raise DataError("SliceSet: no slice of the training cases contains the target; "
                             "check the target name and the labels.")

    def window(self, c: int, j: int):
        """(3, H, W) image in [0, 1] and (3, H, W) label of the window centred on slice j."""
        idx = window_indices(j, self.images[c].shape[0])[0]   # slices j-1, j, j+1, clamped
        img = np.asarray(self.images[c][idx], dtype=np.float32) / 255.0
        lab = np.asarray(self.labels[c][idx], dtype=np.float32)
        return img, lab

    def _stack(self, picks):
        imgs, labs = zip(*(self.window(c, j) for c, j in picks))
        H = max(i.shape[1] for i in imgs)
        W = max(i.shape[2] for i in imgs)
        x = np.zeros((len(imgs), 3, H, W), np.float32)
        y = np.zeros_like(x)
        valid = np.zeros((len(imgs), 1, H, W), np.float32)
        for b, (i, l) in enumerate(zip(imgs, labs)):  # cases of other sizes: zero padding
            x[b, :, :i.shape[1], :i.shape[2]] = i
            y[b, :, :i.shape[1], :i.shape[2]] = l
            valid[b, :, :i.shape[1], :i.shape[2]] = 1
        return torch.from_numpy(x), torch.from_numpy(y), torch.from_numpy(valid)

    def coarse_batch(self, rng: np.random.Generator, batch_size: int, loss: str = "dice",
                     positive_fraction: float = 0.5):
        """Whole-slice windows: positive ones only ("dice", the papers), or all windows with
        `positive_fraction` of positive ones on average ("dice_bce")."""
        picks = []
        for _ in range(batch_size):
            if loss == "dice" or rng.random() < positive_fraction:
                picks.append(self.positive[rng.integers(len(self.positive))])
            else:
                picks.append(self.all[rng.integers(len(self.all))])
        return self._stack(picks)

    def fine_batch(self, rng: np.random.Generator, batch_size: int, margin_low: int,
                   margin_high: int):
        """Positive windows with their ground-truth box plus random margins per side.

        Returns (x, y, valid, boxes): full-size tensors and the boxes to crop them with
        (MICCAI: minimal box of the ground truth, margins uniform in {low..high}).
        """
        picks = [self.positive[rng.integers(len(self.positive))] for _ in range(batch_size)]
        x, y, valid = self._stack(picks)
        boxes: list[Box] = []
        for b in range(batch_size):
            margins = random_margins(rng, margin_low, margin_high)
            box = bbox(y[b].numpy() > 0, margins)        # box of Y over the 3 slices + margins
            boxes.append(box)
        return x, y, valid, boxes
