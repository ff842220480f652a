"""Training losses: the soft DSC loss of both papers and the RSTN multi-stage sum.

The target is tiny (< 1.5 % of a 2D slice), so both papers train on 1 - soft DSC instead of
a per-pixel cross-entropy, which would be dominated by the background. ``dice_bce_loss`` is a
common, more stable alternative for small CPU runs (our choice, not the papers').
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

__all__ = ["soft_dsc_loss", "dice_bce_loss", "rstn_loss_weights", "rstn_loss"]


def _check_pair(a: torch.Tensor, b: torch.Tensor, names: tuple[str, str], caller: str) -> None:
    """Raise unless ``a`` and ``b`` are tensors of the same (N, C, H, W)-like shape."""
    for t, name in zip((a, b), names):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{caller}: {name} must be a torch.Tensor, got {type(t).__name__}.")
    if a.shape != b.shape:
        raise ValueError(
            f"{caller}: {names[0]} and {names[1]} must have the same shape, got "
            f"{tuple(a.shape)} and {tuple(b.shape)}. A (N, H, W) target needs target.unsqueeze(1)."
        )
    if a.dim() != 4:
        raise ValueError(
            f"{caller}: expected (N, C, H, W) tensors, got shape {tuple(a.shape)}. "
            "Add the missing batch/channel axes with unsqueeze."
        )


def _check_valid(valid, like: torch.Tensor, caller: str):
    """Return ``valid`` as a float tensor broadcastable to ``like`` (N, C, H, W), or None."""
    if valid is None:
        return None
    if not isinstance(valid, torch.Tensor):
        raise TypeError(f"{caller}: valid must be a torch.Tensor or None, got {type(valid).__name__}.")
    n, c, h, w = like.shape
    if valid.dim() != 4 or valid.shape[0] != n or valid.shape[1] not in (1, c) \
            or tuple(valid.shape[2:]) != (h, w):
        raise ValueError(
            f"{caller}: valid must have shape (N, 1 or C, H, W) = ({n}, 1 or {c}, {h}, {w}), "
            f"got {tuple(valid.shape)}. It marks the real (unpadded) pixels with 1."
        )
    return valid.to(dtype=like.dtype)


def soft_dsc_loss(prob: torch.Tensor, target: torch.Tensor, eps: float = 1e-6,
                  valid: torch.Tensor | None = None) -> torch.Tensor:
    r"""Soft Dice-Sørensen loss, 1 - DSC(p, y), per sample, averaged over the batch.

    .. math:: L = 1 - \frac{2\sum_i p_i y_i + \epsilon}{\sum_i p_i + \sum_i y_i + \epsilon}

    Args:
        prob: probabilities in [0, 1].
        target: binary ground truth (any dtype; cast to ``prob``'s).
        eps: smoothing so an empty slice does not divide by zero (1e-6 as the authors' code);
            an empty prediction of an empty target then gives a loss of 0.
        valid: optional 0/1 mask multiplied into p and y, so padding of batched crops counts
            neither as foreground nor as background.
    Shapes (per sample, summed over C, H, W):
        prob, target: (N, C, H, W); valid: (N, 1, H, W) or (N, C, H, W); returns a scalar.
    Reference:
        Milletari et al., V-Net, 3DV 2016; Zhou et al., MICCAI 2017 (the DSC loss);
        Yu et al., CVPR 2018.
    """
    _check_pair(prob, target, ("prob", "target"), "soft_dsc_loss")
    target = target.to(dtype=prob.dtype)
    v = _check_valid(valid, prob, "soft_dsc_loss")
    if v is not None:
        prob, target = prob * v, target * v  # padding counts for nothing
    dims = (1, 2, 3)
    intersection = (prob * target).sum(dims)  # Σ_i p_i y_i, per sample
    denominator = prob.sum(dims) + target.sum(dims)  # Σ_i p_i + Σ_i y_i
    dsc = (2.0 * intersection + eps) / (denominator + eps)  # soft DSC, smoothed
    return (1.0 - dsc).mean()  # L = 1 - DSC, mean over N


def dice_bce_loss(logits: torch.Tensor, target: torch.Tensor, eps: float = 1e-6,
                  valid: torch.Tensor | None = None) -> torch.Tensor:
    r"""Binary cross-entropy on logits plus a batch-level soft Dice loss on sigmoid(logits).

    .. math:: L = \frac{1}{|V|}\sum_{i \in V} \mathrm{BCE}(z_i, y_i)
              + 1 - \frac{2\sum_i p_i y_i + \epsilon}{\sum_i p_i + \sum_i y_i + \epsilon},
              \quad p = \sigma(z)

    The Dice term treats the whole batch as one sample, so a batch with a few empty slices
    still has a well-defined gradient; the BCE term gives every pixel a gradient from the
    first step. Not the papers' loss: a stable choice for short CPU runs.

    Args:
        logits: raw network outputs z.
        target: binary ground truth.
        eps: Dice smoothing.
        valid: optional 0/1 mask of real pixels (N, 1|C, H, W); the BCE mean runs over the
            valid pixels only and the Dice sums ignore the others.
    Shapes:
        logits, target: (N, C, H, W); returns a scalar.
    Reference:
        Isensee et al., nnU-Net, Nature Methods 2021 (Dice + cross-entropy).
    """
    _check_pair(logits, target, ("logits", "target"), "dice_bce_loss")
    target = target.to(dtype=logits.dtype)
    v = _check_valid(valid, logits, "dice_bce_loss")
    bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    prob = torch.sigmoid(logits)  # p = σ(z)
    if v is None:
        bce_mean = bce.mean()  # mean over all pixels
    else:
        v = v.expand_as(logits)
        bce_mean = (bce * v).sum() / v.sum().clamp_min(1.0)  # mean over valid pixels
        prob, target = prob * v, target * v
    intersection = (prob * target).sum()  # Σ p y over the whole batch
    denominator = prob.sum() + target.sum()  # Σ p + Σ y over the whole batch
    dice = (2.0 * intersection + eps) / (denominator + eps)  # batch soft DSC
    return bce_mean + (1.0 - dice)  # L = BCE + (1 - batch DSC)


def rstn_loss_weights(T: int) -> list[float]:
    r"""Weights λ_0..λ_T of the RSTN loss: the coarse term weighs half of each fine term.

    .. math:: 2\lambda_0 = \lambda_1 = \dots = \lambda_T = \frac{2}{2T + 1},
              \qquad \sum_{t=0}^{T} \lambda_t = 1

    Args:
        T: number of fine (coarse-to-fine) iterations, T >= 0; T = 0 gives [1.0].
    Returns:
        ``[λ_0, ..., λ_T]`` (T + 1 floats). T = 1 gives [1/3, 2/3], as the authors' code.
    Reference:
        Yu et al., CVPR 2018 (training objective).
    """
    if isinstance(T, bool) or not isinstance(T, int):
        raise TypeError(f"rstn_loss_weights: T must be an int, got {type(T).__name__}.")
    if T < 0:
        raise ValueError(f"rstn_loss_weights: T must be >= 0 (number of fine iterations), got {T}.")
    fine = 2.0 / (2 * T + 1)  # λ_t = 2/(2T+1), t >= 1
    return [fine / 2.0] + [fine] * T  # λ_0 = λ_1 / 2


def rstn_loss(probs: Sequence[torch.Tensor], target: torch.Tensor, eps: float = 1e-6, *,
              valid: torch.Tensor | None = None,
              coarse_logits: torch.Tensor | None = None) -> torch.Tensor:
    r"""RSTN training loss: weighted sum of the soft DSC losses of every stage.

    .. math:: L = \sum_{t=0}^{T} \lambda_t \, L_\mathrm{DSC}(Y, P^{(t)})

    Args:
        probs: ``[P(0), P(1), ..., P(T)]``, the coarse probability map then the fine ones
            (each pasted back to full size), at least one; a (T+1, N, C, H, W) tensor works too.
        target: binary ground truth Y.
        eps: smoothing of :func:`soft_dsc_loss`.
        valid: 1 on the real (unpadded) pixels, or None.
        coarse_logits: when given, the coarse term is :func:`dice_bce_loss` on these logits
            instead of L_DSC(Y, P(0)) — the CPU scales' deviation (a coarse net trained on all
            slices with Dice alone collapses; book/deviations.md).
    Shapes:
        each probs[t], target, coarse_logits: (N, C, H, W); valid (N, 1, H, W); returns a scalar.
    Reference:
        Yu et al., CVPR 2018 (training objective); weights from :func:`rstn_loss_weights`.
    """
    if isinstance(probs, torch.Tensor):  # one map (N, C, H, W) or a stack (T+1, N, C, H, W)
        probs = list(probs.unbind(0)) if probs.dim() == 5 else [probs]
    probs = list(probs)
    if len(probs) < 1:
        raise ValueError(
            "rstn_loss: probs must hold at least one probability map [P(0), ..., P(T)], got 0."
        )
    weights = rstn_loss_weights(len(probs) - 1)
    if coarse_logits is None:
        first = soft_dsc_loss(probs[0], target, eps, valid=valid)     # L_DSC(Y, P(0))
    else:
        first = dice_bce_loss(coarse_logits, target, eps, valid=valid)  # CPU scales
    terms = [weights[0] * first] + [lam * soft_dsc_loss(p, target, eps, valid=valid)
                                    for lam, p in zip(weights[1:], probs[1:])]
    return torch.stack(terms).sum()  # Σ_t λ_t L_DSC(Y, P(t))
