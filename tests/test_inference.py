"""rstn_core.engine.inference: the crop-local fine stage gives the full-slice probabilities.

The reference below is the fine stage as it was before it became crop-local (weights g(P)
on the full slice, crop, paste onto a full zero slice, np.add.at over full slices), copied
here verbatim so the comparison stays possible: max |Δp| <= 1e-5 for every view, with and
without g (one and two layers), zoom 1 and 2, boxes touching the slice's edges, GT boxes and
GT weights (the oracles), with BatchNorm folded on one side only.
"""
import copy

import numpy as np
import pytest
import torch

from rstn_core.bench.measure.nets import randomise_scores
from rstn_core.crop import bbox
from rstn_core.engine.batching import fine_forward, paste_batch
from rstn_core.engine.inference import (ViewCache, WindowAccumulator, coarse_probability,
                                        fine_probability, fold_batchnorm, prepare_net,
                                        saliency_halo, window_boxes)
from rstn_core.networks.fcn8s import FCN8s
from rstn_core.saliency import SaliencyTransform
from rstn_core.views import VIEWS, from_view, to_view, window_indices

ATOL = 1e-5


# -- the reference: the full-slice fine stage, as before ----------------------------------------

class _RefAccumulator:
    def __init__(self, n, h, w):
        self.n = n
        self.sum = np.zeros((n, h, w), np.float32)
        self.count = np.bincount(window_indices(np.arange(n), n).ravel(), minlength=n)

    def add(self, centres, preds):
        idx = window_indices(centres, self.n)
        for k in range(3):
            np.add.at(self.sum, idx[:, k], preds[:, k])

    def mean(self):
        return self.sum / self.count[:, None, None]


def _stacks(vol_v, centres):
    return torch.from_numpy(np.ascontiguousarray(vol_v[window_indices(centres, len(vol_v))],
                                                 dtype=np.float32))


@torch.inference_mode()
def reference_fine_probability(net, vol01, prev, view, margin, zoom=1, batch_size=8,
                               saliency=None, weights_from=None, boxes_from=None):
    net.eval()
    vol_v = to_view(vol01, view)
    box_v = to_view(np.asarray(prev if boxes_from is None else boxes_from) > 0.5, view)
    w_v = None
    if saliency is not None:
        saliency.eval()
        w_v = to_view(np.asarray(prev if weights_from is None else weights_from, np.float32),
                      view)
    n, H, W = vol_v.shape
    acc = _RefAccumulator(n, H, W)
    centres_all = np.arange(n)
    boxes_all = [bbox(box_v[idx], margin) for idx in window_indices(centres_all, n)]
    todo = np.array([j for j in centres_all if boxes_all[j] is not None], dtype=np.int64)
    for s in range(0, len(todo), batch_size):
        centres = todo[s:s + batch_size]
        boxes = [boxes_all[j] for j in centres]
        x = _stacks(vol_v, centres)
        if saliency is not None:
            x = saliency(x, _stacks(w_v, centres))
        p, _ = fine_forward(net, x, boxes, zoom)
        full = paste_batch(p.float(), boxes, (H, W))
        acc.add(centres, full.cpu().numpy())
    return from_view(acc.mean(), view), len(todo)


# -- fixtures ---------------------------------------------------------------------------------

def _net(seed=0, batch_norm=True):
    torch.manual_seed(seed)
    net = randomise_scores(FCN8s(3, 3, width=1 / 32, fc_kernel=3, batch_norm=batch_norm), seed)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):          # non-trivial statistics
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.1, 0.1)
    return net.eval()


def _saliency(kernel, layers, seed=0):
    torch.manual_seed(seed)
    g = SaliencyTransform(kernel, layers, init="random")
    with torch.no_grad():
        g.g[-1].weight.normal_(0, 0.5)                       # g clearly depends on P
    return g.eval()


@pytest.fixture(scope="module")
def volume():
    rng = np.random.default_rng(0)
    x = rng.random((44, 40, 18)).astype(np.float32)
    zz, yy, xx = np.meshgrid(np.arange(44), np.arange(40), np.arange(18), indexing="ij")
    p = np.exp(-(((zz - 20) / 7.0) ** 2 + ((yy - 18) / 6.0) ** 2 + ((xx - 9) / 4.0) ** 2))
    p += np.exp(-(((zz - 42) / 3.0) ** 2 + ((yy - 1) / 3.0) ** 2 + ((xx - 16) / 2.0) ** 2))
    p = np.clip(p + 0.05 * rng.random(p.shape), 0, 1).astype(np.float32)   # a blob at the edges
    p[:, :, :2] = 0                                         # slices without a box
    gt = (p > 0.35).astype(np.float32)
    return x, p, gt


# -- the tests --------------------------------------------------------------------------------

@pytest.mark.parametrize("view", VIEWS)
@pytest.mark.parametrize("kernel,layers,zoom", [(None, None, 1), (3, 1, 1), (5, 2, 1),
                                               (3, 2, 2)])
def test_crop_local_equals_full_slice(volume, view, kernel, layers, zoom):
    x, p, _ = volume
    ref_net = _net()
    net = prepare_net(copy.deepcopy(ref_net))                # BatchNorm folded
    g = None if kernel is None else _saliency(kernel, layers)
    want, n_want = reference_fine_probability(ref_net, x, p, view, 3, zoom, 4, saliency=g)
    got, n_got = fine_probability(net, x, p, view, 3, zoom, 4, saliency=g,
                                  cache=ViewCache(x))
    assert n_got == n_want > 0
    assert got.dtype == np.float32 and got.shape == x.shape
    assert float(np.abs(got - want).max()) <= ATOL
    assert float(want.std()) > 1e-3                          # not trivially equal


@pytest.mark.parametrize("view", ["coronal", "axial"])
def test_crop_local_equals_full_slice_oracles(volume, view):
    """GT boxes (weak oracle) and GT weights (strong oracle); no cache."""
    x, p, gt = volume
    net, g = _net(1, batch_norm=False), _saliency(3, 2, 1)
    for kw in ({"boxes_from": gt}, {"boxes_from": gt, "weights_from": gt}):
        want, nw = reference_fine_probability(net, x, p, view, 2, 1, 8, saliency=g, **kw)
        got, ng = fine_probability(net, x, p, view, 2, 1, 8, saliency=g, **kw)
        assert ng == nw and float(np.abs(got - want).max()) <= ATOL


def test_window_boxes_equal_bbox(volume):
    _, p, _ = volume
    for view in VIEWS:
        m = to_view(p > 0.5, view)
        n = len(m)
        for margin in (0, 3, (1, 2, 3, 4)):
            want = [bbox(m[idx], margin) for idx in window_indices(np.arange(n), n)]
            assert window_boxes(m, margin) == want


def test_saliency_halo():
    assert saliency_halo(None) == 0
    assert saliency_halo(_saliency(3, 1)) == 1
    assert saliency_halo(_saliency(5, 2)) == 4


def test_fold_batchnorm_keeps_the_outputs():
    net = _net(2)
    x = torch.rand(2, 3, 40, 36)
    with torch.no_grad():
        want = net(x)
        folded = fold_batchnorm(copy.deepcopy(net))
        got = folded(x)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    assert float((got - want).abs().max()) <= 1e-4 * float(want.abs().max())


def test_coarse_with_cache_and_folded_net(volume):
    x, _, _ = volume
    net = _net(3)
    want = coarse_probability(net, x, "axial", 4)
    got = coarse_probability(prepare_net(copy.deepcopy(net)), x, "axial", 4,
                             cache=ViewCache(x))
    assert float(np.abs(got - want).max()) <= ATOL


def test_window_accumulator_add_box_equals_add():
    rng = np.random.default_rng(1)
    n, h, w = 6, 8, 9
    preds = rng.random((n, 3, h, w)).astype(np.float32)
    a, b = WindowAccumulator(n, h, w), _RefAccumulator(n, h, w)
    a.add(np.arange(n), preds)
    b.add(np.arange(n), preds)
    np.testing.assert_allclose(a.mean(), b.mean(), rtol=1e-6)
    c = WindowAccumulator(n, h, w)
    from rstn_core.crop import Box
    for j in range(n):
        c.add_box(j, Box(0, h, 0, w), preds[j])
    np.testing.assert_allclose(c.mean(), b.mean(), rtol=1e-6)


def test_view_cache_refuses_another_volume(volume):
    x, p, _ = volume
    with pytest.raises(ValueError, match="ViewCache"):
        fine_probability(_net(), x[:10], p[:10], "axial", 2, cache=ViewCache(x))
    with pytest.raises(ValueError, match="3-D"):
        ViewCache(x[0])
