"""RSTN training speed and memory per T (measurement 4): each T in a fresh subprocess
(`python -m rstn_core.bench --train-worker`), so one T's peak memory does not hide the next's."""
from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from rstn_core.algorithms.rstn_model import build_rstn
from rstn_core.bench.flops import count_flops, rate
from rstn_core.bench.measure.algorithms import oracle_label
from rstn_core.bench.timing import log, time_call
from rstn_core.config import get_config
from rstn_core.engine.device import autocast, grad_scaler
from rstn_core.engine.train import make_optimizer
from rstn_core.losses import dice_bce_loss, rstn_loss, soft_dsc_loss
from rstn_core.networks.build import build_net
from rstn_core.views import to_view, window, window_indices

__all__ = ["TRAIN_T", "QUICK_TRAIN_T", "WORKER_MARK", "bench_config", "training_batch",
           "rstn_step", "stepwise_step", "train_worker", "bench_training"]

TRAIN_T = (1, 2, 3, 4, 5)            # CVPR: T up to 5 in training
QUICK_TRAIN_T = (1, 2)
WORKER_MARK = "RSTN_BENCH_WORKER "


def training_batch(cfg, case, view: str = "axial", batch_size: int | None = None
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Full-slice windows of `view` with the target on them, spread over the target's extent.

    Returns:
        (x, y): float32 arrays of shape (batch_size or cfg.train.batch_size, 3, H, W).
    """
    lab = oracle_label(cfg, case)
    vol_v = to_view(window(case.image), view)
    lab_v = to_view(lab, view)
    n = len(vol_v)
    pos = np.flatnonzero(lab_v.reshape(n, -1).any(1))
    if len(pos) == 0:
        raise ValueError(f"bench: case {case.id} has no {cfg.target!r} voxels; cannot build an "
                         "RSTN training batch (use another case or target).")
    b = batch_size or cfg.train.batch_size
    centres = pos[np.linspace(0, len(pos) - 1, b).round().astype(int)]
    idx = window_indices(centres, n)
    return (np.ascontiguousarray(vol_v[idx], np.float32),
            np.ascontiguousarray(lab_v[idx], np.float32))


def bench_config(scale: str, device: str, **overrides):
    """The scale's Config for a speed measurement: `get_config(scale)` on `device` with random
    weights (``model.pretrained = None``: speed does not depend on them, and a GPU machine
    may have no internet to fetch ImageNet VGG16)."""
    return get_config(scale, device=device, **{"model.pretrained": None, **overrides})


def _update(loss, opt, scaler):
    opt.zero_grad(set_to_none=True)
    if scaler is None:
        loss.backward()
        opt.step()
    else:                                       # fp16: scaled loss, as run_training
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()


def rstn_step(cfg, x: torch.Tensor, y: torch.Tensor, T: int, device: str,
              checkpointing: bool = False):
    """A fresh RSTN of the config (`build_rstn`) on `device` and one training step of it, as
    `train_rstn`: forward with T unrolled steps cropping from the ground truth under
    autocast(train.amp), L = Σ_t λ_t L(Y, P(t)) (`losses.rstn_loss`), backward, step.

    Args:
        cfg: the Config (slice_size sets the crop frame); x, y: (N, 3, H, W) on `device`;
        T: unrolled steps; checkpointing: activation checkpointing of the unrolled steps.
    Returns:
        (model, step): call ``step()`` for one iteration.
    """
    model = build_rstn(cfg).to(device).train()
    model.activation_checkpointing = checkpointing
    t, r = cfg.train, cfg.rstn
    groups = [{"params": model.coarse.parameters(), "lr": r.lr},
              {"params": list(model.fine.parameters()) + list(model.saliency.parameters()),
               "lr": r.lr * r.fine_lr_mult}]
    opt = make_optimizer(t.optimizer, groups, r.lr, t.momentum, t.weight_decay)
    scaler = grad_scaler(device, t.amp)
    torch.manual_seed(0)

    def step():
        with autocast(device, t.amp):
            logits, probs = model(x, T=T, ref="gt", y=y)               # crop from the GT
        coarse_logits = logits if t.coarse_loss == "dice_bce" else None
        _update(rstn_loss(probs, y, coarse_logits=coarse_logits), opt, scaler)

    return model, step


def stepwise_step(cfg, x: torch.Tensor, y: torch.Tensor, device: str):
    """A fresh FCN-8s of the config and one coarse training step of it, as `train_coarse`:
    L = 1 - DSC(P, Y) (or Dice + BCE at the CPU scales), backward, optimiser step.

    Returns:
        (net, step): call ``step()`` for one iteration.
    """
    net = build_net(cfg).to(device).train()
    t = cfg.train
    opt = make_optimizer(t.optimizer, net.parameters(), t.coarse_lr, t.momentum,
                         t.weight_decay)
    scaler = grad_scaler(device, t.amp)

    def step():
        with autocast(device, t.amp):
            logits = net(x).float()
        loss = (dice_bce_loss(logits, y) if t.coarse_loss == "dice_bce"
                else soft_dsc_loss(torch.sigmoid(logits), y))
        _update(loss, opt, scaler)

    return net, step


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
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss       # KiB on Linux, B on macOS
    peak = kb / 2**20 if sys.platform == "darwin" else kb / 1024
    return peak, peak, "ru_maxrss"


def train_worker(scale: str, device: str, T: int, batch_file: str, iterations: int,
                 warmup: int, budget_s: float | None, checkpointing: bool = False) -> dict:
    """One T in this (fresh) process: iterations/s, FLOPs per iteration and peak memory.

    Args:
        scale: the Config's scale; device: cpu or cuda; T: unrolled steps; batch_file: an
        .npz with x, y from `training_batch`; iterations, warmup, budget_s: as `time_call`;
        checkpointing: activation checkpointing of the unrolled RSTN.
    Returns:
        The row of the training table (JSON-able).
    """
    cfg = bench_config(scale, device)
    data = np.load(batch_file)
    x = torch.from_numpy(data["x"]).to(device)
    y = torch.from_numpy(data["y"]).to(device)
    _, step = rstn_step(cfg, x, y, T, device, checkpointing)
    cuda = device == "cuda"
    if cuda:
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated() / 2**20
        torch.cuda.reset_peak_memory_stats()
        kind = "torch.cuda.max_memory_allocated"
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
            "optimizer": cfg.train.optimizer, "activation_checkpointing": checkpointing,
            "seconds_per_iteration": timing["median"],
            "iterations_per_s": 1 / timing["median"], "flops_per_iteration": flops,
            "memory_kind": kind, "memory_baseline_mb": base, "memory_peak_mb": peak,
            "memory_delta_mb": peak - base, "timing": timing}


def bench_training(cfg, case, device: str, Ts=TRAIN_T, iterations=5, warmup=2,
                   budget_s=None, peak=None, threads: int | None = None,
                   timeout_s: float = 1800, checkpointing: bool = False) -> list[dict]:
    """RSTN training iterations/s and peak memory for each T, each T in a fresh subprocess.

    Returns:
        One row per T (`train_worker`'s, plus FLOP/s and of peak), or {"T", "error"}.
    """
    x, y = training_batch(cfg, case)
    rows = []
    with tempfile.TemporaryDirectory(prefix="rstn_bench_") as tmp:
        batch_file = str(Path(tmp) / "batch.npz")
        np.savez(batch_file, x=x, y=y)
        env = dict(os.environ)
        root = str(Path(__file__).resolve().parents[3])
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
            log(f"training T={T} (subprocess{', checkpointing' if checkpointing else ''})")
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
            row["flop_per_s"], row["peak_fraction"] = rate(
                row["flops_per_iteration"], row["seconds_per_iteration"], peak)
            rows.append(row)
    return rows
