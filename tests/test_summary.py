"""data/summary.py: `rstn inspect`, a short summary of a data set or a scan."""
from pydicom.data import get_testdata_file
from rstn_core.data import inspect_path


def test_inspect_dataset_and_scan(phantom_root, nih_root):
    text = inspect_path(phantom_root)
    assert "phantom; 4 cases" in text and "folds" in text and "pancreas" in text
    assert len(text.splitlines()) < 25
    text = inspect_path(nih_root)
    assert "nih; 1 cases" in text and "mean HU under the pancreas" in text
    text = inspect_path(get_testdata_file("CT_small.dcm"))
    assert "128 x 128 x 1" in text and "RAS" in text and "none" in text
