"""The numbers of book/colab.md: FLOPs per iteration, time per fold per GPU, memory per T,
checkpoint and cache sizes; printed as Markdown tables (redo them with this script).

    python tools/colab_estimates.py > /tmp/colab_tables.md      # ~1 min on 2 CPU cores

FLOPs and activation memory are counted on torch's meta device (no arithmetic): a FLOP is
what `rstn_core.bench.flops.count_flops` counts (2 x multiply-adds of convolutions and matrix
products, forward and backward). Activation memory is the bytes autograd saves for the
backward pass (parameters excluded). Checkpoint sizes are measured by saving state dicts;
cache sizes by building the per-view cache of one phantom case per scale (paper: computed,
6 x 512 x 512 x L bytes with L the mean of its slices_range). Times are ESTIMATES:

    time per fold = sum over nets of iterations x (FLOP/iteration / sustained rate
                    + optimizer bytes / memory bandwidth) + test time
"""
from __future__ import annotations

import io
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from rstn_core.algorithms.rstn_model import build_rstn
from rstn_core.bench.flops import count_flops
from rstn_core.config import get_config, scaled_px
from rstn_core.crop import bbox
from rstn_core.data import CaseCache, list_cases, phantom_preset, write_dataset
from rstn_core.networks import build_net
from rstn_core.engine.slices import SliceSet
from rstn_core.networks.fcn8s import FCN8s
from rstn_core.views import VIEWS

MB = 1e6
#: Assumed GPUs: peak dense half-precision tensor FLOP/s, the sustained fraction assumed for
#: VGG16-like 3x3 convolutions at these sizes, memory bandwidth (B/s) and its usable fraction.
GPUS = {
    "T4 (fp16)": dict(peak=65e12, frac=0.25, bw=320e9, bw_frac=0.7),
    "A100 (bf16)": dict(peak=312e12, frac=0.40, bw=2.0e12, bw_frac=0.8),
    "H100 SXM (bf16)": dict(peak=989e12, frac=0.35, bw=3.35e12, bw_frac=0.8),
}
TEST_ROUNDS = 5          # assumed mean fine rounds per view at test time (at most 10)


def _meta_net(train=True) -> FCN8s:
    with torch.device("meta"):
        net = FCN8s(3, 3, width=1.0, fc_kernel=7, batch_norm=False)
    return net.train(train)


def train_flops(h: int, w: int, batch: int) -> int:
    """Forward + backward FLOPs of the full-width FCN-8s on a (batch, 3, h, w) input."""
    net = _meta_net()

    def fb(x):
        net(x).float().sum().backward()
    return count_flops(fb, torch.empty(batch, 3, h, w, device="meta"))


def forward_flops(h: int, w: int, batch: int = 1) -> int:
    """Forward FLOPs (testing)."""
    net = _meta_net(False)
    with torch.no_grad():
        return count_flops(net, torch.empty(batch, 3, h, w, device="meta"))


def saved_bytes(h: int, w: int, batch: int, half: bool) -> int:
    """Bytes autograd saves for backward in one forward pass (parameters excluded); with
    `half`, activations are counted at 2 bytes (autocast's fp16/bf16 convolution outputs)."""
    net = _meta_net()
    params = {id(p) for p in net.parameters()}
    seen = {}

    def pack(t):
        if id(t) not in params:
            size = 2 if half and t.is_floating_point() else t.element_size()
            seen[id(t)] = t.numel() * size
        return t
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        net(torch.empty(batch, 3, h, w, device="meta"))
    return sum(seen.values())


def crop_size(size: int, margin_px: float) -> tuple[int, int]:
    """Mean (h, w) of a batch-of-8 padded fine crop at `size` px: the target's bounding box per
    positive slice of the smoke phantom (same 352-mm field of view), scaled to `size`, plus
    2 x margin, then the largest of 8 random slices (crops of a batch are padded to one size)."""
    tmp = Path(tempfile.mkdtemp())
    try:
        root = tmp / "p"
        write_dataset(root, phantom_preset("smoke"), 2, seed=0, progress=False, workers=1)
        cache = CaseCache(tmp / "c", store=False)
        boxes = []
        for ref in [r for r in list_cases(root) if r.label is not None]:
            for v, (_, lab) in cache.get(ref).items():
                f = size / lab.shape[1]
                g = size / lab.shape[2]
                m = np.isin(np.asarray(lab), (1, 2))   # pancreas (with its cysts)
                for j in np.flatnonzero(m.reshape(m.shape[0], -1).any(1)):
                    b = bbox(m[j])
                    boxes.append(((b.r1 - b.r0) * f + 2 * margin_px,
                                  (b.c1 - b.c0) * g + 2 * margin_px))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    rng = np.random.default_rng(0)
    arr = np.array(boxes)
    picks = arr[rng.integers(0, len(arr), (500, 8))]
    h, w = picks[..., 0].max(1).mean(), picks[..., 1].max(1).mean()
    return max(32, int(round(h))), max(32, int(round(w)))


def state_mb(module: torch.nn.Module, half: bool) -> float:
    """Size in MB of `torch.save` of the module's state dict (fp32, or fp16 with `half`)."""
    sd = {k: (v.half() if half and v.is_floating_point() else v)
          for k, v in module.state_dict().items()}
    buf = io.BytesIO()
    torch.save(sd, buf)
    return buf.tell() / MB


def _epoch(cache, ref, view) -> float:
    """Seconds to get a case's view from `cache` and read every training window of it
    (SliceSet.window: 3 slices each), as a pass over the data does."""
    t0 = time.perf_counter()
    img, lab = cache.get(ref)[view]
    ss = SliceSet([np.asarray(img)], [np.asarray(lab == 1, np.uint8)], 0.0)
    for c, j in ss.all:
        ss.window(c, j)
    return time.perf_counter() - t0


def cache_mb(scale: str) -> tuple[float, str]:
    """(MB of the per-view cache of one case, seconds per pass over its three views: from the
    warm cache / read from the scan)."""
    pc = phantom_preset(scale)
    if scale == "paper":
        lo, hi = pc.slices_range
        return 6 * pc.shape[0] * pc.shape[1] * (lo + hi) / 2 / MB, "not measured"
    tmp = Path(tempfile.mkdtemp())
    try:
        write_dataset(tmp / "p", pc, 1, seed=0, progress=False, workers=1)
        ref = [r for r in list_cases(tmp / "p") if r.label is not None][0]
        stored, live = CaseCache(tmp / "c"), CaseCache(tmp / "x", store=False)
        stored.get(ref)                                   # build it (not timed)
        size = sum(f.stat().st_size for f in (tmp / "c").rglob("*.npy")) / MB
        warm = sum(_epoch(stored, ref, v) for v in VIEWS)
        cold = 0.0
        for v in VIEWS:
            live._last = None                             # a new view re-reads the scan
            cold += _epoch(live, ref, v)
        return size, f"{warm:.2f} s / {cold:.2f} s"
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def table(header, rows) -> str:
    """A Markdown table."""
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def main() -> None:
    """Print every table of book/colab.md."""
    p = print
    # -- nets and checkpoints ---------------------------------------------------------------
    rows, nets = [], {}
    for scale in ("smoke", "standard", "colab", "paper"):
        cfg = get_config(scale, **{"model.pretrained": None})
        net, rstn = build_net(cfg), build_rstn(cfg)
        n = sum(p_.numel() for p_ in net.parameters())
        nets[scale] = n
        f32, f16 = state_mb(net, False), state_mb(net, True)
        r32, r16 = state_mb(rstn, False), state_mb(rstn, True)
        half = cfg.train.half_final
        fold = 6 * (f16 if half else f32) + 3 * (r16 if half else r32)
        rows.append((scale, f"{n / 1e6:.2f} M", f"{f32:.1f}", f"{f16:.1f}", f"{r32:.1f}",
                     f"{r16:.1f}", f"{6 * f32 + 3 * r32:.0f}", f"{6 * f16 + 3 * r16:.0f}",
                     f"{fold:.0f} ({'fp16' if half else 'fp32'})"))
        del net, rstn
    p("### Checkpoint sizes (measured)\n")
    p(table(["scale", "parameters / net", "net fp32 MB", "net fp16 MB", "RSTN fp32 MB",
             "RSTN fp16 MB", "fold fp32 MB", "fold fp16 MB", "fold as the scale stores it"],
            rows))
    # -- FLOPs ------------------------------------------------------------------------------
    runs = {}
    for scale in ("colab", "paper"):
        cfg = get_config(scale, **{"model.pretrained": None})
        S, B = cfg.slice_size, cfg.train.batch_size
        fine_m = (scaled_px(cfg.train.margin_low, S) + scaled_px(cfg.train.margin_high, S)) / 2
        ch, cw = crop_size(S, fine_m)
        kh, kw = crop_size(S, scaled_px(cfg.rstn.margin, S))
        runs[scale] = dict(cfg=cfg, S=S, B=B, coarse=train_flops(S, S, B),
                           fine=train_flops(ch, cw, B), rstn_fine=train_flops(kh, kw, B),
                           crop=(ch, cw), rcrop=(kh, kw), fwd=forward_flops(S, S),
                           fwd_crop=forward_flops(kh, kw))
    p("\n### FLOPs per training iteration (counted, forward + backward, full width)\n")
    p(table(["scale", "slice", "batch", "coarse net", "fine crop (mean padded)", "fine net",
             "RSTN crop", "RSTN, T = 1"],
            [(s, f"{r['S']}²", r["B"], f"{r['coarse'] / 1e12:.3f} TFLOP",
              f"{r['crop'][0]} x {r['crop'][1]}", f"{r['fine'] / 1e12:.3f} TFLOP",
              f"{r['rcrop'][0]} x {r['rcrop'][1]}",
              f"{(r['coarse'] + r['rstn_fine']) / 1e12:.3f} TFLOP") for s, r in runs.items()]))
    # -- time per fold ----------------------------------------------------------------------
    rows = []
    for scale, r in runs.items():
        cfg, t, rs = r["cfg"], r["cfg"].train, r["cfg"].rstn
        n_views = len(cfg.views)
        rstn_it = rs.gt_iterations + rs.pred_iterations + rs.noisy_iterations
        step_flop = n_views * (t.coarse_iterations * r["coarse"] + t.fine_iterations * r["fine"])
        rstn_flop = n_views * rstn_it * (r["coarse"] + rs.T * r["rstn_fine"])
        # optimizer bytes per iteration: Adam ~28 B/parameter (weight, grad, 2 moments; read
        # and write), SGD with momentum ~20 B; RSTN updates two nets
        per_param = 28 if t.optimizer == "adam" else 20
        opt_bytes = n_views * per_param * nets[scale] * (
            t.coarse_iterations + t.fine_iterations + 2 * rstn_it)
        # testing: 1/folds of the cases, both methods, per view a coarse pass over every slice
        # and TEST_ROUNDS fine passes over the slices of the box (~ a third of them, crops)
        X, Y, Z = cfg.phantom.shape if cfg.phantom.slices_range is None else (
            *cfg.phantom.shape[:2], sum(cfg.phantom.slices_range) / 2)
        slice_px = X * Y * Z * 3 / r["S"] ** 2        # 3 views: each voxel once per view
        n_test = cfg.n_cases / cfg.folds
        test_flop = 2 * n_test * (slice_px * r["fwd"] + TEST_ROUNDS * slice_px / 3 * r["fwd_crop"])
        for gpu, g in GPUS.items():
            rate, bw = g["peak"] * g["frac"], g["bw"] * g["bw_frac"]
            train_s = (step_flop + rstn_flop) / rate + opt_bytes / bw
            test_s = test_flop / (rate * 1.5)          # no backward: assume 1.5x the rate
            rows.append((scale, gpu, f"{rate / 1e12:.0f}", f"{step_flop / 1e15:.1f}",
                         f"{rstn_flop / 1e15:.1f}", f"{opt_bytes / bw / 60:.1f}",
                         f"{test_s / 60:.1f}", _hm(train_s + test_s)))
    p("\n### Estimated time per fold (ESTIMATES; both methods, 3 views, testing)\n")
    p(table(["scale", "GPU", "sustained TFLOP/s (assumed)", "stepwise PFLOP", "RSTN PFLOP",
             "optimizer min", "test min", "fold"], rows))
    # -- memory per T -----------------------------------------------------------------------
    rows = []
    for scale, r in runs.items():
        cfg = r["cfg"]
        n = nets[scale]
        opt = 8 if cfg.train.optimizer == "adam" else 4
        static = 2 * n * (4 + 4 + opt + 2)             # 2 nets: w, grad, state, half copy
        a_c = saved_bytes(r["S"], r["S"], r["B"], True)
        a_f = saved_bytes(*r["rcrop"], r["B"], True)
        for T in range(1, 6):
            rows.append((scale, r["B"], T, f"{static / 2**30:.1f}",
                         f"{(a_c + T * a_f) / 2**30:.1f}",
                         f"{(static + a_c + T * a_f) / 2**30:.1f}"))
    p("\n### RSTN training memory per T (computed: autograd's saved tensors at 2 B, lower "
      "bound of max_memory_allocated)\n")
    p(table(["scale", "batch", "T", "weights + grads + optimizer + half copies GiB",
             "activations GiB", "total GiB"], rows))
    # -- cache ------------------------------------------------------------------------------
    rows = []
    for scale in ("smoke", "standard", "colab", "paper"):
        mb, sec = cache_mb(scale)
        n = get_config(scale).n_cases
        rows.append((scale, "x".join(map(str, phantom_preset(scale).shape)), f"{mb:.1f}",
                     f"{mb * n / 1e3:.2f}", n, sec))
    p("\n### Per-view cache (cache_views=true) per case and per data set\n")
    p(table(["scale", "phantom (X x Y x Z)", "MB / case", "GB / data set", "cases",
             "one pass over a case's 3 views: cached / cache_views=false (measured)"], rows))


def _hm(seconds: float) -> str:
    m = seconds / 60
    return f"{m:.0f} min" if m < 120 else f"{m / 60:.1f} h"


if __name__ == "__main__":
    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    sys.exit(main())
