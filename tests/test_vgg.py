"""networks/vgg.py: VGG16 (configuration D) with torchvision's layout."""
import torch
import torch.nn as nn
from rstn_core.networks import VGG16
from tests.helpers import (TORCHVISION_CLASSIFIER, TORCHVISION_CONVS, TORCHVISION_KEYS,
                           TORCHVISION_POOLS)

torch.set_num_threads(2)


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
