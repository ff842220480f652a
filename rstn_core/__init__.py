"""rstn_core: coarse-to-fine small-organ segmentation in abdominal CT.

The stepwise fixed-point model (Zhou et al., MICCAI 2017) and the Recurrent Saliency
Transformation Network (Yu et al., CVPR 2018), with the book chapter's cyst and multi-organ
extensions. Submodules hold one idea each; this file only re-exports.
"""
from rstn_core.config import Config, get_config
from rstn_core.crop import Box, bbox, crop, paste
from rstn_core.metrics import dsc, paired_comparison, summarize
from rstn_core.losses import rstn_loss, rstn_loss_weights, soft_dsc_loss

__all__ = ["Config", "get_config", "Box", "bbox", "crop", "paste", "dsc", "summarize",
           "paired_comparison", "soft_dsc_loss", "rstn_loss", "rstn_loss_weights"]
__version__ = "0.1.0"
