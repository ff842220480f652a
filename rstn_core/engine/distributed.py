"""Several processes, one training run: torchrun's process group, rank-0 file writes, DDP.

`torchrun --nproc_per_node=N -m rstn_core.cli train ...` starts N copies of the same command
and gives each one RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT. With
WORLD_SIZE > 1, :func:`setup` joins the process group (gloo on CPU, nccl on CUDA, one GPU per
process: cuda:LOCAL_RANK). With WORLD_SIZE unset or 1 nothing is initialised and every helper
here is a no-op, so one process runs exactly as before.

How a run is split (rstn_core.engine.train.run_training): iteration i draws its whole batch from
`iteration_rng(seed, i)` on every rank, and rank r keeps items r, r + N, r + 2N, ... (the union
over ranks is the one-process batch); DistributedDataParallel averages the gradients; rank 0
alone writes checkpoints, loss.csv and progress bars, and the others wait at a barrier.
"""
from __future__ import annotations

import atexit
import contextlib
import os
import warnings

import torch
import torch.distributed as dist
import torch.nn as nn
from torch.nn.parallel import DistributedDataParallel

from rstn_core.errors import ConfigError

__all__ = ["setup", "cleanup", "world_size", "rank", "is_main", "barrier", "main_first",
           "mean", "check_batch", "share", "data_parallel"]


def _env_world() -> int:
    # WORLD_SIZE as torchrun sets it (1 when absent)
    return int(os.environ.get("WORLD_SIZE", "1") or 1)


def world_size() -> int:
    """Processes in this run: the process group's size, 1 without one."""
    # size of the initialised process group, else 1
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    """This process's rank: 0 without a process group."""
    # rank in the initialised process group, else 0
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def is_main() -> bool:
    """True on the process that writes files and shows progress (rank 0)."""
    # rank 0 (or the only process) writes
    return rank() == 0


def setup(device: str = "cpu") -> bool:
    """Join torchrun's process group when WORLD_SIZE > 1 (idempotent); True if distributed.

    Backend: nccl when `device` is CUDA (and cuda:LOCAL_RANK becomes the current device, so
    `.to("cuda")` puts each rank on its own GPU), gloo otherwise.
    """
    # init_process_group from the env vars, once, only for WORLD_SIZE > 1
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size() > 1
    if _env_world() <= 1:
        return False
    if not dist.is_available():
        raise RuntimeError("WORLD_SIZE > 1 but this torch build has no torch.distributed; "
                           "run a single process.")
    cuda = str(device).startswith("cuda")
    if cuda:
        local = int(os.environ.get("LOCAL_RANK", "0"))
        if local >= torch.cuda.device_count():
            raise RuntimeError(f"LOCAL_RANK {local} but only {torch.cuda.device_count()} CUDA "
                               "devices; lower --nproc_per_node.")
        torch.cuda.set_device(local)
    dist.init_process_group("nccl" if cuda else "gloo")
    atexit.register(cleanup)
    return True


def cleanup():
    """Leave the process group (registered at exit by :func:`setup`)."""
    # destroy_process_group if one is up
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier():
    """Wait until every rank gets here (no-op in one process)."""
    # dist.barrier when distributed
    if world_size() > 1:
        dist.barrier()


@contextlib.contextmanager
def main_first():
    """Rank 0 runs the block first (it may write files: the phantom, caches, config.json);
    the other ranks run it after rank 0 is done, and then find the files in place."""
    # non-main ranks wait before the block, rank 0 releases them after it
    if not is_main():
        barrier()
    yield
    if is_main():
        barrier()


def mean(value: torch.Tensor) -> float:
    """The mean over ranks of a scalar tensor, as a float (one process: `float(value)`)."""
    # all_reduce(SUM) / world on a detached copy
    if world_size() == 1:
        return float(value.detach())
    t = value.detach().float().reshape(1).clone()
    dist.all_reduce(t)
    return float(t) / world_size()


def check_batch(batch_size: int, world: int | None = None):
    """Refuse a batch that cannot give every rank an item; warn when shares are unequal."""
    # ConfigError (a ValueError) for world > batch, warning for a remainder
    world = world_size() if world is None else world
    if world > batch_size:
        raise ConfigError(f"world size {world} > batch size {batch_size}: every rank needs at "
                          "least one item of a batch; raise train.batch_size or start fewer "
                          "processes.")
    if batch_size % world:
        warnings.warn(f"batch size {batch_size} is not a multiple of the world size {world}: "
                      "ranks hold unequal shares, and DDP's gradient average weights their "
                      "items unequally.")


def share(batch, rank: int, world: int):
    """Items rank, rank + world, ... of every part of a batch (tensors or lists along dim 0)."""
    # keep [rank::world] of each element of the batch tuple
    if world == 1:
        return batch
    return tuple(part[rank::world] for part in batch)


class _ClassForward(nn.Module):
    """Holds `model` and runs its class's forward (the instance's is routed to DDP)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, *args, **kwargs):
        return type(self.model).forward(self.model, *args, **kwargs)


@contextlib.contextmanager
def data_parallel(model: nn.Module, device: str = "cpu"):
    """While the block runs, every call `model(...)` goes through DistributedDataParallel.

    The training steps of the book call their nets directly (`net(x)`, `model(x, T=...)`),
    so the model is not replaced by a wrapper: its instance `forward` is pointed at a DDP
    around its own class's forward, and restored afterwards. State-dict keys do not change.
    DDP broadcasts rank 0's parameters and buffers at the start (and buffers at each forward),
    averages gradients during backward, and tolerates parameters a rank did not use (an RSTN
    step without any crop skips the fine net): `find_unused_parameters=True`, which costs one
    graph traversal per iteration and makes DDP warn once per process for nets that use
    all their parameters (FCN-8s).
    Yields the DDP module (one process: the model itself, untouched).
    """
    # route model.__call__ through DDP for the duration of the block
    if world_size() == 1:
        yield model
        return
    ids = [torch.cuda.current_device()] if str(device).startswith("cuda") else None
    ddp = DistributedDataParallel(_ClassForward(model), device_ids=ids,
                                  find_unused_parameters=True)
    object.__setattr__(model, "forward", ddp.__call__)   # nn.Module.__call__ uses self.forward
    try:
        yield ddp
    finally:
        del model.forward
