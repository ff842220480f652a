"""The case under construction: its voxel grid, random generators, tissue map and landmarks.

A `Canvas` holds one case while the build steps (`rstn_core.data.phantom.anatomy`) paint it:
each step reads the landmarks earlier steps placed (the spine, the aorta, the pancreas's
centreline, ...) and paints tissues into `T` by priority (`tissues.PRIO`).
"""
from __future__ import annotations

import numpy as np

from rstn_core.data.phantom.config import PhantomConfig
from rstn_core.data.phantom.geometry import Grid, ellipsoid_sdf, spline, tube_fields
from rstn_core.data.phantom.tissues import PRIO, TISSUE

__all__ = ["Canvas"]


class Canvas:
    """One case under construction: grid, generators, tissue map `T` (uint8 tissue indices).

    Three generators keep the draws independent: `rng` (anatomy), `lrng` (shape-noise
    lattices) and `nrng` (image noise); the number of slices of a `slices_range` config comes
    from a fourth, so the anatomy does not depend on it.

    Args:
        cfg: the `PhantomConfig`; seed: data set seed; case_id: index of the case.
    """

    def __init__(self, cfg: PhantomConfig, seed: int, case_id: int):
        self.cfg = cfg
        self.rng = np.random.default_rng([seed, case_id])          # anatomy draws
        self.lrng = np.random.default_rng([seed, case_id, 1])      # shape-noise lattices
        self.seed_ids = (int(seed), int(case_id))
        self.nrng = np.random.default_rng([seed, case_id, 2])      # image noise
        rng = self.rng
        nz = cfg.shape[2]
        if cfg.slices_range is not None:      # own generator: the anatomy draws stay the same
            nz = int(np.random.default_rng([seed, case_id, 3]).integers(
                cfg.slices_range[0], cfg.slices_range[1] + 1))
        shape = (cfg.shape[0], cfg.shape[1], nz)
        sp = cfg.spacing
        # z = 0 is the level of the pancreatic body (L1); the scan is centred a little above it
        # (small fields of view) or drawn so that the pancreas stays inside (large ones).
        fov_z = nz * sp[2]
        zc = 10.0 + rng.uniform(-8, 8)
        zc = float(np.clip(zc, -fov_z / 2 + 70, fov_z / 2 - 70)) if fov_z > 160 else 0.0
        origin = (-(shape[0] - 1) * sp[0] / 2, -(shape[1] - 1) * sp[1] / 2 + 8.0,
                  zc - (nz - 1) * sp[2] / 2)
        self.grid = Grid(shape, sp, origin)
        self.T = np.full(shape, TISSUE["air"], np.uint8)
        self.step = max(4.0, 2.0 * min(sp))          # centreline sampling, mm
        self.minvox = min(sp[0], sp[1])
        self.meta = {}
        # landmarks, set by the build steps in their order (anatomy.build_tissues)
        self.bs = self.y_v = self.x_a = self.y_a = self.e_case = None   # body size, spine, aorta
        self.body = self.cavity2d = None                                # body.paint_body
        self.p_ctrl = self.p_rad = self.p_scale = self.p_pts = self.p_r = self.p_s = None
        self.head = self.p_lob = self.p_xscale = None                   # pancreas.place_pancreas
        self.fat_plane = self.look_plane = None
        self.ivc = self.conf = self.pv_end = self.sv_pts = None         # organs.paint_vessels
        self.kidney_l = self.kidney_r = None
        self.liver_sl = self.spleen_c = self.dj = None
        self.looks = None                                               # lookalikes
        self.env_sl = self.env = None                                   # pancreas.paint_pancreas

    # -- painting ----------------------------------------------------------------------------
    def paint(self, sl, mask, tissue):
        """Set `tissue` where `mask` holds and the current tissue has no higher priority.

        Args:
            sl: sub-box (3 slices) or None (nothing to paint); mask: bool, broadcastable to the
            sub-box; tissue: a `TISSUE_TABLE` name.
        """
        if sl is None:
            return
        region = self.T[sl]
        t = TISSUE[tissue]
        ok = mask & (PRIO[region] <= PRIO[t])
        region[ok] = t

    def ellipsoid(self, c, r, R=None, pad=0.0):
        """(sub-box, signed distance mm) of an ellipsoid (`geometry.ellipsoid_sdf`) on its box.

        Args:
            c: centre (3,) mm; r: semi-axes (3,) mm; R: rotation or None; pad: extra mm.
        Returns:
            (sl, d), or (None, 1.0) when the box misses the grid.
        """
        ext = max(r) + pad + 1
        sl = self.grid.box(np.asarray(c) - ext, np.asarray(c) + ext)
        if sl is None:
            return None, np.float32(1.0)
        X, Y, Z = self.grid.coords(sl)
        return sl, ellipsoid_sdf(X, Y, Z, c, r, R)

    def tube(self, pts, rad, pad=0.0):
        """`geometry.tube_fields` on this case's grid (None when the tube misses it)."""
        return tube_fields(self.grid, pts, rad, pad)

    def hollow(self, ctrl, radius, lumen, gas, kind, noise=None, pad=0.0):
        """Paint a hollow organ (bowel, stomach, duodenum) along control points.

        Args:
            ctrl: (n, 3) control points, mm (a Catmull-Rom curve through them, `spline`).
            radius, lumen, gas: per control point outer radius (mm), lumen radius (mm; ~0 =
                collapsed) and gas fraction of the lumen.
            kind: tissue prefix ("bowel", "duo", "stomach", "colon", "look").
            noise: (amplitude mm, `Noise`) added to the wall's distance field, or None.
            pad: extra mm around the tube to evaluate.
        Returns:
            (sl, sdf) of the tube, or None when it misses the grid.
        """
        pts, rad, lum, gasf = spline(ctrl, self.step, radius, lumen, gas)
        return self.hollow_dense(pts, rad, lum, gasf, kind, noise=noise, pad=pad)

    def hollow_dense(self, pts, rad, lum, gasf, kind, noise=None, pad=0.0, solid=None):
        """`hollow` on an already dense centreline: wall, collapsed segments, fluid and gas.

        Args:
            pts: (N, 3) centreline, mm; rad, lum, gasf: (N,) per point (as `hollow`);
            kind, noise, pad: as `hollow`; solid: tissue of the collapsed segments (default
            ``kind + "_collapsed"`` if that tissue exists, else the wall).
        Returns:
            (sl, sdf) of the tube, or None when it misses the grid.
        """
        res = self.tube(pts, rad, pad=pad)
        if res is None:
            return None
        sl, sdf, s, dist, ey, cum = res
        if noise is not None:
            sdf = sdf + noise[0] * noise[1].on(self.grid, sl)
        inside = sdf < 0
        lr = np.interp(s, cum, lum).astype(np.float32)
        gf = np.interp(s, cum, gasf).astype(np.float32)
        lumen = inside & (dist < lr)
        gasm = lumen & (ey > lr * (1 - 2 * gf))
        collapsed = inside & (lr < 1.0)
        wall = inside & ~lumen
        solid_name = solid or (kind + "_collapsed" if kind + "_collapsed" in TISSUE
                               else kind + "_wall")
        self.paint(sl, wall & ~collapsed, kind + "_wall")
        self.paint(sl, wall & collapsed, solid_name)
        if kind == "colon":
            self.paint(sl, lumen & ~gasm, "colon_content")
            self.paint(sl, gasm, "colon_gas")
        else:
            self.paint(sl, lumen & ~gasm, kind + "_fluid")
            self.paint(sl, gasm, kind + "_gas")
        return sl, sdf

    def solid_tube(self, ctrl, radius, tissue, pad=0.0):
        """Paint a solid tube (vessel, muscle) along a Catmull-Rom curve through `ctrl`.

        Args:
            ctrl: (n, 3) control points, mm; radius: (n,) mm; tissue: a `TISSUE_TABLE` name;
            pad: extra mm around the tube to evaluate.
        Returns:
            `tube_fields`'s tuple, or None when the tube misses the grid.
        """
        pts, rad = spline(ctrl, self.step, radius)
        res = self.tube(pts, rad, pad=pad)
        if res is None:
            return None
        sl, sdf = res[0], res[1]
        self.paint(sl, sdf < 0, tissue)
        return res

