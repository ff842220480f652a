"""The `rstn` command: one subcommand per stage of the book's pipeline.

    rstn phantom --scale standard --cases 20 --out data/phantom_standard
    rstn inspect PATH
    rstn train   --method stepwise --fold 0 --scale standard [--view axial] [--resume]
    rstn test    --method stepwise --fold 0 --scale standard
    rstn train|test --method unet3d --fold 0 --scale standard   (the 3D peer; ".[peer]" extra)
    rstn report  [--runs runs/standard]
    rstn folds   --notebook notebooks/06_rstn_testing.ipynb --folds 0 1 2 3 -p scale paper
    rstn run     --scale smoke          (the main job: data, train, test, table)
    rstn config  --scale smoke [--out FILE]
    rstn book    [--scale smoke]     (execute every notebook and build the book)
    rstn bench   --scale standard    (speed and memory; see benchmarks/README.md)

Several processes (DDP; gloo on CPU, nccl on CUDA; book/performance.md):
    torchrun --nproc_per_node=2 -m rstn_core.cli train --method stepwise --fold 0 --scale smoke

Bad input ends with one line `rstn: error: ...` and exit code 2, never a traceback (`rstn
--debug ...` shows it); every setting is checked before anything is written or computed.
"""
from __future__ import annotations

import argparse
import os
import json
import re
import shutil
import subprocess
import sys
import time
import traceback
from pathlib import Path

import torch

from rstn_core.bench import DESCRIPTION as BENCH_DESCRIPTION
from rstn_core.bench import add_arguments as add_bench_arguments
from rstn_core.bench import run_command as run_bench_command
from rstn_core.config import SCALES, Config, get_config, replace_phantom
from rstn_core.data import inspect_path
from rstn_core.data.fetch import add_arguments as add_fetch_arguments
from rstn_core.data.fetch import run as run_fetch
from rstn_core.data.phantom import phantom_preset, write_dataset
from rstn_core.engine.device import check_device
from rstn_core.engine.distributed import is_main
from rstn_core.errors import ConfigError, RstnError, one_line
from rstn_core.experiments.evaluate import STOP_THRESHOLDS
from rstn_core.experiments.fold_runner import run_folds
from rstn_core.experiments.pipeline import main_job, test_fold, train_fold
from rstn_core.experiments.predict import add_arguments as add_predict_arguments
from rstn_core.experiments.predict import run as run_predict
from rstn_core.experiments.breakdown import breakdown_table
from rstn_core.experiments.report import compare_runs, fold_table, report
from rstn_core.experiments.unet3d import test_unet3d, train_unet3d
from rstn_core.io import read_json
from rstn_core.plots.figures import write_figures

__all__ = ["main", "build_parser", "USER_ERRORS"]

#: What `rstn` prints as one line (exit 2): the project's user errors and the file-system
#: mistakes the library reports with the path named. Everything else is a bug: traceback.
USER_ERRORS = (RstnError, FileNotFoundError, FileExistsError, PermissionError,
               NotADirectoryError, IsADirectoryError)
DEFAULT_SCALE = "standard"          # the one --scale default of every verb
_DEFAULT = get_config(DEFAULT_SCALE)

DESCRIPTIONS = {
    "phantom": "Write the synthetic CT phantom (NIfTI images and labels, dataset.json) of a "
               "scale; resumable: existing cases are kept.",
    "inspect": "A one-screen summary of a NIfTI file, a DICOM series or a data set root.",
    "config": "Print the checked configuration of a scale (with --set overrides), or write it "
              "to a JSON/YAML file for --config.",
    "train": "Train the nets of one cross-validation fold (stepwise: coarse and fine per view; "
             "rstn: one RSTN per view, from the stepwise nets), checkpointing as it goes; "
             "--resume continues an interrupted run exactly.",
    "test": "Test one fold's trained nets on its test cases (MICCAI Algorithm 1 or CVPR "
            "Algorithm 2) and write test/results.json beside them.",
    "report": "Aggregate every fold's results.json under a run root into the papers' tables "
              "(and the book's results page).",
    "compare": "Paired comparison of two runs on their common cases (mean gain, wins/losses, p).",
    "figures": "The result figures of finished runs (convergence, context case, saliency maps) "
               "as PNG files.",
    "folds": "Run a notebook once per fold with papermill (resumable: finished folds are skipped).",
    "run": "The main job: the phantom, training and testing of each method and fold, and the "
           "table.",
    "book": "Execute every notebook and build the book with jupyter-book.",
}


class _Parser(argparse.ArgumentParser):
    """argparse whose errors are one line: ``rstn: error: <what>; see `rstn X --help`.``"""

    def error(self, message):
        self.exit(2, f"rstn: error: {one_line(message)} (see `{self.prog} --help`).\n")


def _at_least(lo: int):
    """An argparse type: an integer >= lo, with a one-line message naming the bound."""
    def parse(text):
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if v < lo:
            raise argparse.ArgumentTypeError(f"{v} is below {lo}; give an integer >= {lo}")
        return v
    parse.__name__ = f"integer >= {lo}"
    return parse


def _add_common(p, method=True, fold=True):
    p.add_argument("--scale", default=DEFAULT_SCALE, choices=SCALES,
                   help=f"named scale of every knob (default: {DEFAULT_SCALE})")
    p.add_argument("--config", help="a JSON/YAML config file (overrides --scale)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="dotted config override, e.g. --set train.zoom=1 (repeatable; the "
                        "value is converted to the key's type and checked)")
    p.add_argument("--data", help="data set root (default: the phantom of the scale)")
    p.add_argument("--runs", default=None,
                   help=f"run folder root (default: the config's run_root, {_DEFAULT.run_root})")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available)")
    p.add_argument("--seed", type=_at_least(0), default=None,
                   help=f"seed (default: the config's, {_DEFAULT.seed})")
    p.add_argument("--target", default=None, help="target structure (default: pancreas)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    if method:
        p.add_argument("--method", required=True, choices=["stepwise", "rstn", "unet3d"],
                       help="stepwise fixed-point model, RSTN, or the 3D peer (MONAI 3D "
                            "U-Net; pip install -e \".[peer]\")")
    if fold:
        p.add_argument("--fold", type=_at_least(0), required=True,
                       help=f"cross-validation fold, 0..folds-1 (the config's folds; "
                            f"0..{_DEFAULT.folds - 1} by default)")


def build_parser() -> argparse.ArgumentParser:
    ap = _Parser(prog="rstn", description=__doc__.split("\n")[0])
    ap.add_argument("--debug", action="store_true",
                    help="show the traceback of a user error too (before the verb)")
    sub = ap.add_subparsers(dest="cmd", required=True)

    p = sub.add_parser("phantom", help="write the synthetic CT phantom data set")
    p.add_argument("--scale", default=DEFAULT_SCALE, choices=SCALES,
                   help=f"size of the volumes (default: {DEFAULT_SCALE})")
    p.add_argument("--cases", type=_at_least(1), default=20, help="number of cases (default: 20)")
    p.add_argument("--workers", type=_at_least(1), default=None,
                   help="processes making cases in parallel (default: every core; 1 = none; "
                        "a paper-scale case needs ~2 GB each)")
    p.add_argument("--out", default=None, help="output folder (default: data/phantom_<scale>)")
    p.add_argument("--seed", type=_at_least(0), default=0, help="seed (default: 0)")
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
    p.add_argument("--runs", default=_DEFAULT.run_root,
                   help=f"run folder root (default: {_DEFAULT.run_root})")
    p.add_argument("--scale", default=None, choices=SCALES,
                   help="only this scale (default: every scale found)")
    p.add_argument("--book", default="book/results_generated.md",
                   help="markdown file for the book's results page")
    p.add_argument("--equal-work", default=None, metavar="RUN",
                   help="run folder of stepwise nets trained as long as RSTN (e.g. "
                        "runs_long/standard/stepwise): RSTN is compared with them too")

    p = sub.add_parser("compare", help="paired comparison of two runs on their common cases")
    p.add_argument("a", help="a method's run folder, e.g. runs/standard/rstn")
    p.add_argument("b", help="the run it is compared with, e.g. runs/equal_time/standard/stepwise")
    p.add_argument("--a-stop", default=None, type=_stop_rule, help="stop rule of A: 0.90, "
                   "0.95, 0.99 or best (default: 0.95 for stepwise, 0.99 for RSTN)")
    p.add_argument("--b-stop", default=None, type=_stop_rule,
                   help="stop rule of B (default as for A)")
    p.add_argument("--breakdown", metavar="DATA", default=None,
                   help="also where they differ: DSC on the organ's end slices and core, false "
                        "positives on look-alikes, from the stored predictions and the data set "
                        "DATA the runs were tested on")

    p = sub.add_parser("figures", help="the result figures (convergence, context case, "
                       "saliency maps) of finished runs, as PNG files")
    p.add_argument("--runs", default=_DEFAULT.run_root,
                   help=f"run folder root (default: {_DEFAULT.run_root})")
    p.add_argument("--scale", default=DEFAULT_SCALE, choices=SCALES,
                   help=f"scale of the runs (default: {DEFAULT_SCALE})")
    p.add_argument("--rstn", default="rstn", help="RSTN run folder name, e.g. rstn-k5 "
                   "(default: rstn)")
    p.add_argument("--out", default="book/figures", help="output folder (default: book/figures)")
    p.add_argument("--view", default="axial", choices=["coronal", "sagittal", "axial"],
                   help="view of the context slice and the saliency maps (default: axial)")

    p = sub.add_parser("folds", help="run a notebook once per fold with papermill")
    p.add_argument("--notebook", required=True, help="the notebook to run")
    p.add_argument("--folds", type=_at_least(0), nargs="+",
                   default=list(range(_DEFAULT.folds)),
                   help=f"folds to run (default: 0..{_DEFAULT.folds - 1})")
    p.add_argument("-p", "--parameter", nargs=2, action="append", default=[],
                   metavar=("NAME", "VALUE"), help="papermill parameter (repeatable)")
    p.add_argument("--out", default="runs/notebooks", help="output root (default: runs/notebooks)")
    p.add_argument("--jobs", type=_at_least(1), default=1,
                   help="folds run side by side (default: 1)")

    p = sub.add_parser("run", help="the main job: phantom, train, test and the table")
    _add_common(p, method=False, fold=False)
    p.add_argument("--methods", nargs="+", default=["stepwise"], choices=["stepwise", "rstn"],
                   help="methods to run (default: stepwise)")
    p.add_argument("--folds", type=_at_least(0), nargs="+", default=[0],
                   help=f"folds, each 0..folds-1 (0..{_DEFAULT.folds - 1} by default; "
                        "default: 0)")
    p = sub.add_parser("book", help="execute every notebook and build the book (jupyter-book)")
    p.add_argument("--scale", default=DEFAULT_SCALE, choices=SCALES,
                   help=f"scale the notebooks run at (default: {DEFAULT_SCALE}; smoke: the "
                        "fast build of CI)")

    p = sub.add_parser("bench", help="benchmarks: slices/s, Algorithm 1/2 time, memory, FLOP/s; "
                       "--gpu-check: the prepared check of one CUDA GPU",
                       description=BENCH_DESCRIPTION)
    add_bench_arguments(p)
    add_predict_arguments(sub.add_parser("predict", help="segment scans without labels (NIfTI "
                                         "or DICOM) with trained folds; masks in their grid"))
    add_fetch_arguments(sub.add_parser("fetch", help="download and unpack a public data set "
                                       "(msd-pancreas, nih-pancreas), checksums verified"))
    for action in sub._choices_actions:     # every verb gets a description
        verb = sub.choices[action.dest]
        if not verb.description:
            verb.description = DESCRIPTIONS.get(action.dest) or action.help
    return ap


def _stop_rule(text: str) -> str:
    """An argparse type: a stop rule of results.json ("0.90", "0.95", "0.99" or "best")."""
    allowed = [f"{r:.2f}" for r in STOP_THRESHOLDS] + ["best"]
    try:
        key = text if text == "best" else f"{float(text):.2f}"
    except ValueError:
        key = text
    if key not in allowed:
        raise argparse.ArgumentTypeError(f"{text!r} is not a stop rule; use one of {allowed}")
    return key


def _check_results(paths) -> None:
    """Read every results.json first, so a malformed one is one line naming it."""
    for path in paths:
        read_json(path, "results file", "rerun `rstn test` for that fold, or move it away")


def _overrides(pairs) -> dict:
    """{key: value text} of repeated --set KEY=VALUE (the config converts the values)."""
    over = {}
    for kv in pairs:
        k, sep, v = kv.partition("=")
        if not sep or not k.strip():
            raise ConfigError(f"--set {kv!r}: expected KEY=VALUE, e.g. --set train.zoom=1.")
        over[k.strip()] = v
    return over


def _config(args) -> Config:
    """The checked config of a verb: --config or --scale, then --set and the flags; the
    device is checked (`--device cuda` without CUDA is one line) and --fold/--folds too."""

    cfg = Config.load(args.config) if args.config else get_config(args.scale)
    over = _overrides(args.set)
    if args.data:
        over["data_root"] = args.data
    if args.runs:
        over["run_root"] = args.runs
    if args.seed is not None:
        over["seed"] = args.seed
    if args.target:
        over["target"] = args.target
    if args.device:
        over["device"] = args.device
    elif not args.config:
        over["device"] = "cuda" if torch.cuda.is_available() else "cpu"
    cfg = cfg.replace(**over)
    try:
        check_device(cfg.device)
    except ValueError as e:
        raise ConfigError(f"--device: {e}") from None
    fold = getattr(args, "fold", None)
    for f in [fold] if fold is not None else getattr(args, "folds", None) or []:
        if not 0 <= f < cfg.folds:
            raise ConfigError(f"--fold {f} is out of range: the config has folds={cfg.folds}, "
                              f"so use 0..{cfg.folds - 1} (or --set folds=N).")
    return cfg


def _cmd_phantom(args):
    cfg = replace_phantom(phantom_preset(args.scale), **_overrides(args.set))
    out = Path(args.out or f"data/phantom_{args.scale}")
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"--out {out} is a file; give a folder for the data set (it is "
                                 "created when missing).")
    t0 = time.perf_counter()
    write_dataset(out, cfg, args.cases, args.seed, workers=args.workers)
    print(f"wrote {args.cases} {args.scale} cases to {out} in {time.perf_counter() - t0:.1f} s")


def _cmd_inspect(args):
    print(inspect_path(args.path))


def _cmd_config(args):
    cfg = _config(args)
    if args.out:
        (cfg.to_yaml if args.out.endswith((".yml", ".yaml")) else cfg.to_json)(args.out)
        print(f"wrote {args.out}")
    else:
        print(cfg.to_json())


def _cmd_train(args):
    cfg = _config(args)
    if args.method == "unet3d":
        if args.view:
            raise ConfigError("--view: the 3D peer (unet3d) sees whole volumes; drop --view.")
        stats = train_unet3d(cfg, args.fold, resume=args.resume, progress=not args.quiet)
    else:
        stats = train_fold(cfg, args.method, args.fold, views=args.view, resume=args.resume,
                           progress=not args.quiet)
    for name, s in (stats.items() if is_main() else ()):   # torchrun: rank 0 reports
        print(f"{name}: {s['iterations']} it, {s['seconds']:.1f} s"
              f"{' (already trained)' if s.get('skipped') else ''}")


def _cmd_test(args):
    cfg = _config(args)
    if args.method == "unet3d":
        if args.equal_time:
            raise ConfigError("--equal-time is for stepwise runs; the 3D peer has one net.")
        res = test_unet3d(cfg, args.fold, progress=not args.quiet)
    else:
        res = test_fold(cfg, args.method, args.fold, progress=not args.quiet,
                        equal_time=args.equal_time)
    print(fold_table(res))
    print(f"results: {res['path']}")


def _cmd_report(args):
    if not Path(args.runs).is_dir():
        raise FileNotFoundError(f"run root {args.runs} not found; give the --runs folder that "
                                "`rstn train`/`rstn test` wrote (default: runs).")
    _check_results(Path(args.runs).glob("*/*/fold*/test*/results.json"))
    if args.equal_work:
        if not Path(args.equal_work).is_dir():
            raise FileNotFoundError(f"--equal-work {args.equal_work} not found; give a stepwise "
                                    "run folder, e.g. runs_long/standard/stepwise.")
        _check_results(Path(args.equal_work).glob("fold*/test*/results.json"))
    text = report(args.runs, scale=args.scale, book_path=args.book, equal_work=args.equal_work)
    if text.startswith("no results under"):
        raise RstnError(text)
    print(text)


def _cmd_compare(args):
    if args.breakdown and not Path(args.breakdown).is_dir():
        raise FileNotFoundError(f"--breakdown {args.breakdown}: no such data set folder; give "
                                "the data the runs were tested on, e.g. data/phantom_standard.")
    for run in (args.a, args.b):
        if not Path(run).is_dir():
            raise FileNotFoundError(f"run folder {run} not found; give a method's run folder, "
                                    "e.g. runs/standard/rstn.")
        _check_results(Path(run).glob("fold*/test*/results.json"))
    print(compare_runs(args.a, args.b, args.a_stop, args.b_stop))
    if args.breakdown:
        target = json.loads(next(Path(args.a).glob("fold*/test/results.json")).read_text()
                            ).get("target", "pancreas")
        print()
        print(breakdown_table({args.a: args.a, args.b: args.b}, args.breakdown, target))


def _cmd_figures(args):
    _check_results((Path(args.runs) / args.scale).glob("*/fold*/test*/results.json"))
    res = write_figures(args.runs, args.scale, args.out, args.rstn, view=args.view)
    c = res["context"]
    print(f"context case: {c['id']} (fold {c['fold']}), {args.view} slice {c['index']}: slice DSC "
          f"stepwise {100 * c['dsc_stepwise']:.1f} %, RSTN {100 * c['dsc_rstn']:.1f} %")
    print("wrote " + ", ".join(res["files"]))


def _cmd_folds(args):
    run_folds(args.notebook, args.folds, dict(args.parameter), args.out, jobs=args.jobs)


def _cmd_run(args):
    cfg = _config(args)
    main_job(cfg, args.methods, args.folds, progress=not args.quiet)


_ANSI = re.compile(r"\x1b\[[0-9;]*m")      # sphinx colours its log even into a pipe
_BOOK_PAGE = re.compile(r"reading sources\.\.\. \[ *\d+%\] (\S+)")


def _cmd_book(args):
    root = Path(__file__).resolve().parents[1]
    if not (root / "_config.yml").is_file():
        raise FileNotFoundError(f"no _config.yml in {root}; run from a clone of the repository.")
    env = dict(os.environ)
    if args.scale == "smoke":
        env["RSTN_SMOKE"] = "1"
    shutil.rmtree(root / "_build" / ".jupyter_cache", ignore_errors=True)
    t0 = time.perf_counter()
    log = root / "_build" / "book_build.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as f:          # the whole log to the file, one line per page here
        run = subprocess.Popen([shutil.which("jupyter-book") or "jupyter-book", "build",
                                str(root), "--path-output", str(root)], env=env, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        for line in run.stdout:
            f.write(line)
            page = _BOOK_PAGE.search(_ANSI.sub("", line))
            if page:
                print(f"book: {page.group(1)} ({time.perf_counter() - t0:.0f} s)", flush=True)
        run.wait()
    index = root / "_build" / "html" / "index.html"
    if run.returncode or not index.is_file():
        raise RstnError(f"the book build failed (exit {run.returncode}); see {log}.")
    print(f"book built in {time.perf_counter() - t0:.0f} s: {index}")


def _cmd_bench(args):
    run_bench_command(args)


COMMANDS = {"phantom": _cmd_phantom, "inspect": _cmd_inspect, "config": _cmd_config,
            "train": _cmd_train, "test": _cmd_test, "report": _cmd_report,
            "folds": _cmd_folds, "figures": _cmd_figures, "compare": _cmd_compare,
            "run": _cmd_run, "book": _cmd_book,
            "bench": _cmd_bench, "predict": run_predict, "fetch": run_fetch}


def main(argv=None) -> int:
    """Run one verb; user errors (`USER_ERRORS`) are one line on stderr and exit 2."""
    argv = sys.argv[1:] if argv is None else list(argv)
    debug = "--debug" in argv
    argv = [a for a in argv if a != "--debug"]
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as e:                    # --help (0) or a usage error (2, one line)
        return e.code if isinstance(e.code, int) else 2
    try:
        COMMANDS[args.cmd](args)
    except BrokenPipeError:                     # `rstn inspect ... | head`
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print("rstn: interrupted; rerun with --resume to continue from the last checkpoint.",
              file=sys.stderr)
        return 130
    except USER_ERRORS as e:
        if debug:
            traceback.print_exc()
        print(f"rstn: error: {one_line(e) or type(e).__name__}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
