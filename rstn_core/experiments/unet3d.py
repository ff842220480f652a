"""The 3D peer: a MONAI 3D U-Net trained and tested on the same folds, cases and HU window as
the two 2D methods, so that `rstn report` and `rstn compare` set it beside them.

What a reader would pick instead of the papers' 2D nets today is a 3D network trained on
patches (MONAI's 3D U-Net tutorials, nnU-Net). This module is that baseline, kept small:

- data: the fold's training cases (`pipeline.fold_cases`), windowed to [-100, 240] HU
  (`rstn_core.views.window`), whole volumes in (x, y, z) order, no resampling;
- training: random patches, a fraction `pos_fraction` of them centred on a target voxel (as
  MONAI's ``RandCropByPosNegLabeld``, but drawn from the generator of iteration i so that
  `rstn_core.engine.train.run_training` resumes exactly), Dice + cross-entropy
  (``monai.losses.DiceCELoss``), Adam, checkpoints in ``<run_root>/<scale>/unet3d/fold<K>/``;
- testing: ``monai.inferers.sliding_window_inference`` (Gaussian-weighted overlapping
  patches), mask = P(target) >= 0.5, one pass: results.json rows with ``after = [DSC]``,
  ``d = [1.0]`` and every stop rule equal to that DSC, HD95 and NSD beside it.

The budget is a number of iterations per scale (`SETTINGS`, deterministic and resumable);
`fair_iterations` turns a 2D method's measured training seconds per fold into the iterations
that give the 3D net the same CPU time.

MONAI is an optional dependency (``pip install -e ".[peer]"``). This module is the only one
of the library that imports it, and it does so lazily, inside `_monai` — the one allowed
exception to "imports at module top" (tests/test_layering.py checks both), so that the rest
of the library, and this module's import, work without MONAI; without it, training or
testing ends with one line saying what to install.
"""
from __future__ import annotations

import copy
import json
import math
import time
from dataclasses import asdict, dataclass
from types import SimpleNamespace

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode
from tqdm.auto import tqdm

from rstn_core.config import Config
from rstn_core.data import load_case, target_mask
from rstn_core.engine.train import FINAL, TrainSpec, load_final, make_optimizer, run_training
from rstn_core.errors import ConfigError, RunFolderError
from rstn_core.experiments.evaluate import add_surface, read_off
from rstn_core.experiments.pipeline import _check_config, check_run, fold_cases, fold_dir
from rstn_core.fusion import keep_large_components
from rstn_core.io import atomic_savez, atomic_write_json, read_json
from rstn_core.metrics import dsc
from rstn_core.views import window, window_uint8

__all__ = ["METHOD", "UNet3DSettings", "SETTINGS", "settings_for", "build_unet3d",
           "sample_patches", "predict_volume", "load_unet3d", "case_row", "count_cost",
           "fair_iterations", "train_unet3d", "test_unet3d", "MISSING_MONAI"]

METHOD = "unet3d"
MISSING_MONAI = ("method unet3d needs MONAI, an optional dependency: install it with "
                 "`pip install -e \".[peer]\"` (or `pip install monai`).")


@dataclass(frozen=True)
class UNet3DSettings:
    """The 3D U-Net's knobs (MONAI ``UNet``; one level per entry of `channels`).

    channels: feature maps per level; strides: down-sampling between levels (len - 1);
    num_res_units: residual units per block; patch: training and inference patch (x, y, z)
    in voxels, divisible by the product of the strides; batch_size: patches per iteration;
    pos_fraction: share of patches centred on a target voxel; iterations, lr (Adam),
    checkpoint_every: the training budget; overlap, sw_batch_size: sliding-window inference.
    """
    channels: tuple = (16, 32, 64, 128)
    strides: tuple = (2, 2, 2)
    num_res_units: int = 1
    patch: tuple = (64, 64, 32)
    batch_size: int = 2
    pos_fraction: float = 0.5
    iterations: int = 1000
    lr: float = 1e-3
    checkpoint_every: int = 100
    overlap: float = 0.25
    sw_batch_size: int = 4

    def __post_init__(self):
        if len(self.strides) != len(self.channels) - 1:
            raise ConfigError(f"unet3d: {len(self.channels)} channel levels need "
                              f"{len(self.channels) - 1} strides, got {self.strides}.")
        step = int(np.prod(self.strides))
        if len(self.patch) != 3 or any(p < step or p % step for p in self.patch):
            raise ConfigError(f"unet3d: patch {self.patch} must be 3 sizes, each a multiple of "
                              f"{step} (the product of the strides {self.strides}).")
        if self.iterations < 1 or self.batch_size < 1 or self.checkpoint_every < 1:
            raise ConfigError("unet3d: iterations, batch_size and checkpoint_every must be >= 1.")
        if not 0.0 <= self.pos_fraction <= 1.0 or not 0.0 <= self.overlap < 1.0:
            raise ConfigError(f"unet3d: pos_fraction {self.pos_fraction} must be in [0, 1] and "
                              f"overlap {self.overlap} in [0, 1).")


#: Per-scale defaults. standard: about the CPU time of one 2D method's three views per fold
#: (`fair_iterations`: the reference stepwise fold trained 6 nets in 1307 s; this net took
#: 0.35 s per iteration on the same 2-core CPU, so 3600 iterations); paper: nnU-Net-like
#: patches for a GPU.
SETTINGS = {
    "smoke": UNet3DSettings(channels=(4, 8, 16), strides=(2, 2), num_res_units=0,
                            patch=(32, 32, 16), batch_size=2, iterations=6,
                            checkpoint_every=3, sw_batch_size=2),
    "standard": UNet3DSettings(iterations=3600, checkpoint_every=300),
    "colab": UNet3DSettings(channels=(16, 32, 64, 128, 256), strides=(2, 2, 2, 2),
                            patch=(128, 128, 64), iterations=4000, checkpoint_every=250),
    "paper": UNet3DSettings(channels=(32, 64, 128, 256, 320), strides=(2, 2, 2, 2),
                            num_res_units=2, patch=(160, 160, 80), iterations=40000,
                            checkpoint_every=1000),
}


def settings_for(scale: str) -> UNet3DSettings:
    """The `SETTINGS` of a scale (the paper scale's for an unknown one, e.g. a config file)."""
    return SETTINGS.get(scale, SETTINGS["paper"])


def _monai() -> SimpleNamespace:
    """MONAI's parts used here, imported lazily (the optional dependency; module docstring)."""
    try:
        from monai.inferers import sliding_window_inference
        from monai.losses import DiceCELoss
        from monai.networks.nets import UNet
    except ImportError:
        raise ConfigError(MISSING_MONAI) from None
    return SimpleNamespace(UNet=UNet, DiceCELoss=DiceCELoss,
                           sliding_window_inference=sliding_window_inference)


def build_unet3d(s: UNet3DSettings, device: str = "cpu") -> torch.nn.Module:
    """MONAI's 3D ``UNet``: 1 input channel (windowed CT), 2 outputs (background, target),
    batch norm. Shapes: (B, 1, X, Y, Z) -> (B, 2, X, Y, Z) logits."""
    return _monai().UNet(spatial_dims=3, in_channels=1, out_channels=2,
                         channels=tuple(s.channels), strides=tuple(s.strides),
                         num_res_units=s.num_res_units, norm="batch").to(device)


def _crop(volume: np.ndarray, start, patch) -> np.ndarray:
    """volume[start : start + patch], zero-padded at the far end where the volume is smaller."""
    out = volume[tuple(slice(a, a + p) for a, p in zip(start, patch))]
    pad = [(0, p - n) for p, n in zip(patch, out.shape)]
    return np.pad(out, pad) if any(b for _, b in pad) else out


def sample_patches(images, labels, foreground, s: UNet3DSettings, rng: np.random.Generator):
    """One training batch of random patches: a case drawn uniformly, then a centre on a target
    voxel with probability `s.pos_fraction` (else anywhere), the patch shifted inside the volume.

    Args:
        images: uint8 windowed volumes (x, y, z); labels: their binary targets;
        foreground: per case, the (n, 3) coordinates of its target voxels; rng: the
        iteration's generator (exact resume).
    Returns:
        (x, y): float32 arrays (B, 1, *patch), x in [0, 1], y in {0, 1}.
    """
    xs, ys = [], []
    for _ in range(s.batch_size):
        k = int(rng.integers(len(images)))
        shape = np.array(images[k].shape)
        fg = foreground[k]
        if len(fg) and rng.random() < s.pos_fraction:
            centre = fg[int(rng.integers(len(fg)))]
        else:
            centre = np.array([rng.integers(n) for n in shape])
        start = np.clip(centre - np.array(s.patch) // 2, 0, np.maximum(shape - s.patch, 0))
        xs.append(_crop(images[k], start, s.patch).astype(np.float32) / 255.0)
        ys.append(_crop(labels[k], start, s.patch).astype(np.float32))
    return np.stack(xs)[:, None], np.stack(ys)[:, None]


def predict_volume(model: torch.nn.Module, volume: np.ndarray, s: UNet3DSettings) -> np.ndarray:
    """P(target) of a whole windowed volume by Gaussian-weighted sliding-window inference.

    Shapes: volume (X, Y, Z) float in [0, 1] -> float32 (X, Y, Z) in [0, 1]."""
    device = next(model.parameters()).device
    model.eval()
    with torch.no_grad():
        x = torch.from_numpy(np.ascontiguousarray(volume, np.float32))[None, None].to(device)
        logits = _monai().sliding_window_inference(x, tuple(s.patch), s.sw_batch_size, model,
                                                   overlap=s.overlap, mode="gaussian")
        return torch.softmax(logits, 1)[0, 1].float().cpu().numpy()


def case_row(mask: np.ndarray, label: np.ndarray, spacing=None) -> dict:
    """A results.json row of a one-shot method: ``after = [DSC]``, ``d = [1.0]``, every stop
    rule (0.90, 0.95, 0.99, best) = that DSC at 1 iteration, with HD95/NSD given `spacing`;
    the single 3D prediction stands in the coarse columns ("3d" view), and the authors'
    large-components post-processing in ``coarse_components``/``fine_components``."""
    mask, label = np.asarray(mask, bool), np.asarray(label, bool)
    d = dsc(mask, label)
    stop = read_off([d], [1.0])
    if spacing is not None:
        add_surface(stop, [mask, mask], label, spacing)
    comp = dsc(keep_large_components(mask), label)
    return {"coarse_views": {"3d": d}, "coarse": d, "coarse_components": comp, "after": [d],
            "d": [1.0], "stop": stop, "fine_components": comp}


def _windows(shape, s: UNet3DSettings) -> int:
    """Patches that sliding-window inference runs over a volume of `shape` (MONAI's grid)."""
    n = 1
    for size, p in zip(shape, s.patch):
        step = max(int(p * (1 - s.overlap)), 1)
        n *= math.ceil((max(size, p) - p) / step) + 1
    return n


def count_cost(s: UNet3DSettings, shape) -> dict:
    """Parameters and FLOP of the 3D U-Net: one patch counted with `FlopCounterMode` (2 x the
    multiply-adds of convolutions, on the meta device), scaled to a volume of `shape`.

    Returns:
        {"params", "flops_per_patch", "windows" (sliding-window patches per volume),
        "flops_per_volume" (= flops_per_patch x windows, what inference runs),
        "flops_per_volume_voxels" (= flops_per_patch x volume voxels / patch voxels)}.
    """
    net = build_unet3d(s, "cpu")
    params = sum(p.numel() for p in net.parameters())
    meta = copy.deepcopy(net).to("meta").eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        meta(torch.empty(1, 1, *s.patch, device="meta"))
    per_patch = int(counter.get_total_flops())
    windows = _windows(shape, s)
    return {"params": int(params), "flops_per_patch": per_patch, "windows": windows,
            "flops_per_volume": per_patch * windows,
            "flops_per_volume_voxels": int(per_patch * np.prod(shape) / np.prod(s.patch))}


def fair_iterations(train_json, seconds_per_iteration: float) -> int:
    """Iterations that give the 3D net the CPU time a 2D method spent on one fold.

    .. math:: n = \\lceil \\sum_{\\text{nets}} \\text{seconds} / \\text{seconds per iteration} \\rceil

    Args:
        train_json: a 2D fold's train.json (path or dict: {net: {"seconds": ...}}), e.g. the
            stepwise fold's three views x (coarse, fine).
        seconds_per_iteration: the 3D net's measured rate (its train.json) on the same machine.
    """
    stats = (train_json if isinstance(train_json, dict)
             else read_json(train_json, "train.json"))
    if seconds_per_iteration <= 0:
        raise ValueError(f"fair_iterations: seconds_per_iteration={seconds_per_iteration}; "
                         "give the measured rate (> 0) from the 3D run's train.json.")
    total = sum(v["seconds"] for v in stats.values() if isinstance(v, dict) and "seconds" in v)
    return max(1, math.ceil(total / seconds_per_iteration))


def _check_settings(s: UNet3DSettings, folder) -> None:
    """unet3d.json beside config.json: a run folder made with other settings is refused."""
    path = folder / "unet3d.json"
    mine = json.loads(json.dumps(asdict(s)))
    if path.is_file():
        old = read_json(path, "unet3d settings", "delete the run folder")
        if old != mine:
            diff = sorted(k for k in set(old) | set(mine) if old.get(k) != mine.get(k))
            raise RunFolderError(f"{folder} was made with other unet3d settings "
                                 f"({', '.join(diff)}); use another --runs folder or delete it.")
    else:
        atomic_write_json(path, mine)


def train_unet3d(cfg: Config, fold: int, resume: bool = False, progress: bool = True,
                 settings: UNet3DSettings | None = None) -> dict:
    """Train the 3D U-Net of one fold on its training cases (exact resume with `resume`).

    Returns {"unet3d": run_training's stats}; writes config.json, unet3d.json, the
    checkpoints, loss.csv and train.json into `fold_dir(cfg, "unet3d", fold)`.
    """
    cfg = check_run(cfg, METHOD, fold)
    s = settings or settings_for(cfg.scale)
    _monai()                                    # the one-line error before anything is written
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    train_refs, _ = fold_cases(cfg, fold, progress)
    out = fold_dir(cfg, METHOD, fold)
    out.mkdir(parents=True, exist_ok=True)
    _check_config(cfg, out, "unet3d")
    _check_settings(s, out)
    images, labels, fg = [], [], []
    for ref in tqdm(train_refs, desc="unet3d: load cases", disable=not progress, leave=False):
        case = load_case(ref.image, ref.label)
        lab = target_mask(case, cfg.target).astype(np.uint8)
        images.append(window_uint8(case.image))
        labels.append(lab)
        fg.append(np.argwhere(lab).astype(np.int32))
    torch.manual_seed(cfg.seed)
    model = build_unet3d(s, cfg.device)
    loss_fn = _monai().DiceCELoss(to_onehot_y=True, softmax=True)
    optimizer = make_optimizer("adam", model.parameters(), s.lr, weight_decay=0.0)

    def step(i, rng):
        x, y = sample_patches(images, labels, fg, s, rng)
        x, y = torch.from_numpy(x).to(cfg.device), torch.from_numpy(y).to(cfg.device)
        return loss_fn(model(x), y)

    spec = TrainSpec(name=f"unet3d fold {fold}", model=model, optimizer=optimizer, step=step,
                     iterations=s.iterations, seed=cfg.seed, checkpoint_every=s.checkpoint_every)
    stats = run_training(spec, out, resume, progress)
    old = read_json(out / "train.json", "train.json") if (out / "train.json").is_file() else {}
    atomic_write_json(out / "train.json",
                      {**old, METHOD: {k: v for k, v in stats.items() if k != "losses"}})
    return {METHOD: stats}


def load_unet3d(cfg: Config, fold: int, settings: UNet3DSettings | None = None
                ) -> torch.nn.Module:
    """The trained 3D U-Net of a fold run (float32, on cfg.device), ready for
    `predict_volume`; the run's unet3d.json must match the settings."""
    s = settings or settings_for(cfg.scale)
    folder = fold_dir(cfg, METHOD, fold)
    if not (folder / FINAL).is_file():
        raise FileNotFoundError(f"no trained 3D U-Net in {folder}; run `rstn train --method "
                                f"unet3d --fold {fold} --scale {cfg.scale}` first.")
    _check_settings(s, folder)
    return load_final(folder, build_unet3d(s, cfg.device)).float()


def test_unet3d(cfg: Config, fold: int, progress: bool = True,
                settings: UNet3DSettings | None = None) -> dict:
    """Test one fold's 3D U-Net on its test cases; write test/results.json in the format of
    the 2D methods (`case_row`) plus the net's cost (`count_cost`) and test/probs/<case>.npz."""
    cfg = check_run(cfg, METHOD, fold)
    s = settings or settings_for(cfg.scale)
    _monai()
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    folder = fold_dir(cfg, METHOD, fold)
    model = load_unet3d(cfg, fold, s)
    _, test_refs = fold_cases(cfg, fold, progress)
    rows, times, shape = [], [], None
    for ref in tqdm(test_refs, desc=f"test {cfg.target} unet3d fold {fold}",
                    disable=not progress):
        case = load_case(ref.image, ref.label)
        label = target_mask(case, cfg.target)
        t0 = time.perf_counter()
        prob = predict_volume(model, window(case.image), s)
        times.append(time.perf_counter() - t0)
        shape = shape or case.image.shape
        atomic_savez(folder / "test" / "probs" / f"{ref.id}.npz",
                     prob=np.round(prob * 255).astype(np.uint8))
        rows.append({"id": ref.id, **case_row(prob >= 0.5, label, case.spacing)})
    res = {"method": METHOD, "fold": fold, "scale": cfg.scale, "target": cfg.target,
           "variant": "", "cases": rows,
           "seconds_per_case": float(np.mean(times)) if times else 0.0,
           "config": cfg.to_dict(), "unet3d": asdict(s), "equal_time": False,
           "cost": count_cost(s, shape) if shape else {}}
    res["path"] = str(atomic_write_json(folder / "test" / "results.json", res))
    return res
