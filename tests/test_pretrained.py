"""networks/pretrained.py: torchvision-format VGG16 weights loaded strictly into VGG16 and FCN8s, one-line errors otherwise."""
import pytest
import torch
import torch.nn.functional as F
from rstn_core.networks import FCN8s, VGG16, load_vgg16_weights
from tests.helpers import (torchvision_format_state_dict)

torch.set_num_threads(2)


@pytest.fixture(scope="module")
def vgg_file(tmp_path_factory):
    """A torchvision-format VGG16 state dict of random tensors, saved once (550 MB)."""
    path = tmp_path_factory.mktemp("weights") / "vgg16-random.pth"
    sd = torchvision_format_state_dict()
    torch.save(sd, path)
    return path, sd


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
