"""Atomic file writes for the data layer: a temporary file beside the target, then os.replace.

An interrupted run never leaves a half-written NIfTI, .npy or JSON file behind; temporary
names start with a dot so the loaders never list them.
"""
from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np

__all__ = ["atomic_save_nifti", "atomic_save_npy", "atomic_write_json"]


@contextlib.contextmanager
def _atomic(path: Path, suffix: str):
    """Yields a temporary path beside `path`; on success it replaces `path`, else it is removed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name.split('.')[0]}.",
                               suffix=suffix)
    os.close(fd)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_save_nifti(array: np.ndarray, affine: np.ndarray, path) -> Path:
    """Save `array` with `affine` as NIfTI-1 (gzip when the name ends in .gz), atomically."""
    import nibabel as nib
    path = Path(path)
    aff = np.asarray(affine, float)
    with _atomic(path, ".nii.gz" if path.name.endswith(".gz") else ".nii") as tmp:
        img = nib.Nifti1Image(np.asarray(array), aff)
        img.header.set_xyzt_units("mm", "sec")
        img.set_qform(aff, code=1)
        img.set_sform(aff, code=1)
        nib.save(img, tmp)
    return path


def atomic_save_npy(array: np.ndarray, path) -> Path:
    """Save a C-contiguous .npy file atomically (readable with np.load(mmap_mode='r'))."""
    path = Path(path)
    with _atomic(path, ".npy") as tmp, open(tmp, "wb") as f:
        np.save(f, np.ascontiguousarray(array))
    return path


def atomic_write_json(path, obj) -> Path:
    """Write `obj` as indented JSON atomically."""
    path = Path(path)
    with _atomic(path, ".json") as tmp, open(tmp, "w") as f:
        json.dump(obj, f, indent=1)
        f.write("\n")
    return path
