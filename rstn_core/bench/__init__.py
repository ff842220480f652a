"""Benchmarks: how fast the nets and the two algorithms run, and how much of the machine they use.

    rstn bench --scale smoke --quick --out runs/bench/smoke_cpu.json
    rstn bench --scale standard --device cpu --out runs/bench/standard_cpu.json
    rstn bench --scale paper --device cuda --out runs/bench/paper_cuda.json
    rstn bench --render runs/bench/standard_cpu.json runs/bench/paper_cuda.json \\
               --markdown book/performance_generated.md
    rstn bench --gpu-check --out runs/bench/gpu_check        (<= 8 min on one CUDA GPU)
    rstn bench --gpu-check --dry --out /tmp/gpu_check         (its CPU code path, < 60 s)

(`python -m rstn_core.bench ...` takes the same arguments.) benchmarks/README.md says what
every number means. The package, one idea per module:

    flops       FLOP counting (torch's FlopCounterMode; nets on the meta device)
    hardware    processor / GPU names and peak FLOP/s, other processes on the CPU
    timing      wall-clock medians after warm-up (CUDA synchronised)
    authors_fcn a reference model of the authors' FCN-8s (pad 100, ceil pools, crops 5/9/31)
    measure     the measurements: nets (forward, inference options, full width beside the
                authors' architecture, batched), algorithms (oracle nets), volumes (Algorithm
                2 against volume size; a full-width slab, ours beside the authors'), training
                (RSTN it/s and memory per T, one subprocess each)
    suite       one benchmark run at a scale (run_benchmark)
    published   the papers' and the authors' published figures (not ours), as a table
    render      Markdown tables
    plot        seconds per volume against volume size (book/figures/perf_scaling.png)
    gpu_check   the prepared GPU check (parts in gpu_parts, the DDP job in ddp_probe)
    command     the `rstn bench` arguments and what they do
"""
from __future__ import annotations

import argparse
import sys

from rstn_core.bench.authors_fcn import AuthorsFCN8s
from rstn_core.bench.command import DESCRIPTION, add_arguments, run_command
from rstn_core.bench.flops import authors_fcn8s_flops, count_flops, fcn8s_flops
from rstn_core.bench.gpu_check import PARTS, run_gpu_check
from rstn_core.bench.hardware import (
    CUDA_PEAKS,
    GPU_PEAKS,
    cpu_peak_flops,
    cuda_peak_flops,
)
from rstn_core.bench.measure import (
    bench_algorithms,
    bench_batched,
    bench_cpu_options,
    bench_forward,
    bench_full_width,
    bench_scaling,
    bench_slab,
    bench_training,
    randomise_scores,
)
from rstn_core.bench.published import (
    AUTHORS_CPU_RSTN_ITERATION_96,
    AUTHORS_CPU_SECONDS,
    PUBLISHED,
    PUBLISHED_FIGURES,
)
from rstn_core.bench.render import render_gpu_check, render_markdown, render_result
from rstn_core.bench.suite import run_benchmark
from rstn_core.bench.timing import time_call
from rstn_core.errors import RstnError

__all__ = ["bench_main", "add_arguments", "run_command", "DESCRIPTION", "run_benchmark",
           "run_gpu_check", "PARTS", "count_flops", "fcn8s_flops", "authors_fcn8s_flops",
           "cpu_peak_flops", "cuda_peak_flops", "CUDA_PEAKS", "GPU_PEAKS", "time_call",
           "bench_forward", "bench_full_width", "bench_algorithms", "bench_batched",
           "bench_training", "randomise_scores", "render_result", "render_markdown",
           "render_gpu_check", "AUTHORS_CPU_SECONDS", "AUTHORS_CPU_RSTN_ITERATION_96",
           "PUBLISHED", "PUBLISHED_FIGURES", "AuthorsFCN8s", "bench_cpu_options",
           "bench_scaling", "bench_slab"]


def bench_main(argv: list[str] | None = None) -> int:
    """`python -m rstn_core.bench` / `rstn_core.bench.bench_main([...])`: parse the `rstn
    bench` arguments and run them.

    Args:
        argv: the arguments (default: sys.argv[1:]).
    Returns:
        The exit code: 0, or 2 after one line ``rstn bench: error: ...`` (bad input).
    """
    parser = add_arguments(argparse.ArgumentParser(prog="rstn bench", description=DESCRIPTION))
    try:
        args = parser.parse_args(list(argv) if argv is not None else None)
    except SystemExit as e:                    # --help (0) or a bad argument (2, one line)
        return int(e.code or 0)
    try:
        run_command(args)
    except (RstnError, ValueError, FileNotFoundError) as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        print(f"rstn bench: error: {msg}", file=sys.stderr)
        return 2
    return 0
