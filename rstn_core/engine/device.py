"""Where the nets run and in which precision: device checks and mixed precision.

Mixed precision is a setting (`train.amp`, `test.amp`), one of

    off    float32 everywhere (the CPU, and any run that must be bit-exact)
    bf16   bfloat16 autocast (Ampere and newer GPUs: A100, H100, RTX 30xx+)
    fp16   float16 autocast with a gradient scaler (Turing and older: a free Colab T4)
    auto   bf16 where the GPU supports it, fp16 otherwise, off on the CPU

A T4 (compute capability 7.5) has no bf16 tensor cores: cuDNN bf16 convolutions there fail or
crawl, which is why `auto` never picks bf16 on it.
"""
from __future__ import annotations

import contextlib

import torch

__all__ = ["AMP_MODES", "check_device", "resolve_amp", "autocast", "grad_scaler", "is_cuda"]

AMP_MODES = ("auto", "bf16", "fp16", "off")


def is_cuda(device) -> bool:
    """True for "cuda" and "cuda:N"."""
    return str(device).startswith("cuda")


def check_device(device: str) -> str:
    """The device string if torch can use it, else a one-line ValueError saying what to do.

    Args:
        device: "cpu", "cuda" or "cuda:N".
    """
    dev = str(device)
    if dev == "cpu":
        return dev
    if not is_cuda(dev):
        raise ValueError(f"device {dev!r} is not supported; use 'cpu' or 'cuda' (or 'cuda:N').")
    if not torch.cuda.is_available():
        raise ValueError(f"device {dev!r} asked for, but this machine has no CUDA GPU torch can "
                         "use; run with --device cpu (or install a CUDA build of torch).")
    if ":" in dev:
        index = dev.split(":", 1)[1]
        if not index.isdigit() or int(index) >= torch.cuda.device_count():
            raise ValueError(f"device {dev!r}: this machine has {torch.cuda.device_count()} "
                             f"GPU(s), cuda:0 .. cuda:{torch.cuda.device_count() - 1}.")
    return dev


def _bf16_supported(device) -> bool:
    try:
        return bool(torch.cuda.is_bf16_supported()) and \
            torch.cuda.get_device_capability(torch.device(device))[0] >= 8
    except (RuntimeError, AssertionError):
        return False


def resolve_amp(amp: str, device) -> str:
    """The precision a run actually uses: "bf16", "fp16" or "off".

    auto -> bf16 on a GPU of compute capability >= 8 with bf16 support, fp16 on older GPUs,
    off on the CPU. An explicit bf16/fp16 on the CPU is refused (CPU autocast is slower than
    float32 for these nets; book/performance.md).

    Args:
        amp: one of :data:`AMP_MODES`; device: "cpu" or "cuda[:N]".
    """
    if amp not in AMP_MODES:
        raise ValueError(f"amp {amp!r} is not one of {list(AMP_MODES)}; pick 'auto' (bf16 where "
                         "the GPU supports it, fp16 otherwise, off on the CPU).")
    if amp == "off":
        return "off"
    if not is_cuda(device):
        if amp == "auto":
            return "off"
        raise ValueError(f"amp {amp!r} needs a CUDA device, got {device!r}; use amp=off or auto.")
    if amp == "auto":
        return "bf16" if _bf16_supported(device) else "fp16"
    return amp


def autocast(device, amp: str = "auto"):
    """The autocast context of a forward pass under :func:`resolve_amp`'s precision.

    Args:
        device: where the nets run; amp: one of :data:`AMP_MODES`.
    Returns:
        a context manager (``contextlib.nullcontext`` when the precision is float32).
    """
    mode = resolve_amp(amp, device)
    if mode == "off":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if mode == "bf16" else torch.float16
    return torch.autocast("cuda", dtype=dtype)


def grad_scaler(device, amp: str = "auto"):
    """A `torch.amp.GradScaler` when the precision is fp16 (small gradients would underflow),
    else None (bf16 and float32 need none)."""
    if resolve_amp(amp, device) != "fp16":
        return None
    return torch.amp.GradScaler("cuda")
