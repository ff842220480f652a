"""Tests of rstn_core.plots.viz: panel counts, contours only where given, orientation, viewer."""
import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
from matplotlib.figure import Figure

from tests.helpers import PLOT_SHAPE as SHAPE, plot_case as _case
from rstn_core.plots import viz


def _gids(ax, gid):
    return [c for c in ax.collections if c.get_gid() == gid]


def test_three_views_has_three_panels_with_both_contours():
    vol, lab, pred = _case()
    fig = viz.three_views(vol, lab, pred, spacing=(0.8, 0.8, 2.5))
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 3
    titles = [ax.get_title() for ax in fig.axes]
    assert [t.split(" ")[0] for t in titles] == ["coronal", "sagittal", "axial"]
    for ax in fig.axes:  # the default point is the label's centroid: every panel hits it
        assert len(_gids(ax, "label")) == 1
        assert len(_gids(ax, "pred")) == 1


@pytest.mark.parametrize("label_given, pred_given", [(False, False), (True, False), (False, True)])
def test_contours_only_where_given(label_given, pred_given):
    vol, lab, pred = _case()
    fig = viz.three_views(vol, lab if label_given else None, pred if pred_given else None)
    for ax in fig.axes:
        assert len(_gids(ax, "label")) == int(label_given)
        assert len(_gids(ax, "pred")) == int(pred_given)


def test_empty_mask_draws_no_contour():
    vol, lab, _ = _case()
    fig = Figure()
    ax = fig.add_subplot()
    viz.overlay(ax, vol[:, :, 0], label=np.zeros(SHAPE[:2], bool), pred=lab[:, :, 8])
    assert _gids(ax, "label") == []
    assert len(_gids(ax, "pred")) == 1


def _marker_position(fig, title_start):
    ax = next(a for a in fig.axes if a.get_title().startswith(title_start))
    img = np.asarray(ax.images[0].get_array())
    r, c = np.unravel_index(np.argmax(img), img.shape)
    return r, c, img.shape


def test_orientation_axial_anterior_up_right_on_left():
    vol = np.zeros(SHAPE, np.float32)
    x, y, z = 17, 21, 5                    # high x (patient's right), high y (anterior)
    vol[x, y, z] = 1.0                     # already in [0, 1]: shown as it is
    fig = viz.three_views(vol, index=(x, y, z))
    r, c, shape = _marker_position(fig, "axial")
    assert r < shape[0] // 4               # anterior at the top
    assert c < shape[1] // 4               # patient's right on the viewer's left
    r, c, shape = _marker_position(fig, "coronal")   # axis 0: rows z, columns y
    assert r > shape[0] // 2               # low z (inferior) towards the bottom
    assert c < shape[1] // 4               # anterior on the left
    r, c, shape = _marker_position(fig, "sagittal")  # axis 1: rows z, columns x
    assert r > shape[0] // 2
    assert c < shape[1] // 4


def test_oriented_slice_shapes_and_superior_up():
    vol = np.zeros(SHAPE, np.float32)
    vol[3, 4, 15] = 1                      # top slice (superior)
    assert viz.oriented_slice(vol, "axial", 0).shape == (SHAPE[1], SHAPE[0])
    s = viz.oriented_slice(vol, "coronal", 3)
    assert s.shape == (SHAPE[2], SHAPE[1])
    assert np.argwhere(s)[0][0] == 0       # superior at the top row
    with pytest.raises(ValueError, match="outside"):
        viz.oriented_slice(vol, "axial", SHAPE[2])


def test_spacing_sets_aspect():
    vol, lab, _ = _case()
    fig = viz.three_views(vol, lab, spacing=(1.0, 1.0, 2.5))
    aspects = {ax.get_title().split(" ")[0]: ax.get_aspect() for ax in fig.axes}
    assert aspects["axial"] == pytest.approx(1.0)
    assert aspects["coronal"] == pytest.approx(2.5)
    assert aspects["sagittal"] == pytest.approx(2.5)


def test_iteration_figure_one_panel_per_round():
    vol, lab, pred = _case()
    masks = [pred, pred | lab, lab, lab]
    fig = viz.iteration_figure(vol, lab, masks, view="axial", zoom_margin=3)
    assert len(fig.axes) == len(masks)
    assert "coarse" in fig.axes[0].get_title()
    assert "DSC 100.0%" in fig.axes[-1].get_title()
    for ax in fig.axes:
        assert len(_gids(ax, "pred")) == 1
    fig = viz.iteration_figure(vol, None, masks[:2], view="coronal")
    assert len(fig.axes) == 2
    assert all(_gids(ax, "label") == [] for ax in fig.axes)
    with pytest.raises(ValueError, match="masks is empty"):
        viz.iteration_figure(vol, lab, [])


def test_curves_draws_mean_and_cases():
    fig = Figure()
    ax = fig.add_subplot()
    viz.curves(ax, {"stepwise": [[0.8, 0.95, 0.97], [0.85, 0.96]], "RSTN": [[0.9, 0.98]]})
    labels = [line.get_label() for line in ax.get_lines()]
    assert "stepwise (mean of 2 cases)" in labels
    assert "RSTN (mean of 1 case)" in labels
    mean = next(l for l in ax.get_lines() if l.get_label().startswith("stepwise"))
    assert list(mean.get_ydata()) == pytest.approx([0.825, 0.955, 0.97])
    with pytest.raises(ValueError):
        viz.curves(ax, {})


def test_bad_inputs_raise_clear_errors():
    vol, lab, _ = _case()
    with pytest.raises(ValueError, match="3-D volume"):
        viz.three_views(vol[:, :, 0])
    with pytest.raises(ValueError, match="shape"):
        viz.three_views(vol, lab[:, :, :5])
    with pytest.raises(ValueError, match="unknown view"):
        viz.iteration_figure(vol, lab, [lab], view="oblique")
    with pytest.raises(ValueError, match="spacing"):
        viz.three_views(vol, spacing=(1, 1))


def test_figures_show_as_png_without_pyplot():
    # Jupyter shows a returned figure through _repr_png_ when no pyplot backend is active.
    vol, lab, pred = _case()
    for fig in (viz.three_views(vol, lab, pred), viz.iteration_figure(vol, lab, [pred, lab])):
        assert fig._repr_png_()[:4] == b"\x89PNG"


def test_probability_maps_are_thresholded_at_half():
    vol, lab, _ = _case()
    prob = np.where(lab, 0.7, 0.2).astype(np.float32)      # P >= 0.5 exactly on the label
    fig = Figure()
    ax = fig.add_subplot()
    viz.overlay(ax, vol[:, :, 8], pred=np.full(SHAPE[:2], 0.3, np.float32))
    assert _gids(ax, "pred") == []                          # 0.3 everywhere: empty mask
    fig = viz.iteration_figure(vol, lab, [prob])
    assert "DSC 100.0%" in fig.axes[0].get_title()
