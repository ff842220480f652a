"""Read a DICOM CT series (a folder of .dcm files, or one file) into a RAS+ HU volume.

Slices are sorted by their position along the slice normal (ImagePositionPatient projected on
row x column direction), each slice gets its own RescaleSlope/RescaleIntercept, the voxel grid
is built from ImageOrientationPatient and PixelSpacing in DICOM's LPS frame, converted to RAS
and canonicalised. DICOM's pixel array is (rows, columns); the volume's index order is
(column, row, slice) — the (1, 0, 2) transpose that the authors' code applied to the labels
instead.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from rstn_core.data.errors import DataError
from rstn_core.data.orient import canonicalize
import pydicom
from pydicom.errors import InvalidDicomError

__all__ = ["read_dicom_series", "find_dicom_files", "is_dicom_file"]

_NOT_DICOM_SUFFIXES = (".nii", ".gz", ".json", ".txt", ".md", ".csv", ".xml", ".png", ".jpg",
                       ".npy", ".npz", ".zip", ".py", ".pdf", ".html")


def is_dicom_file(path) -> bool:
    """True when the file carries the DICOM Part 10 preamble ('DICM' at byte 128)."""
    try:
        with open(path, "rb") as f:
            head = f.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:132] == b"DICM"


def find_dicom_files(folder) -> list[Path]:
    """DICOM files under `folder` (recursive): every *.dcm plus extension-less DICM files.

    Hidden files (``.*``, including macOS ``._*``) and obvious non-DICOM files are skipped.
    """
    out = []
    for p in sorted(Path(folder).rglob("*")):
        if not p.is_file() or any(part.startswith(".") for part in p.relative_to(folder).parts):
            continue
        name = p.name.lower()
        if name.endswith(".dcm") or name.endswith(".dicom") or name.endswith(".ima"):
            out.append(p)
        elif not name.endswith(_NOT_DICOM_SUFFIXES) and is_dicom_file(p):
            out.append(p)
    return out


def _read(path):
    try:
        return pydicom.dcmread(str(path))
    except InvalidDicomError as e:
        raise DataError(f"{path}: not a DICOM file ({e}); remove it from the series folder or "
                        "point to a DICOM series.") from None
    except Exception as e:  # truncated, unreadable
        raise DataError(f"{path}: cannot read DICOM ({type(e).__name__}: {e}); the file is "
                        "truncated or corrupt — copy it again.") from None


def _pixels(ds, path) -> np.ndarray:
    try:
        arr = ds.pixel_array
    except Exception as e:
        ts = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", "?")
        if not getattr(ts, "is_compressed", True):      # no decoder needed: the bytes are bad
            raise DataError(f"{path}: pixel data is truncated or corrupt ({type(e).__name__}; "
                            f"uncompressed transfer syntax {ts}); copy the file again.") from None
        raise DataError(f"{path}: cannot decode pixel data (transfer syntax {ts}: "
                        f"{type(e).__name__}); install a decoder, e.g. `pip install pylibjpeg "
                        "pylibjpeg-openjpeg` (JPEG 2000) or a recent pillow.") from None
    if arr.ndim != 2:
        raise DataError(f"{path}: pixel data has shape {arr.shape}; expected one 2D CT slice "
                        "per file (multi-frame and colour images are not supported).")
    slope = float(getattr(ds, "RescaleSlope", 1.0) or 1.0)
    inter = float(getattr(ds, "RescaleIntercept", 0.0) or 0.0)
    return arr.astype(np.float32) * np.float32(slope) + np.float32(inter)


def read_dicom_series(path, min_slices: int = 2):
    """Read one DICOM series into a canonical (RAS+) float32 HU volume.

    Args:
        path: a folder holding one series (searched recursively, as NIH Pancreas-CT's
            ``PANCREAS_00XX/<uid>/<uid>/*.dcm``) or a single .dcm file.
        min_slices: fewer slices raise `DataError`; 1 reads a single slice as an (X, Y, 1)
            volume (its thickness from SpacingBetweenSlices or SliceThickness, else 1 mm).
    Returns:
        (volume (X, Y, Z) float32 HU in RAS+, affine (4, 4) RAS mm, info) where info holds
        ``index_affine`` (the RAS affine of the (column, row, sorted slice) index grid, before
        canonicalisation), ``index_shape``, ``n_slices``, ``files`` (sorted), ``patient_id``.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path} does not exist; point to a DICOM series folder or a .dcm file.")
    files = [path] if path.is_file() else find_dicom_files(path)
    if not files:
        raise DataError(f"{path}: no DICOM files found; point to the folder that holds one "
                        "series' .dcm files.")
    dss = [(f, _read(f)) for f in files]
    series = {}
    for f, ds in dss:
        if getattr(ds, "SeriesInstanceUID", None) is None:
            raise DataError(f"{f}: no SeriesInstanceUID in its header (the file is truncated or "
                            "not a CT slice); copy it again or remove it from the folder.")
        series.setdefault(str(ds.SeriesInstanceUID), []).append((f, ds))
    if len(series) > 1:
        sizes = ", ".join(f"{uid[-12:]} ({len(v)} files)" for uid, v in series.items())
        raise DataError(f"{path} holds {len(series)} DICOM series ({sizes}); point to one "
                        "series' folder.")
    items = next(iter(series.values()))
    f0, ds0 = items[0]
    for key in ("ImageOrientationPatient", "ImagePositionPatient", "PixelSpacing"):
        if getattr(ds0, key, None) is None:
            raise DataError(f"{f0}: no {key}; cannot place the slice in space (is it a CT "
                            "image? secondary captures and scouts are not supported).")
    iop = np.array([float(v) for v in ds0.ImageOrientationPatient])
    row_dir, col_dir = iop[:3], iop[3:]
    normal = np.cross(row_dir, col_dir)
    ps = [float(v) for v in ds0.PixelSpacing]                  # (between rows, between columns)
    pos = []
    for f, ds in items:
        ipp = getattr(ds, "ImagePositionPatient", None)
        if ipp is None:
            raise DataError(f"{f}: no ImagePositionPatient; cannot sort the slices.")
        pos.append(float(np.dot([float(v) for v in ipp], normal)))
    order = np.argsort(pos, kind="stable")
    pos = np.asarray(pos)[order]
    items = [items[i] for i in order]
    n = len(items)
    if n < min_slices:
        raise DataError(f"{path}: a single 2D slice; a 3D volume is needed (read one slice "
                        "with read_dicom_series(path, min_slices=1)).")
    if n > 1:
        gaps = np.diff(pos)
        if np.any(gaps < 1e-3):
            k = int(np.argmin(gaps))
            raise DataError(f"{items[k + 1][0]}: same slice position as {items[k][0]}; the "
                            "folder mixes two acquisitions — keep one copy of each slice.")
        dz = float(np.median(gaps))
        if np.max(np.abs(gaps - dz)) > 0.1 * dz + 0.01:
            warnings.warn(f"{path}: uneven slice spacing ({gaps.min():.2f}..{gaps.max():.2f} mm); "
                          f"using the median {dz:.2f} mm (missing slices?)", stacklevel=2)
    else:
        dz = float(getattr(ds0, "SpacingBetweenSlices", None)
                   or getattr(ds0, "SliceThickness", None) or 1.0)
    slices = []
    shape2d = None
    for f, ds in items:
        a = _pixels(ds, f)
        if shape2d is None:
            shape2d = a.shape
        elif a.shape != shape2d:
            raise DataError(f"{f}: slice is {a.shape} but the series' first slice is "
                            f"{shape2d}; the folder mixes series — keep one.")
        slices.append(a)
    vol = np.stack(slices, axis=-1).transpose(1, 0, 2)        # (column, row, slice)
    ipp0 = np.array([float(v) for v in items[0][1].ImagePositionPatient])
    lps = np.eye(4)
    lps[:3, 0] = row_dir * ps[1]                              # column index -> along a row
    lps[:3, 1] = col_dir * ps[0]                              # row index -> down a column
    lps[:3, 2] = normal * dz
    lps[:3, 3] = ipp0
    ras = np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps
    out, aff = canonicalize(vol, ras)
    info = {"index_affine": ras, "index_shape": vol.shape, "n_slices": n,
            "files": [str(f) for f, _ in items],
            "patient_id": str(getattr(ds0, "PatientID", "") or "")}
    return out.astype(np.float32, copy=False), aff, info
