"""Benchmarks: how fast the nets and the two algorithms run, and how much of the machine they use.

    rstn bench --scale smoke --quick --out runs/bench/smoke_cpu.json
    rstn bench --scale standard --device cpu --out runs/bench/standard_cpu.json
    rstn bench --scale paper --device cuda --out runs/bench/paper_cuda.json
    rstn bench --render runs/bench/standard_cpu.json runs/bench/paper_cuda.json \\
               --markdown book/performance_generated.md

(`python -m rstn_core.bench ...` takes the same arguments.) Five measurements, each on the
nets and slice sizes of the scale's `Config`; benchmarks/README.md says what every number means:

1. ``forward``: FCN-8s inference, slices/s at batch 1, 8, 32 on the scale's axial slices;
   ``full_width``: the papers' FCN-8s (width 1, 7x7 fc6, no BN), batch of 8 at 96x96 and
   512x512, seconds per slice beside the authors' port (0.45 s and 2.3 s on a 2-core CPU).
2. ``algorithms``: one phantom volume through Algorithm 1 (`stepwise.fixed_point_predict`,
   R=None) and Algorithm 2 (`rstn.rstn_predict`, thr=None), T rounds, with *oracle* nets.
3. ``batched``: `inference.coarse_probability` one window at a time vs 32 at a time.
4. ``training``: RSTN training iterations/s and peak memory for T = 1..5 (one fresh
   subprocess per T, so each peak is its own).
5. FLOPs (`torch.utils.flop_counter`, 2 x multiply-adds of convolutions and matmuls) per
   forward / iteration, achieved FLOP/s, and the fraction of the device's peak.

Timings are wall-clock medians after warm-up (`torch.cuda.synchronize` on CUDA). Results are
written atomically as JSON (`--out`); the tables are printed and, with `--markdown`, written as
the book's generated Performance tables.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["bench_main", "run_benchmark", "count_flops", "fcn8s_flops", "authors_fcn8s_flops",
           "cpu_peak_flops", "cuda_peak_flops", "time_call", "bench_forward", "bench_full_width",
           "bench_algorithms", "bench_batched", "bench_training", "render_result",
           "render_markdown", "AUTHORS_CPU_SECONDS", "PUBLISHED"]

SCHEMA = 1
BATCHES = (1, 8, 32)                 # forward-pass batch sizes of measurement 1
FULL_WIDTH_SIZES = (96, 512)         # full-width micro-benchmark; 512 is skipped by --quick
FULL_WIDTH_BATCH = 8
TRAIN_T = (1, 2, 3, 4, 5)            # CVPR: T up to 5 in training
QUICK_TRAIN_T = (1, 2)
WORKER_MARK = "RSTN_BENCH_WORKER "

# papers.md, "What the public reference code does": the authors' PyTorch port on a 2-core CPU
# (torch 2.13), one FCN-8s forward pass (batch 1, with the 100-pixel pad) per input size.
AUTHORS_CPU_SECONDS = {96: 0.45, 512: 2.3}
AUTHORS_CPU_RSTN_ITERATION_96 = 4.5   # s per RSTN training iteration at 96x96 (batch 1)
# papers.md: published GPU times per volume (512 x 512 x L, NIH).
PUBLISHED = {
    "stepwise": {"gpu": "Titan X (MICCAI 2017)", "coarse_s": 20.0, "per_round_s": 20.0,
                 "note": "20 s coarse + 20 s per round; ~3 min per volume"},
    "rstn": {"gpu": "Titan X Pascal (CVPR 2018)", "coarse_s": 30.0, "fine_total_s": 40.0,
             "note": "30 s coarse + 40 s coarse-to-fine (thr 0.99: 5.22 rounds on average); "
                     "0.2 min per round; ~1.3 min per case"},
}

# Approximate dense bf16 tensor-core peaks (vendor data sheets, no sparsity); the nets run
# under bf16 autocast on CUDA. First matching substring of the device name wins.
CUDA_PEAKS = [("GH200", 989e12), ("H200", 989e12), ("H100 PCIe", 756e12), ("H100", 989e12),
              ("A100", 312e12), ("L40S", 362e12), ("L4", 121e12), ("A10", 125e12)]


# ---------------------------------------------------------------------------------------------
# FLOPs and peaks
# ---------------------------------------------------------------------------------------------
def count_flops(fn, *args, **kwargs) -> int:
    """FLOPs of one call ``fn(*args)``, as `torch.utils.flop_counter.FlopCounterMode` counts:
    2 x multiply-adds of convolutions and matrix products (their backward too, when the call
    runs one); pooling, interpolation, activations and biases are not counted."""
    from torch.utils.flop_counter import FlopCounterMode
    with FlopCounterMode(display=False) as counter:
        fn(*args, **kwargs)
    return int(counter.get_total_flops())


def _meta_fcn8s(width=1.0, fc_kernel=7, batch_norm=False):
    from rstn_core.networks.fcn8s import FCN8s
    with torch.device("meta"):
        return FCN8s(3, 3, width=width, fc_kernel=fc_kernel, batch_norm=batch_norm).eval()


def fcn8s_flops(h: int, w: int, batch: int = 1, width: float = 1.0, fc_kernel: int = 7,
                batch_norm: bool = False) -> int:
    """FLOPs of one `FCN8s` forward pass of a (batch, 3, h, w) input (on the meta device: no
    memory, no arithmetic). Width 1 at 512x512: ~2.2e11 (VGG16's convs ~1.6e11 + fc6/fc7)."""
    net = _meta_fcn8s(width, fc_kernel, batch_norm)
    x = torch.empty(batch, 3, h, w, device="meta")
    return count_flops(net, x)


def authors_fcn8s_flops(h: int, w: int) -> int:
    """FLOPs of one forward pass of the authors' (Caffe-style) full-width FCN-8s at h x w.

    Their net pads conv1_1 by 100, pools in ceil mode, and runs an un-padded 7x7 fc6 (then
    crops with offsets 5/9/31); the frozen bilinear deconvolutions (3 -> 3 channels) are left
    out, as are the up-sampling steps of our count. This is what their 0.45 s / 2.3 s bought.
    """
    net = _meta_fcn8s()
    x = torch.empty(1, 3, h + 200, w + 200, device="meta")            # pad 100 on each side

    def forward(x):
        feats = []
        for layer in net.features:
            if isinstance(layer, nn.MaxPool2d):
                x = F.max_pool2d(x, 2, 2, ceil_mode=True)            # Caffe pools round up
                feats.append(x)
            else:
                x = layer(x)
        x = F.relu(F.conv2d(x, net.fc6.weight, net.fc6.bias))         # 7x7 fc6, no padding
        x = F.relu(net.fc7(x))
        net.score_fr(x), net.score_pool4(feats[3]), net.score_pool3(feats[2])

    return count_flops(forward, x)


def _cpuinfo_fields(text: str) -> dict:
    block = text.strip().split("\n\n")[0] if text.strip() else ""
    out = {}
    for line in block.splitlines():
        if ":" in line:
            k, v = line.split(":", 1)
            out.setdefault(k.strip(), v.strip())
    return out


def _available_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _max_ghz_sysfs() -> float | None:
    p = Path("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq")   # kHz
    try:
        return int(p.read_text().strip()) / 1e6
    except (OSError, ValueError):
        return None


def cpu_peak_flops(cpuinfo: str | None = None, cpus: int | None = None,
                   ghz: float | None = None) -> tuple[float | None, dict]:
    """Estimated fp32 peak FLOP/s of the CPU: cores x GHz x FLOP per cycle per core.

    FLOP per cycle = SIMD lanes of fp32 x 2 (a fused multiply-add is 2 FLOP) x FMA units:
    AVX-512 on Intel 16 x 2 x 2 = 64, on AMD Zen 4 (family 25, 512-bit ops on 256-bit units)
    32, on Zen 5 (family 26) 64; AVX2 + FMA 8 x 2 x 2 = 32; AVX 16; otherwise (SSE) 8.
    Cores = usable logical CPUs / threads per core (siblings / cpu cores in /proc/cpuinfo);
    GHz = the maximum clock from sysfs if known, else /proc/cpuinfo's current "cpu MHz".
    An estimate (turbo, AVX clock offsets and unit counts vary by model): override it with
    ``--peak-flops``. Returns (peak or None when unknown, the inputs of the formula).
    """
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            cpuinfo = ""
    f = _cpuinfo_fields(cpuinfo)
    flags = set(f.get("flags", "").split())
    vendor = f.get("vendor_id", "")
    family = int(f["cpu family"]) if f.get("cpu family", "").isdigit() else None
    if "avx512f" in flags:
        isa = "AVX-512"
        per_cycle = 32 if (vendor == "AuthenticAMD" and (family or 0) < 26) else 64
    elif "avx2" in flags and "fma" in flags:
        isa, per_cycle = "AVX2+FMA", 32
    elif "avx" in flags:
        isa, per_cycle = "AVX", 16
    else:
        isa, per_cycle = "SSE", 8
    try:
        tpc = max(1, int(f.get("siblings", 0)) // max(1, int(f.get("cpu cores", 0))))
    except ValueError:
        tpc = 1
    if cpus is None:
        cpus = max(1, _available_cpus() // tpc)
    ghz_source = "given"
    if ghz is None:
        ghz, ghz_source = _max_ghz_sysfs(), "sysfs cpuinfo_max_freq"
        if ghz is None:
            try:
                ghz, ghz_source = float(f["cpu MHz"]) / 1000, "/proc/cpuinfo cpu MHz (current)"
            except (KeyError, ValueError):
                ghz, ghz_source = None, "unknown"
    info = {"model": f.get("model name", platform.processor() or "unknown CPU"), "isa": isa,
            "vendor": vendor, "cores": cpus, "threads_per_core": tpc, "ghz": ghz,
            "ghz_source": ghz_source, "flop_per_cycle_per_core": per_cycle,
            "formula": "cores x GHz x FLOP/cycle (fp32 FMA lanes x 2 x FMA units)"}
    if ghz is None:
        return None, info
    return cpus * ghz * 1e9 * per_cycle, info


def cuda_peak_flops(name: str) -> tuple[float | None, dict]:
    """Approximate dense bf16 peak of a known GPU (`CUDA_PEAKS`), or None."""
    for key, peak in CUDA_PEAKS:
        if key.lower() in name.lower():
            return peak, {"model": name, "table_entry": key, "precision": "bf16 dense",
                          "formula": "vendor data sheet, approximate"}
    return None, {"model": name, "precision": "bf16 dense",
                  "formula": "unknown GPU; pass --peak-flops"}


def _peak(device: str, override: float | None) -> tuple[float | None, dict]:
    if device == "cuda":
        peak, info = cuda_peak_flops(torch.cuda.get_device_name())
    else:
        peak, info = cpu_peak_flops()
    if override is not None:
        info = dict(info, formula=f"--peak-flops {override:g}", estimate=peak)
        peak = override
    return peak, info


# ---------------------------------------------------------------------------------------------
# Timing
# ---------------------------------------------------------------------------------------------
def _sync(device: str):
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def time_call(fn, device: str = "cpu", repeats: int = 5, warmup: int = 1,
              budget_s: float | None = None) -> dict:
    """Median wall-clock seconds of `fn()` over `repeats` runs after `warmup` runs.

    Stops early once `budget_s` seconds of timed runs are spent (at least one run is timed).
    Returns {"median", "min", "max", "repeats", "times"}.
    """
    for _ in range(warmup):
        fn()
    _sync(device)
    times, start = [], time.perf_counter()
    while len(times) < max(1, repeats):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
        if budget_s is not None and time.perf_counter() - start > budget_s:
            break
    return {"median": statistics.median(times), "min": min(times), "max": max(times),
            "repeats": len(times), "times": times}


def _rate(flops, seconds, peak):
    achieved = flops / seconds if seconds > 0 else None
    return achieved, (achieved / peak if (achieved is not None and peak) else None)


def _randomise_scores(net, seed: int = 0):
    """Random score layers: an untrained FCN8s starts at logit 0 everywhere (p = 0.5), which
    would make any comparison of two inference paths trivially equal."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in (net.score_fr, net.score_pool4, net.score_pool3):
            w = torch.randn(m.weight.shape, generator=g) / m.weight[0].numel() ** 0.5
            m.weight.copy_(w.to(m.weight.device))
    return net


# ---------------------------------------------------------------------------------------------
# 1. FCN-8s forward throughput
# ---------------------------------------------------------------------------------------------
def _forward_fn(net, x, device):
    from rstn_core.engine.inference import _input, prepare_net
    from rstn_core.engine.train import autocast
    run = prepare_net(net, device)               # compiled / channels-last when asked
    x = _input(x, device)

    def fn():
        with torch.inference_mode(), autocast(device):
            run(x)
    return fn


def _first_call_seconds(fn, device) -> float:
    """Seconds of one call (with --compile: the compilation for this input shape)."""
    t0 = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - t0


def _compiling() -> bool:
    from rstn_core.engine.inference import _OPTIONS
    return _OPTIONS.get()["compile"]


def bench_forward(cfg, device: str, size: tuple[int, int], batches=BATCHES, repeats=5,
                  warmup=1, budget_s=None, peak=None) -> dict:
    """Inference slices/s of the scale's FCN-8s (`build_net(cfg)`) on (B, 3, H, W) windows."""
    from rstn_core.algorithms.stepwise import build_net
    net = build_net(cfg).eval()
    h, w = size
    m = cfg.model
    rows = []
    for b in batches:
        x = torch.rand(b, 3, h, w, generator=torch.Generator().manual_seed(b)).to(device)
        fn = _forward_fn(net, x, device)
        first = _first_call_seconds(fn, device) if _compiling() else None
        t = time_call(fn, device, repeats, warmup, budget_s)
        flops = fcn8s_flops(h, w, b, m.width, m.fc_kernel, m.batch_norm)
        achieved, frac = _rate(flops, t["median"], peak)
        rows.append({"batch": b, "seconds": t["median"], "slices_per_s": b / t["median"],
                     "seconds_per_slice": t["median"] / b, "flops": flops,
                     "flops_per_slice": flops / b, "flop_per_s": achieved, "peak_fraction": frac,
                     "first_call_seconds": first, "timing": t})
    return {"size": [h, w], "width": m.width, "fc_kernel": m.fc_kernel,
            "batch_norm": m.batch_norm, "rows": rows}


def bench_full_width(device: str, sizes=FULL_WIDTH_SIZES, batch=FULL_WIDTH_BATCH, repeats=3,
                     warmup=1, budget_s=None, peak=None) -> list[dict]:
    """The papers' FCN-8s (width 1, 7x7 fc6, no BN, random weights): seconds per slice in a
    batch of `batch` square slices, beside the authors' port on a 2-core CPU (batch 1)."""
    from rstn_core.networks.fcn8s import FCN8s
    torch.manual_seed(0)
    net = FCN8s(3, 3, width=1.0, fc_kernel=7, batch_norm=False).to(device).eval()
    out = []
    for s in sizes:
        x = torch.rand(batch, 3, s, s, generator=torch.Generator().manual_seed(s)).to(device)
        t = time_call(_forward_fn(net, x, device), device, repeats, warmup, budget_s)
        flops = fcn8s_flops(s, s, batch)
        achieved, frac = _rate(flops, t["median"], peak)
        theirs = AUTHORS_CPU_SECONDS.get(s)
        a_flops = authors_fcn8s_flops(s, s)
        out.append({"size": s, "batch": batch, "seconds": t["median"],
                    "seconds_per_slice": t["median"] / batch, "flops_per_slice": flops / batch,
                    "flop_per_s": achieved, "peak_fraction": frac,
                    "authors_seconds_per_slice": theirs, "authors_flops_per_slice": a_flops,
                    "authors_flop_per_s": a_flops / theirs if theirs else None, "timing": t})
    del net
    return out


# ---------------------------------------------------------------------------------------------
# 2. Algorithm 1 and 2 on one volume, with oracle nets
# ---------------------------------------------------------------------------------------------
class _Replay(nn.Module):
    """Runs the real net on its input (so the cost is the real one), then returns logits
    replayed from a precomputed sequence: +20 on the label, -20 elsewhere.

    The sequence lists, in the order `inference.coarse_probability` / `fine_probability`
    visit them, the label of every batch that net will see when the reference map is the
    label itself. A call whose output shape does not match is counted in `mismatches` and
    returns the net's own logits (the benchmark then reports ``oracle_ok: false``).
    """

    def __init__(self, net: nn.Module, outputs: list, device: str):
        super().__init__()
        self.net = net
        self.outputs = outputs
        self.device_ = device
        self.calls = self.mismatches = 0
        self.seconds = 0.0
        object.__setattr__(self, "_rstn_compiled", self)   # inference.prepare_net: as is

    def reset(self):
        self.calls = self.mismatches = 0
        self.seconds = 0.0

    def forward(self, x):
        from rstn_core.engine.inference import prepare_net
        t0 = time.perf_counter()
        out = prepare_net(self.net, self.device_)(x)                 # --compile: compiled
        _sync(self.device_)
        self.seconds += time.perf_counter() - t0
        want = self.outputs[self.calls % len(self.outputs)]
        self.calls += 1
        if tuple(want.shape) != tuple(out.shape):
            self.mismatches += 1
            return out
        return want.to(out.dtype) * 40 - 20                          # label -> logits +-20


def _coarse_sequence(label: np.ndarray, view: str, batch_size: int, device) -> list:
    """The label windows of each batch `coarse_probability` runs, uint8 on `device`."""
    from rstn_core.engine.inference import window_index
    from rstn_core.views import to_view
    lab_v = to_view(label, view).astype(np.uint8)
    n = len(lab_v)
    return [torch.from_numpy(np.ascontiguousarray(
        lab_v[window_index(n, np.arange(s, min(s + batch_size, n)))])).to(device)
        for s in range(0, n, batch_size)]


def _fine_sequence(label: np.ndarray, view: str, margin: int, zoom: int, batch_size: int,
                   device) -> list:
    """The label canvases of each batch `fine_probability` runs when its reference map is the
    label: boxes of the label + margin, crops on the batch's canvas, zoomed (nearest)."""
    from rstn_core.engine.batching import crop_batch
    from rstn_core.crop import bbox
    from rstn_core.engine.inference import window_index
    from rstn_core.views import to_view
    lab_v = to_view(label, view).astype(np.uint8)
    n = len(lab_v)
    idx = window_index(n, np.arange(n))
    boxes = [bbox(lab_v[i] > 0, margin) for i in idx]
    todo = [j for j in range(n) if boxes[j] is not None]
    out = []
    for s in range(0, len(todo), batch_size):
        c = np.array(todo[s:s + batch_size])
        y = torch.from_numpy(np.ascontiguousarray(lab_v[window_index(n, c)]))
        canvas, _ = crop_batch(y, [boxes[j] for j in c], min_size=-(-32 // zoom))
        if zoom > 1:
            canvas = canvas.repeat_interleave(zoom, -2).repeat_interleave(zoom, -1)
        out.append(canvas.to(device))
    return out


def _oracle_label(cfg, case) -> np.ndarray:
    from rstn_core.data import target_mask
    from rstn_core.fusion import keep_large_components
    lab = target_mask(case, cfg.target)
    if cfg.test.coarse_components:      # so that keeping the large components changes nothing
        lab = keep_large_components(lab)
    return lab


def bench_algorithms(cfg, case, device: str, T: int) -> dict:
    """Algorithm 1 (R=None) and Algorithm 2 (thr=None) on one volume, T rounds, oracle nets.

    Every net is built from the config (untrained; an untrained FCN-8s says p = 0.5
    everywhere) and wrapped in `_Replay`: it runs its real forward pass on the real input,
    then its output is replaced by the label. So Z(0) is the label, every round's boxes are
    the label's boxes + margin and Z(t) = Z(t-1): each round costs what a round of a converged
    run with trained nets costs. What is timed is the library's `fixed_point_predict` /
    `rstn_predict` call, end to end (windowing, stacking, cropping, pasting, fusion, DSC).
    """
    from rstn_core.config import scaled_px
    from rstn_core.metrics import dsc
    from rstn_core.algorithms.rstn import RSTNModels, build_rstn, rstn_predict
    from rstn_core.algorithms.stepwise import StepwiseNets, build_net, fixed_point_predict
    from rstn_core.views import to_view
    lab = _oracle_label(cfg, case)
    views = list(cfg.views)
    bs, zoom = cfg.test.batch_size, cfg.train.zoom
    sizes = {v: max(to_view(case.image, v).shape[1:]) for v in views}
    n_coarse = sum(to_view(case.image, v).shape[0] for v in views)
    out = {}

    # Algorithm 1: six FCN-8s.
    margin = scaled_px(cfg.test.margin, max(sizes.values()))       # as load_stepwise
    coarse = {v: _Replay(build_net(cfg), _coarse_sequence(lab, v, bs, device), device)
              for v in views}
    fine = {v: _Replay(build_net(cfg), _fine_sequence(lab, v, margin, zoom, bs, device), device)
            for v in views}
    nets = StepwiseNets(coarse, fine, margin=margin, zoom=zoom, batch_size=bs, device=device,
                        coarse_components=cfg.test.coarse_components)
    out["stepwise"] = _run_algorithm(
        lambda: fixed_point_predict(case.image, nets, R=None, T=T), coarse, fine, lab, T,
        n_coarse, device, dsc)
    out["stepwise"]["margin"] = margin
    del coarse, fine, nets

    # Algorithm 2: one RSTN per view (coarse + fine FCN-8s + saliency).
    models = {}
    for v in views:
        m = build_rstn(cfg, sizes[v]).to(device)
        m.coarse = _Replay(m.coarse, _coarse_sequence(lab, v, bs, device), device)
        m.fine = _Replay(m.fine, _fine_sequence(lab, v, m.margin, m.zoom, bs, device), device)
        models[v] = m
    rm = RSTNModels(models, batch_size=bs, device=device,
                    coarse_components=cfg.test.coarse_components)
    out["rstn"] = _run_algorithm(
        lambda: rstn_predict(case.image, rm, thr=None, T=T),
        {v: m.coarse for v, m in models.items()}, {v: m.fine for v, m in models.items()},
        lab, T, n_coarse, device, dsc)
    out["rstn"]["margin"] = {v: m.margin for v, m in models.items()}
    for v in out:
        out[v].update(T=T, batch_size=bs, zoom=zoom)
    return out


def _run_algorithm(call, coarse, fine, lab, T, n_coarse, device, dsc):
    nets = list(coarse.values()) + list(fine.values())
    with torch.inference_mode():                                       # warm-up: first calls
        for r in coarse.values():                                     # pay one-off set-up costs
            x = torch.zeros(1, 3, 64, 64, device=device)
            r(x)
    for r in nets:
        r.reset()
    _sync(device)
    t0 = time.perf_counter()
    res = call()
    _sync(device)
    seconds = time.perf_counter() - t0
    coarse_s = sum(r.seconds for r in coarse.values())
    fine_s = sum(r.seconds for r in fine.values())
    ok = (not any(r.mismatches for r in nets) and all(d == 1.0 for d in res.d)
          and dsc(res.final, lab) == 1.0                            # Z(t) = label throughout
          and all(r.calls == len(r.outputs) for r in coarse.values())          # one pass
          and all(r.calls == T * len(r.outputs) for r in fine.values()))       # T passes
    windows = [int(n) for n in res.windows_run]
    return {"seconds": seconds, "rounds": len(res.d), "windows_coarse": n_coarse,
            "windows_fine_per_round": windows, "windows_total": n_coarse + sum(windows),
            "net_seconds_coarse": coarse_s, "net_seconds_fine": fine_s,
            "net_seconds_fine_per_round": fine_s / max(1, len(res.d)),
            "other_seconds": seconds - coarse_s - fine_s,
            "forward_calls": sum(r.calls for r in nets),
            "oracle_ok": bool(ok), "label_voxels": int(lab.sum())}


# ---------------------------------------------------------------------------------------------
# 3. Batched vs one-window-at-a-time inference
# ---------------------------------------------------------------------------------------------
def bench_batched(cfg, case, device: str, view: str = "axial", batch_sizes=(1, 32),
                  repeats=1) -> dict:
    """`coarse_probability` of one view with batch 1 (the papers' code) and batch 32: the
    same maths, so the probabilities must agree; seconds of each and the speed-up."""
    from rstn_core.engine.inference import coarse_probability
    from rstn_core.engine.inference import prepare_net as prepare
    from rstn_core.algorithms.stepwise import build_net
    from rstn_core.views import to_view, window
    net = _randomise_scores(build_net(cfg).eval(), cfg.seed)
    vol = window(case.image)
    vol_v = to_view(vol, view)
    probs, rows = {}, []
    with torch.inference_mode():                                         # warm-up each shape
        for b in batch_sizes:
            prepare(net, device)(torch.zeros(min(b, len(vol_v)), 3, *vol_v.shape[1:],
                                             device=device))
    for b in batch_sizes:
        def fn(b=b):
            probs[b] = coarse_probability(net, vol, view, batch_size=b, device=device)
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


# ---------------------------------------------------------------------------------------------
# 4. RSTN training: iterations/s and peak memory per T (one subprocess each)
# ---------------------------------------------------------------------------------------------
def _training_batch(cfg, case, view: str = "axial") -> tuple[np.ndarray, np.ndarray]:
    """`cfg.train.batch_size` full-slice windows of `view` with the target on them."""
    from rstn_core.engine.inference import window_index
    from rstn_core.views import to_view, window
    lab = _oracle_label(cfg, case)
    vol_v = to_view(window(case.image), view)
    lab_v = to_view(lab, view)
    n = len(vol_v)
    pos = np.flatnonzero(lab_v.reshape(n, -1).any(1))
    if len(pos) == 0:
        raise ValueError(f"bench: case {case.id} has no {cfg.target!r} voxels; cannot build an "
                         "RSTN training batch.")
    centres = pos[np.linspace(0, len(pos) - 1, cfg.train.batch_size).round().astype(int)]
    idx = window_index(n, centres)
    return (np.ascontiguousarray(vol_v[idx], np.float32),
            np.ascontiguousarray(lab_v[idx], np.float32))


def _proc_status_mb(key: str) -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024                  # kB
    except (OSError, ValueError, IndexError):
        pass
    return None


def _reset_peak_rss() -> bool:
    """Reset this process's peak RSS (VmHWM) to its current RSS (Linux >= 4.0)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _rss_now_and_peak() -> tuple[float, float, str]:
    """(current RSS MB, peak RSS MB, how the peak was read).

    /proc/self/status VmHWM is the peak RSS of this process image. `ru_maxrss` is the
    fallback, but on Linux it survives execve: a child spawned by a large parent starts with
    the parent's peak, which is why the training worker reads VmHWM.
    """
    now, hwm = _proc_status_mb("VmRSS"), _proc_status_mb("VmHWM")
    if now is not None and hwm is not None:
        return now, hwm, "peak RSS (VmHWM)"
    import resource
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss       # KiB on Linux, B on macOS
    peak = kb / 2**20 if sys.platform == "darwin" else kb / 1024
    return peak, peak, "ru_maxrss"


def _train_worker(scale: str, device: str, T: int, batch_file: str, iterations: int,
                  warmup: int, budget_s: float | None, checkpointing: bool = False) -> dict:
    """One T in a fresh process: RSTN forward + backward + optimiser step, as `train_rstn`
    (with `checkpointing`: the unrolled steps recomputed in backward, as
    `train.activation_checkpointing`)."""
    from rstn_core.config import get_config
    from rstn_core.algorithms.rstn import build_rstn, joint_loss
    from rstn_core.engine.train import autocast, make_optimizer
    cfg = get_config(scale, device=device)
    data = np.load(batch_file)
    x = torch.from_numpy(data["x"]).to(device)
    y = torch.from_numpy(data["y"]).to(device)
    model = build_rstn(cfg, max(x.shape[-2:])).to(device).train()
    model.activation_checkpointing = checkpointing
    t, r = cfg.train, cfg.rstn
    groups = [{"params": model.coarse.parameters(), "lr": r.lr},
              {"params": list(model.fine.parameters()) + list(model.saliency.parameters()),
               "lr": r.lr * r.fine_lr_mult}]
    opt = make_optimizer(t.optimizer, groups, r.lr, t.momentum, t.weight_decay)
    torch.manual_seed(0)

    def step():
        with autocast(device):
            logits, probs = model(x, T=T, ref="gt", y=y)               # crop from the GT
        loss = joint_loss(logits, probs, y, t.coarse_loss)             # Σ_t λ_t L(Y, P(t))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    cuda = device == "cuda"
    if cuda:
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated() / 2**20
        torch.cuda.reset_peak_memory_stats()
    else:
        reset = _reset_peak_rss()
        base, _, kind = _rss_now_and_peak()                   # model + batch, before step 1
        if not reset:
            kind += " (not reset: includes the start-up peak)"
    timing = time_call(step, device, iterations, warmup, budget_s)
    peak = torch.cuda.max_memory_allocated() / 2**20 if cuda else _rss_now_and_peak()[1]
    # FLOPs of one more iteration, after the memory is read: under the counter's dispatch
    # mode activation checkpointing frees nothing, which would inflate the peak
    flops = count_flops(step)
    return {"T": T, "batch": int(x.shape[0]), "slice": list(x.shape[-2:]),
            "optimizer": t.optimizer, "activation_checkpointing": checkpointing,
            "seconds_per_iteration": timing["median"],
            "iterations_per_s": 1 / timing["median"], "flops_per_iteration": flops,
            "memory_kind": "torch.cuda.max_memory_allocated" if cuda else kind,
            "memory_baseline_mb": base, "memory_peak_mb": peak, "memory_delta_mb": peak - base,
            "timing": timing}


def bench_training(cfg, case, device: str, Ts=TRAIN_T, iterations=5, warmup=2,
                   budget_s=None, peak=None, threads: int | None = None,
                   timeout_s: float = 1800, checkpointing: bool = False) -> list[dict]:
    """RSTN training iterations/s and peak memory for each T, each T in a fresh subprocess
    (`python -m rstn_core.bench --train-worker`), so one T's peak does not hide the next's."""
    x, y = _training_batch(cfg, case)
    rows = []
    with tempfile.TemporaryDirectory(prefix="rstn_bench_") as tmp:
        batch_file = str(Path(tmp) / "batch.npz")
        np.savez(batch_file, x=x, y=y)
        env = dict(os.environ)
        root = str(Path(__file__).resolve().parents[1])
        env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH")
                                    else "")
        for T in Ts:
            cmd = [sys.executable, "-m", "rstn_core.bench", "--train-worker", batch_file,
                   "--scale", cfg.scale, "--device", device, "--T", str(T),
                   "--iterations", str(iterations), "--warmup", str(warmup)]
            if budget_s is not None:
                cmd += ["--budget", str(budget_s)]
            if threads:
                cmd += ["--threads", str(threads)]
            if checkpointing:
                cmd += ["--checkpointing"]
            _log(f"training T={T} (subprocess{', checkpointing' if checkpointing else ''})")
            try:
                run = subprocess.run(cmd, capture_output=True, text=True, env=env,
                                     timeout=timeout_s)
            except subprocess.TimeoutExpired:
                rows.append({"T": T, "error": f"timed out after {timeout_s:.0f} s"})
                continue
            lines = [ln for ln in run.stdout.splitlines() if ln.startswith(WORKER_MARK)]
            if run.returncode or not lines:
                tail = (run.stderr.strip().splitlines() or ["no output"])[-1]
                rows.append({"T": T, "error": f"worker exit {run.returncode}: {tail}"})
                continue
            row = json.loads(lines[-1][len(WORKER_MARK):])
            row["flop_per_s"], row["peak_fraction"] = _rate(
                row["flops_per_iteration"], row["seconds_per_iteration"], peak)
            rows.append(row)
    return rows


# ---------------------------------------------------------------------------------------------
# Tables
# ---------------------------------------------------------------------------------------------
def _f(v, fmt="{:.3g}", none="—"):
    return none if v is None else fmt.format(v)


def _pct(v):
    return "—" if v is None else f"{100 * v:.1f}%"


def _g(v):
    return "—" if v is None else f"{v / 1e9:.3g}"


def _table(header, rows) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def render_result(res: dict) -> str:
    """The markdown tables of one benchmark result (the dict `bench_main` writes as JSON)."""
    meta = res["meta"]
    peak = meta.get("peak_flops")
    opts = [name for key, name in (("compile", "torch.compile"),
                                   ("channels_last", "channels-last"),
                                   ("activation_checkpointing", "activation checkpointing"))
            if meta.get(key)]
    head = (f"### {meta['scale']} scale on {meta['device_name']} ({meta['device']})"
            + (" — quick" if meta.get("quick") else "")
            + (f" — {', '.join(opts)}" if opts else ""))
    info = meta.get("peak_info", {})
    parts = [head, "",
             f"{meta['date']}; torch {meta['torch']}, torch threads: {meta['threads']}, "
             f"load average {meta['load_before']} before / {meta['load_after']} after; "
             f"peak {_g(peak)} GFLOP/s ({info.get('formula', '')}"
             + (f": {info.get('cores')} cores x {_f(info.get('ghz'))} GHz x "
                f"{info.get('flop_per_cycle_per_core')} ({info.get('isa')})"
                if meta["device"] == "cpu" and "cores" in info else "") + ").", ""]
    fw = res.get("forward")
    if fw:
        first = any(r.get("first_call_seconds") is not None for r in fw["rows"])
        parts += [f"**FCN-8s inference** at {fw['size'][0]}×{fw['size'][1]} (width "
                  f"{fw['width']:g}, fc6 {fw['fc_kernel']}×{fw['fc_kernel']}, "
                  f"BN {'on' if fw['batch_norm'] else 'off'}):", "",
                  _table(["batch", "s per batch", "slices/s", "GFLOP per slice", "GFLOP/s",
                          "of peak"] + (["first call s (compiles)"] if first else []),
                         [[r["batch"], _f(r["seconds"]), _f(r["slices_per_s"]),
                           _g(r["flops_per_slice"]), _g(r["flop_per_s"]),
                           _pct(r["peak_fraction"])]
                          + ([_f(r.get("first_call_seconds"))] if first else [])
                          for r in fw["rows"]]), ""]
    full = res.get("full_width")
    if full:
        parts += [f"**Full-width FCN-8s** (VGG16 width, 7×7 fc6, no BN; batch of "
                  f"{full[0]['batch']}) beside the authors' port (2-core CPU, batch 1, pad 100):",
                  "",
                  _table(["input", "ours: s per slice", "authors: s per slice",
                          "ours: GFLOP per slice", "authors: GFLOP per slice",
                          "ours: GFLOP/s", "authors: GFLOP/s", "ours: of peak"],
                         [[f"{r['size']}×{r['size']}", _f(r["seconds_per_slice"]),
                           _f(r["authors_seconds_per_slice"]), _g(r["flops_per_slice"]),
                           _g(r["authors_flops_per_slice"]), _g(r["flop_per_s"]),
                           _g(r["authors_flop_per_s"]), _pct(r["peak_fraction"])]
                          for r in full]), ""]
    alg = res.get("algorithms")
    if alg:
        rows = []
        for name, label in (("stepwise", "Algorithm 1 (stepwise)"), ("rstn", "Algorithm 2 (RSTN)")):
            a = alg.get(name)
            if not a:
                continue
            rows.append([label, a["rounds"], f"{a['windows_coarse']} + "
                         f"{sum(a['windows_fine_per_round'])}", _f(a["seconds"]),
                         _f(a["net_seconds_coarse"]), _f(a["net_seconds_fine_per_round"]),
                         _f(a["other_seconds"]), "yes" if a["oracle_ok"] else "**no**",
                         PUBLISHED[name]["note"]])
        parts += [f"**One volume** ({'×'.join(map(str, meta['volume_shape']))}) through "
                  "Algorithm 1 (R = None) and 2 (thr = None), oracle nets (every round "
                  "crops the label's boxes):", "",
                  _table(["algorithm", "rounds", "windows (coarse + fine)", "total s",
                          "coarse nets s", "fine nets s per round", "other s", "oracle ok",
                          "published (GPU, 512×512×L)"], rows), ""]
    bt = res.get("batched")
    if bt:
        r1, r2 = bt["rows"][0], bt["rows"][-1]
        parts += [f"**Batched inference** (`coarse_probability`, {bt['view']} view, "
                  f"{bt['windows']} windows of {bt['slice'][0]}×{bt['slice'][1]}):", "",
                  _table([f"batch {r1['batch']}: s", f"batch {r2['batch']}: s", "speed-up",
                          "max |Δp|", "same probabilities"],
                         [[_f(r1["seconds"]), _f(r2["seconds"]), f"{bt['speedup']:.2f}×",
                           f"{bt['max_abs_diff']:.1e}", "yes" if bt["allclose"] else "**no**"]]),
                  ""]
    tr = res.get("training")
    if tr:
        rows = []
        for r in tr:
            if "error" in r:
                rows.append([r["T"]] + ["—"] * 7 + [r["error"]])
                continue
            rows.append([r["T"], r["batch"], _f(r["iterations_per_s"]),
                         _f(r["seconds_per_iteration"]), f"{r['memory_peak_mb']:.0f}",
                         f"{r['memory_delta_mb']:.0f}", _g(r["flops_per_iteration"]),
                         _pct(r.get("peak_fraction")), ""])
        ok = [r for r in tr if "error" not in r]
        sl = ok[0]["slice"] if ok else ["?", "?"]
        kind = ok[0]["memory_kind"] if ok else ""
        opt = ok[0]["optimizer"] if ok else ""
        parts += [f"**RSTN training** (forward + backward + {opt} step, full "
                  f"{sl[0]}×{sl[1]} windows, ground-truth crops; memory: {kind}; the "
                  f"authors' port: ~{AUTHORS_CPU_RSTN_ITERATION_96} s per iteration at 96×96 "
                  "on a 2-core CPU):", "",
                  _table(["T", "batch", "it/s", "s per it", "peak MB", "Δ MB", "GFLOP per it",
                          "of peak", "note"], rows), ""]
    parts.append(f"Total benchmark time {res.get('seconds_total', 0):.0f} s.")
    return "\n".join(parts)


def render_markdown(results: list[dict]) -> str:
    """The book's generated Performance tables for any number of results (none: a note)."""
    if not results:
        return ("No benchmark has been recorded yet: run `rstn bench --scale standard --out "
                "runs/bench/standard_cpu.json --markdown book/performance_generated.md` "
                "(see benchmarks/README.md), which overwrites this file with the tables.\n")
    head = ("<!-- generated by `rstn bench ... --markdown` / `rstn bench --render`; "
            "do not edit by hand -->\n\n")
    return head + "\n\n".join(render_result(r) for r in results) + "\n"


# ---------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------
_T0 = time.perf_counter()


def _log(msg: str):
    print(f"bench [{time.perf_counter() - _T0:6.1f} s]: {msg}", file=sys.stderr, flush=True)


def _load():
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="rstn bench",
        description="Speed and memory of the nets and of Algorithms 1 and 2 at a scale "
                    "(benchmarks/README.md explains every number).")
    ap.add_argument("--scale", default="smoke", choices=["smoke", "standard", "paper"],
                    help="the scale whose Config (net width, fc6, BN, slice sizes, batch) is "
                         "measured (default: smoke)")
    ap.add_argument("--device", default=None, choices=["cpu", "cuda"],
                    help="cpu or cuda (default: cuda if available)")
    ap.add_argument("--out", default=None,
                    help="JSON file for the results (default: runs/bench/<scale>_<device>.json)")
    ap.add_argument("--quick", action="store_true",
                    help="a short run (< 30 s at smoke on 2 cores): fewer repeats, no 512x512 "
                         "full-width pass, T = 2 rounds, training T = 1, 2 only")
    ap.add_argument("--peak-flops", type=float, default=None,
                    help="the device's peak FLOP/s for the 'of peak' columns (default: "
                         "estimated from /proc/cpuinfo or a table of GPUs; benchmarks/README.md)")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch CPU threads (default: torch's default)")
    ap.add_argument("--only", nargs="+", default=None,
                    choices=["forward", "full_width", "algorithms", "batched", "training"],
                    help="run only these measurements (default: all)")
    ap.add_argument("--checkpointing", action="store_true",
                    help="training: activation checkpointing of the unrolled RSTN "
                         "(train.activation_checkpointing)")
    ap.add_argument("--compile", action="store_true",
                    help="inference: torch.compile the nets (test.compile); the forward rows "
                         "also record the first call, which compiles")
    ap.add_argument("--channels-last", action="store_true",
                    help="inference: channels-last nets and inputs (test.channels_last; CUDA "
                         "only, ignored on CPU)")
    ap.add_argument("--markdown", default=None,
                    help="also write the tables as markdown to this file, e.g. "
                         "book/performance_generated.md")
    ap.add_argument("--render", nargs="*", default=None, metavar="JSON",
                    help="measure nothing: render these result files (none: the placeholder) "
                         "to --markdown (or stdout)")
    # internal: one training T in a fresh process (see bench_training)
    ap.add_argument("--train-worker", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--T", type=int, default=1, help=argparse.SUPPRESS)
    ap.add_argument("--iterations", type=int, default=5, help=argparse.SUPPRESS)
    ap.add_argument("--warmup", type=int, default=2, help=argparse.SUPPRESS)
    ap.add_argument("--budget", type=float, default=None, help=argparse.SUPPRESS)
    return ap


def _settings(quick: bool) -> dict:
    if quick:
        return dict(repeats=3, warmup=1, budget_s=1.0, full_sizes=(96,), full_repeats=1,
                    full_warmup=0,
                    T_max=2, batched_repeats=1, train_T=QUICK_TRAIN_T, train_iterations=2,
                    train_warmup=1, train_budget=5.0)
    return dict(repeats=5, warmup=2, budget_s=20.0, full_sizes=FULL_WIDTH_SIZES,
                full_repeats=3, full_warmup=1, T_max=None, batched_repeats=3, train_T=TRAIN_T,
                train_iterations=5, train_warmup=2, train_budget=60.0)


def _error(msg: str) -> int:
    print(f"rstn bench: error: {msg}", file=sys.stderr)
    return 2


def bench_main(argv: list[str] | None = None) -> int:
    """`rstn bench`: run the benchmark (or render saved results); returns the exit code."""
    try:
        args = _parser().parse_args(list(argv) if argv is not None else None)
    except SystemExit as e:                    # --help (0) or a bad argument (2, one line)
        return int(e.code or 0)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        return _error("--device cuda, but torch sees no CUDA device; use --device cpu.")

    if args.train_worker:                      # internal: one T of measurement 4
        res = _train_worker(args.scale, device, args.T, args.train_worker, args.iterations,
                            args.warmup, args.budget, args.checkpointing)
        print(WORKER_MARK + json.dumps(res), flush=True)
        return 0

    if args.render is not None:
        try:
            results = [json.loads(Path(p).read_text()) for p in args.render]
        except (OSError, ValueError) as e:
            return _error(f"--render: cannot read a result file ({e}).")
        text = render_markdown(results)
        if args.markdown:
            from rstn_core.io import atomic_write_text
            atomic_write_text(args.markdown, text)
            print(f"wrote {args.markdown}")
        else:
            print(text)
        return 0

    try:
        res = run_benchmark(args.scale, device, quick=args.quick, peak_override=args.peak_flops,
                            only=args.only, checkpointing=args.checkpointing,
                            compile=args.compile, channels_last=args.channels_last)
    except (ValueError, FileNotFoundError, RuntimeError) as e:
        return _error(str(e).splitlines()[0] if str(e) else type(e).__name__)
    from rstn_core.io import atomic_write_json, atomic_write_text
    out = Path(args.out or f"runs/bench/{args.scale}_{device}.json")
    atomic_write_json(out, res)
    text = render_result(res)
    print(text)
    print(f"\nwrote {out}")
    if args.markdown:
        atomic_write_text(args.markdown, render_markdown([res]))
        print(f"wrote {args.markdown}")
    return 0


def run_benchmark(scale: str, device: str, quick: bool = False,
                  peak_override: float | None = None, only=None, checkpointing: bool = False,
                  compile: bool = False, channels_last: bool = False) -> dict:
    """All five measurements at `scale` on `device`; returns the result dict (the JSON).

    checkpointing: training with activation checkpointing; compile / channels_last: the
    inference measurements under `inference.inference_options` (test.compile,
    test.channels_last).
    """
    from rstn_core.engine.inference import inference_options
    with inference_options(compile=compile, channels_last=channels_last):
        res = _run_benchmark(scale, device, quick, peak_override, only, checkpointing)
    res["meta"].update(activation_checkpointing=checkpointing, compile=compile,
                       channels_last=channels_last and device == "cuda")
    return res


def _run_benchmark(scale, device, quick, peak_override, only, checkpointing) -> dict:
    from rstn_core.config import get_config
    from rstn_core.data.phantom import make_case, phantom_preset
    t_all = time.perf_counter()
    s = _settings(quick)
    want = set(only or ["forward", "full_width", "algorithms", "batched", "training"])
    cfg = get_config(scale, device=device)
    peak, peak_info = _peak(device, peak_override)
    dev_name = torch.cuda.get_device_name() if device == "cuda" else peak_info.get("model")
    meta = {"schema": SCHEMA, "scale": scale, "device": device, "device_name": dev_name,
            "quick": quick, "torch": torch.__version__, "python": platform.python_version(),
            "threads": torch.get_num_threads(), "cpus_available": _available_cpus(),
            "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "load_before": _load(), "peak_flops": peak, "peak_info": peak_info,
            "precision": "bf16 autocast" if device == "cuda" else "fp32",
            "model": dict(vars(cfg.model)), "test": {"batch_size": cfg.test.batch_size,
                                                     "T": cfg.test.T, "margin": cfg.test.margin},
            "train_batch_size": cfg.train.batch_size, "zoom": cfg.train.zoom,
            "settings": {k: list(v) if isinstance(v, tuple) else v for k, v in s.items()}}
    res = {"meta": meta}
    _log(f"phantom case 0 at scale {scale}")
    case = make_case(phantom_preset(scale), cfg.seed, 0)
    meta["volume_shape"] = list(case.image.shape)
    size = tuple(case.image.shape[:2])               # an axial slice: (X, Y)
    T = cfg.test.T if s["T_max"] is None else min(cfg.test.T, s["T_max"])
    sections = {
        "forward": (f"FCN-8s forward at {size[0]}x{size[1]}, batches {BATCHES}",
                    lambda: bench_forward(cfg, device, size, BATCHES, s["repeats"], s["warmup"],
                                          s["budget_s"], peak)),
        "full_width": (f"full-width FCN-8s at {s['full_sizes']}",
                       lambda: bench_full_width(device, s["full_sizes"], FULL_WIDTH_BATCH,
                                                s["full_repeats"], s["full_warmup"],
                                                s["budget_s"], peak)),
        "algorithms": (f"Algorithms 1 and 2, T = {T}",
                       lambda: bench_algorithms(cfg, case, device, T)),
        "batched": ("batched vs one-at-a-time inference",
                    lambda: bench_batched(cfg, case, device, repeats=s["batched_repeats"])),
        "training": (f"RSTN training, T = {list(s['train_T'])}",
                     lambda: bench_training(cfg, case, device, s["train_T"],
                                            s["train_iterations"], s["train_warmup"],
                                            s["train_budget"], peak,
                                            threads=torch.get_num_threads(),
                                            checkpointing=checkpointing)),
    }
    res["section_seconds"] = {}
    for name, (what, fn) in sections.items():
        if name in want:
            _log(what)
            t0 = time.perf_counter()
            res[name] = fn()
            res["section_seconds"][name] = time.perf_counter() - t0
    if device == "cuda":
        meta["cuda_max_memory_allocated_mb"] = torch.cuda.max_memory_allocated() / 2**20
    meta["load_after"] = _load()
    res["published"] = {"authors_cpu_seconds_per_forward": AUTHORS_CPU_SECONDS,
                        "authors_cpu_rstn_iteration_96_s": AUTHORS_CPU_RSTN_ITERATION_96,
                        **PUBLISHED}
    res["seconds_total"] = time.perf_counter() - t_all
    return res


if __name__ == "__main__":
    sys.exit(bench_main(sys.argv[1:]))
