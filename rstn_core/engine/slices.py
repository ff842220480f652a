"""Training slices of one view: 3-slice windows, positive-slice selection, random fine crops.

MICCAI training (papers.md): coarse nets see whole slices where the target is present; fine nets
see each slice cropped to the ground-truth box plus a random margin per side. As the authors'
code, a network maps 3 neighbouring slices to the labels of the same 3 slices.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from rstn_core.crop import Box, bbox, random_margins
from rstn_core.engine.train import iteration_rng
import itertools
from rstn_core.engine.distributed import rank, world_size
from rstn_core.engine.distributed import share
from rstn_core.engine.distributed import check_batch, share

__all__ = ["SliceSet", "positive_threshold", "IterationBatches", "iteration_loader", "BatchSource",
           "batch_source", "iteration_of"]


def positive_threshold(counts: np.ndarray, drop_smallest: float) -> float:
    """Smallest foreground pixel count a training slice must have.

    The authors keep slices with foreground and drop the smallest 2%; their threshold was
    computed over all volumes, test fold included (a leak). Here `counts` must come from the
    training fold only.
    """
    pos = counts[counts > 0]
    if pos.size == 0:
        return 1.0
    return max(1.0, float(np.quantile(pos, drop_smallest)))


def _clamped(j: int, n: int) -> np.ndarray:
    return np.clip(np.array([j - 1, j, j + 1]), 0, n - 1)  # slices j-1, j, j+1, clamped


@dataclass
class SliceSet:
    """The windows of one view over the training cases.

    Args:
        images: per case, (N, H, W) uint8 windowed slices ([-100, 240] HU -> 0..255), view first.
        labels: per case, (N, H, W) binary target of the same shape.
        drop_smallest: share of the smallest positive slices dropped (authors: 0.02).
    """
    images: list
    labels: list
    drop_smallest: float = 0.02

    def __post_init__(self):
        if len(self.images) != len(self.labels) or not self.images:
            raise ValueError(f"SliceSet: need the same, non-zero number of images and labels; "
                             f"got {len(self.images)} and {len(self.labels)}.")
        counts = [lab.reshape(lab.shape[0], -1).sum(1) for lab in self.labels]
        self.threshold = positive_threshold(np.concatenate(counts), self.drop_smallest)
        self.all = np.array([(c, j) for c, lab in enumerate(self.labels)
                             for j in range(lab.shape[0])], dtype=np.int64)
        self.positive = np.array([(c, j) for c, cnt in enumerate(counts)
                                  for j in np.flatnonzero(cnt >= self.threshold)],
                                 dtype=np.int64).reshape(-1, 2)
        if len(self.positive) == 0:
            raise ValueError("SliceSet: no slice of the training cases contains the target; "
                             "check the target name and the labels.")

    def window(self, c: int, j: int):
        """(3, H, W) image in [0, 1] and (3, H, W) label of the window centred on slice j."""
        idx = _clamped(j, self.images[c].shape[0])
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


# -------------------------------------------------------------------------------------------
# Batches of iterations as a torch Dataset: prefetching workers and per-rank shares
# -------------------------------------------------------------------------------------------
def iteration_of(rng: np.random.Generator) -> tuple[int, int] | None:
    """(seed, i) when `rng` is an unused `train.iteration_rng(seed, i)`, else None."""
    seq = getattr(rng.bit_generator, "seed_seq", None)
    entropy = getattr(seq, "entropy", None)
    if not isinstance(entropy, (list, tuple)) or len(entropy) != 2 or seq.spawn_key:
        return None
    seed, i = int(entropy[0]), int(entropy[1])
    if iteration_rng(seed, i).bit_generator.state != rng.bit_generator.state:
        return None                                   # a generator that was already drawn from
    return seed, i


class IterationBatches(torch.utils.data.Dataset):
    """Item i: the training batch of iteration i, `slices.<method>(iteration_rng(seed, i),
    *args)`, as this rank's share (items rank, rank + world, ...), with the generator's
    state after the draw. A function of (seed, i) alone, so any worker can make any item
    and a resumed run gets the same batches.

    Args:
        slices: the SliceSet; method: "coarse_batch" or "fine_batch"; args/kwargs: the rest
        of the call (batch size, loss, margins...), exactly as the training step passes them.
    """

    def __init__(self, slices: SliceSet, method: str, seed: int, args=(), kwargs=None,
                 rank: int = 0, world: int = 1):
        if method not in ("coarse_batch", "fine_batch"):
            raise ValueError(f"IterationBatches: unknown method {method!r}; expected "
                             "'coarse_batch' or 'fine_batch'.")
        self.slices, self.method, self.seed = slices, method, seed
        self.args, self.kwargs = tuple(args), dict(kwargs or {})
        self.rank, self.world = rank, world

    def __getitem__(self, i: int):
        rng = iteration_rng(self.seed, int(i))
        batch = getattr(self.slices, self.method)(rng, *self.args, **self.kwargs)
        return share(batch, self.rank, self.world), rng.bit_generator.state


def _as_is(item):
    return item


def iteration_loader(dataset: IterationBatches, start: int = 0, stop: int | None = None,
                     workers: int = 0, prefetch: int = 2) -> torch.utils.data.DataLoader:
    """Items start, start + 1, ... (to `stop`, or without end) in order, made by `workers`
    processes that keep `prefetch` items each ready ahead of the training loop."""
    order = range(start, stop) if stop is not None else itertools.count(start)
    extra = {"prefetch_factor": prefetch, "persistent_workers": False} if workers else {}
    return torch.utils.data.DataLoader(dataset, batch_size=None, sampler=order,
                                       num_workers=workers, collate_fn=_as_is, **extra)


class BatchSource:
    """What a training step draws batches from: a SliceSet, with the same `coarse_batch` /
    `fine_batch` calls, whose batches can come from DataLoader workers and be cut to this
    rank's share (the union over ranks is the one-process batch).

    With workers, the call for `iteration_rng(seed, i)` returns the item i prefetched by
    :class:`IterationBatches` and leaves the generator as the in-process draw would; a call
    out of order (a resumed run, another net) restarts the loader at that i, and a generator
    that is not a fresh iteration generator is served in-process. Every other attribute is
    the SliceSet's.
    """

    def __init__(self, slices: SliceSet, workers: int = 0, prefetch: int = 2, rank: int = 0,
                 world: int = 1):
        if workers < 0 or prefetch < 1:
            raise ValueError(f"BatchSource: workers must be >= 0 and prefetch >= 1; got "
                             f"{workers} and {prefetch}.")
        self.slices, self.workers, self.prefetch = slices, workers, prefetch
        self.rank, self.world = rank, world
        self._key, self._next, self._iter = None, None, None

    def __getattr__(self, name):
        if name == "slices":
            raise AttributeError(name)
        return getattr(self.slices, name)

    def coarse_batch(self, rng, *args, **kwargs):
        """SliceSet.coarse_batch (this rank's share)."""
        return self._draw("coarse_batch", rng, args, kwargs)

    def fine_batch(self, rng, *args, **kwargs):
        """SliceSet.fine_batch (this rank's share)."""
        return self._draw("fine_batch", rng, args, kwargs)

    def _draw(self, method, rng, args, kwargs):
        size = args[0] if args else kwargs.get("batch_size")
        if self.world > 1 and size is not None and self.world > size:
            check_batch(size, self.world)                  # one-line ValueError
        at = iteration_of(rng) if self.workers else None
        if at is None:
            return share(getattr(self.slices, method)(rng, *args, **kwargs), self.rank,
                         self.world)
        seed, i = at
        key = (method, seed, args, tuple(sorted(kwargs.items())))
        if key != self._key or i != self._next:
            self.close()
            ds = IterationBatches(self.slices, method, seed, args, kwargs, self.rank, self.world)
            self._iter = iter(iteration_loader(ds, i, None, self.workers, self.prefetch))
            self._key = key
        batch, state = next(self._iter)
        rng.bit_generator.state = state
        self._next = i + 1
        return batch

    def close(self):
        """Stop the loader's workers (a new one starts on the next out-of-order call)."""
        self._iter, self._key, self._next = None, None, None   # the iterator's __del__ stops them


def batch_source(slices, workers: int = 0, prefetch: int = 2):
    """`slices` itself for one process without workers (today's path, unchanged); otherwise
    a :class:`BatchSource` with this process's rank and world size."""
    if workers == 0 and world_size() == 1:
        return slices
    return BatchSource(slices, workers, prefetch, rank(), world_size())
