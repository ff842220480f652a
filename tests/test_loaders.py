"""Loaders (phantom, MSD, NIH-like DICOM, lone scans), folds, the cache, inspect_path, and the
bad-input catalogue: each bad input raises DataError with one line naming the file."""
import gzip
import json
import os
import time
import warnings

import nibabel as nib
import numpy as np

from rstn_core.views import window_uint8
import pydicom
import pytest
from pydicom.data import get_testdata_file

from rstn_core.data import (CaseCache, CaseRef, DataError, fold_split, inspect_path, list_cases,
                            load_case, load_folds, make_case, make_folds, phantom_preset,
                            read_dicom_series, save_folds, target_mask,
                            write_dataset)
from rstn_core.data.orient import axcodes


def one_line(exc_info, *names):
    msg = str(exc_info.value)
    assert "\n" not in msg, msg
    for n in names:
        assert str(n) in msg, msg
    return msg


@pytest.fixture(scope="module")
def case():
    return make_case(phantom_preset("smoke"), 0, 2)


@pytest.fixture(scope="module")
def phantom_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("data") / "phantom"
    write_dataset(root, phantom_preset("smoke"), 4, seed=0, progress=False)
    return root


def save(arr, affine, path):
    nib.save(nib.Nifti1Image(arr, affine), str(path))
    return path


# -- DICOM writer for the tests (NIH-like: IOP [1,0,0,0,-1,0], spine at the top of each slice) --
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


def test_fold_out_of_range():
    with pytest.raises(DataError) as e:
        fold_split([f"c{i}" for i in range(8)], 4, k=4)
    one_line(e, "fold 4", "0..3")


def test_dataset_json_lists_missing_file(phantom_root, tmp_path):
    root = tmp_path / "broken"
    root.mkdir()
    d = json.loads((phantom_root / "dataset.json").read_text())
    (root / "dataset.json").write_text(json.dumps(d))
    with pytest.raises(DataError) as e:
        list_cases(root)
    one_line(e, "phantom_000.nii.gz", "does not exist")


# -- folds -----------------------------------------------------------------------------------------
def test_folds_like_the_authors(tmp_path):
    ids = [f"PANCREAS_{i:04d}" for i in range(82, 0, -1)]
    folds = make_folds(ids)
    assert [len(f) for f in folds] == [21, 21, 20, 20]
    assert sum(folds, []) == sorted(ids)                            # contiguous sorted blocks
    train, test = fold_split(ids, 1)
    assert test == folds[1] and set(train) == set(ids) - set(test)
    p = save_folds(folds, tmp_path / "folds.json")
    assert load_folds(p) == folds
    assert fold_split(ids, 2, folds=load_folds(p))[1] == folds[2]
    with pytest.raises(DataError):
        make_folds(ids[:3], k=4)


# -- cache -----------------------------------------------------------------------------------------
def test_cache_views_memmap_and_invalidation(phantom_root, tmp_path):
    ref = list_cases(phantom_root)[1]
    cache = CaseCache(tmp_path / "cache")
    views = cache.get(ref)
    case = load_case(ref)
    img, lab = views["axial"]
    assert isinstance(img, np.memmap) and img.dtype == np.uint8 and img.flags.c_contiguous
    assert img.shape == (48, 96, 96) and views["sagittal"][0].shape == (96, 96, 48)
    assert np.array_equal(img, np.moveaxis(window_uint8(case.image), 2, 0))
    assert np.array_equal(lab, np.moveaxis(case.labels, 2, 0))
    assert np.array_equal(views["coronal"][1], case.labels)
    assert abs(window_uint8(np.float32([-100, 70, 240])) - [0, 128, 255]).max() <= 1
    t0 = os.stat(cache.path(ref) / "meta.json").st_mtime_ns
    cache.get(ref)                                                  # fresh: not rebuilt
    assert os.stat(cache.path(ref) / "meta.json").st_mtime_ns == t0
    time.sleep(0.01)
    os.utime(ref.image, ns=(time.time_ns(), time.time_ns()))        # the source changed
    cache.get(ref)
    assert os.stat(cache.path(ref) / "meta.json").st_mtime_ns != t0
    assert cache.info(ref)["window"] == [-100.0, 240.0]


# -- inspect ---------------------------------------------------------------------------------------
def test_inspect_dataset_and_scan(phantom_root, nih_root):
    text = inspect_path(phantom_root)
    assert "phantom; 4 cases" in text and "folds" in text and "pancreas" in text
    assert len(text.splitlines()) < 25
    text = inspect_path(nih_root)
    assert "nih; 1 cases" in text and "mean HU under the pancreas" in text
    text = inspect_path(get_testdata_file("CT_small.dcm"))
    assert "128 x 128 x 1" in text and "RAS" in text and "none" in text


def test_gz_written_by_gzip_is_read(tmp_path, case):
    p = tmp_path / "scan.nii"
    save(case.image, case.affine, p)
    gz = tmp_path / "scan2.nii.gz"
    gz.write_bytes(gzip.compress(p.read_bytes()))
    assert load_case(gz).image.shape == case.image.shape
