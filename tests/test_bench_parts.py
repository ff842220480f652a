"""rstn_core.bench's small pieces: the published table, the GPU table, the command line
(`rstn bench` through cli.py's argparse, `python -m rstn_core.bench`)."""
import subprocess
import sys

import pytest

from rstn_core.bench import PUBLISHED, PUBLISHED_FIGURES
from rstn_core.bench.hardware import GPU_PEAKS, gpu_peaks
from rstn_core.cli import build_parser, main


def test_published_figures_are_labelled():
    for row in PUBLISHED_FIGURES:
        assert {"key", "value", "unit", "hardware", "source"} <= set(row)
        assert row["value"] > 0 and row["source"]
    assert PUBLISHED["rstn"]["coarse_s"] == 30.0 and PUBLISHED["stepwise"]["per_round_s"] == 20.0


@pytest.mark.parametrize("name, entry, bf16", [
    ("NVIDIA H200", "H200", 989e12), ("NVIDIA H100 PCIe", "H100 PCIe", 756e12),
    ("NVIDIA A100-SXM4-80GB", "A100", 312e12), ("NVIDIA A10", "A10", 125e12),
    ("Tesla T4", "T4", None), ("Some Future GPU", None, None),
])
def test_gpu_peaks_by_name(name, entry, bf16):
    peaks, key = gpu_peaks(name)
    assert key == entry
    if entry is not None:
        assert peaks["bf16"] == bf16 and peaks["fp32"] > 0
        assert peaks["fp16"] is None or peaks["fp16"] >= peaks["fp32"]


def test_gpu_table_prefixes_come_after_longer_names():
    names = [k for k, _ in GPU_PEAKS]
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            assert a.lower() not in b.lower(), f"{a} would shadow {b}"


def test_cli_bench_goes_through_argparse(capsys):
    args = build_parser().parse_args(["bench", "--scale", "smoke", "--quick", "--gpu-check",
                                      "--dry"])
    assert args.cmd == "bench" and args.gpu_check and args.dry and args.quick
    with pytest.raises(SystemExit) as e:
        build_parser().parse_args(["bench", "--help"])
    assert e.value.code == 0
    assert "--gpu-check" in capsys.readouterr().out


def test_cli_bench_render_placeholder(capsys):
    assert main(["bench", "--render"]) == 0
    assert "No benchmark" in capsys.readouterr().out


def test_cli_bench_error_is_one_line(capsys):
    assert main(["bench", "--dry"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("rstn: error:")


def test_python_dash_m_bench():
    run = subprocess.run([sys.executable, "-m", "rstn_core.bench", "--help"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and "--gpu-check" in run.stdout
