"""What every notebook of the book needs before its lesson: one call, `setup`, and `md_table`.

    from rstn_core import book
    lesson = book.setup(scale, device, fold, seed, data_root, run_root, notebook="04_fixed_point")
    cfg, scale, device, run_root = lesson.cfg, lesson.scale, lesson.device, lesson.run_root

`setup` resolves the parameters a notebook takes (papermill and `rstn folds` set them) into a
`Lesson`: the run's `Config`, rooted at the book's own folder, so notebooks never change
directory and all of them share `data/phantom_<scale>` and `data/cache`. Outside a clone of
the repository (Colab) the root is Google Drive's `MyDrive/rstn_book` when Drive is mounted
(runs survive the session), else `/content`.
"""
from __future__ import annotations

import os
import random
import sys
from dataclasses import dataclass, fields, replace
from pathlib import Path

import numpy as np
import torch
from IPython.display import Markdown, display

from rstn_core.config import SCALES, Config, get_config
from rstn_core.data import fold_split, make_folds, target_mask
from rstn_core.data.phantom import make_case, phantom_preset
from rstn_core.experiments import unet3d
from rstn_core.experiments.organs import organ_config
from rstn_core.experiments.pipeline import load_method

__all__ = ["Lesson", "setup", "book_root", "md_table", "md_table_text", "SMOKE_ENV",
           "REFERENCE_SCALE"]

#: The reference nets shipped in `reference/<scale>/<method>/fold0/` (tools/make_reference.py).
REFERENCE_SCALE = "standard"

SMOKE_ENV = "RSTN_SMOKE"          # CI sets RSTN_SMOKE=1: every notebook runs at the smoke scale
COLAB_DRIVE = Path("/content/drive/MyDrive")
COLAB_HOME = Path("/content")


@dataclass(frozen=True)
class Lesson:
    """The resolved set-up of one notebook run.

    Attributes:
        cfg: every knob of the runs (`cfg.root` = `root`).
        scale: "smoke", "standard" or "paper" (after the RSTN_SMOKE switch).
        device: "cpu" or a CUDA device (after the availability check).
        fold: cross-validation fold of the runs.
        seed: the seed numpy, torch and random were seeded with.
        root: the book's folder; data/ and runs/ are under it.
        run_root: this notebook's run folders, absolute (`cfg.path("run_root")`).
        notebook: the notebook's name, e.g. "04_fixed_point" (None outside a notebook).
    """
    cfg: Config
    scale: str
    device: str
    fold: int
    seed: int
    root: Path
    run_root: Path
    notebook: str | None = None

    @property
    def smoke(self) -> bool:
        """True at the smoke scale: the numbers prove that the code runs, nothing else."""
        return self.scale == "smoke"

    @property
    def progress(self) -> bool:
        """Whether to show progress bars (not at the smoke scale, i.e. not in CI)."""
        return not self.smoke

    def shown(self, path) -> str:
        """`path` as a page shows it: relative to the book's folder when it lies inside it, so
        the rendered book never prints the build machine's absolute paths.

        Args:
            path: a file or folder (str or Path), absolute or relative to `root`.
        Returns:
            e.g. "runs/nb/04_fixed_point/smoke/stepwise/fold0"; a path outside the book's
            folder comes back unchanged.
        """
        p = Path(path)
        if not p.is_absolute():
            return p.as_posix()
        try:
            return p.resolve().relative_to(self.root.resolve()).as_posix()
        except ValueError:
            return str(path)


    # -- the reference nets: what the methods do, shown with nets that learned something ---
    def reference_config(self) -> Config:
        """The config of the shipped reference nets: the standard scale, run root
        `reference/` under the book's folder, on this lesson's device."""
        return get_config(REFERENCE_SCALE, device=self.device, root=str(self.root),
                          run_root="reference")

    def reference_nets(self, method: str, target: str | None = None):
        """The reference nets of fold 0 (`reference/standard/<method>/fold0`), loaded for
        testing: StepwiseNets (method "stepwise"), RSTNModels ("rstn") or the 3D U-Net
        ("unet3d", a torch module for `experiments.unet3d.predict_volume`).

        target: another organ's nets (`reference/organs/<target>/standard/<method>/fold0`,
        the layout of `experiments.organs.organ_config`); default the pancreas."""
        cfg = self.reference_config()
        if target is not None and target != cfg.target:
            cfg = organ_config(cfg, target, root=str(Path(cfg.run_root) / "organs"))
        folder = cfg.path("run_root") / cfg.scale / method / "fold0"
        if not (folder / "config.json").is_file():
            raise FileNotFoundError(f"no reference nets in {self.shown(folder)}; they ship with "
                                    "the repository (make them with tools/make_reference.py).")
        if method == unet3d.METHOD:                  # the 3D peer (MONAI, imported lazily)
            return unet3d.load_unet3d(cfg, 0)
        return load_method(cfg, method, 0)

    def reference_case(self, k: int = 0, **knobs):
        """Test case k of fold 0 of the standard phantom, generated in memory (a few seconds;
        no data set is written). Returns (case, label) with label the binary target.

        knobs: `PhantomConfig` fields to change (e.g. `target_scale=0.6`): the same patient
        (same seed and case id) with that knob turned, as the difficulty dial needs."""
        cfg = self.reference_config()
        ids = list(range(cfg.n_cases))
        _, test_ids = fold_split(ids, 0, folds=make_folds(ids, cfg.folds))
        if not 0 <= k < len(test_ids):
            raise ValueError(f"reference_case: k must be in 0..{len(test_ids) - 1}, got {k}.")
        preset = phantom_preset(REFERENCE_SCALE)
        unknown = sorted(set(knobs) - {f.name for f in fields(preset)})
        if unknown:
            raise ValueError(f"reference_case: unknown phantom knob(s) {unknown}; the knobs are "
                             f"the fields of PhantomConfig, e.g. target_scale, contrast.")
        case = make_case(replace(preset, **knobs), cfg.seed, test_ids[k])
        return case, target_mask(case, cfg.target)


def book_root(start: str | Path | None = None) -> Path:
    """The book's folder: the first of `start` (default: the working directory) and its
    parents that holds `_config.yml`; on Colab, Drive's `MyDrive/rstn_book` when Drive is
    mounted, else `/content`; elsewhere `start` itself.

    Returns:
        an absolute Path (created on Colab's Drive if missing).
    """
    here = Path(start if start is not None else Path.cwd()).expanduser().resolve()
    for folder in (here, *here.parents):
        if (folder / "_config.yml").is_file():
            return folder
    if "google.colab" in sys.modules:
        if COLAB_DRIVE.is_dir():
            root = COLAB_DRIVE / "rstn_book"
            root.mkdir(exist_ok=True)
            return root
        return COLAB_HOME
    return here


def _device(device: str) -> str:
    if not isinstance(device, str) or not (device == "cpu" or device.startswith("cuda")):
        raise ValueError(f"book.setup: device {device!r} is not allowed; expected 'cpu' or "
                         "'cuda' (or 'cuda:N'). Fix the `device` parameter.")
    if device.startswith("cuda") and not torch.cuda.is_available():
        print(f"device {device!r}: CUDA is not available here; using the CPU.")
        return "cpu"
    return device


def setup(scale: str = "smoke", device: str = "cpu", fold: int = 0, seed: int = 0,
          data_root: str | None = None, run_root: str | None = None,
          notebook: str | None = None, **overrides) -> Lesson:
    """Resolve a notebook's parameters into a `Lesson`; seeds numpy, torch and random once.

    Side effects, the only ones: `random.seed`, `np.random.seed` and `torch.manual_seed`
    with `seed` (so a notebook's own random draws repeat), and at the smoke scale on the CPU
    one torch thread (tiny nets gain nothing from a second thread on a small, busy machine).
    The environment variable RSTN_SMOKE=1 (CI) forces the smoke scale; no other is read.

    Args:
        scale: "smoke", "standard" or "paper" (`rstn_core.config.SCALES`).
        device: "cpu" or "cuda"; "cuda" without CUDA falls back to the CPU with one line.
        fold: cross-validation fold, 0 .. cfg.folds - 1.
        seed: the run's seed (config and the global generators).
        data_root: a real data set's folder; None = the phantom of the scale.
        run_root: run folders' root; None = `runs/nb/<notebook>`. Relative paths (this one,
            data_root) are taken relative to the book's folder (`book_root`).
        notebook: the notebook's name, used for its default run root.
        **overrides: dotted config overrides, e.g. ``**{"train.zoom": 1}``.

    Returns:
        a `Lesson` with `cfg`, `scale`, `device`, `fold`, `seed`, `root`, `run_root`.
    """
    if os.environ.get(SMOKE_ENV) == "1":
        scale = "smoke"
    if scale not in SCALES:
        raise ValueError(f"book.setup: scale {scale!r} is not allowed; expected one of "
                         f"{list(SCALES)}. Fix the `scale` parameter.")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"book.setup: seed {seed!r} is not an integer; pass e.g. seed=0.")
    device = _device(device)
    root = book_root()
    run_root = str(run_root) if run_root else f"runs/nb/{notebook or 'scratch'}"
    cfg = get_config(scale, device=device, seed=seed, root=str(root), run_root=run_root,
                     data_root=None if data_root is None else str(data_root), **overrides)
    if isinstance(fold, bool) or not isinstance(fold, int) or not 0 <= fold < cfg.folds:
        raise ValueError(f"book.setup: fold {fold!r} is not allowed; expected an integer in "
                         f"0..{cfg.folds - 1}. Fix the `fold` parameter.")
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if scale == "smoke" and device == "cpu":
        torch.set_num_threads(1)
    lesson = Lesson(cfg=cfg, scale=scale, device=device, fold=fold, seed=seed, root=root,
                    run_root=cfg.path("run_root"), notebook=notebook)
    print(f"scale={scale}  device={device}  fold={fold}  seed={seed}  "
          f"runs: {lesson.shown(lesson.run_root)}")
    return lesson


def _cell(value, floatfmt: str) -> str:
    if isinstance(value, (float, np.floating)):
        return format(float(value), floatfmt)
    return str(value).replace("\n", " ")


def md_table_text(rows, headers, floatfmt: str = ".2f") -> str:
    """A Markdown table as text: one header row, then one line per row.

    Args:
        rows: an iterable of rows, each an iterable of cells (any type; floats are
            formatted with `floatfmt`, everything else with `str`).
        headers: the column titles; every row must have this many cells.
        floatfmt: format spec of float cells, e.g. ".2f" or ".1%".

    Returns:
        the table, lines joined by newlines.
    """
    headers = [str(h) for h in headers]
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for k, row in enumerate(rows):
        cells = [_cell(c, floatfmt) for c in row]
        if len(cells) != len(headers):
            raise ValueError(f"md_table: row {k} has {len(cells)} cells, the header "
                             f"{len(headers)}; give every row one cell per column.")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def md_table(rows, headers, floatfmt: str = ".2f") -> None:
    """Show rows as a Markdown table in the notebook (IPython `Markdown`); see
    `md_table_text` for the arguments. Returns None, so a last-line call shows it once."""
    display(Markdown(md_table_text(rows, headers, floatfmt)))
