"""The result figures: per-slice DSC, the automatically found context case, the panels."""
import numpy as np
import pytest

from rstn_core.plots.figures import context_figure, find_context_case, saliency_figure, slice_dsc
from rstn_core.metrics import dsc


def _cube(shape, lo, hi):
    m = np.zeros(shape, bool)
    m[tuple(slice(a, b) for a, b in zip(lo, hi))] = True
    return m


def test_slice_dsc_equals_the_volume_dsc_of_each_slice():
    rng = np.random.default_rng(0)
    label, mask = rng.random((6, 7, 5)) > 0.6, rng.random((6, 7, 5)) > 0.5
    mask[..., 3] = False
    label[..., 3] = False                                  # both empty: NaN
    for axis in range(3):
        got = slice_dsc(label, mask, axis)
        for k in range(label.shape[axis]):
            a, b = np.take(label, k, axis), np.take(mask, k, axis)
            want = np.nan if not (a.any() or b.any()) else dsc(b, a)
            np.testing.assert_allclose(got[k], want, equal_nan=True)


def test_find_context_case_finds_the_slice_that_only_rstn_gets_right():
    label = _cube((20, 20, 10), (5, 5, 2), (12, 12, 8))
    rstn = label.copy()
    step_a = label.copy()
    step_a[..., 6] = False                                 # case a: stepwise loses slice 6
    step_b = label.copy()
    step_b[5:8, 5:12, 3] = False                           # case b: a partial loss on slice 3
    found = find_context_case([{"id": "b", "label": label, "stepwise": step_b, "rstn": rstn},
                               {"id": "a", "label": label, "stepwise": step_a, "rstn": rstn}])
    assert (found["id"], found["index"]) == ("a", 6)
    assert found["gain"] == pytest.approx(1.0)
    assert found["dsc_stepwise"] == 0.0 and found["dsc_rstn"] == 1.0
    assert found["case_dsc_stepwise"] == pytest.approx(dsc(step_a, label))
    # slices with a small organ are skipped: nothing left -> a one-line error
    with pytest.raises(ValueError, match="min_area"):
        find_context_case([{"id": "a", "label": label, "stepwise": step_a, "rstn": rstn}],
                          min_area=1000)


def test_context_figure_draws_three_panels_and_the_two_boxes():
    label = _cube((30, 30, 5), (10, 10, 1), (16, 18, 4))
    image = np.where(label, 100.0, 0.0)
    fig = context_figure(image, label, label, label, 2, "axial", margins=(3, 2))
    axes = fig.axes
    assert len(axes) == 3
    boxes = [[p for p in ax.patches if p.get_gid() == "box"] for ax in axes]
    assert [len(b) for b in boxes] == [0, 1, 1]
    # the stepwise box is the mask's box grown by 3 px, RSTN's by 2 px (8 x 6 organ)
    sizes = sorted((b[0].get_width(), b[0].get_height()) for b in boxes[1:])
    assert sizes == [(10, 12), (12, 14)]


def test_saliency_figure_checks_shapes():
    with pytest.raises(ValueError, match=r"\(3, H, W\)"):
        saliency_figure(np.ones((2, 4, 4)), np.zeros((2, 4, 4), bool))
    fig = saliency_figure(np.ones((3, 8, 8)), np.eye(8, dtype=bool)[None].repeat(3, 0))
    assert len(fig.axes) == 4                              # three channels and a colour bar
