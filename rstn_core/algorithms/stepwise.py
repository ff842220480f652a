"""The stepwise coarse-to-fine fixed-point model (Zhou et al., MICCAI 2017).

Model: Z = f(r(X, Z*); Θ) — r crops the input to the box of the current mask Z*, so the mask is
both input and output, a fixed point found by iteration (Algorithm 1). Two independent sets of
three view networks are trained: coarse on whole slices, fine on ground-truth boxes plus random
margins.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from rstn_core.engine.batching import crop_batch, fine_forward
from rstn_core.config import Config, scaled_px
from rstn_core.fusion import keep_large_components, majority_vote
from rstn_core.engine.inference import coarse_probability, fine_probability
from rstn_core.losses import dice_bce_loss, soft_dsc_loss
from rstn_core.metrics import dsc
from rstn_core.networks.fcn8s import FCN8s
from rstn_core.engine.slices import SliceSet
from rstn_core.engine.train import TrainSpec, autocast, load_final, make_optimizer, run_training
from rstn_core.views import window

__all__ = ["build_net", "train_coarse", "train_fine", "StepwiseNets", "load_stepwise",
           "fixed_point_predict", "FixedPointResult", "initial_mask"]


def build_net(cfg: Config) -> FCN8s:
    """An FCN-8s as the config says (seeded, so every run starts from the same weights)."""
    torch.manual_seed(cfg.seed)
    m = cfg.model
    net = FCN8s(3, 3, width=m.width, fc_kernel=m.fc_kernel, batch_norm=m.batch_norm,
                dropout=m.dropout)
    if m.pretrained:
        from rstn_core.networks.vgg import load_vgg16_weights
        load_vgg16_weights(net, m.pretrained)
    return net.to(cfg.device)


def _lr_rule(every: int):
    return (lambda i: 0.5 ** (i // every)) if every else (lambda i: 1.0)


def train_coarse(cfg: Config, slices: SliceSet, run_dir, resume=False, progress=True,
                 net=None) -> tuple[torch.nn.Module, dict]:
    """Coarse net of one view: whole-slice windows (MICCAI: slices with the target)."""
    t, dev = cfg.train, cfg.device
    net = net or build_net(cfg)
    opt = make_optimizer(t.optimizer, net.parameters(), t.coarse_lr, t.momentum, t.weight_decay)

    def step(i, rng):
        x, y, valid = (a.to(dev) for a in slices.coarse_batch(rng, t.batch_size, t.coarse_loss,
                                                              t.positive_fraction))
        with autocast(dev):
            logits = net(x).float()
        if t.coarse_loss == "dice_bce":
            return dice_bce_loss(logits, y, valid=valid)
        return soft_dsc_loss(torch.sigmoid(logits), y, valid=valid)   # L = 1 - DSC(P, Y)

    spec = TrainSpec("coarse", net, opt, step, t.coarse_iterations, cfg.seed,
                     t.checkpoint_every, _lr_rule(t.lr_decay_every), t.keep_snapshots)
    return net, run_training(spec, run_dir, resume, progress)


def train_fine(cfg: Config, slices: SliceSet, run_dir, resume=False, progress=True,
               net=None) -> tuple[torch.nn.Module, dict]:
    """Fine net of one view: ground-truth box + random margins (MICCAI), optional zoom."""
    t, dev = cfg.train, cfg.device
    net = net or build_net(cfg)
    opt = make_optimizer(t.optimizer, net.parameters(), t.fine_lr, t.momentum, t.weight_decay)
    size = max(slices.images[0].shape[1:])
    lo, hi = scaled_px(t.margin_low, size), scaled_px(t.margin_high, size)

    def step(i, rng):
        x, y, valid, boxes = slices.fine_batch(rng, t.batch_size, lo, hi)
        x, y = x.to(dev), y.to(dev)
        with autocast(dev):
            p, v = fine_forward(net, x, boxes, t.zoom)                 # f(r(X, Y); θF)
        yc, _ = crop_batch(y, boxes, min_size=-(-32 // t.zoom))      # Y on the same canvas
        return soft_dsc_loss(p.float(), yc, valid=v)                  # Dice on the crop

    spec = TrainSpec("fine", net, opt, step, t.fine_iterations, cfg.seed + 1,
                     t.checkpoint_every, _lr_rule(t.lr_decay_every), t.keep_snapshots)
    return net, run_training(spec, run_dir, resume, progress)


@dataclass
class StepwiseNets:
    """The six nets of a fold: coarse and fine per view, with the test settings."""
    coarse: dict
    fine: dict
    margin: int = 30
    zoom: int = 1
    batch_size: int = 8
    device: str = "cpu"
    coarse_components: bool = False

    @property
    def views(self):
        return list(self.coarse)


def load_stepwise(cfg: Config, run_dir, slice_size: int = 512,
                  equal_time: bool = False) -> StepwiseNets:
    """Load the finished nets of a stepwise fold run (weights_only); the test margin is
    scaled from 512-px slices to `slice_size`.

    equal_time: each fine net is replaced by its last snapshot whose training time does not
    exceed its view's coarse net's (cpu_experiment.md: a cheaper fine iteration can pose as a
    method gain; this compares the two stages at equal training time).
    """
    from rstn_core.io import load_checkpoint
    from rstn_core.engine.train import FINAL, snapshot_at_time
    run_dir = Path(run_dir)
    coarse, fine = {}, {}
    for v in cfg.views:
        coarse[v] = load_final(run_dir / f"{v}_coarse", build_net(cfg)).eval()
        fine[v] = load_final(run_dir / f"{v}_fine", build_net(cfg)).eval()
        if equal_time:
            budget = load_checkpoint(run_dir / f"{v}_coarse" / FINAL)["seconds"]
            fine_final = load_checkpoint(run_dir / f"{v}_fine" / FINAL)
            if fine_final["seconds"] > budget:
                snap = snapshot_at_time(run_dir / f"{v}_fine", budget)
                if snap is None:
                    raise FileNotFoundError(f"{run_dir / f'{v}_fine'}: no snapshot within the "
                                            f"coarse net's {budget:.0f} s; train with "
                                            "train.keep_snapshots=true.")
                fine[v].load_state_dict(load_checkpoint(snap)["model"])
    return StepwiseNets(coarse, fine, margin=scaled_px(cfg.test.margin, slice_size),
                        zoom=cfg.train.zoom, batch_size=cfg.test.batch_size, device=cfg.device,
                        coarse_components=cfg.test.coarse_components)


@dataclass
class FixedPointResult:
    """Every round of Algorithm 1: masks[t] = Z(t), d[t-1] = d(t) = DSC(Z(t-1), Z(t))."""
    masks: list
    d: list
    view_probs: dict
    stopped_at: int
    fallback: str | None = None
    windows_run: list = field(default_factory=list)

    @property
    def final(self) -> np.ndarray:
        return self.masks[self.stopped_at]


def initial_mask(z0: np.ndarray, prob: np.ndarray, where: str) -> tuple[np.ndarray, str | None]:
    """Z(0), with the documented fallback for an empty coarse mask.

    If Z(0) is empty, the fine nets are pointed at the voxels whose fused coarse probability
    is at least half its maximum (where the coarse nets were most confident), with a warning;
    if the probability is 0 everywhere, Z(0) stays empty and every round returns empty.
    """
    if z0.any():
        return z0, None
    peak = float(prob.max())
    if peak <= 0:
        warnings.warn(f"{where}: the coarse nets found nothing; every round is empty.")
        return z0, "empty"
    warnings.warn(f"{where}: empty coarse mask; using voxels >= half the peak coarse "
                  f"probability ({peak:.3f}) as Z(0).")
    return prob >= 0.5 * peak, "half-peak"


def fixed_point_predict(image: np.ndarray, nets: StepwiseNets, R: float | None = 0.95,
                        T: int = 10, margin: int | None = None, hu: bool = True
                        ) -> FixedPointResult:
    """Algorithm 1 (MICCAI 2017): coarse-to-fine by fixed-point iteration. Needs no label.

    Z(0) = majority vote of the three views' coarse masks; for t = 1..T, per slice, the box of
    Z(t-1) plus `margin`, fine nets inside it, views fused by majority vote into Z(t); stop
    when d(t) = DSC(Z(t-1), Z(t)) > R (R = None: run all T rounds, as the authors' scripts).

    image: (X, Y, Z) volume in HU (or already windowed to [0, 1] with hu=False).
    """
    vol = window(image) if hu else np.asarray(image, np.float32)
    margin = nets.margin if margin is None else margin
    view_probs = {v: coarse_probability(nets.coarse[v], vol, v, nets.batch_size, nets.device)
                  for v in nets.views}
    z = majority_vote([p >= 0.5 for p in view_probs.values()])      # Z(0): fused coarse
    if nets.coarse_components:
        z = keep_large_components(z)
    z, fallback = initial_mask(z, np.mean(list(view_probs.values()), 0), "fixed_point_predict")
    masks, d, runs = [z], [], []
    stopped = T
    for t in range(1, T + 1):
        votes, n_run = [], 0
        for v in nets.views:
            p, n = fine_probability(nets.fine[v], vol, masks[-1], v, margin, nets.zoom,
                                    nets.batch_size, nets.device)     # fine nets in the boxes
            votes.append(p >= 0.5)
            n_run += n
        z_t = majority_vote(votes)                                    # Z(t)
        d.append(dsc(masks[-1], z_t))                                 # d(t) = DSC(Z(t-1), Z(t))
        masks.append(z_t)
        runs.append(n_run)
        if R is not None and d[-1] > R:                               # stop: d(t) > R
            stopped = t
            break
    return FixedPointResult(masks, d, view_probs, stopped, fallback, runs)
