"""One phantom case: the build steps in their fixed order, then the image and the label map.

The order matters twice: each step reads landmarks earlier ones placed (the pancreas is
placed before the organs around it and painted after them, so that fat planes are carved out
of its neighbours), and the anatomy generator's draws happen in this order, so the same
(config, seed, case id) always gives the same volume (`GENERATOR_VERSION`).
"""
from __future__ import annotations

import numpy as np

from rstn_core.data.case import Case
from rstn_core.data.errors import DataError
from rstn_core.data.labels import PHANTOM_LABELS
from rstn_core.data.phantom.body import paint_body, paint_ribs, paint_spine, paint_thorax_pelvis
from rstn_core.data.phantom.canvas import Canvas
from rstn_core.data.phantom.config import PhantomConfig
from rstn_core.data.phantom.geometry import Grid
from rstn_core.data.phantom.lookalikes import paint_lookalikes
from rstn_core.data.phantom.organs import (paint_colon, paint_kidneys_adrenals,
                                           paint_liver_spleen_gallbladder, paint_small_bowel,
                                           paint_stomach_duodenum, paint_vessels)
from rstn_core.data.phantom.pancreas import paint_pancreas, place_pancreas
from rstn_core.data.phantom.render import render_image
from rstn_core.data.phantom.tissues import LABEL_LUT, TISSUE

__all__ = ["BUILD_STEPS", "build_tissues", "make_case"]

#: The build steps, in the order they run (each takes the `Canvas`).
BUILD_STEPS = (paint_body, paint_spine, place_pancreas, paint_vessels, paint_kidneys_adrenals,
               paint_liver_spleen_gallbladder, paint_stomach_duodenum, paint_colon,
               paint_small_bowel, paint_lookalikes, paint_pancreas, paint_thorax_pelvis,
               paint_ribs)


def build_tissues(cfg: PhantomConfig, seed: int, case_id: int) -> Canvas:
    """Build a case's tissue map: the patient's global draws, then `BUILD_STEPS` in order.

    Args:
        cfg: the `PhantomConfig`; seed: data set seed; case_id: index of the case.
    Returns:
        the built `Canvas`: `T` (X, Y, Z) uint8 tissue indices (`tissues.TISSUE`), `grid`,
        landmarks and `meta`. `render_image(canvas)` makes its image.
    """
    ph = Canvas(cfg, int(seed), int(case_id))
    r = ph.rng
    ph.bs = r.uniform(0.88, 1.05)             # body size
    ph.y_v = -28.0 + r.uniform(-4, 4)         # vertebral body centre (y)
    ph.x_a = -8.0 + r.uniform(-4, 3)          # aorta centre (x)
    ph.y_a = ph.y_v + 28.0                    # aorta centre (y), in front of the spine
    ph.e_case = r.uniform(-20, 20)            # contrast enhancement of this case (HU)
    for step in BUILD_STEPS:
        step(ph)
    return ph


def _affine(grid: Grid) -> np.ndarray:
    """Voxel -> mm (RAS+) affine of a grid: diagonal spacing, translation = origin."""
    A = np.diag([*grid.spacing, 1.0])
    A[:3, 3] = grid.origin
    return A


def make_case(cfg: PhantomConfig, seed: int, case_id: int) -> Case:
    """Generate one phantom case, reproducibly from (seed, case_id).

    Args:
        cfg: geometry and knobs (`phantom_preset(scale)` for the named scales).
        seed: data set seed; case_id: index of the case (its name is ``phantom_{case_id:03d}``).
    Shapes:
        returns: `Case` with image (X, Y, Z) float32 HU and labels (X, Y, Z) uint8 in RAS+
        (label values: `PHANTOM_LABELS`), spacing = cfg.spacing, and `meta` with the draws
        (pancreas volume, cysts, look-alikes, HU per tissue).
    """
    if not isinstance(cfg, PhantomConfig):
        raise DataError(f"make_case: cfg must be a PhantomConfig, got {type(cfg).__name__}; use "
                        "phantom_preset(scale).")
    ph = build_tissues(cfg, seed, case_id)
    T = ph.T
    img = render_image(ph)
    labels = LABEL_LUT[T]
    vox_ml = float(np.prod(ph.grid.spacing)) / 1000.0
    meta = dict(ph.meta)
    meta["pancreas_ml"] = round(float(np.isin(labels, (1, 2)).sum()) * vox_ml, 2)
    meta["cyst_ml"] = round(float((labels == 2).sum()) * vox_ml, 3)
    meta["lookalike_ml"] = round(float((T == TISSUE["look_solid"]).sum()) * vox_ml, 2)
    return Case(id=f"phantom_{int(case_id):03d}", image=img, labels=labels,
                spacing=tuple(float(s) for s in ph.grid.spacing), affine=_affine(ph.grid),
                label_names=dict(PHANTOM_LABELS), source="phantom", meta=meta)
