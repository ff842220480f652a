"""Label tables and `target_mask`: from a target name to a binary mask.

The phantom and MSD Task07 share one convention: value 1 is the pancreas, value 2 a lesion
inside it (the phantom's cyst, MSD's "cancer"), and the *target* ``"pancreas"`` is 1 ∪ 2 while
the target ``"cyst"`` is 2 alone. NIH Pancreas-CT has 1 = pancreas only. Group targets join
several labels: ``"kidneys"`` = kidney_left ∪ kidney_right, ``"adrenal_glands"`` = adrenal_left
∪ adrenal_right, ``"bowel"`` = bowel ∪ bowel_lookalike (the phantom's look-alike loops).
"""
from __future__ import annotations

import numpy as np

from rstn_core.data.errors import DataError

__all__ = ["PHANTOM_LABELS", "NIH_LABELS", "MSD_LABELS", "target_mask", "known_targets",
           "target_values"]

#: The phantom's label map (also written to its dataset.json "labels").
PHANTOM_LABELS: dict[int, str] = {
    0: "background", 1: "pancreas", 2: "cyst",
    3: "adrenal_left", 4: "adrenal_right", 5: "duodenum", 6: "gallbladder", 7: "ivc",
    8: "kidney_left", 9: "kidney_right",
    10: "liver", 11: "spleen", 12: "stomach", 13: "bowel", 14: "bowel_lookalike",
    15: "aorta", 16: "sma", 17: "portal_splenic_vein", 18: "vertebra",
}
#: NIH Pancreas-CT label files (label00XX.nii.gz).
NIH_LABELS: dict[int, str] = {0: "background", 1: "pancreas"}
#: MSD Task07_Pancreas (its dataset.json says "cancer" for 2).
MSD_LABELS: dict[int, str] = {0: "background", 1: "pancreas", 2: "cancer"}

_LESION = ("cyst", "cancer", "tumour", "tumor", "lesion", "mass")
# target name -> label names it joins (only those present in a case count)
_GROUPS: dict[str, tuple[str, ...]] = {
    "pancreas": ("pancreas",) + _LESION,
    "kidneys": ("kidney_left", "kidney_right", "kidney"),
    "adrenal_glands": ("adrenal_left", "adrenal_right", "adrenal_gland", "adrenal"),
    "bowel": ("bowel", "bowel_lookalike", "small_bowel", "colon"),
}
for _alias in _LESION:
    _GROUPS[_alias] = _LESION


def _norm(name: str) -> str:
    return str(name).strip().lower().replace(" ", "_").replace("-", "_")


def target_values(label_names: dict[int, str], name: str) -> list[int]:
    """Label values that make up target `name` (empty when none of them is present)."""
    names = {int(v): _norm(n) for v, n in label_names.items() if int(v) != 0}
    key = _norm(name)
    members = _GROUPS.get(key, (key,))
    if key in _GROUPS and key not in _LESION and key not in members:
        members = members + (key,)
    return sorted(v for v, n in names.items() if n in members)


def known_targets(label_names: dict[int, str]) -> list[str]:
    """Every target name that selects at least one label value of `label_names`."""
    names = {_norm(n) for v, n in label_names.items() if int(v) != 0}
    out = set(names)
    for g in _GROUPS:
        if target_values(label_names, g):
            out.add(g)
    return sorted(out)


def target_mask(case, name: str) -> np.ndarray:
    """Binary mask of target `name` in `case` (a `Case`).

    Args:
        case: a loaded `Case` with a label map.
        name: a label name (``"liver"``) or a group (``"pancreas"`` = pancreas ∪ cyst/cancer,
            ``"cyst"``, ``"kidneys"``, ``"adrenal_glands"``, ``"bowel"``).
    Shapes:
        returns: bool array of `case.labels.shape`.
    Raises:
        DataError: the case has no label map, or `name` selects no label of this case.
    """
    if case.labels is None:
        raise DataError(f"{case.id}: no label map loaded; pass label_path to load_case to get "
                        f"target {name!r}.")
    values = target_values(case.label_names, name)
    if not values:
        raise DataError(f"unknown target {name!r} for {case.id}; known: "
                        f"{', '.join(known_targets(case.label_names))}.")
    lut = np.zeros(256, dtype=bool)
    lut[values] = True
    return lut[case.labels]
