"""The interactive slice viewer: a view dropdown, a slice slider and a round slider over the
masks Z(0), Z(1), ... of Algorithm 1 or 2 (ipywidgets; a static figure without a kernel)."""
from __future__ import annotations

from rstn_core.plots.viz import (_as_mask_list, _aspect, _centre, _check_mask, _check_spacing,
                                 _check_view, _check_volume, _dsc, _edge_letters, _new_figure,
                                 _render_png, _view_title, oriented_slice, overlay, three_views)
from rstn_core.views import VIEW_AXIS, VIEWS

try:
    import ipywidgets as widgets
except ImportError:                              # optional at runtime: static figures then
    widgets = None

__all__ = ["viewer"]


def viewer(volume, label=None, masks=None, spacing=None, *, static: bool = False,
           view: str = "axial", zoom_margin: int | None = None, window="auto", dpi: int = 80):
    """An interactive slice viewer: view dropdown, slice slider, round slider.

    Shows one slice of ``volume`` with the label (green) and the mask of the chosen round
    (red). Needs a running kernel to react; in a static page (the built book) it shows its
    first frame at most, so pair it with a static figure there.

    Args:
        volume: (X, Y, Z) CT volume; label: (X, Y, Z) binary mask or None.
        masks: one (X, Y, Z) mask or a list [Z(0), Z(1), ...] (the round slider runs over it).
        spacing: voxel size in mm (x, y, z) for the aspect ratio.
        static: return the static :func:`three_views` figure (of the last mask) instead;
            also the fallback when ipywidgets is not installed.
    Returns:
        An ``ipywidgets.VBox`` (attributes ``view``, ``slice``, ``round``, ``image``,
        ``render``), or a Figure when static.
    """
    volume = _check_volume(volume, "viewer")
    label = _check_mask(label, volume.shape, "label", "viewer")
    masks = _as_mask_list(masks, volume.shape, "viewer")
    sp = _check_spacing(spacing, "viewer")
    _check_view(view, "viewer")
    if widgets is None:                          # no ipywidgets: the static figure
        static = True
    if static:
        return three_views(volume, label, masks[-1] if masks else None, spacing=sp,
                           window=window, zoom_margin=zoom_margin)

    centre = _centre(volume.shape, label, *(masks[::-1]))
    view_dd = widgets.Dropdown(options=[(f"{v} (axis {VIEW_AXIS[v]})", v) for v in VIEWS],
                               value=view, description="view")
    slice_sl = widgets.IntSlider(min=0, max=volume.shape[VIEW_AXIS[view]] - 1,
                                 value=centre[VIEW_AXIS[view]], description="slice",
                                 continuous_update=False)
    round_sl = widgets.IntSlider(min=0, max=max(len(masks) - 1, 0), value=max(len(masks) - 1, 0),
                                 description="round", continuous_update=False,
                                 disabled=len(masks) < 2)
    image = widgets.Image(format="png")

    def render(*_):
        v, j = view_dd.value, slice_sl.value
        t = round_sl.value
        fig = _new_figure(figsize=(5.2, 5.6))
        ax = fig.add_subplot()
        pred = oriented_slice(masks[t], v, j) if masks else None
        head = _view_title(v, j)
        if masks:
            head += f"\nZ({t})" + (f", DSC {100 * _dsc(label, masks[t]):.1f}%"
                                   if label is not None else "")
        overlay(ax, oriented_slice(volume, v, j),
                None if label is None else oriented_slice(label, v, j), pred,
                window=window, aspect=_aspect(v, sp), title=head, legend=True,
                edge_letters=_edge_letters(v), zoom_margin=zoom_margin)
        image.value = _render_png(fig, dpi)

    def on_view(change):
        axis = VIEW_AXIS[change["new"]]
        with slice_sl.hold_trait_notifications():
            slice_sl.max = volume.shape[axis] - 1
            slice_sl.value = centre[axis]
        render()

    view_dd.observe(on_view, names="value")
    slice_sl.observe(render, names="value")
    round_sl.observe(render, names="value")
    render()
    box = widgets.VBox([widgets.HBox([view_dd, slice_sl, round_sl]), image])
    box.view, box.slice, box.round, box.image, box.render = view_dd, slice_sl, round_sl, image, render
    return box
