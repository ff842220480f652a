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


def test_miccai_min_pixels_rule_and_the_authors_quantile():
    from rstn_core.engine.slices import positive_threshold
    counts = np.array([0, 0, 5, 50, 120, 300, 400])
    assert positive_threshold(counts, 0.0, min_pixels=100) == 100.0     # MICCAI: >= 100 px
    assert positive_threshold(counts, 0.0) == 5.0                       # every positive slice
    assert positive_threshold(counts, 0.5, min_pixels=1) == 120.0       # the median of 5
    assert positive_threshold(np.zeros(3), 0.02, min_pixels=100) == 100.0
    from rstn_core.config import get_config
    paper = get_config("paper").train
    assert (paper.min_target_px, paper.drop_smallest) == (100, 0.0)
