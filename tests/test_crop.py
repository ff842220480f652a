"""Tests of rstn_core.crop: boxes on hand-drawn masks, crop/paste, random margins."""

import random

import numpy as np
import pytest
import torch

from rstn_core.crop import Box, bbox, crop, paste, random_margins

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
