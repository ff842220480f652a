"""The saliency transformation g(P; η) of RSTN.

RSTN feeds the previous probability map back into the fine stage not only through the crop
box but also as spatial weights: the fine input is X ⊙ g(P; η), where g is a small
size-preserving convolution from the 3-channel probability map to 3 channels of weights.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn

__all__ = ["SaliencyTransform", "SALIENCY_INITS", "saliency_contrast"]

#: How g starts: see :class:`SaliencyTransform`.
SALIENCY_INITS = ("identity", "port", "random")


class SaliencyTransform(nn.Module):
    r"""Size-preserving convolution from probabilities to input weights, and the weighted input.

    .. math:: I = X \odot g(P; \eta), \qquad
              g(P; \eta) = \mathrm{conv}_{k}(P) \ \text{or}\
              \mathrm{conv}_{k}(\mathrm{ReLU}(\mathrm{conv}_{k}(P)))

    Each weight depends on the probabilities in a k x k neighbourhood (k x k twice for two
    layers). There is no output activation: weights may be any real number.

    Initialisation: the last conv has zero weights and bias ``init_scale``, so at the start
    g(P) is a positive constant per channel whatever P is. The default (1, 1, 1) is the
    identity, so the fine network first sees the plain image, exactly as a stepwise fine
    network does, and learns from there how to use P. The authors' PyTorch port uses
    3x3 -> ReLU -> 5x5 with last bias (1, 1.5, 2) (a plain per-channel scaling at the start);
    pass ``init_scale=(1.0, 1.5, 2.0)`` to follow it. Earlier convs use Kaiming init.
    ``init="port"`` initialises earlier convs as the port does (Xavier weights, bias 1);
    ``init="random"`` gives the last conv small random weights N(0, 0.01^2) instead of zeros,
    so g depends on P from the first step (identity is close to a stationary point when the
    fine net was trained on the plain image).

    Args:
        kernel_size: k, odd (CVPR 2018 Table 1 compares 1, 3, 5, 7; 3 is the basic model).
        layers: 1 (one k x k conv) or 2 (conv -> ReLU -> conv, "two-layer 3x3", the best).
        channels: C, channels of P, of the weights and of X (3 slices).
        init_scale: the last conv's initial bias, one value per channel (or one float).
        init: one of :data:`SALIENCY_INITS` ("identity" by default).
    Shapes:
        p, x: (N, C, H, W); ``weights(p)`` and ``forward(x, p)`` return (N, C, H, W).
    Reference:
        Yu et al., CVPR 2018 (saliency transformation module).
    """

    def __init__(self, kernel_size: int = 3, layers: int = 1, channels: int = 3,
                 init_scale: float | Sequence[float] = (1.0, 1.0, 1.0), init: str = "identity"):
        super().__init__()
        if init not in SALIENCY_INITS:
            raise ValueError(f"SaliencyTransform: init must be one of {list(SALIENCY_INITS)}, "
                             f"got {init!r}.")
        if isinstance(kernel_size, bool) or not isinstance(kernel_size, int) or kernel_size < 1 \
                or kernel_size % 2 == 0:
            raise ValueError(
                f"SaliencyTransform: kernel_size must be a positive odd int (so padding k // 2 "
                f"keeps the size), got {kernel_size!r}. The paper uses 1, 3, 5 or 7."
            )
        if layers not in (1, 2) or isinstance(layers, bool):
            raise ValueError(f"SaliencyTransform: layers must be 1 or 2, got {layers!r}.")
        if isinstance(channels, bool) or not isinstance(channels, int) or channels < 1:
            raise ValueError(f"SaliencyTransform: channels must be a positive int, got {channels!r}.")
        if isinstance(init_scale, (int, float)) and not isinstance(init_scale, bool):
            scale = [float(init_scale)] * channels
        else:
            scale = [float(s) for s in init_scale]
            if len(scale) != channels:
                raise ValueError(
                    f"SaliencyTransform: init_scale needs one value per channel ({channels}), "
                    f"got {len(scale)}: {tuple(scale)}. Pass a single float to use it for all."
                )
        self.kernel_size, self.layers, self.channels = kernel_size, layers, channels

        def conv() -> nn.Conv2d:
            return nn.Conv2d(channels, channels, kernel_size, padding=kernel_size // 2)  # size-preserving

        modules: list[nn.Module] = [conv()] if layers == 1 else [conv(), nn.ReLU(), conv()]
        self.g = nn.Sequential(*modules)
        for m in modules[:-1]:
            if isinstance(m, nn.Conv2d):
                if init == "port":                       # the authors' port: Xavier, bias 1
                    nn.init.xavier_normal_(m.weight)
                    nn.init.ones_(m.bias)
                else:
                    nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                    nn.init.zeros_(m.bias)
        last = modules[-1]
        if init == "random":
            nn.init.normal_(last.weight, 0.0, 0.01)  # g(P) starts near a constant ...
        else:
            nn.init.zeros_(last.weight)  # g(P) starts constant ...
        with torch.no_grad():
            last.bias.copy_(torch.tensor(scale))  # ... equal to init_scale per channel

    def _check(self, t: torch.Tensor, name: str) -> None:
        if not isinstance(t, torch.Tensor) or t.dim() != 4 or t.shape[1] != self.channels:
            got = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
            raise ValueError(
                f"SaliencyTransform: {name} must be (N, {self.channels}, H, W), got {got}."
            )

    def weights(self, p: torch.Tensor) -> torch.Tensor:
        """g(P; η): the spatial weights, (N, C, H, W), from probabilities p (N, C, H, W)."""
        self._check(p, "p")
        return self.g(p)  # CVPR: g(P; eta), a size-preserving convolution

    def forward(self, x: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        """X ⊙ g(P; η): the image weighted by the saliency of the previous probabilities."""
        self._check(x, "x")
        self._check(p, "p")
        if x.shape != p.shape:
            raise ValueError(
                f"SaliencyTransform: x and p must have the same shape, got {tuple(x.shape)} and "
                f"{tuple(p.shape)}. Weight the full "
                "image with the full-size probability map, then crop."
            )
        return x * self.weights(p)  # I = X ⊙ g(P; eta)


@torch.no_grad()
def saliency_contrast(weights: torch.Tensor, organ: torch.Tensor, box=None) -> torch.Tensor:
    r"""How differently g weighs the organ and the rest, per channel (1 = no difference).

    .. math:: c_k = \frac{\operatorname{mean}_{i \in Y} g_k(P)_i}
                        {\operatorname{mean}_{i \in R \setminus Y} g_k(P)_i}

    where Y is the organ and R the region compared with: the box (``box`` given: the crop the
    fine net sees) or the whole slice. |c_k - 1| >= 0.2 is "learned" in the book's sense.

    Args:
        weights: g(P) (N, C, H, W); organ: binary Y (N, C, H, W); box: a 0/1 mask (N, 1 or C,
            H, W) of the region, or None for the whole slice.
    Returns:
        (C,) tensor; NaN for a channel without organ or without background pixels.
    """
    organ = organ.to(weights.dtype)
    region = torch.ones_like(weights) if box is None else box.to(weights.dtype).expand_as(weights)
    inside, rest = organ * region, (1 - organ) * region
    dims = (0, 2, 3)
    mean_in = (weights * inside).sum(dims) / inside.sum(dims)
    mean_out = (weights * rest).sum(dims) / rest.sum(dims)
    return mean_in / mean_out
