"""Tests of rstn_core.views: windowing, view axes, 3-slice windows and their inverse."""

import numpy as np
import pytest
import torch

from rstn_core.views import (VIEW_AXIS, VIEWS, average_windows, from_view, stack3, to_view,
                             view_stacks, window)


def test_view_names_and_axes():
    assert VIEWS == ("coronal", "sagittal", "axial")
    assert VIEW_AXIS == {"coronal": 0, "sagittal": 1, "axial": 2}


@pytest.mark.parametrize("lo, hi, hu, expected", [
    (-100, 240, [-1000, -100, 70, 240, 3000], [0, 0, 0.5, 1, 1]),   # (x + 100) / 340
    (-100, 240, [-15], [0.25]),
    (0, 10, [-5, 0, 2.5, 10, 11], [0, 0, 0.25, 1, 1]),
])
def test_window_endpoints(lo, hi, hu, expected):
    out = window(np.array(hu), lo, hi)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, expected, atol=1e-6)
    out_t = window(torch.tensor(hu), lo, hi)
    assert out_t.dtype == torch.float32
    np.testing.assert_allclose(out_t.numpy(), expected, atol=1e-6)


@pytest.mark.parametrize("lo, hi", [(240, -100), (10, 10)])
def test_window_bad_range(lo, hi):
    with pytest.raises(ValueError, match="hi > lo"):
        window(np.zeros(3), lo, hi)


@pytest.mark.parametrize("view, shape", [("coronal", (2, 3, 4)), ("sagittal", (3, 2, 4)),
                                         ("axial", (4, 2, 3))])
def test_to_view_axis_first_and_back(view, shape):
    v = np.random.default_rng(0).random((2, 3, 4))
    s = to_view(v, view)
    assert s.shape == shape
    k = 1
    expected = {"coronal": v[k], "sagittal": v[:, k], "axial": v[:, :, k]}[view]
    assert (s[k] == expected).all()
    assert (from_view(s, view) == v).all()


def test_unknown_view_raises():
    with pytest.raises(ValueError, match="axial"):
        to_view(np.zeros((2, 2, 2)), "transverse")


def test_to_view_needs_3d():
    with pytest.raises(ValueError, match="3-D"):
        to_view(np.zeros((2, 2)), "axial")


def labelled_volume():
    """6 x 5 x 4 volume whose value encodes the position: 100 x + 10 y + z."""
    x, y, z = np.meshgrid(np.arange(6), np.arange(5), np.arange(4), indexing="ij")
    return 100 * x + 10 * y + z


@pytest.mark.parametrize("view, j, expected_slices", [
    ("axial", 0, [0, 0, 1]),       # clamped at the start
    ("axial", 2, [1, 2, 3]),
    ("axial", 3, [2, 3, 3]),       # clamped at the end
    ("coronal", 0, [0, 0, 1]),
    ("coronal", 5, [4, 5, 5]),
    ("sagittal", 4, [3, 4, 4]),
    ("sagittal", 1, [0, 1, 2]),
])
def test_stack3_clamps_at_both_ends(view, j, expected_slices):
    v = labelled_volume()
    s = stack3(v, view, j)
    axis = VIEW_AXIS[view]
    assert s.shape == (3,) + tuple(np.delete(v.shape, axis))
    for c, k in enumerate(expected_slices):
        assert (s[c] == np.take(v, k, axis=axis)).all()


@pytest.mark.parametrize("j", [-1, 4, 1.0])
def test_stack3_bad_index(j):
    with pytest.raises(ValueError, match="j must be"):
        stack3(labelled_volume(), "axial", j)


@pytest.mark.parametrize("view", VIEWS)
def test_view_stacks_equals_stack3_per_slice(view):
    v = np.random.default_rng(1).random((6, 5, 4)).astype(np.float32)
    stacks = view_stacks(v, view)
    n = v.shape[VIEW_AXIS[view]]
    assert stacks.shape[:2] == (n, 3) and stacks.dtype == np.float32
    for j in range(n):
        assert (stacks[j] == stack3(v, view, j)).all()
    subset = view_stacks(v, view, indices=[n - 1, 0])
    assert (subset[0] == stack3(v, view, n - 1)).all() and (subset[1] == stack3(v, view, 0)).all()


@pytest.mark.parametrize("indices", [[0, 4], [-1], [[0, 1]]])
def test_view_stacks_bad_indices(indices):
    with pytest.raises(ValueError, match="indices"):
        view_stacks(np.zeros((3, 3, 4)), "axial", indices)


@pytest.mark.parametrize("view", VIEWS)
def test_average_windows_inverts_view_stacks(view):
    v = np.random.default_rng(2).random((6, 5, 4)).astype(np.float32)
    back = average_windows(view_stacks(v, view))
    assert back.dtype == np.float32
    np.testing.assert_allclose(back, to_view(v, view), rtol=1e-6)


def test_average_windows_constant_prediction_round_trip():
    q = np.full((7, 3, 4, 5), 0.8, np.float32)
    np.testing.assert_allclose(average_windows(q), 0.8, rtol=1e-6)


def test_average_windows_hand_example_at_the_edges():
    # 3 slices, windows centred on 0, 1, 2; channel c of window k holds 10 k + c (1x1 images)
    q = (10 * np.arange(3)[:, None] + np.arange(3)[None, :]).astype(np.float32)[:, :, None, None]
    out = average_windows(q)[:, 0, 0]
    # slice 0 <- window 0 channels 0 and 1 (clamped [0, 0, 1]) and window 1 channel 0
    # slice 1 <- window 0 ch 2, window 1 ch 1, window 2 ch 0
    # slice 2 <- window 1 ch 2, window 2 channels 1 and 2 (clamped [1, 2, 2])
    np.testing.assert_allclose(out, [(0 + 1 + 10) / 3, (2 + 11 + 20) / 3, (12 + 21 + 22) / 3], rtol=1e-6)


def test_average_windows_partial_indices_leave_zeros():
    q = np.array([1.0, 3.0, 8.0], np.float32)[None, :, None, None]  # one window, centre 0
    out = average_windows(q, indices=[0], n_slices=4)[:, 0, 0]
    np.testing.assert_allclose(out, [2.0, 8.0, 0.0, 0.0])  # slice 0: mean(1, 3); 2 and 3 uncovered
    out = average_windows(q, indices=[3], n_slices=4)[:, 0, 0]
    np.testing.assert_allclose(out, [0.0, 0.0, 1.0, 5.5])  # window [2, 3, 3]


def test_average_windows_accepts_torch():
    q = torch.full((4, 3, 2, 2), 0.25)
    np.testing.assert_allclose(average_windows(q), 0.25)


@pytest.mark.parametrize("kwargs, match", [
    ({"window_preds": np.zeros((4, 2, 3, 3))}, r"\(N, 3, H, W\)"),
    ({"window_preds": np.zeros((4, 3, 3))}, r"\(N, 3, H, W\)"),
    ({"window_preds": np.zeros((2, 3, 3, 3)), "indices": [0, 1]}, "n_slices"),
    ({"window_preds": np.zeros((2, 3, 3, 3)), "indices": [0, 5], "n_slices": 4}, "indices"),
    ({"window_preds": np.zeros((2, 3, 3, 3)), "indices": [0], "n_slices": 4}, "one centre"),
    ({"window_preds": np.zeros((5, 3, 3, 3)), "n_slices": 4}, "n_slices"),
])
def test_average_windows_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        average_windows(**kwargs)
