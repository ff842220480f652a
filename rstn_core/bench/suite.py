"""The benchmark run: all measurements at one scale on one device, into one result dict.

Five measurements, each on the nets and slice sizes of the scale's `Config`
(benchmarks/README.md says what every number means): ``forward`` (FCN-8s slices/s),
``full_width`` (the papers' FCN-8s beside the authors' port), ``algorithms`` (Algorithms 1
and 2 on one phantom volume with oracle nets), ``batched`` (batch 1 vs 32 inference) and
``training`` (RSTN iterations/s and peak memory per T), with FLOPs and the fraction of peak.
"""
from __future__ import annotations

import platform
import time
from datetime import datetime, timezone

import torch

from rstn_core.bench.hardware import available_cpus, device_peak, load_average, running_jobs
from rstn_core.bench.measure import (
    BATCHES,
    FULL_WIDTH_BATCHES,
    FULL_WIDTH_SIZES,
    QUICK_TRAIN_T,
    TRAIN_T,
    bench_algorithms,
    bench_batched,
    bench_config,
    bench_cpu_options,
    bench_forward,
    bench_full_width,
    bench_training,
)
from rstn_core.bench.measure.volumes import SCALING_SHAPES, bench_scaling, bench_slab
from rstn_core.bench.published import published_table
from rstn_core.bench.timing import log
from rstn_core.data.phantom import make_case, phantom_preset
from rstn_core.engine.device import resolve_amp
from rstn_core.errors import ConfigError

__all__ = ["MEASUREMENTS", "SCHEMA", "run_benchmark", "settings"]

SCHEMA = 1
MEASUREMENTS = ("forward", "options", "full_width", "algorithms", "batched", "training",
                "scaling", "slab")
#: Measurements a --quick run leaves out unless --only names them (minutes on a CPU).
SLOW = ("scaling", "slab")
#: The slab's view: one (axial) on the CPU, where three views of a 512x512x32 slab through
#: the authors' net take hours; all three on CUDA.
SLAB_VIEWS = {"cpu": ("axial",), "cuda": ("coronal", "sagittal", "axial")}


def settings(quick: bool) -> dict:
    """Repeats, warm-ups, budgets and sizes of a full (or `quick`) run."""
    if quick:
        return dict(repeats=3, warmup=1, budget_s=1.0, full_sizes=(96,), full_repeats=1,
                    full_batches={96: (1,)}, option_repeats=2,
                    full_warmup=0, T_max=2, batched_repeats=1, train_T=QUICK_TRAIN_T,
                    train_iterations=2, train_warmup=1, train_budget=5.0,
                    scaling_repeats=1, slab_shape=(96, 96, 4), slab_repeats=1)
    return dict(repeats=5, warmup=2, budget_s=20.0, full_sizes=FULL_WIDTH_SIZES,
                full_batches=FULL_WIDTH_BATCHES, option_repeats=7,
                full_repeats=3, full_warmup=1, T_max=None, batched_repeats=3, train_T=TRAIN_T,
                train_iterations=5, train_warmup=2, train_budget=60.0,
                scaling_repeats=3, slab_shape=(512, 512, 4), slab_repeats=2)


def run_benchmark(scale: str, device: str, quick: bool = False,
                  peak_override: float | None = None, only=None, checkpointing: bool = False,
                  compile: bool = False, channels_last: bool = False) -> dict:
    """All measurements (or `only` some) at `scale` on `device`.

    Args:
        scale: smoke, standard or paper; device: cpu or cuda; quick: the short settings;
        peak_override: peak FLOP/s instead of the estimate; only: measurement names;
        checkpointing: RSTN training with activation checkpointing; compile, channels_last:
        the inference speed options (test.compile, test.channels_last).
    Returns:
        The result dict (what `rstn bench` writes as JSON): meta, one key per measurement,
        section_seconds, published (labelled published figures), seconds_total.
    """
    unknown = set(only or ()) - set(MEASUREMENTS)
    if unknown:
        raise ConfigError(f"--only {sorted(unknown)}: unknown; choose from {list(MEASUREMENTS)}.")
    t_all = time.perf_counter()
    s = settings(quick)
    want = set(only or (m for m in MEASUREMENTS if not (quick and m in SLOW)))
    opts = {"compile": compile, "channels_last": channels_last}
    cfg = bench_config(scale, device)
    peak, peak_info = device_peak(device, peak_override)
    dev_name = torch.cuda.get_device_name() if device == "cuda" else peak_info.get("model")
    meta = {"schema": SCHEMA, "scale": scale, "device": device, "device_name": dev_name,
            "quick": quick, "torch": torch.__version__, "python": platform.python_version(),
            "threads": torch.get_num_threads(), "cpus_available": available_cpus(),
            "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "load_before": load_average(), "peak_flops": peak, "peak_info": peak_info,
            "precision": {"test": resolve_amp(cfg.test.amp, device),
                          "train": resolve_amp(cfg.train.amp, device)},
            "model": dict(vars(cfg.model)), "test": {"batch_size": cfg.test.batch_size,
                                                     "max_rounds": cfg.test.max_rounds,
                                                     "fixed_point_margin":
                                                         cfg.test.fixed_point_margin},
            "train_batch_size": cfg.train.batch_size, "zoom": cfg.train.zoom,
            "settings": {k: (list(v) if isinstance(v, tuple) else
                             {str(a): list(b) for a, b in v.items()} if isinstance(v, dict)
                             else v) for k, v in s.items()},
            "running": running_jobs()}
    res = {"meta": meta}
    log(f"phantom case 0 at scale {scale}")
    case = make_case(phantom_preset(scale), cfg.seed, 0)
    meta["volume_shape"] = list(case.image.shape)
    size = tuple(case.image.shape[:2])               # an axial slice: (X, Y)
    T = cfg.test.max_rounds if s["T_max"] is None else min(cfg.test.max_rounds, s["T_max"])
    sections = {
        "forward": (f"FCN-8s forward at {size[0]}x{size[1]}, batches {BATCHES}",
                    lambda: bench_forward(cfg, device, size, BATCHES, s["repeats"], s["warmup"],
                                          s["budget_s"], peak, **opts)),
        "options": (f"inference options at {size[0]}x{size[1]}, batch {cfg.test.batch_size}",
                    lambda: bench_cpu_options(cfg, device, size, cfg.test.batch_size,
                                              s["option_repeats"], 1)),
        "full_width": (f"full-width FCN-8s at {s['full_sizes']}",
                       lambda: bench_full_width(device, s["full_sizes"], s["full_batches"],
                                                s["full_repeats"], s["full_warmup"],
                                                s["budget_s"], peak, **opts)),
        "algorithms": (f"Algorithms 1 and 2, T = {T}",
                       lambda: bench_algorithms(cfg, case, device, T, **opts)),
        "batched": ("batched vs one-at-a-time inference",
                    lambda: bench_batched(cfg, case, device, repeats=s["batched_repeats"],
                                          **opts)),
        "training": (f"RSTN training, T = {list(s['train_T'])}",
                     lambda: bench_training(cfg, case, device, s["train_T"],
                                            s["train_iterations"], s["train_warmup"],
                                            s["train_budget"], peak,
                                            threads=torch.get_num_threads(),
                                            checkpointing=checkpointing)),
        "scaling": (f"Algorithm 2 per volume at {list(SCALING_SHAPES)}, T = {T}",
                    lambda: bench_scaling(cfg, device, SCALING_SHAPES, T,
                                          s["scaling_repeats"], **opts)),
        "slab": (f"full-width slab {s['slab_shape']}: ours and the authors' architecture",
                 lambda: bench_slab(bench_config("paper", device, views=SLAB_VIEWS[device],
                                                 **{"model.width": 1 / 64}),
                                    device, s["slab_shape"], 1, s["slab_repeats"], **opts)),
    }
    res["section_seconds"] = {}
    for name, (what, fn) in sections.items():
        if name in want:
            log(what)
            t0 = time.perf_counter()
            res[name] = fn()
            res["section_seconds"][name] = time.perf_counter() - t0
    if device == "cuda":
        meta["cuda_max_memory_allocated_mb"] = torch.cuda.max_memory_allocated() / 2**20
    meta["load_after"] = load_average()
    meta.update(activation_checkpointing=checkpointing, compile=compile,
                channels_last=channels_last and device == "cuda")
    res["published"] = published_table()
    res["seconds_total"] = time.perf_counter() - t_all
    return res
