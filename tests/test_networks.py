"""Tests of rstn_core.networks: VGG16 layout and weights, FCN8s shapes, gradients, learning."""

import time

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from rstn_core.losses import dice_bce_loss, soft_dsc_loss
from rstn_core.metrics import dsc
from rstn_core.networks import FCN8s, VGG16, load_vgg16_weights

torch.set_num_threads(2)

# torchvision.models.vgg16 (configuration "D"), written out: conv index -> (out, in) channels
TORCHVISION_CONVS = {0: (64, 3), 2: (64, 64), 5: (128, 64), 7: (128, 128), 10: (256, 128),
                     12: (256, 256), 14: (256, 256), 17: (512, 256), 19: (512, 512),
                     21: (512, 512), 24: (512, 512), 26: (512, 512), 28: (512, 512)}
TORCHVISION_POOLS = (4, 9, 16, 23, 30)
TORCHVISION_KEYS = (
    [f"features.{i}.{p}" for i in TORCHVISION_CONVS for p in ("weight", "bias")]
    + [f"classifier.{i}.{p}" for i in (0, 3, 6) for p in ("weight", "bias")]
)
TORCHVISION_CLASSIFIER = {0: (4096, 512 * 7 * 7), 3: (4096, 4096), 6: (1000, 4096)}


def torchvision_format_state_dict(seed=0):
    """Random tensors with the shapes and key names of torchvision's vgg16 state dict."""
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for i, (c_out, c_in) in TORCHVISION_CONVS.items():
        sd[f"features.{i}.weight"] = torch.randn(c_out, c_in, 3, 3, generator=g)
        sd[f"features.{i}.bias"] = torch.randn(c_out, generator=g)
    for i, (n_out, n_in) in TORCHVISION_CLASSIFIER.items():
        sd[f"classifier.{i}.weight"] = torch.randn(n_out, n_in, generator=g)
        sd[f"classifier.{i}.bias"] = torch.randn(n_out, generator=g)
    return sd


@pytest.fixture(scope="module")
def vgg_file(tmp_path_factory):
    """A torchvision-format VGG16 state dict of random tensors, saved once (550 MB)."""
    path = tmp_path_factory.mktemp("weights") / "vgg16-random.pth"
    sd = torchvision_format_state_dict()
    torch.save(sd, path)
    return path, sd


@pytest.fixture(scope="module")
def vgg16():
    """One full-size VGG16 for the tests that only need an instance (building one takes ~1 s)."""
    return VGG16()


# ---------------------------------------------------------------- VGG16


def test_vgg16_layout_is_torchvision(vgg16):
    model = vgg16
    assert list(model.state_dict().keys()) == TORCHVISION_KEYS
    for i, layer in enumerate(model.features):
        if i in TORCHVISION_CONVS:
            assert isinstance(layer, nn.Conv2d) and (layer.out_channels, layer.in_channels) == TORCHVISION_CONVS[i]
            assert layer.kernel_size == (3, 3) and layer.padding == (1, 1)
        elif i in TORCHVISION_POOLS:
            assert isinstance(layer, nn.MaxPool2d) and layer.kernel_size == 2 and layer.stride == 2
        else:
            assert isinstance(layer, nn.ReLU)
    assert len(model.features) == 31
    assert isinstance(model.avgpool, nn.AdaptiveAvgPool2d) and model.avgpool.output_size == (7, 7)
    kinds = [type(m) for m in model.classifier]
    assert kinds == [nn.Linear, nn.ReLU, nn.Dropout, nn.Linear, nn.ReLU, nn.Dropout, nn.Linear]
    for i, shape in TORCHVISION_CLASSIFIER.items():
        assert tuple(model.classifier[i].weight.shape) == shape


def test_vgg16_forward_shape():
    model = VGG16(num_classes=10).eval()
    with torch.no_grad():
        assert model(torch.rand(2, 3, 32, 32)).shape == (2, 10)


def test_vgg16_loads_torchvision_format_file_strictly(vgg_file, vgg16):
    path, sd = vgg_file
    model = load_vgg16_weights(vgg16, path)
    assert model is vgg16
    own = model.state_dict()
    assert own.keys() == sd.keys()
    for k, v in sd.items():
        assert torch.equal(own[k], v), k


def test_fcn8s_width1_loads_encoder_and_fc6_fc7(vgg_file):
    path, sd = vgg_file
    fcn = load_vgg16_weights(FCN8s(width=1), path)
    for k, v in fcn.features.state_dict().items():
        assert torch.equal(v, sd[f"features.{k}"]), k
    assert torch.equal(fcn.fc6.weight, sd["classifier.0.weight"].reshape(4096, 512, 7, 7))
    assert torch.equal(fcn.fc6.bias, sd["classifier.0.bias"])
    assert torch.equal(fcn.fc7.weight, sd["classifier.3.weight"].reshape(4096, 4096, 1, 1))
    # the reshape follows torchvision's flatten order: fc6 as a conv at the centre of a 7x7
    # pool5 map equals classifier.0 applied to the flattened map
    g = torch.Generator().manual_seed(1)
    pool5 = torch.randn(1, 512, 7, 7, generator=g)
    with torch.no_grad():
        as_conv = fcn.fc6(pool5)[0, :, 3, 3]
        as_linear = F.linear(pool5.flatten(1), sd["classifier.0.weight"], sd["classifier.0.bias"])[0]
    torch.testing.assert_close(as_conv, as_linear, rtol=1e-4, atol=1e-3)
    assert not fcn.score_fr.weight.any()  # score layers keep their zero init


def test_load_from_url_uses_torch_hub(monkeypatch, vgg_file, vgg16):
    _, sd = vgg_file
    calls = []

    def fake_hub(url, **kwargs):
        calls.append((url, kwargs))
        return sd

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", fake_hub)
    with torch.no_grad():
        vgg16.features[0].weight.zero_()
    model = load_vgg16_weights(vgg16, "https://example.org/vgg16.pth")
    assert calls and calls[0][0] == "https://example.org/vgg16.pth" and calls[0][1].get("weights_only")
    assert torch.equal(model.features[0].weight, sd["features.0.weight"])


def test_vgg16_other_num_classes_keeps_its_head(vgg_file):
    path, sd = vgg_file
    model = VGG16(num_classes=10)
    head = model.classifier[6].weight.clone()
    load_vgg16_weights(model, path)
    assert torch.equal(model.classifier[6].weight, head)  # 10 classes: fresh head kept
    assert torch.equal(model.classifier[3].weight, sd["classifier.3.weight"])


def test_load_missing_file_raises(tmp_path, vgg16):
    with pytest.raises(FileNotFoundError, match="http"):
        load_vgg16_weights(vgg16, tmp_path / "nope.pth")


@pytest.mark.parametrize("content", ["list", "garbage", "other keys"])
def test_load_not_a_state_dict_raises(tmp_path, content, vgg16):
    path = tmp_path / "bad.pth"
    if content == "list":
        torch.save([torch.zeros(2)], path)
    elif content == "garbage":
        path.write_bytes(b"this is not a checkpoint")
    else:
        torch.save({"conv1.weight": torch.zeros(64, 3, 7, 7)}, path)
    with pytest.raises(ValueError, match="state dict"):
        load_vgg16_weights(vgg16, path)


def test_load_into_incompatible_fcn8s_raises(vgg_file):
    path, _ = vgg_file
    with pytest.raises(ValueError, match="width"):
        load_vgg16_weights(FCN8s(width=1 / 16, batch_norm=True), path)


# ---------------------------------------------------------------- FCN8s


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
