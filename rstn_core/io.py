"""Atomic file writes: a run interrupted at any moment never leaves a half-written file."""
from __future__ import annotations

import gzip
import io
import json
import os
import tempfile
from pathlib import Path

import nibabel as nib
import numpy as np
import torch

__all__ = ["atomic_write_bytes", "atomic_write_text", "atomic_write_json", "atomic_torch_save",
           "atomic_savez", "atomic_save_npy", "atomic_save_nifti", "load_checkpoint"]


def atomic_write_bytes(path, data: bytes) -> Path:
    """Write `data` to a temporary file beside `path`, fsync it, then rename over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def atomic_write_text(path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path, obj) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=_jsonable) + "\n")


def _jsonable(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def atomic_torch_save(obj, path) -> Path:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return atomic_write_bytes(path, buf.getvalue())


def atomic_savez(path, **arrays) -> Path:
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return atomic_write_bytes(path, buf.getvalue())


def atomic_save_npy(array: np.ndarray, path) -> Path:
    """Save a C-contiguous .npy file atomically (readable with np.load(mmap_mode='r'))."""
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(array))
    return atomic_write_bytes(path, buf.getvalue())


def atomic_save_nifti(array: np.ndarray, affine: np.ndarray, path) -> Path:
    """Save `array` with `affine` as NIfTI-1 (gzip when the name ends in .gz), atomically;
    qform and sform both set (code 1), units mm."""
    path = Path(path)
    aff = np.asarray(affine, float)
    img = nib.Nifti1Image(np.asarray(array), aff)
    img.header.set_xyzt_units("mm", "sec")
    img.set_qform(aff, code=1)
    img.set_sform(aff, code=1)
    data = img.to_bytes()
    if path.name.endswith(".gz"):
        data = gzip.compress(data, compresslevel=6, mtime=0)
    return atomic_write_bytes(path, data)


def load_checkpoint(path, map_location="cpu"):
    """`torch.load(..., weights_only=True)` with a one-line error for a missing or corrupt file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} not found; train first (`rstn train ...`) "
                                "or point at the right run folder.")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # truncated or foreign file
        raise ValueError(f"checkpoint {path} could not be read ({type(e).__name__}); delete it "
                         "and resume from the previous one, or retrain.") from None
