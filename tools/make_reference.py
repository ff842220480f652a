#!/usr/bin/env python
"""Ship a trained fold as reference nets: weights only, half precision, with its config,
results, loss curves and provenance, in a folder that `rstn test --runs reference` reads as an
ordinary run root.

    python tools/make_reference.py RUN_ROOT --scale standard --method stepwise --fold 0 \\
        --command "rstn train --method stepwise --fold 0 --scale standard" [--commit SHA]

copies RUN_ROOT/<scale>/<method>/fold<K>/ to reference/<scale>/<method>/fold<K>/.
"""
from __future__ import annotations

import argparse
import json
import platform
import shutil
import subprocess
from datetime import datetime, timezone
from pathlib import Path

import torch

from rstn_core.io import atomic_torch_save, atomic_write_json, load_checkpoint

ROOT = Path(__file__).resolve().parents[1]
KEEP = ("config.json", "train.json", "loss.csv", "saliency.csv", "unet3d.json")


def half_weights(src: Path, dst: Path) -> dict:
    """checkpoint_final.pt -> weights only (float16), iteration, seconds, losses."""
    ck = load_checkpoint(src)
    model = {k: (v.half() if v.is_floating_point() else v) for k, v in ck["model"].items()}
    atomic_torch_save({"model": model, "iteration": ck["iteration"], "losses": ck["losses"],
                       "seconds": ck.get("seconds", 0.0), "seed": ck.get("seed", 0)}, dst)
    return {"net": str(dst.parent.name), "iterations": ck["iteration"],
            "seconds": round(float(ck.get("seconds", 0.0)), 1),
            "bytes": dst.stat().st_size}


def clean_paths(cfg: dict, scale: str) -> dict:
    """No machine paths in a shipped config: the run's own folders become the defaults, and a
    data_root that is the scale's default phantom (`.../phantom_<scale>`) becomes None."""
    cfg = dict(cfg, root=".", run_root="runs")
    if cfg.get("data_root") and Path(cfg["data_root"]).name == f"phantom_{scale}":
        cfg["data_root"] = None
    return cfg


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run_root", type=Path)
    p.add_argument("--scale", default="standard")
    p.add_argument("--method", required=True, choices=("stepwise", "rstn", "unet3d"))
    p.add_argument("--fold", type=int, default=0)
    p.add_argument("--tag", default="", help="the run's tag (folder <method>-<tag>)")
    p.add_argument("--command", required=True, help="the command that trained the fold")
    p.add_argument("--commit", default=None, help="commit of the code that trained it")
    p.add_argument("--out", type=Path, default=ROOT / "reference")
    a = p.parse_args()
    src = a.run_root / a.scale / (a.method + (f"-{a.tag}" if a.tag else "")) / f"fold{a.fold}"
    dst = a.out / a.scale / a.method / f"fold{a.fold}"
    if not (src / "config.json").is_file():
        raise SystemExit(f"make_reference: {src} is not a run folder (no config.json).")
    if dst.exists():
        shutil.rmtree(dst)
    nets = []
    for final in sorted(src.glob("*/checkpoint_final.pt")) + sorted(src.glob("checkpoint_final.pt")):
        net = dst / final.parent.relative_to(src)              # a view's net, or the fold's one
        net.mkdir(parents=True, exist_ok=True)
        nets.append(half_weights(final, net / "checkpoint_final.pt"))
        for name in KEEP:
            if (final.parent / name).is_file():
                shutil.copy2(final.parent / name, net / name)
    for name in KEEP:
        if (src / name).is_file():
            shutil.copy2(src / name, dst / name)
    if (dst / "config.json").is_file():
        atomic_write_json(dst / "config.json",
                          clean_paths(json.loads((dst / "config.json").read_text()), a.scale))
    for f in dst.rglob("*"):
        f.chmod(0o755 if f.is_dir() else 0o644)
    if (src / "test" / "results.json").is_file():
        (dst / "test").mkdir(parents=True, exist_ok=True)
        res = json.loads((src / "test" / "results.json").read_text())
        res.pop("path", None)
        if "config" in res:
            res["config"] = clean_paths(res["config"], a.scale)
        atomic_write_json(dst / "test" / "results.json", res)
    commit = a.commit or subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT,
                                        capture_output=True, text=True).stdout.strip()
    atomic_write_json(dst / "provenance.json", {
        "command": a.command, "commit": commit,
        "copied": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} "
                   f"torch threads here; training threads: see config.json train.threads",
        "train_seconds_total": round(sum(n["seconds"] for n in nets), 1),
        "nets": nets,
        "made_by": "python tools/make_reference.py " + " ".join(
            ["RUN_ROOT", "--scale", a.scale, "--method", a.method, "--fold", str(a.fold)]),
        "weights": "float16, weights only (load with torch.load(weights_only=True))",
    })
    total = sum(n["bytes"] for n in nets)
    print(f"{dst.resolve().relative_to(ROOT)}: {len(nets)} nets, {total / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
