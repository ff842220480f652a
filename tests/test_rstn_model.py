"""algorithms/rstn_model.py: the unrolled RSTN (P_t of every round, the fine loss reaching the coarse net through g, the crop reference), and activation checkpointing that must not change results."""
import pytest
import torch
from rstn_core.algorithms.rstn_model import RSTN
from rstn_core.losses import rstn_loss
from rstn_core.networks.fcn8s import FCN8s
from rstn_core.saliency import SaliencyTransform


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
