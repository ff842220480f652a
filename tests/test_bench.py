"""rstn_core.bench: one quick smoke benchmark end to end, plus the FLOP and peak arithmetic.

The quick run uses one torch thread: on a busy 2-core machine two OpenMP threads fighting
other jobs for the cores can make it several times slower; the numbers are not checked here,
only that they exist, are positive and that the maths behind them is right.
"""
import json

import numpy as np
import pytest
import torch
import torch.nn as nn

from rstn_core import bench
from rstn_core.bench import (authors_fcn8s_flops, bench_main, count_flops, cpu_peak_flops,
                             cuda_peak_flops, fcn8s_flops, render_markdown, time_call)


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "smoke.json"
    threads = torch.get_num_threads()
    try:
        code = bench_main(["--scale", "smoke", "--quick", "--threads", "1", "--out", str(out)])
    finally:
        torch.set_num_threads(threads)
    assert code == 0
    return json.loads(out.read_text()), out


# -- the quick run ----------------------------------------------------------------------------

def test_json_keys(result):
    res, _ = result
    assert {"meta", "forward", "options", "full_width", "algorithms", "batched", "training",
            "published", "seconds_total", "section_seconds"} <= set(res)
    assert "scaling" not in res and "slab" not in res                # --quick: not asked
    meta = res["meta"]
    for key in ("scale", "device", "device_name", "torch", "threads", "peak_flops",
                "peak_info", "volume_shape", "quick", "load_before", "load_after", "running"):
        assert key in meta
    assert meta["scale"] == "smoke" and meta["device"] == "cpu" and meta["quick"] is True
    assert [r["batch"] for r in res["forward"]["rows"]] == [1, 8, 32]
    assert res["forward"]["size"] == meta["volume_shape"][:2]
    assert [r["size"] for r in res["full_width"]] == [96]            # --quick: no 512x512
    assert set(res["algorithms"]) == {"stepwise", "rstn"}
    assert [r["T"] for r in res["training"]] == [1, 2]


def test_timings_positive(result):
    res, _ = result
    for r in res["forward"]["rows"]:
        assert r["seconds"] > 0 and r["slices_per_s"] > 0 and r["flop_per_s"] > 0
    for r in res["full_width"]:
        assert r["seconds_per_slice"] > 0 and r["authors_seconds_per_slice"] > 0  # measured
        assert r["speedup"] > 0 and r["speedup_range"][0] <= r["speedup_range"][1]
    for a in res["algorithms"].values():
        assert a["seconds"] > 0 and a["net_seconds_coarse"] > 0 and a["net_seconds_fine"] > 0
    assert res["batched"]["seconds_one_at_a_time"] > 0 and res["batched"]["seconds_batched"] > 0
    for r in res["training"]:
        assert "error" not in r, r
        assert r["iterations_per_s"] > 0 and r["flops_per_iteration"] > 0
        assert r["memory_peak_mb"] > 0 and r["memory_delta_mb"] >= 0


def test_training_flops_grow_with_T(result):
    res, _ = result
    f1, f2 = (r["flops_per_iteration"] for r in res["training"])
    assert f2 > f1                                      # one more fine pass (and its backward)


def test_algorithms_oracle_is_a_fixed_point(result):
    """The replayed label makes every round crop the label's boxes: d(t) = 1, same windows."""
    res, _ = result
    for name, a in res["algorithms"].items():
        assert a["oracle_ok"], name
        assert a["rounds"] == a["T"] == 2
        w = a["windows_fine_per_round"]
        assert len(w) == 2 and w[0] == w[1] > 0
        assert a["windows_coarse"] == sum(res["meta"]["volume_shape"])   # every slice, 3 views


def test_batched_equals_one_at_a_time_in_run(result):
    bt = result[0]["batched"]
    assert bt["allclose"] and bt["max_abs_diff"] <= 1e-5
    assert bt["prob_std"] > 1e-3                        # not a trivially constant map
    assert bt["windows"] == result[0]["meta"]["volume_shape"][2]


def test_batched_equals_one_at_a_time_direct():
    from rstn_core.config import get_config
    from rstn_core.engine.inference import coarse_probability
    from rstn_core.networks.build import build_net
    net = bench.randomise_scores(build_net(get_config("smoke")).eval())
    vol = np.random.default_rng(0).random((40, 36, 7)).astype(np.float32)
    one = coarse_probability(net, vol, "axial", batch_size=1)
    many = coarse_probability(net, vol, "axial", batch_size=32)
    assert one.shape == vol.shape and one.std() > 1e-3
    np.testing.assert_allclose(one, many, rtol=0, atol=1e-5)


def test_render_markdown_and_render_flag(result, tmp_path):
    res, path = result
    md = render_markdown([res])
    for text in ("| batch | s per batch |", "Algorithm 1 (stepwise)", "Algorithm 2 (RSTN)",
                 "speed-up", "| T | batch | it/s |", "authors' architecture",
                 "published, not measured here", "Inference options"):
        assert text in md
    assert "No benchmark" in render_markdown([])
    target = tmp_path / "perf.md"
    assert bench_main(["--render", str(path), "--markdown", str(target)]) == 0
    assert target.read_text() == md


# -- FLOPs ------------------------------------------------------------------------------------

@pytest.mark.parametrize("module, shape, flops", [
    # conv 3->4, 3x3, on 8x8 (padding 1): 2 FLOP x 4 out x 3 in x 9 taps x 64 pixels
    (nn.Conv2d(3, 4, 3, padding=1), (1, 3, 8, 8), 2 * 4 * 3 * 9 * 64),
    # the same on a batch of 2, then a 1x1 conv 4->2: biases and ReLU are not counted
    (nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 2, 1)),
     (2, 3, 8, 8), 2 * (2 * 4 * 3 * 9 * 64 + 2 * 2 * 4 * 64)),
    # stride 2, no padding: 3x3 outputs of a 7x7 input
    (nn.Conv2d(1, 1, 3, stride=2), (1, 1, 7, 7), 2 * 9 * 9),
    (nn.Linear(10, 5), (3, 10), 2 * 3 * 10 * 5),
])
def test_count_flops_by_hand(module, shape, flops):
    assert count_flops(module, torch.zeros(shape)) == flops


def test_fcn8s_flops_ballpark():
    full = fcn8s_flops(512, 512)                        # width 1, 7x7 fc6, no pad of 100
    assert 2.0e11 < full < 2.4e11                       # ~2.2e11: VGG16 convs + fc6/fc7
    small = fcn8s_flops(96, 96)
    assert small == pytest.approx(2 * 3.9e9, rel=0.05)  # fcn8s.py: 3.9 GMAC at 96x96
    assert fcn8s_flops(96, 96, batch=4) == 4 * small
    assert fcn8s_flops(96, 96, width=0.5) < small / 3   # ~width^2
    # the authors' pad of 100 costs several times more at a small input, less at a large one
    assert 5 < authors_fcn8s_flops(96, 96) / small < 10
    assert 1 < authors_fcn8s_flops(512, 512) / full < 3


# -- peaks ------------------------------------------------------------------------------------

def _cpuinfo(vendor, family, flags, siblings=2, cores=2, mhz="2600.000"):
    return (f"processor\t: 0\nvendor_id\t: {vendor}\ncpu family\t: {family}\n"
            f"model name\t: Test CPU\ncpu MHz\t\t: {mhz}\nsiblings\t: {siblings}\n"
            f"cpu cores\t: {cores}\nflags\t\t: {flags}\n\nprocessor\t: 1\n")


@pytest.mark.parametrize("vendor, family, flags, per_cycle", [
    ("GenuineIntel", 6, "sse avx avx2 fma avx512f", 64),
    ("AuthenticAMD", 25, "sse avx avx2 fma avx512f", 32),   # Zen 4: 512-bit ops on 256-bit units
    ("AuthenticAMD", 26, "sse avx avx2 fma avx512f", 64),   # Zen 5
    ("GenuineIntel", 6, "sse avx avx2 fma", 32),
    ("GenuineIntel", 6, "sse avx", 16),
    ("GenuineIntel", 6, "sse sse2", 8),
])
def test_cpu_peak_formula(vendor, family, flags, per_cycle):
    peak, info = cpu_peak_flops(_cpuinfo(vendor, family, flags), cpus=2, ghz=2.0)
    assert info["flop_per_cycle_per_core"] == per_cycle
    assert peak == pytest.approx(2 * 2.0e9 * per_cycle)


def test_cpu_peak_threads_per_core():
    _, info = cpu_peak_flops(_cpuinfo("GenuineIntel", 6, "avx2 fma", siblings=8, cores=4),
                             ghz=3.0)
    assert info["threads_per_core"] == 2 and info["cores"] >= 1


@pytest.mark.parametrize("name, peak", [
    ("NVIDIA H100 80GB HBM3", 989e12), ("NVIDIA H100 PCIe", 756e12), ("NVIDIA H200", 989e12),
    ("NVIDIA A100-SXM4-80GB", 312e12), ("Some Future GPU", None),
])
def test_cuda_peaks(name, peak):
    assert cuda_peak_flops(name)[0] == peak


# -- timing and arguments -----------------------------------------------------------------------

def test_time_call_counts_and_budget():
    calls = []
    t = time_call(lambda: calls.append(1), repeats=3, warmup=2)
    assert len(calls) == 5 and t["repeats"] == 3 and len(t["times"]) == 3
    assert t["min"] <= t["median"] <= t["max"]
    calls.clear()
    t = time_call(lambda: calls.append(1), repeats=100, warmup=0, budget_s=0.0)
    assert t["repeats"] == 1 and len(calls) == 1           # the budget stops after one run


@pytest.mark.parametrize("argv", [["--scale", "huge"], ["--device", "tpu"],
                                  ["--render", "/nonexistent/result.json"]])
def test_bad_arguments_exit_2(argv, capsys):
    assert bench_main(argv) == 2


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_gpu_is_one_line_error(capsys):
    assert bench_main(["--device", "cuda", "--quick"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("rstn bench: error:")
