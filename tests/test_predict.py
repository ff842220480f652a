"""Tests of rstn_core.experiments.predict: the mask comes back in the scan's own grid.

Geometry is what matters here, so most tests replace the nets by a deterministic toy whose
"prediction" is the label itself (the label's voxels carry a HU no other voxel has); one test
runs the real pipeline with untrained smoke nets loaded from a run folder.
"""
import json

import nibabel as nib
import numpy as np
import pytest

from rstn_core.algorithms.stepwise import load_stepwise
from rstn_core.cli import main
from rstn_core.config import get_config
from rstn_core.data import DataError, make_case, phantom_preset, target_mask
from rstn_core.data.orient import canonicalize
from rstn_core.engine.train import FINAL
from rstn_core.experiments.predict import Member, Predictor, read_scan, to_scan_grid
from rstn_core.io import atomic_save_nifti, atomic_torch_save
from rstn_core.networks.build import build_net
from tests.helpers import dicom_index_affine, write_dicom_series

MARK_HU = 500.0          # the label's voxels get this HU; everything else stays below 400


@pytest.fixture(scope="module")
def case():
    c = make_case(phantom_preset("smoke"), seed=0, case_id=1)
    y = target_mask(c, "pancreas")
    c.image = np.minimum(c.image, 300.0)
    c.image[y] = MARK_HU
    c.labels = y.astype(np.uint8)
    return c


def toy_predictor():
    """A predictor whose one member 'segments' the voxels at MARK_HU (the label)."""
    cfg = get_config("smoke")
    p = Predictor([Member(folder="toy", method="stepwise", cfg=cfg, nets=None)])

    def member_map(m, image):
        return (image > 450).astype(np.float32), {"model": "toy", "method": "stepwise",
                                                   "rounds": 1, "d": [1.0], "fallback": None,
                                                   "notes": []}
    p._member_map = member_map
    return p


def lps_swapped(array, affine):
    """The same voxels stored LPS with the axes swapped: array axes (z, x, y) reversed in x
    and y, and the affine that keeps every voxel at its world position."""
    X, Y, Z = array.shape
    flip = np.eye(4)
    flip[0, 0], flip[0, 3] = -1, X - 1          # i' = X-1-i
    flip[1, 1], flip[1, 3] = -1, Y - 1          # j' = Y-1-j
    arr = array[::-1, ::-1, :]                   # now indexed (i', j', k)
    perm = np.zeros((4, 4))
    perm[0, 2] = perm[1, 0] = perm[2, 1] = perm[3, 3] = 1   # (a, b, c) = (k, i', j')
    out = np.ascontiguousarray(arr.transpose(2, 0, 1))
    # voxel (a, b, c) = (k, i', j') -> (i', j', k) -> (i, j, k) -> world
    A = affine @ np.linalg.inv(flip) @ np.linalg.inv(perm)
    return out, A


@pytest.mark.parametrize("layout", ["ras", "lps_swapped"])
def test_mask_is_written_in_the_scans_own_grid(case, tmp_path, layout):
    img, lab, aff = case.image, case.labels, case.affine
    if layout == "lps_swapped":
        img, aff2 = lps_swapped(img, aff)
        lab, _ = lps_swapped(lab, aff)
        aff = aff2
    assert nib.aff2axcodes(aff) == (("R", "A", "S") if layout == "ras" else ("S", "L", "P"))
    scan = atomic_save_nifti(img.astype(np.int16), aff, tmp_path / f"{layout}.nii.gz")
    atomic_save_nifti(lab, aff, tmp_path / f"{layout}_label.nii.gz")
    files = toy_predictor().predict(scan).save(tmp_path / "out")
    out = nib.load(files["mask"])
    assert out.shape == img.shape and np.allclose(out.affine, aff)
    assert out.get_data_dtype() == np.uint8
    np.testing.assert_array_equal(np.asarray(out.dataobj), lab)     # overlays exactly
    info = json.loads(open(files["json"]).read())
    assert info["voxels"] == int(lab.sum()) and info["found"]
    assert info["volume_ml"] == pytest.approx(lab.sum() * np.prod(case.spacing) / 1000, 1e-3)
    assert (tmp_path / "out" / f"{layout}_overlay.png").stat().st_size > 1000


def test_two_orientations_give_one_world_mask(case, tmp_path):
    a = atomic_save_nifti(case.image.astype(np.int16), case.affine, tmp_path / "a.nii.gz")
    img, aff = lps_swapped(case.image, case.affine)
    b = atomic_save_nifti(img.astype(np.int16), aff, tmp_path / "b.nii.gz")
    p = toy_predictor()
    ma, mb = (nib.load(p.predict(s).save(tmp_path / "o")["mask"]) for s in (a, b))
    ca, aa = canonicalize(np.asarray(ma.dataobj), ma.affine)
    cb, ab = canonicalize(np.asarray(mb.dataobj), mb.affine)
    np.testing.assert_array_equal(ca, cb)
    assert np.allclose(aa, ab)


def test_dicom_input_gives_the_mask_of_its_nifti(case, tmp_path):
    write_dicom_series(tmp_path / "series", case)
    nii = atomic_save_nifti(case.image.astype(np.int16), case.affine, tmp_path / "ct.nii.gz")
    p = toy_predictor()
    md = nib.load(p.predict(tmp_path / "series").save(tmp_path / "o")["mask"])
    mn = nib.load(p.predict(nii).save(tmp_path / "o")["mask"])
    X, Y, Z = case.image.shape
    assert md.shape == (X, Y, Z)                    # (column, row, slice) of the series
    assert np.allclose(md.affine, dicom_index_affine(case), atol=1e-4)
    cd, ad = canonicalize(np.asarray(md.dataobj), md.affine)
    cn, an = canonicalize(np.asarray(mn.dataobj), mn.affine)
    np.testing.assert_array_equal(cd, cn)
    assert np.allclose(ad, an, atol=1e-4)


def test_empty_prediction_is_a_result(case, tmp_path):
    p = toy_predictor()
    p._member_map = lambda m, image: (np.zeros(image.shape, np.float32),
                                      {"model": "toy", "rounds": 1, "d": []})
    nii = atomic_save_nifti(case.image.astype(np.int16), case.affine, tmp_path / "ct.nii.gz")
    files = p.predict(nii).save(tmp_path / "o")
    info = json.loads(open(files["json"]).read())
    assert not info["found"] and info["volume_ml"] == 0 and info["bbox"] is None
    assert np.asarray(nib.load(files["mask"]).dataobj).sum() == 0


def test_far_spacing_warns(case, tmp_path):
    aff = case.affine.copy()
    aff[:3, :3] *= 0.25                                    # voxels 4x smaller than training
    nii = atomic_save_nifti(case.image.astype(np.int16), aff, tmp_path / "fine.nii.gz")
    pred = toy_predictor().predict(nii)
    assert any("spacing" in w for w in pred.notes)


def test_to_scan_grid_inverts_read_scan(case, tmp_path):
    img, aff = lps_swapped(case.image, case.affine)
    scan = read_scan(atomic_save_nifti(img.astype(np.int16), aff, tmp_path / "s.nii.gz"))
    np.testing.assert_array_equal(to_scan_grid(scan.image, scan), img.astype(np.int16))


# -- bad input: one line each ---------------------------------------------------------------
def test_missing_scan_and_not_a_ct(case, tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        read_scan(tmp_path / "nope.nii.gz")
    mr = atomic_save_nifti((case.image + 1024).astype(np.int16), case.affine, tmp_path / "m.nii.gz")
    with pytest.raises(DataError, match="not a CT"):
        read_scan(mr)


def _fake_run(folder, cfg, finals=True):
    """A stepwise run folder with untrained nets' final checkpoints."""
    folder.mkdir(parents=True, exist_ok=True)
    cfg.to_json(folder / "config.json")
    for v in cfg.views:
        for k in ("coarse", "fine"):
            if finals:
                atomic_torch_save({"model": build_net(cfg).state_dict(), "seconds": 0.0},
                                  folder / f"{v}_{k}" / FINAL)
            else:
                (folder / f"{v}_{k}").mkdir(parents=True, exist_ok=True)
    return folder


def test_run_folder_errors(tmp_path):
    cfg = get_config("smoke")
    with pytest.raises(DataError, match="no config.json"):
        Predictor.from_runs([tmp_path], "cpu")
    with pytest.raises(DataError, match="checkpoint_final.pt"):
        Predictor.from_runs([_fake_run(tmp_path / "unfinished", cfg, finals=False)], "cpu")
    a = _fake_run(tmp_path / "a", cfg)
    b = _fake_run(tmp_path / "b", cfg.replace(target="kidneys"))
    with pytest.raises(DataError, match="target"):
        Predictor.from_runs([a, b], "cpu")
    with pytest.raises(DataError, match="scale"):
        Predictor([Member(a, "stepwise", cfg, None),
                   Member(b, "stepwise", get_config("standard"), None)])


def test_cli_predict_with_untrained_nets(case, tmp_path, capsys):
    """The real pipeline end to end (untrained smoke nets, an ensemble of two folds)."""
    cfg = get_config("smoke")
    a, b = _fake_run(tmp_path / "f0", cfg), _fake_run(tmp_path / "f1", cfg)
    assert load_stepwise(cfg, a).views == list(cfg.views)
    img, aff = lps_swapped(case.image, case.affine)
    scan = atomic_save_nifti(img.astype(np.int16), aff, tmp_path / "scan.nii.gz")
    assert main(["predict", str(scan), "--model", str(a), "--model", str(b),
                 "--out", str(tmp_path / "out"), "--device", "cpu", "--quiet"]) == 0
    out = nib.load(tmp_path / "out" / "scan_mask.nii.gz")
    assert out.shape == img.shape and np.allclose(out.affine, aff)
    info = json.loads((tmp_path / "out" / "scan.json").read_text())
    assert len(info["models"]) == 2 and info["models"][0]["method"] == "stepwise"
    assert "scan:" in capsys.readouterr().out
    assert main(["predict", str(tmp_path / "none.nii.gz"), "--model", str(a),
                 "--out", str(tmp_path / "out")]) == 2
    assert "does not exist" in capsys.readouterr().err
