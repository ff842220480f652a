"""Fixtures shared by the tests: small phantom data sets (MSD layout, phantom layout, an NIH-like
DICOM series), one smoke case, one full-size VGG16, and the `rstn` command run in-process with its
exit code and stderr lines (for the one-line error checks)."""
import numpy as np
import pytest

from rstn_core.data import make_case, phantom_preset, write_dataset
from rstn_core.networks import VGG16
from tests.helpers import dicom_index_affine, save, write_dicom_series


@pytest.fixture(scope="session")
def smoke_dataset(tmp_path_factory):
    """Four smoke-scale phantom cases (MSD layout) in a session-wide folder; treat it as
    read-only (copy it before writing into it)."""
    root = tmp_path_factory.mktemp("smoke_data") / "phantom_smoke"
    write_dataset(root, phantom_preset("smoke"), 4, seed=0, progress=False, workers=1)
    return root


@pytest.fixture
def run_rstn(capsys):
    """run_rstn(*argv) -> (exit code, stderr lines, stdout) of `rstn argv...` in-process."""
    from rstn_core.cli import main

    def run(*argv):
        code = main([str(a) for a in argv])
        out, err = capsys.readouterr()
        return code, [ln for ln in err.splitlines() if ln.strip()], out
    return run


@pytest.fixture(scope="module")
def vgg16():
    """One full-size VGG16 for the tests that only need an instance (building one takes ~1 s)."""
    return VGG16()


@pytest.fixture(scope="module")
def case():
    return make_case(phantom_preset("smoke"), 0, 2)


@pytest.fixture(scope="module")
def phantom_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("data") / "phantom"
    write_dataset(root, phantom_preset("smoke"), 4, seed=0, progress=False)
    return root


@pytest.fixture(scope="module")
def nih_root(tmp_path_factory, case):
    root = tmp_path_factory.mktemp("nih")
    write_dicom_series(root / "PANCREAS_0007" / "1.2.3" / "4.5.6", case)
    lab = case.labels.copy()
    lab[lab > 1] = 0                                               # NIH: 1 = pancreas only
    lab[case.labels == 2] = 1
    idx = lab[::-1, :, ::-1]                                       # DICOM index order
    save(idx.astype(np.uint8), dicom_index_affine(case), root / "label0007.nii.gz")
    return root
