"""Load CT cases from disk: the phantom, MSD Task07, NIH Pancreas-CT, or a lone scan.

Every loader returns a `Case` in one canonical orientation (RAS+, see `case.py`): NIfTI via
the affine (nibabel's closest canonical), DICOM via ImageOrientationPatient (see `dicom.py`).
`list_cases(root)` detects the layout:

- phantom / MSD: ``root/dataset.json`` + ``imagesTr/*.nii.gz`` + ``labelsTr/*.nii.gz``
  (``._*`` junk skipped; a dataset.json with a "generator" entry is the phantom); MSD's
  ``imagesTs/`` scans are listed too, with ``label=None``;
- NIH Pancreas-CT: ``root/**/PANCREAS_00XX/<uid>/<uid>/*.dcm`` and ``root/**/label00XX.nii.gz``;
- a single NIfTI file, a DICOM file or folder, or a folder of NIfTI files: scans without label.

Bad input raises `DataError` with a one-line message naming the file and the fix.
"""
from __future__ import annotations

import json
import re
import warnings
import zlib
from pathlib import Path

import numpy as np

from rstn_core.data.case import Case, CaseRef
from rstn_core.data.errors import DataError
from rstn_core.data.labels import MSD_LABELS, NIH_LABELS, PHANTOM_LABELS, target_values
from rstn_core.data.orient import canonicalize, spacing_of
import nibabel as nib
from rstn_core.data.dicom import read_dicom_series
from rstn_core.data.dicom import find_dicom_files

__all__ = ["load_case", "list_cases", "detect_source", "read_nifti", "read_label_names",
           "pancreas_mean_hu", "DEFAULT_LABELS"]

#: Label names assumed for a label file with no dataset.json beside it.
DEFAULT_LABELS: dict[int, str] = {0: "background", 1: "pancreas", 2: "cyst"}
_NIFTI = (".nii", ".nii.gz")
# plausible mean HU under a contrast-enhanced pancreas label (about 100 HU in portal-venous CT)
_PANCREAS_HU_RANGE = (40.0, 200.0)


def _is_nifti(p: Path) -> bool:
    return p.name.lower().endswith(_NIFTI)


def _stem(p: Path) -> str:
    name = p.name
    for suf in (".nii.gz", ".nii", ".dcm"):
        if name.lower().endswith(suf):
            return name[: -len(suf)]
    return name


def _visible(p: Path) -> bool:
    return not p.name.startswith(".")          # skips macOS ._* junk and our temporary files


# --------------------------------------------------------------------------------------------
# NIfTI
# --------------------------------------------------------------------------------------------
def read_nifti(path, kind: str = "image", allow_2d: bool = False):
    """Read a NIfTI file in canonical RAS+ orientation.

    Args:
        path: .nii or .nii.gz file.
        kind: ``"image"`` (float32 HU, finite) or ``"label"`` (integer classes -> uint8).
        allow_2d: accept a single-slice (X, Y, 1) or 2D file (returned as (X, Y, 1)).
    Returns:
        (array, affine, raw) with raw = (the array in file index order, the file's affine),
        which the NIH loader needs to repair a label whose header disagrees with its scan.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path} does not exist; check the path.")
    try:
        img = nib.load(str(path))
        shape = img.shape
    except Exception as e:
        raise DataError(f"{path}: not a readable NIfTI file ({type(e).__name__}); the file is "
                        "truncated or corrupt — download or extract it again.") from None
    if len(shape) == 4 and shape[3] == 1:
        shape = shape[:3]
    if len(shape) > 3:
        raise DataError(f"{path}: {len(shape)}D image {tuple(shape)}; a 3D scan is needed "
                        "(split the volumes, e.g. with nibabel's four_to_three).")
    is_2d = len(shape) < 3 or min(shape[:3]) == 1
    if is_2d and not allow_2d:
        raise DataError(f"{path}: a 2D image {tuple(shape)}; a 3D volume (X, Y, Z) is needed "
                        "— pass the whole scan, not one slice.")
    try:
        data = np.asanyarray(img.dataobj)
    except (EOFError, OSError, zlib.error, ValueError) as e:
        raise DataError(f"{path}: truncated or corrupt NIfTI ({type(e).__name__}); download or "
                        "extract it again.") from None
    data = data.reshape(tuple(data.shape[:3]) + (1,) * (3 - data.ndim)) if data.ndim < 3 \
        else data.reshape(data.shape[:3])
    affine = img.affine
    if affine is None or not np.all(np.isfinite(affine)) or \
            abs(np.linalg.det(affine[:3, :3])) < 1e-9:
        raise DataError(f"{path}: missing or singular affine in the header; re-export the file "
                        "with its orientation (qform/sform).")
    raw = (data, np.asarray(affine, float))
    if kind == "image":
        arr = np.asarray(data, dtype=np.float32)
        bad = ~np.isfinite(arr)
        if bad.any():
            raise DataError(f"{path}: {int(bad.sum())} NaN/inf voxels in the image; re-export the "
                            "scan or replace them (e.g. np.nan_to_num) before loading.")
    else:
        arr = _as_label(data, path)
    out, aff = canonicalize(arr, affine)
    return out, aff, raw


def _as_label(data, path) -> np.ndarray:
    if np.issubdtype(data.dtype, np.integer) or data.dtype == bool:
        lo, hi = (int(data.min()), int(data.max())) if data.size else (0, 0)
        if lo < 0 or hi > 255:
            raise DataError(f"{path}: label values span {lo}..{hi}; a label map holds classes "
                            "0..255 — is this an image rather than a label?")
        return data.astype(np.uint8)
    f = np.asarray(data, dtype=np.float64)
    if not np.all(np.isfinite(f)):
        raise DataError(f"{path}: NaN/inf in the label map; re-export it with integer classes.")
    r = np.rint(f)
    if np.any(np.abs(f - r) > 1e-3):
        v = float(f[np.abs(f - r) > 1e-3].flat[0])
        raise DataError(f"{path}: non-integer label values (e.g. {v:g}); a label map must hold "
                        "integer classes — resample labels with nearest-neighbour, not linear.")
    if r.min() < 0 or r.max() > 255:
        raise DataError(f"{path}: label values span {r.min():g}..{r.max():g}; a label map holds "
                        "classes 0..255 — is this an image rather than a label?")
    return r.astype(np.uint8)


# --------------------------------------------------------------------------------------------
# Label names
# --------------------------------------------------------------------------------------------
def read_label_names(dataset_json) -> dict[int, str]:
    """{value: name} from an MSD-style dataset.json ("labels": {"1": "pancreas"} or the
    nnU-Net v2 form {"pancreas": 1})."""
    p = Path(dataset_json)
    try:
        d = json.loads(p.read_text())
        labels = d["labels"]
        out = {}
        for k, v in labels.items():
            if str(k).lstrip("-").isdigit():
                out[int(k)] = str(v)
            elif isinstance(v, int):
                out[int(v)] = str(k)
            else:
                raise ValueError(k)
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise DataError(f"{p}: cannot read its \"labels\" ({type(e).__name__}); expected e.g. "
                        "{\"labels\": {\"0\": \"background\", \"1\": \"pancreas\"}}.") from None
    out.setdefault(0, "background")
    return dict(sorted(out.items()))


def _names_for(image: Path, source: str) -> dict[int, str]:
    parent = image.parent
    for d in (parent.parent, parent):
        if (d / "dataset.json").is_file() and parent.name.lower().startswith(("images", "labels")):
            return read_label_names(d / "dataset.json")
    return {"nih": NIH_LABELS, "msd": MSD_LABELS, "phantom": PHANTOM_LABELS}.get(
        source, DEFAULT_LABELS)


# --------------------------------------------------------------------------------------------
# Cases
# --------------------------------------------------------------------------------------------
def pancreas_mean_hu(image: np.ndarray, labels: np.ndarray, label_names: dict[int, str]):
    """Mean HU under the pancreas target (pancreas ∪ lesion), or None if it has no voxels."""
    values = target_values(label_names, "pancreas")
    if not values:
        return None
    lut = np.zeros(256, bool)
    lut[values] = True
    m = lut[labels]
    return float(image[m].mean()) if m.any() else None


def _plausible(hu):
    return hu is not None and _PANCREAS_HU_RANGE[0] <= hu <= _PANCREAS_HU_RANGE[1]


def _dicom_label(image, img_aff, info, label_path):
    """Put an NIH label on its DICOM scan's grid, repairing a header that disagrees.

    Candidates: the label's own affine (correct when its header is right), and the label's
    array read in the DICOM index order (column, row, slice by position), as the authors'
    code did with its (1, 0, 2) transpose — also with the slices reversed, and transposed.
    The first whose mean HU under the pancreas is plausible (~100) wins; else a warning.
    """
    lab, lab_aff, (raw, _) = read_nifti(label_path, "label", allow_2d=image.shape[2] == 1)
    cands = []
    tol = 0.05 * min(spacing_of(img_aff))
    if lab.shape == image.shape and np.allclose(lab_aff, img_aff, atol=tol):
        cands.append(("its header", lab))
    raw = _as_label(raw, label_path)
    ishape = tuple(info["index_shape"])
    for name, arr in (("DICOM index order", raw), ("DICOM index order, slices reversed",
                                                   raw[:, :, ::-1]),
                      ("DICOM index order, (1, 0, 2) transposed", raw.transpose(1, 0, 2))):
        if arr.shape == ishape:
            cands.append((name, canonicalize(arr, info["index_affine"])[0]))
    if not cands:
        raise DataError(f"{label_path}: label shape {tuple(lab.shape)} does not match its scan "
                        f"{tuple(image.shape)}; they must cover the same grid — is it the right "
                        "label for this patient?")
    hus = [pancreas_mean_hu(image, c, NIH_LABELS) for _, c in cands]
    for (name, c), hu in zip(cands, hus):
        if _plausible(hu):
            if name != "its header":
                warnings.warn(f"{label_path}: its header does not place it on the scan; used "
                              f"{name} (mean HU under the pancreas {hu:.0f}).", stacklevel=3)
            return c
    hu = hus[0]
    warnings.warn(f"{label_path}: mean HU under the pancreas label is "
                  f"{'n/a' if hu is None else f'{hu:.0f}'} (expected ≈ 100): the label may be "
                  "misaligned with the image — check its orientation (data/README.md).",
                  stacklevel=3)
    return cands[0][1]


def load_case(image_path, label_path=None, *, case_id: str | None = None,
              allow_2d: bool = False, label_names: dict[int, str] | None = None) -> Case:
    """Load one case (image and optional label map) in canonical RAS+ orientation.

    Args:
        image_path: NIfTI file, DICOM series folder or .dcm file — or a `CaseRef`.
        label_path: NIfTI label map on the same grid, or None for a scan to segment.
        case_id: name of the case (default: from the path).
        allow_2d: accept a single slice as an (X, Y, 1) volume (default: `DataError`).
        label_names: {value: name}; default from the data set's dataset.json, else by source
            (NIH: 1 pancreas; otherwise 1 pancreas, 2 cyst).
    Shapes:
        returns `Case` with image (X, Y, Z) float32 HU and labels (X, Y, Z) uint8 or None.
    Raises:
        DataError: missing, truncated or non-image file; 2D where 3D is needed; NaN/inf;
            image/label shape or affine mismatch; non-integer or unknown label values.
    """
    source = None
    if isinstance(image_path, CaseRef):
        ref = image_path
        image_path, label_path = ref.image, ref.label if label_path is None else label_path
        case_id, source = case_id or ref.id, ref.source
    ip = Path(image_path)
    if not ip.exists():
        raise DataError(f"{ip} does not exist; check the path.")
    is_dicom = ip.is_dir() or not _is_nifti(ip)
    if is_dicom:
        if ip.is_dir() and not any(ip.iterdir()):
            raise DataError(f"{ip}: empty folder; point to a DICOM series or a NIfTI file.")
        image, affine, info = read_dicom_series(ip, min_slices=1 if allow_2d else 2)
        source = source or ("nih" if label_path is not None else "dicom")
    else:
        image, affine, _ = read_nifti(ip, "image", allow_2d=allow_2d)
        info = None
        source = source or "nifti"
    cid = case_id or (ip.name if ip.is_dir() else _stem(ip))
    names = dict(label_names) if label_names else _names_for(ip, source)
    labels = None
    if label_path is not None:
        lp = Path(label_path)
        if is_dicom:
            labels = _dicom_label(image, affine, info, lp)
        else:
            labels, laff, _ = read_nifti(lp, "label", allow_2d=allow_2d)
            if labels.shape != image.shape:
                raise DataError(f"{lp}: label shape {tuple(labels.shape)} does not match image "
                                f"{ip.name} {tuple(image.shape)}; they must be on the same grid "
                                "(resample the label with nearest-neighbour).")
            diff = float(np.max(np.abs(laff - affine)))
            if diff > 0.05 * min(spacing_of(affine)) + 1e-4:
                raise DataError(f"{lp}: label affine differs from image {ip.name} (by up to "
                                f"{diff:.3g} mm); they must share one grid — copy the image's "
                                "header to the label or resample it.")
        present = set(np.unique(labels).tolist())
        unknown = sorted(present - set(names))
        if unknown:
            known = ", ".join(f"{v} {n}" for v, n in names.items())
            raise DataError(f"{lp}: unknown label values {unknown}; known: {known} — add them to "
                            "the data set's dataset.json \"labels\" or fix the label file.")
        hu = pancreas_mean_hu(image, labels, names)
        if not is_dicom and hu is not None and not _plausible(hu):
            warnings.warn(f"{lp}: mean HU under the pancreas label is {hu:.0f} (expected ≈ 100): "
                          "the label may be misaligned with the image — check its orientation "
                          "(data/README.md).", stacklevel=2)
    return Case(id=str(cid), image=image, labels=labels, spacing=spacing_of(affine),
                affine=affine, label_names=names, source=source)


# --------------------------------------------------------------------------------------------
# Data sets
# --------------------------------------------------------------------------------------------
def detect_source(root) -> str:
    """Layout of `root`: ``"phantom"``, ``"msd"``, ``"nih"``, ``"nifti"`` or ``"dicom"``."""
    root = Path(root)
    if not root.exists():
        raise DataError(f"{root} does not exist; check the path (or make the phantom with "
                        "`rstn phantom --out DIR`).")
    if root.is_file():
        if _is_nifti(root):
            return "nifti"
        return "dicom"
    dj = root / "dataset.json"
    if dj.is_file():
        try:
            gen = "generator" in json.loads(dj.read_text())
        except ValueError:
            raise DataError(f"{dj}: not valid JSON; restore it from the archive (or delete it "
                            "to list imagesTr/ by name).") from None
        return "phantom" if gen else "msd"
    if (root / "imagesTr").is_dir():
        return "msd"
    if _nih_dirs(root):
        return "nih"
    if any(_is_nifti(p) and _visible(p) for p in root.iterdir()):
        return "nifti"
    if find_dicom_files(root):
        return "dicom"
    if not any(root.iterdir()):
        raise DataError(f"{root}: empty folder; expected a data set (dataset.json + imagesTr/, "
                        "or NIH PANCREAS_XXXX/ folders), NIfTI files or a DICOM series.")
    raise DataError(f"{root}: no CT found (no dataset.json, imagesTr/, PANCREAS_XXXX/, .nii.gz "
                    "or DICOM files); point to a data set root or a scan.")


def _nih_dirs(root: Path) -> list[Path]:
    out = [p for p in root.iterdir() if p.is_dir() and re.fullmatch(r"PANCREAS_\d+", p.name)]
    if not out:                                  # one level down (e.g. "Pancreas-CT/")
        for sub in root.iterdir():
            if sub.is_dir() and _visible(sub):
                out += [p for p in sub.iterdir() if p.is_dir() and
                        re.fullmatch(r"PANCREAS_\d+", p.name)]
    return sorted(out)


def _msd_refs(root: Path, source: str) -> list[CaseRef]:
    dj = root / "dataset.json"
    refs = []
    entries = None
    if dj.is_file():
        try:
            entries = json.loads(dj.read_text()).get("training")
        except ValueError:
            raise DataError(f"{dj}: not valid JSON; restore it from the archive.") from None
    if entries:
        for e in entries:
            img = root / str(e["image"] if isinstance(e, dict) else e)
            lab = root / str(e["label"]) if isinstance(e, dict) and e.get("label") else None
            if img.name.startswith("."):
                continue
            if not img.is_file():
                raise DataError(f"{dj} lists {img} which does not exist; extract the archive "
                                "completely (or regenerate the phantom).")
            refs.append(CaseRef(_stem(img), str(img), str(lab) if lab and lab.is_file() else None,
                                source))
    else:
        imgs = sorted(p for p in (root / "imagesTr").glob("*.nii*") if _visible(p))
        for img in imgs:
            lab = root / "labelsTr" / img.name
            refs.append(CaseRef(_stem(img), str(img), str(lab) if lab.is_file() else None, source))
    if not refs:
        raise DataError(f"{root}: no training images in imagesTr/; extract the archive completely "
                        "(or regenerate the phantom).")
    seen = {r.id for r in refs}
    if (root / "imagesTs").is_dir():          # MSD test images: scans without labels
        for img in sorted(p for p in (root / "imagesTs").glob("*.nii*") if _visible(p)):
            if _stem(img) not in seen:
                refs.append(CaseRef(_stem(img), str(img), None, source))
    return sorted(refs, key=lambda r: r.id)


def _nih_refs(root: Path) -> list[CaseRef]:
    labels = {}
    for p in root.rglob("label*.nii*"):
        m = re.fullmatch(r"label(\d+)\.nii(\.gz)?", p.name)
        if m and _visible(p):
            labels[int(m.group(1))] = p
    refs = []
    for d in _nih_dirs(root):
        num = int(d.name.split("_")[1])
        lab = labels.get(num)
        refs.append(CaseRef(d.name, str(d), str(lab) if lab else None, "nih"))
    return refs


def list_cases(root) -> list[CaseRef]:
    """The cases under `root`, sorted by id, with the layout detected (see module docstring).

    Returns:
        list of `CaseRef(id, image, label, source)`; label is None for scans without one.
    Raises:
        DataError: `root` missing or empty, no recognisable CT, a dataset.json listing
            missing files.
    """
    root = Path(root)
    source = detect_source(root)
    if source in ("phantom", "msd"):
        return _msd_refs(root, source)
    if source == "nih":
        return _nih_refs(root)
    if source == "nifti":
        if root.is_file():
            return [CaseRef(_stem(root), str(root), None, "nifti")]
        return [CaseRef(_stem(p), str(p), None, "nifti") for p in sorted(root.iterdir())
                if _is_nifti(p) and _visible(p)]
    return [CaseRef(root.name if root.is_dir() else _stem(root), str(root), None, "dicom")]
