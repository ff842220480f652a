"""FCN-8s on a VGG16 encoder: the 2D network of both the stepwise model and RSTN.

Fully convolutional: VGG16's conv layers, then fc6/fc7 as convolutions, a 1x1 score layer,
and two skip connections (pool4, pool3) fused while up-sampling by 2, 2 and 8 (Long et al.).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from rstn_core.networks.vgg import vgg16_features

__all__ = ["FCN8s"]

_STRIDE = 32  # pool5 divides the input size by 2^5


class FCN8s(nn.Module):
    r"""FCN-8s with a VGG16 encoder; logits of the input's size for any H, W >= 32.

    .. math:: s = \mathrm{up}_{\times 8}\Big(\mathrm{up}_{\times 2}\big(\mathrm{up}_{\times 2}
              (S_{fr}) + S_{p4}\big) + S_{p3}\Big)

    where :math:`S_{fr}` scores fc7 (stride 32), :math:`S_{p4}` pool4 (stride 16) and
    :math:`S_{p3}` pool3 (stride 8), each by a 1x1 convolution.

    Layers: ``features`` is torchvision's ``vgg16().features`` (same indices when
    ``batch_norm=False``; a BatchNorm2d after every conv otherwise), then
    ``fc6`` (fc_kernel x fc_kernel conv, padding fc_kernel // 2) -> ReLU -> Dropout,
    ``fc7`` (1x1 conv) -> ReLU -> Dropout, and the 1x1 ``score_fr``, ``score_pool4``,
    ``score_pool3``. The score layers start at zero, as in the authors' code, so every pixel
    starts at logit 0 (p = 0.5) and the encoder gets no gradient before the first update;
    the other convs use Kaiming (fan-out) initialisation, as torchvision's VGG.

    How it differs from the authors' (Caffe, "pad 100") FCN-8s, and why:

    * No 100-pixel zero pad before conv1_1 and no crop offsets 5/9/31. The pad exists so that
      an un-padded 7x7 fc6 fits any input; at 96x96 (a typical fine-stage crop) it turns the
      input into 294x294, about 8.5x the multiply-adds of this version (33 vs 3.9 GMAC) and
      roughly 5x the CPU time (the authors' port: 0.45 s per forward pass on 2 cores). Here
      fc6 is padded by fc_kernel // 2 instead, which keeps pool5's size, so the three score
      maps align exactly and no offsets are needed.
    * The input is zero-padded at the bottom/right to a multiple of 32 and the output cropped
      back, so the output always has the input's size (the Caffe net reaches this through its
      crops).
    * Up-sampling is fixed bilinear interpolation (``F.interpolate``, align_corners=False), in
      the role of the authors' frozen bilinear deconvolutions; no parameters.
    * ``width`` < 1 and ``batch_norm=True`` are CPU-scale options (not in the papers): thin
      layers train in seconds, and BatchNorm lets them train from scratch with Adam.

    With ``width=1, batch_norm=False, fc_kernel=7`` the parameter count is that of the
    authors' net (134.3 M; two of them for RSTN's coarse and fine stages: 268.6 M), and
    :func:`~rstn_core.networks.pretrained.load_vgg16_weights` fills the encoder and fc6/fc7.

    Args:
        in_channels: input channels (3 slices).
        out_channels: output channels (3: the network predicts the 3 input slices).
        width: channel multiplier; every layer gets max(1, round(c * width)) channels.
        fc_kernel: fc6's kernel size, odd (7 as VGG16's fc6).
        fc_channels: fc6/fc7 channels; None means round(4096 * width).
        batch_norm: BatchNorm2d after every encoder conv.
        dropout: dropout probability after fc6 and fc7 (0.5 as the authors').
    Shapes:
        x: (N, in_channels, H, W), H, W >= 32 -> logits (N, out_channels, H, W).
    Reference:
        Long, Shelhamer & Darrell, FCN, CVPR 2015; Zhou et al., MICCAI 2017;
        Yu et al., CVPR 2018.
    """

    def __init__(self, in_channels: int = 3, out_channels: int = 3, width: float = 1.0,
                 fc_kernel: int = 7, fc_channels: int | None = None, batch_norm: bool = False,
                 dropout: float = 0.5):
        super().__init__()
        for name, v in (("in_channels", in_channels), ("out_channels", out_channels)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"FCN8s: {name} must be a positive int, got {v!r}.")
        if not width > 0:
            raise ValueError(f"FCN8s: width must be > 0 (1.0 = VGG16), got {width!r}.")
        if isinstance(fc_kernel, bool) or not isinstance(fc_kernel, int) or fc_kernel < 1 \
                or fc_kernel % 2 == 0:
            raise ValueError(
                f"FCN8s: fc_kernel must be a positive odd int (padding fc_kernel // 2 keeps "
                f"pool5's size), got {fc_kernel!r}. Use 7 (VGG16) or 1/3 for a lighter fc6."
            )
        if fc_channels is None:
            fc_channels = max(1, round(4096 * width))
        if isinstance(fc_channels, bool) or not isinstance(fc_channels, int) or fc_channels < 1:
            raise ValueError(f"FCN8s: fc_channels must be a positive int or None, got {fc_channels!r}.")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"FCN8s: dropout must be in [0, 1), got {dropout!r}.")
        self.config = dict(in_channels=in_channels, out_channels=out_channels, width=float(width),
                           fc_kernel=fc_kernel, fc_channels=fc_channels,
                           batch_norm=bool(batch_norm), dropout=float(dropout))

        self.features = vgg16_features(in_channels, width, batch_norm)
        pools = [i for i, m in enumerate(self.features) if isinstance(m, nn.MaxPool2d)]
        self._pool3_index, self._pool4_index = pools[2], pools[3]  # outputs at stride 8 and 16
        c3, c4, c5 = (max(1, round(c * width)) for c in (256, 512, 512))

        self.fc6 = nn.Conv2d(c5, fc_channels, fc_kernel, padding=fc_kernel // 2)  # size-preserving
        self.relu6 = nn.ReLU(inplace=True)
        self.drop6 = nn.Dropout(dropout)
        self.fc7 = nn.Conv2d(fc_channels, fc_channels, kernel_size=1)
        self.relu7 = nn.ReLU(inplace=True)
        self.drop7 = nn.Dropout(dropout)
        self.score_fr = nn.Conv2d(fc_channels, out_channels, kernel_size=1)
        self.score_pool4 = nn.Conv2d(c4, out_channels, kernel_size=1)
        self.score_pool3 = nn.Conv2d(c3, out_channels, kernel_size=1)

        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        for score in (self.score_fr, self.score_pool4, self.score_pool3):
            nn.init.zeros_(score.weight)  # every pixel starts at logit 0, p = 0.5
            nn.init.zeros_(score.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (N, out_channels, H, W) of an (N, in_channels, H, W) input, H, W >= 32."""
        c_in = self.config["in_channels"]
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"FCN8s: expected a torch.Tensor, got {type(x).__name__}.")
        if x.dim() != 4:
            raise ValueError(
                f"FCN8s: expected an (N, {c_in}, H, W) tensor, got shape {tuple(x.shape)}. "
                "A single slice stack needs x.unsqueeze(0)."
            )
        n, c, h, w = x.shape
        if c != c_in:
            raise ValueError(f"FCN8s: expected {c_in} input channels, got {c} (shape {tuple(x.shape)}).")
        if h < _STRIDE or w < _STRIDE:
            raise ValueError(
                f"FCN8s: H and W must be >= {_STRIDE} (five 2x2 poolings), got {h}x{w}. "
                "Crop with a larger margin or pad the input."
            )
        pad_h, pad_w = -h % _STRIDE, -w % _STRIDE
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h))  # zeros at bottom/right to a multiple of 32
        size = x.shape[-2:]

        for i, layer in enumerate(self.features):
            x = layer(x)
            if i == self._pool3_index:
                pool3 = x  # stride 8
            elif i == self._pool4_index:
                pool4 = x  # stride 16
        x = self.drop6(self.relu6(self.fc6(x)))  # fc6 as a conv, pool5's size
        x = self.drop7(self.relu7(self.fc7(x)))  # fc7 as a 1x1 conv

        s = self.score_fr(x)  # S_fr, stride 32
        s = F.interpolate(s, size=pool4.shape[-2:], mode="bilinear", align_corners=False)  # up x2
        s = s + self.score_pool4(pool4)  # + S_p4
        s = F.interpolate(s, size=pool3.shape[-2:], mode="bilinear", align_corners=False)  # up x2
        s = s + self.score_pool3(pool3)  # + S_p3
        s = F.interpolate(s, size=size, mode="bilinear", align_corners=False)  # up x8
        return s[..., :h, :w]  # crop the padding away: output size = input size
