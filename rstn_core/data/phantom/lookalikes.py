"""Look-alikes: collapsed bowel loops with the pancreas's HU and texture beside the gland.

Inside the fine network's box they look like pancreas; in the whole axial slice each visibly
continues into a bowel loop whose lumen opens beyond the box's margin (the case for RSTN's
saliency from the coarse map, CVPR 2018, Fig. 2).
"""
from __future__ import annotations

import math

import numpy as np

from rstn_core.data.phantom.canvas import Canvas
from rstn_core.data.phantom.geometry import Noise, smoothstep, spline, unit

__all__ = ["paint_lookalikes", "in_cavity"]


def paint_lookalikes(ph: Canvas):
    """Collapsed bowel loops with pancreas HU beside the gland, opening outside its box.

    Each loop is horizontal (constant z), so that in an axial slice the solid segment next
    to the pancreas and the loop it continues into lie in the same image: the segment
    runs parallel to the gland's centreline (projected to the loop's height) at one fat
    plane's distance, both ends turn away in the same plane, and only beyond the fine
    crop's margin does the lumen open (gas or fluid). Three sites (in front of the neck/body,
    below the body/tail, in front of the head), each present with probability ``lookalike``;
    every site's draws are made whether it is present or not, so the knob changes nothing
    else.

    Args:
        ph: the `Canvas`; reads the pancreas's centreline (`p_pts`, `p_r`, `p_s`), `p_lob`,
        `look_plane`, `body`; sets `looks` and the meta ``lookalikes`` (the sites present).
    """
    r, cfg = ph.rng, ph.cfg
    margin = cfg.lookalike_margin_px * ph.grid.shape[0] * ph.grid.spacing[0] / 512.0
    sites = [  # (name, u range along the pancreas, height offset in thicknesses)
        ("anterior_body", (0.40, 0.66), 0.0),
        ("inferior_tail", (0.55, 0.85), -0.8),
        ("anterior_head", (0.10, 0.32), -0.3),
    ]
    draws = r.uniform(0, 1, len(sites))
    ph.looks = []
    for k_site, ((name, (u0, u1), dzf), u) in enumerate(zip(sites, draws)):
        jit = r.uniform(-0.04, 0.04, 2)
        rl_f = r.uniform(0.75, 1.0)
        gap_extra = r.uniform(0.5, 2.5)
        exit_gas = r.uniform(0, 1) < 0.6
        turn = r.uniform(0.4, 0.9, 2)
        ln_out = r.uniform(70, 110, 2)
        r_open = r.uniform(11, 14)
        if cfg.lookalike <= 0 or u >= cfg.lookalike:
            continue
        sel = (ph.p_s >= u0 + jit[0]) & (ph.p_s <= u1 + jit[1])
        c, pr = ph.p_pts[sel][::2], ph.p_r[sel][::2]
        if len(c) < 3:
            continue
        rl = pr * rl_f
        dist = pr + ph.look_plane + gap_extra + rl          # centre to centre
        ch = c.copy()
        ch[:, 2] = c[:, 2].mean() + dzf * dist.mean()         # a horizontal loop
        th = np.gradient(ch, axis=0)
        th[:, 2] = 0
        th /= np.maximum(np.linalg.norm(th, axis=1, keepdims=True), 1e-9)
        nh = np.stack([-th[:, 1], th[:, 0], np.zeros(len(th))], 1)
        nh *= np.where(nh[:, 1:2] < 0, -1.0, 1.0)             # the anterior side
        horiz = dist * math.sqrt(max(1.0 - dzf ** 2, 0.36))
        path = ch + nh * horiz[:, None]
        # both ends turn away from the pancreas in the same plane, open beyond the margin
        # and fold back into the abdomen (a loop, kept inside the cavity)
        ends = []
        for k, (p_end, t_dir, nr) in enumerate(((path[0], -th[0], nh[0]),
                                                (path[-1], th[-1], nh[-1]))):
            dvec = unit(t_dir * (1 - turn[k]) + nr * turn[k])
            p1 = p_end + dvec * (margin + 18.0)
            d2 = np.array([-dvec[1], dvec[0], 0.0])
            away = p1 - ph.p_pts.mean(0)
            if np.dot(d2[:2], away[:2]) < 0:
                d2 = -d2                                     # fold away from the gland
            d2 = unit(0.5 * dvec + d2)
            pts_k = [p_end + dvec * (margin + 18.0) * 0.5, p1, p1 + d2 * ln_out[k] * 0.5,
                     p1 + d2 * ln_out[k]]
            ends.append(np.array([in_cavity(ph, q, r_open + 6) for q in pts_k]))
        ctrl = np.vstack([ends[0][::-1], path, ends[1]])
        pts = spline(ctrl, ph.step)[0]
        # outer radius: the look-alike's thickness along the gland, a normal loop once it
        # has left the gland by more than the margin (arc length from the parallel part)
        seg = np.linalg.norm(np.diff(pts, axis=0), axis=1)
        s_arc = np.concatenate([[0.0], np.cumsum(seg)])
        i0 = int(np.argmin(np.linalg.norm(pts - path[0], axis=1)))
        i1 = int(np.argmin(np.linalg.norm(pts - path[-1], axis=1)))
        beyond = np.maximum(s_arc[i0] - s_arc, s_arc - s_arc[i1])     # <= 0 on the part
        # the gland's box in the loop's axial plane; the lumen opens beyond box + margin
        near = np.abs(ph.p_pts[:, 2] - ch[0, 2]) <= ph.p_r + 4.0
        if not near.any():
            near = np.abs(ph.p_pts[:, 2] - ch[0, 2]) <= 2.0 * ph.p_r + 10.0
        q, rq = ph.p_pts[near], ph.p_r[near][:, None]
        blo, bhi = (q[:, :2] - rq).min(0), (q[:, :2] + rq).max(0)
        d_box = np.max(np.stack([blo[0] - pts[:, 0], pts[:, 0] - bhi[0],
                                 blo[1] - pts[:, 1], pts[:, 1] - bhi[1]]), axis=0)
        rmid = float(np.mean(rl))
        opn = np.where(beyond > 0, smoothstep((d_box - margin - 2.0) / 8.0), 0.0)
        rad = rmid + (r_open - rmid) * opn
        lum = np.where(opn > 0.15, (rad - 2.5) * opn, 0.0)
        gas = np.full(len(pts), 0.45 if exit_gas else 0.0)
        # its own lattice generator: the other shapes do not change with the knob
        lrng = np.random.default_rng([*ph.seed_ids, 10 + k_site])
        lobn = Noise(lrng, ctrl.min(0) - 20, ctrl.max(0) + 20, 5.0)
        ph.hollow_dense(pts, rad, lum, gas, "look", solid="look_solid",
                          noise=(ph.p_lob[0], lobn), pad=ph.p_lob[0] * 3)
        ph.looks.append(name)
    ph.meta["lookalikes"] = list(ph.looks)


def in_cavity(ph: Canvas, p, inset):
    """Pull point p (mm) inside the abdominal cavity's ellipse shrunk by `inset` mm.

    Args:
        ph: the `Canvas` (reads `body`); p: (3,) mm; inset: mm.
    Returns:
        p itself (as float) when inside, else p scaled towards the ellipse's centre onto it.
    """
    a, b_ant, b_post = ph.body["cavity"]
    yc = ph.body["yc"]
    b = b_ant if p[1] > yc else b_post
    q = np.array([p[0] / max(a - inset, 10.0), (p[1] - yc) / max(b - inset, 10.0)])
    k = float(np.hypot(*q))
    if k <= 1.0:
        return np.asarray(p, float)
    out = np.array(p, float)
    out[0] /= k
    out[1] = yc + (p[1] - yc) / k
    return out
