"""The frame of every case: body wall, back muscles, CT table, spine, ribs, thorax and pelvis.

Build steps (`anatomy.build_tissues` calls them in its fixed order): each takes the `Canvas`
and paints into its tissue map.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from rstn_core.data.phantom.canvas import Canvas
from rstn_core.data.phantom.geometry import ellipse2d_sdf, rot, spline
from rstn_core.data.phantom.tissues import TISSUE

__all__ = ["paint_body", "paint_spine", "paint_thorax_pelvis", "paint_ribs"]


def paint_body(ph: Canvas):
    """Body outline, subcutaneous fat, muscle wall, visceral fat, back muscles and the CT table.

    The same axial layout on every slice (an ellipse wider in front than behind, AP ~226 mm
    at body size 1); sets the landmarks `body` (its ellipses, mm) and `cavity2d` (the
    abdominal cavity in one axial slice, bool (X, Y)).

    Args:
        ph: the `Canvas`; reads `bs`, `y_v`.
    """
    r, g = ph.rng, ph.grid
    bs = ph.bs
    a = 152.0 * bs
    b_ant, b_post = 128.0 * bs, 98.0 * bs       # AP ~226 mm, 1.35 : 1
    yc = ph.y_v - 80.0 * bs + b_post          # posterior skin ~80 mm behind the spine
    t_ant, t_lat, t_post = r.uniform(8, 26), r.uniform(8, 24), r.uniform(8, 18)
    m = r.uniform(6, 9)
    ph.body = dict(a=a, b_ant=b_ant, b_post=b_post, yc=yc, t_lat=t_lat, m=m,
                     cavity=(a - t_lat - m, b_ant - t_ant - m, b_post - t_post - m))
    X = g.axes[0][:, None]
    Y = g.axes[1][None, :]
    b = np.where(Y > yc, b_ant, b_post).astype(np.float32)
    skin = ellipse2d_sdf(X, Y, 0.0, yc, a, b)
    b1 = np.where(Y > yc, b_ant - t_ant, b_post - t_post).astype(np.float32)
    outer_m = ellipse2d_sdf(X, Y, 0.0, yc, a - t_lat, b1)
    inner_m = ellipse2d_sdf(X, Y, 0.0, yc, a - t_lat - m, b1 - m)
    lay = np.full(skin.shape, TISSUE["air"], np.uint8)
    # CT table: a curved slab under the patient
    yt = yc - b_post - 6 + 0.0004 * X ** 2
    slab = (Y < yt) & (Y > yt - 16) & (np.abs(X) < 210)
    lay[slab] = TISSUE["table"]
    lay[slab & ((Y > yt - 2.5) | (Y < yt - 13.5))] = TISSUE["table_shell"]
    lay[(Y < yt - 40) & (Y > yt - 44) & (np.abs(X) < 190)] = TISSUE["table_shell"]
    lay[skin < 0] = TISSUE["subcut_fat"]
    lay[outer_m < 0] = TISSUE["wall_muscle"]
    lay[inner_m < 0] = TISSUE["visceral_fat"]
    ph.cavity2d = inner_m < 0
    # posterior muscles: erector spinae and quadratus lumborum
    ycn = ph.y_v - 16.5 - 10.0
    for sx in (-1, 1):
        es = ellipse2d_sdf(X, Y, sx * 28.0, ycn - 17, 23, 15)
        ql = ellipse2d_sdf(X, Y, sx * 60.0 * bs, ph.y_v - 18, 14, 9)
        lay[((es < 0) | (ql < 0)) & (inner_m < 0)] = TISSUE["muscle"]
    ph.T[:] = lay[:, :, None]


def paint_spine(ph: Canvas):
    """Lumbar vertebrae (cancellous body, cortex, discs, canal, posterior elements) and psoas.

    Vertebrae repeat every 36 mm along z and grow downwards; the psoas muscles run beside
    them and widen towards the pelvis.

    Args:
        ph: the `Canvas`; reads `y_v`, `bs`.
    """
    r, g = ph.rng, ph.grid
    yv, bs = ph.y_v, ph.bs
    sl = g.box((-70, yv - 80, -1e4), (70, yv + 25, 1e4))
    X, Y, Z = g.coords(sl)
    pitch = 36.0
    z0 = r.uniform(0, pitch)
    zl = np.mod(Z - z0, pitch) - pitch / 2                  # height within a vertebra
    grow = 1.0 - 0.0008 * Z                                 # lower vertebrae are larger
    rx, ry = 22.0 * grow, 16.5 * grow
    exy = ellipse2d_sdf(X, Y, 0.0, yv, rx, ry)
    dbody = np.maximum(exy, np.abs(zl) - 13.5)
    ph.paint(sl, dbody < 0, "bone_marrow")
    ph.paint(sl, (dbody < 0) & (dbody > -1.8), "bone_cortex")
    ph.paint(sl, (exy < 0) & (dbody >= 0), "disc")
    ycn = yv - 16.5 - 10.0                                  # spinal canal centre
    rc = np.sqrt(X ** 2 + (Y - ycn) ** 2)
    ph.paint(sl, rc < 9.0 + 0 * Z, "canal")
    arch = (rc >= 9.0) & (rc < 15.0) & (Y < ycn + 5) & (np.abs(zl - 3) < 11)
    spinous = ((np.abs(X) < 4.0) & (Y < ycn - 12) & (Y > ycn - 48) &
               (np.abs(zl + 6 + 0.35 * (Y - ycn + 12)) < 7))
    transverse = ((np.abs(Y - ycn - 3) < 3.5) & (np.abs(X) > 10) & (np.abs(X) < 33 * bs) &
                  (np.abs(zl - 2) < 4.5))
    post = arch | spinous | transverse
    ph.paint(sl, post, "bone_marrow")
    # a cortical rim on the posterior elements: voxels next to non-bone
    rim = post & ~ndimage.binary_erosion(post, iterations=1)
    ph.paint(sl, rim & (ph.minvox < 1.5), "bone_cortex")
    # psoas muscles beside the spine, growing downwards
    for sx in (-1, 1):
        ctrl = [(sx * 20, yv + 2, 40), (sx * 30, yv + 3, -30), (sx * 42, yv + 8, -110),
                (sx * 58, yv + 22, -200), (sx * 66, yv + 35, -280)]
        ph.solid_tube(ctrl, [4, 12, 20, 22, 20], "muscle")


def paint_thorax_pelvis(ph: Canvas):
    """Lung bases, diaphragm and heart when the scan reaches z > 100 mm; pelvis and bladder
    when it reaches below -140 mm (the paper scale's long scans).

    Args:
        ph: the `Canvas`; reads `cavity2d`, `y_v`, `x_a`, `y_a`, `bs`.
    """
    g, r = ph.grid, ph.rng
    # lung bases above the diaphragm dome, the heart in front; diaphragm muscle below them
    ztop = g.axes[2][-1]
    if ztop > 100:
        sl = g.box((-1e4, -1e4, 95), (1e4, 1e4, 1e4))
        X, Y, Z = g.coords(sl)
        zd = (116 + 0.30 * (Y - ph.y_v + 70) + 0.0035 * (np.abs(X) - 80) ** 2
              + 10 * (X > 0))
        cav = ph.cavity2d[:, :, None][sl[0], sl[1]]
        med = (np.abs(X - ph.x_a) < 28) & (Y > ph.y_v - 25)
        ph.paint(sl, cav & (Z > zd - 6) & (Z <= zd) & ~med, "diaphragm")
        ph.paint(sl, cav & (Z > zd) & ~med, "lung")
        sl2, d = ph.ellipsoid((-22.0, ph.y_a + 55, 225 + r.uniform(-10, 10)),
                                (65, 55, 55), rot(30, 0, 0))
        ph.paint(sl2, d < 0, "heart")
    zbot = g.axes[2][0]
    if zbot < -140:
        for sx in (-1, 1):
            c = np.array([sx * 88.0 * ph.bs, ph.y_v + 10, -245])
            R = rot(sx * 35, 0, 0)
            sl, d = ph.ellipsoid(c, (14, 70, 100), R)
            if sl is not None:
                Z = g.coords(sl)[2]
                m = (d < 0) & (Z < -145)
                ph.paint(sl, m, "pelvis_marrow")
                ph.paint(sl, m & (d > -2.5), "pelvis_cortex")
        if zbot < -215:
            sl, d = ph.ellipsoid((0.0, ph.y_a + 50, -270), (55, 45, 45))
            ph.paint(sl, d < 0, "bladder")


def paint_ribs(ph: Canvas):
    """Nine pairs of ribs (12th upwards): tubes around the body wall, sloping down to the front.

    Args:
        ph: the `Canvas`; reads `body`.
    """
    r = ph.rng
    body = ph.body
    a = body["a"] - body["t_lat"] - body["m"] * 0.5
    bp = body["b_post"] * 0.85
    yc = body["yc"]
    for k in range(9):                                  # ribs 12 (lowest) upwards
        z0 = 22 + 26 * k + r.uniform(-4, 4)
        sweep = min(60 + 35 * k, 200)
        for sx in (-1, 1):
            # angle measured from the back (-90 deg), counter-clockwise towards the front
            ang = np.radians(-90 + np.linspace(25, 25 + sweep, 12))
            xr = sx * a * np.abs(np.cos(ang))
            yr = yc + np.where(np.sin(ang) > 0, body["b_ant"] * 0.85, bp) * np.sin(ang)
            zr = z0 - np.linspace(0, 1, 12) ** 1.2 * (70 + 0.5 * sweep)
            pts = np.stack([xr, yr, zr], 1)
            rr = np.full(12, 4.2)
            res = ph.tube(*spline(pts, ph.step, rr))
            if res is None:
                continue
            sl, sdf = res[0], res[1]
            ph.paint(sl, sdf < 0, "rib_marrow")
            ph.paint(sl, (sdf < 0) & (sdf > -1.8), "rib_cortex")
