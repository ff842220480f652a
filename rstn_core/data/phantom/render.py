"""The CT image of a case: from its tissue map to Hounsfield units."""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from rstn_core.data.phantom.canvas import Canvas
from rstn_core.data.phantom.geometry import Noise
from rstn_core.data.phantom.tissues import TISSUE, TISSUE_TABLE

__all__ = ["render_image"]


def render_image(ph: Canvas):
    """The CT image of a built case: HU per tissue, texture, blur, correlated noise.

    HU = table HU + enh x E + N(0, 5) per enhanced tissue, E ~ U(-20, 20) per case (`e_case`);
    the pancreas 118 + E/2 + N(0, 4), clipped to [105, 130]; the look-alike at the
    pancreas's HU - 30 (1 - lookalike); then every soft tissue's difference to the pancreas
    times ``contrast``. Image = HU[T] + fine texture (~1 mm correlation) x tex + slow texture
    (7 mm lattice) x low, Gaussian blur ``blur_vox``, + noise of std ``noise_hu`` (~0.9 mm
    correlation), clipped to [-1024, 3071]. Draws from `rng` (HU) and `nrng` (texture and noise).

    Args:
        ph: a built `Canvas` (`anatomy.build_tissues`); sets the meta ``hu`` (HU of a few
        tissues).
    Shapes:
        returns: (X, Y, Z) float32 HU, the shape of `ph.T`.
    """
    cfg, r, T = ph.cfg, ph.rng, ph.T
    n = len(TISSUE_TABLE)
    hu = np.array([row[1] for row in TISSUE_TABLE], np.float32)
    tex = np.array([row[2] for row in TISSUE_TABLE], np.float32)
    low = np.array([row[3] for row in TISSUE_TABLE], np.float32)
    enh = np.array([row[6] for row in TISSUE_TABLE], np.float32)
    soft = np.array([row[7] for row in TISSUE_TABLE], bool)
    # per-case enhancement and per-tissue jitter
    e = ph.e_case
    hu = hu + enh * e + np.where(enh > 0, r.normal(0, 5, n), 0).astype(np.float32)
    p = TISSUE["pancreas"]
    hu[p] = np.clip(118 + 0.5 * e + r.normal(0, 4), 105, 130)
    # the look-alike: pancreas HU and texture, offset by 30 * (1 - lookalike)
    hu[TISSUE["look_solid"]] = hu[p] - 30.0 * (1 - cfg.lookalike)
    tex[TISSUE["look_solid"]] = (tex[p] * cfg.lookalike
                                 + tex[TISSUE["bowel_wall"]] * (1 - cfg.lookalike))
    hu[TISSUE["cyst"]] = r.uniform(0, 20)
    # contrast knob: scale every soft tissue's difference to the pancreas
    hu = np.where(soft, hu[p] + cfg.contrast * (hu - hu[p]), hu).astype(np.float32)
    ph.meta["hu"] = {k: round(float(hu[TISSUE[k]]), 1) for k in
                       ("pancreas", "look_solid", "liver", "spleen", "bowel_wall",
                        "duo_wall", "aorta", "portal")}
    g = ph.grid
    sp = np.asarray(g.spacing)
    img = hu[T]
    # fine texture (lobules, fat strands) and a slow one (mottled stool, liver mottling)
    if tex.any():
        f = ph.nrng.standard_normal(T.shape, dtype=np.float32)
        ndimage.gaussian_filter(f, np.clip(1.0 / sp, 0.4, 2.0), truncate=3.0, output=f)
        f *= np.float32(1.0 / max(float(f[::3, ::3, ::3].std()), 1e-6))
        f *= tex[T]
        img += f
        del f
    lo = np.array([g.axes[i][0] for i in range(3)]) - 1
    hi = np.array([g.axes[i][-1] for i in range(3)]) + 1
    lf = Noise(ph.nrng, lo, hi, 7.0).on_axes(*g.axes)
    lf *= low[T]
    img += lf
    del lf
    if cfg.blur_vox > 0:
        ndimage.gaussian_filter(img, cfg.blur_vox, truncate=3.0, output=img)
    if cfg.noise_hu > 0:
        nse = ph.nrng.standard_normal(T.shape, dtype=np.float32)
        sig = np.clip(0.9 / sp, 0.5, 2.0)
        sig[2] = min(sig[2], 0.6)
        ndimage.gaussian_filter(nse, sig, truncate=3.0, output=nse)
        nse *= np.float32(cfg.noise_hu / max(float(nse[::3, ::3, ::3].std()), 1e-6))
        img += nse
        del nse
    np.clip(img, -1024, 3071, out=img)
    return img
