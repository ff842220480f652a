"""`inspect_path`: a one-screen text summary of a scan or a data set (`rstn inspect PATH`)."""
from __future__ import annotations

import json
import textwrap
from pathlib import Path

import numpy as np

from rstn_core.data.errors import DataError
from rstn_core.data.folds import load_folds, make_folds
from rstn_core.data.loaders import detect_source, list_cases, load_case, pancreas_mean_hu
from rstn_core.data.orient import axcodes
import pydicom
from rstn_core.data.dicom import find_dicom_files
import nibabel as nib

__all__ = ["inspect_path"]


def _header(ref):
    """(shape, spacing, file orientation codes) from headers only (cheap)."""
    p = Path(ref.image)
    if p.is_file() and p.name.lower().endswith((".nii", ".nii.gz")):
        try:
            img = nib.load(str(p))
            return tuple(img.shape[:3]), tuple(float(z) for z in img.header.get_zooms()[:3]), \
                axcodes(img.affine)
        except Exception:
            raise DataError(f"{p}: not a readable NIfTI file; download or extract it "
                            "again.") from None
    files = [p] if p.is_file() else find_dicom_files(p)
    if not files:
        raise DataError(f"{p}: no DICOM files found; point to the folder of one series.")
    try:
        ds = pydicom.dcmread(str(files[0]), stop_before_pixels=True)
        ps = [float(v) for v in ds.PixelSpacing]
        th = float(getattr(ds, "SliceThickness", 0) or 0)
        return (int(ds.Columns), int(ds.Rows), len(files)), (ps[1], ps[0], th), "DICOM"
    except Exception as e:
        raise DataError(f"{files[0]}: cannot read the DICOM header ({type(e).__name__}); copy "
                        "the series again.") from None


def _wrap(items, sep, head, width=96):
    """Wrap `items` joined by `sep` without breaking inside an item."""
    nb = "\u00a0"
    text = sep.join(i.replace(" ", nb) for i in items)
    lines = textwrap.wrap(text, width, initial_indent=head, subsequent_indent=" " * len(head),
                          break_long_words=False, break_on_hyphens=False)
    return [ln.replace(nb, " ") for ln in lines]


def _fmt3(t, f="{:g}"):
    return " x ".join(f.format(v) for v in t)


def _case_lines(case) -> list[str]:
    img = case.image
    q = np.percentile(img[::2, ::2, ::2], [1, 50, 99]) if img.size > 8 else np.zeros(3)
    fov = tuple(n * s for n, s in zip(img.shape, case.spacing))
    lines = [f"shape    {_fmt3(img.shape)} voxels; spacing {_fmt3(case.spacing, '{:.2f}')} mm; "
             f"field of view {_fmt3(fov, '{:.0f}')} mm",
             f"orient   {axcodes(case.affine)} (array axes after loading: x left->Right, "
             "y posterior->Anterior, z inferior->Superior)",
             f"HU       min {img.min():.0f}, p1 {q[0]:.0f}, median {q[1]:.0f}, p99 {q[2]:.0f}, "
             f"max {img.max():.0f}"]
    if case.labels is None:
        lines.append("labels   none (a scan to segment)")
        return lines
    counts = np.bincount(case.labels.ravel(), minlength=256)
    parts = [f"{v} {n} {counts[v] * case.voxel_ml:.1f} ml" for v, n in case.label_names.items()
             if v != 0 and v < 256]
    lines += _wrap(parts, "; ", "labels   ")
    hu = pancreas_mean_hu(case.image, case.labels, case.label_names)
    if hu is not None:
        ok = "ok" if 40 <= hu <= 200 else "SUSPICIOUS: label misaligned?"
        lines.append(f"check    mean HU under the pancreas target {hu:.0f} (expected ~100: {ok})")
    return lines


def _fold_lines(root: Path, ids) -> list[str]:
    fp = root / "folds.json"
    if fp.is_file():
        folds, how = load_folds(fp), f"from {fp.name}"
    elif len(ids) >= 4:
        folds, how = make_folds(ids, 4), "default: make_folds(ids, k=4), contiguous blocks"
    else:
        return [f"folds    too few cases ({len(ids)}) for 4 folds"]
    parts = [f"{f}: {fo[0]}..{fo[-1]} ({len(fo)})" for f, fo in enumerate(folds) if fo]
    return [f"folds    {how}", "         " + " | ".join(parts)]


def inspect_path(path) -> str:
    """One-screen summary of a scan (NIfTI file, DICOM series) or a data set root.

    Scan: shape, spacing, field of view, orientation codes, HU range, label names and volumes
    in ml, and the mean HU under the pancreas (a misalignment check). Data set: source, number
    of cases and labels, the range of shapes and spacings (headers only), the folds, and the
    first case in full.
    """
    p = Path(path)
    source = detect_source(p)
    refs = list_cases(p)
    if len(refs) == 1 and source in ("nifti", "dicom"):
        r = refs[0]
        _, _, codes = _header(r)
        label = r.label
        if p.is_file() and p.parent.name.startswith("images"):     # its label, if beside it
            cand = p.parent.parent / ("labels" + p.parent.name[len("images"):]) / p.name
            label = str(cand) if cand.is_file() else None
        case = load_case(r.image, label, allow_2d=True)
        head = f"scan     {p} ({source}; stored as {codes})"
        return "\n".join([head] + _case_lines(case))
    n_lab = sum(r.label is not None for r in refs)
    heads = [_header(r) for r in refs]
    shapes = sorted({h[0] for h in heads})
    sp = np.array([h[1] for h in heads])
    lines = [f"data set {p} ({source}; {len(refs)} cases, {n_lab} with labels)"]
    dj = p / "dataset.json"
    if dj.is_file():
        d = json.loads(dj.read_text())
        labels = d.get("labels", {})
        lines += _wrap([f"{k} {v}" for k, v in labels.items()], ", ", "labels   ")
        gen = d.get("generator")
        if gen:
            c = gen.get("config", {})
            lines.append(f"phantom  seed {gen.get('seed')}, generator v{gen.get('version')}; "
                         + ", ".join(f"{k}={c[k]}" for k in ("target_scale", "contrast", "noise_hu",
                                                             "lookalike", "cysts",
                                                             "fat_plane_missing_prob") if k in c))
            ml = [e.get("meta", {}).get("pancreas_ml") for e in d.get("training", [])]
            ml = [m for m in ml if m is not None]
            if ml:
                lines.append(f"pancreas {min(ml):.0f}..{max(ml):.0f} ml (median "
                             f"{float(np.median(ml)):.0f}) over the cases")
    shp = _fmt3(shapes[0]) if len(shapes) == 1 else \
        f"{len(shapes)} sizes, {_fmt3(shapes[0])} .. {_fmt3(shapes[-1])}"
    spc = _fmt3(sp.min(0), '{:.2f}')
    if not np.allclose(sp.min(0), sp.max(0), atol=5e-3):
        spc += " .. " + _fmt3(sp.max(0), '{:.2f}')
    lines.append(f"shapes   {shp}; spacing {spc} mm; stored as "
                 f"{', '.join(sorted({h[2] for h in heads}))}")
    lines += _fold_lines(p, [r.id for r in refs])
    first = refs[0]
    case = load_case(first)
    lines.append(f"first    {first.id}:")
    lines += ["  " + ln for ln in _case_lines(case)]
    return "\n".join(lines)
