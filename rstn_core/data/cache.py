"""A per-case cache of network-ready arrays: windowed uint8 images and label maps per view.

For each case and each view the volume is stored with the view's axis first, C-contiguous,
as a plain .npy file opened memory-mapped (``np.load(mmap_mode="r")``), so a training loop
reads a slice ``arr[j]`` as one contiguous block without loading the volume:

    cache_dir/<case id>-<8 hex of the source path>/
        meta.json              written last: source stamps, window, shape, spacing, labels
        image_coronal.npy      uint8 (X, Y, Z)    coronal  = axis 0 first
        image_sagittal.npy     uint8 (Y, X, Z)    sagittal = axis 1 first
        image_axial.npy        uint8 (Z, X, Y)    axial    = axis 2 first
        label_<view>.npy       uint8 label map, same layouts (absent for a scan without label)

i.e. ``np.moveaxis(volume, axis, 0)`` made contiguous. The window maps [-100, 240] HU linearly
to 0..255 (values outside are clipped): ``u8 = round(255 * (clip(hu, lo, hi) - lo) / (hi - lo))``,
so ``u8 / 255`` equals `views.window(hu)` up to rounding (the reference code's intensity
window). An entry is rebuilt when its source file (size, mtime) or the window changes; every
file is written atomically.

Disk and time (measured by tools/colab_estimates.py; book/colab.md): the entry of a case is
6 x X*Y*Z bytes (three image and three label copies, uint8): 2.7 MB per smoke case, 15 MB
standard, 50 MB colab, ~500 MB at paper scale (512 x 512 x ~320), i.e. ~41 GB for 82 cases.
With ``store=False`` (config ``cache_views=false``) nothing is written: every call reads the
NIfTI file again, windows it and returns the views as `np.moveaxis` views of that one volume
(no copy; a slice of the axial view is a strided read). That costs one NIfTI read per case
and view instead of disk, and holds the windowed volume of each training case in memory
(X*Y*Z bytes) while a view trains, where the cache's memory maps let the page cache do so.
"""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np

from rstn_core.data.case import CaseRef
from rstn_core.views import HU_WINDOW, VIEW_AXIS, VIEWS, window_uint8
from rstn_core.data.errors import DataError
from rstn_core.data.dicom import find_dicom_files
from rstn_core.data.loaders import load_case
from rstn_core.io import atomic_save_npy, atomic_write_json

__all__ = ["CaseCache"]
_VERSION = 1


def _stamp(path) -> dict | None:
    """Size and mtime of a file, or of the DICOM files of a folder (count, total, newest)."""
    if path is None:
        return None
    p = Path(path)
    if p.is_file():
        st = p.stat()
        return {"path": str(p.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}
    if p.is_dir():
        files = find_dicom_files(p)
        sts = [f.stat() for f in files]
        return {"path": str(p.resolve()), "files": len(files),
                "size": int(sum(s.st_size for s in sts)),
                "mtime_ns": int(max((s.st_mtime_ns for s in sts), default=0))}
    raise DataError(f"{p} does not exist; the cache needs the source scan (check the path).")


class CaseCache:
    """Windowed uint8 images and label maps per view, memory-mapped (see module docstring).

    Args:
        cache_dir: folder for the cache (created).
        window: (lo, hi) HU window mapped to 0..255; default [-100, 240] (reference code).
        store: True (default) writes the per-view files and memory-maps them; False writes
            nothing and reads the source scan on every `get`/`info` (the last case read is
            kept, so `info` then `get` reads it once); see the module docstring for the cost.

    >>> cache = CaseCache("cache/phantom_standard")                      # doctest: +SKIP
    >>> views = cache.get(list_cases("data/phantom_standard")[0])          # doctest: +SKIP
    >>> img, lab = views["axial"]          # (Z, X, Y) uint8 memmaps      # doctest: +SKIP
    """

    def __init__(self, cache_dir, window=HU_WINDOW, store: bool = True):
        self.root = Path(cache_dir)
        self.window = (float(window[0]), float(window[1]))
        if not self.window[0] < self.window[1]:
            raise DataError(f"CaseCache: window must be (lo, hi) with lo < hi, got {window}.")
        if not isinstance(store, bool):
            raise DataError(f"CaseCache: store must be True or False, got {store!r}; False "
                            "reads every view from the source scan (no files written).")
        self.store = store
        self._last = None            # store=False: (key, meta, uint8 volume, labels)

    # -- keys ---------------------------------------------------------------------------------
    @staticmethod
    def _ref(ref) -> CaseRef:
        if isinstance(ref, CaseRef):
            return ref
        if isinstance(ref, (tuple, list)) and len(ref) == 2:
            img, lab = ref
        else:
            img, lab = ref, None
        img = Path(img)
        name = img.name
        for suf in (".nii.gz", ".nii"):
            if name.endswith(suf):
                name = name[: -len(suf)]
        return CaseRef(name, str(img), str(lab) if lab is not None else None, "")

    def path(self, ref) -> Path:
        """The case's cache folder."""
        r = self._ref(ref)
        h = hashlib.sha1(str(Path(r.image).resolve()).encode()).hexdigest()[:8]
        return self.root / f"{r.id}-{h}"

    def _wanted_meta(self, r: CaseRef) -> dict:
        return {"version": _VERSION, "window": list(self.window),
                "image": _stamp(r.image), "label": _stamp(r.label)}

    def _valid(self, folder: Path, want: dict):
        mp = folder / "meta.json"
        if not mp.is_file():
            return None
        try:
            meta = json.loads(mp.read_text())
        except ValueError:
            return None
        if any(meta.get(k) != v for k, v in want.items()):
            return None
        files = [folder / f"image_{v}.npy" for v in VIEWS]
        if want["label"] is not None:
            files += [folder / f"label_{v}.npy" for v in VIEWS]
        return meta if all(f.is_file() for f in files) else None

    def _meta(self, want: dict, case) -> dict:
        return dict(want, id=case.id, shape=list(case.image.shape),
                    spacing=list(case.spacing), affine=np.asarray(case.affine).tolist(),
                    label_names={str(k): v for k, v in case.label_names.items()},
                    source=case.source)

    def _read(self, r: CaseRef):
        """store=False: (meta, windowed uint8 volume, labels or None) of a case, read from
        its source unless it is the case read last (and unchanged since)."""
        want = self._wanted_meta(r)
        key = json.dumps([str(self.path(r)), want], sort_keys=True)
        if self._last is None or self._last[0] != key:
            self._last = None                   # free the previous volume before reading
            case = load_case(r.image, r.label, case_id=r.id)
            img = window_uint8(case.image, *self.window)
            self._last = (key, self._meta(want, case), img, case.labels)
        return self._last[1:]

    # -- public -------------------------------------------------------------------------------
    def build(self, ref) -> dict:
        """(Re)build a case's entry from its source; returns its meta."""
        r = self._ref(ref)
        folder = self.path(r)
        folder.mkdir(parents=True, exist_ok=True)
        want = self._wanted_meta(r)
        case = load_case(r.image, r.label, case_id=r.id)
        img = window_uint8(case.image, *self.window)
        (folder / "meta.json").unlink(missing_ok=True)         # invalid until rewritten
        for v in VIEWS:
            a = VIEW_AXIS[v]
            atomic_save_npy(np.moveaxis(img, a, 0), folder / f"image_{v}.npy")
            if case.labels is not None:
                atomic_save_npy(np.moveaxis(case.labels, a, 0), folder / f"label_{v}.npy")
        meta = self._meta(want, case)
        atomic_write_json(folder / "meta.json", meta)
        return meta

    def info(self, ref) -> dict:
        """The case's meta (building the entry first when missing or stale; with
        store=False read from the source, nothing written)."""
        r = self._ref(ref)
        if not self.store:
            return self._read(r)[0]
        meta = self._valid(self.path(r), self._wanted_meta(r))
        return meta if meta is not None else self.build(r)

    def get(self, ref) -> dict:
        """{view: (image uint8 memmap, label uint8 memmap or None)}, building when needed.

        Args:
            ref: a `CaseRef` (from `list_cases`), an image path, or (image, label) paths.
        Shapes:
            view ``v`` arrays have `VIEW_AXIS[v]` moved first: coronal (X, Y, Z),
            sagittal (Y, X, Z), axial (Z, X, Y). With store=False they are `np.moveaxis`
            views of one in-memory volume (not contiguous, read-only), not memmaps.
        """
        r = self._ref(ref)
        if not self.store:
            _, img, labels = self._read(r)
            out = {}
            for v in VIEWS:
                a = VIEW_AXIS[v]
                views = [np.moveaxis(x, a, 0) if x is not None else None for x in (img, labels)]
                for x in views:
                    if x is not None:
                        x.flags.writeable = False
                out[v] = (views[0], views[1] if r.label is not None else None)
            return out
        self.info(r)
        folder = self.path(r)
        out = {}
        for v in VIEWS:
            img = np.load(folder / f"image_{v}.npy", mmap_mode="r")
            lp = folder / f"label_{v}.npy"
            lab = np.load(lp, mmap_mode="r") if r.label is not None and lp.is_file() else None
            out[v] = (img, lab)
        return out

    def clear(self, ref=None):
        """Delete one case's entry (or the whole cache with no argument)."""
        target = self.path(ref) if ref is not None else self.root
        if target.exists():
            shutil.rmtree(target)

    def __repr__(self):
        return f"CaseCache({str(self.root)!r}, window={self.window}, store={self.store})"


