"""The organs around the pancreas: vessels, kidneys and adrenals, liver, spleen, gallbladder,
stomach, duodenum, colon and small bowel.

Build steps (`anatomy.build_tissues` calls them in its fixed order): each takes the `Canvas`,
reads the landmarks of earlier steps and paints into its tissue map.
"""
from __future__ import annotations

import math

import numpy as np

from rstn_core.data.phantom.canvas import Canvas
from rstn_core.data.phantom.geometry import (Noise, ellipsoid_sdf, rot, smin, smoothstep, spline,
                                             unit)
from rstn_core.data.phantom.tissues import TISSUE

__all__ = ["paint_vessels", "paint_kidneys_adrenals", "paint_liver_spleen_gallbladder",
           "paint_stomach_duodenum", "paint_colon", "paint_small_bowel"]


def paint_vessels(ph: Canvas):
    """Aorta, IVC, iliac vessels, SMA, coeliac trunk with splenic and hepatic arteries, SMV,
    portal and splenic veins (along the back of the body and tail), renal vessels.

    Placed around the pancreas's control points; sets `ivc`, `conf` (the SMV/portal
    confluence behind the neck), `pv_end` (the porta hepatis) and `sv_pts`.

    Args:
        ph: the `Canvas`; reads `x_a`, `y_a`, `y_v`, `p_ctrl`, `p_rad`, `p_pts`, `p_r`, `p_s`.
    """
    r = ph.rng
    xa, ya, P = ph.x_a, ph.y_a, ph.p_ctrl
    ra = r.uniform(10, 12.5)
    # aorta and the iliac arteries
    aorta = [(xa, ya - 4, 320), (xa, ya, 160), (xa + 1, ya + 1, 0), (xa, ya + 2, -115)]
    ph.solid_tube(aorta, [ra * 1.1, ra, ra, ra * 0.9], "aorta")
    for sx in (-1, 1):
        ph.solid_tube([(xa, ya + 2, -112), (xa + sx * 30, ya, -170),
                         (xa + sx * 55, ya - 5, -260)], [7, 6.5, 6.5], "artery")
    # IVC (elliptic) and the iliac veins
    xi, yi = 24.0 + r.uniform(-3, 3), ya - 2
    ph.ivc = (xi, yi)
    ivc = [(xi + 2, yi - 4, -120), (xi, yi, -40), (xi, yi + 2, 60), (xi - 5, yi + 8, 130),
           (xi - 12, yi + 12, 200)]
    ph.solid_tube(ivc, [11, 11.5, 12, 12, 13], "ivc")
    for sx in (-1, 1):
        ph.solid_tube([(xi + 2, yi - 4, -118), (xi + sx * 28 - 10, yi - 8, -170),
                         (xa + sx * 55, ya - 14, -260)], [8, 8, 8], "vein")
    # SMA from the aorta, and the coeliac trunk with splenic and common hepatic arteries
    zb = P[4, 2]                                                # level of the body
    z_sma = zb - 6
    ph.solid_tube([(xa, ya + ra - 2, z_sma + 2), (xa + 1, ya + 20, z_sma - 6),
                     (xa + 3, ya + 24, z_sma - 40), (xa + 8, ya + 28, -130),
                     (xa + 14, ya + 32, -230)], [4, 4, 3.8, 3.5, 3], "sma")
    zc = z_sma + 16
    ph.solid_tube([(xa, ya + ra - 2, zc), (xa, ya + 22, zc + 4)], [3.5, 3.5], "artery")
    tail = P[-2]
    ph.solid_tube([(xa, ya + 22, zc + 4), (xa - 20, ya + 24, zc + 10),
                     ((xa + tail[0]) / 2, tail[1] + 22, tail[2] + 14),
                     (tail[0] - 8, tail[1] + 6, tail[2] + 14)], [3, 2.8, 2.6, 2.5], "artery")
    ph.solid_tube([(xa, ya + 22, zc + 4), (xa + 25, ya + 28, zc + 8),
                     (xa + 50, ya + 30, zc + 25)], [2.8, 2.6, 2.5], "artery")
    # portal venous system: SMV, confluence behind the neck, portal and splenic veins
    neck = P[3]
    conf = neck + np.array([-2.0, -(ph.p_rad[3] + 5.5), 2.0])
    ph.conf = conf
    ph.solid_tube([(conf[0] + 6, conf[1] + 2, -230), (conf[0] + 5, conf[1] + 2, -120),
                     (conf[0] + 3, conf[1] + 2, -40), tuple(conf)], [6, 6, 6.5, 7], "portal")
    ph.pv_end = np.array([conf[0] + 48, conf[1] + 4, conf[2] + 55])
    ph.solid_tube([tuple(conf), (conf[0] + 22, conf[1] + 2, conf[2] + 22),
                     tuple(ph.pv_end)], [7.5, 7.5, 7], "portal")
    # splenic vein: along the posterior surface of body and tail, half embedded
    sel = ph.p_s >= ph.p_s[np.argmin(np.linalg.norm(ph.p_pts - neck, axis=1))]
    pts, rr = ph.p_pts[sel], ph.p_r[sel]
    post = np.array([0.0, -1.0, 0.25])
    sv = [tuple(conf)] + [tuple(p + unit(post) * (q * 0.85)) for p, q in
                          zip(pts[::6], rr[::6])]
    sv.append(tuple(pts[-1] + np.array([-14.0, -10.0, 6.0])))
    ph.sv_pts = np.asarray(sv)
    ph.solid_tube(sv, [5.0] * len(sv), "portal")
    # left renal vein: kidney hilum, in front of the aorta under the SMA, into the IVC
    zr = z_sma - 12
    ph.solid_tube([(-48, ph.y_v - 2, zr - 4), (xa - 14, ya + 10, zr),
                     (xa, ya + ra + 4, zr), (xi - 6, yi + 3, zr - 2)],
                    [5, 4.5, 4.5, 5], "vein")
    ph.solid_tube([(48, ph.y_v - 6, zr - 22), (xi + 6, yi, zr - 16)], [5, 5], "vein")
    # renal arteries
    ph.solid_tube([(xa - 5, ya - 3, zr + 2), (-46, ph.y_v - 6, zr - 2)], [3, 3], "artery")
    ph.solid_tube([(xa + 5, ya - 3, zr), (xi, yi - 14, zr - 12),
                     (46, ph.y_v - 10, zr - 20)], [3, 3, 3], "artery")


def paint_kidneys_adrenals(ph: Canvas):
    """Kidneys (cortex, medulla with a lumpy border, sinus fat) and the adrenal glands (thin
    inverted Ys above them).

    Args:
        ph: the `Canvas`; reads `y_v`, `bs`, `x_a`, `y_a`, `ivc`; sets `kidney_l`, `kidney_r`.
    """
    r = ph.rng
    yv = ph.y_v
    for side, sx, zc in (("l", -1, -12.0), ("r", 1, -32.0)):
        c = np.array([sx * 70.0 * ph.bs, yv - 6, zc + r.uniform(-8, 8)])
        rr = np.array([24.0, 21.0, 52.0]) * r.uniform(0.9, 1.1, 3)
        R = rot(sx * -28 + r.uniform(-8, 8), sx * 12, -12)
        sl, d = ph.ellipsoid(c, rr, R, pad=2)
        ph.paint(sl, d < 0, f"kidney_cortex_{side}")
        sl2, d2 = ph.ellipsoid(c, rr - 7.0, R)
        nz = Noise(ph.lrng, c - rr, c + rr, 9.0)
        ph.paint(sl2, (d2 + 2.5 * nz.on(ph.grid, sl2)) < 0, f"kidney_medulla_{side}")
        # renal sinus fat at the hilum (anteromedial)
        hil = c + R @ np.array([-sx * rr[0] * 0.8, 0, 0])
        sl3, d3 = ph.ellipsoid(hil, (rr[0] * 0.42, rr[1] * 0.3, rr[2] * 0.45), R)
        ph.paint(sl3, d3 < 0, "renal_sinus")
        setattr(ph, f"kidney_{side}", (c, rr))
    # adrenal glands: thin inverted-Y sheets above the kidneys
    xa, xi, yi = ph.x_a, ph.ivc[0], ph.ivc[1]
    thick = max(2.6, 0.5 * ph.minvox)
    cl, rl = ph.kidney_l
    apex = np.array([xa - 22, ph.y_a - 6, cl[2] + rl[2] * 0.75 + 8]) + r.uniform(-3, 3, 3)
    for end in (apex + (2, -16, -24), apex + (-12, -12, -20)):
        ph.solid_tube([tuple(apex), tuple((apex + end) / 2), tuple(end)],
                        [thick * 1.3, thick, thick * 0.8], "adrenal_l")
    cr, rrr = ph.kidney_r
    apex = np.array([xi + 4, yi - 20, cr[2] + rrr[2] * 0.75 + 10]) + r.uniform(-3, 3, 3)
    for end in (apex + (-2, -14, -24), apex + (12, -10, -20)):
        ph.solid_tube([tuple(apex), tuple((apex + end) / 2), tuple(end)],
                        [thick * 1.3, thick, thick * 0.8], "adrenal_r")


def paint_liver_spleen_gallbladder(ph: Canvas):
    """Liver (two lobes, lumpy surface, hepatic and portal vessels), spleen (a crescent) and
    gallbladder (wall and bile).

    Args:
        ph: the `Canvas`; reads `bs`, `y_a`, `y_v`, `head`, `ivc`, `pv_end`; sets `liver_sl`,
        `spleen_c`.
    """
    r, g = ph.rng, ph.grid
    bs = ph.bs
    # liver: right lobe + left lobe, smooth union, lumpy surface, cut below the porta
    c1 = np.array([72.0 * bs, ph.y_a + 22, 72]) + r.uniform(-6, 6, 3)
    r1 = np.array([82.0 * bs, 92.0, 92]) * r.uniform(0.93, 1.07, 3)
    c2 = np.array([-15.0, ph.y_a + 62, 95]) + r.uniform(-6, 6, 3)
    r2 = np.array([62.0, 38.0, 40]) * r.uniform(0.9, 1.1, 3)
    lo = np.minimum(c1 - r1, c2 - r2) - 10
    hi = np.maximum(c1 + r1, c2 + r2) + 10
    sl = g.box(lo, hi)
    if sl is not None:
        X, Y, Z = g.coords(sl)
        d = smin(ellipsoid_sdf(X, Y, Z, c1, r1), ellipsoid_sdf(X, Y, Z, c2, r2), 25.0)
        d = d + 6.0 * Noise(ph.lrng, lo, hi, 35.0).on(g, sl)
        # inferior surface: above the pancreatic head, duodenum and right kidney
        hz = ph.head["c"][2] + ph.head["r"][2]
        zcut = hz + 8 - 0.55 * np.maximum(X - 55.0, 0) + 0.0 * Y
        liver = (d < 0) & (Z > zcut)
        ph.paint(sl, liver, "liver")
        ph.liver_sl = sl
    # hepatic veins (to the IVC at the top) and portal branches (from the hilum)
    xi, yi = ph.ivc
    top = np.array([xi - 8, yi + 10, 150.0])
    for ang, ln in ((-60, 90), (10, 85), (70, 75)):
        a = math.radians(ang)
        end = top + np.array([math.cos(a) * ln * 0.9 + 30, math.sin(a) * ln * 0.5 + 35, -70])
        _liver_vessel(ph, [top, (top + end) / 2 + r.uniform(-6, 6, 3), end], [6, 5, 3])
    pv = ph.pv_end
    for end in (pv + (55, -5, 30), pv + (35, 30, 10), pv + (-45, 35, 30)):
        _liver_vessel(ph, [pv, (pv + end) / 2 + r.uniform(-5, 5, 3), end], [6, 4.5, 3])
    # spleen: a crescent against the left posterolateral wall
    c = np.array([-106.0 * bs, ph.y_v + 2, 52]) + r.uniform(-5, 5, 3)
    rr = np.array([24.0, 58.0, 50.0]) * r.uniform(0.85, 1.15, 3)
    R = rot(-38 + r.uniform(-8, 8), 0, 0)
    sl, d = ph.ellipsoid(c, rr, R)
    if sl is not None:
        X, Y, Z = g.coords(sl)
        hil = c + R @ np.array([rr[0] * 1.1, 0, 0])
        dh = ellipsoid_sdf(X, Y, Z, hil, rr * np.array([0.6, 0.5, 0.6]), R)
        ph.paint(sl, (d < 0) & (dh > 0), "spleen")
    ph.spleen_c = c
    # gallbladder under the liver
    gc = np.array([48.0, ph.y_a + 58, ph.head["c"][2] + 30]) + r.uniform(-6, 6, 3)
    gr = np.array([14.0, 16.0, 32.0]) * r.uniform(0.8, 1.15, 3)
    R = rot(r.uniform(-20, 20), 0, 35)
    sl, d = ph.ellipsoid(gc, gr, R)
    ph.paint(sl, d < 0, "gb_wall")
    ph.paint(sl, d < -1.5, "gb_bile")


def _liver_vessel(ph: Canvas, ctrl, rad):
    """A vessel inside the liver: repaints liver voxels along a tube as `liver_vessel`."""
    res = ph.tube(*spline(ctrl, ph.step, rad))
    if res is None or ph.liver_sl is None:
        return
    sl, sdf = res[0], res[1]
    region = ph.T[sl]
    region[(sdf < 0) & (region == TISSUE["liver"])] = TISSUE["liver_vessel"]


def paint_stomach_duodenum(ph: Canvas):
    """The duodenal C-loop around the pancreatic head (open, collapsed or with gas per segment)
    and the stomach (fundus to pylorus, its antrum in front of the pancreas).

    Args:
        ph: the `Canvas`; reads `p_ctrl`, `p_rad`, `head`, `x_a`, `y_a`, `y_v`; sets `dj` (the
        duodeno-jejunal flexure, where the small bowel starts).
    """
    r = ph.rng
    P, pr = ph.p_ctrl, ph.p_rad
    hc, hr = ph.head["c"], ph.head["r"]
    # duodenum: C-loop around the head, pressed against it
    rd = r.uniform(10, 13)
    gd = r.uniform(-2.5, 1.0)
    R = hr[0] + gd + rd
    zlow = min(P[0, 2] - pr[0], P[1, 2] - pr[1]) - gd - rd
    xa, ya = ph.x_a, ph.y_a
    pyl = hc + np.array([-14.0, hr[1] + 24, hr[2] + 10])
    duo = [pyl, hc + (0.5 * R, 0.8 * R, hr[2] + 8), hc + (R, 0.25 * R, hr[2] - 2),
           hc + (R + 1, 0.0, 0.0), hc + (R, -0.1 * R, -hr[2] + 6),
           (hc[0] + 0.6 * R, hc[1] - 0.15 * R, zlow + 2),
           (P[0, 0] + 4, ya + 18, zlow), (xa, ya + 19, zlow + 2),
           (xa - 22, ya + 16, zlow + 10),
           (xa - 30, ya + 24, P[4, 2] - pr[4] - rd - 4)]
    n = len(duo)
    rad = np.full(n, rd)
    rad[7] = 7.0                                   # squeezed between aorta and SMA
    lum = rad - 2.5
    opened = r.uniform(0, 1, n) > 0.3
    lum = np.where(opened, lum, 0.0)
    lum[7] = 0.0
    gas = np.where(r.uniform(0, 1, n) < 0.3, 0.35, 0.0)
    ph.hollow(duo, rad, lum, gas, "duo")
    ph.dj = np.asarray(duo[-1], float)
    # stomach: fundus under the left dome, body, antrum in front of the pancreas, pylorus
    b1 = P[4]
    gap = r.uniform(-1.0, 10.0)
    ra = r.uniform(20, 26)
    antrum_y = b1[1] + pr[4] + gap + ra
    content = r.uniform(0, 1)
    st = [(-52, ph.y_v + 25, 130), (-74, ph.y_a + 32, 88), (-62, antrum_y + 8, 52),
          (-32, antrum_y + 4, b1[2] + pr[4] + 12), (-4, antrum_y, b1[2] + pr[4] + 8),
          tuple(pyl)]
    rad = np.array([42, 38, 32, ra, ra * 0.8, 10]) * r.uniform(0.85, 1.1)
    lum = rad - 4.5
    gasf = np.array([0.0, 0.1, 0.2, 0.3, 0.3, 0.0]) * (2 * r.uniform(0, 1))
    ph.hollow(st, rad, lum, np.minimum(gasf, 0.6), "stomach")
    ph.meta["stomach_content"] = "food" if content > 0.7 else "fluid"


def paint_colon(ph: Canvas):
    """The colon from caecum to sigmoid: haustra (radius +-12% every 28 mm), mottled stool
    and gas.

    Args:
        ph: the `Canvas`; reads `bs`, `y_v`, `y_a`.
    """
    r = ph.rng
    bs = ph.bs
    ctrl = np.array([
        (98, ph.y_v + 30, -160), (104, ph.y_v + 28, -70), (96, ph.y_a + 40, -22),
        (55, ph.y_a + 70, -40), (0, ph.y_a + 75, -58), (-55, ph.y_a + 70, -40),
        (-98, ph.y_a + 40, 18), (-106, ph.y_v + 25, -40), (-98, ph.y_v + 28, -150),
        (-60, ph.y_a + 35, -205), (-10, ph.y_a + 25, -250)], float)
    ctrl[:, 0] *= bs
    ctrl += r.uniform(-7, 7, ctrl.shape)
    pts, rad = spline(ctrl, ph.step, np.full(len(ctrl), r.uniform(18, 25)))
    cum = np.concatenate([[0], np.cumsum(np.linalg.norm(np.diff(pts, axis=0), axis=1))])
    rad = rad * (1 + 0.12 * np.sin(2 * np.pi * cum / 28.0))       # haustra
    lum = rad - 3.0
    gas = np.clip(0.25 + 0.25 * np.sin(cum / 90.0 + r.uniform(0, 6)), 0, 0.6)
    ph.hollow_dense(pts, rad, lum, gas, "colon")


def paint_small_bowel(ph: Canvas):
    """10-13 small-bowel loops: random walks of 11 mm steps kept in the lower and anterior
    abdomen, each fluid-filled, gassy or collapsed along its length; the first starts at the
    duodeno-jejunal flexure.

    Args:
        ph: the `Canvas`; reads `y_a`, `dj`.
    """
    r = ph.rng
    ya = ph.y_a
    regions = [(np.array([-85.0, ya - 5, -240]), np.array([85.0, ya + 80, -30])),   # lower
               (np.array([-80.0, ya + 55, -70]), np.array([70.0, ya + 100, 5])),    # anterior
               (np.array([-95.0, ya - 10, -80]), np.array([-40.0, ya + 70, 5]))]    # left
    n_loops = int(r.integers(10, 14))
    for k in range(n_loops):
        lo, hi = regions[0 if k < n_loops // 2 else 1 + (k % 2)]
        if k == 0:                                   # the jejunum from the DJ flexure
            p = ph.dj.copy()
            d = unit([-1.0, 0.6, -0.8])
        else:
            p = r.uniform(lo, hi)
            d = unit(r.normal(size=3))
        pts = [p.copy()]
        for _ in range(int(r.integers(20, 36))):
            d = unit(d + 0.55 * r.normal(size=3))
            q = p + 11.0 * d
            for i in range(3):                       # stay in the lower abdomen
                if q[i] < lo[i] or q[i] > hi[i]:
                    d[i] = -d[i]
            q = p + 11.0 * d
            p = q
            pts.append(p.copy())
        pts = np.asarray(pts)
        rb = r.uniform(11, 15)
        n = len(pts)
        opn = smoothstep((r.uniform(-0.3, 1.8, n)))
        lum = (rb - 2.5) * opn
        lum[lum < 2.0] = 0.0
        gas = np.full(n, 0.35 if r.uniform() < 0.3 else 0.0)
        ph.hollow(pts, np.full(n, rb), lum, gas, "bowel")
