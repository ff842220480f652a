"""Small deterministic stand-ins shared by the tests: nets with fixed logits, toy slice sets and
configs, a DICOM series writer, the toy volumes of the two algorithms, and hypothesis strategies."""
import numpy as np
import torch
import torch.nn as nn
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from rstn_core.algorithms.rstn import RSTNModels
from rstn_core.algorithms.rstn_model import RSTN
from rstn_core.algorithms.stepwise import StepwiseNets
from rstn_core.engine.slices import SliceSet
from rstn_core.saliency import SaliencyTransform
import nibabel as nib


class ThresholdNet(nn.Module):
    """A 'net' whose logits say: bright pixels (x > level) are the target."""

    def __init__(self, level=0.5, gain=40.0):
        super().__init__()
        self.level, self.gain = level, gain
        self.dummy = nn.Parameter(torch.zeros(()))

    def forward(self, x):
        return self.gain * (x - self.level) + 0 * self.dummy


class ConstNet(nn.Module):
    def __init__(self, value=-50.0):
        super().__init__()
        self.value = value
        self.dummy = nn.Parameter(torch.zeros(()))

    def forward(self, x):
        return torch.full_like(x, self.value) + 0 * self.dummy


ITERATIONS = 4


def toy_slices(n_cases=2, n=6, h=40, w=36, seed=0) -> SliceSet:
    """Two small cases with a bright square target (as tests/test_train.py)."""
    rng = np.random.default_rng(seed)
    imgs, labs = [], []
    for _ in range(n_cases):
        lab = np.zeros((n, h, w), np.uint8)
        lab[1:5, 12:22, 10:20] = 1
        imgs.append((rng.random((n, h, w)) * 80 + lab * 150).astype(np.uint8))
        labs.append(lab)
    return SliceSet(imgs, labs)


def toy_config():
    """A tiny coarse net without BatchNorm or dropout, per-sample Dice, SGD, batch of 4."""
    from rstn_core.config import get_config
    return get_config("smoke").replace(**{
        "model.width": 1 / 32, "model.batch_norm": False, "model.dropout": 0.0,
        "train.coarse_loss": "dice", "train.optimizer": "sgd", "train.momentum": 0.9,
        "train.coarse_lr": 0.05, "train.batch_size": 4, "train.coarse_iterations": ITERATIONS,
        "train.checkpoint_every": 2, "train.keep_snapshots": False})


def dicom_index_affine(case):
    """RAS affine of the DICOM index grid (column, row, slice sorted along the normal)."""
    X, Y, Z = case.image.shape
    sx, sy, sz = case.spacing
    A = np.zeros((4, 4))
    A[:3, 0] = (-sx, 0, 0)                   # column -> patient's left
    A[:3, 1] = (0, sy, 0)                    # row -> anterior
    A[:3, 2] = (0, 0, -sz)                   # normal = row x col = -z: slices from the top
    A[:3, 3] = (case.affine @ [X - 1, 0, Z - 1, 1])[:3]
    A[3, 3] = 1
    return A


def write_dicom_series(folder, case, shuffle=True):
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid
    folder.mkdir(parents=True, exist_ok=True)
    X, Y, Z = case.image.shape
    sx, sy, sz = case.spacing
    series = generate_uid()
    order = np.random.default_rng(0).permutation(Z) if shuffle else np.arange(Z)
    for n, k in enumerate(order):
        pix = case.image[::-1, :, k].T                             # (rows=y, columns=-x)
        stored = np.rint(pix + 1024).astype(np.int16)              # intercept -1024
        ras0 = case.affine @ [X - 1, 0, k, 1]
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
        ds.Modality, ds.PatientID, ds.SeriesInstanceUID = "CT", "PANCREAS_0007", series
        ds.ImageOrientationPatient = [1, 0, 0, 0, -1, 0]
        ds.ImagePositionPatient = [float(-ras0[0]), float(-ras0[1]), float(ras0[2])]
        ds.PixelSpacing = [float(sy), float(sx)]
        ds.SliceThickness = float(sz)
        ds.Rows, ds.Columns = pix.shape
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleSlope, ds.RescaleIntercept = 1, -1024
        ds.InstanceNumber = n + 1
        ds.PixelData = stored.tobytes()
        ds.save_as(str(folder / f"1-{n + 1:03d}.dcm"), enforce_file_format=True)


VIEWS = ("coronal", "sagittal", "axial")


def stepwise_volume():
    rng = np.random.default_rng(1)
    vol = (rng.random((24, 22, 20)) * 0.3).astype(np.float32)
    lab = np.zeros(vol.shape, bool)
    lab[8:14, 6:12, 5:11] = True
    vol[lab] = 0.9
    vol[20:23, 2:5, 2:5] = 0.7           # a distractor far from the target
    return vol, lab


def stepwise_nets(coarse_level=0.5, fine_level=0.8, margin=2):
    return StepwiseNets({v: ThresholdNet(coarse_level) for v in VIEWS},
                        {v: ThresholdNet(fine_level) for v in VIEWS}, margin=margin,
                        batch_size=5)


def rstn_toy_models(fine_level=0.5):
    ms = {}
    for v in ("coronal", "sagittal", "axial"):
        ms[v] = RSTN(ThresholdNet(0.5), ThresholdNet(fine_level), SaliencyTransform(3),
                     margin=2)
    return RSTNModels(ms, batch_size=4)


def rstn_toy_volume():
    rng = np.random.default_rng(0)
    vol = rng.random((20, 18, 16)).astype(np.float32) * 0.3
    lab = np.zeros(vol.shape, bool)
    lab[6:12, 5:11, 4:10] = True
    vol[lab] = 0.9
    return vol, lab


FAST = settings(max_examples=60, deadline=None)


shapes2d = st.tuples(st.integers(1, 12), st.integers(1, 12))


masks2d = shapes2d.flatmap(lambda s: arrays(bool, s))


margins = st.integers(0, 6) | st.tuples(*[st.integers(0, 6)] * 4)


PLOT_SHAPE = (20, 24, 16)  # (x, y, z)


def plot_case():
    rng = np.random.default_rng(0)
    vol = rng.normal(40, 20, PLOT_SHAPE).astype(np.float32)       # HU
    lab = np.zeros(PLOT_SHAPE, bool)
    lab[8:12, 10:15, 6:10] = True
    pred = np.zeros(PLOT_SHAPE, bool)
    pred[9:13, 10:16, 6:9] = True
    return vol, lab, pred


TORCHVISION_CONVS = {0: (64, 3), 2: (64, 64), 5: (128, 64), 7: (128, 128), 10: (256, 128),
                     12: (256, 256), 14: (256, 256), 17: (512, 256), 19: (512, 512),
                     21: (512, 512), 24: (512, 512), 26: (512, 512), 28: (512, 512)}


TORCHVISION_POOLS = (4, 9, 16, 23, 30)


TORCHVISION_KEYS = (
    [f"features.{i}.{p}" for i in TORCHVISION_CONVS for p in ("weight", "bias")]
    + [f"classifier.{i}.{p}" for i in (0, 3, 6) for p in ("weight", "bias")]
)


TORCHVISION_CLASSIFIER = {0: (4096, 512 * 7 * 7), 3: (4096, 4096), 6: (1000, 4096)}


def torchvision_format_state_dict(seed=0):
    """Random tensors with the shapes and key names of torchvision's vgg16 state dict."""
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for i, (c_out, c_in) in TORCHVISION_CONVS.items():
        sd[f"features.{i}.weight"] = torch.randn(c_out, c_in, 3, 3, generator=g)
        sd[f"features.{i}.bias"] = torch.randn(c_out, generator=g)
    for i, (n_out, n_in) in TORCHVISION_CLASSIFIER.items():
        sd[f"classifier.{i}.weight"] = torch.randn(n_out, n_in, generator=g)
        sd[f"classifier.{i}.bias"] = torch.randn(n_out, generator=g)
    return sd


def one_line(exc_info, *names):
    msg = str(exc_info.value)
    assert "\n" not in msg, msg
    for n in names:
        assert str(n) in msg, msg
    return msg


def save(arr, affine, path):
    nib.save(nib.Nifti1Image(arr, affine), str(path))
    return path
