"""Tests of rstn_core.crop: boxes on hand-drawn masks, crop/paste, random margins."""

import random

import numpy as np
import pytest
import torch

from rstn_core.crop import Box, bbox, crop, paste, random_margins
from hypothesis import given
from hypothesis import strategies as st
from tests.helpers import FAST, margins, masks2d, shapes2d

H, W = 6, 8


def mask_with(*pixels, shape=(H, W)):
    m = np.zeros(shape, dtype=bool)
    for p in pixels:
        m[p] = True
    return m


# (mask, margin, expected box), worked out by hand on a 6 x 8 image; boxes are half-open
BBOX_CASES = [
    (mask_with((2, 3)), 0, Box(2, 3, 3, 4)),                          # one pixel
    (mask_with((2, 3)), 1, Box(1, 4, 2, 5)),                          # one pixel, 1-px frame
    (mask_with((0, 0)), 2, Box(0, 3, 0, 3)),                          # clipped at top-left
    (mask_with((5, 7)), 2, Box(3, 6, 5, 8)),                          # clipped at bottom-right
    (mask_with((1, 2), (4, 2), (4, 6)), 0, Box(1, 5, 2, 7)),          # L shape
    (mask_with((2, 3), (3, 4)), (1, 0, 2, 1), Box(1, 4, 1, 6)),       # asymmetric (t, b, l, r)
    (mask_with((2, 3), (3, 4)), (0, 5, 0, 9), Box(2, 6, 3, 8)),       # asymmetric, clipped
    (np.ones((H, W), bool), 30, Box(0, H, 0, W)),                     # whole image
    (mask_with((0, 1), (5, 1)), 0, Box(0, 6, 1, 2)),                  # touching both borders
]

CONVERTERS = {
    "numpy bool": lambda m: m,
    "numpy uint8": lambda m: m.astype(np.uint8),
    "torch bool": lambda m: torch.from_numpy(m),
    "torch float": lambda m: torch.from_numpy(m.astype(np.float32)),
}


@pytest.mark.parametrize("kind", list(CONVERTERS))
@pytest.mark.parametrize("mask, margin, expected", BBOX_CASES)
def test_bbox_hand_drawn(mask, margin, expected, kind):
    box = bbox(CONVERTERS[kind](mask), margin)
    assert box == expected
    assert isinstance(box, Box)
    assert all(type(v) is int for v in box)  # Python ints, also from torch


@pytest.mark.parametrize("kind", list(CONVERTERS))
def test_bbox_empty_is_none(kind):
    assert bbox(CONVERTERS[kind](np.zeros((H, W), bool)), 5) is None
    assert bbox(CONVERTERS[kind](np.zeros((3, H, W), bool))) is None


@pytest.mark.parametrize("kind", list(CONVERTERS))
def test_bbox_union_over_channels(kind):
    m = np.zeros((3, H, W), bool)
    m[0, 1, 1] = True
    m[2, 4, 6] = True  # channel 1 empty
    assert bbox(CONVERTERS[kind](m)) == Box(1, 5, 1, 7)
    assert bbox(CONVERTERS[kind](m), (1, 1, 0, 0)) == Box(0, 6, 1, 7)


@pytest.mark.parametrize("margin", [-1, (1, 2, 3), (1, 2, 3, -1), 1.5, (1, 2, 3, 4.0), True, "2"])
def test_bbox_bad_margin_raises(margin):
    with pytest.raises(ValueError, match="margin"):
        bbox(mask_with((2, 3)), margin)


@pytest.mark.parametrize("mask", [np.zeros(5, bool), np.zeros((1, 2, 3, 4), bool)])
def test_bbox_bad_ndim_raises(mask):
    with pytest.raises(ValueError, match=r"\(H, W\)"):
        bbox(mask)


@pytest.mark.parametrize("mask", [np.full((H, W), 0.3), torch.full((H, W), 0.7)])
def test_bbox_rejects_probabilities(mask):
    with pytest.raises(ValueError, match="threshold"):
        bbox(mask)


def test_box_properties():
    box = Box(2, 5, 1, 7)
    assert (box.height, box.width) == (3, 6)
    assert box.slices == (slice(2, 5), slice(1, 7))


def test_crop_picks_the_box():
    x = np.arange(H * W).reshape(H, W)  # value = 8 * row + column
    c = crop(x, Box(1, 4, 2, 7))
    assert c.shape == (3, 5)
    assert c[0, 0] == 8 * 1 + 2 and c[-1, -1] == 8 * 3 + 6


@pytest.mark.parametrize("to", [np.asarray, torch.as_tensor])
def test_crop_then_paste_is_identity_inside_and_fill_outside(to):
    x = to(np.arange(2 * 3 * H * W, dtype=np.float32).reshape(2, 3, H, W))  # leading axes kept
    box = Box(1, 4, 2, 7)
    out = paste(crop(x, box), box, (H, W), fill=-1)
    assert tuple(out.shape) == (2, 3, H, W)
    out, x = np.asarray(out), np.asarray(x)
    inside = np.zeros((H, W), bool)
    inside[1:4, 2:7] = True
    assert (out[..., inside] == x[..., inside]).all()
    assert (out[..., ~inside] == -1).all() and (~inside).sum() == 48 - 15


@pytest.mark.parametrize("to", [np.asarray, torch.as_tensor])
def test_paste_bool_keeps_dtype(to):
    y = to(np.ones((2, 2), bool))
    out = paste(y, Box(0, 2, 1, 3), (3, 4))
    assert np.asarray(out).dtype == bool
    assert np.asarray(out).sum() == 4 and bool(out[0, 1]) and not bool(out[2, 1])


def test_paste_gradient_flows_to_the_crop():
    y = torch.rand(1, 1, 3, 5, requires_grad=True)
    box = Box(1, 4, 2, 7)
    upstream = torch.arange(H * W, dtype=torch.float32).reshape(1, 1, H, W)
    (paste(y, box, (H, W)) * upstream).sum().backward()
    assert torch.equal(y.grad, upstream[..., 1:4, 2:7])  # d/dy of Σ w·paste(y) = w inside the box


@pytest.mark.parametrize("box, shape", [(Box(0, 3, 0, 6), (H, W)), (Box(4, 7, 0, 5), (H, W)),
                                        (Box(2, 2, 0, 5), (H, W))])
def test_paste_bad_box_raises(box, shape):
    with pytest.raises(ValueError):
        paste(np.zeros((3, 5)), box, shape)


@pytest.mark.parametrize("box", [Box(0, 7, 0, 3), Box(-1, 2, 0, 3), Box(3, 3, 0, 3)])
def test_crop_box_outside_raises(box):
    with pytest.raises(ValueError, match="inside the image"):
        crop(np.zeros((H, W)), box)


def test_bbox_crop_paste_round_trip_on_a_mask():
    m = mask_with((1, 2), (4, 5))
    box = bbox(m, 1)
    assert (paste(crop(m, box), box, m.shape) == m).all()  # nothing of the mask is lost


@pytest.mark.parametrize("make_rng", [lambda: np.random.default_rng(0), lambda: np.random.RandomState(0),
                                      lambda: random.Random(0)])
def test_random_margins_inclusive_range(make_rng):
    rng = make_rng()
    draws = [random_margins(rng, 2, 4) for _ in range(200)]
    assert all(len(d) == 4 and all(type(v) is int for v in d) for d in draws)
    assert {v for d in draws for v in d} == {2, 3, 4}  # both ends reached, nothing outside


def test_random_margins_reproducible_and_fixed_when_low_equals_high():
    assert random_margins(np.random.default_rng(7), 0, 60) == random_margins(np.random.default_rng(7), 0, 60)
    assert random_margins(np.random.default_rng(0), 20, 20) == (20, 20, 20, 20)


@pytest.mark.parametrize("low, high, error", [(5, 4, ValueError), (-1, 3, ValueError), (0.5, 3, TypeError)])
def test_random_margins_bad_bounds(low, high, error):
    with pytest.raises(error):
        random_margins(np.random.default_rng(0), low, high)


def test_random_margins_bad_rng():
    with pytest.raises(TypeError, match="default_rng"):
        random_margins(0, 0, 3)


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
