"""rstn_core.bench's performance pieces: the reference model of the authors' FCN-8s, the
interleaved measurements (scaling, slab, options) at tiny sizes, their tables and figure."""
import numpy as np
import pytest
import torch

from rstn_core.bench.authors_fcn import AuthorsFCN8s, bilinear_kernel
from rstn_core.bench.flops import authors_fcn8s_flops, count_flops
from rstn_core.bench.measure import bench_cpu_options, bench_scaling, bench_slab, fit_exponent
from rstn_core.bench.plot import plot_scaling
from rstn_core.bench.render import render_result
from rstn_core.config import get_config


@pytest.mark.parametrize("size", [(32, 32), (33, 77), (96, 20), (7, 9)])
def test_authors_fcn_output_has_the_input_size(size):
    net = AuthorsFCN8s(width=1 / 32).eval()
    with torch.no_grad():
        y = net(torch.rand(2, 3, *size))
    assert y.shape == (2, 3, *size)


def test_authors_fcn_full_width_facts():
    with torch.device("meta"):
        net = AuthorsFCN8s()
    assert net.features[0].padding == (100, 100)
    assert all(m.ceil_mode for m in net.features if isinstance(m, torch.nn.MaxPool2d))
    assert net.fc6.kernel_size == (7, 7) and net.fc6.padding == (0, 0)
    assert net.fc6.out_channels == net.fc7.out_channels == 4096
    trainable = sum(p.numel() for p in net.parameters() if p.requires_grad)
    assert abs(trainable / 1e6 - 134.3) < 0.1                 # the authors' parameter count
    flops = count_flops(net, torch.empty(1, 3, 96, 96, device="meta"))
    assert abs(flops / authors_fcn8s_flops(96, 96) - 1) < 0.01


def test_bilinear_kernel_upsamples_a_constant():
    k = bilinear_kernel(1, 4)
    assert k.shape == (1, 1, 4, 4)
    up = torch.nn.functional.conv_transpose2d(torch.ones(1, 1, 6, 6), k, stride=2)
    inner = up[..., 2:-2, 2:-2]                              # away from the borders
    assert inner.shape[-1] == 10 and torch.allclose(inner, torch.ones_like(inner))


def test_fit_exponent():
    n = np.array([1e5, 1e6, 1e7])
    assert fit_exponent(n, 3e-6 * n) == pytest.approx(1.0)
    assert fit_exponent(n, 1e-9 * n ** 1.5) == pytest.approx(1.5)
    with pytest.raises(ValueError):
        fit_exponent([1], [1])


@pytest.fixture(scope="module")
def tiny():
    cfg = get_config("smoke", **{"model.pretrained": None, "test.batch_size": 8})
    torch.set_num_threads(1)
    sc = bench_scaling(cfg, "cpu", ((32, 32, 32), (40, 40, 32), (48, 48, 40)), T=1, repeats=1)
    sl = bench_slab(get_config("smoke", views=("axial",), **{"model.pretrained": None}), "cpu",
                    (40, 40, 2), T=1, repeats=1)
    op = bench_cpu_options(cfg, "cpu", (48, 48), batch=2, repeats=1, warmup=0)
    return sc, sl, op


def test_scaling_and_slab_run(tiny):
    sc, sl, op = tiny
    assert [r["voxels"] for r in sc["rows"]] == [32 * 32 * 32, 40 * 40 * 32, 48 * 48 * 40]
    assert all(r["timing"]["median"] > 0 for r in sc["rows"])
    assert np.isfinite(sc["exponent"])
    assert sl["views"] == ["axial"] and sl["shape"] == [40, 40, 2]
    for k in ("ours", "authors"):
        assert sl[k]["timing"]["median"] > 0 and sl[k]["net_seconds_coarse"] > 0
    assert sl["speedup"] > 0
    rows = {r["option"]: r for r in op["rows"]}
    assert rows["BN folded"]["max_abs_diff"] <= 1e-5        # folding keeps the probabilities
    assert rows["BN folded + channels-last"]["max_abs_diff"] <= 1e-5


def test_render_and_plot(tiny, tmp_path):
    sc, sl, op = tiny
    meta = {"scale": "smoke", "device": "cpu", "device_name": "test CPU", "date": "today",
            "torch": "x", "threads": 1, "load_before": None, "load_after": None,
            "peak_flops": None, "peak_info": {}, "label": "after", "running": []}
    res = {"meta": meta, "scaling": sc, "slab": sl, "options": op}
    md = render_result(res)
    for text in ("fitted exponent", "32×32×32", "the authors' architecture", "BN folded",
                 "— after", "Other processes on the CPU"):
        assert text in md
    assert plot_scaling([res], tmp_path / "perf_scaling.png") == 1
    assert (tmp_path / "perf_scaling.png").stat().st_size > 1000
    assert plot_scaling([{"meta": meta}], tmp_path / "none.png") == 0
