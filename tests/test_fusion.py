"""Tests of rstn_core.fusion: majority vote, mean probability, large components."""

import numpy as np
import pytest
import torch

from rstn_core.fusion import keep_large_components, majority_vote, mean_probability
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from tests.helpers import FAST

# (masks, expected): a voxel is on when more than half of the masks say so
VOTE_CASES = [
    ([[1, 1, 0, 0], [1, 0, 1, 0], [0, 1, 1, 0]], [1, 1, 1, 0]),              # 3 views: 2 of 3
    ([[1, 1, 0, 0], [1, 0, 0, 0], [0, 0, 1, 0]], [1, 0, 0, 0]),
    ([[1, 1, 0, 0], [1, 0, 1, 0]], [1, 0, 0, 0]),                            # 2 masks: both
    ([[1, 1, 1, 0], [1, 1, 0, 1], [1, 0, 1, 1], [0, 1, 1, 1]], [1, 1, 1, 1]),  # 4 masks: >= 3
    ([[1, 1, 0, 0], [1, 1, 0, 0], [1, 0, 1, 0], [0, 0, 1, 1]], [1, 0, 0, 0]),  # 2 of 4 is not enough
    ([[0, 1, 0, 1]], [0, 1, 0, 1]),                                          # one mask
]


@pytest.mark.parametrize("form", ["list numpy", "list torch", "stacked numpy", "bool"])
@pytest.mark.parametrize("masks, expected", VOTE_CASES)
def test_majority_vote(masks, expected, form):
    arr = np.array(masks)
    if form == "list numpy":
        inp = list(arr)
    elif form == "list torch":
        inp = [torch.tensor(m) for m in masks]
    elif form == "stacked numpy":
        inp = arr
    else:
        inp = list(arr.astype(bool))
    out = majority_vote(inp)
    assert out.dtype == bool
    assert out.tolist() == [bool(v) for v in expected]


def test_majority_vote_3d_shape_kept():
    a = np.zeros((2, 3, 4), bool)
    b = a.copy()
    a[1, 2, 3] = b[1, 2, 3] = True
    b[0, 0, 0] = True
    out = majority_vote([a, b, np.zeros_like(a)])
    assert out.shape == (2, 3, 4) and out.sum() == 1 and out[1, 2, 3]


@pytest.mark.parametrize("fn", [majority_vote, mean_probability])
def test_fusion_shape_mismatch_raises(fn):
    with pytest.raises(ValueError, match="same shape"):
        fn([np.zeros((2, 2)), np.zeros((2, 3))])


@pytest.mark.parametrize("fn", [majority_vote, mean_probability])
def test_fusion_no_maps_raises(fn):
    with pytest.raises(ValueError, match="at least one"):
        fn([])


def test_majority_vote_rejects_probabilities():
    with pytest.raises(ValueError, match="mean_probability"):
        majority_vote([np.array([0.2, 0.8])] * 3)


def test_mean_probability():
    probs = [np.array([0.2, 0.4]), np.array([0.4, 1.0]), np.array([0.0, 0.1])]
    out = mean_probability(probs)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, [0.2, 0.5], rtol=1e-6)
    out_t = mean_probability([torch.tensor(p) for p in probs])
    np.testing.assert_allclose(out_t, [0.2, 0.5], rtol=1e-6)


def _volume_with_diagonal_chain():
    """7x7x7: a straight 4-voxel rod (one 6-connected component) and a 6-voxel diagonal chain
    whose voxels touch only at corners (six components of 1 voxel under 6-connectivity, one of
    6 voxels under 26-connectivity)."""
    v = np.zeros((7, 7, 7), bool)
    v[0, 0, 0:4] = True  # rod: 4 voxels
    for i in range(6):
        v[i + 1, i + 1, 6 - i] = True  # diagonal chain, corner-to-corner
    return v


def test_keep_large_components_uses_6_connectivity():
    v = _volume_with_diagonal_chain()
    out = keep_large_components(v, ratio=0.5)
    expected = np.zeros_like(v)
    expected[0, 0, 0:4] = True  # largest is the rod (4); each diagonal voxel (1) < 0.5 * 4
    assert out.dtype == bool
    assert (out == expected).all()


def test_keep_large_components_hand_sizes():
    v = np.zeros((5, 6, 6), bool)
    v[0:2, 0:2, 0:2] = True  # A: 8 voxels
    v[4, 0:4, 5] = True      # B: 4 voxels, exactly 0.5 * 8 -> kept (>=)
    v[4, 5, 0:3] = True      # C: 3 voxels -> dropped
    v[2, 4, 4] = True        # D: 1 voxel -> dropped
    out = keep_large_components(v, ratio=0.5)
    assert out.sum() == 12 and out[0:2, 0:2, 0:2].all() and out[4, 0:4, 5].all()
    assert keep_large_components(v, ratio=0.0).sum() == 16       # keeps everything
    assert keep_large_components(v, ratio=1.0).sum() == 8        # only the largest
    assert keep_large_components(v, ratio=0.3).sum() == 15       # >= 2.4: A, B, C


def test_keep_large_components_2d_is_4_connected():
    m = np.array([[1, 1, 0, 0],
                  [1, 1, 0, 0],
                  [0, 0, 1, 0],   # touches the 2x2 block only diagonally
                  [0, 0, 0, 1]], bool)
    out = keep_large_components(m, ratio=0.5)
    assert out.sum() == 4 and out[:2, :2].all()


def test_keep_large_components_ties_are_all_kept():
    m = np.zeros((3, 5), bool)
    m[0, 0:2] = m[2, 3:5] = True
    assert keep_large_components(m, ratio=1.0).sum() == 4


@pytest.mark.parametrize("shape", [(4, 4), (3, 4, 5)])
def test_keep_large_components_empty(shape):
    out = keep_large_components(np.zeros(shape, np.uint8))
    assert out.dtype == bool and out.shape == shape and not out.any()


@pytest.mark.parametrize("ratio", [-0.1, 1.5])
def test_keep_large_components_bad_ratio(ratio):
    with pytest.raises(ValueError, match="ratio"):
        keep_large_components(np.ones((2, 2), bool), ratio)


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
