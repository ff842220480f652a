"""RSTN training and testing (Yu et al., CVPR 2018): the papers' three-phase schedule, the
joint training of θC, θF and η per view, and Algorithm 2.

Algorithm 2 (testing), with P(t) the mean of the three views' maps:
    P(0) = (P_C + P_S + P_A) / 3,  Z(0) = I[P(0) > 0.5]
    for t = 1..T:  P(t) = mean_v f_v(Crop[X ⊙ g(P(t-1)); P(t-1)]),  Z(t) = I[P(t) > 0.5]
                   stop when DSC(Z(t-1), Z(t)) > thr
The network itself is in rstn_core.algorithms.rstn_model; the oracles in .oracles.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from rstn_core.algorithms.rounds import RSTNResult, TestSettings, first_stop, initial_mask
from rstn_core.algorithms.rstn_model import RSTN, build_rstn
from rstn_core.config import Config
from rstn_core.engine.device import autocast
from rstn_core.engine.inference import (ViewCache, coarse_probability, fine_probability,
                                        prepare_net)
from rstn_core.engine.slices import SliceSet
from rstn_core.engine.train import TrainSpec, load_final, make_optimizer, run_training
from rstn_core.fusion import keep_large_components, mean_probability
from rstn_core.io import atomic_write_text
from rstn_core.losses import rstn_loss
from rstn_core.metrics import dsc
from rstn_core.saliency import saliency_contrast
from rstn_core.views import to_view, window, window_indices

__all__ = ["rstn_schedule", "rstn_groups", "ContrastLog", "train_rstn", "volume_contrast", "RSTNModels", "load_rstn", "rstn_predict",
           "fine_round", "coarse_round", "saliency_channels"]


def rstn_groups(cfg: Config) -> tuple[float, float, float]:
    """The base learning rates of RSTN's three parameter groups: (θC, θF, η) =
    (lr, lr * fine_lr_mult, lr * saliency_lr_mult) (authors: fine and g at 10x the base)."""
    r = cfg.rstn
    return r.lr, r.lr * r.fine_lr_mult, r.lr * r.saliency_lr_mult


def rstn_schedule(cfg: Config):
    """The papers' schedule as functions of the iteration i: (ref_at, lr_at, total).

    Phase 1: crop from the ground truth (authors' stage I); phase 2: from the prediction,
    falling back to the ground truth when it is empty (stage J, lr halved every N); phase 3:
    "fine-tuning with noisy data": crop from the prediction only, every parameter at noisy_lr
    (CVPR: 1e-6). lr_at(i) gives the multipliers of the three groups' base lrs
    (:func:`rstn_groups`).
    """
    r = cfg.rstn
    a, b = r.gt_iterations, r.gt_iterations + r.pred_iterations
    total = b + r.noisy_iterations
    bases = rstn_groups(cfg)

    def ref_at(i):
        return "gt" if i < a else ("pred_or_gt" if i < b else "pred")

    def lr_at(i):
        if i >= b:
            return tuple(r.noisy_lr / base for base in bases)        # every parameter: noisy_lr
        if i >= a and r.lr_decay_every:
            return (0.5 ** ((i - a) // r.lr_decay_every),) * 3       # stage J: halved every N
        return (1.0,) * 3

    return ref_at, lr_at, total


def train_rstn(cfg: Config, slices: SliceSet, run_dir, init_from=None, resume=False,
               progress=True) -> tuple[RSTN, dict]:
    """Joint training of θC, θF, η for one view (CVPR), optionally from stepwise nets.

    Args:
        cfg: the run's config (rstn.*: schedule, lrs, g; train.*: batch, optimizer, amp);
        slices: the view's training windows; run_dir: the view's folder, named for the view;
        init_from: a stepwise fold folder holding `<view>_coarse` and `<view>_fine` (the papers
            start RSTN from trained stage-S nets); resume: continue an interrupted run.
    Every `checkpoint_every` iterations the saliency contrast of g on the batch (organ vs the
    rest of the box and of the slice, per channel; rstn_core.saliency.saliency_contrast) is
    appended to `run_dir/saliency.csv`.
    Returns:
        (the trained RSTN, run_training's statistics).
    """
    run_dir = Path(run_dir)
    view = run_dir.name
    model = build_rstn(cfg)
    if init_from is not None:
        load_final(Path(init_from) / f"{view}_coarse", model.coarse)
        load_final(Path(init_from) / f"{view}_fine", model.fine)
    t, r, dev = cfg.train, cfg.rstn, cfg.device
    lr_c, lr_f, lr_g = rstn_groups(cfg)
    groups = [{"params": model.coarse.parameters(), "lr": lr_c},          # θC
              {"params": model.fine.parameters(), "lr": lr_f},            # θF
              {"params": model.saliency.parameters(), "lr": lr_g}]        # η
    opt = make_optimizer(t.optimizer, groups, r.lr, t.momentum, t.weight_decay)
    ref_at, lr_at, total = rstn_schedule(cfg)
    log = ContrastLog(run_dir / "saliency.csv", every=t.checkpoint_every)

    def step(i, rng):
        x, y, valid = (a.to(dev) for a in slices.coarse_batch(rng, t.batch_size, t.coarse_loss,
                                                              t.positive_fraction))
        with autocast(dev, t.amp):
            logits, probs = model(x, T=r.T, ref=ref_at(i), y=y)
        log.record(i, model, probs[0], y, ref_at(i))
        coarse_logits = logits if t.coarse_loss == "dice_bce" else None
        return rstn_loss(probs, y, valid=valid, coarse_logits=coarse_logits)  # Σ λ_t L(Y, P(t))

    spec = TrainSpec("rstn", model, opt, step, total, cfg.seed + 2, t.checkpoint_every, lr_at,
                     t.keep_snapshots, t.amp, t.half_final)
    return model, run_training(spec, run_dir, resume, progress)


def _box_region(boxes, like: torch.Tensor) -> torch.Tensor:
    """(N, 1, H, W) mask, 1 inside each sample's box (none: all 0), for the contrast."""
    region = torch.zeros_like(like[:, :1])
    for b, box in enumerate(boxes):
        if box is not None:
            region[b, :, box.r0:box.r1, box.c0:box.c1] = 1
    return region


class ContrastLog:
    """Rows (iteration, channel, contrast in the box, contrast on the slice) of g during
    training, rewritten atomically as `saliency.csv`; on resume the rows of the iterations
    already done are kept."""

    def __init__(self, path: Path, every: int):
        self.path, self.every = Path(path), max(1, int(every))
        self.rows = []
        if self.path.is_file():
            self.rows = [line for line in self.path.read_text().splitlines()[1:] if line]

    def record(self, i: int, model: RSTN, p0: torch.Tensor, y: torch.Tensor, ref: str):
        if i % self.every:
            return
        self.rows = [r for r in self.rows if int(r.split(",")[0]) < i]
        with torch.no_grad():
            g = model.saliency.weights(p0.detach().float())
            region = _box_region(model.boxes(p0.detach(), y, ref), y)
            in_box = saliency_contrast(g, y, region)
            in_slice = saliency_contrast(g, y)
        for k in range(g.shape[1]):
            self.rows.append(f"{i},{k},{float(in_box[k]):.5f},{float(in_slice[k]):.5f}")
        atomic_write_text(self.path, "iteration,channel,contrast_box,contrast_slice\n"
                          + "".join(r + "\n" for r in self.rows))


@dataclass
class RSTNModels(TestSettings):
    """One RSTN per view, with the test settings
    (:class:`~rstn_core.algorithms.rounds.TestSettings`)."""
    models: dict

    @property
    def views(self):
        return list(self.models)


def load_rstn(cfg: Config, run_dir) -> RSTNModels:
    """Load the finished RSTN of each view from a fold run (weights_only); each net prepared
    for inference once (rstn_core.engine.inference.prepare_net)."""
    t = cfg.test
    models = {}
    for v in cfg.views:
        m = load_final(Path(run_dir) / v, build_rstn(cfg)).eval()
        m.coarse = prepare_net(m.coarse, cfg.device, t.channels_last, t.compile)
        m.fine = prepare_net(m.fine, cfg.device, t.channels_last, t.compile)
        models[v] = m
    return RSTNModels(models, batch_size=t.batch_size, device=cfg.device,
                      coarse_components=t.coarse_components, amp=t.amp,
                      channels_last=t.channels_last)


def fine_round(x: np.ndarray, models: RSTNModels, prev: np.ndarray, weights_from=None,
               boxes_from=None, cache: ViewCache | None = None) -> tuple[np.ndarray, int]:
    """One round of Algorithm 2: P(t) = mean over views of f_v(Crop[X ⊙ g(P(t-1)); P(t-1)]).

    Args:
        x: the windowed volume; prev: P(t-1) (float32: the map that made Z(t-1)); weights_from:
        the map g reads instead (strong oracle: Y); boxes_from: the map the boxes come from
        instead (the oracles: Y); cache: x's ViewCache (its slices gathered once per view).
    Shapes:
        x, prev (X, Y, Z); returns ((X, Y, Z) float32 P(t), windows run).
    """
    outs, n_run = [], 0
    for v, m in models.models.items():
        p, n = fine_probability(m.fine, x, prev, v, m.margin, m.zoom, models.batch_size,
                                models.device, saliency=m.saliency, weights_from=weights_from,
                                boxes_from=boxes_from, amp=models.amp,
                                channels_last=models.channels_last, cache=cache)
        outs.append(p)
        n_run += n
    return mean_probability(outs).astype(np.float32), n_run        # P(t) = mean of the views


def coarse_round(x: np.ndarray, models: RSTNModels, cache: ViewCache | None = None):
    """P(0) = (P_C + P_S + P_A) / 3 and Z(0) = I[P(0) > 0.5] (optionally its large components,
    dropped components pushed below 0.5 in P(0)); returns (P(0), Z(0), per-view maps).
    cache: x's ViewCache, reused by the fine rounds."""
    view_probs = {v: coarse_probability(m.coarse, x, v, models.batch_size, models.device,
                                        amp=models.amp, channels_last=models.channels_last,
                                        cache=cache)
                  for v, m in models.models.items()}
    p0 = mean_probability(list(view_probs.values()))                # P(0) = (P_C+P_S+P_A)/3
    z0 = p0 > 0.5                                                    # Z(0) = I[P(0) > 0.5]
    if models.coarse_components:
        z0 = keep_large_components(z0)
        p0 = p0 * z0 + np.minimum(p0, 0.5) * ~z0    # dropped components: not above 0.5
    return p0.astype(np.float32), z0, view_probs


def rstn_predict(image: np.ndarray, models: RSTNModels, thr: float | None = 0.99, T: int = 10,
                 hu: bool = True) -> RSTNResult:
    """Algorithm 2 (CVPR 2018): RSTN testing. Needs no label.

    Each round feeds the fused previous map P(t-1) to every view (saliency and crop), averages
    the views into P(t), thresholds Z(t) = I[P(t) > 0.5], and stops at t = T or when
    DSC(Z(t-1), Z(t)) > thr (thr = None: run all T rounds). The next round reads the same
    float32 P(t) that made Z(t); the result keeps float16 copies.

    Args:
        image: the volume in HU (or windowed to [0, 1] with hu=False); models: one RSTN per
        view; thr: the stop threshold; T: at most T rounds.
    Shapes:
        image (X, Y, Z); masks and probs of the result (X, Y, Z).
    """
    x = window(image) if hu else np.asarray(image, np.float32)
    cache = ViewCache(x)                                              # X gathered once per view
    p, z, view_probs = coarse_round(x, models, cache)
    z2, fallback = initial_mask(z, p)
    if fallback == "half-peak":
        p = np.where(z2, np.maximum(p, np.nextafter(np.float32(0.5), np.float32(1))),
                     p).astype(np.float32)
    probs, masks, d, runs = [p.astype(np.float16)], [z2], [], []
    for t in range(1, T + 1):
        p, n = fine_round(x, models, p, cache=cache)                  # P(t)
        z = p > 0.5                                                   # Z(t) = I[P(t) > 0.5]
        d.append(dsc(masks[-1], z))                                   # DSC(Z(t-1), Z(t))
        probs.append(p.astype(np.float16))
        masks.append(z)
        runs.append(n)
        if first_stop(d, thr, T) == t:                                # > thr: stop
            break
    return RSTNResult(masks=masks, d=d, view_probs=view_probs, stopped_at=first_stop(d, thr, T),
                      fallback=fallback, windows_run=runs, probs=probs)


@torch.inference_mode()
def saliency_channels(model: RSTN, prob_stack: np.ndarray) -> np.ndarray:
    """The three weight maps g(P; η) of one window (CVPR Fig. 5). prob_stack: (3, H, W)."""
    model.saliency.eval()
    p = torch.as_tensor(np.asarray(prob_stack, np.float32))[None]
    dev = next(model.saliency.parameters()).device
    return model.saliency.weights(p.to(dev))[0].cpu().numpy()


@torch.inference_mode()
def volume_contrast(models: RSTNModels, image: np.ndarray, label: np.ndarray,
                    hu: bool = True) -> dict:
    """The saliency contrast of each view's trained g on one labelled volume, as Algorithm 2
    uses it in round 1: g(P(0)) on every window whose box (Z(0) + K) is not empty, organ
    pixels Y against the rest of the box (rstn_core.saliency.saliency_contrast).

    Shapes:
        image, label (X, Y, Z). Returns {view: (3,) numpy array of c_k}.
    """
    x = window(image) if hu else np.asarray(image, np.float32)
    p0 = coarse_round(x, models)[0]
    out = {}
    for v, m in models.models.items():
        p_v, y_v = to_view(p0, v), to_view(np.asarray(label, np.float32), v)
        n = len(p_v)
        idx = window_indices(np.arange(n), n)
        keep = [j for j in range(n) if y_v[idx[j]].any() and (p_v[idx[j]] > 0.5).any()]
        if not keep:
            out[v] = np.full(3, np.nan)
            continue
        p = torch.from_numpy(np.ascontiguousarray(p_v[idx[keep]], dtype=np.float32))
        y = torch.from_numpy(np.ascontiguousarray(y_v[idx[keep]], dtype=np.float32))
        region = _box_region(m.boxes(p, None, "pred"), y)        # Crop[.; P(0)], K = m.margin
        g = m.saliency.eval().weights(p.to(next(m.saliency.parameters()).device)).cpu()
        out[v] = saliency_contrast(g, y, region).numpy()
    return out
