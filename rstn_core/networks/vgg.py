"""VGG16 with torchvision's module layout, and a loader for torchvision-format weights.

The papers start FCN-8s from VGG16 weights (pre-trained on PascalVOC; ImageNet weights are
the usual substitute today). Keeping torchvision's layout (``features.0.weight`` ...
``classifier.6.bias``) means the public ImageNet file loads with ``strict=True``, without
torchvision installed, and the same encoder (and fc6/fc7, reshaped) fills :class:`FCN8s`.
"""

from __future__ import annotations


import torch
import torch.nn as nn

__all__ = ["VGG16", "VGG16_CFG", "VGG16_URL", "vgg16_features"]

# Configuration "D" of Simonyan & Zisserman (2015): conv widths, "M" = 2x2 max-pooling.
VGG16_CFG = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
             512, 512, 512, "M")
# torchvision's ImageNet VGG16 weights (torchvision.models.vgg16, IMAGENET1K_V1).
VGG16_URL = "https://download.pytorch.org/models/vgg16-397923af.pth"


def vgg16_features(in_channels: int = 3, width: float = 1.0, batch_norm: bool = False) -> nn.Sequential:
    r"""The VGG16 convolutional encoder, ``features`` of torchvision's ``vgg16``.

    .. math:: c_\ell' = \max(1, \mathrm{round}(c_\ell \cdot \text{width}))

    With ``batch_norm=False`` the module indices are exactly torchvision's: 3x3 convs at
    0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28 (each followed by a ReLU) and
    ``MaxPool2d(2, 2)`` at 4, 9, 16, 23, 30. ``batch_norm=True`` puts a BatchNorm2d after
    every conv (torchvision's ``vgg16_bn`` layout; indices shift).

    Args:
        in_channels: input channels (3: the 3-slice window).
        width: channel multiplier (1.0 = VGG16; 1/16 for fast CPU tests).
        batch_norm: add BatchNorm2d after each conv.
    Shapes:
        (N, in_channels, H, W) -> (N, round(512 * width), H / 32, W / 32).
    Reference:
        Simonyan & Zisserman, ICLR 2015 (configuration D); torchvision ``make_layers``.
    """
    layers: list[nn.Module] = []
    c_in = in_channels
    for v in VGG16_CFG:
        if v == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))  # halve H and W
            continue
        c_out = max(1, round(v * width))  # c' = round(c * width), at least 1
        layers.append(nn.Conv2d(c_in, c_out, kernel_size=3, padding=1))  # 3x3, size-preserving
        if batch_norm:
            layers.append(nn.BatchNorm2d(c_out))
        layers.append(nn.ReLU(inplace=True))
        c_in = c_out
    return nn.Sequential(*layers)


class VGG16(nn.Module):
    r"""VGG16 classifier with torchvision's ``vgg16`` modules and state-dict keys.

    .. math:: y = \mathrm{classifier}(\mathrm{flatten}(\mathrm{avgpool}_{7\times 7}(\mathrm{features}(x))))

    Args:
        num_classes: outputs of the last Linear (1000 for ImageNet).
    Shapes:
        (N, 3, H, W) with H, W >= 32 -> (N, num_classes).
    Reference:
        Simonyan & Zisserman, ICLR 2015; torchvision.models.vgg16 (same initialisation).
    """

    def __init__(self, num_classes: int = 1000):
        super().__init__()
        self.features = vgg16_features()
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = nn.Sequential(
            nn.Linear(512 * 7 * 7, 4096),  # fc6
            nn.ReLU(True),
            nn.Dropout(),
            nn.Linear(4096, 4096),  # fc7
            nn.ReLU(True),
            nn.Dropout(),
            nn.Linear(4096, num_classes),  # fc8
        )
        for m in self.modules():  # torchvision's initialisation
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        x = self.avgpool(x)
        return self.classifier(torch.flatten(x, 1))
