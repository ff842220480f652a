"""A synthetic contrast-enhanced abdominal CT phantom that makes the papers' problem real.

The one job: a small, low-contrast, irregular target among look-alike neighbours, so that a
coarse 2D network on the whole slice struggles and a fine network on a box around the organ
does better — and (the ``lookalike`` knob) so that a fine network that sees *only* the box is
fooled by structures that wider context identifies, which is where RSTN's saliency from the
coarse map should help (CVPR 2018, Fig. 2).

How a case is made (all geometry in millimetres, then sampled on the voxel grid; the anatomy
depends only on (seed, case id), not on the grid (but for sub-voxel details), so the smoke,
standard and paper scales of one case show the same patient):

1. Tissues are painted into a tissue map by priority (`_TISSUE_TABLE`): air, CT table, body
   outline with subcutaneous fat and a muscle wall, visceral fat, erector spinae, quadratus
   lumborum and psoas, vertebrae (cancellous body, cortical rim, discs, canal, posterior
   elements), ribs, lung bases, diaphragm and heart when the field of view reaches them,
   liver (two lobes, lumpy surface, hepatic and portal vessels), spleen (crescent), kidneys
   (cortex, medulla, sinus fat), adrenal glands (thin inverted Ys), gallbladder, stomach
   (fluid, gas at the anterior side, 4-5 mm wall), duodenal C-loop around the pancreatic head,
   colon with haustra and mottled stool and gas, 10-13 small-bowel loops (random walks; fluid,
   gas or collapsed), aorta, IVC, iliac vessels, coeliac trunk, splenic and hepatic arteries,
   SMA, SMV, portal and splenic veins, renal vessels, and the pancreas.
2. The pancreas: a curved head-neck-body-tail tube (Catmull-Rom centreline through 9 jittered
   control points, radius 8-15 mm, flatter antero-posteriorly) plus an ellipsoidal head, all
   scaled by ``target_scale`` x U(0.92, 1.08), rotated and shifted per case; the head sits in
   the duodenal C-loop, the neck in front of the SMV/portal confluence, the body arches over
   the SMA and aorta with the splenic vein along its back, the tail rises to the splenic
   hilum. Lobulated edges come from smooth value noise added to its distance field. There
   is no fat *inside* the label (clefts no method can see capped every method near 0.85 on
   the first phantom): the label is exactly the tissue that is painted.
3. Fat planes: a 2-3.5 mm layer of fat is carved between the gland and any touching bowel,
   duodenum, stomach, liver or spleen, except on a random ``fat_plane_missing_prob`` fraction
   of its surface (smooth noise), where the neighbour's wall (HU like the pancreas) presses
   directly against it. Collapsed bowel and the look-alikes always keep a fat plane (at least
   1.3 voxels), so every label boundary is visible in the image.
4. Cysts (``cysts``): 1-3 ellipsoids of 0-20 HU with 0-3 thin septa, 0.002%-0.1% of a
   352 x 352 x 240 mm volume in total (log-uniform); the gland grows around them (2.5 mm rim),
   and in 10% of the cases one cyst bulges out (15-45% of its radius outside). Label 2.
5. Look-alikes (``lookalike``): three sites — in front of the neck/body, below the body/tail,
   in front of the head — each present with probability ``lookalike``. A site is a
   horizontal bowel loop (one axial plane) whose middle runs parallel to the pancreas at one
   fat plane's distance, as thick as the gland, collapsed: solid, with the pancreas's HU and
   texture (offset 30 x (1 - lookalike) HU) and lobulated like it. Both ends turn away in the
   same plane and fold back into the abdomen; only where the loop is farther than the fine
   crop's margin (``lookalike_margin_px`` at 512 px, i.e. ~21 mm) from the gland's box does
   its lumen open (gas or fluid). Inside the box it looks like pancreas; in the whole axial
   slice it visibly continues into a bowel loop. Label 14 (``bowel_lookalike``; the target
   ``"bowel"`` joins 13 and 14). On 8 standard cases, 78% of the solid look-alike voxels that
   lie in a pancreas box (+9 px, the standard test frame) belong to a loop whose lumen shows in
   the same axial slice outside that box (4% inside it).
6. The image: HU per tissue from the papers' table with per-case enhancement (U(-20, 20) HU
   times each tissue's enhancement factor, plus +-5 HU jitter per tissue; the pancreas 105-130
   HU), the ``contrast`` knob (every soft tissue's HU difference to the pancreas is
   multiplied by it), fine texture (lobules) and slow texture (stool, liver mottling),
   partial-volume blur (``blur_vox``), spatially correlated noise (``noise_hu``, ~0.9 mm
   correlation), clipped to [-1024, 3071].

Measured on 20 standard cases (seed 0; tests/test_phantom.py checks cases 0-2): the pancreas
is 0.12-0.24% of the voxels; its largest axial slice is 0.6-1.7% of the slice (< 1.5% in 18 of
20), its largest slice in the other views up to 1.3% (constant x) and 1.95% (constant y, the
whole head or body in one plane); median HU under it 93-118; the best single HU interval scores
DSC <= 0.065 against it over the volume (<= 0.31 inside its box + 20 px); cysts lie >= 95%
inside the gland in 19 of 20. Time a case (CPU seconds): smoke ~0.25, standard ~0.8, paper
~25 (peak memory ~2 GB at 512 x 512 x 383).
"""
from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
from scipy import ndimage
from scipy.special import ndtri

from rstn_core.data.case import Case
from rstn_core.data.errors import DataError
from rstn_core.data.labels import PHANTOM_LABELS

__all__ = ["PhantomConfig", "phantom_preset", "make_case", "write_dataset", "SCALES",
           "PHANTOM_LABELS", "GENERATOR_VERSION"]

#: Bump when the same (config, seed, case id) would give a different volume.
GENERATOR_VERSION = 1
SCALES = ("smoke", "standard", "paper")
# Reference field of view (mm) that cyst sizes are drawn against, so that a case's anatomy
# does not depend on the grid it is sampled on.
_REF_VOLUME_MM3 = 352.0 * 352.0 * 240.0


# --------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------
@dataclass
class PhantomConfig:
    """Geometry and difficulty knobs of the synthetic abdominal CT phantom.

    Plain JSON-serialisable fields (tuples become lists in JSON; `from_dict` turns them back).

    Geometry:
        shape: voxels (X, Y, Z) of every case (with `slices_range`, Z is drawn per case).
        spacing: voxel size in mm (x, y, z); the field of view is shape * spacing.
        slices_range: (lo, hi) draw the number of slices per case in [lo, hi] (the paper scale,
            like NIH's L in [181, 466]); None keeps shape[2].
    Difficulty knobs:
        target_scale: pancreas size factor (1 = adult, 45-90 ml, median ~60).
        contrast: factor on every soft tissue's HU difference to the pancreas (1 = realistic,
            0 = all soft tissue at pancreas HU, 2 = twice the real differences).
        noise_hu: standard deviation of the spatially correlated noise, HU (real CT: 10-25).
        lookalike: 0..1. Each of three look-alike sites (a collapsed bowel segment with pancreas
            HU and texture, parallel to the pancreas inside its box) is present with this
            probability; their HU offset to the pancreas is 30 * (1 - lookalike). 0 = none.
        lookalike_margin_px: the fine crop's margin the look-alikes are designed against, in
            pixels of a 512-px slice (as `config.scaled_px`; MICCAI's test frame 30, CVPR's
            K = 20): their lumen opens only beyond it (mm = px * field of view / 512).
        cysts: put 1-3 cysts (0-20 HU, thin septa) in the pancreas of every case.
        fat_plane_missing_prob: fraction of the pancreas surface where the fat plane to a
            touching neighbour (bowel, duodenum, stomach, spleen) is missing.
        blur_vox: partial-volume blur, Gaussian sigma in voxels.
    """
    shape: tuple = (160, 160, 96)
    spacing: tuple = (2.2, 2.2, 2.5)
    slices_range: tuple | None = None
    target_scale: float = 1.0
    contrast: float = 1.0
    noise_hu: float = 15.0
    lookalike: float = 0.7
    lookalike_margin_px: int = 30
    cysts: bool = True
    fat_plane_missing_prob: float = 0.3
    blur_vox: float = 0.5

    def __post_init__(self):
        self.shape = tuple(int(v) for v in self.shape)
        self.spacing = tuple(float(v) for v in self.spacing)
        if self.slices_range is not None:
            self.slices_range = tuple(int(v) for v in self.slices_range)
        if len(self.shape) != 3 or min(self.shape) < 16:
            raise DataError(f"PhantomConfig: shape must be 3 sizes >= 16, got {self.shape}.")
        if len(self.spacing) != 3 or min(self.spacing) <= 0:
            raise DataError(f"PhantomConfig: spacing must be 3 positive mm, got {self.spacing}.")
        sr = self.slices_range
        if sr is not None and (len(sr) != 2 or not 16 <= sr[0] <= sr[1]):
            raise DataError(f"PhantomConfig: slices_range must be (lo, hi) with 16 <= lo <= hi, "
                            f"got {self.slices_range}.")
        checks = [("target_scale", 0.3, 3.0), ("contrast", 0.0, 5.0), ("noise_hu", 0.0, 200.0),
                  ("lookalike", 0.0, 1.0), ("fat_plane_missing_prob", 0.0, 1.0),
                  ("blur_vox", 0.0, 5.0), ("lookalike_margin_px", 0, 500)]
        for name, lo, hi in checks:
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not lo <= v <= hi:
                raise DataError(f"PhantomConfig: {name} must be a number in [{lo}, {hi}], got "
                                f"{v!r}.")

    @property
    def fov_mm(self) -> tuple[float, float, float]:
        """Field of view in mm, shape * spacing (z with the default number of slices)."""
        return tuple(n * s for n, s in zip(self.shape, self.spacing))

    def to_dict(self) -> dict:
        return json.loads(json.dumps(asdict(self)))

    @classmethod
    def from_dict(cls, d: dict) -> "PhantomConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise DataError(f"PhantomConfig: unknown keys {sorted(unknown)}; expected a subset "
                            f"of {sorted(known)}.")
        return cls(**d)


def phantom_preset(scale: str) -> PhantomConfig:
    """The phantom of a named scale.

    - ``"smoke"``: 96 x 96 x 48, 3.67 x 3.67 x 5 mm (CI; well under 1 s a case).
    - ``"standard"``: 160 x 160 x 96, 2.2 x 2.2 x 2.5 mm (the book's CPU scale; ~1-2 s a case).
    - ``"paper"``: 512 x 512 x L, 0.7 x 0.7 x 1 mm, L drawn in [180, 460] (NIH-like).
    All three cover the same ~352 mm field of view in-plane.
    """
    if scale == "smoke":
        return PhantomConfig(shape=(96, 96, 48), spacing=(352 / 96, 352 / 96, 6.4))
    if scale == "standard":
        return PhantomConfig(shape=(160, 160, 96), spacing=(2.2, 2.2, 3.2))
    if scale == "paper":
        return PhantomConfig(shape=(512, 512, 240), spacing=(0.7, 0.7, 1.0),
                             slices_range=(180, 460))
    raise DataError(f"unknown phantom scale {scale!r}; expected one of {list(SCALES)}.")


# --------------------------------------------------------------------------------------------
# Tissues: HU, texture, label, paint priority, enhancement, soft tissue (contrast knob)
# --------------------------------------------------------------------------------------------
_TISSUE_TABLE = [
    # name              HU    tex  low  label                 prio  enh  soft
    ("air",           -1000,  0,   0,  "background",          100, 0.0, False),
    ("table",          -700, 20,   0,  "background",          100, 0.0, False),
    ("table_shell",     150, 10,   0,  "background",          100, 0.0, False),
    ("subcut_fat",     -105,  6,   5,  "background",          100, 0.0, False),
    ("wall_muscle",      55,  6,   3,  "background",           35, 0.15, True),
    ("visceral_fat",    -95,  8,   8,  "background",            1, 0.0, False),
    ("muscle",           52,  6,   3,  "background",           17, 0.15, True),
    ("diaphragm",        55,  5,   0,  "background",           18, 0.15, True),
    ("lung",           -860, 40,  30,  "background",           18, 0.0, False),
    ("heart",           150, 10,   5,  "background",           19, 1.0, True),
    ("bone_cortex",     900, 60,  40,  "vertebra",             40, 0.0, False),
    ("bone_marrow",     230, 35,  25,  "vertebra",             40, 0.0, False),
    ("disc",             85,  5,   0,  "background",           40, 0.0, False),
    ("canal",            25,  4,   0,  "background",           40, 0.0, False),
    ("rib_cortex",      750, 50,   0,  "background",           40, 0.0, False),
    ("rib_marrow",      230, 30,   0,  "background",           40, 0.0, False),
    ("pelvis_cortex",   800, 50,   0,  "background",           40, 0.0, False),
    ("pelvis_marrow",   220, 30,  20,  "background",           40, 0.0, False),
    ("bladder",          10,  3,   0,  "background",           17, 0.0, False),
    ("liver",           100,  5,   5,  "liver",                15, 0.8, True),
    ("liver_vessel",    165,  6,   0,  "liver",                16, 1.3, True),
    ("spleen",          125,  5,   4,  "spleen",               16, 1.0, True),
    ("gb_bile",          12,  3,   0,  "gallbladder",          17, 0.0, False),
    ("gb_wall",          75,  4,   0,  "gallbladder",          17, 0.5, True),
    ("kidney_cortex_l", 185,  7,   0,  "kidney_left",          25, 1.2, True),
    ("kidney_medulla_l", 135, 7,   0,  "kidney_left",          25, 1.0, True),
    ("kidney_cortex_r", 185,  7,   0,  "kidney_right",         25, 1.2, True),
    ("kidney_medulla_r", 135, 7,   0,  "kidney_right",         25, 1.0, True),
    ("renal_sinus",     -70, 15,   0,  "background",           26, 0.0, False),
    ("adrenal_l",        70,  6,   0,  "adrenal_left",         24, 0.6, True),
    ("adrenal_r",        70,  6,   0,  "adrenal_right",        24, 0.6, True),
    ("stomach_wall",    105,  8,   0,  "stomach",              12, 0.8, True),
    ("stomach_fluid",    18,  5,  10,  "stomach",              12, 0.0, False),
    ("stomach_gas",   -1000,  0,   0,  "stomach",              12, 0.0, False),
    ("duo_wall",        105,  8,   0,  "duodenum",             13, 0.8, True),
    ("duo_collapsed",   102,  9,   0,  "duodenum",             13, 0.8, True),
    ("duo_fluid",        20,  5,   5,  "duodenum",             13, 0.0, False),
    ("duo_gas",       -1000,  0,   0,  "duodenum",             13, 0.0, False),
    ("bowel_wall",      100,  8,   0,  "bowel",                10, 0.8, True),
    ("bowel_collapsed",  98,  9,   0,  "bowel",                10, 0.8, True),
    ("bowel_fluid",      22,  6,   6,  "bowel",                10, 0.0, False),
    ("bowel_gas",     -1000,  0,   0,  "bowel",                10, 0.0, False),
    ("colon_wall",       95,  8,   0,  "bowel",                11, 0.8, True),
    ("colon_content",   -60, 40, 140,  "bowel",                11, 0.0, False),
    ("colon_gas",     -1000,  0,   0,  "bowel",                11, 0.0, False),
    ("look_solid",      108, 10,   0,  "bowel_lookalike",      14, 1.0, True),
    ("look_wall",       105,  8,   0,  "bowel_lookalike",      14, 0.8, True),
    ("look_fluid",       20,  5,   5,  "bowel_lookalike",      14, 0.0, False),
    ("look_gas",      -1000,  0,   0,  "bowel_lookalike",      14, 0.0, False),
    ("pancreas",        108, 10,   0,  "pancreas",             20, 1.0, True),
    ("panc_duct",        25,  4,   0,  "pancreas",             21, 0.0, False),
    ("cyst",             10,  3,   0,  "cyst",                 22, 0.0, False),
    ("cyst_septum",      75,  5,   0,  "cyst",                 23, 0.4, False),
    ("aorta",           230,  8,   0,  "aorta",                30, 1.5, True),
    ("artery",          225,  8,   0,  "background",           30, 1.5, True),
    ("sma",             225,  8,   0,  "sma",                  30, 1.5, True),
    ("ivc",             140,  8,   0,  "ivc",                  30, 1.2, True),
    ("portal",          165,  8,   0,  "portal_splenic_vein",  30, 1.3, True),
    ("vein",            150,  8,   0,  "background",           30, 1.2, True),
]
_T = {row[0]: i for i, row in enumerate(_TISSUE_TABLE)}
_NAME_TO_LABEL = {n: v for v, n in PHANTOM_LABELS.items()}
_LABEL_LUT = np.zeros(256, np.uint8)
_PRIO = np.full(256, 255, np.int16)
for _i, _row in enumerate(_TISSUE_TABLE):
    _LABEL_LUT[_i] = _NAME_TO_LABEL[_row[4]]
    _PRIO[_i] = _row[5]
# Tissues a fat plane can be carved out of, and the "ambiguous solid" ones that always get one
_CARVABLE = np.zeros(256, bool)
for _n in ("stomach_wall", "stomach_fluid", "stomach_gas", "duo_wall", "duo_collapsed",
           "duo_fluid", "duo_gas", "bowel_wall", "bowel_collapsed", "bowel_fluid", "bowel_gas",
           "colon_wall", "colon_content", "colon_gas", "look_solid", "look_wall", "look_fluid",
           "look_gas", "liver", "spleen", "gb_wall", "gb_bile"):
    _CARVABLE[_T[_n]] = True
_ALWAYS_PLANE = np.zeros(256, bool)
for _n in ("duo_collapsed", "bowel_collapsed", "look_solid", "look_wall", "look_fluid",
           "look_gas"):
    _ALWAYS_PLANE[_T[_n]] = True


# --------------------------------------------------------------------------------------------
# Geometry helpers (all in mm; evaluated on sub-boxes of the voxel grid)
# --------------------------------------------------------------------------------------------
class _Grid:
    """Voxel centres in mm: axis i holds origin[i] + spacing[i] * arange(shape[i])."""

    def __init__(self, shape, spacing, origin):
        self.shape, self.spacing, self.origin = tuple(shape), tuple(spacing), tuple(origin)
        self.axes = [np.float32(origin[i]) + np.float32(spacing[i]) *
                     np.arange(shape[i], dtype=np.float32) for i in range(3)]

    def box(self, lo, hi):
        """Index slices of the voxels whose centres lie in the mm box [lo, hi]; None if empty."""
        out = []
        for i in range(3):
            a = max(int(math.ceil((lo[i] - self.origin[i]) / self.spacing[i])), 0)
            b = min(int(math.floor((hi[i] - self.origin[i]) / self.spacing[i])) + 1, self.shape[i])
            if a >= b:
                return None
            out.append(slice(a, b))
        return tuple(out)

    def coords(self, sl):
        """Broadcastable mm coordinates (X, Y, Z) of a sub-box."""
        return (self.axes[0][sl[0]][:, None, None], self.axes[1][sl[1]][None, :, None],
                self.axes[2][sl[2]][None, None, :])


def _local(inner, outer):
    """Slices of sub-box `inner` relative to the array of sub-box `outer`."""
    return tuple(slice(a.start - b.start, a.stop - b.start) for a, b in zip(inner, outer))


def _bspline_taps(u, n):
    """Cubic B-spline taps at lattice positions u: indices (4, m) and weights (4, m)."""
    i = np.floor(u).astype(np.int64)
    f = (u - i).astype(np.float32)
    w = np.stack([(1 - f) ** 3 / 6, (3 * f ** 3 - 6 * f ** 2 + 4) / 6,
                  (-3 * f ** 3 + 3 * f ** 2 + 3 * f + 1) / 6, f ** 3 / 6]).astype(np.float32)
    idx = np.stack([np.clip(i - 1 + k, 0, n - 1) for k in range(4)])
    return idx, w


# RMS of the B-spline weights: scales value noise to ~unit standard deviation
_f = np.linspace(0, 1, 1001)
_BS_RMS = float(np.sqrt(np.mean(((1 - _f) ** 3 / 6) ** 2
                               + ((3 * _f ** 3 - 6 * _f ** 2 + 4) / 6) ** 2
                               + ((-3 * _f ** 3 + 3 * _f ** 2 + 3 * _f + 1) / 6) ** 2
                               + (_f ** 3 / 6) ** 2)) ** 3)


class _Noise:
    """Smooth random field (cubic B-spline value noise) over a mm box, ~unit std.

    The lattice is drawn from the mm extent only, so a case's shapes do not depend on the grid.
    """

    def __init__(self, rng, lo, hi, cell):
        self.cell = float(cell)
        self.lo = np.asarray(lo, float) - 2 * self.cell
        n = np.ceil((np.asarray(hi, float) - self.lo) / self.cell).astype(int) + 4
        self.lattice = rng.standard_normal(tuple(n)).astype(np.float32) / np.float32(_BS_RMS)

    def on_axes(self, ax0, ax1, ax2):
        """Field on the grid spanned by 1D mm coordinate arrays (separable 4-tap sums)."""
        out = self.lattice
        for axis, a in ((2, ax2), (1, ax1), (0, ax0)):
            idx, w = _bspline_taps((np.asarray(a, float) - self.lo[axis]) / self.cell,
                                   out.shape[axis])
            shape = [1, 1, 1]
            shape[axis] = -1
            acc = np.take(out, idx[0], axis=axis)
            acc *= w[0].reshape(shape)
            for k in range(1, 4):
                term = np.take(out, idx[k], axis=axis)
                term *= w[k].reshape(shape)
                acc += term
            out = acc
        return np.ascontiguousarray(out, dtype=np.float32)

    def on(self, grid, sl):
        return self.on_axes(grid.axes[0][sl[0]], grid.axes[1][sl[1]], grid.axes[2][sl[2]])


def _rot(az=0.0, ay=0.0, ax=0.0):
    """Rotation matrix R = Rz(az) Ry(ay) Rx(ax), angles in degrees; columns are local axes."""
    a, b, c = np.radians([az, ay, ax])
    Rz = np.array([[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1]])
    Ry = np.array([[math.cos(b), 0, math.sin(b)], [0, 1, 0], [-math.sin(b), 0, math.cos(b)]])
    Rx = np.array([[1, 0, 0], [0, math.cos(c), -math.sin(c)], [0, math.sin(c), math.cos(c)]])
    return Rz @ Ry @ Rx


def _ellipsoid_sdf(X, Y, Z, c, r, R=None):
    """Approximate signed distance (mm) to an ellipsoid, centre c, semi-axes r, rotation R."""
    dx, dy, dz = X - float(c[0]), Y - float(c[1]), Z - float(c[2])
    if R is not None:
        R = np.asarray(R, float)
        qx = dx * float(R[0, 0]) + dy * float(R[1, 0]) + dz * float(R[2, 0])
        qy = dx * float(R[0, 1]) + dy * float(R[1, 1]) + dz * float(R[2, 1])
        qz = dx * float(R[0, 2]) + dy * float(R[1, 2]) + dz * float(R[2, 2])
    else:
        qx, qy, qz = dx, dy, dz
    rx, ry, rz = (float(v) for v in r)
    k0 = np.sqrt((qx / rx) ** 2 + (qy / ry) ** 2 + (qz / rz) ** 2)
    k1 = np.sqrt((qx / rx ** 2) ** 2 + (qy / ry ** 2) ** 2 + (qz / rz ** 2) ** 2)
    return k0 * (k0 - 1) / np.maximum(k1, 1e-6)


def _ellipse2d_sdf(X, Y, cx, cy, a, b):
    dx, dy = X - cx, Y - cy
    k0 = np.sqrt((dx / a) ** 2 + (dy / b) ** 2)
    k1 = np.sqrt((dx / a ** 2) ** 2 + (dy / b ** 2) ** 2)
    return k0 * (k0 - 1) / np.maximum(k1, 1e-6)


def _smin(a, b, k):
    """Smooth union of two distance fields (polynomial smooth minimum, blend width k mm)."""
    h = np.clip(0.5 + 0.5 * (b - a) / k, 0.0, 1.0)
    return b + (a - b) * h - k * h * (1.0 - h)


def _spline(ctrl, step, *attrs):
    """Catmull-Rom curve through control points, sampled about every `step` mm.

    Per-point attributes are interpolated linearly along the same parameter.
    Returns (points (N, 3), *attrs (N,)).
    """
    P = np.asarray(ctrl, float)
    n = len(P)
    Pe = np.vstack([2 * P[0] - P[1], P, 2 * P[-1] - P[-2]])
    pts, par = [], []
    for i in range(n - 1):
        p0, p1, p2, p3 = Pe[i], Pe[i + 1], Pe[i + 2], Pe[i + 3]
        m = max(2, int(math.ceil(np.linalg.norm(p2 - p1) / step)))
        t = np.linspace(0, 1, m, endpoint=False)[:, None]
        seg = 0.5 * ((2 * p1) + (-p0 + p2) * t + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t ** 2
                     + (-p0 + 3 * p1 - 3 * p2 + p3) * t ** 3)
        pts.append(seg)
        par.append(i + t[:, 0])
    pts.append(P[-1:])
    par.append(np.array([n - 1.0]))
    pts, par = np.vstack(pts), np.concatenate(par)
    out = [pts]
    for a in attrs:
        out.append(np.interp(par, np.arange(n), np.asarray(a, float)))
    return tuple(out)


def _smoothstep(x):
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


def _unit(v):
    v = np.asarray(v, float)
    return v / max(np.linalg.norm(v), 1e-9)


def _tube_fields(grid, pts, rad, pad=0.0):
    """Distance fields of a tube of varying radius along a polyline, on its bounding box.

    Returns (sl, sdf, s, dist, ey) or None: signed distance to the surface (mm), arc length
    of the closest axis point, distance to the axis, and the y offset from that axis point
    (for gas levels: gas rises anteriorly, to high y, in a supine patient).
    """
    pts = np.asarray(pts, float)
    rad = np.asarray(rad, float)
    ext = rad.max() + pad + 1
    sl = grid.box(pts.min(0) - ext, pts.max(0) + ext)
    if sl is None:
        return None
    shp = tuple(s.stop - s.start for s in sl)
    sdf = np.full(shp, 1e4, np.float32)
    spar = np.zeros(shp, np.float32)
    dist = np.zeros(shp, np.float32)
    ey = np.zeros(shp, np.float32)
    seg = np.diff(pts, axis=0)
    L = np.linalg.norm(seg, axis=1)
    cum = np.concatenate([[0.0], np.cumsum(L)])
    for i in range(len(seg)):
        if L[i] < 1e-6:
            continue
        re = max(rad[i], rad[i + 1]) + pad + 1
        ssl = grid.box(np.minimum(pts[i], pts[i + 1]) - re,
                            np.maximum(pts[i], pts[i + 1]) + re)
        if ssl is None:
            continue
        loc = _local(ssl, sl)
        X, Y, Z = grid.coords(ssl)
        p0 = [float(v) for v in pts[i]]
        d = [float(v) for v in seg[i]]
        Li = float(L[i])
        dx, dy, dz = X - p0[0], Y - p0[1], Z - p0[2]
        t = (dx * (d[0] / Li ** 2) + dy * (d[1] / Li ** 2) + dz * (d[2] / Li ** 2))
        np.clip(t, 0.0, 1.0, out=t)
        ex, eyy, ez = dx - t * d[0], dy - t * d[1], dz - t * d[2]
        dd = np.sqrt(ex * ex + eyy * eyy + ez * ez)
        f = dd - (float(rad[i]) + t * float(rad[i + 1] - rad[i]))
        cur = sdf[loc]
        m = f < cur
        cur[m] = f[m]
        spar[loc][m] = (float(cum[i]) + t * Li)[m]
        dist[loc][m] = dd[m]
        ey[loc][m] = np.broadcast_to(eyy, m.shape)[m]
    return sl, sdf, spar, dist, ey, cum


# --------------------------------------------------------------------------------------------
# The anatomy
# --------------------------------------------------------------------------------------------
class _Phantom:
    """Builds one case: a tissue map painted by priority, then the image and the label map."""

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
        self.grid = _Grid(shape, sp, origin)
        self.T = np.full(shape, _T["air"], np.uint8)
        self.step = max(4.0, 2.0 * min(sp))          # centreline sampling, mm
        self.minvox = min(sp[0], sp[1])
        self.meta = {}

    # -- painting ----------------------------------------------------------------------------
    def paint(self, sl, mask, tissue):
        """Set `tissue` where `mask` holds and the current tissue has no higher priority."""
        if sl is None:
            return
        region = self.T[sl]
        t = _T[tissue]
        ok = mask & (_PRIO[region] <= _PRIO[t])
        region[ok] = t

    def ellipsoid(self, c, r, R=None, pad=0.0):
        ext = max(r) + pad + 1
        sl = self.grid.box(np.asarray(c) - ext, np.asarray(c) + ext)
        if sl is None:
            return None, np.float32(1.0)
        X, Y, Z = self.grid.coords(sl)
        return sl, _ellipsoid_sdf(X, Y, Z, c, r, R)

    def tube(self, pts, rad, pad=0.0):
        return _tube_fields(self.grid, pts, rad, pad)

    def hollow(self, ctrl, radius, lumen, gas, kind, noise=None, pad=0.0):
        """Paint a hollow organ (bowel, stomach, duodenum) along control points.

        radius, lumen, gas: per control point outer radius (mm), lumen radius (mm; ~0 =
        collapsed) and gas fraction of the lumen. kind: tissue prefix ("bowel", "duo", ...).
        """
        pts, rad, lum, gasf = _spline(ctrl, self.step, radius, lumen, gas)
        return self.hollow_dense(pts, rad, lum, gasf, kind, noise=noise, pad=pad)

    def hollow_dense(self, pts, rad, lum, gasf, kind, noise=None, pad=0.0, solid=None):
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
        solid_name = solid or (kind + "_collapsed" if kind + "_collapsed" in _T else kind + "_wall")
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
        pts, rad = _spline(ctrl, self.step, radius)
        res = self.tube(pts, rad, pad=pad)
        if res is None:
            return None
        sl, sdf = res[0], res[1]
        self.paint(sl, sdf < 0, tissue)
        return res

    # -- the build ----------------------------------------------------------------------------
    def build(self):
        r = self.rng
        self.bs = r.uniform(0.88, 1.05)             # body size
        self.y_v = -28.0 + r.uniform(-4, 4)         # vertebral body centre (y)
        self.x_a = -8.0 + r.uniform(-4, 3)          # aorta centre (x)
        self.y_a = self.y_v + 28.0                  # aorta centre (y), in front of the spine
        self.e_case = r.uniform(-20, 20)            # contrast enhancement of this case (HU)
        self._body()
        self._spine()
        self._pancreas_geometry()
        self._vessels()
        self._kidneys_adrenals()
        self._liver_spleen_gb()
        self._stomach_duodenum()
        self._colon()
        self._small_bowel()
        self._lookalikes()
        self._pancreas_paint()
        self._thorax_pelvis()
        self._ribs()
        return self.T

    # body wall, fat, muscles, table -------------------------------------------------------
    def _body(self):
        r, g = self.rng, self.grid
        bs = self.bs
        a = 152.0 * bs
        b_ant, b_post = 128.0 * bs, 98.0 * bs       # AP ~226 mm, 1.35 : 1
        yc = self.y_v - 80.0 * bs + b_post          # posterior skin ~80 mm behind the spine
        t_ant, t_lat, t_post = r.uniform(8, 26), r.uniform(8, 24), r.uniform(8, 18)
        m = r.uniform(6, 9)
        self.body = dict(a=a, b_ant=b_ant, b_post=b_post, yc=yc, t_lat=t_lat, m=m,
                         cavity=(a - t_lat - m, b_ant - t_ant - m, b_post - t_post - m))
        X = g.axes[0][:, None]
        Y = g.axes[1][None, :]
        b = np.where(Y > yc, b_ant, b_post).astype(np.float32)
        skin = _ellipse2d_sdf(X, Y, 0.0, yc, a, b)
        b1 = np.where(Y > yc, b_ant - t_ant, b_post - t_post).astype(np.float32)
        outer_m = _ellipse2d_sdf(X, Y, 0.0, yc, a - t_lat, b1)
        inner_m = _ellipse2d_sdf(X, Y, 0.0, yc, a - t_lat - m, b1 - m)
        lay = np.full(skin.shape, _T["air"], np.uint8)
        # CT table: a curved slab under the patient
        yt = yc - b_post - 6 + 0.0004 * X ** 2
        slab = (Y < yt) & (Y > yt - 16) & (np.abs(X) < 210)
        lay[slab] = _T["table"]
        lay[slab & ((Y > yt - 2.5) | (Y < yt - 13.5))] = _T["table_shell"]
        lay[(Y < yt - 40) & (Y > yt - 44) & (np.abs(X) < 190)] = _T["table_shell"]
        lay[skin < 0] = _T["subcut_fat"]
        lay[outer_m < 0] = _T["wall_muscle"]
        lay[inner_m < 0] = _T["visceral_fat"]
        self.cavity2d = inner_m < 0
        # posterior muscles: erector spinae and quadratus lumborum
        ycn = self.y_v - 16.5 - 10.0
        for sx in (-1, 1):
            es = _ellipse2d_sdf(X, Y, sx * 28.0, ycn - 17, 23, 15)
            ql = _ellipse2d_sdf(X, Y, sx * 60.0 * bs, self.y_v - 18, 14, 9)
            lay[((es < 0) | (ql < 0)) & (inner_m < 0)] = _T["muscle"]
        self.T[:] = lay[:, :, None]

    def _spine(self):
        r, g = self.rng, self.grid
        yv, bs = self.y_v, self.bs
        sl = g.box((-70, yv - 80, -1e4), (70, yv + 25, 1e4))
        X, Y, Z = g.coords(sl)
        pitch = 36.0
        z0 = r.uniform(0, pitch)
        zl = np.mod(Z - z0, pitch) - pitch / 2                  # height within a vertebra
        grow = 1.0 - 0.0008 * Z                                 # lower vertebrae are larger
        rx, ry = 22.0 * grow, 16.5 * grow
        exy = _ellipse2d_sdf(X, Y, 0.0, yv, rx, ry)
        dbody = np.maximum(exy, np.abs(zl) - 13.5)
        self.paint(sl, dbody < 0, "bone_marrow")
        self.paint(sl, (dbody < 0) & (dbody > -1.8), "bone_cortex")
        self.paint(sl, (exy < 0) & (dbody >= 0), "disc")
        ycn = yv - 16.5 - 10.0                                  # spinal canal centre
        rc = np.sqrt(X ** 2 + (Y - ycn) ** 2)
        self.paint(sl, rc < 9.0 + 0 * Z, "canal")
        arch = (rc >= 9.0) & (rc < 15.0) & (Y < ycn + 5) & (np.abs(zl - 3) < 11)
        spinous = ((np.abs(X) < 4.0) & (Y < ycn - 12) & (Y > ycn - 48) &
                   (np.abs(zl + 6 + 0.35 * (Y - ycn + 12)) < 7))
        transverse = ((np.abs(Y - ycn - 3) < 3.5) & (np.abs(X) > 10) & (np.abs(X) < 33 * bs) &
                      (np.abs(zl - 2) < 4.5))
        post = arch | spinous | transverse
        self.paint(sl, post, "bone_marrow")
        # a cortical rim on the posterior elements: voxels next to non-bone
        rim = post & ~ndimage.binary_erosion(post, iterations=1)
        self.paint(sl, rim & (self.minvox < 1.5), "bone_cortex")
        # psoas muscles beside the spine, growing downwards
        for sx in (-1, 1):
            ctrl = [(sx * 20, yv + 2, 40), (sx * 30, yv + 3, -30), (sx * 42, yv + 8, -110),
                    (sx * 58, yv + 22, -200), (sx * 66, yv + 35, -280)]
            self.solid_tube(ctrl, [4, 12, 20, 22, 20], "muscle")

    # the pancreas centreline (everything around it is placed relative to it) ----------------
    def _pancreas_geometry(self):
        r = self.rng
        cfg = self.cfg
        ya = self.y_a
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
        R = _rot(r.uniform(-8, 8), 0, r.uniform(-5, 5))
        P = (base[:, :3] - pivot) @ R.T * s + pivot + r.uniform([-6, -4, -6], [6, 4, 6])
        rad = base[:, 3] * s * 0.93
        self.p_ctrl, self.p_rad, self.p_scale = P, rad, s
        # dense centreline (for cysts, look-alikes, splenic vein)
        self.p_pts, self.p_r = _spline(P, 2.0, rad)
        seg = np.linalg.norm(np.diff(self.p_pts, axis=0), axis=1)
        self.p_s = np.concatenate([[0], np.cumsum(seg)]) / seg.sum()     # 0..1 along it
        # the head: an ellipsoid around the two head points
        hc = 0.5 * (P[1] + P[2])
        self.head = dict(c=hc, r=np.array([13.0, 11.0, 15.0]) * s * r.uniform(0.9, 1.1, 3),
                         R=_rot(r.uniform(-15, 15), 0, 0))
        self.p_lob = (r.uniform(0.8, 1.6), r.uniform(1.5, 3.0))            # lobulation mm
        self.p_xscale = (1.0, r.uniform(0.95, 1.1), r.uniform(0.8, 0.95))  # flatter AP
        self.fat_plane = r.uniform(2.0, 3.5)
        self.look_plane = max(3.0, 1.3 * max(self.grid.spacing[0], self.grid.spacing[1]))
        self.meta["pancreas_scale"] = round(float(s), 3)

    def _vessels(self):
        r = self.rng
        xa, ya, P = self.x_a, self.y_a, self.p_ctrl
        ra = r.uniform(10, 12.5)
        # aorta and the iliac arteries
        aorta = [(xa, ya - 4, 320), (xa, ya, 160), (xa + 1, ya + 1, 0), (xa, ya + 2, -115)]
        self.solid_tube(aorta, [ra * 1.1, ra, ra, ra * 0.9], "aorta")
        for sx in (-1, 1):
            self.solid_tube([(xa, ya + 2, -112), (xa + sx * 30, ya, -170),
                             (xa + sx * 55, ya - 5, -260)], [7, 6.5, 6.5], "artery")
        # IVC (elliptic) and the iliac veins
        xi, yi = 24.0 + r.uniform(-3, 3), ya - 2
        self.ivc = (xi, yi)
        ivc = [(xi + 2, yi - 4, -120), (xi, yi, -40), (xi, yi + 2, 60), (xi - 5, yi + 8, 130),
               (xi - 12, yi + 12, 200)]
        self.solid_tube(ivc, [11, 11.5, 12, 12, 13], "ivc")
        for sx in (-1, 1):
            self.solid_tube([(xi + 2, yi - 4, -118), (xi + sx * 28 - 10, yi - 8, -170),
                             (xa + sx * 55, ya - 14, -260)], [8, 8, 8], "vein")
        # SMA from the aorta, and the coeliac trunk with splenic and common hepatic arteries
        zb = P[4, 2]                                                # level of the body
        z_sma = zb - 6
        self.solid_tube([(xa, ya + ra - 2, z_sma + 2), (xa + 1, ya + 20, z_sma - 6),
                         (xa + 3, ya + 24, z_sma - 40), (xa + 8, ya + 28, -130),
                         (xa + 14, ya + 32, -230)], [4, 4, 3.8, 3.5, 3], "sma")
        zc = z_sma + 16
        self.solid_tube([(xa, ya + ra - 2, zc), (xa, ya + 22, zc + 4)], [3.5, 3.5], "artery")
        tail = P[-2]
        self.solid_tube([(xa, ya + 22, zc + 4), (xa - 20, ya + 24, zc + 10),
                         ((xa + tail[0]) / 2, tail[1] + 22, tail[2] + 14),
                         (tail[0] - 8, tail[1] + 6, tail[2] + 14)], [3, 2.8, 2.6, 2.5], "artery")
        self.solid_tube([(xa, ya + 22, zc + 4), (xa + 25, ya + 28, zc + 8),
                         (xa + 50, ya + 30, zc + 25)], [2.8, 2.6, 2.5], "artery")
        # portal venous system: SMV, confluence behind the neck, portal and splenic veins
        neck = P[3]
        conf = neck + np.array([-2.0, -(self.p_rad[3] + 5.5), 2.0])
        self.conf = conf
        self.solid_tube([(conf[0] + 6, conf[1] + 2, -230), (conf[0] + 5, conf[1] + 2, -120),
                         (conf[0] + 3, conf[1] + 2, -40), tuple(conf)], [6, 6, 6.5, 7], "portal")
        self.pv_end = np.array([conf[0] + 48, conf[1] + 4, conf[2] + 55])
        self.solid_tube([tuple(conf), (conf[0] + 22, conf[1] + 2, conf[2] + 22),
                         tuple(self.pv_end)], [7.5, 7.5, 7], "portal")
        # splenic vein: along the posterior surface of body and tail, half embedded
        sel = self.p_s >= self.p_s[np.argmin(np.linalg.norm(self.p_pts - neck, axis=1))]
        pts, rr = self.p_pts[sel], self.p_r[sel]
        post = np.array([0.0, -1.0, 0.25])
        sv = [tuple(conf)] + [tuple(p + _unit(post) * (q * 0.85)) for p, q in
                              zip(pts[::6], rr[::6])]
        sv.append(tuple(pts[-1] + np.array([-14.0, -10.0, 6.0])))
        self.sv_pts = np.asarray(sv)
        self.solid_tube(sv, [5.0] * len(sv), "portal")
        # left renal vein: kidney hilum, in front of the aorta under the SMA, into the IVC
        zr = z_sma - 12
        self.solid_tube([(-48, self.y_v - 2, zr - 4), (xa - 14, ya + 10, zr),
                         (xa, ya + ra + 4, zr), (xi - 6, yi + 3, zr - 2)],
                        [5, 4.5, 4.5, 5], "vein")
        self.solid_tube([(48, self.y_v - 6, zr - 22), (xi + 6, yi, zr - 16)], [5, 5], "vein")
        # renal arteries
        self.solid_tube([(xa - 5, ya - 3, zr + 2), (-46, self.y_v - 6, zr - 2)], [3, 3], "artery")
        self.solid_tube([(xa + 5, ya - 3, zr), (xi, yi - 14, zr - 12),
                         (46, self.y_v - 10, zr - 20)], [3, 3, 3], "artery")

    def _kidneys_adrenals(self):
        r = self.rng
        yv = self.y_v
        for side, sx, zc in (("l", -1, -12.0), ("r", 1, -32.0)):
            c = np.array([sx * 70.0 * self.bs, yv - 6, zc + r.uniform(-8, 8)])
            rr = np.array([24.0, 21.0, 52.0]) * r.uniform(0.9, 1.1, 3)
            R = _rot(sx * -28 + r.uniform(-8, 8), sx * 12, -12)
            sl, d = self.ellipsoid(c, rr, R, pad=2)
            self.paint(sl, d < 0, f"kidney_cortex_{side}")
            sl2, d2 = self.ellipsoid(c, rr - 7.0, R)
            nz = _Noise(self.lrng, c - rr, c + rr, 9.0)
            self.paint(sl2, (d2 + 2.5 * nz.on(self.grid, sl2)) < 0, f"kidney_medulla_{side}")
            # renal sinus fat at the hilum (anteromedial)
            hil = c + R @ np.array([-sx * rr[0] * 0.8, 0, 0])
            sl3, d3 = self.ellipsoid(hil, (rr[0] * 0.42, rr[1] * 0.3, rr[2] * 0.45), R)
            self.paint(sl3, d3 < 0, "renal_sinus")
            setattr(self, f"kidney_{side}", (c, rr))
        # adrenal glands: thin inverted-Y sheets above the kidneys
        xa, xi, yi = self.x_a, self.ivc[0], self.ivc[1]
        thick = max(2.6, 0.5 * self.minvox)
        cl, rl = self.kidney_l
        apex = np.array([xa - 22, self.y_a - 6, cl[2] + rl[2] * 0.75 + 8]) + r.uniform(-3, 3, 3)
        for end in (apex + (2, -16, -24), apex + (-12, -12, -20)):
            self.solid_tube([tuple(apex), tuple((apex + end) / 2), tuple(end)],
                            [thick * 1.3, thick, thick * 0.8], "adrenal_l")
        cr, rrr = self.kidney_r
        apex = np.array([xi + 4, yi - 20, cr[2] + rrr[2] * 0.75 + 10]) + r.uniform(-3, 3, 3)
        for end in (apex + (-2, -14, -24), apex + (12, -10, -20)):
            self.solid_tube([tuple(apex), tuple((apex + end) / 2), tuple(end)],
                            [thick * 1.3, thick, thick * 0.8], "adrenal_r")

    def _liver_spleen_gb(self):
        r, g = self.rng, self.grid
        bs = self.bs
        # liver: right lobe + left lobe, smooth union, lumpy surface, cut below the porta
        c1 = np.array([72.0 * bs, self.y_a + 22, 72]) + r.uniform(-6, 6, 3)
        r1 = np.array([82.0 * bs, 92.0, 92]) * r.uniform(0.93, 1.07, 3)
        c2 = np.array([-15.0, self.y_a + 62, 95]) + r.uniform(-6, 6, 3)
        r2 = np.array([62.0, 38.0, 40]) * r.uniform(0.9, 1.1, 3)
        lo = np.minimum(c1 - r1, c2 - r2) - 10
        hi = np.maximum(c1 + r1, c2 + r2) + 10
        sl = g.box(lo, hi)
        if sl is not None:
            X, Y, Z = g.coords(sl)
            d = _smin(_ellipsoid_sdf(X, Y, Z, c1, r1), _ellipsoid_sdf(X, Y, Z, c2, r2), 25.0)
            d = d + 6.0 * _Noise(self.lrng, lo, hi, 35.0).on(g, sl)
            # inferior surface: above the pancreatic head, duodenum and right kidney
            hz = self.head["c"][2] + self.head["r"][2]
            zcut = hz + 8 - 0.55 * np.maximum(X - 55.0, 0) + 0.0 * Y
            liver = (d < 0) & (Z > zcut)
            self.paint(sl, liver, "liver")
            self.liver_sl = sl
        # hepatic veins (to the IVC at the top) and portal branches (from the hilum)
        xi, yi = self.ivc
        top = np.array([xi - 8, yi + 10, 150.0])
        for ang, ln in ((-60, 90), (10, 85), (70, 75)):
            a = math.radians(ang)
            end = top + np.array([math.cos(a) * ln * 0.9 + 30, math.sin(a) * ln * 0.5 + 35, -70])
            self._liver_vessel([top, (top + end) / 2 + r.uniform(-6, 6, 3), end], [6, 5, 3])
        pv = self.pv_end
        for end in (pv + (55, -5, 30), pv + (35, 30, 10), pv + (-45, 35, 30)):
            self._liver_vessel([pv, (pv + end) / 2 + r.uniform(-5, 5, 3), end], [6, 4.5, 3])
        # spleen: a crescent against the left posterolateral wall
        c = np.array([-106.0 * bs, self.y_v + 2, 52]) + r.uniform(-5, 5, 3)
        rr = np.array([24.0, 58.0, 50.0]) * r.uniform(0.85, 1.15, 3)
        R = _rot(-38 + r.uniform(-8, 8), 0, 0)
        sl, d = self.ellipsoid(c, rr, R)
        if sl is not None:
            X, Y, Z = g.coords(sl)
            hil = c + R @ np.array([rr[0] * 1.1, 0, 0])
            dh = _ellipsoid_sdf(X, Y, Z, hil, rr * np.array([0.6, 0.5, 0.6]), R)
            self.paint(sl, (d < 0) & (dh > 0), "spleen")
        self.spleen_c = c
        # gallbladder under the liver
        gc = np.array([48.0, self.y_a + 58, self.head["c"][2] + 30]) + r.uniform(-6, 6, 3)
        gr = np.array([14.0, 16.0, 32.0]) * r.uniform(0.8, 1.15, 3)
        R = _rot(r.uniform(-20, 20), 0, 35)
        sl, d = self.ellipsoid(gc, gr, R)
        self.paint(sl, d < 0, "gb_wall")
        self.paint(sl, d < -1.5, "gb_bile")

    def _liver_vessel(self, ctrl, rad):
        res = self.tube(*_spline(ctrl, self.step, rad))
        if res is None or not hasattr(self, "liver_sl"):
            return
        sl, sdf = res[0], res[1]
        region = self.T[sl]
        region[(sdf < 0) & (region == _T["liver"])] = _T["liver_vessel"]

    def _stomach_duodenum(self):
        r = self.rng
        P, pr = self.p_ctrl, self.p_rad
        hc, hr = self.head["c"], self.head["r"]
        # duodenum: C-loop around the head, pressed against it
        rd = r.uniform(10, 13)
        gd = r.uniform(-2.5, 1.0)
        R = hr[0] + gd + rd
        zlow = min(P[0, 2] - pr[0], P[1, 2] - pr[1]) - gd - rd
        xa, ya = self.x_a, self.y_a
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
        self.hollow(duo, rad, lum, gas, "duo")
        self.dj = np.asarray(duo[-1], float)
        # stomach: fundus under the left dome, body, antrum in front of the pancreas, pylorus
        b1 = P[4]
        gap = r.uniform(-1.0, 10.0)
        ra = r.uniform(20, 26)
        antrum_y = b1[1] + pr[4] + gap + ra
        content = r.uniform(0, 1)
        st = [(-52, self.y_v + 25, 130), (-74, self.y_a + 32, 88), (-62, antrum_y + 8, 52),
              (-32, antrum_y + 4, b1[2] + pr[4] + 12), (-4, antrum_y, b1[2] + pr[4] + 8),
              tuple(pyl)]
        rad = np.array([42, 38, 32, ra, ra * 0.8, 10]) * r.uniform(0.85, 1.1)
        lum = rad - 4.5
        gasf = np.array([0.0, 0.1, 0.2, 0.3, 0.3, 0.0]) * (2 * r.uniform(0, 1))
        self.hollow(st, rad, lum, np.minimum(gasf, 0.6), "stomach")
        self.meta["stomach_content"] = "food" if content > 0.7 else "fluid"

    def _colon(self):
        r = self.rng
        bs = self.bs
        ctrl = np.array([
            (98, self.y_v + 30, -160), (104, self.y_v + 28, -70), (96, self.y_a + 40, -22),
            (55, self.y_a + 70, -40), (0, self.y_a + 75, -58), (-55, self.y_a + 70, -40),
            (-98, self.y_a + 40, 18), (-106, self.y_v + 25, -40), (-98, self.y_v + 28, -150),
            (-60, self.y_a + 35, -205), (-10, self.y_a + 25, -250)], float)
        ctrl[:, 0] *= bs
        ctrl += r.uniform(-7, 7, ctrl.shape)
        pts, rad = _spline(ctrl, self.step, np.full(len(ctrl), r.uniform(18, 25)))
        cum = np.concatenate([[0], np.cumsum(np.linalg.norm(np.diff(pts, axis=0), axis=1))])
        rad = rad * (1 + 0.12 * np.sin(2 * np.pi * cum / 28.0))       # haustra
        lum = rad - 3.0
        gas = np.clip(0.25 + 0.25 * np.sin(cum / 90.0 + r.uniform(0, 6)), 0, 0.6)
        self.hollow_dense(pts, rad, lum, gas, "colon")

    def _small_bowel(self):
        r = self.rng
        ya = self.y_a
        regions = [(np.array([-85.0, ya - 5, -240]), np.array([85.0, ya + 80, -30])),   # lower
                   (np.array([-80.0, ya + 55, -70]), np.array([70.0, ya + 100, 5])),    # anterior
                   (np.array([-95.0, ya - 10, -80]), np.array([-40.0, ya + 70, 5]))]    # left
        n_loops = int(r.integers(10, 14))
        for k in range(n_loops):
            lo, hi = regions[0 if k < n_loops // 2 else 1 + (k % 2)]
            if k == 0:                                   # the jejunum from the DJ flexure
                p = self.dj.copy()
                d = _unit([-1.0, 0.6, -0.8])
            else:
                p = r.uniform(lo, hi)
                d = _unit(r.normal(size=3))
            pts = [p.copy()]
            for _ in range(int(r.integers(20, 36))):
                d = _unit(d + 0.55 * r.normal(size=3))
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
            opn = _smoothstep((r.uniform(-0.3, 1.8, n)))
            lum = (rb - 2.5) * opn
            lum[lum < 2.0] = 0.0
            gas = np.full(n, 0.35 if r.uniform() < 0.3 else 0.0)
            self.hollow(pts, np.full(n, rb), lum, gas, "bowel")

    # look-alikes: collapsed bowel with pancreas HU parallel to the pancreas, opening outside the
    # box --------------------------------------------------------------------------------------
    def _lookalikes(self):
        """Collapsed bowel loops with pancreas HU beside the gland, opening outside its box.

        Each loop is horizontal (constant z), so that in an axial slice the solid segment next
        to the pancreas and the loop it continues into lie in the same image: the segment
        runs parallel to the gland's centreline (projected to the loop's height) at one fat
        plane's distance, both ends turn away in the same plane, and only beyond the fine
        crop's margin does the lumen open (gas or fluid).
        """
        r, cfg = self.rng, self.cfg
        margin = cfg.lookalike_margin_px * self.grid.shape[0] * self.grid.spacing[0] / 512.0
        sites = [  # (name, u range along the pancreas, height offset in thicknesses)
            ("anterior_body", (0.40, 0.66), 0.0),
            ("inferior_tail", (0.55, 0.85), -0.8),
            ("anterior_head", (0.10, 0.32), -0.3),
        ]
        draws = r.uniform(0, 1, len(sites))
        self.looks = []
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
            sel = (self.p_s >= u0 + jit[0]) & (self.p_s <= u1 + jit[1])
            c, pr = self.p_pts[sel][::2], self.p_r[sel][::2]
            if len(c) < 3:
                continue
            rl = pr * rl_f
            dist = pr + self.look_plane + gap_extra + rl          # centre to centre
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
                dvec = _unit(t_dir * (1 - turn[k]) + nr * turn[k])
                p1 = p_end + dvec * (margin + 18.0)
                d2 = np.array([-dvec[1], dvec[0], 0.0])
                away = p1 - self.p_pts.mean(0)
                if np.dot(d2[:2], away[:2]) < 0:
                    d2 = -d2                                     # fold away from the gland
                d2 = _unit(0.5 * dvec + d2)
                pts_k = [p_end + dvec * (margin + 18.0) * 0.5, p1, p1 + d2 * ln_out[k] * 0.5,
                         p1 + d2 * ln_out[k]]
                ends.append(np.array([self._in_cavity(q, r_open + 6) for q in pts_k]))
            ctrl = np.vstack([ends[0][::-1], path, ends[1]])
            pts = _spline(ctrl, self.step)[0]
            # outer radius: the look-alike's thickness along the gland, a normal loop once it
            # has left the gland by more than the margin (arc length from the parallel part)
            seg = np.linalg.norm(np.diff(pts, axis=0), axis=1)
            s_arc = np.concatenate([[0.0], np.cumsum(seg)])
            i0 = int(np.argmin(np.linalg.norm(pts - path[0], axis=1)))
            i1 = int(np.argmin(np.linalg.norm(pts - path[-1], axis=1)))
            beyond = np.maximum(s_arc[i0] - s_arc, s_arc - s_arc[i1])     # <= 0 on the part
            # the gland's box in the loop's axial plane; the lumen opens beyond box + margin
            # (or, if the loop cannot get that far, on the last 30 mm of each end)
            near = np.abs(self.p_pts[:, 2] - ch[0, 2]) <= self.p_r + 4.0
            if not near.any():
                near = np.abs(self.p_pts[:, 2] - ch[0, 2]) <= 2.0 * self.p_r + 10.0
            q, rq = self.p_pts[near], self.p_r[near][:, None]
            blo, bhi = (q[:, :2] - rq).min(0), (q[:, :2] + rq).max(0)
            d_box = np.max(np.stack([blo[0] - pts[:, 0], pts[:, 0] - bhi[0],
                                     blo[1] - pts[:, 1], pts[:, 1] - bhi[1]]), axis=0)
            tail_end = np.maximum(s_arc - (s_arc[-1] - 30.0), (30.0 - s_arc))
            rmid = float(np.mean(rl))
            opn = np.where(beyond > 0, _smoothstep((d_box - margin - 2.0) / 8.0), 0.0)
            rad = rmid + (r_open - rmid) * opn
            lum = np.where(opn > 0.15, (rad - 2.5) * opn, 0.0)
            gas = np.full(len(pts), 0.45 if exit_gas else 0.0)
            # its own lattice generator: the other shapes do not change with the knob
            lrng = np.random.default_rng([*self.seed_ids, 10 + k_site])
            lobn = _Noise(lrng, ctrl.min(0) - 20, ctrl.max(0) + 20, 5.0)
            self.hollow_dense(pts, rad, lum, gas, "look", solid="look_solid",
                              noise=(self.p_lob[0], lobn), pad=self.p_lob[0] * 3)
            self.looks.append(name)
        self.meta["lookalikes"] = list(self.looks)

    def _in_cavity(self, p, inset):
        """Pull point p (mm) inside the abdominal cavity's ellipse shrunk by `inset` mm."""
        a, b_ant, b_post = self.body["cavity"]
        yc = self.body["yc"]
        b = b_ant if p[1] > yc else b_post
        q = np.array([p[0] / max(a - inset, 10.0), (p[1] - yc) / max(b - inset, 10.0)])
        k = float(np.hypot(*q))
        if k <= 1.0:
            return np.asarray(p, float)
        out = np.array(p, float)
        out[0] /= k
        out[1] = yc + (p[1] - yc) / k
        return out

    # the pancreas itself, its cysts, duct and fat planes ------------------------------------
    def _pancreas_paint(self):
        r, g, cfg = self.rng, self.grid, self.cfg
        pts, pr = _spline(self.p_ctrl, self.step, self.p_rad)
        pad = self.look_plane + 3 * self.p_lob[1] + 15
        ext = pr.max() + pad
        sl = g.box(pts.min(0) - ext, pts.max(0) + ext)
        X, Y, Z = g.coords(sl)
        # tube distance on coordinates scaled in y and z (a flatter cross-section): a tube
        # around the scaled centreline on the scaled sub-grid
        sx, sy, sz = self.p_xscale
        shp = tuple(s.stop - s.start for s in sl)
        sub = _Grid(shp, (g.spacing[0], g.spacing[1] / sy, g.spacing[2] / sz),
                    (g.axes[0][sl[0].start], g.axes[1][sl[1].start] / sy,
                     g.axes[2][sl[2].start] / sz))
        res = _tube_fields(sub, pts / np.array([1.0, sy, sz]), pr, pad=pad)
        d_tube = np.full(shp, 1e4, np.float32)
        d_tube[_local(res[0], tuple(slice(0, n) for n in shp))] = res[1]
        hd = _ellipsoid_sdf(X, Y, Z, self.head["c"], self.head["r"], self.head["R"])
        env = _smin(d_tube, hd, 6.0)
        # lattices over the mm box of the control points: independent of the grid
        P = self.p_ctrl
        mlo, mhi = P.min(0) - self.p_rad.max() - 45, P.max(0) + self.p_rad.max() + 45
        n1 = _Noise(self.lrng, mlo, mhi, 4.5)
        n2 = _Noise(self.lrng, mlo, mhi, 14.0)
        nfp = _Noise(self.lrng, mlo, mhi, 16.0)
        env = env + self.p_lob[0] * n1.on(g, sl) + self.p_lob[1] * n2.on(g, sl)
        # cysts: grow the gland around them (most), or bulge out of it (a few)
        cyst_masks = []
        inside_frac = []
        # cysts are drawn always (and used only when cfg.cysts): the knob changes nothing else
        n_c = int(r.integers(1, 4))
        frac = math.exp(r.uniform(math.log(2e-5), math.log(1e-3)))
        vols = frac * _REF_VOLUME_MM3 * r.dirichlet(np.full(n_c, 1.5))
        exo_k = int(r.integers(0, n_c)) if r.uniform() < 0.1 else -1
        for k in range(n_c):
            u = r.uniform(0.03, 0.95)
            i = int(np.argmin(np.abs(self.p_s - u)))
            rad_c = (3 * vols[k] / (4 * math.pi)) ** (1 / 3)
            aniso = r.uniform(0.8, 1.25, 3)
            aniso /= np.prod(aniso) ** (1 / 3)
            cr = rad_c * aniso
            exo = k == exo_k
            cc = self.p_pts[i] + r.uniform(-0.3, 0.3, 3) * self.p_r[i]
            Rc = _rot(*r.uniform(-90, 90, 3))
            depth = r.uniform(0.15, 0.45)
            side = r.choice([-1, 1])
            if exo:   # centre inside the surface by 15-45% of its radius: partly outside
                out = _unit(np.cross(np.gradient(self.p_pts, axis=0)[i], (0, 0, 1)))
                cc = self.p_pts[i] + out * (self.p_r[i] - depth * rad_c) * side
            dcy = _ellipsoid_sdf(X, Y, Z, cc, cr, Rc)
            n_sep = int(r.integers(0, 4)) if rad_c > 5 else 0
            seps = [(_unit(r.normal(size=3)), r.uniform(-0.4, 0.4) * rad_c)
                    for _ in range(n_sep)]
            if cfg.cysts:
                if not exo:
                    env = _smin(env, dcy - 2.5, 4.0)
                cyst_masks.append((dcy, seps, cc))
        panc = env < 0
        self.paint(sl, panc, "pancreas")
        # the main duct, sometimes visible
        if r.uniform() < 0.4:
            dres = self.tube(pts[2:-2], np.full(len(pts) - 4, max(1.2, 0.45 * self.minvox)))
            if dres is not None:
                dl = _local(dres[0], sl)
                region = self.T[dres[0]]
                m = (dres[1] < 0) & (env[dl] < -2.5) & (region == _T["pancreas"])
                region[m] = _T["panc_duct"]
        # fat planes: carve a thin fat layer between the gland and touching neighbours
        region = self.T[sl]
        present = nfp.on(g, sl) > ndtri(min(max(cfg.fat_plane_missing_prob, 1e-6), 1 - 1e-6))
        shell_fp = (env >= 0) & (env < self.fat_plane) & _CARVABLE[region] & present
        shell_lk = (env >= 0) & (env < self.look_plane) & _ALWAYS_PLANE[region]
        region[shell_fp | shell_lk] = _T["visceral_fat"]
        # the cysts on top
        thick = max(1.2, 0.45 * self.minvox)
        for dcy, seps, cc in cyst_masks:
            m = dcy < 0
            inside_frac.append(float((m & panc).sum() / max(m.sum(), 1)))
            self.paint(sl, m, "cyst")
            for nvec, off in seps:
                dpl = ((X - cc[0]) * nvec[0] + (Y - cc[1]) * nvec[1] + (Z - cc[2]) * nvec[2]) - off
                self.paint(sl, m & (np.abs(dpl) < thick / 2) & (dcy < -1.0), "cyst_septum")
        self.env_sl, self.env = sl, env
        self.meta["n_cysts"] = len(cyst_masks)
        self.meta["cyst_inside_fraction"] = round(
            float(np.average(inside_frac, weights=[max(1, (c[0] < 0).sum()) for c in cyst_masks]))
            if cyst_masks else 1.0, 4)

    def _thorax_pelvis(self):
        g, r = self.grid, self.rng
        # lung bases above the diaphragm dome, the heart in front; diaphragm muscle below them
        ztop = g.axes[2][-1]
        if ztop > 100:
            sl = g.box((-1e4, -1e4, 95), (1e4, 1e4, 1e4))
            X, Y, Z = g.coords(sl)
            zd = (116 + 0.30 * (Y - self.y_v + 70) + 0.0035 * (np.abs(X) - 80) ** 2
                  + 10 * (X > 0))
            cav = self.cavity2d[:, :, None][sl[0], sl[1]]
            med = (np.abs(X - self.x_a) < 28) & (Y > self.y_v - 25)
            self.paint(sl, cav & (Z > zd - 6) & (Z <= zd) & ~med, "diaphragm")
            self.paint(sl, cav & (Z > zd) & ~med, "lung")
            sl2, d = self.ellipsoid((-22.0, self.y_a + 55, 225 + r.uniform(-10, 10)),
                                    (65, 55, 55), _rot(30, 0, 0))
            self.paint(sl2, d < 0, "heart")
        zbot = g.axes[2][0]
        if zbot < -140:
            for sx in (-1, 1):
                c = np.array([sx * 88.0 * self.bs, self.y_v + 10, -245])
                R = _rot(sx * 35, 0, 0)
                sl, d = self.ellipsoid(c, (14, 70, 100), R)
                if sl is not None:
                    Z = g.coords(sl)[2]
                    m = (d < 0) & (Z < -145)
                    self.paint(sl, m, "pelvis_marrow")
                    self.paint(sl, m & (d > -2.5), "pelvis_cortex")
            if zbot < -215:
                sl, d = self.ellipsoid((0.0, self.y_a + 50, -270), (55, 45, 45))
                self.paint(sl, d < 0, "bladder")

    def _ribs(self):
        r = self.rng
        body = self.body
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
                res = self.tube(*_spline(pts, self.step, rr))
                if res is None:
                    continue
                sl, sdf = res[0], res[1]
                self.paint(sl, sdf < 0, "rib_marrow")
                self.paint(sl, (sdf < 0) & (sdf > -1.8), "rib_cortex")

    # -- image ------------------------------------------------------------------------------------
    def render(self):
        cfg, r, T = self.cfg, self.rng, self.T
        n = len(_TISSUE_TABLE)
        hu = np.array([row[1] for row in _TISSUE_TABLE], np.float32)
        tex = np.array([row[2] for row in _TISSUE_TABLE], np.float32)
        low = np.array([row[3] for row in _TISSUE_TABLE], np.float32)
        enh = np.array([row[6] for row in _TISSUE_TABLE], np.float32)
        soft = np.array([row[7] for row in _TISSUE_TABLE], bool)
        # per-case enhancement and per-tissue jitter
        e = self.e_case
        hu = hu + enh * e + np.where(enh > 0, r.normal(0, 5, n), 0).astype(np.float32)
        p = _T["pancreas"]
        hu[p] = np.clip(118 + 0.5 * e + r.normal(0, 4), 105, 130)
        # the look-alike: pancreas HU and texture, offset by 30 * (1 - lookalike)
        hu[_T["look_solid"]] = hu[p] - 30.0 * (1 - cfg.lookalike)
        tex[_T["look_solid"]] = tex[p] * cfg.lookalike + tex[_T["bowel_wall"]] * (1 - cfg.lookalike)
        hu[_T["cyst"]] = r.uniform(0, 20)
        # contrast knob: scale every soft tissue's difference to the pancreas
        hu = np.where(soft, hu[p] + cfg.contrast * (hu - hu[p]), hu).astype(np.float32)
        self.meta["hu"] = {k: round(float(hu[_T[k]]), 1) for k in
                           ("pancreas", "look_solid", "liver", "spleen", "bowel_wall",
                            "duo_wall", "aorta", "portal")}
        g = self.grid
        sp = np.asarray(g.spacing)
        img = hu[T]
        # fine texture (lobules, fat strands) and a slow one (mottled stool, liver mottling)
        if tex.any():
            f = self.nrng.standard_normal(T.shape, dtype=np.float32)
            ndimage.gaussian_filter(f, np.clip(1.0 / sp, 0.4, 2.0), truncate=3.0, output=f)
            f *= np.float32(1.0 / max(float(f[::3, ::3, ::3].std()), 1e-6))
            f *= tex[T]
            img += f
            del f
        lo = np.array([g.axes[i][0] for i in range(3)]) - 1
        hi = np.array([g.axes[i][-1] for i in range(3)]) + 1
        lf = _Noise(self.nrng, lo, hi, 7.0).on_axes(*g.axes)
        lf *= low[T]
        img += lf
        del lf
        if cfg.blur_vox > 0:
            ndimage.gaussian_filter(img, cfg.blur_vox, truncate=3.0, output=img)
        if cfg.noise_hu > 0:
            nse = self.nrng.standard_normal(T.shape, dtype=np.float32)
            sig = np.clip(0.9 / sp, 0.5, 2.0)
            sig[2] = min(sig[2], 0.6)
            ndimage.gaussian_filter(nse, sig, truncate=3.0, output=nse)
            nse *= np.float32(cfg.noise_hu / max(float(nse[::3, ::3, ::3].std()), 1e-6))
            img += nse
            del nse
        np.clip(img, -1024, 3071, out=img)
        return img


def _affine(grid: _Grid) -> np.ndarray:
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
    ph = _Phantom(cfg, int(seed), int(case_id))
    T = ph.build()
    img = ph.render()
    labels = _LABEL_LUT[T]
    vox_ml = float(np.prod(ph.grid.spacing)) / 1000.0
    meta = dict(ph.meta)
    meta["pancreas_ml"] = round(float(np.isin(labels, (1, 2)).sum()) * vox_ml, 2)
    meta["cyst_ml"] = round(float((labels == 2).sum()) * vox_ml, 3)
    meta["lookalike_ml"] = round(float((T == _T["look_solid"]).sum()) * vox_ml, 2)
    return Case(id=f"phantom_{int(case_id):03d}", image=img, labels=labels,
                spacing=tuple(float(s) for s in ph.grid.spacing), affine=_affine(ph.grid),
                label_names=dict(PHANTOM_LABELS), source="phantom", meta=meta)


# --------------------------------------------------------------------------------------------
# Writing a data set (MSD-like layout)
# --------------------------------------------------------------------------------------------
def _dataset_json(cfg, seed, entries):
    return {
        "name": "rstn_phantom",
        "description": "Synthetic contrast-enhanced abdominal CT for small-organ segmentation "
                       "(rstn_core.data.phantom): pancreas with cysts among look-alike neighbours.",
        "reference": "rstn_core; anatomy after NIH Pancreas-CT and MSD Task07 (see data/README.md)",
        "licence": "CC0-1.0 (synthetic)",
        "release": f"generator v{GENERATOR_VERSION}",
        "tensorImageSize": "3D",
        "modality": {"0": "CT"},
        "labels": {str(k): v for k, v in PHANTOM_LABELS.items()},
        "numTraining": len(entries),
        "numTest": 0,
        "training": [{"image": f"./imagesTr/{e['id']}.nii.gz",
                      "label": f"./labelsTr/{e['id']}.nii.gz", "meta": e.get("meta", {})}
                     for e in entries],
        "test": [],
        "generator": {"module": "rstn_core.data.phantom", "version": GENERATOR_VERSION,
                      "seed": int(seed), "config": cfg.to_dict()},
    }


def _generate_and_write(args):
    from rstn_core.data.storage import atomic_save_nifti
    cfg_d, seed, i, img_path, lab_path = args
    case = make_case(PhantomConfig.from_dict(cfg_d), seed, i)
    atomic_save_nifti(np.rint(case.image).astype(np.int16), case.affine, img_path)
    atomic_save_nifti(case.labels, case.affine, lab_path)
    return i, case.meta


def write_dataset(root, cfg: PhantomConfig, n_cases: int, seed: int = 0, progress: bool = True,
                  workers: int = 1) -> dict:
    """Write `n_cases` phantom cases as an MSD-like data set under `root`.

    Layout: ``imagesTr/phantom_XXX.nii.gz`` (int16 HU), ``labelsTr/phantom_XXX.nii.gz`` (uint8,
    `PHANTOM_LABELS`), ``dataset.json`` (labels, numTraining, training list with per-case
    facts, the generator config and seed). Every file is written atomically (temporary file +
    os.replace). Resumable: cases already on disk are skipped when `dataset.json` records the
    same config and seed; a different config or seed raises `DataError`.

    Args:
        root: output folder (created).
        cfg: `PhantomConfig`; n_cases: number of cases (ids 0..n_cases-1); seed: data set seed.
        progress: show a tqdm bar.
        workers: processes to use (1 = in this process).
    Returns:
        dict(root, written, skipped, seconds).
    """
    from rstn_core.data.storage import atomic_write_json
    if not isinstance(cfg, PhantomConfig):
        raise DataError(f"write_dataset: cfg must be a PhantomConfig, got {type(cfg).__name__}; "
                        "use phantom_preset(scale).")
    if int(n_cases) < 1:
        raise DataError(f"write_dataset: n_cases must be >= 1, got {n_cases}.")
    root = Path(root)
    t0 = time.perf_counter()
    djson = root / "dataset.json"
    old_meta = {}
    if djson.exists():
        try:
            old = json.loads(djson.read_text())
            gen = old["generator"]
        except (ValueError, KeyError, TypeError):
            raise DataError(f"{djson}: not a phantom dataset.json; choose an empty --out folder "
                            "or delete it.") from None
        if gen.get("config") != cfg.to_dict() or gen.get("seed") != int(seed) or \
                gen.get("version") != GENERATOR_VERSION:
            raise DataError(f"{root} holds a phantom made with other settings (seed "
                            f"{gen.get('seed')}); use another output folder or delete it.")
        old_meta = {Path(e["image"]).name.split(".")[0]: e.get("meta", {})
                    for e in old.get("training", [])}
    (root / "imagesTr").mkdir(parents=True, exist_ok=True)
    (root / "labelsTr").mkdir(parents=True, exist_ok=True)
    ids = [f"phantom_{i:03d}" for i in range(int(n_cases))]
    todo, metas = [], {}
    for i, cid in enumerate(ids):
        ip, lp = root / "imagesTr" / f"{cid}.nii.gz", root / "labelsTr" / f"{cid}.nii.gz"
        if djson.exists() and ip.is_file() and lp.is_file() and cid in old_meta:
            metas[cid] = old_meta[cid]
            continue
        todo.append((cfg.to_dict(), int(seed), i, str(ip), str(lp)))
    # record the settings first, so an interrupted run can be resumed
    atomic_write_json(djson, _dataset_json(cfg, seed, [{"id": c, "meta": metas[c]} for c in ids
                                                      if c in metas]))
    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=len(ids), initial=len(ids) - len(todo), desc="phantom", unit="case")

    def done(i, meta):
        metas[ids[i]] = meta
        atomic_write_json(djson, _dataset_json(cfg, seed, [{"id": c, "meta": metas[c]}
                                                           for c in ids if c in metas]))
        if bar is not None:
            bar.update(1)

    try:
        if workers > 1 and len(todo) > 1:
            import multiprocessing as mp
            from concurrent.futures import ProcessPoolExecutor
            ctx = mp.get_context("fork" if os.name == "posix" else "spawn")
            with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as ex:
                for i, meta in ex.map(_generate_and_write, todo):
                    done(i, meta)
        else:
            for job in todo:
                done(*_generate_and_write(job))
    finally:
        if bar is not None:
            bar.close()
    return {"root": str(root), "written": len(todo), "skipped": len(ids) - len(todo),
            "seconds": round(time.perf_counter() - t0, 2)}
