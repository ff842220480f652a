"""Tests of rstn_core.losses: hand-worked soft DSC, MONAI cross-checks, the λ rule."""

import pytest
import torch
import torch.nn.functional as F

from rstn_core.losses import dice_bce_loss, rstn_loss, rstn_loss_weights, soft_dsc_loss

EPS = 1e-6


def t(rows):
    """A (1, 1, H, W) float tensor from nested lists."""
    return torch.tensor(rows, dtype=torch.float32)[None, None]


# (prob, target, expected loss), by hand: 1 - (2 Σpy + eps) / (Σp + Σy + eps)
SOFT_DSC_CASES = [
    ([[0.5, 0.5], [0, 0]], [[1, 0], [0, 0]], 1 - (2 * 0.5 + EPS) / (1 + 1 + EPS)),   # ≈ 0.5
    ([[1, 0], [0, 1]], [[1, 0], [0, 1]], 0.0),                                       # perfect
    ([[1, 0], [0, 0]], [[0, 0], [0, 1]], 1 - EPS / (2 + EPS)),                        # disjoint ≈ 1
    ([[0, 0], [0, 0]], [[0, 0], [0, 0]], 0.0),                                       # empty/empty: eps/eps
    ([[0.25, 0.75], [0, 0]], [[1, 1], [0, 0]], 1 - (2 * 1.0 + EPS) / (1 + 2 + EPS)),  # 1/3
]


@pytest.mark.parametrize("prob, target, expected", SOFT_DSC_CASES)
def test_soft_dsc_loss_hand_worked(prob, target, expected):
    assert soft_dsc_loss(t(prob), t(target)).item() == pytest.approx(expected, abs=1e-6)


def test_soft_dsc_loss_is_per_sample_mean():
    # sample 0 perfect (loss 0), sample 1 disjoint (loss ≈ 1): the per-sample mean is 0.5
    prob = torch.cat([t([[1, 1], [0, 0]]), t([[0, 0], [1, 0]])])
    target = torch.cat([t([[1, 1], [0, 0]]), t([[0, 0], [0, 1]])])
    assert soft_dsc_loss(prob, target).item() == pytest.approx(0.5 * (1 - EPS / (2 + EPS)), abs=1e-6)
    # one DSC over the whole batch would be 2*2 / (3 + 3), a loss of 1/3, not 0.5
    assert abs(soft_dsc_loss(prob, target).item() - 1 / 3) > 0.1


@pytest.mark.parametrize("eps", [1e-6, 1.0])
def test_soft_dsc_loss_matches_monai(eps):
    from monai.losses import DiceLoss

    g = torch.Generator().manual_seed(0)
    prob = torch.rand(4, 3, 8, 8, generator=g)
    target = (torch.rand(4, 3, 8, 8, generator=g) > 0.7).float()
    # MONAI sums over the spatial axes per (sample, channel); ours per sample over (C, H, W).
    # Folding C into H (one channel) makes the definitions the same.
    monai_loss = DiceLoss(include_background=True, sigmoid=False, reduction="mean", batch=False,
                          smooth_nr=eps, smooth_dr=eps)
    expected = monai_loss(prob.reshape(4, 1, 24, 8), target.reshape(4, 1, 24, 8))
    assert soft_dsc_loss(prob, target, eps=eps).item() == pytest.approx(expected.item(), rel=1e-5)


def test_soft_dsc_loss_valid_ignores_padding():
    g = torch.Generator().manual_seed(1)
    prob = torch.rand(1, 3, 4, 5, generator=g)
    target = (torch.rand(1, 3, 4, 5, generator=g) > 0.5).float()
    # the same crop on a 7x9 canvas whose padding holds garbage (p = 1, y = 1 on half of it)
    canvas_p = torch.ones(1, 3, 7, 9)
    canvas_y = torch.zeros(1, 3, 7, 9)
    canvas_y[..., :, 6:] = 1
    canvas_p[..., 1:5, 2:7] = prob
    canvas_y[..., 1:5, 2:7] = target
    valid = torch.zeros(1, 1, 7, 9)
    valid[..., 1:5, 2:7] = 1
    expected = soft_dsc_loss(prob, target).item()
    assert soft_dsc_loss(canvas_p, canvas_y, valid=valid).item() == pytest.approx(expected, rel=1e-6)
    assert soft_dsc_loss(canvas_p, canvas_y, valid=valid.expand(1, 3, 7, 9)).item() == \
        pytest.approx(expected, rel=1e-6)
    assert abs(soft_dsc_loss(canvas_p, canvas_y).item() - expected) > 1e-3  # padding matters without it


def test_soft_dsc_loss_gradient_flows():
    prob = torch.full((2, 1, 4, 4), 0.5, requires_grad=True)
    target = torch.zeros(2, 1, 4, 4)
    target[:, :, 1:3, 1:3] = 1
    soft_dsc_loss(prob, target).backward()
    inside, outside = prob.grad[0, 0, 1, 1].item(), prob.grad[0, 0, 0, 0].item()
    assert inside < 0 < outside  # raise p on the target, lower it on the background


@pytest.mark.parametrize("fn", [soft_dsc_loss, dice_bce_loss])
def test_shape_mismatch_names_both_shapes(fn):
    with pytest.raises(ValueError, match=r"\(2, 1, 4, 4\).*\(2, 4, 4\)"):
        fn(torch.zeros(2, 1, 4, 4), torch.zeros(2, 4, 4))


@pytest.mark.parametrize("fn", [soft_dsc_loss, dice_bce_loss])
def test_non_4d_input_raises(fn):
    with pytest.raises(ValueError, match="N, C, H, W"):
        fn(torch.zeros(4, 4), torch.zeros(4, 4))


@pytest.mark.parametrize("fn", [soft_dsc_loss, dice_bce_loss])
@pytest.mark.parametrize("shape", [(2, 2, 4, 4), (2, 1, 4, 5), (1, 1, 4, 4), (2, 4, 4)])
def test_bad_valid_shape_raises(fn, shape):
    with pytest.raises(ValueError, match="valid"):
        fn(torch.zeros(2, 3, 4, 4), torch.zeros(2, 3, 4, 4), valid=torch.ones(shape))


def _dice_bce_by_hand(logits, target, eps=EPS):
    bce = F.binary_cross_entropy_with_logits(logits, target)  # mean over all pixels
    p = torch.sigmoid(logits)
    dice = (2 * (p * target).sum() + eps) / (p.sum() + target.sum() + eps)  # one DSC for the batch
    return bce + 1 - dice


def test_dice_bce_loss_equals_bce_plus_batch_dice():
    g = torch.Generator().manual_seed(2)
    logits = torch.randn(3, 2, 6, 5, generator=g) * 3
    target = (torch.rand(3, 2, 6, 5, generator=g) > 0.6).float()
    expected = _dice_bce_by_hand(logits, target)
    assert dice_bce_loss(logits, target).item() == pytest.approx(expected.item(), rel=1e-6)


def test_dice_bce_loss_batch_dice_matches_monai():
    from monai.losses import DiceLoss

    g = torch.Generator().manual_seed(3)
    logits = torch.randn(3, 2, 6, 5, generator=g)
    target = (torch.rand(3, 2, 6, 5, generator=g) > 0.6).float()
    bce = F.binary_cross_entropy_with_logits(logits, target)
    batch_dice = DiceLoss(sigmoid=True, batch=True, smooth_nr=EPS, smooth_dr=EPS)(
        logits.reshape(3, 1, 12, 5), target.reshape(3, 1, 12, 5))
    assert dice_bce_loss(logits, target).item() == pytest.approx((bce + batch_dice).item(), rel=1e-5)


def test_dice_bce_loss_valid_equals_loss_on_the_crop():
    g = torch.Generator().manual_seed(4)
    logits = torch.randn(1, 1, 4, 5, generator=g)
    target = (torch.rand(1, 1, 4, 5, generator=g) > 0.5).float()
    canvas_z = torch.full((1, 1, 8, 8), 5.0)  # confident garbage in the padding
    canvas_y = torch.zeros(1, 1, 8, 8)
    canvas_z[..., 2:6, 3:8] = logits
    canvas_y[..., 2:6, 3:8] = target
    valid = torch.zeros(1, 1, 8, 8)
    valid[..., 2:6, 3:8] = 1
    expected = _dice_bce_by_hand(logits, target).item()
    assert dice_bce_loss(canvas_z, canvas_y, valid=valid).item() == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("T", [0, 1, 2, 3, 4, 5])
def test_rstn_loss_weights_rule(T):
    lam = rstn_loss_weights(T)
    assert len(lam) == T + 1
    assert sum(lam) == pytest.approx(1.0)
    for lam_t in lam[1:]:
        assert lam_t == pytest.approx(2 / (2 * T + 1))  # λ_t = 2 / (2T + 1)
        assert lam_t == pytest.approx(2 * lam[0])  # 2 λ_0 = λ_t


def test_rstn_loss_weights_t1_is_one_third_two_thirds():
    assert rstn_loss_weights(1) == pytest.approx([1 / 3, 2 / 3])


@pytest.mark.parametrize("T, error", [(-1, ValueError), (1.0, TypeError), (True, TypeError)])
def test_rstn_loss_weights_rejects(T, error):
    with pytest.raises(error):
        rstn_loss_weights(T)


def test_rstn_loss_weighted_sum():
    target = t([[1, 1], [0, 0]])
    p_coarse = t([[0, 0], [1, 1]])  # disjoint: loss ≈ 1
    p_fine = t([[1, 1], [0, 0]])  # perfect: loss 0
    assert rstn_loss([p_coarse, p_fine], target).item() == pytest.approx(1 / 3, abs=1e-6)
    assert rstn_loss([p_fine, p_coarse], target).item() == pytest.approx(2 / 3, abs=1e-6)
    assert rstn_loss([p_coarse], target).item() == pytest.approx(1.0, abs=1e-6)
    half = t([[0.5, 0.5], [0, 0]])  # loss 1 - 2/3 = 1/3
    expected = (1 * 1 + 2 * 0 + 2 * (1 / 3)) / 5  # λ = (1/5, 2/5, 2/5) for T = 2
    assert rstn_loss([p_coarse, p_fine, half], target).item() == pytest.approx(expected, abs=1e-6)


def test_rstn_loss_empty_raises():
    with pytest.raises(ValueError, match="at least one"):
        rstn_loss([], torch.zeros(1, 1, 2, 2))


def test_rstn_loss_shape_mismatch_raises():
    with pytest.raises(ValueError, match="same shape"):
        rstn_loss([torch.zeros(1, 1, 2, 2), torch.zeros(1, 1, 3, 3)], torch.zeros(1, 1, 2, 2))
