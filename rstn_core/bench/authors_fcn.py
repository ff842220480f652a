"""A reference model of the authors' (Caffe-style) FCN-8s, for measuring it beside ours.

Built from the published facts of the authors' network, not from their code: conv1_1 padded
by 100, max pooling in ceil mode, fc6 an un-padded 7x7 convolution to 4096 channels, fc7 a
1x1 convolution to 4096, dropout 0.5, 1x1 score layers to 3 channels, frozen bilinear
up-sampling (transposed convolutions 4x4/2, 4x4/2, 16x16/8) and crops with offsets 5 (pool4
scores), 9 (pool3 scores) and 31 (the output, back to the input's size). The benchmark runs
it with random weights: its speed does not depend on them. Our own FCN-8s
(:class:`rstn_core.networks.fcn8s.FCN8s`) drops the pad and the offsets (book: Deviations).
"""
from __future__ import annotations

import torch
from torch import nn

from rstn_core.networks.vgg import vgg16_features

__all__ = ["OFFSETS", "PAD", "AuthorsFCN8s", "bilinear_kernel"]

#: conv1_1's zero padding in the authors' net.
PAD = 100
#: Crop offsets of the pool4 scores, the pool3 scores and the output (Caffe's crop layers).
OFFSETS = (5, 9, 31)


def bilinear_kernel(channels: int, size: int) -> torch.Tensor:
    r"""Weights of a per-channel bilinear up-sampling by a transposed convolution (FCN's
    ``upsample_filt``).

    .. math:: w_{ij} = \Big(1 - \frac{|i - c|}{f}\Big)\Big(1 - \frac{|j - c|}{f}\Big),\quad
              f = \lceil k / 2 \rceil,\ c = f - 1 \ (k \text{ odd})\ \text{or}\ f - 1/2

    Args:
        channels: channels up-sampled (each on its own); size: the kernel size k.
    Shapes:
        returns (channels, 1, k, k) float32: the weight of ``ConvTranspose2d(..., groups=C)``.
    """
    if channels < 1 or size < 1:
        raise ValueError(f"bilinear_kernel: channels={channels}, size={size}; both must be >= 1.")
    f = (size + 1) // 2
    c = f - 1 if size % 2 == 1 else f - 0.5
    r = torch.arange(size, dtype=torch.float32)
    w1 = 1 - (r - c).abs() / f
    return (w1[:, None] * w1[None, :]).expand(channels, 1, size, size).clone()


def _up(channels: int, size: int, stride: int) -> nn.ConvTranspose2d:
    up = nn.ConvTranspose2d(channels, channels, size, stride, groups=channels, bias=False)
    with torch.no_grad():
        up.weight.copy_(bilinear_kernel(channels, size))
    up.weight.requires_grad_(False)                          # frozen, as the authors'
    return up


class AuthorsFCN8s(nn.Module):
    r"""The authors' FCN-8s (pad 100, ceil-mode pools, 7x7 fc6, crops 5/9/31): logits of the
    input's size.

    .. math:: s = \mathrm{crop}_{31}\Big(\mathrm{up}_{8}\big(\mathrm{up}_{2}(\mathrm{up}_{2}
              (S_{fr}) + \mathrm{crop}_5 S_{p4}) + \mathrm{crop}_9 S_{p3}\big)\Big)

    Args:
        in_channels, out_channels: 3 slices in, 3 out; width: channel multiplier (1 = the
        authors'; smaller only for quick tests); dropout: after fc6 and fc7 (0.5).
    Shapes:
        x (N, in_channels, H, W), any H, W >= 1 -> logits (N, out_channels, H, W).
    """

    def __init__(self, in_channels: int = 3, out_channels: int = 3, width: float = 1.0,
                 dropout: float = 0.5):
        super().__init__()
        if not width > 0:
            raise ValueError(f"AuthorsFCN8s: width must be > 0 (1.0 = the authors'), got {width!r}.")
        self.features = vgg16_features(in_channels, width, batch_norm=False)
        self.features[0].padding = (PAD, PAD)                        # conv1_1: pad 100
        for m in self.features:
            if isinstance(m, nn.MaxPool2d):
                m.ceil_mode = True                                   # Caffe rounds up
        pools = [i for i, m in enumerate(self.features) if isinstance(m, nn.MaxPool2d)]
        self._pool3, self._pool4 = pools[2], pools[3]
        c3, c4, c5 = (max(1, round(c * width)) for c in (256, 512, 512))
        fc = max(1, round(4096 * width))
        self.fc6 = nn.Conv2d(c5, fc, 7)                                # 7x7, no padding
        self.fc7 = nn.Conv2d(fc, fc, 1)
        self.drop = nn.Dropout(dropout)
        self.score_fr = nn.Conv2d(fc, out_channels, 1)
        self.score_pool4 = nn.Conv2d(c4, out_channels, 1)
        self.score_pool3 = nn.Conv2d(c3, out_channels, 1)
        self.upscore2 = _up(out_channels, 4, 2)
        self.upscore_pool4 = _up(out_channels, 4, 2)
        self.upscore8 = _up(out_channels, 16, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (N, out_channels, H, W) of an (N, in_channels, H, W) input."""
        if not isinstance(x, torch.Tensor) or x.dim() != 4:
            raise ValueError(f"AuthorsFCN8s: expected an (N, C, H, W) tensor, got "
                             f"{tuple(getattr(x, 'shape', ())) or type(x).__name__}.")
        h, w = x.shape[-2:]
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i == self._pool3:
                pool3 = x
            elif i == self._pool4:
                pool4 = x
        x = self.drop(torch.relu(self.fc6(x)))
        x = self.drop(torch.relu(self.fc7(x)))
        up2 = self.upscore2(self.score_fr(x))
        s4 = self.score_pool4(pool4)
        o4, o3, o = OFFSETS
        fuse4 = up2 + s4[..., o4:o4 + up2.shape[-2], o4:o4 + up2.shape[-1]]      # crop 5
        up4 = self.upscore_pool4(fuse4)
        s3 = self.score_pool3(pool3)
        fuse3 = up4 + s3[..., o3:o3 + up4.shape[-2], o3:o3 + up4.shape[-1]]      # crop 9
        return self.upscore8(fuse3)[..., o:o + h, o:o + w]                       # crop 31
