"""Property tests (hypothesis) of the papers' blocks: boxes, crop/paste, fusion, DSC and the
stop rules, on random masks, margins and d(t) sequences, empty inputs and T = 0 included."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from rstn_core.algorithms.rounds import first_stop
from rstn_core.crop import Box, bbox, crop, paste
from rstn_core.experiments.evaluate import read_off
from rstn_core.fusion import keep_large_components, majority_vote, mean_probability
from rstn_core.metrics import dsc

FAST = settings(max_examples=60, deadline=None)
shapes2d = st.tuples(st.integers(1, 12), st.integers(1, 12))
masks2d = shapes2d.flatmap(lambda s: arrays(bool, s))
margins = st.integers(0, 6) | st.tuples(*[st.integers(0, 6)] * 4)


# -- boxes -------------------------------------------------------------------------------------
@FAST
@given(masks2d, margins)
def test_bbox_covers_the_mask_and_stays_inside(mask, margin):
    box = bbox(mask, margin)
    if not mask.any():
        assert box is None                                  # empty mask: no box
        return
    h, w = mask.shape
    assert 0 <= box.r0 < box.r1 <= h and 0 <= box.c0 < box.c1 <= w
    inside = np.zeros_like(mask)
    inside[box.slices] = True
    assert not (mask & ~inside).any()                       # every foreground pixel inside
    if margin == 0:                                         # tight: every edge touches the mask
        assert mask[box.r0].any() and mask[box.r1 - 1].any()
        assert mask[:, box.c0].any() and mask[:, box.c1 - 1].any()


@FAST
@given(masks2d, st.integers(0, 5), st.integers(0, 5))
def test_bbox_grows_with_the_margin(mask, m1, m2):
    small, large = bbox(mask, min(m1, m2)), bbox(mask, max(m1, m2))
    if small is None:
        assert large is None
        return
    assert large.r0 <= small.r0 and large.c0 <= small.c0
    assert large.r1 >= small.r1 and large.c1 >= small.c1


@FAST
@given(masks2d)
def test_bbox_of_a_window_is_the_union_of_its_slices(mask):
    stack = np.stack([mask, np.zeros_like(mask), mask.T[: mask.shape[0], : mask.shape[1]]
                      if mask.shape[0] == mask.shape[1] else mask])
    union = stack.any(0)
    assert bbox(stack) == bbox(union)


# -- crop / paste ------------------------------------------------------------------------------
boxes_in = shapes2d.flatmap(lambda s: st.tuples(
    st.just(s), st.integers(0, s[0] - 1), st.integers(0, s[1] - 1)).flatmap(
    lambda t: st.tuples(st.just(t[0]), st.builds(
        Box, st.just(t[1]), st.integers(t[1] + 1, t[0][0]),
        st.just(t[2]), st.integers(t[2] + 1, t[0][1])))))


@FAST
@given(boxes_in, st.integers(0, 3), st.floats(-2, 2))
def test_paste_then_crop_is_identity_and_fills_outside(shape_box, seed, fill):
    shape, box = shape_box
    y = np.random.default_rng(seed).random((2, box.height, box.width)).astype(np.float32)
    full = paste(y, box, shape, fill=np.float32(fill))
    assert full.shape == (2,) + tuple(shape)
    np.testing.assert_array_equal(crop(full, box), y)
    outside = np.ones(shape, bool)
    outside[box.slices] = False
    assert np.all(full[:, outside] == np.float32(fill))


@FAST
@given(boxes_in, st.integers(0, 3))
def test_crop_then_paste_keeps_the_box_only(shape_box, seed):
    shape, box = shape_box
    x = np.random.default_rng(seed).random(shape)
    back = paste(crop(x, box), box, shape)
    assert np.array_equal(back[box.slices], x[box.slices]) and back.sum() <= x.sum() + 1e-9


@FAST
@given(shapes2d)
def test_a_box_outside_the_image_is_refused(shape):
    h, w = shape
    with pytest.raises(ValueError, match="inside the image"):
        crop(np.zeros(shape), Box(0, h + 1, 0, w))
    with pytest.raises(ValueError, match="non-empty"):
        paste(np.zeros((0, w)), Box(0, 0, 0, w), shape)


# -- fusion ------------------------------------------------------------------------------------
stacks = st.tuples(st.integers(1, 5), st.integers(1, 6), st.integers(1, 6)).flatmap(
    lambda s: arrays(bool, s))


@FAST
@given(stacks)
def test_majority_vote_is_more_than_half(stack):
    k = stack.shape[0]
    out = majority_vote(stack)
    np.testing.assert_array_equal(out, stack.sum(0) * 2 > k)
    assert not majority_vote(np.zeros_like(stack)).any()       # no votes: nothing
    assert majority_vote(np.ones_like(stack)).all()            # every vote: everything
    np.testing.assert_array_equal(majority_vote(stack[::-1]), out)   # order of the views


@FAST
@given(st.tuples(st.integers(1, 4), st.integers(1, 5), st.integers(1, 5)).flatmap(
    lambda s: arrays(np.float32, s, elements=st.floats(0, 1, width=32))))
def test_mean_probability_is_a_probability_between_the_views(probs):
    p = mean_probability(probs)
    assert p.dtype == np.float32 and p.shape == probs.shape[1:]
    assert np.all(p >= probs.min(0) - 1e-6) and np.all(p <= probs.max(0) + 1e-6)


@FAST
@given(st.tuples(st.integers(1, 8), st.integers(1, 8)).flatmap(lambda s: arrays(bool, s)),
       st.floats(0, 1))
def test_keep_large_components_keeps_a_subset_with_the_largest(mask, ratio):
    out = keep_large_components(mask, ratio)
    assert out.shape == mask.shape and not (out & ~mask).any()
    assert out.any() == mask.any()                              # empty stays empty
    assert np.array_equal(keep_large_components(mask, 0.0), mask)


# -- DSC ---------------------------------------------------------------------------------------
pairs = st.tuples(st.integers(1, 6), st.integers(1, 6), st.integers(1, 4)).flatmap(
    lambda s: st.tuples(arrays(bool, s), arrays(bool, s)))


@FAST
@given(pairs)
def test_dsc_is_symmetric_bounded_and_one_on_itself(ab):
    a, b = ab
    v = dsc(a, b)
    assert 0.0 <= v <= 1.0 and v == dsc(b, a)
    assert dsc(a, a) == 1.0                                     # empty vs empty is 1 too
    if a.any() != b.any():
        assert v == 0.0 if not (a & b).any() else v > 0
    n = a.sum() + b.sum()
    if n:
        assert v == pytest.approx(2 * (a & b).sum() / n)


def test_dsc_of_empty_inputs():
    e = np.zeros((0,), bool)
    assert dsc(e, e) == 1.0
    assert dsc(np.zeros((3, 3), bool), np.ones((3, 3), bool)) == 0.0


# -- stop rules --------------------------------------------------------------------------------
ds = st.lists(st.floats(0, 1), max_size=12)
thresholds = st.none() | st.floats(0.01, 1.0)


@FAST
@given(ds, thresholds)
def test_first_stop_is_the_first_round_above_the_threshold(d, thr):
    T = len(d)
    t = first_stop(d, thr, T)
    assert 0 <= t <= T
    if thr is None or not any(x > thr for x in d):
        assert t == T                                           # never above: all T rounds
    else:
        assert d[t - 1] > thr and all(x <= thr for x in d[: t - 1])


@FAST
@given(thresholds, st.integers(0, 10))
def test_first_stop_without_rounds_is_T(thr, T):
    assert first_stop([], thr, T) == T                          # empty d(t); T = 0 gives 0
    assert first_stop([], thr, 0) == 0


@FAST
@given(st.integers(1, 10).flatmap(lambda T: st.tuples(
    st.lists(st.floats(0, 1), min_size=T, max_size=T),
    st.lists(st.floats(0, 1), min_size=T, max_size=T))), st.booleans())
def test_read_off_agrees_with_first_stop(after_d, strict):
    after, d = after_d
    out = read_off(after, d, strict=strict)
    for key in ("0.90", "0.95", "0.99"):
        R = float(key)
        t = out[key]["iterations"]
        if strict:
            assert t == first_stop(d, R, len(d))
        assert 1 <= t <= len(d) and out[key]["dsc"] == after[t - 1]
    assert out["best"]["dsc"] == max(after)
