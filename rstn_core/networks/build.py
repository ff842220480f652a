"""The FCN-8s of a run, built as its config says."""
from __future__ import annotations

import torch

from rstn_core.config import Config
from rstn_core.networks.fcn8s import FCN8s
from rstn_core.networks.pretrained import load_vgg16_weights, resolve_pretrained

__all__ = ["build_net"]


def build_net(cfg: Config) -> FCN8s:
    """An FCN-8s as `cfg.model` says, on `cfg.device`: VGG16 weights when `model.pretrained`
    is "imagenet" (data_dir/vgg16-397923af.pth, else torchvision's URL), a file or a URL,
    else random weights drawn from `cfg.seed`.

    The seed is applied inside ``torch.random.fork_rng``, so every run starts from the same
    weights and torch's global generator is left as it was.

    Args:
        cfg: the run's config (model.width, fc_kernel, batch_norm, dropout, pretrained; seed;
            device).
    """
    m = cfg.model
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        net = FCN8s(3, 3, width=m.width, fc_kernel=m.fc_kernel, batch_norm=m.batch_norm,
                    dropout=m.dropout)
    source = resolve_pretrained(m.pretrained, cfg.path("data_dir"))
    if source is not None:
        load_vgg16_weights(net, source)
    return net.to(cfg.device)
