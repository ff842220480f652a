"""engine/loader.py: DataLoader workers that prefetch the training batches must serve exactly the in-process batches."""
import numpy as np
import torch
from rstn_core.engine.loader import (
    BatchSource,
    IterationBatches,
    iteration_loader,
    iteration_of,
)
from rstn_core.engine.train import iteration_rng
from tests.helpers import toy_slices


def _same(a, b):
    assert len(a) == len(b)
    for u, v in zip(a, b):
        if torch.is_tensor(u):
            assert torch.equal(u, v)
        else:
            assert list(u) == list(v)


def test_loader_with_two_workers_gives_the_in_process_batches():
    s = toy_slices()
    calls = [("coarse_batch", (4, "dice_bce", 0.5)), ("fine_batch", (3, 0, 6))]
    for method, args in calls:
        ds = IterationBatches(s, method, 11, args)
        loaded = list(iteration_loader(ds, start=2, stop=8, workers=2, prefetch=2))
        for k, (batch, state) in enumerate(loaded):
            rng = iteration_rng(11, 2 + k)
            _same(batch, getattr(s, method)(rng, *args))
            assert state == rng.bit_generator.state     # the generator ends where it would


def test_batch_source_with_workers_serves_a_training_run_exactly():
    """As a training loop calls it: in order, then a jump (a resumed run), then another
    method; every batch and the generator afterwards as the in-process draw."""
    s = toy_slices()
    src = BatchSource(s, workers=2, prefetch=2)
    try:
        for i in [0, 1, 2, 3, 7, 8, 2]:
            a, b = iteration_rng(5, i), iteration_rng(5, i)
            _same(src.coarse_batch(a, 4, "dice_bce", 0.5), s.coarse_batch(b, 4, "dice_bce", 0.5))
            assert a.bit_generator.state == b.bit_generator.state
        for i in [0, 1]:
            _same(src.fine_batch(iteration_rng(6, i), 2, 0, 6),
                  s.fine_batch(iteration_rng(6, i), 2, 0, 6))
        used = np.random.default_rng([5, 0])
        used.random()                                    # not a fresh iteration generator
        assert iteration_of(used) is None and iteration_of(iteration_rng(5, 9)) == (5, 9)
        want = np.random.default_rng([5, 0])
        want.random()
        _same(src.coarse_batch(used, 4, "dice_bce", 0.5), s.coarse_batch(want, 4, "dice_bce", 0.5))
        assert src.images is s.images                   # everything else is the SliceSet's
    finally:
        src.close()
