"""Every knob of a run in one dataclass, with three named scales.

``smoke``    proves the code runs: seconds per notebook on 2 CPU cores (CI, nbval).
``standard`` shows the papers' effects on the phantom in about 30 min of 2-core CPU per method.
``colab``    256 x 256 slices, a real ImageNet VGG16, mixed precision: one fold in a sitting on a T4.
``paper``    the papers' settings: 512 x 512 slices, full VGG16 width, paper iteration counts, GPU.

A run (CLI or papermill) is fully described by one JSON/YAML file written from :class:`Config`.
Where a default differs from the papers, the comment says why; book/deviations.md collects them.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any
from rstn_core.data.phantom import phantom_preset
from rstn_core.io import atomic_write_text
from rstn_core.data.phantom import PhantomConfig

__all__ = ["ModelConfig", "TrainConfig", "RSTNConfig", "TestConfig", "Config", "SCALES",
           "get_config", "scaled_px"]

from rstn_core.data.phantom.config import SCALES  # the one home of the scale names


def scaled_px(px_at_512: float, size: int) -> int:
    """A pixel length given for 512-px slices (the papers' margins), scaled to a slice of `size`."""
    return int(round(px_at_512 * size / 512))


@dataclass
class ModelConfig:
    width: float = 1.0           # channel multiplier of FCN-8s (1 = VGG16)
    fc_kernel: int = 7           # fc6 kernel; 7 = VGG16's fc6 as a convolution
    batch_norm: bool = False     # BN after each conv (CPU scales train from scratch)
    dropout: float = 0.5
    pretrained: str | None = None  # "imagenet" (torchvision's VGG16), a path or URL; width 1


@dataclass
class TrainConfig:
    optimizer: str = "sgd"       # "sgd" (papers: momentum 0.99, wd 5e-4) or "adam"
    momentum: float = 0.99
    weight_decay: float = 5e-4
    batch_size: int = 1          # papers: 1
    coarse_iterations: int = 80000   # MICCAI: 80k at lr 1e-5
    coarse_lr: float = 1e-5
    fine_iterations: int = 60000     # MICCAI: 60k at lr 1e-4
    fine_lr: float = 1e-4
    lr_decay_every: int = 0      # halve the lr every N iterations (0 = constant)
    coarse_loss: str = "dice"    # "dice" (papers: positive slices) or "dice_bce" (all slices)
    positive_fraction: float = 0.5   # dice_bce: share of positive windows in a batch
    drop_smallest: float = 0.02  # authors: the smallest 2% of positive slices are dropped
    margin_low: int = 0          # MICCAI: fine-training margins uniform in {0..60} at 512 px
    margin_high: int = 60
    zoom: int = 1                # fine crops upsampled by this factor (1 = the papers)
    checkpoint_every: int = 1000
    keep_snapshots: bool = False  # keep every checkpoint's weights (equal-time comparisons)
    threads: int = 0             # torch threads (0 = torch's default)
    workers: int = 0             # DataLoader processes preparing batches (0 = in the loop)
    prefetch: int = 2            # batches each worker keeps ready (workers > 0 only)
    activation_checkpointing: bool = False  # RSTN: recompute unrolled steps in backward
    amp: str = "auto"            # mixed precision: auto | bf16 | fp16 | off (engine/device.py)
    half_final: bool = False     # store finished nets' weights in float16 (half the size)


@dataclass
class RSTNConfig:
    kernel_size: int = 3         # CVPR Table 1: 1, 3, 5, 7
    layers: int = 1              # 2 = the two-layer 3x3 variant
    init_scale: tuple = (1.0, 1.0, 1.0)   # g starts as identity (port: (1, 1.5, 2))
    T: int = 1                   # unrolled iterations in training (CVPR: up to 5)
    margin: int = 20             # CVPR: K = 20 px at 512
    from_stepwise: bool = True   # start from the stepwise checkpoints of the same fold
    gt_iterations: int = 40000   # phase 1: crop from the ground truth (authors' stage I)
    pred_iterations: int = 40000  # phase 2: crop from the prediction, GT fallback (stage J)
    noisy_iterations: int = 40000  # phase 3: "fine-tuning with noisy data"
    lr: float = 1e-5             # authors: base 1e-5, saliency and fine layers x10
    fine_lr_mult: float = 10.0
    noisy_lr: float = 1e-6       # CVPR: lr 1e-6 for the noisy fine-tuning
    lr_decay_every: int = 10000  # stage J: lr halved every 10k


@dataclass
class TestConfig:
    R: float = 0.95              # Algorithm 1: stop when d(t) > R
    max_rounds: int = 10         # T of Algorithms 1 and 2: at most T fine rounds
    fixed_point_margin: int = 30  # Algorithm 1: 30-px frame at 512 (the mean training margin)
    thr: float = 0.99            # Algorithm 2: stop when DSC(Z(t-1), Z(t)) > thr
    amp: str = "auto"            # mixed precision at test time (engine/device.py)
    coarse_components: bool = False  # keep large components of Z(0) before the fine rounds
    batch_size: int = 8          # slices per forward pass
    channels_last: bool = False  # CUDA only: nets and inputs in channels-last memory format
    compile: bool = False        # torch.compile the nets (book/performance.md: slower on CPU)
    # (RSTN's crop frame K is rstn.margin: it is used in training and testing alike)


@dataclass
class Config:
    scale: str = "paper"
    seed: int = 0
    device: str = "cpu"
    target: str = "pancreas"
    n_cases: int = 20            # phantom cases generated when no data_root is given
    folds: int = 4
    validation: int = 0          # > 0: hold out this many training cases; "test" = validation
    slice_size: int = 512        # in-plane size the papers' 512-px margins are scaled to
    data_root: str | None = None   # a real data set (NIH, MSD, NIfTI/DICOM); None = phantom
    root: str = "."              # the folder the relative paths below are relative to
    data_dir: str = "data"       # where phantoms are written (data/phantom_<scale>)
    cache_dir: str = "data/cache"  # per-case, per-view uint8 caches
    run_root: str = "runs"       # run folders: <run_root>/<scale>/<method>/fold<K>/
    views: tuple = ("coronal", "sagittal", "axial")
    phantom: Any = None          # rstn_core.data.phantom.PhantomConfig
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    rstn: RSTNConfig = field(default_factory=RSTNConfig)
    test: TestConfig = field(default_factory=TestConfig)

    def path(self, name: str) -> Path:
        """A folder of the run as a Path: `data_dir`, `cache_dir`, `run_root` or `data_root`,
        relative ones taken relative to `root` (the CLI's working directory; `book.setup`
        sets it to the book's own folder, so notebooks never change directory)."""
        if name not in ("data_dir", "cache_dir", "run_root", "data_root"):
            raise ValueError(f"Config.path: unknown folder {name!r}; expected data_dir, "
                             "cache_dir, run_root or data_root.")
        value = getattr(self, name)
        if value is None:
            raise ValueError(f"Config.path: {name} is not set.")
        p = Path(value).expanduser()
        return p if p.is_absolute() else Path(self.root).expanduser() / p

    # -- serialisation ------------------------------------------------------------------
    def to_dict(self) -> dict:
        return json.loads(json.dumps(asdict(self)))

    def to_json(self, path: str | Path | None = None) -> str:
        text = json.dumps(self.to_dict(), indent=2, sort_keys=True)
        if path is not None:
            atomic_write_text(path, text + "\n")
        return text

    def to_yaml(self, path: str | Path | None = None) -> str:
        import yaml
        text = yaml.safe_dump(self.to_dict(), sort_keys=True)
        if path is not None:
            atomic_write_text(path, text)
        return text

    @classmethod
    def from_dict(cls, d: dict) -> "Config":
        d = dict(d)
        sub = {"model": ModelConfig, "train": TrainConfig, "rstn": RSTNConfig,
               "test": TestConfig, "phantom": PhantomConfig}
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"config: unknown keys {sorted(unknown)}; expected a subset of "
                             f"{sorted(known)}.")
        for k, typ in sub.items():
            if isinstance(d.get(k), dict):
                d[k] = _build(typ, d[k], k)
        for k in ("views",):
            if k in d and isinstance(d[k], list):
                d[k] = tuple(d[k])
        if isinstance(d.get("rstn"), RSTNConfig):
            d["rstn"].init_scale = tuple(d["rstn"].init_scale)
        return cls(**d)

    @classmethod
    def load(cls, path: str | Path) -> "Config":
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"config file {path} not found; write one with "
                                    "Config.to_json(path) or `rstn config --scale S`.")
        text = path.read_text()
        if path.suffix in (".yml", ".yaml"):
            import yaml
            return cls.from_dict(yaml.safe_load(text))
        return cls.from_dict(json.loads(text))

    def replace(self, **overrides) -> "Config":
        """A copy with dotted overrides, e.g. ``replace(**{"train.zoom": 1, "seed": 3})``."""
        d = self.to_dict()
        for key, value in overrides.items():
            node = d
            *parents, leaf = key.split(".")
            for p in parents:
                if not isinstance(node.get(p), dict):
                    raise ValueError(f"config: no section {p!r} in override {key!r}.")
                node = node[p]
            if leaf not in node:
                raise ValueError(f"config: unknown key {key!r}; known here: {sorted(node)}.")
            node[leaf] = value
        return Config.from_dict(d)


def _build(typ, d: dict, where: str):
    known = {f.name for f in fields(typ)}
    unknown = set(d) - known
    if unknown:
        raise ValueError(f"config.{where}: unknown keys {sorted(unknown)}; expected a subset "
                         f"of {sorted(known)}.")
    obj = typ(**d)
    for f in fields(typ):  # JSON gives lists where the dataclass holds tuples
        v = getattr(obj, f.name)
        if isinstance(v, list):
            setattr(obj, f.name, tuple(v))
    return obj


def get_config(scale: str = "standard", **overrides) -> Config:
    """The named scale's configuration, with optional dotted overrides.

    >>> get_config("smoke").model.width
    0.0625
    """
    if scale not in SCALES:
        raise ValueError(f"unknown scale {scale!r}; expected one of {list(SCALES)}.")
    cfg = Config(scale=scale, phantom=phantom_preset(scale))
    cfg.slice_size = int(cfg.phantom.shape[0])
    if scale == "paper":
        # The papers' settings throughout (MICCAI training; CVPR schedule), fine-tuned from
        # ImageNet VGG16 as the papers fine-tune a pre-trained FCN-8s.
        cfg.n_cases = 82
        cfg.model.pretrained = "imagenet"
    elif scale == "colab":
        # A real VGG16 at 256 px that finishes one fold in a sitting on a free T4
        # (book/colab.md derives the iteration counts from the FLOPs per iteration).
        cfg.n_cases = 20
        cfg.model = ModelConfig(width=1.0, fc_kernel=7, batch_norm=False, dropout=0.5,
                                pretrained="imagenet")
        cfg.train = TrainConfig(optimizer="adam", momentum=0.9, weight_decay=0.0,
                                batch_size=8, coarse_iterations=2000, coarse_lr=1e-4,
                                fine_iterations=2000, fine_lr=1e-4, coarse_loss="dice_bce",
                                zoom=1, checkpoint_every=250, half_final=True)
        cfg.rstn = RSTNConfig(lr=1e-5, fine_lr_mult=10.0, noisy_lr=1e-6, lr_decay_every=0,
                              gt_iterations=250, pred_iterations=500, noisy_iterations=250)
        cfg.test = TestConfig(coarse_components=True, batch_size=16)
    else:
        # CPU scales: from scratch with BatchNorm + Adam (cpu_experiment.md: converges in
        # minutes; the papers' SGD lr 1e-5 assumes a pre-trained VGG16 and long runs), a
        # lighter fc6 head (the 7x7 fc6 held 6.4 of 8.4 M parameters at width 1/4), crops
        # zoomed x2 (the FCN's output is 8x coarser than its input and the phantom's pancreas
        # is ~10 px thick) and Dice + BCE on all slices for the coarse nets (positive-only
        # nets never learn to say "nothing here"; pure Dice on all slices collapses).
        cfg.model = ModelConfig(width=1 / 8, fc_kernel=3, batch_norm=True, dropout=0.1)
        cfg.train = TrainConfig(optimizer="adam", momentum=0.9, weight_decay=0.0,
                                batch_size=8, coarse_lr=1e-3, fine_lr=1e-3,
                                coarse_loss="dice_bce", zoom=2, checkpoint_every=100,
                                keep_snapshots=True)
        cfg.rstn = RSTNConfig(lr=1e-4, fine_lr_mult=1.0, noisy_lr=2e-5, lr_decay_every=0)
        cfg.test = TestConfig(coarse_components=True, batch_size=16)
        if scale == "standard":
            cfg.n_cases = 20
            cfg.train.coarse_iterations = 800
            cfg.train.fine_iterations = 800
            cfg.train.threads = 2
            cfg.rstn.gt_iterations, cfg.rstn.pred_iterations = 150, 300
            cfg.rstn.noisy_iterations = 150
        else:  # smoke
            cfg.n_cases = 8
            cfg.model.width = 1 / 16
            cfg.train.batch_size = 4
            cfg.train.coarse_iterations = 12
            cfg.train.fine_iterations = 12
            cfg.train.checkpoint_every = 5
            cfg.train.threads = 1   # a 2-core CI runner with tiny nets: one thread is faster
            cfg.rstn.gt_iterations, cfg.rstn.pred_iterations = 4, 4
            cfg.rstn.noisy_iterations = 4
            cfg.test.max_rounds = 3
    return cfg.replace(**overrides) if overrides else cfg
