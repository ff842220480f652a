"""The subprocess parts of the prepared GPU check: one notebook of the book through
papermill, and a one-process torchrun of a tiny DDP job (`ddp_probe`). Each runs in a child
process killed at the part's budget."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import nbformat

import rstn_core
from rstn_core.bench.gpu_parts import Budget, CheckSizes
from rstn_core.engine.device import is_cuda

__all__ = ["part_notebook", "part_torchrun"]


def _repo_root() -> Path:
    return Path(rstn_core.__file__).resolve().parents[1]


def _run(cmd, env, budget: Budget, what: str) -> tuple[subprocess.CompletedProcess, float]:
    """Run `cmd` killed at the part's budget; (the finished process, its seconds)."""
    limit = max(5.0, budget.left())
    t0 = time.perf_counter()
    try:
        run = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=limit)
    except subprocess.TimeoutExpired:
        raise TimeoutError(f"{what} did not finish within {limit:.0f} s (the part's budget)"
                           ) from None
    return run, time.perf_counter() - t0


def _env() -> dict:
    env = dict(os.environ)
    root = str(_repo_root())
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def _one_cell_notebook(path: Path) -> Path:
    """A notebook with a parameters cell (device) and one cell printing it (--dry)."""
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('device = "cpu"\nscale = "smoke"\nrun_root = None')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell('print(f"device={device} scale={scale}")')]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nbformat.write(nb, str(path))
    return path


def part_notebook(sizes: CheckSizes, device: str, budget: Budget, out_dir: Path) -> dict:
    """One notebook of the book through papermill with `device` (a subprocess, killed at the
    part's budget); the executed notebook is kept in `out_dir`. With ``sizes.notebook =
    None`` (--dry) a one-cell notebook stands in, to prove the papermill path quickly.

    Returns:
        {"notebook", "output", "seconds", "device_line": what the notebook printed}.
    """
    if sizes.notebook is None:
        nb = _one_cell_notebook(Path(out_dir) / "one_cell.ipynb")
    else:
        nb = _repo_root() / sizes.notebook
    if not nb.is_file():
        raise FileNotFoundError(f"notebook {nb} not found; the check runs from a clone of the "
                                "repository.")
    out = Path(out_dir) / f"notebook_{nb.stem}.ipynb"
    env = _env()
    if not is_cuda(device):
        env["RSTN_SMOKE"] = "1"
    cmd = [sys.executable, "-m", "papermill", str(nb), str(out), "-p", "device", device,
           "-p", "scale", "smoke", "-p", "run_root", str(Path(out_dir) / "notebook_runs"),
           "--cwd", str(nb.parent), "--no-progress-bar"]
    run, seconds = _run(cmd, env, budget, "papermill")
    if run.returncode:
        tail = [ln for ln in run.stderr.strip().splitlines() if ln.strip()][-3:]
        raise RuntimeError(f"papermill exit {run.returncode}: {' | '.join(tail)}"[:500])
    device_line = None
    try:
        for cell in json.loads(out.read_text()).get("cells", []):
            for o in cell.get("outputs", []):
                text = "".join(o.get("text", []))
                if "device=" in text or "device:" in text:
                    device_line = device_line or text.strip().splitlines()[0][:200]
    except (OSError, ValueError):
        pass
    return {"notebook": sizes.notebook or "one-cell notebook (--dry)", "output": str(out),
            "device": device,
            "seconds": seconds, "device_line": device_line}


def part_torchrun(sizes: CheckSizes, device: str, budget: Budget, out_dir: Path) -> dict:
    """A one-process torchrun (`torch.distributed.run --nproc_per_node=1 --standalone`) of
    the script ddp_probe.py on `backend` (nccl on the GPU, gloo for --dry); run as a file, so
    the child imports torch only, not the whole package.

    Returns:
        The probe's report (backend, world size, all-reduce result, DDP step) + seconds.
    """
    report = Path(out_dir) / "torchrun_probe.json"
    report.unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=1", "--standalone",
           str(Path(__file__).with_name("ddp_probe.py")), "--backend", sizes.backend,
           "--out", str(report)]
    run, seconds = _run(cmd, _env(), budget, "torchrun")
    if run.returncode or not report.is_file():
        tail = [ln for ln in run.stderr.strip().splitlines() if ln.strip()][-3:]
        raise RuntimeError(f"torchrun exit {run.returncode}: {' | '.join(tail)}"[:500])
    res = json.loads(report.read_text())
    res["seconds"] = seconds
    return res
