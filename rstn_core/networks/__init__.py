"""The 2D networks: VGG16 (torchvision layout) and FCN-8s on its encoder."""

from rstn_core.networks.fcn8s import FCN8s
from rstn_core.networks.vgg import VGG16, VGG16_URL, load_vgg16_weights, vgg16_features

__all__ = ["FCN8s", "VGG16", "VGG16_URL", "load_vgg16_weights", "vgg16_features"]
