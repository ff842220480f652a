"""Loaders (phantom, MSD, NIH-like DICOM, lone scans), folds, the cache, inspect_path, and the
bad-input catalogue: each bad input raises DataError with one line naming the file."""
import gzip
import json
import warnings

import nibabel as nib
import numpy as np

import pydicom
import pytest
from pydicom.data import get_testdata_file

from rstn_core.data import (CaseRef, DataError, list_cases,
                            load_case, read_dicom_series, target_mask)
from rstn_core.data.orient import axcodes
from tests.helpers import dicom_index_affine, one_line, save


# -- DICOM writer for the tests (NIH-like: IOP [1,0,0,0,-1,0], spine at the top of each slice) --


# -- phantom layout -------------------------------------------------------------------------------
def test_phantom_layout(phantom_root):
    refs = list_cases(phantom_root)
    assert [r.id for r in refs] == [f"phantom_{i:03d}" for i in range(4)]
    c = load_case(refs[0])
    assert c.source == "phantom" and c.label_names[14] == "bowel_lookalike"
    assert axcodes(c.affine) == "RAS" and c.image.dtype == np.float32


# -- MSD layout: dataset.json, ._ junk, LPS-stored images, "cancer" ------------------------------
def test_msd_layout_canonical_and_targets(tmp_path, case):
    root = tmp_path / "Task07_Pancreas"
    (root / "imagesTr").mkdir(parents=True)
    (root / "labelsTr").mkdir()
    lab = np.where(case.labels <= 2, case.labels, 0).astype(np.uint8)
    aff = case.affine.copy()                                        # store as LPS
    aff[:3, 0] *= -1
    aff[:3, 1] *= -1
    aff[:3, 3] = (case.affine @ [case.image.shape[0] - 1, case.image.shape[1] - 1, 0, 1])[:3]
    img = np.rint(case.image[::-1, ::-1]).astype(np.int16)
    save(img, aff, root / "imagesTr" / "pancreas_001.nii.gz")
    save(lab[::-1, ::-1], aff, root / "labelsTr" / "pancreas_001.nii.gz")
    (root / "imagesTr" / "._pancreas_001.nii.gz").write_bytes(b"\x00\x05junk")
    (root / "dataset.json").write_text(json.dumps({
        "labels": {"0": "background", "1": "pancreas", "2": "cancer"},
        "training": [{"image": "./imagesTr/pancreas_001.nii.gz",
                      "label": "./labelsTr/pancreas_001.nii.gz"}]}))
    refs = list_cases(root)
    assert [r.id for r in refs] == ["pancreas_001"] and refs[0].source == "msd"
    c = load_case(refs[0])
    assert axcodes(c.affine) == "RAS" and np.allclose(c.affine, case.affine, atol=1e-4)
    assert np.array_equal(c.labels, lab)
    assert np.abs(c.image - case.image).max() <= 0.5 + 1e-3
    assert np.array_equal(target_mask(c, "pancreas"), np.isin(lab, (1, 2)))
    assert np.array_equal(target_mask(c, "tumour"), lab == 2)


# -- NIH layout: DICOM series + label in DICOM index order -----------------------------------------
def test_nih_layout_aligns_label(nih_root, case):
    refs = list_cases(nih_root)
    assert refs == [CaseRef("PANCREAS_0007", str(nih_root / "PANCREAS_0007"),
                            str(nih_root / "label0007.nii.gz"), "nih")]
    with warnings.catch_warnings():
        warnings.simplefilter("error")                              # header right: no warning
        c = load_case(refs[0])
    assert axcodes(c.affine) == "RAS" and np.allclose(c.affine, case.affine, atol=1e-3)
    assert np.abs(c.image - case.image).max() <= 0.5 + 1e-3        # sorted, rescaled, oriented
    assert np.array_equal(c.labels == 1, np.isin(case.labels, (1, 2)))
    assert c.label_names == {0: "background", 1: "pancreas"}


def test_nih_label_with_wrong_header_is_repaired(nih_root, tmp_path, case):
    bad = tmp_path / "label0007.nii.gz"
    arr = np.asanyarray(nib.load(str(nih_root / "label0007.nii.gz")).dataobj)
    save(arr, np.eye(4), bad)                                       # header says identity
    with pytest.warns(UserWarning, match="DICOM index order"):
        c = load_case(nih_root / "PANCREAS_0007", bad)
    assert np.array_equal(c.labels == 1, np.isin(case.labels, (1, 2)))


def test_nih_misaligned_label_warns(nih_root, tmp_path, case):
    arr = np.zeros(case.labels.shape, np.uint8)
    arr[:8, :8, :8] = 1                                             # in the air: HU ~ -1000
    bad = save(arr[::-1, :, ::-1].copy(), dicom_index_affine(case), tmp_path / "label0007.nii.gz")
    with pytest.warns(UserWarning, match="misaligned"):
        load_case(nih_root / "PANCREAS_0007", bad)


# -- real DICOM from pydicom's test data -----------------------------------------------------------
def test_real_nih_slice_hu_and_orientation():
    """PANCREAS_0001 slice 122 (JPEG 2000, pillow decodes it): fat ~ -100 HU, spine posterior."""
    path = get_testdata_file("explicit_VR-UN.dcm")
    with pytest.raises(DataError) as e:
        load_case(path)                                             # 2D where 3D is needed
    one_line(e, "explicit_VR-UN.dcm", "single 2D slice")
    c = load_case(path, allow_2d=True)
    assert c.image.shape == (512, 512, 1) and axcodes(c.affine) == "RAS"
    s = c.image[:, :, 0]
    fat = s[(s > -200) & (s < -30)]
    assert -115 < np.median(fat) < -85
    bone_y = np.argwhere(s > 300)[:, 1].mean()
    body_y = np.argwhere(s > -300)[:, 1].mean()
    assert bone_y < body_y - 20                                     # spine at low y: posterior
    assert np.isclose(c.spacing[0], 0.859375)


def test_ct_small_rescale_intercept():
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    vol, aff, info = read_dicom_series(get_testdata_file("CT_small.dcm"), min_slices=1)
    raw = ds.pixel_array.astype(np.float32)
    assert float(ds.RescaleIntercept) == -1024
    assert np.isclose(vol.min(), raw.min() - 1024) and np.isclose(vol.max(), raw.max() - 1024)
    assert vol.shape == (128, 128, 1) and info["n_slices"] == 1


# -- lone scans ------------------------------------------------------------------------------------
def test_single_nifti_scan(tmp_path, case):
    p = save(case.image, case.affine, tmp_path / "scan.nii.gz")
    refs = list_cases(p)
    assert refs == [CaseRef("scan", str(p), None, "nifti")]
    c = load_case(p)
    assert c.labels is None and c.id == "scan"


def test_dicom_folder_scan(nih_root):
    refs = list_cases(nih_root / "PANCREAS_0007")
    assert refs[0].source == "dicom" and refs[0].label is None


# -- the bad-input catalogue -----------------------------------------------------------------------
def test_missing_folder(tmp_path):
    with pytest.raises(DataError) as e:
        list_cases(tmp_path / "nowhere")
    one_line(e, "nowhere", "does not exist")


def test_empty_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError) as e:
        list_cases(tmp_path / "empty")
    one_line(e, "empty", "empty folder")


def test_truncated_nifti(tmp_path, case):
    p = save(case.image, case.affine, tmp_path / "scan.nii.gz")
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 3])
    with pytest.raises(DataError) as e:
        load_case(p)
    one_line(e, "scan.nii.gz", "again")


def test_non_dicom_file(tmp_path):
    p = tmp_path / "notes.dcm"
    p.write_text("this is not a DICOM file\n" * 20)
    with pytest.raises(DataError) as e:
        load_case(p)
    one_line(e, "notes.dcm", "not a DICOM file")


def test_shape_mismatch(tmp_path, case):
    img = save(case.image, case.affine, tmp_path / "img.nii.gz")
    lab = save(case.labels[:-1], case.affine, tmp_path / "lab.nii.gz")
    with pytest.raises(DataError) as e:
        load_case(img, lab)
    one_line(e, "lab.nii.gz", "shape")


def test_affine_mismatch(tmp_path, case):
    img = save(case.image, case.affine, tmp_path / "img.nii.gz")
    aff = case.affine.copy()
    aff[0, 3] += 10.0
    lab = save(case.labels, aff, tmp_path / "lab.nii.gz")
    with pytest.raises(DataError) as e:
        load_case(img, lab)
    one_line(e, "lab.nii.gz", "affine")


def test_non_integer_labels(tmp_path, case):
    img = save(case.image, case.affine, tmp_path / "img.nii.gz")
    lab = save(case.labels.astype(np.float32) * 0.5, case.affine, tmp_path / "lab.nii.gz")
    with pytest.raises(DataError) as e:
        load_case(img, lab)
    one_line(e, "lab.nii.gz", "non-integer")


def test_unknown_label_values(tmp_path, case):
    img = save(case.image, case.affine, tmp_path / "img.nii.gz")
    lab = save(case.labels, case.affine, tmp_path / "lab.nii.gz")   # 3..18 unknown without json
    with pytest.raises(DataError) as e:
        load_case(img, lab)
    one_line(e, "lab.nii.gz", "unknown label values")


def test_nan_in_image(tmp_path, case):
    img = case.image.copy()
    img[5, 5, 5] = np.nan
    img[6, 6, 6] = np.inf
    p = save(img, case.affine, tmp_path / "nan.nii.gz")
    with pytest.raises(DataError) as e:
        load_case(p)
    one_line(e, "nan.nii.gz", "NaN/inf")


def test_2d_file_where_3d_needed(tmp_path, case):
    p = save(case.image[:, :, 10], case.affine, tmp_path / "slice.nii.gz")
    with pytest.raises(DataError) as e:
        load_case(p)
    one_line(e, "slice.nii.gz", "2D")
    assert load_case(p, allow_2d=True).image.shape == (96, 96, 1)


def test_unknown_target(case):
    with pytest.raises(DataError) as e:
        target_mask(case, "appendix")
    msg = one_line(e, "appendix", "known")
    assert "pancreas" in msg and "kidneys" in msg


def test_dataset_json_lists_missing_file(phantom_root, tmp_path):
    root = tmp_path / "broken"
    root.mkdir()
    d = json.loads((phantom_root / "dataset.json").read_text())
    (root / "dataset.json").write_text(json.dumps(d))
    with pytest.raises(DataError) as e:
        list_cases(root)
    one_line(e, "phantom_000.nii.gz", "does not exist")


# -- folds -----------------------------------------------------------------------------------------


# -- cache -----------------------------------------------------------------------------------------


# -- inspect ---------------------------------------------------------------------------------------


def test_gz_written_by_gzip_is_read(tmp_path, case):
    p = tmp_path / "scan.nii"
    save(case.image, case.affine, p)
    gz = tmp_path / "scan2.nii.gz"
    gz.write_bytes(gzip.compress(p.read_bytes()))
    assert load_case(gz).image.shape == case.image.shape
