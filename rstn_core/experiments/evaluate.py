"""Evaluation with labels: the rows of the papers' tables, per case.

Both methods are run for all T rounds (as the authors' scripts do) and the stopping rules are
read off afterwards: the first round t with d(t) > R (MICCAI) or d(t) > thr (CVPR Algorithm 2,
strict as well), or T if none. Given the case's voxel spacing, each stop rule's final mask also
gets the boundary metrics current benchmarks report beside DSC (the papers report DSC only):
HD95 in mm and NSD at 1 mm and 2 mm (`rstn_core.metrics.surface_metrics`).
"""
from __future__ import annotations

import numpy as np

from rstn_core.algorithms.oracles import rstn_strong_oracle, rstn_weak_oracle, stepwise_oracle
from rstn_core.algorithms.rstn import RSTNModels, rstn_predict
from rstn_core.algorithms.stepwise import StepwiseNets, fixed_point_predict
from rstn_core.fusion import keep_large_components, majority_vote
from rstn_core.metrics import dsc, surface_metrics

__all__ = ["STOP_THRESHOLDS", "read_off", "add_surface", "evaluate_stepwise_case",
           "evaluate_rstn_case"]

STOP_THRESHOLDS = (0.90, 0.95, 0.99)


def read_off(after: list, d: list, thresholds=STOP_THRESHOLDS, strict: bool = True) -> dict:
    """Per threshold R: the first t with d(t) > R (strict: both papers) or >= R, else T;
    returns {f"{R:.2f}": {"dsc": after[t-1], "iterations": t}} plus "best" of all rounds.

    Args:
        after: DSC of Z(1..T) against the label; d: [d(1), ..., d(T)].
    """
    T = len(after)
    out = {}
    for R in thresholds:
        hits = [t for t, dt in enumerate(d, 1) if (dt > R if strict else dt >= R)]
        t = hits[0] if hits else T
        out[f"{R:.2f}"] = {"dsc": after[t - 1], "iterations": t}
    best = int(np.argmax(after))
    out["best"] = {"dsc": after[best], "iterations": best + 1}
    return out


def add_surface(stop: dict, masks: list, label: np.ndarray, spacing) -> dict:
    """Add ``hd95``, ``nsd_1mm`` and ``nsd_2mm`` of Z(t) to each stop rule's entry of
    `read_off` (each round's metrics computed once); returns `stop`.

    Args:
        stop: read_off's dict; masks: [Z(0), ..., Z(T)]; label: the binary target;
        spacing: the case's voxel size in mm along each axis.
    """
    done = {}
    for entry in stop.values():
        t = entry["iterations"]
        if t not in done:
            done[t] = surface_metrics(masks[t], label, spacing)
        entry.update(done[t])
    return stop


def _rows(res, label, raw_coarse, strict: bool, stop_key: str, spacing=None) -> dict:
    """The rows both methods share: coarse per view and fused, every round, the stop rules
    (with their surface metrics when `spacing` is given), the authors' large-components
    post-processing on both stages."""
    after = [dsc(m, label) for m in res.masks[1:]]
    stop = read_off(after, res.d, strict=strict)
    if spacing is not None:
        add_surface(stop, res.masks, label, spacing)
    return {
        "coarse_views": {v: dsc(p >= 0.5, label) for v, p in res.view_probs.items()},
        "coarse": dsc(raw_coarse, label),
        "coarse_components": dsc(keep_large_components(raw_coarse), label),
        "after": after,
        "d": res.d,
        "stop": stop,
        "fine_components": dsc(keep_large_components(res.masks[stop[stop_key]["iterations"]]),
                               label),
        "fallback": res.fallback,
        "windows_run": res.windows_run,
    }


def evaluate_stepwise_case(image: np.ndarray, label: np.ndarray, nets: StepwiseNets,
                           T: int = 10, spacing=None) -> tuple:
    """All rows of the MICCAI table for one case (Algorithm 1 for all T rounds, the stop
    rules read off, the oracle box); returns (row dict, FixedPointResult).

    spacing: the case's voxel size in mm; given, each stop rule also gets HD95 and NSD."""
    res = fixed_point_predict(image, nets, R=None, T=T)
    label = label.astype(bool)
    raw_coarse = majority_vote([p >= 0.5 for p in res.view_probs.values()])
    row = _rows(res, label, raw_coarse, strict=True, stop_key="0.95", spacing=spacing)
    row["oracle"] = dsc(stepwise_oracle(image, label, nets), label)     # GT box per slice
    return row, res


def evaluate_rstn_case(image: np.ndarray, label: np.ndarray, models: RSTNModels, T: int = 10,
                       thr: float = 0.99, spacing=None) -> tuple:
    """All rows of the CVPR tables for one case (Algorithm 2 for all T rounds, the stop rules
    read off, the strong and weak oracles of the AAAI paper); returns (row, RSTNResult).

    spacing: the case's voxel size in mm; given, each stop rule also gets HD95 and NSD."""
    res = rstn_predict(image, models, thr=None, T=T)
    label = label.astype(bool)
    raw_coarse = np.mean(list(res.view_probs.values()), 0) > 0.5
    row = _rows(res, label, raw_coarse, strict=True, stop_key="0.99", spacing=spacing)
    row["oracle"] = dsc(rstn_strong_oracle(image, label, models), label)
    weak, rounds = rstn_weak_oracle(image, label, models, thr=thr, T=T, p0=res.probs[0])
    row["oracle_weak"] = dsc(weak, label)
    row["oracle_weak_rounds"] = rounds
    return row, res
