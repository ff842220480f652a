"""The in-process parts of the prepared GPU check (`rstn bench --gpu-check`), one function
each (the subprocess parts, a notebook and torchrun, are in `gpu_jobs`).

Every part takes the check's `CheckSizes`, the device and a `Budget` (seconds left), and
returns a JSON-able dict. Rows that would start after the part's budget is spent are
recorded as skipped, never silently dropped. `--dry` runs the same code on the CPU at tiny
sizes (`CheckSizes.dry()`), so CI proves the code path.
"""
from __future__ import annotations

import contextlib
import multiprocessing
import queue
import time
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from rstn_core.algorithms.rstn import RSTNModels, rstn_predict
from rstn_core.algorithms.rstn_model import build_rstn
from rstn_core.bench.flops import count_flops, fcn8s_flops, rate
from rstn_core.bench.hardware import cpu_peak_flops, gpu_peaks
from rstn_core.bench.measure import bench_config, rstn_step, stepwise_step
from rstn_core.bench.published import PUBLISHED
from rstn_core.bench.timing import log, sync, time_call
from rstn_core.data.phantom import make_case, phantom_preset
from rstn_core.engine.device import autocast, is_cuda, resolve_amp
from rstn_core.networks.fcn8s import FCN8s

__all__ = ["CheckSizes", "Budget", "make_volume", "BackgroundVolume", "part_fcn_precision",
           "part_rstn_memory", "part_algorithm2", "part_training_projection"]

PRECISIONS = ("fp32", "fp16", "bf16")
_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}


@dataclass(frozen=True)
class CheckSizes:
    """Sizes of one GPU check: the real one (`full`) or the CPU code-path check (`dry`)."""
    width: float = 1.0                       # FCN-8s channel multiplier (1 = VGG16)
    fcn_size: int = 512
    fcn_batches: tuple = (1, 8)
    fcn_repeats: int = 10
    train_sizes: tuple = (512, 256)
    train_T: tuple = (1, 2, 3, 4, 5)
    train_iterations: int = 5
    train_warmup: int = 2
    volume_shape: tuple = (512, 512, 240)
    alg_T: int = 10
    alg_thr: float = 0.99
    alg_batch_size: int | None = None        # None: the config's test.batch_size
    proj_iterations: int = 300
    proj_fallback_size: int = 256            # paper scale at this size when "colab" is missing
    notebook: str | None = "notebooks/02_dsc_and_loss.ipynb"   # None: a one-cell notebook
    backend: str = "nccl"

    @classmethod
    def full(cls) -> "CheckSizes":
        """The sizes of the real check on one CUDA GPU (<= 8 minutes)."""
        return cls()

    @classmethod
    def dry(cls) -> "CheckSizes":
        """Tiny sizes on the CPU (< 60 s): 64 px, width 1/16, T <= 2, 3 iterations, 48^3."""
        return cls(width=1 / 16, fcn_size=64, fcn_batches=(1,), fcn_repeats=1,
                   train_sizes=(64, 32), train_T=(1, 2), train_iterations=1, train_warmup=0,
                   volume_shape=(48, 48, 48), alg_T=2, alg_batch_size=64, proj_iterations=3,
                   proj_fallback_size=32, notebook=None, backend="gloo")


class Budget:
    """Seconds a part may still spend (a deadline on `time.perf_counter`)."""

    def __init__(self, seconds: float):
        self.seconds = float(seconds)
        self.deadline = time.perf_counter() + self.seconds

    def left(self) -> float:
        """Seconds until the deadline (negative once it has passed)."""
        return self.deadline - time.perf_counter()


def _tf32() -> dict:
    with warnings.catch_warnings():                    # newer torch: fp32_precision API
        warnings.simplefilter("ignore")
        return {"cudnn_allow_tf32": bool(torch.backends.cudnn.allow_tf32),
                "matmul_allow_tf32": bool(torch.backends.cuda.matmul.allow_tf32)}


def _peak(device: str, precision: str) -> tuple[float | None, str]:
    """The peak the 'of peak' column divides by, and where it comes from."""
    if not is_cuda(device):
        peak, _ = cpu_peak_flops()
        return peak, "CPU fp32 estimate (cores x GHz x FLOP/cycle)"
    name = torch.cuda.get_device_name()
    peaks, key = gpu_peaks(name)
    if peaks is None:
        return None, f"{name} not in the GPU table; pass --peak-flops to bench"
    if precision == "fp32" and _tf32()["cudnn_allow_tf32"] and peaks.get("tf32"):
        return peaks["tf32"], f"{key} tf32 dense (cudnn.allow_tf32 is on: convs run in TF32)"
    return peaks.get(precision), f"{key} {precision} dense (data sheet, approximate)"


def _precision_ctx(device: str, precision: str):
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast("cuda" if is_cuda(device) else "cpu", dtype=_DTYPES[precision])


def _supported(device: str, precision: str) -> str | None:
    """None when `precision` can run on `device`, else why not."""
    if precision == "bf16" and is_cuda(device) and not torch.cuda.is_bf16_supported():
        return "bf16 not supported by this GPU"
    return None


def _train_flops(size: int, batch: int, width: float) -> int:
    with torch.device("meta"):
        net = FCN8s(3, 3, width=width).train()
    x = torch.empty(batch, 3, size, size, device="meta")
    return count_flops(lambda: net(x).float().mean().backward())


def part_fcn_precision(sizes: CheckSizes, device: str, budget: Budget) -> dict:
    """Full-width FCN-8s forward and forward+backward at `fcn_size` in fp32, fp16 and bf16
    (autocast): seconds, TFLOP/s (FLOPs from the counter) and the fraction of the GPU's peak.

    Returns:
        {"net", "size", "tf32", "rows": one per precision x batch x pass}.
    """
    torch.manual_seed(0)
    net = FCN8s(3, 3, width=sizes.width).to(device)
    s = sizes.fcn_size
    rows = []
    for precision in PRECISIONS:
        why = _supported(device, precision)
        peak, peak_source = _peak(device, precision)
        for b in sizes.fcn_batches:
            base = {"precision": precision, "batch": b}
            if why:
                rows.append(dict(base, skipped=why))
                continue
            if budget.left() < 2:
                rows.append(dict(base, skipped="part budget spent"))
                continue
            x = torch.rand(b, 3, s, s, generator=torch.Generator().manual_seed(b)).to(device)

            def forward():
                with torch.inference_mode(), _precision_ctx(device, precision):
                    net(x)

            def train_step():
                with _precision_ctx(device, precision):
                    loss = net(x).float().mean()
                loss.backward()
                net.zero_grad(set_to_none=True)

            for name, fn, mode, flops in (
                    ("forward", forward, net.eval, fcn8s_flops(s, s, b, sizes.width)),
                    ("forward+backward", train_step, net.train,
                     _train_flops(s, b, sizes.width))):
                mode()
                try:
                    t = time_call(fn, device, sizes.fcn_repeats, min(2, sizes.fcn_repeats),
                                  budget_s=max(0.5, budget.left() / 8))
                except Exception as e:                  # e.g. fp16 kernels missing on a CPU
                    rows.append(dict(base, **{"pass": name},
                                     error=f"{type(e).__name__}: {e}"[:300]))
                    continue
                achieved, frac = rate(flops, t["median"], peak)
                rows.append(dict(base, **{"pass": name}, seconds=t["median"],
                                 seconds_per_slice=t["median"] / b, flops=flops,
                                 tflop_per_s=achieved / 1e12 if achieved else None,
                                 peak_tflop_per_s=peak / 1e12 if peak else None,
                                 peak_source=peak_source, peak_fraction=frac,
                                 repeats=t["repeats"]))
    return {"net": f"FCN8s(3, 3, width={sizes.width:g}) (7x7 fc6, no BN)", "size": s,
            "tf32": _tf32(), "rows": rows}


def _synthetic_batch(size: int, batch: int, device: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Random windows with a centred box label (~20% x 12% of the slice, pancreas-sized at
    512 px), so the fine steps crop what a real batch would."""
    g = torch.Generator().manual_seed(size)
    x = torch.rand(batch, 3, size, size, generator=g)
    y = torch.zeros(batch, 3, size, size)
    h, w = max(2, int(0.12 * size)), max(2, int(0.2 * size))
    y[..., (size - h) // 2:(size + h) // 2, (size - w) // 2:(size + w) // 2] = 1
    return x.to(device), y.to(device)


def _free(device):
    if is_cuda(device):
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def _cfg(scale: str, device: str, sizes: CheckSizes, slice_size: int | None = None):
    """The scale's Config at the check's width (random weights), its crop frames scaled to
    `slice_size` when given."""
    over = {"model.width": sizes.width}
    if slice_size is not None:
        over["slice_size"] = int(slice_size)
    return bench_config(scale, device, **over)


def part_rstn_memory(sizes: CheckSizes, device: str, budget: Budget) -> dict:
    """RSTN training (paper config, `build_rstn`) for T = 1..5 at each size: iterations/s
    and peak memory (`torch.cuda.max_memory_allocated`, reset between runs).

    Returns:
        {"config", "batch", "label", "rows": one per size x T}.
    """
    cfg = _cfg("paper", device, sizes)
    rows = []
    for size in sizes.train_sizes:
        cfg = _cfg("paper", device, sizes, slice_size=size)
        x, y = _synthetic_batch(size, cfg.train.batch_size, device)
        for T in sizes.train_T:
            base = {"size": size, "T": T}
            if budget.left() < 3:
                rows.append(dict(base, skipped="part budget spent"))
                continue
            _free(device)
            try:
                model, step = rstn_step(cfg, x, y, T, device)
                sync(device)
                base_mb = torch.cuda.memory_allocated() / 2**20 if is_cuda(device) else None
                t = time_call(step, device, sizes.train_iterations, sizes.train_warmup,
                              budget_s=max(1.0, budget.left() / 6))
                peak_mb = torch.cuda.max_memory_allocated() / 2**20 if is_cuda(device) else None
                rows.append(dict(base, iterations_per_s=1 / t["median"],
                                 seconds_per_iteration=t["median"], repeats=t["repeats"],
                                 memory_peak_mb=peak_mb, memory_baseline_mb=base_mb))
                del model, step
            except Exception as e:                      # out of memory: the next row
                msg = str(e).splitlines()[0] if str(e) else ""
                rows.append(dict(base, error=f"{type(e).__name__}: {msg}"[:300]))
            _free(device)
    return {"config": "paper" + (f" (width {sizes.width:g})" if sizes.width != 1 else ""),
            "batch": cfg.train.batch_size, "optimizer": cfg.train.optimizer,
            "precision": resolve_amp(cfg.train.amp, device),
            "label": "synthetic centred box (crop from the ground truth)",
            "memory_kind": "torch.cuda.max_memory_allocated" if is_cuda(device) else "n/a (CPU)",
            "rows": rows}


class _Timed(nn.Module):
    """A net whose calls are timed (synchronised), to split Algorithm 2's time by stage."""

    def __init__(self, net: nn.Module, device: str):
        super().__init__()
        self.net, self.device_ = net, device
        self.seconds, self.calls = 0.0, 0

    def forward(self, x):
        """The net's output for x; adds the call's seconds to `seconds`."""
        t0 = time.perf_counter()
        out = self.net(x)
        sync(self.device_)
        self.seconds += time.perf_counter() - t0
        self.calls += 1
        return out


def _phantom_config(shape):
    X, Y, Z = shape
    return replace(phantom_preset("paper"), shape=(X, Y, Z), slices_range=None,
                   spacing=(352 / X, 352 / Y, 240 / Z))


def make_volume(shape, path) -> float:
    """Write the image of phantom case 0 of `shape` (paper phantom, 352 mm field of view) to
    `path` (.npy); returns the seconds it took. Run in a background process by the check, so
    that the CPU-bound phantom overlaps the GPU parts before Algorithm 2.

    Shapes:
        shape (X, Y, Z); the file holds (X, Y, Z) float32 HU.
    """
    t0 = time.perf_counter()
    case = make_case(_phantom_config(shape), 0, 0)
    np.save(path, np.asarray(case.image, np.float32))
    return time.perf_counter() - t0


class BackgroundVolume:
    """`make_volume` in a spawned process, started now: `result()` waits for it (seconds
    it took), `stop()` ends it if it still runs (the check ended early)."""

    def __init__(self, shape, path):
        self.path = str(path)
        ctx = multiprocessing.get_context("spawn")
        self._seconds = ctx.Queue()
        self._proc = ctx.Process(target=_volume_job, args=(tuple(shape), self.path,
                                                            self._seconds), daemon=True)
        self._proc.start()

    def result(self, timeout: float) -> float:
        """Seconds the phantom took; raises TimeoutError or RuntimeError when it did not come."""
        try:
            seconds = self._seconds.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError(f"the background phantom was not ready within {timeout:.0f} s "
                               "(the part's budget)") from None
        if isinstance(seconds, str):
            raise RuntimeError(f"the background phantom failed: {seconds}")
        return seconds

    def stop(self):
        """End the process if it is still running."""
        if self._proc.is_alive():
            self._proc.terminate()
        self._proc.join(timeout=5)


def _volume_job(shape, path, out):
    try:
        out.put(make_volume(shape, path))
    except Exception as e:                                  # reported, not raised, in the parent
        out.put(f"{type(e).__name__}: {e}"[:300])


def part_algorithm2(sizes: CheckSizes, device: str, budget: Budget, volume=None) -> dict:
    """Algorithm 2 (`rstn_predict`, thr 0.99, T = 10) on one phantom volume of
    `volume_shape` with untrained nets at the check's width: time only.

    Untrained nets say p = 0.5 everywhere, so the first fine round crops whole slices (dearer
    than a pancreas box) and later rounds find nothing to crop: the whole-slice round time is
    an upper bound of a round, the number of rounds means nothing.

    Args:
        volume: a `BackgroundVolume` making the phantom in parallel, or None to make it here.
    Returns:
        {"volume_shape", "phantom_seconds", "seconds", "coarse_net_seconds",
        "seconds_per_round_whole_slices", "rounds", "windows_fine_per_round", "published"}.
    """
    _free(device)
    X, Y, Z = sizes.volume_shape
    if volume is None:
        t0 = time.perf_counter()
        image = make_case(_phantom_config(sizes.volume_shape), 0, 0).image
        phantom_s, where = time.perf_counter() - t0, "in this process"
    else:
        phantom_s = volume.result(timeout=max(1.0, budget.left()))
        image, where = np.load(volume.path), "in a background process"
        Path(volume.path).unlink(missing_ok=True)
    log(f"algorithm2: phantom {image.shape} in {phantom_s:.1f} s ({where})")
    cfg = _cfg("paper", device, sizes, slice_size=X)
    models = {}
    for v in cfg.views:
        m = build_rstn(cfg).to(device).eval()
        m.coarse, m.fine = _Timed(m.coarse, device), _Timed(m.fine, device)
        models[v] = m
    with torch.inference_mode(), autocast(device, cfg.test.amp):        # warm-up
        for m in models.values():
            m.coarse(torch.zeros(1, 3, X, Y, device=device))
    for m in models.values():
        m.coarse.seconds = m.fine.seconds = 0.0
    bs = sizes.alg_batch_size or cfg.test.batch_size
    rm = RSTNModels(models, batch_size=bs, device=device,
                    coarse_components=cfg.test.coarse_components, amp=cfg.test.amp)
    sync(device)
    t1 = time.perf_counter()
    res = rstn_predict(image, rm, thr=sizes.alg_thr, T=sizes.alg_T)
    sync(device)
    seconds = time.perf_counter() - t1
    coarse_s = sum(m.coarse.seconds for m in models.values())
    fine_s = sum(m.fine.seconds for m in models.values())
    rounds = len(res.d)
    working = sum(1 for n in res.windows_run if n > 0)        # rounds that ran any window
    per_round = (seconds - coarse_s) / working if working else None
    return {"volume_shape": list(image.shape), "width": sizes.width,
            "thr": sizes.alg_thr, "T": sizes.alg_T, "batch_size": bs,
            "phantom_seconds": phantom_s, "phantom_made": where, "seconds": seconds,
            "coarse_net_seconds": coarse_s,
            "fine_net_seconds": fine_s, "fine_net_seconds_per_round": fine_s / max(1, working),
            "other_seconds": seconds - coarse_s - fine_s, "rounds": rounds,
            "rounds_with_windows": working,
            "seconds_per_round_whole_slices": per_round,
            "projected_seconds_at_published_rounds": (
                coarse_s + 5.22 * per_round if per_round is not None else None),
            "d": [float(d) for d in res.d],
            "windows_fine_per_round": [int(n) for n in res.windows_run],
            "nets": "untrained (p = 0.5 everywhere: fine rounds on whole slices)",
            "precision": resolve_amp(cfg.test.amp, device),
            "cuda_max_memory_mb": (torch.cuda.max_memory_allocated() / 2**20
                                   if is_cuda(device) else None),
            "published": dict(PUBLISHED["rstn"])}


def part_training_projection(sizes: CheckSizes, device: str, budget: Budget) -> dict:
    """`proj_iterations` training iterations at the `colab` scale (paper scale at
    `proj_fallback_size` px when that scale does not exist yet), stepwise (one FCN-8s on
    full slices) and RSTN (T = cfg.rstn.T), and the fold time they project.

    Returns:
        {"scale", "note", "size", "rows": per method s/it, iterations per fold, projected
        hours}, net time only (no data loading).
    """
    _free(device)
    note = None
    try:
        scale, size = "colab", bench_config("colab", device).slice_size
    except ValueError:                                     # no such scale in this version
        scale, size = "paper", sizes.proj_fallback_size
        note = f"get_config('colab') does not exist: paper scale at {size} px instead"
    size = min(size, sizes.fcn_size)                       # --dry: never above the tiny size
    cfg = _cfg(scale, device, sizes, slice_size=size)
    x, y = _synthetic_batch(size, cfg.train.batch_size, device)
    n_views = len(cfg.views)
    t, r = cfg.train, cfg.rstn
    plans = {"stepwise": (lambda: stepwise_step(cfg, x, y, device),
                          n_views * (t.coarse_iterations + t.fine_iterations),
                          "coarse + fine iterations x views; fine ones timed as coarse "
                          "(full slices: an upper bound)"),
             "rstn": (lambda: rstn_step(cfg, x, y, r.T, device),
                      n_views * (r.gt_iterations + r.pred_iterations + r.noisy_iterations),
                      f"gt + pred + noisy iterations x views, T = {r.T}")}
    rows = []
    for method, (make, per_fold, how) in plans.items():
        if budget.left() < 3:
            rows.append({"method": method, "skipped": "part budget spent"})
            continue
        _free(device)
        model, step = make()
        tm = time_call(step, device, sizes.proj_iterations, sizes.train_warmup,
                       budget_s=max(1.0, budget.left() / 2.5))
        s_it = tm["median"]
        rows.append({"method": method, "iterations_timed": tm["repeats"],
                     "seconds_per_iteration": s_it, "iterations_per_s": 1 / s_it,
                     "iterations_per_fold": per_fold, "fold_iterations": how,
                     "projected_fold_hours": s_it * per_fold / 3600,
                     "memory_peak_mb": (torch.cuda.max_memory_allocated() / 2**20
                                        if is_cuda(device) else None)})
        del model, step
    ok = {r_["method"]: r_ for r_ in rows if "seconds_per_iteration" in r_}
    both = None
    if r.from_stepwise and len(ok) == 2:
        both = ok["stepwise"]["projected_fold_hours"] + ok["rstn"]["projected_fold_hours"]
    return {"scale": scale, "note": note, "size": size, "batch": cfg.train.batch_size,
            "width": cfg.model.width, "precision": resolve_amp(cfg.train.amp, device),
            "rows": rows, "rstn_from_stepwise": r.from_stepwise,
            "projected_rstn_fold_hours_with_stepwise_start": both,
            "what": "net time only (forward, backward, optimiser step); no data loading"}
