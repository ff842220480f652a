"""The `rstn` command: one subcommand per stage of the book's pipeline.

    rstn phantom --scale standard --cases 20 --out data/phantom_standard
    rstn inspect PATH
    rstn train   --method stepwise --fold 0 --scale standard [--view axial] [--resume]
    rstn test    --method stepwise --fold 0 --scale standard
    rstn report  [--runs runs/standard]
    rstn folds   --notebook notebooks/06_rstn_testing.ipynb --folds 0 1 2 3 -p scale paper
    rstn run     --scale smoke          (the main job: data, train, test, table)
    rstn config  --scale smoke [--out FILE]
    rstn book    [--scale smoke]     (execute every notebook and build the book)
    rstn bench   --scale standard    (speed and memory; see benchmarks/README.md)

Several processes (DDP; gloo on CPU, nccl on CUDA; book/performance.md):
    torchrun --nproc_per_node=2 -m rstn_core.cli train --method stepwise --fold 0 --scale smoke

Bad input ends with one line `rstn: error: ...` and exit code 2, never a traceback.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from rstn_core.bench import DESCRIPTION as BENCH_DESCRIPTION
from rstn_core.bench import add_arguments as add_bench_arguments
from rstn_core.bench import run_command as run_bench_command

__all__ = ["main", "build_parser"]


def _add_common(p, method=True, fold=True):
    p.add_argument("--scale", default="smoke", choices=["smoke", "standard", "paper"],
                   help="named scale of every knob (default: smoke)")
    p.add_argument("--config", help="a JSON/YAML config file (overrides --scale)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="dotted config override, e.g. --set train.zoom=1 (repeatable)")
    p.add_argument("--data", help="data set root (default: the phantom of the scale)")
    p.add_argument("--runs", default="runs", help="run folder root (default: runs)")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available)")
    p.add_argument("--seed", type=int, default=None, help="seed (default: the config's)")
    p.add_argument("--target", default=None, help="target structure (default: pancreas)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    if method:
        p.add_argument("--method", required=True, choices=["stepwise", "rstn"],
                       help="stepwise fixed-point model or RSTN")
    if fold:
        p.add_argument("--fold", type=int, required=True, help="cross-validation fold, 0..3")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="rstn", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)

    p = sub.add_parser("phantom", help="write the synthetic CT phantom data set")
    p.add_argument("--scale", default="standard", choices=["smoke", "standard", "paper"],
                   help="size of the volumes (default: standard)")
    p.add_argument("--cases", type=int, default=20, help="number of cases (default: 20)")
    p.add_argument("--out", default=None, help="output folder (default: data/phantom_<scale>)")
    p.add_argument("--seed", type=int, default=0, help="seed (default: 0)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="phantom knob override, e.g. --set lookalike=0 (repeatable)")

    p = sub.add_parser("inspect", help="one-screen summary of a scan or a data set")
    p.add_argument("path", help="a NIfTI file, a DICOM folder or a data set root")

    p = sub.add_parser("config", help="print or write the config of a scale")
    _add_common(p, method=False, fold=False)
    p.add_argument("--out", help="write it to this .json/.yaml file")

    p = sub.add_parser("train", help="train the nets of one fold")
    _add_common(p)
    p.add_argument("--view", action="append", choices=["coronal", "sagittal", "axial"],
                   help="only this view (repeatable; default: all three)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run")

    p = sub.add_parser("test", help="test one fold (Algorithm 1 or 2) and write results.json")
    _add_common(p)
    p.add_argument("--equal-time", action="store_true",
                   help="stepwise: fine nets at the coarse nets' training time (snapshots)")

    p = sub.add_parser("report", help="aggregate fold results into the papers' tables")
    p.add_argument("--runs", default="runs", help="run folder root (default: runs)")
    p.add_argument("--scale", default=None, help="only this scale (default: every scale found)")
    p.add_argument("--book", default="book/results_generated.md",
                   help="markdown file for the book's results page")

    p = sub.add_parser("compare", help="paired comparison of two runs on their common cases")
    p.add_argument("a", help="a method's run folder, e.g. runs/standard/rstn")
    p.add_argument("b", help="the run it is compared with, e.g. runs/equal_time/standard/stepwise")
    p.add_argument("--a-stop", default=None, help="stop rule of A: 0.90, 0.95, 0.99 or best "
                   "(default: 0.95 for stepwise, 0.99 for RSTN)")
    p.add_argument("--b-stop", default=None, help="stop rule of B (default as for A)")

    p = sub.add_parser("figures", help="the result figures (convergence, context case, "
                       "saliency maps) of finished runs, as PNG files")
    p.add_argument("--runs", default="runs", help="run folder root (default: runs)")
    p.add_argument("--scale", default="standard", help="scale of the runs (default: standard)")
    p.add_argument("--rstn", default="rstn", help="RSTN run folder name, e.g. rstn-k5 "
                   "(default: rstn)")
    p.add_argument("--out", default="book/figures", help="output folder (default: book/figures)")

    p = sub.add_parser("folds", help="run a notebook once per fold with papermill")
    p.add_argument("--notebook", required=True, help="the notebook to run")
    p.add_argument("--folds", type=int, nargs="+", default=[0, 1, 2, 3], help="folds to run")
    p.add_argument("-p", "--parameter", nargs=2, action="append", default=[],
                   metavar=("NAME", "VALUE"), help="papermill parameter (repeatable)")
    p.add_argument("--out", default="runs/notebooks", help="output root (default: runs/notebooks)")
    p.add_argument("--jobs", type=int, default=1, help="folds run side by side (default: 1)")

    p = sub.add_parser("run", help="the main job: phantom, train, test and the table")
    _add_common(p, method=False, fold=False)
    p.add_argument("--methods", nargs="+", default=["stepwise"], choices=["stepwise", "rstn"],
                   help="methods to run (default: stepwise)")
    p.add_argument("--folds", type=int, nargs="+", default=[0], help="folds (default: 0)")
    p = sub.add_parser("book", help="execute every notebook and build the book (jupyter-book)")
    p.add_argument("--scale", default="smoke", choices=["smoke", "standard", "paper"],
                   help="scale the notebooks run at (default: smoke)")

    p = sub.add_parser("bench", help="benchmarks: slices/s, Algorithm 1/2 time, memory, FLOP/s; "
                       "--gpu-check: the prepared check of one CUDA GPU",
                       description=BENCH_DESCRIPTION)
    add_bench_arguments(p)
    return ap


def _config(args):
    from rstn_core.config import Config, get_config
    cfg = Config.load(args.config) if args.config else get_config(args.scale)
    over = {}
    for kv in args.set:
        if "=" not in kv:
            raise ValueError(f"--set {kv!r}: expected KEY=VALUE, e.g. train.zoom=1.")
        k, v = kv.split("=", 1)
        over[k] = _parse_value(v)
    if args.data:
        over["data_root"] = args.data
    over["run_root"] = args.runs
    if args.seed is not None:
        over["seed"] = args.seed
    if args.target:
        over["target"] = args.target
    import torch
    over["device"] = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    return cfg.replace(**over)


def _parse_value(v: str):
    import json
    try:
        return json.loads(v)
    except ValueError:
        return v


def _cmd_phantom(args):
    from dataclasses import replace
    from rstn_core.data.phantom import phantom_preset, write_dataset
    cfg = phantom_preset(args.scale)
    over = {}
    for kv in args.set:
        k, _, v = kv.partition("=")
        over[k] = _parse_value(v)
    if over:
        cfg = replace(cfg, **over)
    out = Path(args.out or f"data/phantom_{args.scale}")
    t0 = time.perf_counter()
    write_dataset(out, cfg, args.cases, args.seed)
    print(f"wrote {args.cases} {args.scale} cases to {out} in {time.perf_counter() - t0:.1f} s")


def _cmd_inspect(args):
    from rstn_core.data import inspect_path
    print(inspect_path(args.path))


def _cmd_config(args):
    cfg = _config(args)
    if args.out:
        (cfg.to_yaml if args.out.endswith((".yml", ".yaml")) else cfg.to_json)(args.out)
        print(f"wrote {args.out}")
    else:
        print(cfg.to_json())


def _cmd_train(args):
    from rstn_core.experiments.pipeline import train_fold
    cfg = _config(args)
    stats = train_fold(cfg, args.method, args.fold, views=args.view, resume=args.resume,
                       progress=not args.quiet)
    from rstn_core.engine.distributed import is_main
    for name, s in (stats.items() if is_main() else ()):   # torchrun: rank 0 reports
        print(f"{name}: {s['iterations']} it, {s['seconds']:.1f} s"
              f"{' (already trained)' if s.get('skipped') else ''}")


def _cmd_test(args):
    from rstn_core.experiments.pipeline import test_fold
    from rstn_core.experiments.report import fold_table
    cfg = _config(args)
    res = test_fold(cfg, args.method, args.fold, progress=not args.quiet,
                    equal_time=args.equal_time)
    print(fold_table(res))
    print(f"results: {res['path']}")


def _cmd_report(args):
    from rstn_core.experiments.report import report
    print(report(args.runs, scale=args.scale, book_path=args.book))


def _cmd_compare(args):
    from rstn_core.experiments.report import compare_runs
    print(compare_runs(args.a, args.b, args.a_stop, args.b_stop))


def _cmd_figures(args):
    from rstn_core.plots.figures import write_figures
    res = write_figures(args.runs, args.scale, args.out, args.rstn)
    c = res["context"]
    print(f"context case: {c['id']} (fold {c['fold']}), axial slice {c['index']}: slice DSC "
          f"stepwise {100 * c['dsc_stepwise']:.1f} %, RSTN {100 * c['dsc_rstn']:.1f} %")
    print("wrote " + ", ".join(res["files"]))


def _cmd_folds(args):
    from rstn_core.experiments.fold_runner import run_folds
    run_folds(args.notebook, args.folds, dict(args.parameter), args.out, jobs=args.jobs)


def _cmd_run(args):
    from rstn_core.experiments.pipeline import main_job
    cfg = _config(args)
    main_job(cfg, args.methods, args.folds, progress=not args.quiet)


def _cmd_book(args):
    import os
    import shutil
    import subprocess
    root = Path(__file__).resolve().parents[1]
    if not (root / "_config.yml").is_file():
        raise FileNotFoundError(f"no _config.yml in {root}; run from a clone of the repository.")
    env = dict(os.environ)
    if args.scale == "smoke":
        env["RSTN_SMOKE"] = "1"
    shutil.rmtree(root / "_build" / ".jupyter_cache", ignore_errors=True)
    t0 = time.perf_counter()
    run = subprocess.run([shutil.which("jupyter-book") or "jupyter-book", "build", str(root),
                          "--path-output", str(root)], env=env)
    index = root / "_build" / "html" / "index.html"
    if run.returncode or not index.is_file():
        raise RuntimeError(f"the book build failed (exit {run.returncode}); see the log above.")
    print(f"book built in {time.perf_counter() - t0:.0f} s: {index}")


def _cmd_bench(args):
    run_bench_command(args)


COMMANDS = {"phantom": _cmd_phantom, "inspect": _cmd_inspect, "config": _cmd_config,
            "train": _cmd_train, "test": _cmd_test, "report": _cmd_report,
            "folds": _cmd_folds, "figures": _cmd_figures, "compare": _cmd_compare, "run": _cmd_run, "book": _cmd_book,
            "bench": _cmd_bench}


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    try:
        COMMANDS[args.cmd](args)
    except BrokenPipeError:                     # `rstn inspect ... | head`
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print("rstn: interrupted; rerun with --resume to continue from the last checkpoint.",
              file=sys.stderr)
        return 130
    except (ValueError, FileNotFoundError, FileExistsError, NotADirectoryError,
            PermissionError, RuntimeError) as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        print(f"rstn: error: {msg}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
