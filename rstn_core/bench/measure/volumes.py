"""Algorithm 2 on whole volumes with oracle nets: time per volume against its size (the fitted
exponent of seconds ~ voxels^a), and one full-width 512x512xL slab with our FCN-8s beside the
reference model of the authors' (`rstn_core.bench.authors_fcn`), interleaved in one run.

Both use `rstn_predict` end to end with nets wrapped in
:class:`~rstn_core.bench.measure.algorithms.Replay` (real forward passes, the label's logits
replayed), so every round crops the label's boxes: a round costs what a converged round of
trained nets costs.
"""
from __future__ import annotations

import dataclasses
import statistics
import time

import numpy as np

from rstn_core.algorithms.rstn import rstn_predict
from rstn_core.bench.authors_fcn import AuthorsFCN8s
from rstn_core.bench.measure.algorithms import oracle_label, oracle_rstn_models
from rstn_core.bench.timing import log, sync
from rstn_core.data.phantom import make_case
from rstn_core.networks.fcn8s import FCN8s

__all__ = [
    "SCALING_SHAPES",
    "SLAB_SHAPE",
    "bench_scaling",
    "bench_slab",
    "fit_exponent",
    "scaled_case",
]

#: Volumes of the scaling measurement (the standard phantom and two smaller ones).
SCALING_SHAPES = ((96, 96, 48), (128, 128, 64), (160, 160, 96))
#: The full-width slab: 512x512 slices, L = 4 (axial view; the thin coronal and sagittal
#: slices of a three-view run need L >= 32, FCN-8s' smallest input).
SLAB_SHAPE = (512, 512, 4)


def scaled_case(cfg, shape):
    """Phantom case 0 of `cfg` at another `shape`, its spacing scaled so that the anatomy
    fills the same fraction of the volume (the target's voxels grow with the volume)."""
    ph = cfg.phantom
    spacing = tuple(s * o / n for s, o, n in zip(ph.spacing, ph.shape, shape))
    return make_case(dataclasses.replace(ph, shape=tuple(shape), spacing=spacing), cfg.seed, 0)


def fit_exponent(voxels, seconds) -> float:
    r"""The exponent a of seconds = c * voxels^a, a least-squares fit in log-log.

    .. math:: \log t = a \log n + \log c
    """
    if len(voxels) < 2:
        raise ValueError(f"fit_exponent: need >= 2 sizes, got {len(voxels)}.")
    return float(np.polyfit(np.log(voxels), np.log(seconds), 1)[0])


def _summary(times: list[float]) -> dict:
    return {"median": statistics.median(times), "min": min(times), "max": max(times),
            "repeats": len(times), "times": times}


def _timed_predict(image, models, coarse, fine, T: int, device: str):
    for r in list(coarse.values()) + list(fine.values()):
        r.reset()
    sync(device)
    t0 = time.perf_counter()
    res = rstn_predict(image, models, thr=None, T=T)
    sync(device)
    return time.perf_counter() - t0, res


def bench_scaling(cfg, device: str, shapes=SCALING_SHAPES, T: int = 10, repeats: int = 3,
                  **opts) -> dict:
    """Seconds of Algorithm 2 (thr = None, T rounds, the scale's nets, oracle) per volume for
    each shape, repeats interleaved over the shapes; medians, ranges and the fitted exponent.

    Returns:
        {"T", "rows": [{"shape", "voxels", "timing", "windows_fine_per_round"}], "exponent"}.
    """
    if len(shapes) < 3:
        raise ValueError(f"bench_scaling: {len(shapes)} shapes; the exponent needs >= 3.")
    runs = []
    for shape in shapes:
        case = scaled_case(cfg, shape)
        lab = oracle_label(cfg, case)
        models, coarse, fine = oracle_rstn_models(cfg, lab, device, **opts)
        runs.append((shape, case, models, coarse, fine))
        _timed_predict(case.image, models, coarse, fine, 1, device)       # warm-up
    times = {tuple(s): [] for s, *_ in runs}
    windows = {}
    for rep in range(repeats):
        for shape, case, models, coarse, fine in runs:
            s, res = _timed_predict(case.image, models, coarse, fine, T, device)
            times[tuple(shape)].append(s)
            windows[tuple(shape)] = [int(n) for n in res.windows_run]
            log(f"scaling {shape}: {s:.2f} s (repeat {rep + 1}/{repeats})")
    rows = [{"shape": list(s), "voxels": int(np.prod(s)), "timing": _summary(times[tuple(s)]),
             "windows_fine_per_round": windows[tuple(s)]} for s, *_ in runs]
    exponent = fit_exponent([r["voxels"] for r in rows], [r["timing"]["median"] for r in rows])
    return {"T": T, "batch_size": cfg.test.batch_size, "rows": rows, "exponent": exponent}


def bench_slab(cfg, device: str, shape=SLAB_SHAPE, T: int = 1, repeats: int = 2,
               **opts) -> dict:
    """One full-width slab through Algorithm 2 (thr = None, T rounds, oracle) with our FCN-8s
    and with the authors' architecture, the same batch, threads and pipeline, interleaved.

    Args:
        cfg: a Config whose test settings (batch, views) and RSTN (g, margin) are used; the
        nets are full width (VGG16 channels, 7x7 fc6, no BN) whatever cfg.model says.
    Returns:
        {"shape", "T", "batch_size", "views", "ours", "authors" (timing, net seconds),
        "speedup", "speedup_range"}.
    """
    H, W, L = shape
    case = scaled_case(cfg, (H, W, max(L, 16)))        # the phantom needs >= 16 slices
    lab = oracle_label(cfg, case)
    z = np.flatnonzero(lab.any(axis=(0, 1)))
    z0 = int(np.clip((z[0] + z[-1] + 1 - L) // 2 if len(z) else 0, 0, lab.shape[2] - L))
    image, lab = case.image[:, :, z0:z0 + L], lab[:, :, z0:z0 + L]   # L slices on the target
    nets = {"ours": lambda: FCN8s(3, 3, width=1.0, fc_kernel=7, batch_norm=False),
            "authors": lambda: AuthorsFCN8s(3, 3, width=1.0)}
    built = {k: oracle_rstn_models(cfg, lab, device, make_net=f, **opts)
             for k, f in nets.items()}
    times = {k: [] for k in nets}
    net_s = {k: [] for k in nets}
    for rep in range(repeats):
        for k, (models, coarse, fine) in built.items():
            s, _ = _timed_predict(image, models, coarse, fine, T, device)
            times[k].append(s)
            net_s[k].append((sum(r.seconds for r in coarse.values()),
                             sum(r.seconds for r in fine.values())))
            log(f"slab {shape} {k}: {s:.1f} s (repeat {rep + 1}/{repeats})")
    out = {"shape": list(shape), "T": T, "batch_size": cfg.test.batch_size,
           "views": list(cfg.views), "label_voxels": int(lab.sum())}
    for k in nets:
        c, f = zip(*net_s[k])
        out[k] = {"timing": _summary(times[k]), "net_seconds_coarse": statistics.median(c),
                  "net_seconds_fine": statistics.median(f)}
    ratios = [a / o for a, o in zip(times["authors"], times["ours"])]
    out["speedup"] = out["authors"]["timing"]["median"] / out["ours"]["timing"]["median"]
    out["speedup_range"] = [min(ratios), max(ratios)]
    return out

