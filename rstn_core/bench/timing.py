"""Wall-clock timing: medians after warm-up, with the GPU synchronised before each reading."""
from __future__ import annotations

import statistics
import sys
import time

import torch

__all__ = ["sync", "time_call", "first_call_seconds", "log"]

_T0 = time.perf_counter()


def sync(device: str):
    """Wait for the device's queued work (CUDA); nothing on the CPU."""
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def time_call(fn, device: str = "cpu", repeats: int = 5, warmup: int = 1,
              budget_s: float | None = None) -> dict:
    """Median wall-clock seconds of `fn()` over `repeats` runs after `warmup` runs.

    Stops early once `budget_s` seconds of timed runs are spent (at least one run is timed).

    Args:
        fn: the call to time; device: synchronised before each clock reading;
        repeats, warmup: run counts (>= 0); budget_s: seconds of timed runs at most.
    Returns:
        {"median", "min", "max", "repeats", "times"} in seconds.
    """
    if repeats < 0 or warmup < 0:
        raise ValueError(f"time_call: repeats={repeats}, warmup={warmup}; both must be >= 0.")
    for _ in range(warmup):
        fn()
    sync(device)
    times, start = [], time.perf_counter()
    while len(times) < max(1, repeats):
        t0 = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t0)
        if budget_s is not None and time.perf_counter() - start > budget_s:
            break
    return {"median": statistics.median(times), "min": min(times), "max": max(times),
            "repeats": len(times), "times": times}


def first_call_seconds(fn, device: str) -> float:
    """Seconds of one call of `fn` (with torch.compile: the compilation for this shape)."""
    t0 = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - t0


def log(msg: str):
    """One progress line on stderr, with the seconds since the package was imported."""
    print(f"bench [{time.perf_counter() - _T0:6.1f} s]: {msg}", file=sys.stderr, flush=True)
