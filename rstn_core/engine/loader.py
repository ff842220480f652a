"""Where a training step's batches come from: in the loop, from DataLoader workers that
prefetch them, and cut to this rank's share under torchrun.

The batch of iteration i is a function of (seed, i) alone (`train.iteration_rng`), so any
worker can make any item, a resumed run gets the same batches, and the union of the ranks'
shares is the one-process batch.
"""
from __future__ import annotations

import itertools

import numpy as np
import torch

from rstn_core.engine.distributed import check_batch, rank, share, world_size
from rstn_core.engine.slices import SliceSet
from rstn_core.engine.train import iteration_rng

__all__ = ["IterationBatches", "iteration_loader", "BatchSource", "batch_source", "iteration_of"]


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
