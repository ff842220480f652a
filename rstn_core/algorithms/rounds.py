"""What both test-time algorithms share: the rounds they record, Z(0) and the stop rule.

Algorithm 1 (MICCAI 2017) and Algorithm 2 (CVPR 2018) both start from the fused coarse mask
Z(0), run fine rounds t = 1..T and stop when two successive masks agree:
    d(t) = DSC(Z(t-1), Z(t)),   stop at the first t with d(t) > R (MICCAI) or > thr (CVPR).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["TestSettings", "FixedPointResult", "RSTNResult", "initial_mask", "first_stop"]


@dataclass(kw_only=True)
class TestSettings:
    """How a method's loaded nets run at test time (both algorithms).

    batch_size: windows per forward pass; device: "cpu" or "cuda[:N]"; coarse_components:
    keep the large components of Z(0) before the fine rounds; amp, channels_last: speed
    options (rstn_core.engine.device, rstn_core.engine.inference).
    """
    batch_size: int = 8
    device: str = "cpu"
    coarse_components: bool = False
    amp: str = "auto"
    channels_last: bool = False


@dataclass
class FixedPointResult:
    """Every round of Algorithm 1: masks[t] = Z(t), d[t-1] = d(t) = DSC(Z(t-1), Z(t)).

    view_probs: each view's coarse probability; stopped_at: the round the stop rule chose
    (T when it never fired); fallback: how Z(0) was made when the coarse mask was empty
    (None, "half-peak" or "empty"); windows_run: fine windows run per round; probs[t]: the
    mean of the views' probabilities in round t (float16; Algorithm 1 fuses by majority vote,
    so this is the confidence behind Z(t), e.g. to break ties between organs).
    """
    masks: list
    d: list
    view_probs: dict
    stopped_at: int
    fallback: str | None = None
    windows_run: list = field(default_factory=list)
    probs: list = field(default_factory=list)

    @property
    def final(self) -> np.ndarray:
        return self.masks[self.stopped_at]

    def confidence(self, t: int | None = None) -> np.ndarray:
        r"""Z(t) as a map in [0, 1] that is > 0.5 exactly on Z(t), ordered by the views' mean
        probability probs[t] (Algorithm 1 fuses by majority vote, so its mask and its mean
        probability can disagree near 0.5). What a stepwise run stores and what the
        multi-organ merge (`experiments.organs.merge_organs`) compares between organs.

        .. math:: c(i) = \tfrac12 + \tfrac12 \bar P^{(t)}(i) \text{ on } Z^{(t)},
                  \qquad c(i) = 0.499\, \bar P^{(t)}(i) \text{ elsewhere}

        Args:
            t: the round (default: the round the stop rule chose).
        Shapes:
            returns (X, Y, Z) float32.
        """
        t = self.stopped_at if t is None else t
        if not 0 <= t < len(self.masks) or t >= len(self.probs):
            raise ValueError(f"confidence: round t={t} was not recorded; this result holds "
                             f"rounds 0..{min(len(self.masks), len(self.probs)) - 1}.")
        mean_p = np.asarray(self.probs[t], np.float32)
        return np.where(self.masks[t], 0.5 + 0.5 * mean_p, 0.499 * mean_p).astype(np.float32)


@dataclass
class RSTNResult(FixedPointResult):
    """Every round of Algorithm 2: probs[t] = P(t) (fused, float16 copies), masks[t] = Z(t),
    d[t-1] = DSC(Z(t-1), Z(t))."""

    def confidence(self, t: int | None = None) -> np.ndarray:
        """P(t) itself (Z(t) = I[P(t) > 0.5]); default t: the round the stop rule chose."""
        t = self.stopped_at if t is None else t
        return np.asarray(self.probs[t], np.float32)


def first_stop(d, threshold: float | None, T: int) -> int:
    """The stop rule of both algorithms: the first round t with d(t) > threshold, else T.

    Args:
        d: [d(1), d(2), ...]; threshold: R or thr in (0, 1], None = never stop early; T: rounds.
    """
    if threshold is not None:
        for t, dt in enumerate(d, 1):
            if dt > threshold:                                      # d(t) > R
                return t
    return T


def initial_mask(z0: np.ndarray, prob: np.ndarray) -> tuple[np.ndarray, str | None]:
    """Z(0), with the documented fallback for an empty coarse mask.

    If Z(0) is empty, the fine nets are pointed at the voxels whose fused coarse probability
    is at least half its maximum (where the coarse nets were most confident); if the
    probability is 0 everywhere, Z(0) stays empty and every round returns empty. No warning
    is raised: the second return value records which case happened, and the result's
    `fallback` field carries it to the caller (and to results.json).

    Args:
        z0: the fused coarse mask; prob: the fused coarse probability.
    Shapes:
        z0, prob (X, Y, Z); returns ((X, Y, Z) bool, None | "half-peak" | "empty").
    """
    if z0.any():
        return z0, None
    peak = float(prob.max())
    if peak <= 0:
        return z0, "empty"
    return prob >= 0.5 * peak, "half-peak"
