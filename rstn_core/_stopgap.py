"""TEMPORARY: minimal phantom-layout readers until rstn_core.data's loaders land."""
import json
from pathlib import Path

import nibabel as nib
import numpy as np

from .data.case import Case, CaseRef
from .data.labels import PHANTOM_LABELS


def list_cases(root):
    root = Path(root)
    d = json.loads((root / "dataset.json").read_text())
    out = []
    for e in d["training"]:
        img = root / e["image"]
        out.append(CaseRef(img.name.replace(".nii.gz", ""), str(img), str(root / e["label"]), "phantom"))
    return out


def load_case(image, label=None):
    im = nib.as_closest_canonical(nib.load(image))
    lab = nib.as_closest_canonical(nib.load(label)) if label else None
    return Case(Path(image).name.replace(".nii.gz", ""), np.asarray(im.dataobj, np.float32),
                None if lab is None else np.asarray(lab.dataobj, np.uint8),
                tuple(float(s) for s in im.header.get_zooms()[:3]), im.affine, dict(PHANTOM_LABELS))


def fold_split(ids, fold, k=4):
    ids = sorted(ids)
    blocks = np.array_split(np.arange(len(ids)), k)
    test = [ids[i] for i in blocks[fold]]
    return [i for i in ids if i not in test], test
