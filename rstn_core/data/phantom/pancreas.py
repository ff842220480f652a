"""The pancreas: where it lies (placed first: the organs are arranged around it) and how it is
painted (last but the frame: lobulated gland, cysts, duct, fat planes to its neighbours).
"""
from __future__ import annotations

import math

import numpy as np
from scipy.special import ndtri

from rstn_core.data.phantom.canvas import Canvas
from rstn_core.data.phantom.geometry import (Grid, Noise, ellipsoid_sdf, local, rot, smin,
                                             spline, tube_fields, unit)
from rstn_core.data.phantom.tissues import ALWAYS_PLANE, CARVABLE, TISSUE

__all__ = ["place_pancreas", "paint_pancreas", "REF_VOLUME_MM3"]

#: Reference field of view (mm^3, 352 x 352 x 240) that cyst sizes are drawn against, so that
#: a case's anatomy does not depend on the grid it is sampled on.
REF_VOLUME_MM3 = 352.0 * 352.0 * 240.0


def place_pancreas(ph: Canvas):
    """Place the pancreas: 9 jittered control points (uncinate, head, neck, body, tail), the
    head ellipsoid, the lobulation and the fat-plane widths. Everything else is placed
    around these landmarks, so this step runs before the organs.

    Size: ``target_scale`` x U(0.92, 1.08); a rotation of U(-8, 8) deg about z and U(-5, 5)
    deg about x around the neck, then a shift of up to (6, 4, 6) mm.

    Args:
        ph: the `Canvas`; reads `y_a`; sets `p_ctrl` (9, 3), `p_rad` (9,), `p_scale`, the dense
        centreline `p_pts` (N, 3) with radii `p_r` and position 0..1 along it `p_s`, `head`,
        `p_lob`, `p_xscale`, `fat_plane` and `look_plane` (mm).
    """
    r = ph.rng
    cfg = ph.cfg
    ya = ph.y_a
    # uncinate, head (2), neck, body (2), tail (3): x, y (from the aorta), z; radius mm
    base = np.array([
        [10, 6, -28, 7.5], [30, 12, -24, 12.5], [34, 18, -10, 13], [14, 34, -1, 10],
        [-10, 44, 4, 11.5], [-36, 30, 13, 11.5], [-60, 6, 25, 11], [-80, -18, 37, 10],
        [-92, -36, 47, 8]], float)
    base[:, 1] += ya
    base[:, :3] += r.uniform(-4, 4, (len(base), 3))
    base[:, 3] *= r.uniform(0.9, 1.1, len(base))
    s = cfg.target_scale * r.uniform(0.92, 1.08)
    pivot = base[3, :3].copy()                                  # the neck
    R = rot(r.uniform(-8, 8), 0, r.uniform(-5, 5))
    P = (base[:, :3] - pivot) @ R.T * s + pivot + r.uniform([-6, -4, -6], [6, 4, 6])
    rad = base[:, 3] * s * 0.93
    ph.p_ctrl, ph.p_rad, ph.p_scale = P, rad, s
    # dense centreline (for cysts, look-alikes, splenic vein)
    ph.p_pts, ph.p_r = spline(P, 2.0, rad)
    seg = np.linalg.norm(np.diff(ph.p_pts, axis=0), axis=1)
    ph.p_s = np.concatenate([[0], np.cumsum(seg)]) / seg.sum()     # 0..1 along it
    # the head: an ellipsoid around the two head points
    hc = 0.5 * (P[1] + P[2])
    ph.head = dict(c=hc, r=np.array([13.0, 11.0, 15.0]) * s * r.uniform(0.9, 1.1, 3),
                     R=rot(r.uniform(-15, 15), 0, 0))
    ph.p_lob = (r.uniform(0.8, 1.6), r.uniform(1.5, 3.0))            # lobulation mm
    ph.p_xscale = (1.0, r.uniform(0.95, 1.1), r.uniform(0.8, 0.95))  # flatter AP
    ph.fat_plane = r.uniform(2.0, 3.5)
    ph.look_plane = max(3.0, 1.3 * max(ph.grid.spacing[0], ph.grid.spacing[1]))
    ph.meta["pancreas_scale"] = round(float(s), 3)


def paint_pancreas(ph: Canvas):
    """Paint the pancreas, its cysts, its duct and the fat planes around it.

    The gland is the smooth union of a flattened tube along the centreline and the head
    ellipsoid, with two scales of value noise on its distance field (lobulated edges). Cysts
    are drawn always (the ``cysts`` knob only decides whether they are painted, so it changes
    nothing else): 1-3, 0.002%-0.1% of `REF_VOLUME_MM3` in total; the gland grows around them
    except for an exophytic one in 10% of the cases. Fat planes: a `fat_plane` mm shell of
    visceral fat carved out of touching bowel, stomach, liver, spleen and gallbladder except
    on a ``fat_plane_missing_prob`` share of the surface; collapsed bowel and look-alikes
    always keep a `look_plane` shell.

    Args:
        ph: the `Canvas` (runs after every organ, so that fat planes are carved out of them);
        sets `env_sl`, `env` and the meta `n_cysts`, `cyst_inside_fraction`.
    """
    r, g, cfg = ph.rng, ph.grid, ph.cfg
    pts, pr = spline(ph.p_ctrl, ph.step, ph.p_rad)
    pad = ph.look_plane + 3 * ph.p_lob[1] + 15
    ext = pr.max() + pad
    sl = g.box(pts.min(0) - ext, pts.max(0) + ext)
    X, Y, Z = g.coords(sl)
    # tube distance on coordinates scaled in y and z (a flatter cross-section): a tube
    # around the scaled centreline on the scaled sub-grid
    sx, sy, sz = ph.p_xscale
    shp = tuple(s.stop - s.start for s in sl)
    sub = Grid(shp, (g.spacing[0], g.spacing[1] / sy, g.spacing[2] / sz),
                (g.axes[0][sl[0].start], g.axes[1][sl[1].start] / sy,
                 g.axes[2][sl[2].start] / sz))
    res = tube_fields(sub, pts / np.array([1.0, sy, sz]), pr, pad=pad)
    d_tube = np.full(shp, 1e4, np.float32)
    d_tube[local(res[0], tuple(slice(0, n) for n in shp))] = res[1]
    hd = ellipsoid_sdf(X, Y, Z, ph.head["c"], ph.head["r"], ph.head["R"])
    env = smin(d_tube, hd, 6.0)
    # lattices over the mm box of the control points: independent of the grid
    P = ph.p_ctrl
    mlo, mhi = P.min(0) - ph.p_rad.max() - 45, P.max(0) + ph.p_rad.max() + 45
    n1 = Noise(ph.lrng, mlo, mhi, 4.5)
    n2 = Noise(ph.lrng, mlo, mhi, 14.0)
    nfp = Noise(ph.lrng, mlo, mhi, 16.0)
    env = env + ph.p_lob[0] * n1.on(g, sl) + ph.p_lob[1] * n2.on(g, sl)
    # cysts: grow the gland around them (most), or bulge out of it (a few)
    cyst_masks = []
    inside_frac = []
    # cysts are drawn always (and used only when cfg.cysts): the knob changes nothing else
    n_c = int(r.integers(1, 4))
    frac = math.exp(r.uniform(math.log(2e-5), math.log(1e-3)))
    vols = frac * REF_VOLUME_MM3 * r.dirichlet(np.full(n_c, 1.5))
    exo_k = int(r.integers(0, n_c)) if r.uniform() < 0.1 else -1
    for k in range(n_c):
        u = r.uniform(0.03, 0.95)
        i = int(np.argmin(np.abs(ph.p_s - u)))
        rad_c = (3 * vols[k] / (4 * math.pi)) ** (1 / 3)
        aniso = r.uniform(0.8, 1.25, 3)
        aniso /= np.prod(aniso) ** (1 / 3)
        cr = rad_c * aniso
        exo = k == exo_k
        cc = ph.p_pts[i] + r.uniform(-0.3, 0.3, 3) * ph.p_r[i]
        Rc = rot(*r.uniform(-90, 90, 3))
        depth = r.uniform(0.15, 0.45)
        side = r.choice([-1, 1])
        if exo:   # centre inside the surface by 15-45% of its radius: partly outside
            out = unit(np.cross(np.gradient(ph.p_pts, axis=0)[i], (0, 0, 1)))
            cc = ph.p_pts[i] + out * (ph.p_r[i] - depth * rad_c) * side
        dcy = ellipsoid_sdf(X, Y, Z, cc, cr, Rc)
        n_sep = int(r.integers(0, 4)) if rad_c > 5 else 0
        seps = [(unit(r.normal(size=3)), r.uniform(-0.4, 0.4) * rad_c)
                for _ in range(n_sep)]
        if cfg.cysts:
            if not exo:
                env = smin(env, dcy - 2.5, 4.0)
            cyst_masks.append((dcy, seps, cc))
    panc = env < 0
    ph.paint(sl, panc, "pancreas")
    # the main duct, sometimes visible
    if r.uniform() < 0.4:
        dres = ph.tube(pts[2:-2], np.full(len(pts) - 4, max(1.2, 0.45 * ph.minvox)))
        if dres is not None:
            dl = local(dres[0], sl)
            region = ph.T[dres[0]]
            m = (dres[1] < 0) & (env[dl] < -2.5) & (region == TISSUE["pancreas"])
            region[m] = TISSUE["panc_duct"]
    # fat planes: carve a thin fat layer between the gland and touching neighbours
    region = ph.T[sl]
    present = nfp.on(g, sl) > ndtri(min(max(cfg.fat_plane_missing_prob, 1e-6), 1 - 1e-6))
    shell_fp = (env >= 0) & (env < ph.fat_plane) & CARVABLE[region] & present
    shell_lk = (env >= 0) & (env < ph.look_plane) & ALWAYS_PLANE[region]
    region[shell_fp | shell_lk] = TISSUE["visceral_fat"]
    # the cysts on top
    thick = max(1.2, 0.45 * ph.minvox)
    for dcy, seps, cc in cyst_masks:
        m = dcy < 0
        inside_frac.append(float((m & panc).sum() / max(m.sum(), 1)))
        ph.paint(sl, m, "cyst")
        for nvec, off in seps:
            dpl = ((X - cc[0]) * nvec[0] + (Y - cc[1]) * nvec[1] + (Z - cc[2]) * nvec[2]) - off
            ph.paint(sl, m & (np.abs(dpl) < thick / 2) & (dcy < -1.0), "cyst_septum")
    ph.env_sl, ph.env = sl, env
    ph.meta["n_cysts"] = len(cyst_masks)
    ph.meta["cyst_inside_fraction"] = round(
        float(np.average(inside_frac, weights=[max(1, (c[0] < 0).sum()) for c in cyst_masks]))
        if cyst_masks else 1.0, 4)
