"""`Case` (one loaded CT volume with its label map) and `CaseRef` (where one lives on disk).

Array conventions, shared by every loader and by the phantom: numpy arrays with axes
(x, y, z) in RAS+ canonical orientation (axis 0 left->Right, axis 1 posterior->Anterior, so the
spine is at low y, axis 2 inferior->Superior); the image is float32 Hounsfield units, the
label map uint8, and `affine` maps voxel indices to RAS millimetres.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

__all__ = ["Case", "CaseRef"]


class CaseRef(NamedTuple):
    """Where one case lives: `load_case(ref)` (or `load_case(ref.image, ref.label)`) reads it.

    Fields:
        id: case name, e.g. ``"phantom_003"``, ``"pancreas_001"``, ``"PANCREAS_0001"``.
        image: path of a NIfTI file or of a DICOM series folder.
        label: path of the NIfTI label map, or None for a scan to segment.
        source: ``"phantom"``, ``"msd"``, ``"nih"``, ``"nifti"`` or ``"dicom"``.
    """
    id: str
    image: str
    label: str | None
    source: str


@dataclass
class Case:
    """One CT volume in canonical RAS+ orientation.

    Fields:
        id: case name.
        image: (X, Y, Z) float32 Hounsfield units.
        labels: (X, Y, Z) uint8 label map, or None when the scan has no label.
        spacing: voxel size in mm along (x, y, z).
        affine: (4, 4) voxel -> RAS mm (nibabel convention).
        label_names: {value: name}, e.g. {0: "background", 1: "pancreas", 2: "cyst"};
            `target_mask(case, name)` turns a name into a binary mask.
        source: where it came from (see `CaseRef.source`).
        meta: free-form facts (the phantom puts its per-case draws here).
    """
    id: str
    image: np.ndarray
    labels: np.ndarray | None
    spacing: tuple[float, float, float]
    affine: np.ndarray
    label_names: dict[int, str] = field(default_factory=dict)
    source: str = ""
    meta: dict = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.image.shape)

    @property
    def voxel_ml(self) -> float:
        """Volume of one voxel in millilitres."""
        return float(np.prod(self.spacing)) / 1000.0
