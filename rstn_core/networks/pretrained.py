"""ImageNet-pretrained VGG16 weights for VGG16 and for FCN-8s's encoder and fc6/fc7.

The papers fine-tune FCN-8s from ImageNet VGG16 (Long et al.): the 13 convolutions are
copied as they are, fc6 (25088 -> 4096) becomes a 7x7 convolution and fc7 a 1x1 one.
Weights come from a torchvision-format file (read with ``weights_only=True``) or an http(s)
URL through ``torch.hub``.
"""
from __future__ import annotations

import os
from collections.abc import Mapping

import torch
import torch.nn as nn

from rstn_core.errors import FileFormatError
from rstn_core.networks.fcn8s import FCN8s
from rstn_core.networks.vgg import VGG16, VGG16_URL

__all__ = ["load_vgg16_weights", "resolve_pretrained"]


def _read_state_dict(path_or_url) -> dict:
    """Read a state dict from a local file (weights_only) or an http(s) URL, or raise."""
    source = os.fspath(path_or_url)
    if source.startswith(("http://", "https://")):
        try:
            state = torch.hub.load_state_dict_from_url(source, map_location="cpu",
                                                       weights_only=True)
        except OSError as err:   # no internet, DNS, HTTP errors (URLError is an OSError)
            raise FileFormatError(
                f"load_vgg16_weights: could not download {source} ({type(err).__name__}); "
                f"copy the file (from a machine with internet) to a local path and set "
                f"model.pretrained=PATH, or model.pretrained=none to train from scratch."
            ) from None
    else:
        if not os.path.isfile(source):
            raise FileNotFoundError(
                f"load_vgg16_weights: no file {source!r}; download torchvision's VGG16 weights "
                f"({VGG16_URL}) there, or pass that URL instead of a path."
            )
        try:
            state = torch.load(source, map_location="cpu", weights_only=True)
        except Exception as err:  # pickle, zip or weights_only refusals
            raise FileFormatError(
                f"load_vgg16_weights: {source!r} is not a readable torch state dict "
                f"({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}). "
                "Expected a file saved with torch.save(model.state_dict(), path)."
            ) from err
    if not isinstance(state, Mapping) or not state or \
            not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise FileFormatError(
            f"load_vgg16_weights: {source!r} does not hold a state dict (a mapping of names to "
            f"tensors), got {type(state).__name__}. Save one with torch.save(model.state_dict(), path)."
        )
    return dict(state)


def resolve_pretrained(pretrained, local_dir=None):
    """The weights source `model.pretrained` names: None (train from scratch), a path or URL.

    "imagenet" means torchvision's ImageNet VGG16 (:data:`VGG16_URL`): the file of that name
    in `local_dir` when it is there (no internet needed), else the URL through torch.hub
    (cached under ~/.cache/torch/hub). "none" or "" means from scratch.
    """
    if pretrained is None or str(pretrained).lower() in ("", "none"):
        return None
    if str(pretrained).lower() == "imagenet":
        if local_dir is not None:
            local = os.path.join(os.fspath(local_dir), VGG16_URL.rsplit("/", 1)[1])
            if os.path.isfile(local):
                return local
        return VGG16_URL
    return os.fspath(pretrained)


def _require(state: dict, keys, source: str) -> None:
    missing = [k for k in keys if k not in state]
    if missing:
        raise FileFormatError(
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
