"""The papers' oracles: fine stages given the ground truth, upper bounds of the methods.

- Stepwise oracle (MICCAI 2017, "oracle bounding box"): the fine nets run once in the
  ground-truth box (+ margin) of every slice, views fused by majority vote.
- RSTN strong oracle (AAAI short paper): the ground truth Y gives both the crop and the
  saliency weights, one round, no iteration: P = mean_v f_v(Crop[X ⊙ g(Y); Y]).
- RSTN weak oracle: the ground-truth box in every round, the weights from the previous
  prediction, iterated until convergence:
      P(t) = mean_v f_v(Crop[X ⊙ g(P(t-1)); Y]),   stop when DSC(Z(t-1), Z(t)) > thr.
Paper (NIH, 4 folds): strong 91.42 %, weak 86.37 %.
"""
from __future__ import annotations

import numpy as np

from rstn_core.algorithms.rounds import first_stop
from rstn_core.algorithms.rstn import RSTNModels, coarse_round, fine_round
from rstn_core.algorithms.stepwise import StepwiseNets
from rstn_core.engine.inference import fine_probability
from rstn_core.fusion import majority_vote
from rstn_core.metrics import dsc
from rstn_core.views import window

__all__ = ["stepwise_oracle", "rstn_strong_oracle", "rstn_weak_oracle", "ORACLES"]

ORACLES = ("strong", "weak")


def _windowed(image, hu: bool) -> np.ndarray:
    return window(image) if hu else np.asarray(image, np.float32)


def stepwise_oracle(image: np.ndarray, label: np.ndarray, nets: StepwiseNets,
                    hu: bool = True) -> np.ndarray:
    """MICCAI's oracle: Z = majority_v I[f_v(r(X, Y); θF) > 0.5], the box from the label.

    Shapes: image, label (X, Y, Z); returns (X, Y, Z) bool.
    """
    x = _windowed(image, hu)
    gt = np.asarray(label, np.float32)
    return majority_vote([fine_probability(nets.fine[v], x, gt, v, nets.margin, nets.zoom,
                                           nets.batch_size, nets.device, amp=nets.amp,
                                           channels_last=nets.channels_last)[0] >= 0.5
                          for v in nets.views])


def rstn_strong_oracle(image: np.ndarray, label: np.ndarray, models: RSTNModels,
                       hu: bool = True) -> np.ndarray:
    """Strong oracle: Z = I[mean_v f_v(Crop[X ⊙ g(Y); Y]) > 0.5], one round.

    Shapes: image, label (X, Y, Z); returns (X, Y, Z) bool.
    """
    p, _ = fine_round(_windowed(image, hu), models, np.asarray(label, np.float32))
    return p > 0.5


def rstn_weak_oracle(image: np.ndarray, label: np.ndarray, models: RSTNModels,
                     thr: float | None = 0.99, T: int = 10, hu: bool = True,
                     p0: np.ndarray | None = None) -> tuple[np.ndarray, int]:
    """Weak oracle: the ground-truth box in every round, weights from the previous prediction,
    P(t) = mean_v f_v(Crop[X ⊙ g(P(t-1)); Y]), iterated until DSC(Z(t-1), Z(t)) > thr or T.

    Args:
        p0: P(0) when already computed (Algorithm 2's coarse round), else recomputed.
    Shapes:
        image, label (X, Y, Z); returns ((X, Y, Z) bool final mask, rounds run).
    """
    x = _windowed(image, hu)
    gt = np.asarray(label, np.float32)
    p = coarse_round(x, models)[0] if p0 is None else np.asarray(p0, np.float32)
    z, d = p > 0.5, []
    for t in range(1, T + 1):
        p, _ = fine_round(x, models, p, boxes_from=gt)               # crop: Y; weights: P(t-1)
        z_t = p > 0.5
        d.append(dsc(z, z_t))
        z = z_t
        if first_stop(d, thr, T) == t:
            break
    return z, len(d)
