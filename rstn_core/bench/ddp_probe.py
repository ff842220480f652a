"""A tiny DDP job for the GPU check: run under torchrun, it proves the process group works.

    python -m torch.distributed.run --nproc_per_node=1 --standalone \\
        rstn_core/bench/ddp_probe.py --backend nccl --out probe.json

(run as a file, it imports torch and the standard library only: a quick start-up).

Each rank joins the group (nccl on its CUDA device, gloo on the CPU), all-reduces its rank + 1
(the sum must be N(N+1)/2), and takes one DistributedDataParallel step of a small linear
model; rank 0 writes the report as JSON to --out.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import torch
import torch.distributed as dist
import torch.nn as nn
from torch.nn.parallel import DistributedDataParallel

__all__ = ["probe", "main"]


def probe(backend: str) -> dict:
    """Join the process group on `backend`, all-reduce, one DDP step; returns the report.

    Raises RuntimeError when not started by torchrun (no RANK / WORLD_SIZE) or when nccl is
    asked for without a CUDA device.
    """
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        raise RuntimeError("ddp_probe: no RANK/WORLD_SIZE; start it with torchrun "
                           "(python -m torch.distributed.run --nproc_per_node=1 ...).")
    if backend == "nccl" and not torch.cuda.is_available():
        raise RuntimeError("ddp_probe: --backend nccl needs CUDA; use --backend gloo on a CPU.")
    t0 = time.perf_counter()
    local = int(os.environ.get("LOCAL_RANK", 0))
    device = torch.device("cuda", local) if backend == "nccl" else torch.device("cpu")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(backend)
    try:
        rank, world = dist.get_rank(), dist.get_world_size()
        t = torch.tensor([float(rank + 1)], device=device)
        dist.all_reduce(t)
        torch.manual_seed(0)
        model = DistributedDataParallel(nn.Linear(16, 4).to(device),
                                        device_ids=[local] if device.type == "cuda" else None)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        loss = model(torch.ones(8, 16, device=device)).pow(2).mean()
        loss.backward()
        opt.step()
        dist.barrier()
        return {"backend": backend, "world_size": world, "rank": rank, "device": str(device),
                "device_name": (torch.cuda.get_device_name(device) if device.type == "cuda"
                                else "cpu"),
                "all_reduce_sum": float(t.item()),
                "all_reduce_ok": float(t.item()) == world * (world + 1) / 2,
                "ddp_step_loss": float(loss.item()),
                "nccl_version": (".".join(map(str, torch.cuda.nccl.version()))
                                 if backend == "nccl" else None),
                "seconds_in_probe": time.perf_counter() - t0}
    finally:
        dist.destroy_process_group()


def main(argv=None) -> int:
    """Command line of the probe (see the module docstring); returns the exit code."""
    ap = argparse.ArgumentParser(prog="ddp_probe.py",
                                 description=__doc__.split("\n")[0])
    ap.add_argument("--backend", default="nccl", choices=["nccl", "gloo"],
                    help="process group backend (default: nccl)")
    ap.add_argument("--out", required=True, help="JSON report written by rank 0")
    args = ap.parse_args(argv)
    try:
        res = probe(args.backend)
    except RuntimeError as e:
        print(f"ddp_probe: error: {str(e).splitlines()[0]}", file=sys.stderr)
        return 2
    if res["rank"] == 0:                       # atomic, without rstn_core.io
        tmp = f"{args.out}.tmp{os.getpid()}"
        with open(tmp, "w") as f:
            json.dump(res, f, indent=2)
        os.replace(tmp, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
