"""Speed options that must not change results: activation checkpointing of the unrolled RSTN,
DataLoader workers that prefetch the training batches, the inference options, and the fold
runner's `--jobs`."""
import time

import numpy as np
import pytest
import torch

from rstn_core.networks.fcn8s import FCN8s
from rstn_core.algorithms.rstn_model import RSTN
from rstn_core.losses import rstn_loss
from rstn_core.saliency import SaliencyTransform
from rstn_core.engine.loader import BatchSource, IterationBatches, iteration_loader, iteration_of
from rstn_core.engine.train import iteration_rng
from tests.test_distributed import toy_slices


# -- activation checkpointing -------------------------------------------------------------

def _rstn():
    torch.manual_seed(0)
    mk = lambda: FCN8s(3, 3, width=1 / 32, fc_kernel=3, batch_norm=True, dropout=0.3)
    m = RSTN(mk(), mk(), SaliencyTransform(3), margin=2, zoom=2)
    with torch.no_grad():                                # score layers start at 0: move them
        for net in (m.coarse, m.fine):
            for s in (net.score_fr, net.score_pool4, net.score_pool3):
                s.weight.normal_(0, 0.3)
    return m.train()


def _grads(checkpointing: bool, T: int = 3):
    m = _rstn()
    m.activation_checkpointing = checkpointing
    x = torch.rand(3, 3, 48, 40, generator=torch.Generator().manual_seed(1))
    y = torch.zeros(3, 3, 48, 40)
    y[:2, :, 10:20, 12:24] = 1                           # sample 2: no target, no crop
    torch.manual_seed(5)                                 # the dropout masks
    logits, probs = m(x, T=T, ref="pred_or_gt", y=y)
    loss = rstn_loss(probs, y, coarse_logits=logits)
    loss.backward()
    grads = {k: p.grad.clone() for k, p in m.named_parameters() if p.grad is not None}
    return float(loss.detach()), grads, {k: b.clone() for k, b in m.named_buffers()}


def test_checkpointing_gives_the_same_gradients_and_batchnorm_statistics():
    loss0, g0, b0 = _grads(False)
    loss1, g1, b1 = _grads(True)
    assert loss0 == pytest.approx(loss1, abs=1e-7)
    assert g0.keys() == g1.keys() and any(k.startswith("fine.") for k in g0)
    assert any(float(g.abs().sum()) > 0 for k, g in g0.items() if k.startswith("coarse."))
    for k in g0:
        assert torch.allclose(g0[k], g1[k], rtol=1e-5, atol=1e-7), k
    for k in b0:        # the recomputation must not update the running statistics again
        assert torch.equal(b0[k], b1[k]), k


def test_checkpointing_is_a_setting_of_the_built_rstn():
    from rstn_core.algorithms.rstn_model import build_rstn
    from rstn_core.config import get_config
    on = build_rstn(get_config("smoke", **{"train.activation_checkpointing": True}))
    off = build_rstn(get_config("smoke"))
    assert on.activation_checkpointing is True and off.activation_checkpointing is False
    assert RSTN.__dict__.get("activation_checkpointing") is None   # no class-level switch


# -- DataLoader -----------------------------------------------------------------------------

def _same(a, b):
    assert len(a) == len(b)
    for u, v in zip(a, b):
        if torch.is_tensor(u):
            assert torch.equal(u, v)
        else:
            assert list(u) == list(v)


def test_loader_with_two_workers_gives_the_in_process_batches():
    s = toy_slices()
    calls = [("coarse_batch", (4, "dice_bce", 0.5)), ("fine_batch", (3, 0, 6))]
    for method, args in calls:
        ds = IterationBatches(s, method, 11, args)
        loaded = list(iteration_loader(ds, start=2, stop=8, workers=2, prefetch=2))
        for k, (batch, state) in enumerate(loaded):
            rng = iteration_rng(11, 2 + k)
            _same(batch, getattr(s, method)(rng, *args))
            assert state == rng.bit_generator.state     # the generator ends where it would


def test_batch_source_with_workers_serves_a_training_run_exactly():
    """As a training loop calls it: in order, then a jump (a resumed run), then another
    method; every batch and the generator afterwards as the in-process draw."""
    s = toy_slices()
    src = BatchSource(s, workers=2, prefetch=2)
    try:
        for i in [0, 1, 2, 3, 7, 8, 2]:
            a, b = iteration_rng(5, i), iteration_rng(5, i)
            _same(src.coarse_batch(a, 4, "dice_bce", 0.5), s.coarse_batch(b, 4, "dice_bce", 0.5))
            assert a.bit_generator.state == b.bit_generator.state
        for i in [0, 1]:
            _same(src.fine_batch(iteration_rng(6, i), 2, 0, 6),
                  s.fine_batch(iteration_rng(6, i), 2, 0, 6))
        used = np.random.default_rng([5, 0])
        used.random()                                    # not a fresh iteration generator
        assert iteration_of(used) is None and iteration_of(iteration_rng(5, 9)) == (5, 9)
        want = np.random.default_rng([5, 0])
        want.random()
        _same(src.coarse_batch(used, 4, "dice_bce", 0.5), s.coarse_batch(want, 4, "dice_bce", 0.5))
        assert src.images is s.images                   # everything else is the SliceSet's
    finally:
        src.close()


# -- inference options ------------------------------------------------------------------------

def test_inference_options_keep_the_probabilities_on_cpu():
    from rstn_core.engine.inference import coarse_probability, prepare_net
    torch.manual_seed(0)
    net = FCN8s(3, 3, width=1 / 32, fc_kernel=3).eval()
    with torch.no_grad():
        net.score_fr.weight.normal_(0, 0.3)
    vol = np.random.default_rng(0).random((40, 36, 6)).astype(np.float32)
    ref = coarse_probability(net, vol, "axial", 4)
    assert prepare_net(net, "cpu", channels_last=True) is net   # CUDA only: a no-op on CPU
    assert net.fc6.weight.is_contiguous()
    np.testing.assert_array_equal(
        coarse_probability(net, vol, "axial", 4, channels_last=True), ref)


# -- the fold runner ------------------------------------------------------------------------

def _notebook(path):
    import nbformat
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell("fold = -1\nscale = 'smoke'\nrun_dir = ''")
    params.metadata["tags"] = ["parameters"]
    body = nbformat.v4.new_code_cell(textwrap_dedent('''
        import pathlib, time
        here = pathlib.Path(run_dir).parent
        (here / f"started{fold}").write_text("x")
        t0 = time.time()                     # both folds must be running side by side
        while len(list(here.glob("started*"))) < 2:
            assert time.time() - t0 < 30, "the other fold never started: not run in parallel"
            time.sleep(0.05)
        print("fold", fold)
    '''))
    nb.cells = [params, body]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nbformat.write(nb, str(path))


def textwrap_dedent(s):
    import textwrap
    return textwrap.dedent(s).strip()


def test_fold_runner_runs_two_folds_side_by_side(tmp_path):
    import nbformat

    from rstn_core.experiments.fold_runner import run_folds
    nb = tmp_path / "tiny.ipynb"
    _notebook(nb)
    t0 = time.perf_counter()
    outs = run_folds(nb, [0, 1], {"scale": "smoke"}, out_root=tmp_path / "out", jobs=2)
    assert [o.name for o in outs] == ["fold0.ipynb", "fold1.ipynb"]
    for fold, out in enumerate(outs):
        assert out.is_file() and out.with_suffix(".done").is_file()
        cells = nbformat.read(str(out), as_version=4).cells
        injected = [c for c in cells if "injected-parameters" in c.metadata.get("tags", [])]
        assert injected and f"fold = {fold}" in injected[0].source
        printed = "".join(o.get("text", "") for c in cells for o in c.get("outputs", []))
        assert f"fold {fold}" in printed
    assert time.perf_counter() - t0 < 60
