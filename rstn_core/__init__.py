"""rstn_core: coarse-to-fine small-organ segmentation in abdominal CT.

The stepwise fixed-point model (Zhou et al., MICCAI 2017) and the Recurrent Saliency
Transformation Network (Yu et al., CVPR 2018), with the book chapter's cyst and multi-organ
extensions. The floor plan, from the papers' blocks up (lower floors never import higher ones):

    0  io; views, crop, losses, metrics, fusion, saliency   the papers' blocks, file writes
    1  data/          scans, the phantom, folds, the per-view cache
    2  config         every knob, the four scales
    3  networks/      VGG16, FCN-8s, ImageNet weights, the net of a config
    4  engine/        batching, training slices, the training loop, inference, devices, DDP
    5  algorithms/    Algorithm 1 (stepwise), RSTN and Algorithm 2, the oracles
    6  experiments/   a fold end to end, evaluation, reports, cysts, organs, predict
    7  plots/         figures and the viewer
    8  bench/         measurements
    9  book, cli      notebook set-up, the `rstn` command

This file only re-exports the config (``from rstn_core import get_config``); every function
lives in the module named for its idea (``from rstn_core.crop import crop``).
"""
from rstn_core.config import Config, get_config

__all__ = ["Config", "get_config"]
__version__ = "0.1.0"
