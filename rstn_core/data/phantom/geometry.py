"""Shape primitives of the phantom, all in millimetres, evaluated on sub-boxes of the voxel grid.

A shape is a (signed) distance field: negative inside, in mm. The anatomy is drawn in mm and
only then sampled, so a case's anatomy does not depend on the grid it is sampled on.
"""
from __future__ import annotations

import math

import numpy as np

__all__ = ["Grid", "local", "bspline_taps", "Noise", "rot", "ellipsoid_sdf", "ellipse2d_sdf",
           "smin", "spline", "smoothstep", "unit", "tube_fields"]


class Grid:
    """Voxel centres in mm: axis i holds origin[i] + spacing[i] * arange(shape[i]) (float32).

    Args:
        shape: voxels (X, Y, Z); spacing: mm per voxel; origin: mm of voxel (0, 0, 0).
    """

    def __init__(self, shape, spacing, origin):
        self.shape, self.spacing, self.origin = tuple(shape), tuple(spacing), tuple(origin)
        self.axes = [np.float32(origin[i]) + np.float32(spacing[i]) *
                     np.arange(shape[i], dtype=np.float32) for i in range(3)]

    def box(self, lo, hi):
        """Index slices of the voxels whose centres lie in the mm box [lo, hi]; None if empty.

        Args:
            lo, hi: corners of the box, mm (x, y, z).
        Returns:
            a tuple of 3 slices into the grid, or None when no voxel centre is inside.
        """
        out = []
        for i in range(3):
            a = max(int(math.ceil((lo[i] - self.origin[i]) / self.spacing[i])), 0)
            b = min(int(math.floor((hi[i] - self.origin[i]) / self.spacing[i])) + 1, self.shape[i])
            if a >= b:
                return None
            out.append(slice(a, b))
        return tuple(out)

    def coords(self, sl):
        """Broadcastable mm coordinates (X, Y, Z) of a sub-box.

        Args:
            sl: 3 slices (as `box` returns).
        Shapes:
            returns: X (x, 1, 1), Y (1, y, 1), Z (1, 1, z), float32.
        """
        return (self.axes[0][sl[0]][:, None, None], self.axes[1][sl[1]][None, :, None],
                self.axes[2][sl[2]][None, None, :])


def local(inner, outer):
    """Slices of sub-box `inner` relative to the array of sub-box `outer`.

    Args:
        inner, outer: 3 slices each into the same grid; `inner` lies inside `outer`.
    Returns:
        3 slices into the array that holds `outer`.
    """
    return tuple(slice(a.start - b.start, a.stop - b.start) for a, b in zip(inner, outer))


def bspline_taps(u, n):
    """Cubic B-spline taps at lattice positions u: indices (4, m) and weights (4, m).

    value(u) = sum_k w_k lattice[floor(u) - 1 + k], k = 0..3, with the uniform cubic B-spline
    weights; indices are clipped to [0, n - 1].

    Args:
        u: (m,) positions in lattice units; n: lattice size along that axis.
    Shapes:
        returns: indices (4, m) int64, weights (4, m) float32.
    """
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


class Noise:
    """Smooth random field (cubic B-spline value noise) over a mm box, ~unit std.

    The lattice is drawn from the mm extent only, so a case's shapes do not depend on the grid.

    Args:
        rng: numpy Generator that draws the lattice; lo, hi: mm box (x, y, z) to cover;
        cell: lattice spacing, mm (the size of the field's blobs).
    """

    def __init__(self, rng, lo, hi, cell):
        self.cell = float(cell)
        self.lo = np.asarray(lo, float) - 2 * self.cell
        n = np.ceil((np.asarray(hi, float) - self.lo) / self.cell).astype(int) + 4
        self.lattice = rng.standard_normal(tuple(n)).astype(np.float32) / np.float32(_BS_RMS)

    def on_axes(self, ax0, ax1, ax2):
        """Field on the grid spanned by 1D mm coordinate arrays (separable 4-tap sums).

        Args:
            ax0, ax1, ax2: 1D mm coordinates along x, y and z.
        Shapes:
            returns: (len(ax0), len(ax1), len(ax2)) float32, C-contiguous.
        """
        out = self.lattice
        for axis, a in ((2, ax2), (1, ax1), (0, ax0)):
            idx, w = bspline_taps((np.asarray(a, float) - self.lo[axis]) / self.cell,
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
        """The field on sub-box `sl` of `grid` (a `Grid`); shape: the sub-box's."""
        return self.on_axes(grid.axes[0][sl[0]], grid.axes[1][sl[1]], grid.axes[2][sl[2]])


def rot(az=0.0, ay=0.0, ax=0.0):
    """Rotation matrix R = Rz(az) Ry(ay) Rx(ax), angles in degrees; columns are local axes.

    Args:
        az, ay, ax: angles about z, y and x, degrees.
    Shapes:
        returns: (3, 3) float64.
    """
    a, b, c = np.radians([az, ay, ax])
    Rz = np.array([[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1]])
    Ry = np.array([[math.cos(b), 0, math.sin(b)], [0, 1, 0], [-math.sin(b), 0, math.cos(b)]])
    Rx = np.array([[1, 0, 0], [0, math.cos(c), -math.sin(c)], [0, math.sin(c), math.cos(c)]])
    return Rz @ Ry @ Rx


def ellipsoid_sdf(X, Y, Z, c, r, R=None):
    """Approximate signed distance (mm) to an ellipsoid, centre c, semi-axes r, rotation R.

    d = k0 (k0 - 1) / k1 with k0 = |q / r|, k1 = |q / r^2| and q = R^T (p - c) (the usual
    first-order bound; exact on the surface).

    Args:
        X, Y, Z: broadcastable mm coordinates (`Grid.coords`); c: centre (3,) mm; r: semi-axes
        (3,) mm; R: (3, 3) rotation whose columns are the local axes, or None.
    Shapes:
        returns: the broadcast shape of X, Y, Z.
    """
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


def ellipse2d_sdf(X, Y, cx, cy, a, b):
    """Approximate signed distance (mm) to an axis-aligned ellipse in the (x, y) plane.

    Args:
        X, Y: broadcastable mm coordinates; cx, cy: centre mm; a, b: semi-axes along x and y
        (scalars or arrays broadcastable with X, Y).
    Shapes:
        returns: the broadcast shape of X and Y.
    """
    dx, dy = X - cx, Y - cy
    k0 = np.sqrt((dx / a) ** 2 + (dy / b) ** 2)
    k1 = np.sqrt((dx / a ** 2) ** 2 + (dy / b ** 2) ** 2)
    return k0 * (k0 - 1) / np.maximum(k1, 1e-6)


def smin(a, b, k):
    """Smooth union of two distance fields (polynomial smooth minimum, blend width k mm).

    h = clip(1/2 + (b - a) / (2k), 0, 1); smin = b + (a - b) h - k h (1 - h).

    Args:
        a, b: distance fields (broadcastable), mm; k: blend width, mm.
    Shapes:
        returns: the broadcast shape of a and b.
    """
    h = np.clip(0.5 + 0.5 * (b - a) / k, 0.0, 1.0)
    return b + (a - b) * h - k * h * (1.0 - h)


def spline(ctrl, step, *attrs):
    """Catmull-Rom curve through control points, sampled about every `step` mm.

    Per-point attributes are interpolated linearly along the same parameter.

    Args:
        ctrl: (n, 3) control points, mm; step: sampling distance, mm; attrs: (n,) arrays, one
        value per control point (radius, lumen, ...).
    Returns:
        (points (N, 3), *attrs (N,)).
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


def smoothstep(x):
    """Hermite step 3x^2 - 2x^3 of x clipped to [0, 1]; same shape as x."""
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


def unit(v):
    """v / |v| as float64 (a zero vector stays ~0 instead of dividing by 0)."""
    v = np.asarray(v, float)
    return v / max(np.linalg.norm(v), 1e-9)


def tube_fields(grid, pts, rad, pad=0.0):
    """Distance fields of a tube of varying radius along a polyline, on its bounding box.

    Args:
        grid: the `Grid`; pts: (n, 3) polyline, mm; rad: (n,) radius per point, mm; pad: extra
        mm around the tube to evaluate (for shapes that grow beyond the radius).
    Returns:
        (sl, sdf, s, dist, ey, cum) or None when the tube misses the grid: the sub-box, the
        signed distance to the surface (mm), arc length of the closest axis point, distance
        to the axis, the y offset from that axis point (for gas levels: gas rises
        anteriorly, to high y, in a supine patient), all float32 of the sub-box's shape, and
        the (n,) arc length at each point.
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
        loc = local(ssl, sl)
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
