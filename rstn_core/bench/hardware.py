"""The machine: processor and GPU names read from the system, and their peak FLOP/s.

CPU peak = cores x GHz x FLOP per cycle per core (from /proc/cpuinfo and sysfs); GPU peaks come
from a small table of known GPUs (vendor data sheets, dense, approximate), found by name.
Both are estimates: `rstn bench --peak-flops X` overrides them.
"""
from __future__ import annotations

import os
import platform
import time
from pathlib import Path

import torch

from rstn_core.errors import ConfigError

__all__ = [
    "CUDA_PEAKS",
    "GPU_PEAKS",
    "available_cpus",
    "cpu_peak_flops",
    "cuda_peak_flops",
    "device_name",
    "device_peak",
    "gpu_peaks",
    "load_average",
    "running_jobs",
]

T = 1e12
# Dense peak FLOP/s per precision (no sparsity), from the vendors' data sheets; approximate.
# "tf32" is what fp32 convolutions run at when torch.backends.cudnn.allow_tf32 is on (the
# default). None: the GPU has no such tensor-core path. First matching substring wins, so
# longer names come before their prefixes (H100 PCIe before H100, A100 before A10).
GPU_PEAKS = [
    ("GH200", {"fp32": 67 * T, "tf32": 495 * T, "fp16": 989 * T, "bf16": 989 * T}),
    ("H200", {"fp32": 67 * T, "tf32": 495 * T, "fp16": 989 * T, "bf16": 989 * T}),
    ("H100 PCIe", {"fp32": 51 * T, "tf32": 378 * T, "fp16": 756 * T, "bf16": 756 * T}),
    ("H100 NVL", {"fp32": 60 * T, "tf32": 418 * T, "fp16": 835 * T, "bf16": 835 * T}),
    ("H100", {"fp32": 67 * T, "tf32": 495 * T, "fp16": 989 * T, "bf16": 989 * T}),
    ("B200", {"fp32": 75 * T, "tf32": 1100 * T, "fp16": 2250 * T, "bf16": 2250 * T}),
    ("A100", {"fp32": 19.5 * T, "tf32": 156 * T, "fp16": 312 * T, "bf16": 312 * T}),
    ("L40S", {"fp32": 91.6 * T, "tf32": 183 * T, "fp16": 362 * T, "bf16": 362 * T}),
    ("L4", {"fp32": 30.3 * T, "tf32": 60 * T, "fp16": 121 * T, "bf16": 121 * T}),
    ("A10", {"fp32": 31.2 * T, "tf32": 62.5 * T, "fp16": 125 * T, "bf16": 125 * T}),
    ("RTX A6000", {"fp32": 38.7 * T, "tf32": 77 * T, "fp16": 155 * T, "bf16": 155 * T}),
    ("RTX 4090", {"fp32": 82.6 * T, "tf32": 82.6 * T, "fp16": 165 * T, "bf16": 165 * T}),
    ("V100", {"fp32": 15.7 * T, "tf32": None, "fp16": 125 * T, "bf16": None}),
    ("T4", {"fp32": 8.1 * T, "tf32": None, "fp16": 65 * T, "bf16": None}),
]
# The library runs its nets under bf16 autocast on CUDA: the bf16 column is "the" peak.
CUDA_PEAKS = [(name, peaks["bf16"]) for name, peaks in GPU_PEAKS]


def _cpuinfo_fields(text: str) -> dict:
    block = text.strip().split("\n\n")[0] if text.strip() else ""
    out = {}
    for line in block.splitlines():
        if ":" in line:
            k, v = line.split(":", 1)
            out.setdefault(k.strip(), v.strip())
    return out


def available_cpus() -> int:
    """Logical CPUs this process may run on (its affinity mask; os.cpu_count() elsewhere)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def load_average() -> list[float] | None:
    """The 1, 5 and 15 minute load averages, rounded to 0.01 (None where unknown)."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def _cpu_ticks() -> dict[int, tuple[int, str]]:
    out = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
            fields = stat[stat.rindex(")") + 2:].split()
            cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, ValueError):
            continue
        out[int(d.name)] = (int(fields[11]) + int(fields[12]), cmd.strip())   # utime + stime
    return out


def running_jobs(seconds: float = 0.5, min_share: float = 0.1) -> list[dict]:
    """Other processes using the CPU now: those above `min_share` of one core over `seconds`
    (Linux /proc; [] elsewhere), so a benchmark can say what else was running.

    Returns:
        [{"pid", "cpu" (cores, 1.0 = one core busy), "command" (first 100 characters)}],
        busiest first.
    """
    if not Path("/proc/self/stat").exists():
        return []
    hz = os.sysconf("SC_CLK_TCK")
    a = _cpu_ticks()
    time.sleep(seconds)
    b = _cpu_ticks()
    me = os.getpid()
    rows = [{"pid": pid, "cpu": round((t - a[pid][0]) / hz / seconds, 2), "command": cmd[:100]}
            for pid, (t, cmd) in b.items() if pid in a and pid != me]
    return sorted((r for r in rows if r["cpu"] >= min_share), key=lambda r: -r["cpu"])


def _max_ghz_sysfs() -> float | None:
    p = Path("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq")   # kHz
    try:
        return int(p.read_text().strip()) / 1e6
    except (OSError, ValueError):
        return None


def _read_cpuinfo() -> str:
    try:
        return Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""


def cpu_peak_flops(cpuinfo: str | None = None, cpus: int | None = None,
                   ghz: float | None = None) -> tuple[float | None, dict]:
    """Estimated fp32 peak FLOP/s of the CPU: cores x GHz x FLOP per cycle per core.

    FLOP per cycle = SIMD lanes of fp32 x 2 (a fused multiply-add is 2 FLOP) x FMA units:
    AVX-512 on Intel 16 x 2 x 2 = 64, on AMD Zen 4 (family 25, 512-bit ops on 256-bit units)
    32, on Zen 5 (family 26) 64; AVX2 + FMA 8 x 2 x 2 = 32; AVX 16; otherwise (SSE) 8.
    Cores = usable logical CPUs / threads per core (siblings / cpu cores in /proc/cpuinfo);
    GHz = the maximum clock from sysfs if known, else /proc/cpuinfo's current "cpu MHz".

    Args:
        cpuinfo: the text of /proc/cpuinfo (default: read it); cpus: physical cores to count
        (default: from the affinity mask); ghz: the clock (default: sysfs, then cpuinfo).
    Returns:
        (peak FLOP/s or None when the clock is unknown, the inputs of the formula).
    """
    f = _cpuinfo_fields(_read_cpuinfo() if cpuinfo is None else cpuinfo)
    flags = set(f.get("flags", "").split())
    vendor = f.get("vendor_id", "")
    family = int(f["cpu family"]) if f.get("cpu family", "").isdigit() else None
    if "avx512f" in flags:
        isa = "AVX-512"
        per_cycle = 32 if (vendor == "AuthenticAMD" and (family or 0) < 26) else 64
    elif "avx2" in flags and "fma" in flags:
        isa, per_cycle = "AVX2+FMA", 32
    elif "avx" in flags:
        isa, per_cycle = "AVX", 16
    else:
        isa, per_cycle = "SSE", 8
    try:
        tpc = max(1, int(f.get("siblings", 0)) // max(1, int(f.get("cpu cores", 0))))
    except ValueError:
        tpc = 1
    if cpus is None:
        cpus = max(1, available_cpus() // tpc)
    ghz_source = "given"
    if ghz is None:
        ghz, ghz_source = _max_ghz_sysfs(), "sysfs cpuinfo_max_freq"
        if ghz is None:
            try:
                ghz, ghz_source = float(f["cpu MHz"]) / 1000, "/proc/cpuinfo cpu MHz (current)"
            except (KeyError, ValueError):
                ghz, ghz_source = None, "unknown"
    info = {"model": f.get("model name", platform.processor() or "unknown CPU"), "isa": isa,
            "vendor": vendor, "cores": cpus, "threads_per_core": tpc, "ghz": ghz,
            "ghz_source": ghz_source, "flop_per_cycle_per_core": per_cycle,
            "formula": "cores x GHz x FLOP/cycle (fp32 FMA lanes x 2 x FMA units)"}
    if ghz is None:
        return None, info
    return cpus * ghz * 1e9 * per_cycle, info


def gpu_peaks(name: str) -> tuple[dict | None, str | None]:
    """Dense peak FLOP/s per precision of a known GPU, found by name in `GPU_PEAKS`.

    Args:
        name: the device name, e.g. ``torch.cuda.get_device_name()``.
    Returns:
        ({"fp32", "tf32", "fp16", "bf16"} -> FLOP/s or None, the table entry), or (None, None)
        for a GPU not in the table.
    """
    for key, peaks in GPU_PEAKS:
        if key.lower() in name.lower():
            return dict(peaks), key
    return None, None


def cuda_peak_flops(name: str) -> tuple[float | None, dict]:
    """Approximate dense bf16 peak FLOP/s of a known GPU (the precision the library runs in).

    Returns:
        (peak or None for an unknown GPU, {"model", "table_entry", "precision", "formula"}).
    """
    peaks, key = gpu_peaks(name)
    if peaks is None:
        return None, {"model": name, "precision": "bf16 dense",
                      "formula": "unknown GPU; pass --peak-flops"}
    return peaks["bf16"], {"model": name, "table_entry": key, "precision": "bf16 dense",
                           "formula": "vendor data sheet, approximate"}


def device_name(device: str) -> str:
    """The processor's or GPU's name as the machine reports it."""
    if str(device).startswith("cuda"):
        return torch.cuda.get_device_name()
    return cpu_peak_flops()[1]["model"]


def device_peak(device: str, override: float | None = None) -> tuple[float | None, dict]:
    """The peak FLOP/s the 'of peak' columns divide by: `override` if given, else the GPU
    table (bf16) on CUDA or the CPU estimate (fp32).

    Returns:
        (peak or None, how it was found).
    """
    if str(device).startswith("cuda"):
        peak, info = cuda_peak_flops(torch.cuda.get_device_name())
    else:
        peak, info = cpu_peak_flops()
    if override is not None:
        if override <= 0:
            raise ConfigError(f"--peak-flops {override:g}: must be > 0 (FLOP/s, e.g. 1e12).")
        info = dict(info, formula=f"--peak-flops {override:g}", estimate=peak)
        peak = override
    return peak, info
