"""The prepared GPU check: `rstn bench --gpu-check --out DIR` (<= 8 minutes on one CUDA GPU).

Six parts, each in its own try/except with its own time budget (an error or a timeout is
written into the JSON and the next part runs), under a total budget:

1. ``fcn_precision``: full-width FCN-8s forward / forward+backward at 512x512 in fp32, fp16
   and bf16: seconds, TFLOP/s, fraction of the GPU's peak (table of known GPUs by name).
2. ``rstn_memory``: RSTN training (paper config) T = 1..5 at 512 and 256 px: it/s and peak
   memory (`torch.cuda.max_memory_allocated`, reset between).
3. ``algorithm2``: `rstn_predict` (thr 0.99, T = 10) on one 512x512x240 phantom volume with
   untrained full-width nets (time only).
4. ``training_projection``: 300 iterations at the `colab` scale (or the paper scale at
   256 px while that scale does not exist) and the projected fold time.
5. ``notebook``: notebooks/02_dsc_and_loss.ipynb through papermill with device="cuda".
6. ``torchrun``: a one-process torchrun on nccl of a tiny DDP job.

`--dry` runs every part on the CPU at tiny sizes (< 60 s), so CI proves the code path.
The JSON (gpu_check.json) is rewritten after every part, so a killed run keeps what it had;
the Markdown report (gpu_check.md) is written at the end.
"""
from __future__ import annotations

import platform
import signal
import threading
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

import torch

from rstn_core.bench.gpu_jobs import part_notebook, part_torchrun
from rstn_core.bench.gpu_parts import (
    BackgroundVolume,
    Budget,
    CheckSizes,
    part_algorithm2,
    part_fcn_precision,
    part_rstn_memory,
    part_training_projection,
)
from rstn_core.bench.hardware import device_name, gpu_peaks
from rstn_core.bench.published import published_table
from rstn_core.bench.render import render_gpu_check
from rstn_core.bench.timing import log
from rstn_core.errors import ConfigError, RstnError
from rstn_core.io import atomic_write_json, atomic_write_text

__all__ = ["PARTS", "BUDGETS", "DRY_BUDGETS", "TOTAL_BUDGET_S", "DRY_TOTAL_BUDGET_S",
           "PartTimeout", "run_gpu_check"]

PARTS = ("fcn_precision", "rstn_memory", "algorithm2", "training_projection", "notebook",
         "torchrun")
# Seconds per part on the GPU; their sum may exceed the total, which caps them.
BUDGETS = {"fcn_precision": 45, "rstn_memory": 90, "algorithm2": 150,
           "training_projection": 50, "notebook": 60, "torchrun": 40}
TOTAL_BUDGET_S = 450.0               # 7.5 min of parts; imports and start-up fit in 8 min
DRY_BUDGETS = {"fcn_precision": 6, "rstn_memory": 6, "algorithm2": 8,
               "training_projection": 6, "notebook": 12, "torchrun": 25}
DRY_TOTAL_BUDGET_S = 55.0
GRACE_S = 15.0                       # a part is interrupted this long after its budget


class PartTimeout(BaseException):
    """Raised inside a part that ran past its budget (a BaseException, so that the parts'
    own `except Exception` blocks do not swallow it)."""


@contextmanager
def _hard_limit(seconds: float):
    """Interrupt the block with PartTimeout after `seconds` (SIGALRM; main thread only)."""
    usable = hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
    if not usable:
        yield
        return

    def fire(signum, frame):
        raise PartTimeout(f"interrupted after {seconds:.0f} s (part budget + {GRACE_S:.0f} s)")

    old = signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_REAL, max(0.1, seconds))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def _meta(device: str, dry: bool, sizes: CheckSizes, budgets: dict, total: float) -> dict:
    cuda = device == "cuda"
    name = device_name(device)
    peaks, entry = gpu_peaks(name) if cuda else (None, None)
    return {"schema": 1, "kind": "gpu_check", "dry": dry, "device": device,
            "device_name": name, "gpu_table_entry": entry,
            "gpu_peaks_tflop_per_s": ({k: (v / 1e12 if v else None) for k, v in peaks.items()}
                                      if peaks else None),
            "cuda_memory_gb": (torch.cuda.get_device_properties(0).total_memory / 2**30
                               if cuda else None),
            "torch": torch.__version__, "cuda": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version() if cuda else None,
            "python": platform.python_version(),
            "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "total_budget_s": total, "budgets_s": dict(budgets),
            "sizes": {k: (list(v) if isinstance(v, tuple) else v)
                      for k, v in vars(sizes).items()}}


def run_gpu_check(out_dir, dry: bool = False, parts=None,
                  total_budget_s: float | None = None) -> dict:
    """Run the GPU check (or, with `dry`, its CPU code path at tiny sizes) into `out_dir`.

    Args:
        out_dir: folder for gpu_check.json, gpu_check.md and the parts' files (created).
        dry: CPU, tiny sizes, < 60 s. Otherwise CUDA must be available.
        parts: names from PARTS to run (default: all, in that order).
        total_budget_s: seconds for all parts (default TOTAL_BUDGET_S, dry DRY_TOTAL_BUDGET_S);
        every part's budget is scaled by total_budget_s / that default.
    Returns:
        The result dict written as gpu_check.json: meta, parts (status, seconds, budget,
        result or error per part), errors, published, seconds_total.
    """
    unknown = set(parts or ()) - set(PARTS)
    if unknown:
        raise ConfigError(f"--parts {sorted(unknown)}: unknown; choose from {list(PARTS)}.")
    if not dry and not torch.cuda.is_available():
        raise RstnError("the GPU check needs a CUDA GPU and torch sees none; run it on a "
                           "GPU machine, or use --dry for the CPU code-path check.")
    device = "cpu" if dry else "cuda"
    sizes = CheckSizes.dry() if dry else CheckSizes.full()
    default = DRY_TOTAL_BUDGET_S if dry else TOTAL_BUDGET_S
    total = float(default if total_budget_s is None else total_budget_s)
    if total <= 0:
        raise ConfigError(f"--total-budget {total:g}: must be > 0 seconds (e.g. 450).")
    budgets = {k: v * total / default                   # every part scaled with the total
               for k, v in (DRY_BUDGETS if dry else BUDGETS).items()}
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out_dir / "gpu_check.json", out_dir / "gpu_check.md"
    t_all = time.perf_counter()
    all_budget = Budget(total)
    res = {"meta": _meta(device, dry, sizes, budgets, total), "parts": {}, "errors": {},
           "published": published_table()}
    selected = [p for p in PARTS if parts is None or p in parts]
    volume = None
    if not dry and "algorithm2" in selected:          # the CPU-bound phantom, in parallel
        volume = BackgroundVolume(sizes.volume_shape, out_dir / "phantom_volume.npy")
    fns = {"fcn_precision": part_fcn_precision, "rstn_memory": part_rstn_memory,
           "algorithm2": lambda s, d, b: part_algorithm2(s, d, b, volume),
           "training_projection": part_training_projection,
           "notebook": lambda s, d, b: part_notebook(s, d, b, out_dir),
           "torchrun": lambda s, d, b: part_torchrun(s, d, b, out_dir)}
    try:
        _run_parts(res, selected, fns, sizes, device, budgets, all_budget, json_path, t_all)
    finally:
        if volume is not None:
            volume.stop()
            Path(volume.path).unlink(missing_ok=True)
    res["seconds_total"] = time.perf_counter() - t_all
    atomic_write_json(json_path, res)
    atomic_write_text(md_path, render_gpu_check(res))
    return res


def _run_parts(res, selected, fns, sizes, device, budgets, all_budget, json_path, t_all):
    """Each part under its budget (and what is left of the total); errors into `res`."""
    for name in selected:
        seconds = min(budgets[name], all_budget.left())
        entry = {"budget_s": budgets[name], "budget_given_s": max(0.0, seconds)}
        if seconds < 1:
            entry.update(status="skipped", seconds=0.0, error="total budget spent")
            res["parts"][name] = entry
            res["errors"][name] = entry["error"]
            continue
        log(f"gpu check: {name} (budget {seconds:.0f} s)")
        t0 = time.perf_counter()
        try:
            with _hard_limit(seconds + GRACE_S):
                entry["result"] = fns[name](sizes, device, Budget(seconds))
            entry["status"] = "ok"
        except PartTimeout as e:
            entry.update(status="timeout", error=str(e))
        except Exception as e:                           # one failing part must not stop others
            msg = str(e).splitlines()[0] if str(e) else ""
            entry.update(status="error", error=f"{type(e).__name__}: {msg}"[:500])
        entry["seconds"] = time.perf_counter() - t0
        if "error" in entry:
            res["errors"][name] = entry["error"]
            log(f"gpu check: {name}: {entry['error']}")
        res["parts"][name] = entry
        if device == "cuda":
            torch.cuda.empty_cache()
        res["seconds_total"] = time.perf_counter() - t_all
        atomic_write_json(json_path, res)                # a killed run keeps what it had
