"""The Recurrent Saliency Transformation Network (Yu et al., CVPR 2018).

Per view, unrolled for T iterations (CVPR Eq. 2–3, papers.md):
    I(0) = X,                    P(0) = f(X; θC)
    I(t) = X ⊙ g(P(t-1); η),     P(t) = f(Crop[I(t); P(t-1)]; θF)   (pasted back, 0 outside)
    loss = Σ_t λ_t L_DSC(Y, P(t)),   2λ0 = λ1 = … = λT = 2/(2T+1)
θC, θF and η are shared over iterations and trained jointly: the fine loss reaches θC through
g, which is the point of the method.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from rstn_core.engine.batching import fine_forward, paste_batch
from rstn_core.config import Config, scaled_px
from rstn_core.crop import bbox
from rstn_core.fusion import keep_large_components
from rstn_core.engine.inference import coarse_probability, fine_probability
from rstn_core.losses import dice_bce_loss, rstn_loss_weights, soft_dsc_loss
from rstn_core.metrics import dsc
from rstn_core.saliency import SaliencyTransform
from rstn_core.engine.slices import SliceSet
from rstn_core.algorithms.stepwise import FixedPointResult, build_net, initial_mask
from rstn_core.engine.train import TrainSpec, autocast, load_final, make_optimizer, run_training
from rstn_core.views import window

__all__ = ["RSTN", "REFS", "build_rstn", "train_rstn", "rstn_schedule", "RSTNModels",
           "load_rstn", "rstn_predict", "RSTNResult", "rstn_oracle", "saliency_channels",
           "joint_loss"]

REFS = ("gt", "pred", "pred_or_gt")


class RSTN(nn.Module):
    """One view's RSTN: coarse net θC, fine net θF, saliency transformation g(·; η).

    Args:
        margin: K, the crop frame in pixels (CVPR: 20 at 512 px).
        zoom: fine crops upsampled by this integer factor (1 = the paper).

    `activation_checkpointing = True` (config `train.activation_checkpointing`) keeps only
    the inputs and outputs of the coarse pass and of each unrolled step in training and
    recomputes their insides in the backward pass (torch.utils.checkpoint, non-reentrant):
    the same gradients, less memory for large T, about one more forward pass of time.
    """

    activation_checkpointing: bool = False

    def __init__(self, coarse: nn.Module, fine: nn.Module, saliency: SaliencyTransform,
                 margin: int = 20, zoom: int = 1):
        super().__init__()
        self.coarse, self.fine, self.saliency = coarse, fine, saliency
        self.margin, self.zoom = margin, zoom

    def boxes(self, p: torch.Tensor, y: torch.Tensor | None, ref: str):
        """Crop[·; ref]: minimal box of the reference map >= 0.5 over 3 slices, + K."""
        if ref not in REFS:
            raise ValueError(f"unknown crop reference {ref!r}; expected one of {list(REFS)}.")
        if ref != "pred" and y is None:
            raise ValueError(f"crop reference {ref!r} needs the ground truth y.")
        out = []
        for b in range(p.shape[0]):
            pred = bbox(p[b].detach() >= 0.5, self.margin) if ref != "gt" else None
            if ref == "gt" or (ref == "pred_or_gt" and pred is None):
                pred = bbox(y[b] >= 0.5, self.margin)
            out.append(pred)
        return out

    def _fine_step(self, x: torch.Tensor, p: torch.Tensor, boxes, shape) -> torch.Tensor:
        """One unrolled step on the samples that have a box: P(t) pasted on full slices."""
        i_t = self.saliency(x, p)                                   # I(t) = X ⊙ g(P(t-1); η)
        pc, _ = fine_forward(self.fine, i_t, boxes, self.zoom)      # f(Crop[I(t); P(t-1)]; θF)
        return paste_batch(pc.float(), boxes, shape)                # pasted back, 0 outside

    def _run(self, fn, *args):
        """fn(*args), recomputed in backward instead of stored when checkpointing is on."""
        if not (self.activation_checkpointing and torch.is_grad_enabled() and self.training):
            return fn(*args)
        from torch.utils.checkpoint import checkpoint
        return checkpoint(fn, *args, use_reentrant=False,
                          context_fn=lambda: (contextlib.nullcontext(), _keep_bn_stats(self)))

    def forward(self, x: torch.Tensor, T: int = 1, ref: str = "pred",
                y: torch.Tensor | None = None):
        """Unrolled RSTN. x: (N, 3, H, W) in [0, 1]. Returns (coarse logits, [P(0) … P(T)]),
        every P(t) of shape (N, 3, H, W)."""
        logits = self._run(self.coarse, x).float()
        p = torch.sigmoid(logits)                                   # P(0) = f(X; θC)
        probs = [p]
        H, W = x.shape[-2:]
        for _ in range(T):
            boxes = self.boxes(p, y, ref)
            keep = [b for b, box in enumerate(boxes) if box is not None]
            p_next = x.new_zeros(x.shape[0], 3, H, W)
            if keep:
                idx = torch.tensor(keep, device=x.device)
                kb = [boxes[b] for b in keep]
                full = self._run(self._fine_step, x[idx], p[idx], kb, (H, W))
                p_next = p_next.index_copy(0, idx, full)
            p = p_next
            probs.append(p)                                         # P(t)
        return logits, probs


@contextlib.contextmanager
def _keep_bn_stats(module: nn.Module):
    """Around a checkpoint's recomputation: BatchNorm running statistics (and batch counts)
    are put back as they were, so the repeated forward pass does not update them twice."""
    bns = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)
           and m.track_running_stats and m.running_mean is not None]
    saved = [(m.running_mean.clone(), m.running_var.clone(), m.num_batches_tracked.clone())
             for m in bns]
    try:
        yield
    finally:
        with torch.no_grad():
            for m, (mu, var, n) in zip(bns, saved):
                m.running_mean.copy_(mu)
                m.running_var.copy_(var)
                m.num_batches_tracked.copy_(n)


def joint_loss(logits: torch.Tensor, probs: list, y: torch.Tensor, coarse_loss: str = "dice",
               valid: torch.Tensor | None = None) -> torch.Tensor:
    """Σ_t λ_t L(Y, P(t)) with 2λ0 = λ1 = … = λT (CVPR). The coarse term is the papers' Dice,
    or Dice + BCE on the logits at the CPU scales (cpu_experiment.md)."""
    lam = rstn_loss_weights(len(probs) - 1)
    if coarse_loss == "dice_bce":
        total = lam[0] * dice_bce_loss(logits, y, valid=valid)
    else:
        total = lam[0] * soft_dsc_loss(probs[0], y, valid=valid)
    for lt, p in zip(lam[1:], probs[1:]):
        total = total + lt * soft_dsc_loss(p, y, valid=valid)       # λ_t L_DSC(Y, P(t))
    return total


def build_rstn(cfg: Config, slice_size: int) -> RSTN:
    r = cfg.rstn
    torch.manual_seed(cfg.seed)
    sal = SaliencyTransform(kernel_size=r.kernel_size, layers=r.layers,
                            init_scale=tuple(r.init_scale))
    return RSTN(build_net(cfg), build_net(cfg), sal.to(cfg.device),
                margin=scaled_px(r.margin, slice_size), zoom=cfg.train.zoom)


def rstn_schedule(cfg: Config):
    """The papers' schedule as functions of the iteration i: (ref_at, lr_at, total).

    Phase 1: crop from the ground truth (authors' stage I); phase 2: from the prediction,
    falling back to the ground truth when it is empty (stage J, lr halved every N); phase 3:
    "fine-tuning with noisy data": crop from the prediction only, at the lower noisy lr.
    """
    r = cfg.rstn
    a, b = r.gt_iterations, r.gt_iterations + r.pred_iterations
    total = b + r.noisy_iterations

    def ref_at(i):
        return "gt" if i < a else ("pred_or_gt" if i < b else "pred")

    def lr_at(i):
        if i >= b:
            return r.noisy_lr / r.lr
        if i >= a and r.lr_decay_every:
            return 0.5 ** ((i - a) // r.lr_decay_every)
        return 1.0

    return ref_at, lr_at, total


def train_rstn(cfg: Config, slices: SliceSet, run_dir, init_from=None, resume=False,
               progress=True) -> tuple[RSTN, dict]:
    """Joint training of θC, θF, η for one view (CVPR), optionally from stepwise nets.

    init_from: a stepwise fold folder holding `<view>_coarse` and `<view>_fine` for this
    view's `run_dir.name` (the papers start RSTN from trained stage-S nets).
    """
    run_dir = Path(run_dir)
    view = run_dir.name
    size = max(slices.images[0].shape[1:])
    model = build_rstn(cfg, size)
    if init_from is not None:
        load_final(Path(init_from) / f"{view}_coarse", model.coarse)
        load_final(Path(init_from) / f"{view}_fine", model.fine)
    t, r, dev = cfg.train, cfg.rstn, cfg.device
    groups = [{"params": model.coarse.parameters(), "lr": r.lr},
              {"params": list(model.fine.parameters()) + list(model.saliency.parameters()),
               "lr": r.lr * r.fine_lr_mult}]                        # authors: fine + g at 10x
    opt = make_optimizer(t.optimizer, groups, r.lr, t.momentum, t.weight_decay)
    ref_at, lr_at, total = rstn_schedule(cfg)

    def step(i, rng):
        x, y, valid = (a.to(dev) for a in slices.coarse_batch(rng, t.batch_size, t.coarse_loss,
                                                              t.positive_fraction))
        with autocast(dev):
            logits, probs = model(x, T=r.T, ref=ref_at(i), y=y)
        return joint_loss(logits, probs, y, t.coarse_loss, valid)

    spec = TrainSpec("rstn", model, opt, step, total, cfg.seed + 2, t.checkpoint_every, lr_at, t.keep_snapshots)
    return model, run_training(spec, run_dir, resume, progress)


@dataclass
class RSTNModels:
    """One RSTN per view, with the test settings."""
    models: dict
    batch_size: int = 8
    device: str = "cpu"
    coarse_components: bool = False

    @property
    def views(self):
        return list(self.models)


def load_rstn(cfg: Config, run_dir, slice_sizes: dict) -> RSTNModels:
    """Load the finished RSTN of each view from a fold run (weights_only)."""
    models = {v: load_final(Path(run_dir) / v, build_rstn(cfg, slice_sizes[v])).eval()
              for v in cfg.views}
    return RSTNModels(models, cfg.test.batch_size, cfg.device, cfg.test.coarse_components)


@dataclass
class RSTNResult(FixedPointResult):
    """Every round of Algorithm 2: probs[t] = P(t) (fused), masks[t] = Z(t), d[t-1] = DSC."""
    probs: list = field(default_factory=list)


def _fine_round(vol, models: RSTNModels, ref, weight_ref=None, boxes_from=None):
    outs, n_run = [], 0
    for v, m in models.models.items():
        p, n = fine_probability(m.fine, vol, ref, v, m.margin, m.zoom, models.batch_size,
                                models.device, saliency=m.saliency, weight_ref=weight_ref,
                                boxes_from=boxes_from)
        outs.append(p)
        n_run += n
    return np.mean(outs, axis=0), n_run                             # P(t) = mean of the views


def _coarse(vol, models: RSTNModels):
    view_probs = {v: coarse_probability(m.coarse, vol, v, models.batch_size, models.device)
                  for v, m in models.models.items()}
    p0 = np.mean(list(view_probs.values()), axis=0)                 # P(0) = (P_C+P_S+P_A)/3
    z0 = p0 >= 0.5                                                   # Z(0) = I[P(0) >= 0.5]
    if models.coarse_components:
        z0 = keep_large_components(z0)
        p0 = p0 * z0 + np.minimum(p0, 0.49) * ~z0   # dropped components fall below 0.5
    return p0.astype(np.float32), z0, view_probs


def rstn_predict(image: np.ndarray, models: RSTNModels, thr: float | None = 0.99, T: int = 10,
                 hu: bool = True) -> RSTNResult:
    """Algorithm 2 (CVPR 2018): RSTN testing. Needs no label.

    Each round feeds the fused previous map P(t-1) to every view (saliency and crop), averages
    the views into P(t), thresholds Z(t) = P(t) >= 0.5, and stops at t = T or when
    DSC(Z(t-1), Z(t)) >= thr (thr = None: run all T rounds).
    """
    vol = window(image) if hu else np.asarray(image, np.float32)
    p, z, view_probs = _coarse(vol, models)
    z2, fallback = initial_mask(z, p, "rstn_predict")
    if fallback == "half-peak":
        p = np.where(z2, np.maximum(p, 0.5), p).astype(np.float32)
    probs, masks, d, runs = [p], [z2], [], []
    stopped = T
    for t in range(1, T + 1):
        p, n = _fine_round(vol, models, probs[-1])
        z = p >= 0.5                                                  # Z(t)
        d.append(dsc(masks[-1], z))                                   # DSC(Z(t-1), Z(t))
        probs.append(p.astype(np.float16))
        masks.append(z)
        runs.append(n)
        if thr is not None and d[-1] >= thr:
            stopped = t
            break
    return RSTNResult(masks=masks, d=d, view_probs=view_probs, stopped_at=stopped,
                      fallback=fallback, windows_run=runs, probs=probs)


def rstn_oracle(image: np.ndarray, label: np.ndarray, models: RSTNModels, kind: str = "strong",
                hu: bool = True, p0: np.ndarray | None = None) -> np.ndarray:
    """One fine round with ground truth: `strong` = GT for cropping and weighting,
    `weak` = GT for cropping only (weights from the coarse P(0), recomputed unless given)
    (AAAI short paper)."""
    vol = window(image) if hu else np.asarray(image, np.float32)
    gt = label.astype(np.float32)
    if kind == "strong":
        p, _ = _fine_round(vol, models, gt)
    elif kind == "weak":
        if p0 is None:
            p0, _, _ = _coarse(vol, models)
        p, _ = _fine_round(vol, models, np.asarray(p0, np.float32), boxes_from=gt)
    else:
        raise ValueError(f"unknown oracle {kind!r}; expected 'strong' or 'weak'.")
    return p >= 0.5


@torch.inference_mode()
def saliency_channels(model: RSTN, prob_stack: np.ndarray) -> np.ndarray:
    """The three weight maps g(P; η) of one window (CVPR Fig. 5). prob_stack: (3, H, W)."""
    model.saliency.eval()
    p = torch.as_tensor(np.asarray(prob_stack, np.float32))[None]
    dev = next(model.saliency.parameters()).device
    return model.saliency.weights(p.to(dev))[0].cpu().numpy()
