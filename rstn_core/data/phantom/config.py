"""The phantom's settings: `PhantomConfig` (geometry and difficulty knobs) and the named scales.

Every scale covers the same ~352 mm field of view in-plane, so one (seed, case id) is the same
patient at every scale; only the voxel grid changes (see `phantom_preset`).
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields

from rstn_core.data.errors import DataError

__all__ = ["PhantomConfig", "phantom_preset", "SCALES", "GENERATOR_VERSION"]

#: Bump when the same (config, seed, case id) would give a different volume.
GENERATOR_VERSION = 1
#: The named scales, smallest first (`phantom_preset`; `rstn_core.config` imports them from here).
SCALES = ("smoke", "standard", "colab", "paper")

@dataclass
class PhantomConfig:
    """Geometry and difficulty knobs of the synthetic abdominal CT phantom.

    Plain JSON-serialisable fields (tuples become lists in JSON; `from_dict` turns them back).

    Geometry:
        shape: voxels (X, Y, Z) of every case (with `slices_range`, Z is drawn per case).
        spacing: voxel size in mm (x, y, z); the field of view is shape * spacing. The
            defaults (160 x 160 x 96 at 2.2 x 2.2 x 2.5 mm) are not a named scale; use
            `phantom_preset` for those.
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
        """The fields as plain JSON types (tuples become lists), as stored in dataset.json."""
        return json.loads(json.dumps(asdict(self)))

    @classmethod
    def from_dict(cls, d: dict) -> "PhantomConfig":
        """The config of a `to_dict` dict; unknown keys raise `DataError` (a one-line message)."""
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise DataError(f"PhantomConfig: unknown keys {sorted(unknown)}; expected a subset "
                            f"of {sorted(known)}.")
        return cls(**d)


def phantom_preset(scale: str) -> PhantomConfig:
    """The phantom of a named scale (one of `SCALES`).

    - ``"smoke"``: 96 x 96 x 48, 3.67 x 3.67 x 6.4 mm (CI; well under 1 s a case).
    - ``"standard"``: 160 x 160 x 96, 2.2 x 2.2 x 3.2 mm (the book's CPU scale; ~1 s a case).
    - ``"colab"``: 256 x 256 x 128, 1.375 x 1.375 x 2.4 mm (a free Colab GPU; ~2 s a case).
    - ``"paper"``: 512 x 512 x L, 0.7 x 0.7 x 1 mm, L drawn in [180, 460] (NIH-like).

    All four cover the same ~352 mm field of view in-plane; smoke, standard and colab also the
    same 307 mm along z, so the pancreas is the same share of their voxels.

    Args:
        scale: ``"smoke"``, ``"standard"``, ``"colab"`` or ``"paper"``.
    Returns:
        a new `PhantomConfig` (the other knobs at their defaults).
    """
    if scale == "smoke":
        return PhantomConfig(shape=(96, 96, 48), spacing=(352 / 96, 352 / 96, 6.4))
    if scale == "standard":
        return PhantomConfig(shape=(160, 160, 96), spacing=(2.2, 2.2, 3.2))
    if scale == "colab":
        return PhantomConfig(shape=(256, 256, 128), spacing=(352 / 256, 352 / 256, 2.4))
    if scale == "paper":
        return PhantomConfig(shape=(512, 512, 240), spacing=(0.7, 0.7, 1.0),
                             slices_range=(180, 460))
    raise DataError(f"unknown phantom scale {scale!r}; expected one of {list(SCALES)}.")
