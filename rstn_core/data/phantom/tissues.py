"""The phantom's tissues: HU, texture, label, paint priority, enhancement, soft or not.

One row per tissue of `TISSUE_TABLE`; a case's tissue map holds row indices (`TISSUE[name]`),
`LABEL_LUT` turns it into the label map (`PHANTOM_LABELS`). Columns:

- HU: mean attenuation before the per-case enhancement (the papers' table of organ HU);
- tex / low: standard deviation (HU) of the fine (lobules) and slow (mottling) texture;
- label: the `PHANTOM_LABELS` name the tissue counts as;
- prio: paint priority: a tissue is painted over tissues of lower or equal priority only;
- enh: factor on the per-case contrast enhancement (0 = unenhanced: fat, fluid, bone);
- soft: a soft tissue, whose HU difference to the pancreas the ``contrast`` knob scales.
"""
from __future__ import annotations

import numpy as np

from rstn_core.data.labels import PHANTOM_LABELS

__all__ = ["TISSUE_TABLE", "TISSUE", "LABEL_LUT", "PRIO", "CARVABLE", "ALWAYS_PLANE"]

TISSUE_TABLE = [
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
#: Row index of each tissue name.
TISSUE = {row[0]: i for i, row in enumerate(TISSUE_TABLE)}


def _lookup(column: int, dtype, fill) -> np.ndarray:
    """A 256-entry table: tissue index -> `TISSUE_TABLE` column (`fill` beyond the table)."""
    out = np.full(256, fill, dtype)
    for i, row in enumerate(TISSUE_TABLE):
        out[i] = row[column]
    return out


def _flags(names) -> np.ndarray:
    """A 256-entry boolean table, True at the named tissues."""
    out = np.zeros(256, bool)
    out[[TISSUE[n] for n in names]] = True
    return out


_NAME_TO_LABEL = {n: v for v, n in PHANTOM_LABELS.items()}
#: Tissue index -> label value (`PHANTOM_LABELS`).
LABEL_LUT = np.zeros(256, np.uint8)
LABEL_LUT[:len(TISSUE_TABLE)] = [_NAME_TO_LABEL[row[4]] for row in TISSUE_TABLE]
#: Tissue index -> paint priority.
PRIO = _lookup(5, np.int16, 255)
#: Tissues a fat plane can be carved out of (next to the pancreas).
CARVABLE = _flags(("stomach_wall", "stomach_fluid", "stomach_gas", "duo_wall", "duo_collapsed",
                   "duo_fluid", "duo_gas", "bowel_wall", "bowel_collapsed", "bowel_fluid",
                   "bowel_gas", "colon_wall", "colon_content", "colon_gas", "look_solid",
                   "look_wall", "look_fluid", "look_gas", "liver", "spleen", "gb_wall",
                   "gb_bile"))
#: The "ambiguous solid" tissues that always keep a fat plane to the pancreas.
ALWAYS_PLANE = _flags(("duo_collapsed", "bowel_collapsed", "look_solid", "look_wall",
                       "look_fluid", "look_gas"))
