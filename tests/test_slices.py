"""engine/slices.py: the slice sets the training loops draw their batches from."""
import numpy as np
from rstn_core.engine.slices import positive_threshold
from tests.helpers import toy_slices as _toy_slices


def test_positive_threshold_uses_given_counts_only():
    counts = np.array([0, 0, 10, 20, 30, 40, 1000])
    assert positive_threshold(counts, 0.0) == 10
    assert positive_threshold(np.zeros(5), 0.02) == 1.0
    s = _toy_slices()
    assert len(s.positive) == 2 * 4 and len(s.all) == 2 * 6


def test_fine_batch_boxes_cover_the_label_with_margins():
    s = _toy_slices()
    x, y, valid, boxes = s.fine_batch(np.random.default_rng(1), 4, 0, 3)
    for b, box in enumerate(boxes):
        assert box.r0 <= 12 and box.r1 >= 22 and box.c0 <= 10 and box.c1 >= 20
        assert box.r0 >= 9 and box.r1 <= 25 and box.c0 >= 7 and box.c1 <= 23
