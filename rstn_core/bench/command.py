"""The `rstn bench` command: its arguments (shared by `rstn bench` and `python -m
rstn_core.bench`) and what it does with them."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from rstn_core.bench.gpu_check import PARTS, run_gpu_check
from rstn_core.bench.measure import WORKER_MARK, train_worker
from rstn_core.bench.plot import plot_scaling
from rstn_core.bench.render import render_markdown, render_result
from rstn_core.bench.suite import MEASUREMENTS, run_benchmark
from rstn_core.config import SCALES, get_config
from rstn_core.errors import ConfigError, FileFormatError, RstnError
from rstn_core.io import atomic_write_json, atomic_write_text

__all__ = ["DESCRIPTION", "add_arguments", "run_command"]

DESCRIPTION = ("Speed and memory of the nets and of Algorithms 1 and 2 at a scale "
               "(benchmarks/README.md explains every number); --gpu-check runs the prepared "
               "check of one CUDA GPU (<= 8 min) instead.")


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the `rstn bench` arguments to `parser` (cli.py's subparser or bench_main's own).

    Returns:
        The same parser.
    """
    ap = parser
    ap.add_argument("--scale", default="smoke", choices=list(SCALES),
                    help="the scale whose Config (net width, fc6, BN, slice sizes, batch) is "
                         "measured (default: smoke)")
    ap.add_argument("--device", default=None, choices=["cpu", "cuda"],
                    help="cpu or cuda (default: cuda if available)")
    ap.add_argument("--out", default=None,
                    help="JSON file for the results (default: <run_root>/bench/"
                         "<scale>_<device>.json); with --gpu-check a folder (default: "
                         "<run_root>/bench/gpu_check)")
    ap.add_argument("--quick", action="store_true",
                    help="a short run (< 30 s at smoke on 2 cores): fewer repeats, no 512x512 "
                         "full-width pass, T = 2 rounds, training T = 1, 2 only")
    ap.add_argument("--peak-flops", type=float, default=None,
                    help="the device's peak FLOP/s for the 'of peak' columns (default: "
                         "estimated from /proc/cpuinfo or a table of GPUs; benchmarks/README.md)")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch CPU threads (default: torch's default)")
    ap.add_argument("--only", nargs="+", default=None, choices=list(MEASUREMENTS),
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
    ap.add_argument("--label", default=None,
                    help="a name for this run in the tables and the figure (e.g. 'after: "
                         "crop-local fine stage')")
    ap.add_argument("--plot", default=None,
                    help="also draw seconds per volume against volume size (the results' "
                         "'scaling' measurement) into this PNG, e.g. book/figures/perf_scaling.png")
    ap.add_argument("--render", nargs="*", default=None, metavar="JSON",
                    help="measure nothing: render these result files (none: the placeholder) "
                         "to --markdown (or stdout)")
    ap.add_argument("--gpu-check", action="store_true",
                    help="the prepared GPU check (<= 8 min on one CUDA GPU): FCN-8s per "
                         "precision, RSTN training memory, Algorithm 2 on a 512x512x240 "
                         "volume, a training projection, a notebook, torchrun on nccl; writes "
                         "gpu_check.json and gpu_check.md into --out")
    ap.add_argument("--dry", action="store_true",
                    help="with --gpu-check: every part on the CPU at tiny sizes (< 60 s), to "
                         "prove the code path without a GPU")
    ap.add_argument("--parts", nargs="+", default=None, choices=list(PARTS),
                    help="with --gpu-check: run only these parts (default: all)")
    ap.add_argument("--total-budget", type=float, default=None,
                    help="with --gpu-check: seconds for all parts together, every part's "
                         "budget scaled with it (default: 450, dry 55)")
    # internal: one training T in a fresh process (see measure.training.bench_training)
    ap.add_argument("--train-worker", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--T", type=int, default=1, help=argparse.SUPPRESS)
    ap.add_argument("--iterations", type=int, default=5, help=argparse.SUPPRESS)
    ap.add_argument("--warmup", type=int, default=2, help=argparse.SUPPRESS)
    ap.add_argument("--budget", type=float, default=None, help=argparse.SUPPRESS)
    return ap


def _device(args) -> str:
    if args.gpu_check:
        if args.dry:
            return "cpu"
        if args.device == "cpu":
            raise ConfigError("--gpu-check --device cpu: the GPU check runs on CUDA; add --dry "
                             "for the CPU code-path check.")
        if not torch.cuda.is_available():
            raise RstnError("--gpu-check needs a CUDA GPU and torch sees none; run it on a "
                               "GPU machine, or add --dry for the CPU code-path check.")
        return "cuda"
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise RstnError("--device cuda, but torch sees no CUDA device; use --device cpu.")
    return device


def _render(args):
    try:
        results = [json.loads(Path(p).read_text()) for p in args.render]
    except OSError as e:
        raise FileNotFoundError(f"--render: cannot read a result file ({e}); pass JSON files "
                                "written by `rstn bench --out`.") from None
    except ValueError as e:
        raise FileFormatError(f"--render: a result file is not JSON ({e}); pass files "
                              "written by `rstn bench --out`.") from None
    text = render_markdown(results)
    if args.plot and plot_scaling(results, args.plot):
        print(f"wrote {args.plot}")
    if args.markdown:
        atomic_write_text(args.markdown, text)
        print(f"wrote {args.markdown}")
    else:
        print(text)


def run_command(args: argparse.Namespace) -> None:
    """Do what the parsed `rstn bench` arguments ask: a benchmark, the GPU check, rendering,
    or (internal) one training worker.

    Raises an `RstnError` (or FileNotFoundError) with a one-line message on bad input; the
    callers print it as ``error: ...`` and exit 2.
    """
    if args.threads is not None:
        if args.threads < 1:
            raise ConfigError(f"--threads {args.threads}: must be >= 1 (or left out).")
        torch.set_num_threads(args.threads)
    if args.dry and not args.gpu_check:
        raise ConfigError("--dry only goes with --gpu-check (rstn bench --gpu-check --dry).")
    if args.render is not None:
        return _render(args)
    device = _device(args)
    run_root = get_config(args.scale).path("run_root")
    if args.train_worker:                      # internal: one T of measurement 4
        res = train_worker(args.scale, device, args.T, args.train_worker, args.iterations,
                           args.warmup, args.budget, args.checkpointing)
        print(WORKER_MARK + json.dumps(res), flush=True)
        return None
    if args.gpu_check:
        out = Path(args.out) if args.out else run_root / "bench" / "gpu_check"
        res = run_gpu_check(out, dry=args.dry, parts=args.parts, total_budget_s=args.total_budget)
        print(f"wrote {out / 'gpu_check.json'} and {out / 'gpu_check.md'} "
              f"({len(res['errors'])} part(s) with errors)")
        return None
    res = run_benchmark(args.scale, device, quick=args.quick, peak_override=args.peak_flops,
                        only=args.only, checkpointing=args.checkpointing,
                        compile=args.compile, channels_last=args.channels_last)
    res["meta"]["label"] = args.label
    out = Path(args.out) if args.out else run_root / "bench" / f"{args.scale}_{device}.json"
    atomic_write_json(out, res)
    if args.plot and plot_scaling([res], args.plot):
        print(f"wrote {args.plot}")
    print(render_result(res))
    print(f"\nwrote {out}")
    if args.markdown:
        atomic_write_text(args.markdown, render_markdown([res]))
        print(f"wrote {args.markdown}")
    return None
