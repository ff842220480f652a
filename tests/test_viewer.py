"""plots/viewer.py: the slice viewer (ipywidgets, with a static figure as fallback)."""
import matplotlib
import pytest
from matplotlib.figure import Figure
from tests.helpers import PLOT_SHAPE as SHAPE, plot_case as _case
from rstn_core.plots.viewer import viewer

matplotlib.use("Agg")


def test_viewer_returns_widget_that_redraws():
    widgets = pytest.importorskip("ipywidgets")
    vol, lab, pred = _case()
    w = viewer(vol, lab, [pred, lab], spacing=(1, 1, 2))
    assert isinstance(w, widgets.Widget)
    first = w.image.value
    assert first[:4] == b"\x89PNG"
    w.round.value = 0
    assert w.image.value != first
    w.view.value = "coronal"
    assert w.slice.max == SHAPE[0] - 1


def test_viewer_static_fallback_is_a_figure():
    vol, lab, pred = _case()
    fig = viewer(vol, lab, [pred, lab], static=True)
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 3


def test_viewer_falls_back_without_ipywidgets(monkeypatch):
    from rstn_core.plots import viewer as viewer_module
    monkeypatch.setattr(viewer_module, "widgets", None)      # as if the import had failed
    vol, lab, pred = _case()
    assert isinstance(viewer(vol, lab, pred), Figure)
