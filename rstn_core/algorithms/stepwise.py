"""The stepwise coarse-to-fine fixed-point model (Zhou et al., MICCAI 2017).

Model: Z = f(r(X, Z*); Θ) — r crops the input to the box of the current mask Z*, so the mask is
both input and output, a fixed point found by iteration (Algorithm 1). Two independent sets of
three view networks are trained: coarse on whole slices, fine on ground-truth boxes plus random
margins.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from rstn_core.algorithms.rounds import FixedPointResult, TestSettings, first_stop, initial_mask
from rstn_core.config import Config, scaled_px
from rstn_core.engine.batching import crop_batch, fine_forward, min_canvas
from rstn_core.engine.device import autocast
from rstn_core.engine.inference import (ViewCache, coarse_probability, fine_probability,
                                        prepare_net)
from rstn_core.engine.slices import SliceSet
from rstn_core.engine.train import (FINAL, TrainSpec, load_final, make_optimizer, run_training,
                                    snapshot_at_time)
from rstn_core.fusion import keep_large_components, majority_vote, mean_probability
from rstn_core.io import load_checkpoint
from rstn_core.losses import dice_bce_loss, soft_dsc_loss
from rstn_core.metrics import dsc
from rstn_core.networks.build import build_net
from rstn_core.views import window

__all__ = ["train_coarse", "train_fine", "StepwiseNets", "load_stepwise",
           "fixed_point_predict", "lr_rule"]


def lr_rule(every: int):
    r"""The learning-rate multiplier of iteration i: halved every `every` iterations (0 = never).

    .. math:: \mathrm{lr}(i) = \mathrm{lr}_0 \cdot 0.5^{\lfloor i / N \rfloor}
    """
    return (lambda i: 0.5 ** (i // every)) if every else (lambda i: 1.0)


def train_coarse(cfg: Config, slices: SliceSet, run_dir, resume=False, progress=True,
                 net=None) -> tuple[torch.nn.Module, dict]:
    """Coarse net θC of one view: Z = f(X; θC) on whole-slice windows (MICCAI: the slices with
    the target), trained on L = 1 - DSC(P, Y) (or Dice + BCE on all slices, CPU scales).

    Args:
        cfg: the run's config (train.*: iterations, lr, optimizer, batch, loss); slices: the
        view's training windows; run_dir: the net's folder (checkpoints, loss.csv); resume:
        continue an interrupted run; net: start from this net instead of a new one.
    Returns:
        (the trained net, run_training's statistics).
    """
    t, dev = cfg.train, cfg.device
    net = net or build_net(cfg)
    opt = make_optimizer(t.optimizer, net.parameters(), t.coarse_lr, t.momentum, t.weight_decay)

    def step(i, rng):
        x, y, valid = (a.to(dev) for a in slices.coarse_batch(rng, t.batch_size, t.coarse_loss,
                                                              t.positive_fraction))
        with autocast(dev, t.amp):
            logits = net(x).float()
        if t.coarse_loss == "dice_bce":
            return dice_bce_loss(logits, y, valid=valid)
        return soft_dsc_loss(torch.sigmoid(logits), y, valid=valid)   # L = 1 - DSC(P, Y)

    spec = TrainSpec("coarse", net, opt, step, t.coarse_iterations, cfg.seed,
                     t.checkpoint_every, lr_rule(t.lr_decay_every), t.keep_snapshots, t.amp,
                     t.half_final)
    return net, run_training(spec, run_dir, resume, progress)


def train_fine(cfg: Config, slices: SliceSet, run_dir, resume=False, progress=True,
               net=None) -> tuple[torch.nn.Module, dict]:
    """Fine net θF of one view: Z = f(r(X, Y); θF) on the ground-truth box plus a random margin
    per side, uniform in [margin_low, margin_high] at 512 px (MICCAI), crops optionally zoomed;
    trained on the soft DSC loss on the crop.

    Args: as :func:`train_coarse`; margins are scaled from 512 px by cfg.slice_size.
    Returns:
        (the trained net, run_training's statistics).
    """
    t, dev = cfg.train, cfg.device
    net = net or build_net(cfg)
    opt = make_optimizer(t.optimizer, net.parameters(), t.fine_lr, t.momentum, t.weight_decay)
    lo, hi = scaled_px(t.margin_low, cfg.slice_size), scaled_px(t.margin_high, cfg.slice_size)

    def step(i, rng):
        x, y, valid, boxes = slices.fine_batch(rng, t.batch_size, lo, hi)
        x, y = x.to(dev), y.to(dev)
        with autocast(dev, t.amp):
            p, v = fine_forward(net, x, boxes, t.zoom)                 # f(r(X, Y); θF)
        yc, _ = crop_batch(y, boxes, min_size=min_canvas(t.zoom))    # Y on the same canvas
        return soft_dsc_loss(p.float(), yc, valid=v)                  # Dice on the crop

    spec = TrainSpec("fine", net, opt, step, t.fine_iterations, cfg.seed + 1,
                     t.checkpoint_every, lr_rule(t.lr_decay_every), t.keep_snapshots, t.amp,
                     t.half_final)
    return net, run_training(spec, run_dir, resume, progress)


@dataclass
class StepwiseNets(TestSettings):
    """The six nets of a fold: coarse and fine per view, with the test settings.

    margin: the fixed-point test frame in pixels (MICCAI: 30 at 512); zoom: fine crops
    upsampled by this factor; the rest: :class:`~rstn_core.algorithms.rounds.TestSettings`.
    """
    coarse: dict
    fine: dict
    margin: int = 30
    zoom: int = 1

    @property
    def views(self):
        return list(self.coarse)


def load_stepwise(cfg: Config, run_dir, equal_time: bool = False) -> StepwiseNets:
    """Load the finished nets of a stepwise fold run (weights_only); the test margin is
    scaled from 512-px slices to `cfg.slice_size`.

    equal_time: each fine net is replaced by its last snapshot whose training time does not
    exceed its view's coarse net's (a fine iteration is cheaper, so at equal iterations the
    fine stage gets more training and that can pose as a method gain; this compares the two
    stages at equal training time).
    """
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
    t = cfg.test
    def ready(net):
        return prepare_net(net, cfg.device, t.channels_last, t.compile)
    return StepwiseNets({v: ready(n) for v, n in coarse.items()},
                        {v: ready(n) for v, n in fine.items()},
                        margin=scaled_px(t.fixed_point_margin, cfg.slice_size),
                        zoom=cfg.train.zoom, batch_size=t.batch_size, device=cfg.device,
                        coarse_components=t.coarse_components, amp=t.amp,
                        channels_last=t.channels_last)


def fixed_point_predict(image: np.ndarray, nets: StepwiseNets, R: float | None = 0.95,
                        T: int = 10, margin: int | None = None, hu: bool = True
                        ) -> FixedPointResult:
    """Algorithm 1 (MICCAI 2017): coarse-to-fine by fixed-point iteration. Needs no label.

    Z(0) = majority vote of the three views' coarse masks; for t = 1..T, per slice, the box of
    Z(t-1) plus `margin`, fine nets inside it, views fused by majority vote into Z(t); stop
    when d(t) = DSC(Z(t-1), Z(t)) > R (R = None: run all T rounds, as the authors' scripts).

    Args:
        image: the volume in HU (or already windowed to [0, 1] with hu=False); nets: the six
        nets; R: the stop threshold; T: at most T rounds; margin: pixels around each box
        (default nets.margin).
    Shapes:
        image (X, Y, Z); every mask of the result (X, Y, Z) bool.
    """
    x = window(image) if hu else np.asarray(image, np.float32)
    margin = nets.margin if margin is None else margin
    opts = dict(amp=nets.amp, channels_last=nets.channels_last, cache=ViewCache(x))
    view_probs = {v: coarse_probability(nets.coarse[v], x, v, nets.batch_size, nets.device,
                                        **opts) for v in nets.views}
    z = majority_vote([p >= 0.5 for p in view_probs.values()])      # Z(0): fused coarse
    if nets.coarse_components:
        z = keep_large_components(z)
    p0 = mean_probability(list(view_probs.values()))
    z, fallback = initial_mask(z, p0)
    masks, d, runs, probs = [z], [], [], [p0.astype(np.float16)]
    for t in range(1, T + 1):
        votes, ps, n_run = [], [], 0
        for v in nets.views:
            p, n = fine_probability(nets.fine[v], x, masks[-1], v, margin, nets.zoom,
                                    nets.batch_size, nets.device, **opts)  # f(r(X, Z(t-1)))
            votes.append(p >= 0.5)
            ps.append(p)
            n_run += n
        z_t = majority_vote(votes)                                    # Z(t)
        d.append(dsc(masks[-1], z_t))                                 # d(t) = DSC(Z(t-1), Z(t))
        masks.append(z_t)
        probs.append(mean_probability(ps).astype(np.float16))       # confidence behind Z(t)
        runs.append(n_run)
        if first_stop(d, R, T) == t:                                  # stop: d(t) > R
            break
    return FixedPointResult(masks, d, view_probs, first_stop(d, R, T), fallback, runs, probs)
