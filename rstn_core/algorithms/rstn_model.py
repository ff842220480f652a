"""RSTN's network (Yu et al., CVPR 2018): one view's coarse net, fine net and saliency g,
unrolled for T iterations (CVPR Eq. 2-3):

    I(0) = X,                    P(0) = f(X; θC)
    I(t) = X ⊙ g(P(t-1); η),     P(t) = f(Crop[I(t); P(t-1)]; θF)   (pasted back, 0 outside)

θC, θF and η are shared over iterations and trained jointly (loss: rstn_core.losses.rstn_loss):
the fine loss reaches θC through g, which is the point of the method.
"""
from __future__ import annotations

import contextlib

import torch
import torch.nn as nn
from torch.utils.checkpoint import checkpoint

from rstn_core.config import Config, scaled_px
from rstn_core.crop import bbox
from rstn_core.engine.batching import fine_forward, paste_batch
from rstn_core.networks.build import build_net
from rstn_core.saliency import SaliencyTransform

__all__ = ["RSTN", "REFS", "build_rstn"]

REFS = ("gt", "pred", "pred_or_gt")


class RSTN(nn.Module):
    """One view's RSTN: coarse net θC, fine net θF, saliency transformation g(·; η).

    Args:
        margin: K, the crop frame in pixels (CVPR: 20 at 512 px).
        zoom: fine crops upsampled by this integer factor (1 = the paper).

        activation_checkpointing: keep only the inputs and outputs of the coarse pass and of
            each unrolled step in training and recompute their insides in the backward pass
            (torch.utils.checkpoint, non-reentrant): the same gradients, less memory for large
            T, about one more forward pass of time (config `train.activation_checkpointing`).
    """

    def __init__(self, coarse: nn.Module, fine: nn.Module, saliency: SaliencyTransform,
                 margin: int = 20, zoom: int = 1, activation_checkpointing: bool = False):
        super().__init__()
        self.coarse, self.fine, self.saliency = coarse, fine, saliency
        self.margin, self.zoom = margin, zoom
        self.activation_checkpointing = activation_checkpointing

    def boxes(self, p: torch.Tensor, y: torch.Tensor | None, ref: str):
        """Crop[·; ref]: minimal box of Z = I[P > 0.5] of the reference map over the 3 slices of
        each sample, + K. ref: "pred" (P(t-1)), "gt" (Y) or "pred_or_gt" (Y when P(t-1) is
        empty)."""
        if ref not in REFS:
            raise ValueError(f"unknown crop reference {ref!r}; expected one of {list(REFS)}.")
        if ref != "pred" and y is None:
            raise ValueError(f"crop reference {ref!r} needs the ground truth y.")
        out = []
        for b in range(p.shape[0]):
            pred = bbox(p[b].detach() > 0.5, self.margin) if ref != "gt" else None
            if ref == "gt" or (ref == "pred_or_gt" and pred is None):
                pred = bbox(y[b] > 0.5, self.margin)
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




def build_rstn(cfg: Config) -> RSTN:
    """One view's RSTN as `cfg` says: two FCN-8s (:func:`build_net`) and g (cfg.rstn), the
    crop frame K = rstn.margin scaled from 512 px to cfg.slice_size, crops zoomed by
    train.zoom. Weights are drawn from cfg.seed without touching torch's global generator."""
    r = cfg.rstn
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        sal = SaliencyTransform(kernel_size=r.kernel_size, layers=r.layers,
                                init_scale=tuple(r.init_scale), init=r.saliency_init)
    return RSTN(build_net(cfg), build_net(cfg), sal.to(cfg.device),
                margin=scaled_px(r.margin, cfg.slice_size), zoom=cfg.train.zoom,
                activation_checkpointing=cfg.train.activation_checkpointing)
