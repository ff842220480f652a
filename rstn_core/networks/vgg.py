"""VGG16 with torchvision's module layout, and a loader for torchvision-format weights.

The papers start FCN-8s from VGG16 weights (pre-trained on PascalVOC; ImageNet weights are
the usual substitute today). Keeping torchvision's layout (``features.0.weight`` ...
``classifier.6.bias``) means the public ImageNet file loads with ``strict=True``, without
torchvision installed, and the same encoder (and fc6/fc7, reshaped) fills :class:`FCN8s`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import torch
import torch.nn as nn

__all__ = ["VGG16", "VGG16_CFG", "VGG16_URL", "vgg16_features", "load_vgg16_weights"]

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


def _read_state_dict(path_or_url) -> dict:
    """Read a state dict from a local file (weights_only) or an http(s) URL, or raise."""
    source = os.fspath(path_or_url)
    if source.startswith(("http://", "https://")):
        state = torch.hub.load_state_dict_from_url(source, map_location="cpu", weights_only=True)
    else:
        if not os.path.isfile(source):
            raise FileNotFoundError(
                f"load_vgg16_weights: no file {source!r}; download torchvision's VGG16 weights "
                f"({VGG16_URL}) there, or pass that URL instead of a path."
            )
        try:
            state = torch.load(source, map_location="cpu", weights_only=True)
        except Exception as err:  # pickle, zip or weights_only refusals
            raise ValueError(
                f"load_vgg16_weights: {source!r} is not a readable torch state dict "
                f"({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}). "
                "Expected a file saved with torch.save(model.state_dict(), path)."
            ) from err
    if not isinstance(state, Mapping) or not state or \
            not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(
            f"load_vgg16_weights: {source!r} does not hold a state dict (a mapping of names to "
            f"tensors), got {type(state).__name__}. Save one with torch.save(model.state_dict(), path)."
        )
    return dict(state)


def _require(state: dict, keys, source: str) -> None:
    missing = [k for k in keys if k not in state]
    if missing:
        raise ValueError(
            f"load_vgg16_weights: {source} is not a torchvision vgg16 state dict; missing keys "
            f"{missing[:6]}{' ...' if len(missing) > 6 else ''}."
        )


def load_vgg16_weights(model: nn.Module, path_or_url) -> nn.Module:
    r"""Load torchvision-format VGG16 weights into a :class:`VGG16` or an ``FCN8s(width=1)``.

    .. math:: W_{fc6}^{conv} = \mathrm{reshape}(W_{classifier.0}, (4096, 512, 7, 7)), \quad
              W_{fc7}^{conv} = \mathrm{reshape}(W_{classifier.3}, (4096, 4096, 1, 1))

    For FCN8s the encoder ``features.*`` is copied as is and the fully connected fc6/fc7
    become convolutions ("convolutionalisation", Long et al.); the score layers keep their
    zero initialisation. For a VGG16 with ``num_classes != 1000`` the last layer
    (``classifier.6``) keeps its fresh initialisation; everything else loads strictly.

    Args:
        model: a :class:`VGG16`, or an ``FCN8s`` with batch_norm=False, width=1, in_channels=3,
            fc_kernel=7 and 4096 fc channels (otherwise a ValueError: the shapes differ).
        path_or_url: a local file (read with ``torch.load(weights_only=True)``) or an
            http(s) URL (``torch.hub.load_state_dict_from_url``), e.g. :data:`VGG16_URL`.
    Returns:
        the same model, weights loaded.
    Raises:
        FileNotFoundError: no such file. ValueError: not a (vgg16) state dict, or a model whose
        shapes cannot take VGG16 weights.
    Reference:
        Long et al., FCN, CVPR 2015; torchvision.models.vgg16.
    """
    from rstn_core.networks.fcn8s import FCN8s  # local import: fcn8s imports this module

    if isinstance(model, VGG16):
        source = os.fspath(path_or_url)
        state = _read_state_dict(path_or_url)
        own = model.state_dict()
        _require(state, own.keys(), source)
        if state["classifier.6.weight"].shape != own["classifier.6.weight"].shape:
            state["classifier.6.weight"] = own["classifier.6.weight"]  # other num_classes:
            state["classifier.6.bias"] = own["classifier.6.bias"]  # keep the fresh head
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as err:
            raise ValueError(f"load_vgg16_weights: {source} does not fit VGG16: {err}") from err
        return model

    if isinstance(model, FCN8s):
        cfg = model.config
        wrong = {k: cfg[k] for k, want in (("batch_norm", False), ("width", 1.0), ("in_channels", 3),
                                           ("fc_kernel", 7), ("fc_channels", 4096))
                 if cfg[k] != want}
        if wrong:
            raise ValueError(
                f"load_vgg16_weights: VGG16 weights only fit FCN8s(in_channels=3, width=1.0, "
                f"fc_kernel=7, fc_channels=None, batch_norm=False); this model has {wrong}. "
                "Build it with those settings, or train it from scratch."
            )
        source = os.fspath(path_or_url)
        state = _read_state_dict(path_or_url)
        feature_keys = list(model.features.state_dict().keys())
        fc_keys = ["classifier.0.weight", "classifier.0.bias", "classifier.3.weight", "classifier.3.bias"]
        _require(state, ["features." + k for k in feature_keys] + fc_keys, source)
        try:
            model.features.load_state_dict({k: state["features." + k] for k in feature_keys}, strict=True)
            with torch.no_grad():
                model.fc6.weight.copy_(state["classifier.0.weight"].reshape(4096, 512, 7, 7))  # fc6 as 7x7 conv
                model.fc6.bias.copy_(state["classifier.0.bias"])
                model.fc7.weight.copy_(state["classifier.3.weight"].reshape(4096, 4096, 1, 1))  # fc7 as 1x1 conv
                model.fc7.bias.copy_(state["classifier.3.bias"])
        except RuntimeError as err:  # wrong tensor sizes
            raise ValueError(f"load_vgg16_weights: {source} does not fit FCN8s: {err}") from err
        return model

    raise TypeError(
        f"load_vgg16_weights: model must be a VGG16 or an FCN8s, got {type(model).__name__}."
    )
