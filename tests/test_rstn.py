import warnings

import numpy as np
import pytest
import torch

from rstn_core.config import Config, RSTNConfig
from rstn_core.networks.fcn8s import FCN8s
from rstn_core.algorithms.oracles import rstn_strong_oracle, rstn_weak_oracle
from rstn_core.algorithms.rstn import RSTNModels, rstn_predict, rstn_schedule, saliency_channels
from rstn_core.algorithms.rstn_model import RSTN
from rstn_core.losses import rstn_loss
from rstn_core.saliency import SaliencyTransform
from tests.helpers import ConstNet, ThresholdNet


def _model(margin=2, zoom=1):
    torch.manual_seed(0)
    mk = lambda: FCN8s(3, 3, width=1 / 32, fc_kernel=3, batch_norm=True, dropout=0.0)
    return RSTN(mk(), mk(), SaliencyTransform(3), margin=margin, zoom=zoom)


def _batch():
    x = torch.rand(2, 3, 48, 40)
    y = torch.zeros(2, 3, 48, 40)
    y[:, :, 10:20, 12:24] = 1
    return x, y


@pytest.mark.parametrize("T", [1, 2, 3])
@pytest.mark.parametrize("zoom", [1, 2])
def test_every_P_t_has_the_input_size(T, zoom):
    m = _model(zoom=zoom)
    x, y = _batch()
    logits, probs = m(x, T=T, ref="gt", y=y)
    assert len(probs) == T + 1 and logits.shape == x.shape
    assert all(p.shape == x.shape for p in probs)
    # outside the ground-truth box (+ margin 2) the fine map is exactly 0
    assert float(probs[1][:, :, :8].abs().sum()) == 0.0


def test_fine_loss_reaches_the_coarse_net_through_g():
    m = _model()
    x, y = _batch()
    opt = torch.optim.SGD(m.parameters(), lr=0.1)
    # one step first: g starts with zero weights (a constant scaling), so dL/dP(0) through g
    # is zero until its weights move
    for _ in range(2):
        opt.zero_grad()
        logits, probs = m(x, T=1, ref="gt", y=y)
        rstn_loss(probs, y).backward()
        opt.step()
    m.zero_grad()
    _, probs = m(x, T=1, ref="gt", y=y)
    from rstn_core.losses import soft_dsc_loss
    soft_dsc_loss(probs[1], y).backward()            # the FINE term alone
    g = [p.grad for p in m.coarse.parameters() if p.grad is not None]
    assert g and sum(float(t.abs().sum()) for t in g) > 0, "no gradient reached θC through g"
    assert all(p.grad is not None for p in m.saliency.parameters())


def test_crop_reference_switch():
    m = _model()
    x, y = _batch()
    with pytest.raises(ValueError, match="needs the ground truth"):
        m(x, ref="gt")
    with pytest.raises(ValueError, match="unknown crop reference"):
        m(x, ref="oracle", y=y)
    empty = torch.zeros(2, 3, 48, 40)
    assert m.boxes(empty, None, "pred") == [None, None]       # no prediction: no box
    assert m.boxes(empty, y, "pred_or_gt")[0] == (8, 22, 10, 26)  # falls back to GT + 2


def test_rstn_loss_with_coarse_logits_uses_the_lambda_rule():
    x, y = _batch()
    p0, p1 = torch.rand_like(y), torch.rand_like(y)
    from rstn_core.losses import soft_dsc_loss
    expect = soft_dsc_loss(p0, y) / 3 + 2 * soft_dsc_loss(p1, y) / 3     # T = 1: 1/3 + 2/3
    assert torch.allclose(rstn_loss([p0, p1], y), expect)
    from rstn_core.losses import dice_bce_loss
    logits = torch.logit(p0)
    expect_cpu = dice_bce_loss(logits, y) / 3 + 2 * soft_dsc_loss(p1, y) / 3
    assert torch.allclose(rstn_loss([p0, p1], y, coarse_logits=logits), expect_cpu)


def test_schedule_phases_and_rates():
    cfg = Config(rstn=RSTNConfig(gt_iterations=2, pred_iterations=4, noisy_iterations=2,
                                 lr=1e-4, noisy_lr=1e-6, lr_decay_every=2))
    ref_at, lr_at, total = rstn_schedule(cfg)
    assert total == 8
    assert [ref_at(i) for i in range(8)] == ["gt"] * 2 + ["pred_or_gt"] * 4 + ["pred"] * 2
    assert [lr_at(i)[0] for i in range(8)] == pytest.approx([1, 1, 1, 1, 0.5, 0.5, 0.01, 0.01])
    # the noisy phase runs every parameter at noisy_lr, whatever the groups' multipliers
    from rstn_core.algorithms.rstn import rstn_groups
    assert [b * m for b, m in zip(rstn_groups(cfg), lr_at(7))] == pytest.approx([1e-6] * 3)


def _toy_models(fine_level=0.5):
    ms = {}
    for v in ("coronal", "sagittal", "axial"):
        ms[v] = RSTN(ThresholdNet(0.5), ThresholdNet(fine_level), SaliencyTransform(3),
                     margin=2)
    return RSTNModels(ms, batch_size=4)


def _toy_volume():
    rng = np.random.default_rng(0)
    vol = rng.random((20, 18, 16)).astype(np.float32) * 0.3
    lab = np.zeros(vol.shape, bool)
    lab[6:12, 5:11, 4:10] = True
    vol[lab] = 0.9
    return vol, lab


def test_algorithm2_records_every_round_and_stops_at_thr():
    vol, lab = _toy_volume()
    res = rstn_predict(vol, _toy_models(), thr=0.99, T=5, hu=False)
    assert res.stopped_at == 1 and res.d == [1.0]
    assert (res.final == lab).all()
    res = rstn_predict(vol, _toy_models(), thr=None, T=3, hu=False)
    assert len(res.masks) == 4 and len(res.probs) == 4 and len(res.d) == 3


def test_empty_coarse_gives_empty_rounds_without_crash():
    vol, _ = _toy_volume()
    ms = _toy_models()
    for m in ms.models.values():
        m.coarse = ConstNet(-50.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")                 # the fallback is recorded, not warned
        res = rstn_predict(vol, ms, thr=0.99, T=2, hu=False)
    assert res.fallback == "half-peak"


def test_oracles_and_saliency_channels():
    vol, lab = _toy_volume()
    ms = _toy_models()
    assert (rstn_strong_oracle(vol, lab, ms, hu=False) == lab).all()
    weak, rounds = rstn_weak_oracle(vol, lab, ms, thr=0.99, T=5, hu=False)
    assert (weak == lab).all() and rounds == 1           # converged after one round
    w = saliency_channels(ms.models["axial"], np.random.rand(3, 16, 16))
    assert w.shape == (3, 16, 16) and np.allclose(w, 1.0)     # identity at initialisation


def test_variant_names_follow_cvpr_table_1_and_flag_a_changed_learning_rate():
    from rstn_core.config import get_config
    from rstn_core.experiments.pipeline import variant_name
    assert variant_name(get_config("standard")) == "3x3"
    assert variant_name(get_config("paper", **{"rstn.layers": 2})) == "two-layer 3x3"
    assert variant_name(get_config("standard", **{"rstn.kernel_size": 5,
                                                  "rstn.fine_lr_mult": 10.0})) == \
        "5x5, fine + g lr x10"
