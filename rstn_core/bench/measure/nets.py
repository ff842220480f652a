"""FCN-8s inference speed: throughput at the scale's size, the papers' full-width net, and
batched vs one-window-at-a-time `coarse_probability` (measurements 1 and 3)."""
from __future__ import annotations

import copy
import statistics
import time

import numpy as np
import torch

from rstn_core.bench.authors_fcn import AuthorsFCN8s
from rstn_core.bench.flops import authors_fcn8s_flops, fcn8s_flops, rate
from rstn_core.bench.timing import first_call_seconds, sync, time_call
from rstn_core.engine.device import autocast, is_cuda
from rstn_core.engine.inference import coarse_probability, prepare_net
from rstn_core.networks.build import build_net
from rstn_core.networks.fcn8s import FCN8s
from rstn_core.views import to_view, window

__all__ = [
    "BATCHES",
    "FULL_WIDTH_BATCHES",
    "FULL_WIDTH_SIZES",
    "bench_batched",
    "bench_cpu_options",
    "bench_forward",
    "bench_full_width",
    "randomise_scores",
]

BATCHES = (1, 8, 32)                 # forward-pass batch sizes of measurement 1
FULL_WIDTH_SIZES = (96, 512)         # full-width micro-benchmark; 512 is skipped by --quick
FULL_WIDTH_BATCHES = {96: (1, 8), 512: (1,)}   # the same batch for both nets


def _input(x: torch.Tensor, device: str, channels_last: bool) -> torch.Tensor:
    x = x.to(device)
    if channels_last and is_cuda(device):
        x = x.contiguous(memory_format=torch.channels_last)
    return x


def randomise_scores(net, seed: int = 0):
    """Random score layers: an untrained FCN8s starts at logit 0 everywhere (p = 0.5), which
    would make any comparison of two inference paths trivially equal. Returns `net`."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in (net.score_fr, net.score_pool4, net.score_pool3):
            w = torch.randn(m.weight.shape, generator=g) / m.weight[0].numel() ** 0.5
            m.weight.copy_(w.to(m.weight.device))
    return net


def _forward_fn(run, x, device):
    def fn():
        with torch.inference_mode(), autocast(device):
            run(x)
    return fn


def bench_forward(cfg, device: str, size: tuple[int, int], batches=BATCHES, repeats=5,
                  warmup=1, budget_s=None, peak=None, compile: bool = False,
                  channels_last: bool = False) -> dict:
    """Inference slices/s of the scale's FCN-8s (`build_net(cfg)`) on (B, 3, H, W) windows.

    Args:
        cfg: the scale's Config; size: (H, W); batches: batch sizes B; repeats, warmup,
        budget_s: as `time_call`; peak: FLOP/s for the 'of peak' fraction;
        compile, channels_last: the inference speed options.
    Returns:
        {"size", "width", "fc_kernel", "batch_norm", "rows": one dict per batch size}.
    """
    net = build_net(cfg).eval()
    run = prepare_net(net, device, channels_last, compile)
    h, w = size
    m = cfg.model
    rows = []
    for b in batches:
        x = _input(torch.rand(b, 3, h, w, generator=torch.Generator().manual_seed(b)),
                   device, channels_last)
        fn = _forward_fn(run, x, device)
        first = first_call_seconds(fn, device) if compile else None
        t = time_call(fn, device, repeats, warmup, budget_s)
        flops = fcn8s_flops(h, w, b, m.width, m.fc_kernel, m.batch_norm)
        achieved, frac = rate(flops, t["median"], peak)
        rows.append({"batch": b, "seconds": t["median"], "slices_per_s": b / t["median"],
                     "seconds_per_slice": t["median"] / b, "flops": flops,
                     "flops_per_slice": flops / b, "flop_per_s": achieved, "peak_fraction": frac,
                     "first_call_seconds": first, "timing": t})
    return {"size": [h, w], "width": m.width, "fc_kernel": m.fc_kernel,
            "batch_norm": m.batch_norm, "rows": rows}


def _interleaved(fns: dict, device: str, repeats: int, warmup: int) -> dict:
    """Median, range and all times of each fn in `fns`, the repeats interleaved (a, b, a, b,
    ...) so that a change of the machine's load hits every variant alike."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times = {k: [] for k in fns}
    for _ in range(max(1, repeats)):
        for k, fn in fns.items():
            sync(device)
            t0 = time.perf_counter()
            fn()
            sync(device)
            times[k].append(time.perf_counter() - t0)
    return {k: {"median": statistics.median(t), "min": min(t), "max": max(t),
                "repeats": len(t), "times": t} for k, t in times.items()}


def bench_full_width(device: str, sizes=FULL_WIDTH_SIZES, batches=FULL_WIDTH_BATCHES,
                     repeats=3, warmup=1, budget_s=None, peak=None, compile: bool = False,
                     channels_last: bool = False) -> list[dict]:
    """The papers' FCN-8s at full width (VGG16 channels, 7x7 fc6, no BN) and the reference
    model of the authors' (`AuthorsFCN8s`: pad 100, ceil pools, crops 5/9/31), both measured
    here: the same input, batch and threads, repeats interleaved.

    Args:
        sizes: square input sizes; batches: {size: batch sizes} (default: 1 and 8 at 96,
        1 at 512); repeats, warmup: per net; budget_s: unused (kept for the signature);
        peak: FLOP/s for 'of peak'.
    Returns:
        One dict per (size, batch): ours and the authors' seconds per slice (median, range),
        FLOPs per slice, FLOP/s, the speed-up.
    """
    torch.manual_seed(0)
    ours = prepare_net(FCN8s(3, 3, width=1.0, fc_kernel=7, batch_norm=False).to(device),
                       device, channels_last, compile)
    theirs = prepare_net(AuthorsFCN8s(3, 3, width=1.0).to(device), device, channels_last,
                         compile)
    out = []
    for s in sizes:
        for batch in batches.get(s, (1,)):
            x = _input(torch.rand(batch, 3, s, s, generator=torch.Generator().manual_seed(s)),
                       device, channels_last)
            t = _interleaved({"ours": _forward_fn(ours, x, device),
                              "authors": _forward_fn(theirs, x, device)}, device, repeats,
                             warmup)
            flops, a_flops = fcn8s_flops(s, s, batch), authors_fcn8s_flops(s, s) * batch
            row = {"size": s, "batch": batch, "flops_per_slice": flops / batch,
                   "authors_flops_per_slice": a_flops / batch,
                   "speedup": t["authors"]["median"] / t["ours"]["median"],
                   "speedup_range": [min(a / o for a, o in zip(t["authors"]["times"],
                                                               t["ours"]["times"])),
                                     max(a / o for a, o in zip(t["authors"]["times"],
                                                               t["ours"]["times"]))]}
            for k, f in (("", flops), ("authors_", a_flops)):
                tk = t["authors" if k else "ours"]
                achieved, frac = rate(f, tk["median"], peak)
                row.update({f"{k}seconds": tk["median"],
                            f"{k}seconds_per_slice": tk["median"] / batch,
                            f"{k}seconds_per_slice_range": [tk["min"] / batch,
                                                            tk["max"] / batch],
                            f"{k}flop_per_s": achieved, f"{k}peak_fraction": frac,
                            f"{k}timing": tk})
            out.append(row)
    return out


def bench_cpu_options(cfg, device: str, size: tuple[int, int], batch: int = 16,
                      repeats: int = 5, warmup: int = 1) -> dict:
    """The scale's FCN-8s forward pass with each inference option, interleaved: as built
    (BatchNorm separate), BatchNorm folded (`prepare_net`), folded + channels-last, folded +
    bf16 autocast; seconds and max |Δp| against the first.

    Returns:
        {"size", "batch", "rows": [{"option", "timing", "speedup", "max_abs_diff"}]}.
    """
    net = randomise_scores(build_net(cfg).eval(), cfg.seed)
    folded = prepare_net(copy.deepcopy(net), device)
    cl = copy.deepcopy(folded).to(memory_format=torch.channels_last)
    h, w = size
    x = torch.rand(batch, 3, h, w, generator=torch.Generator().manual_seed(1)).to(device)
    x_cl = x.contiguous(memory_format=torch.channels_last)

    def run(m, xi, bf16=False):
        def fn():
            with torch.inference_mode(), torch.autocast(torch.device(device).type,
                                                        dtype=torch.bfloat16, enabled=bf16):
                return torch.sigmoid(m(xi).float())
        return fn

    fns = {"as built (BN separate)": run(net, x), "BN folded": run(folded, x),
           "BN folded + channels-last": run(cl, x_cl),
           "BN folded + bf16 autocast": run(folded, x, True)}
    t = _interleaved(fns, device, repeats, warmup)
    ref = fns["as built (BN separate)"]()
    base = t["as built (BN separate)"]["median"]
    rows = [{"option": k, "timing": t[k], "speedup": base / t[k]["median"],
             "max_abs_diff": float((fn() - ref).abs().max())} for k, fn in fns.items()]
    return {"size": [h, w], "batch": batch, "rows": rows}


def bench_batched(cfg, case, device: str, view: str = "axial", batch_sizes=(1, 32),
                  repeats=1, compile: bool = False, channels_last: bool = False) -> dict:
    """`coarse_probability` of one view with batch 1 (the papers' code) and batch 32: the
    same maths, so the probabilities must agree; seconds of each and the speed-up.

    Returns:
        {"view", "windows", "slice", "rows", "seconds_one_at_a_time", "seconds_batched",
        "speedup", "max_abs_diff", "atol", "allclose", "prob_std"}.
    """
    net = randomise_scores(build_net(cfg).eval(), cfg.seed)
    run = prepare_net(net, device, channels_last, compile)
    vol = window(case.image)
    vol_v = to_view(vol, view)
    probs, rows = {}, []
    with torch.inference_mode():                                         # warm-up each shape
        for b in batch_sizes:
            run(torch.zeros(min(b, len(vol_v)), 3, *vol_v.shape[1:], device=device))
    for b in batch_sizes:
        def fn(b=b):
            probs[b] = coarse_probability(run, vol, view, batch_size=b, device=device,
                                          channels_last=channels_last)
        t = time_call(fn, device, repeats=repeats, warmup=0)
        rows.append({"batch": b, "seconds": t["median"], "timing": t})
    a, b = probs[batch_sizes[0]], probs[batch_sizes[-1]]
    diff = float(np.abs(a.astype(np.float64) - b).max())
    atol = 1e-5 if device == "cpu" else 2e-2          # bf16 autocast on CUDA
    return {"view": view, "windows": int(len(vol_v)), "slice": list(vol_v.shape[1:]),
            "rows": rows, "seconds_one_at_a_time": rows[0]["seconds"],
            "seconds_batched": rows[-1]["seconds"],
            "speedup": rows[0]["seconds"] / rows[-1]["seconds"], "max_abs_diff": diff,
            "atol": atol, "allclose": bool(np.allclose(a, b, rtol=0, atol=atol)),
            "prob_std": float(a.std())}
