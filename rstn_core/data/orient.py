"""Canonical orientation: reorder and flip array axes so the affine is closest to RAS+.

Works on any array (image or label map) with its 4x4 affine, like nibabel's
`as_closest_canonical`, and is used for NIfTI and DICOM alike so that image and label go
through exactly the same transform.
"""
from __future__ import annotations

import numpy as np
from nibabel import orientations as ornt

__all__ = ["canonicalize", "axcodes", "spacing_of"]


def canonicalize(array: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(array, affine) in RAS+ axis order (x: left->Right, y: posterior->Anterior, z: up).

    Shapes:
        array: (I, J, K); returns a C-contiguous array of the permuted shape and the new affine.
    """
    affine = np.asarray(affine, float)
    cur = ornt.io_orientation(affine)
    if np.array_equal(cur, ornt.axcodes2ornt(("R", "A", "S"))):
        return np.ascontiguousarray(array), affine
    tr = ornt.ornt_transform(cur, ornt.axcodes2ornt(("R", "A", "S")))
    out = ornt.apply_orientation(array, tr)
    new_aff = affine @ ornt.inv_ornt_aff(tr, array.shape)
    return np.ascontiguousarray(out), new_aff


def axcodes(affine: np.ndarray) -> str:
    """Orientation codes of an affine, e.g. ``"RAS"`` or ``"LPS"``."""
    return "".join(str(c) for c in ornt.aff2axcodes(np.asarray(affine, float)))


def spacing_of(affine: np.ndarray) -> tuple[float, float, float]:
    """Voxel size in mm along the three array axes."""
    a = np.asarray(affine, float)[:3, :3]
    return tuple(float(v) for v in np.sqrt((a ** 2).sum(axis=0)))
