"""networks/fcn8s.py: FCN-8s shapes, padding, argument checks, gradients, and learning a noisy disc."""
import time
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from rstn_core.losses import dice_bce_loss, soft_dsc_loss
from rstn_core.metrics import dsc
from rstn_core.networks import FCN8s
from tests.helpers import (TORCHVISION_CONVS, TORCHVISION_POOLS)

torch.set_num_threads(2)


def test_fcn8s_encoder_layout():
    fcn = FCN8s(width=1 / 16)
    assert len(fcn.features) == 31
    for i, layer in enumerate(fcn.features):
        if i in TORCHVISION_CONVS:
            c_out, c_in = TORCHVISION_CONVS[i]
            assert isinstance(layer, nn.Conv2d)
            assert layer.out_channels == round(c_out / 16)
            assert layer.in_channels == (3 if i == 0 else round(c_in / 16))
        elif i in TORCHVISION_POOLS:
            assert isinstance(layer, nn.MaxPool2d)
    assert fcn.fc6.kernel_size == (7, 7) and fcn.fc6.padding == (3, 3)
    assert fcn.fc6.out_channels == 256 and fcn.fc7.kernel_size == (1, 1)
    bn = FCN8s(width=1 / 16, batch_norm=True)
    assert sum(isinstance(m, nn.BatchNorm2d) for m in bn.features) == 13


def test_fcn8s_tiny_width_has_at_least_one_channel():
    fcn = FCN8s(width=0.001, fc_channels=2)
    assert min(m.out_channels for m in fcn.features if isinstance(m, nn.Conv2d)) == 1
    assert fcn(torch.rand(1, 3, 32, 32)).shape == (1, 3, 32, 32)


@pytest.mark.parametrize("h, w", [(33, 47), (96, 96), (100, 61), (32, 32), (64, 130)])
def test_fcn8s_output_has_input_size(h, w):
    fcn = FCN8s(width=1 / 16, out_channels=2)
    out = fcn(torch.rand(2, 3, h, w))
    assert out.shape == (2, 2, h, w)
    assert not out.any()  # zero-initialised score layers: every logit 0, p = 0.5


def test_fcn8s_bottom_right_padding_does_not_shift_the_output():
    # a 40x40 input is padded to 64x64; the first 40x40 of the output must not depend on where
    # the image sits, i.e. the same content at the top-left gives the same top-left output
    torch.manual_seed(0)
    fcn = FCN8s(width=1 / 16, fc_kernel=1, out_channels=1).eval()
    with torch.no_grad():
        for score in (fcn.score_fr, fcn.score_pool4, fcn.score_pool3):
            score.weight.normal_()
        x = torch.rand(1, 3, 40, 40)
        padded_by_hand = F.pad(x, (0, 24, 0, 24))
        torch.testing.assert_close(fcn(x), fcn(padded_by_hand)[..., :40, :40])


@pytest.mark.parametrize("shape, match", [((1, 3, 31, 64), "32"), ((1, 3, 64, 31), "32"),
                                          ((3, 64, 64), "N, 3, H, W"), ((1, 1, 64, 64), "channels")])
def test_fcn8s_bad_input_raises(shape, match):
    with pytest.raises(ValueError, match=match):
        FCN8s(width=1 / 16)(torch.rand(shape))


@pytest.mark.parametrize("kwargs, match", [({"fc_kernel": 4}, "odd"), ({"width": 0}, "width"),
                                           ({"dropout": 1.0}, "dropout"), ({"out_channels": 0}, "out_channels")])
def test_fcn8s_bad_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        FCN8s(**kwargs)


@pytest.mark.parametrize("batch_norm", [False, True])
def test_fcn8s_gradients_reach_every_parameter_after_one_step(batch_norm):
    torch.manual_seed(0)
    fcn = FCN8s(width=1 / 16, batch_norm=batch_norm)
    opt = torch.optim.Adam(fcn.parameters(), lr=1e-2)
    x = torch.rand(2, 3, 64, 64)
    target = (torch.rand(2, 3, 64, 64) > 0.7).float()

    soft_dsc_loss(torch.sigmoid(fcn(x)), target).backward()
    # step 0: only the zero-initialised score layers get a gradient (the rest sees 0 weights)
    assert fcn.score_fr.weight.grad.abs().max() > 0
    assert not fcn.features[0].weight.grad.any()
    opt.step()
    opt.zero_grad()
    soft_dsc_loss(torch.sigmoid(fcn(x)), target).backward()
    for name, param in fcn.named_parameters():
        assert param.grad is not None and param.grad.abs().max() > 0, name


@pytest.mark.slow
def test_tiny_fcn8s_learns_a_noisy_disc():
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    yy, xx = torch.meshgrid(torch.arange(64.0), torch.arange(64.0), indexing="ij")
    disc = (((yy - 28) ** 2 + (xx - 36) ** 2) <= 12 ** 2).float()  # off-centre, radius 12

    def noisy_slice():  # the same slice, fresh noise each time: 3 channels (slices)
        return (0.3 + 0.4 * disc + 0.1 * torch.randn(3, 64, 64, generator=g))[None]

    target = disc[None, None]
    fcn = FCN8s(out_channels=1, width=1 / 8, batch_norm=True)
    opt = torch.optim.Adam(fcn.parameters(), lr=1e-3)
    start = time.perf_counter()
    best = 0.0
    for step in range(300):
        fcn.train()
        loss = dice_bce_loss(fcn(noisy_slice()), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 10 == 9:
            fcn.eval()
            with torch.no_grad():
                best = dsc(fcn(noisy_slice()) > 0, target > 0)  # logit > 0 <=> p > 0.5
            if best > 0.9 or time.perf_counter() - start > 60:
                break
    elapsed = time.perf_counter() - start
    assert best > 0.9, f"DSC {best:.3f} after {step + 1} steps"
    assert elapsed < 60, f"took {elapsed:.1f} s"
