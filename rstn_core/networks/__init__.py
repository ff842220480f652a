"""The 2D networks: VGG16 (torchvision layout), FCN-8s on its encoder, ImageNet weights, and
the FCN-8s of a run's config."""

from rstn_core.networks.build import build_net
from rstn_core.networks.fcn8s import FCN8s
from rstn_core.networks.pretrained import load_vgg16_weights
from rstn_core.networks.vgg import VGG16, VGG16_URL, vgg16_features

__all__ = ["FCN8s", "VGG16", "VGG16_URL", "load_vgg16_weights", "vgg16_features", "build_net"]
