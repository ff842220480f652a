"""Mixed precision and the checkpoints a student keeps, on the CPU.

What is tested here: the precision `auto` picks with the GPU's capability mocked (a T4, an
A100, no GPU), the one-line refusals, the fp16 + gradient-scaler branch of `run_training`
(torch's CPU autocast in float16 and `torch.amp.GradScaler("cpu")`, which this torch has),
weights-only `checkpoint_final.pt` without `checkpoint_latest.pt` after a smoke fold, and
`train.half_final`. What is not: CUDA autocast itself, cuDNN's bf16/fp16 kernels and the
speed of each precision; `rstn bench --gpu-check` measures those on a GPU.
"""
import shutil
import numpy as np
import pytest
import torch

from rstn_core.config import get_config
from rstn_core.data import CaseCache, list_cases
from rstn_core.engine import device as dev
from rstn_core.engine import train as train_mod
from rstn_core.engine.train import FINAL, LATEST, TrainSpec, load_final, run_training
from rstn_core.errors import ConfigError
from rstn_core.experiments.pipeline import fold_dir, train_fold
from rstn_core.io import load_checkpoint
from rstn_core.networks import build_net


def _gpu(monkeypatch, capability, bf16):
    """Pretend torch sees one CUDA GPU of this compute capability."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: bf16)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a, **k: capability)


@pytest.mark.parametrize("capability,bf16,want", [
    ((7, 5), False, "fp16"),     # T4 (free Colab): no bf16 tensor cores
    ((7, 5), True, "fp16"),      # a torch that emulates bf16 on Turing: still fp16
    ((8, 0), True, "bf16"),      # A100
    ((9, 0), True, "bf16"),      # H100
])
def test_auto_precision_follows_the_gpu(monkeypatch, capability, bf16, want):
    _gpu(monkeypatch, capability, bf16)
    assert dev.resolve_amp("auto", "cuda") == want
    assert dev.resolve_amp("auto", "cuda:0") == want
    assert dev.resolve_amp("off", "cuda") == "off"
    assert dev.resolve_amp("fp16", "cuda") == "fp16"      # an explicit choice is kept
    assert dev.check_device("cuda:0") == "cuda:0"


def test_scaler_only_for_fp16(monkeypatch):
    _gpu(monkeypatch, (7, 5), False)
    assert dev.grad_scaler("cuda", "bf16") is None
    assert dev.grad_scaler("cuda", "off") is None
    assert isinstance(dev.grad_scaler("cuda", "auto"), torch.amp.GradScaler)   # T4 -> fp16


def test_cpu_runs_in_float32_and_refuses_explicit_half(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert dev.resolve_amp("auto", "cpu") == "off"
    assert dev.grad_scaler("cpu", "auto") is None
    with dev.autocast("cpu", "auto"):
        assert torch.nn.Linear(2, 2)(torch.ones(1, 2)).dtype == torch.float32
    for amp in ("fp16", "bf16"):
        with pytest.raises(ValueError) as e:
            dev.resolve_amp(amp, "cpu")
        msg = str(e.value)
        assert "\n" not in msg and "CUDA" in msg and "amp=off" in msg
    with pytest.raises(ValueError) as e:
        dev.resolve_amp("half", "cuda")
    assert "\n" not in str(e.value) and "auto" in str(e.value)


def test_cuda_without_a_gpu_is_one_line(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for d in ("cuda", "cuda:1"):
        with pytest.raises(ValueError) as e:
            dev.check_device(d)
        assert "\n" not in str(e.value) and "--device cpu" in str(e.value)
    with pytest.raises(ValueError) as e:
        dev.check_device("tpu")
    assert "\n" not in str(e.value)


def test_config_refuses_an_unknown_precision():
    with pytest.raises(ConfigError) as e:
        get_config("smoke", **{"train.amp": "fp8"})
    assert "\n" not in str(e.value) and "fp16" in str(e.value)


def _tiny(seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(),
                               torch.nn.Conv2d(4, 1, 1))


def test_fp16_scaler_path_of_run_training_on_cpu(tmp_path, monkeypatch):
    """The fp16 branch (scale -> backward -> scaler.step -> update) with CPU float16 autocast;
    on a GPU the same branch runs with `torch.amp.GradScaler("cuda")`."""
    if not hasattr(torch.amp, "GradScaler"):
        pytest.skip("this torch has no torch.amp.GradScaler")
    scalers = []

    def cpu_scaler(device, amp):
        assert amp == "fp16"
        scalers.append(torch.amp.GradScaler("cpu", init_scale=2.0 ** 10))
        return scalers[-1]
    monkeypatch.setattr(train_mod, "grad_scaler", cpu_scaler)
    net = _tiny()
    before = [p.detach().clone() for p in net.parameters()]
    x = torch.rand(2, 3, 8, 8)
    y = (x.mean(1, keepdim=True) > 0.5).float()

    def step(i, rng):
        with torch.autocast("cpu", dtype=torch.float16):
            out = net(x)
            assert out.dtype == torch.float16             # the convolutions ran in half
        return torch.nn.functional.binary_cross_entropy_with_logits(out.float(), y)

    spec = TrainSpec("fp16", net, torch.optim.Adam(net.parameters(), 1e-2), step, 4,
                     checkpoint_every=2, amp="fp16")
    stats = run_training(spec, tmp_path / "run", progress=False)
    assert len(scalers) == 1 and scalers[0].get_scale() > 0
    assert all(np.isfinite(stats["losses"])) and len(stats["losses"]) == 4
    assert any(not torch.equal(a, b) for a, b in zip(before, net.parameters()))
    assert (tmp_path / "run" / FINAL).is_file() and not (tmp_path / "run" / LATEST).exists()


def test_half_final_halves_the_file_and_still_loads(tmp_path):
    x = torch.rand(2, 3, 8, 8)
    sizes = {}
    for half in (False, True):
        net = _tiny()
        spec = TrainSpec("n", net, torch.optim.SGD(net.parameters(), 1e-3),
                         lambda i, rng: net(x).mean(), 3, checkpoint_every=1, half_final=half)
        run_training(spec, tmp_path / str(half), progress=False)
        ck = load_checkpoint(tmp_path / str(half) / FINAL)
        assert "optimizer" not in ck
        dtypes = {v.dtype for v in ck["model"].values()}
        assert dtypes == ({torch.float16} if half else {torch.float32})
        sizes[half] = sum(v.numel() * v.element_size() for v in ck["model"].values())
        fresh = load_final(tmp_path / str(half), _tiny(seed=1))
        assert all(p.dtype == torch.float32 for p in fresh.parameters())
        assert torch.allclose(fresh(x), net(x), atol=1e-2)
    assert sizes[True] * 2 == sizes[False]


def test_smoke_fold_keeps_weights_only_finals(tmp_path, smoke_dataset):
    data = tmp_path / "data"                    # a copy: the fold writes folds.json beside it
    shutil.copytree(smoke_dataset, data)
    cfg = get_config("smoke", data_root=str(data), cache_dir=str(tmp_path / "cache"),
                     run_root=str(tmp_path / "runs"), **{"train.half_final": True})
    train_fold(cfg, "stepwise", 0, views=["axial"], progress=False)
    folder = fold_dir(cfg, "stepwise", 0)
    finals = sorted(folder.rglob(FINAL))
    assert [p.parent.name for p in finals] == ["axial_coarse", "axial_fine"]
    assert not list(folder.rglob(LATEST))
    for p in finals:
        ck = load_checkpoint(p)
        assert "optimizer" not in ck and "model" in ck
        assert all(v.dtype == torch.float16 for v in ck["model"].values()
                   if v.is_floating_point())
    full = get_config("smoke", **{"train.half_final": False})
    net = load_final(finals[0].parent, build_net(full))          # half weights load into fp32
    assert next(net.parameters()).dtype == torch.float32


def test_views_without_the_cache_equal_the_cached_ones(tmp_path, smoke_dataset):
    ref = [r for r in list_cases(smoke_dataset) if r.label is not None][0]
    stored, live = CaseCache(tmp_path / "a"), CaseCache(tmp_path / "b", store=False)
    got_s, got_l = stored.get(ref), live.get(ref)
    for v in got_s:
        for a, b in zip(got_s[v], got_l[v]):
            assert a.shape == b.shape and np.array_equal(a, b)
    assert live.info(ref)["label_names"] == stored.info(ref)["label_names"]
    assert not (tmp_path / "b").exists()                          # nothing written
    assert get_config("smoke", cache_views="false").cache_views is False
