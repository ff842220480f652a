"""One training loop for every net of the book (coarse, fine, RSTN).

Exact resume by construction: everything random in iteration i (which windows, which margins,
dropout) is drawn from generators seeded by (seed, i), and the learning rate is a function of i,
so restoring the model, the optimiser state and i restores the run. Checkpoints are written
atomically every `checkpoint_every` iterations; `loss.csv` is rewritten with each checkpoint.

Under `torchrun --nproc_per_node=N` (rstn_core.engine.distributed) the same loop runs on N ranks:
DistributedDataParallel averages the gradients of each rank's share of the batch, the logged
loss is the mean over ranks, and only rank 0 writes files (the others wait at a barrier).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from tqdm.auto import tqdm

from rstn_core.engine import distributed
from rstn_core.engine.device import grad_scaler
from rstn_core.io import (atomic_torch_save, atomic_write_text, clean_stale_temps,
                          load_checkpoint)

__all__ = ["TrainSpec", "run_training", "make_optimizer", "iteration_rng", "load_final",
           "snapshot_at_time", "FINAL", "LATEST"]

FINAL = "checkpoint_final.pt"
LATEST = "checkpoint_latest.pt"


def iteration_rng(seed: int, i: int) -> np.random.Generator:
    """The generator of iteration i: the data order is a function of (seed, i) alone."""
    return np.random.default_rng([seed, i])


def _dropout_seed(seed: int, i: int) -> int:
    """Torch's seed in iteration i (dropout): a function of (seed, i), and of the rank in a
    process group, so that the ranks' shares of a batch get different dropout masks."""
    base = seed * 1_000_003 + i
    world = distributed.world_size()
    return base if world == 1 else base * world + distributed.rank()


def _device_of(model: torch.nn.Module) -> str:
    p = next(model.parameters(), None)
    return "cpu" if p is None else p.device.type


def make_optimizer(name: str, param_groups, lr: float, momentum: float = 0.99,
                   weight_decay: float = 5e-4):
    """SGD with momentum (papers) or Adam (CPU scales)."""
    if name == "sgd":
        return torch.optim.SGD(param_groups, lr=lr, momentum=momentum, weight_decay=weight_decay)
    if name == "adam":
        return torch.optim.Adam(param_groups, lr=lr, weight_decay=weight_decay)
    raise ValueError(f"unknown optimizer {name!r}; expected 'sgd' or 'adam'.")


@dataclass
class TrainSpec:
    """What one training run needs.

    step(i, rng) -> loss tensor: computes the loss of iteration i (the model is in train mode).
    lr_at(i) -> multiplier of the param groups' base lrs at iteration i: one float for every
        group, or a tuple with one per group.
    """
    name: str
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    step: Callable[[int, np.random.Generator], torch.Tensor]
    iterations: int
    seed: int = 0
    checkpoint_every: int = 1000
    lr_at: Callable[[int], float] = lambda i: 1.0
    keep_snapshots: bool = False   # also keep the weights of every checkpoint (snapshots/)
    amp: str = "off"               # mixed precision (engine.device): fp16 adds a grad scaler
    half_final: bool = False       # store the final weights in float16 (half the size)


def load_final(run_dir: Path, model: torch.nn.Module) -> torch.nn.Module:
    """Load a finished net's weights (weights_only) into `model`."""
    ck = load_checkpoint(Path(run_dir) / FINAL)
    model.load_state_dict(ck["model"])
    return model


def snapshot_at_time(run_dir: Path, seconds: float) -> Path | None:
    """The last snapshot of a run whose training time is at most `seconds` (equal-time
    comparisons of nets whose iterations cost differently)."""
    best, best_t = None, -1.0
    for p in sorted((Path(run_dir) / "snapshots").glob("it*.pt")):
        t = load_checkpoint(p)["seconds"]
        if best_t < t <= seconds:
            best, best_t = p, t
    return best


def run_training(spec: TrainSpec, run_dir, resume: bool = False, progress: bool = True) -> dict:
    """Train `spec.model` for `spec.iterations`, checkpointing into `run_dir`.

    A finished run (checkpoint_final.pt present) is skipped. An interrupted one needs
    `resume=True` and continues exactly where its last checkpoint stopped.
    In a process group (torchrun; rstn_core.engine.distributed) the model runs under DDP, the loss
    logged is the mean over ranks, and rank 0 alone writes files and shows the progress bar.
    Returns {"iterations", "seconds", "seconds_per_iteration", "losses", "skipped"}.
    """
    device = _device_of(spec.model)
    distributed.setup(device)
    main = distributed.is_main()
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    if main:                      # temporary files of a killed run (kill -9) are swept here
        clean_stale_temps(run_dir)
        clean_stale_temps(run_dir / "snapshots")
    if (run_dir / FINAL).is_file():
        ck = load_checkpoint(run_dir / FINAL)
        spec.model.load_state_dict(ck["model"])
        return {"iterations": ck["iteration"], "seconds": ck.get("seconds", 0.0),
                "seconds_per_iteration": ck.get("seconds", 0.0) / max(1, ck["iteration"]),
                "losses": ck["losses"], "skipped": True}
    start, losses, seconds = 0, [], 0.0
    if (run_dir / LATEST).is_file():
        if not resume:
            raise FileExistsError(f"{run_dir} holds an unfinished run; pass --resume to continue "
                                  "it, or delete the folder to start again.")
        ck = load_checkpoint(run_dir / LATEST)
        spec.model.load_state_dict(ck["model"])
        if "optimizer" in ck:
            spec.optimizer.load_state_dict(ck["optimizer"])
        elif main:    # a finished net's weights-only final copied here to train it further
            print(f"{run_dir.name}: continuing from weights only (a fresh optimizer state)")
        start, losses, seconds = ck["iteration"], list(ck["losses"]), ck.get("seconds", 0.0)
    base_lrs = [g.get("initial_lr", g["lr"]) for g in spec.optimizer.param_groups]
    for g, lr in zip(spec.optimizer.param_groups, base_lrs):
        g["initial_lr"] = lr

    scaler = grad_scaler(device, spec.amp)

    def save(i, path, final=False):
        if main:                                          # rank 0 writes; the others wait
            weights = spec.model.state_dict()
            state = {"model": weights, "iteration": i, "losses": losses, "seconds": seconds,
                     "seed": spec.seed}
            if final:                                     # weights only: a net to keep
                if spec.half_final:
                    state["model"] = {k: (v.half() if v.is_floating_point() else v)
                                      for k, v in weights.items()}
            else:
                state["optimizer"] = spec.optimizer.state_dict()
            atomic_torch_save(state, path)
            atomic_write_text(run_dir / "loss.csv", "iteration,loss\n" + "".join(
                f"{k + 1},{v:.6f}\n" for k, v in enumerate(losses)))
        distributed.barrier()

    spec.model.train()
    bar = tqdm(range(start, spec.iterations), initial=start, total=spec.iterations,
               desc=spec.name, disable=not (progress and main), leave=False)
    with distributed.data_parallel(spec.model, device):
        t0 = time.perf_counter()
        for i in bar:
            mult = spec.lr_at(i)                              # the schedule is a function of i
            mults = mult if isinstance(mult, (tuple, list)) else [mult] * len(base_lrs)
            for g, lr, m in zip(spec.optimizer.param_groups, base_lrs, mults):
                g["lr"] = lr * m
            torch.manual_seed(_dropout_seed(spec.seed, i))     # dropout of iteration i
            loss = spec.step(i, iteration_rng(spec.seed, i))
            value = distributed.mean(loss)                     # the same on every rank
            if not math.isfinite(value):
                raise FloatingPointError(f"{spec.name}: loss is {value} at iteration {i}; "
                                         "lower the learning rate.")
            spec.optimizer.zero_grad(set_to_none=True)
            if scaler is None:
                loss.backward()                                # DDP: gradients averaged here
                spec.optimizer.step()
            else:                                              # fp16: scale against underflow
                scaler.scale(loss).backward()
                scaler.step(spec.optimizer)
                scaler.update()
            losses.append(value)
            if (i + 1) % spec.checkpoint_every == 0 and i + 1 < spec.iterations:
                seconds += time.perf_counter() - t0
                t0 = time.perf_counter()
                if spec.keep_snapshots and main:   # weights + elapsed time: equal-time nets,
                    atomic_torch_save({"model": spec.model.state_dict(), "iteration": i + 1,
                                       "seconds": seconds},   # written before LATEST
                                      run_dir / "snapshots" / f"it{i + 1}.pt")
                save(i + 1, run_dir / LATEST)
            if progress and main and (i % 10 == 0):
                bar.set_postfix(loss=f"{np.mean(losses[-20:]):.3f}")
        seconds += time.perf_counter() - t0
    save(spec.iterations, run_dir / FINAL, final=True)
    if main:
        (run_dir / LATEST).unlink(missing_ok=True)
    distributed.barrier()                 # FINAL in place before any rank reads it
    n = spec.iterations - start
    return {"iterations": spec.iterations, "seconds": seconds,
            "seconds_per_iteration": seconds / max(1, spec.iterations), "losses": losses,
            "skipped": False, "new_iterations": n}
