"""Segment a scan that has no label: `rstn predict SCAN --model RUN_DIR --out DIR`.

The predictor is built once from trained fold run folders (stepwise or RSTN, each read from
its own `config.json`), then predicts from files, with the scan's geometry carried from reading
to writing, as nnU-Net's predictor does:

    predictor = Predictor.from_runs(["runs/standard/stepwise/fold0"])
    result = predictor.predict("scan.nii.gz")     # no label needed
    result.save("out/")   # out/scan_mask.nii.gz, out/scan_overlay.png, out/scan.json

Inside, the scan is read in the library's canonical RAS+ orientation (`rstn_core.data.orient`);
the mask goes back through the inverse of that reorientation, so it is written in the scan's
own grid: the same shape and affine as the input NIfTI whatever its orientation (LPS, axes
swapped), and for a DICOM series its (column, row, slice) index grid with the series' affine.
It overlays the scan in 3D Slicer or ITK-SNAP with no fix-up.

Several run folders form an ensemble (the authors' advice for unseen scans): the mean of the
members' final maps — RSTN's fused probability P(t) at its stop round, a stepwise member's
final mask Z(t) as 0/1 (Algorithm 1 fuses by majority vote and keeps no probability) — is
thresholded at 0.5 as in Algorithm 2, Z = I[P > 0.5].
"""
from __future__ import annotations

import io
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
import torch
from matplotlib.figure import Figure
from nibabel import orientations as ornt
from tqdm.auto import tqdm

from rstn_core.algorithms.rstn import load_rstn, rstn_predict
from rstn_core.algorithms.stepwise import load_stepwise, fixed_point_predict
from rstn_core.config import Config
from rstn_core.data.dicom import read_dicom_series
from rstn_core.data.errors import DataError
from rstn_core.data.loaders import read_nifti
from rstn_core.data.orient import axcodes, spacing_of
from rstn_core.engine.train import FINAL
from rstn_core.io import atomic_save_nifti, atomic_write_bytes, atomic_write_json

__all__ = ["Scan", "Member", "Prediction", "Predictor", "read_scan", "to_scan_grid",
           "load_member", "add_arguments", "run"]

NIFTI = (".nii", ".nii.gz")
AIR_HU = -500.0        # a CT holds air (-1000 HU); a scan whose 1st percentile is above this
SPACING_FACTOR = 1.5   # warn when a voxel side differs from training by more than this factor


# --------------------------------------------------------------------------------------------
# Reading a scan, and writing back into its grid
# --------------------------------------------------------------------------------------------
@dataclass
class Scan:
    """A scan to segment, in canonical RAS+ orientation, with the grid it came in.

    Fields:
        name: output stem (file name without .nii/.nii.gz, or the DICOM folder's name).
        image: (X, Y, Z) float32 HU in RAS+; affine: its (4, 4) RAS affine.
        file_shape, file_affine: the scan's own grid (NIfTI: the file's; DICOM: the
            (column, row, slice) index grid with the series' RAS affine).
        source: "nifti" or "dicom"; path: where it was read from.
    """
    name: str
    image: np.ndarray
    affine: np.ndarray
    file_shape: tuple
    file_affine: np.ndarray
    source: str
    path: str

    @property
    def spacing(self) -> tuple:
        return spacing_of(self.affine)


def _stem(p: Path) -> str:
    for suf in (".nii.gz", ".nii"):
        if p.name.lower().endswith(suf):
            return p.name[: -len(suf)]
    return p.stem if p.is_file() else p.name


def read_scan(path) -> Scan:
    """Read a NIfTI file or a DICOM series (folder or one of its files) as a `Scan`.

    Raises:
        DataError: a missing path, an unreadable file, a 2D image, a DICOM series whose
            Modality is not CT, or values that are not Hounsfield units (no air in the scan).
    """
    p = Path(path)
    if not p.exists():
        raise DataError(f"{p} does not exist; give a NIfTI file (.nii/.nii.gz) or a DICOM "
                        "series folder.")
    if p.is_file() and p.name.lower().endswith(NIFTI):
        image, affine, (raw, file_affine) = read_nifti(p, "image")
        scan = Scan(_stem(p), image, affine, tuple(raw.shape[:3]), file_affine, "nifti", str(p))
    else:
        image, affine, info = read_dicom_series(p)
        head = pydicom.dcmread(info["files"][0], stop_before_pixels=True)
        modality = str(getattr(head, "Modality", "CT") or "CT")
        if modality != "CT":
            raise DataError(f"{p}: a {modality} series, not CT; the nets were trained on CT in "
                            "Hounsfield units — give a CT series.")
        scan = Scan(_stem(p), image, affine, tuple(info["index_shape"]),
                    np.asarray(info["index_affine"], float), "dicom", str(p))
    low = float(np.percentile(scan.image[::2, ::2, ::2], 1))
    if low > AIR_HU:
        raise DataError(f"{p}: 1% of its voxels are below {low:.0f}, so no air (-1000 HU) in the "
                        "scan — not a CT in Hounsfield units (an MR, a PNG stack, a rescaled "
                        "export, or a crop without air?); give the CT as exported by the scanner.")
    return scan


def to_scan_grid(mask: np.ndarray, scan: Scan) -> np.ndarray:
    """Undo the canonical reorientation: a RAS+ (X, Y, Z) array back into the scan's grid.

    The reorientation is an axis permutation with flips (nibabel's `io_orientation`); its
    inverse maps RAS+ codes back to the file's codes, and the result has the file's shape.
    """
    back = ornt.ornt_transform(ornt.axcodes2ornt(("R", "A", "S")),
                               ornt.io_orientation(scan.file_affine))
    out = ornt.apply_orientation(mask, back)
    if tuple(out.shape) != tuple(scan.file_shape):
        raise RuntimeError(f"to_scan_grid: got shape {out.shape} for a scan of "
                           f"{scan.file_shape}; report this with the scan's header.")
    return np.ascontiguousarray(out)


# --------------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------------
@dataclass
class Member:
    """One trained fold of an ensemble: its folder, method ("stepwise" or "rstn"), config and
    nets (StepwiseNets or RSTNModels)."""
    folder: Path
    method: str
    cfg: Config
    nets: object


def _method_of(folder: Path, cfg: Config) -> tuple[str, list[Path]]:
    """The method of a run folder and the net folders whose final checkpoints it needs."""
    stepwise = [folder / f"{v}_{k}" for v in cfg.views for k in ("coarse", "fine")]
    rstn = [folder / v for v in cfg.views]
    if any(p.is_dir() for p in stepwise):
        return "stepwise", stepwise
    if any(p.is_dir() for p in rstn):
        return "rstn", rstn
    raise DataError(f"{folder}: no net folders (<view>_coarse/ or <view>/); --model must be a "
                    "trained fold's run folder, e.g. runs/standard/stepwise/fold0.")


def load_member(folder, device: str | None = None) -> Member:
    """Load one trained fold from its run folder (its `config.json` says how it was built).

    Args:
        folder: e.g. runs/standard/rstn/fold0; device: "cpu" or "cuda" (default: the config's
            when available, else the CPU).
    Raises:
        DataError: no config.json, no net folders, or a net without checkpoint_final.pt.
    """
    folder = Path(folder)
    if not (folder / "config.json").is_file():
        raise DataError(f"{folder}: no config.json; --model must be a trained fold's run "
                        "folder, e.g. runs/standard/stepwise/fold0.")
    cfg = Config.load(folder / "config.json")
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    cfg = cfg.replace(device=device)
    method, nets_dirs = _method_of(folder, cfg)
    missing = [p.name for p in nets_dirs if not (p / FINAL).is_file()]
    if missing:
        raise DataError(f"{folder}: no {FINAL} in {', '.join(missing)} (training unfinished); "
                        f"finish it with `rstn train --method {method} ... --resume` or pick "
                        "another run folder.")
    nets = load_stepwise(cfg, folder) if method == "stepwise" else load_rstn(cfg, folder)
    return Member(folder, method, cfg, nets)


def _check_ensemble(members: list) -> None:
    first = members[0]
    for m in members[1:]:
        for what, a, b in (("target", first.cfg.target, m.cfg.target),
                           ("scale", first.cfg.scale, m.cfg.scale),
                           ("slice size", first.cfg.slice_size, m.cfg.slice_size)):
            if a != b:
                raise DataError(f"--model {m.folder} was trained for {what} {b!r} but "
                                f"{first.folder} for {a!r}; an ensemble needs models of one "
                                f"{what} — drop one of them.")


# --------------------------------------------------------------------------------------------
# Prediction
# --------------------------------------------------------------------------------------------
@dataclass
class Prediction:
    """The result of one scan: the mask in RAS+ (and how to write it in the scan's grid).

    Fields:
        scan: the `Scan`; mask: (X, Y, Z) bool in RAS+; prob: (X, Y, Z) float32 mean of the
        members' final maps; rounds: per member {"model", "method", "rounds", "d"};
        seconds: wall time of the nets; notes: warning lines about the scan (spacing, size).
    """
    scan: Scan
    mask: np.ndarray
    prob: np.ndarray
    rounds: list
    seconds: float
    target: str
    notes: list = field(default_factory=list)

    def summary(self) -> dict:
        """The facts of `<scan>.json`: volume in ml, voxels, bounding box in mm (RAS world
        coordinates of the voxel centres), rounds and d(t) per model, seconds."""
        n = int(self.mask.sum())
        voxel_ml = float(np.prod(self.scan.spacing)) / 1000.0
        box = None
        if n:
            idx = np.argwhere(self.mask)
            lo, hi = idx.min(0), idx.max(0)
            corners = np.array([[a, b, c, 1.0] for a in (lo[0], hi[0]) for b in (lo[1], hi[1])
                                for c in (lo[2], hi[2])]) @ self.scan.affine.T
            box = {"min_mm_ras": corners[:, :3].min(0).round(2).tolist(),
                   "max_mm_ras": corners[:, :3].max(0).round(2).tolist(),
                   "size_mm": (corners[:, :3].max(0) - corners[:, :3].min(0)).round(2).tolist()}
        return {"scan": self.scan.path, "target": self.target, "found": bool(n),
                "volume_ml": round(n * voxel_ml, 3), "voxels": n, "bbox": box,
                "shape": list(self.scan.file_shape), "orientation": axcodes(self.scan.file_affine),
                "spacing_mm": [round(s, 4) for s in spacing_of(self.scan.file_affine)],
                "models": self.rounds, "seconds": round(self.seconds, 3),
                "warnings": self.notes}

    def save(self, out) -> dict:
        """Write `<name>_mask.nii.gz` (uint8, the scan's grid), `<name>_overlay.png` and
        `<name>.json` into `out`; returns {"mask", "overlay", "json"} paths."""
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        name = self.scan.name
        mask_path = atomic_save_nifti(to_scan_grid(self.mask.astype(np.uint8), self.scan),
                                      self.scan.file_affine, out / f"{name}_mask.nii.gz")
        buf = io.BytesIO()
        overlay_figure(self).savefig(buf, format="png", dpi=100)
        png = atomic_write_bytes(out / f"{name}_overlay.png", buf.getvalue())
        js = atomic_write_json(out / f"{name}.json", self.summary())
        return {"mask": str(mask_path), "overlay": str(png), "json": str(js)}


def overlay_figure(pred: Prediction) -> Figure:
    """Three planes through the organ's centre (the volume's centre if nothing was found),
    the CT in the [-100, 240] HU window, the mask outlined; RAS+ display (patient's right on
    the right of the axial panel), each panel at its true aspect ratio."""
    img, m, sp = pred.scan.image, pred.mask, pred.scan.spacing
    c = (np.argwhere(m).mean(0).round().astype(int) if m.any()
         else np.array(img.shape) // 2)
    planes = [("axial (z = %d)" % c[2], img[:, :, c[2]], m[:, :, c[2]], sp[1] / sp[0]),
              ("coronal (y = %d)" % c[1], img[:, c[1], :], m[:, c[1], :], sp[2] / sp[0]),
              ("sagittal (x = %d)" % c[0], img[c[0], :, :], m[c[0], :, :], sp[2] / sp[1])]
    fig = Figure(figsize=(12, 4.4))
    for k, (title, im, mk, aspect) in enumerate(planes):
        ax = fig.add_subplot(1, 3, k + 1)
        ax.imshow(im.T, cmap="gray", vmin=-100, vmax=240, origin="lower", aspect=aspect)
        if mk.any():
            ax.contour(mk.T.astype(float), levels=[0.5], colors="red", linewidths=1.0)
        ax.set_title(title, fontsize=10)
        ax.set_axis_off()
    found = f"{pred.summary()['volume_ml']:.1f} ml" if m.any() else "nothing found"
    fig.suptitle(f"{pred.scan.name}: {pred.target} {found}", fontsize=11)
    return fig


class Predictor:
    """Trained folds (one or an ensemble), ready to segment scans.

    Build with `Predictor.from_runs(folders)`; `predict(path)` returns a `Prediction`.
    """

    def __init__(self, members: list):
        if not members:
            raise DataError("Predictor: no model; give at least one --model RUN_DIR.")
        _check_ensemble(members)
        self.members = members
        self.cfg = members[0].cfg

    @classmethod
    def from_runs(cls, folders, device: str | None = None) -> "Predictor":
        """Load every run folder (see `load_member`) and check they form one ensemble."""
        return cls([load_member(f, device) for f in folders])

    def _warnings(self, scan: Scan) -> list:
        ph = self.cfg.phantom
        if self.cfg.data_root is not None or ph is None:
            return []           # trained on real data: its spacing is not in the config
        lines = []
        want = np.asarray(ph.spacing, float)
        got = np.asarray(scan.spacing, float)
        ratio = got / want
        if np.any(ratio > SPACING_FACTOR) or np.any(ratio < 1 / SPACING_FACTOR):
            lines.append(f"spacing {_fmt(got)} mm is far from the training data's "
                         f"{_fmt(want)} mm; the nets see structures at another size in "
                         "pixels — expect a poorer mask (resample the scan to the training "
                         "spacing, or train at its scale).")
        fov, train_fov = got * np.array(scan.image.shape), want * np.array(ph.shape)
        if np.any(fov > SPACING_FACTOR * train_fov) or np.any(fov < train_fov / SPACING_FACTOR):
            lines.append(f"field of view {_fmt(fov, '{:.0f}')} mm is far from the training "
                         f"data's {_fmt(train_fov, '{:.0f}')} mm.")
        return lines

    def _member_map(self, m: Member, image: np.ndarray) -> tuple[np.ndarray, dict]:
        T = m.cfg.test.max_rounds
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            if m.method == "stepwise":
                res = fixed_point_predict(image, m.nets, R=m.cfg.test.R, T=T)
                final = res.final.astype(np.float32)
            else:
                res = rstn_predict(image, m.nets, thr=m.cfg.test.thr, T=T)
                final = np.asarray(res.probs[res.stopped_at], np.float32)
        info = {"model": str(m.folder), "method": m.method, "rounds": int(res.stopped_at),
                "d": [round(float(x), 5) for x in res.d], "fallback": res.fallback,
                "notes": [str(w.message) for w in caught]}
        return final, info

    def predict(self, path) -> Prediction:
        """Segment one scan (NIfTI file or DICOM series): every member, then their mean.

        Shapes:
            returns a Prediction whose mask is (X, Y, Z) bool in RAS+; `save` writes it in
            the scan's own grid.
        """
        scan = read_scan(path)
        notes = self._warnings(scan)
        t0 = time.perf_counter()
        maps, rounds = [], []
        for m in self.members:
            p, info = self._member_map(m, scan.image)
            maps.append(p)
            rounds.append(info)
        prob = np.mean(maps, axis=0).astype(np.float32)              # mean of the final maps
        mask = prob > 0.5                                             # Z = I[P > 0.5]
        return Prediction(scan, mask, prob, rounds, time.perf_counter() - t0,
                          self.cfg.target, notes)


def _fmt(v, f="{:.2f}") -> str:
    return " x ".join(f.format(float(x)) for x in v)


# --------------------------------------------------------------------------------------------
# The `rstn predict` command
# --------------------------------------------------------------------------------------------
def add_arguments(p) -> None:
    """The flags of `rstn predict` on an argparse (sub)parser."""
    p.add_argument("scans", nargs="+", metavar="SCAN",
                   help="a NIfTI file (.nii/.nii.gz) or a DICOM series folder; no label needed")
    p.add_argument("--model", action="append", required=True, metavar="RUN_DIR",
                   help="a trained fold's run folder, e.g. runs/standard/stepwise/fold0 "
                        "(repeat for an ensemble: mean of the folds' final maps)")
    p.add_argument("--out", required=True, help="output folder for <scan>_mask.nii.gz, "
                   "<scan>_overlay.png and <scan>.json")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args) -> list:
    """`rstn predict`: load the models once, then segment and save every scan; one line per
    scan (volume, rounds, seconds) and any warning about it. Returns the summaries."""
    predictor = Predictor.from_runs(args.model, args.device)
    out = []
    for s in tqdm(args.scans, desc="predict", unit="scan", disable=args.quiet):
        pred = predictor.predict(s)
        files = pred.save(args.out)
        info = pred.summary()
        for w in info["warnings"]:
            tqdm.write(f"rstn: warning: {pred.scan.name}: {w}")
        what = (f"{info['volume_ml']:.1f} ml ({info['voxels']} voxels)" if info["found"]
                else "nothing found (volume 0): no voxel above 0.5")
        rounds = ", ".join(str(r["rounds"]) for r in info["models"])
        tqdm.write(f"{pred.scan.name}: {pred.target} {what}; rounds {rounds}; "
                   f"{info['seconds']:.1f} s -> {files['mask']}")
        out.append(info)
    return out
