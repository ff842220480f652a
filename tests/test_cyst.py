import itertools
import json

import numpy as np
import pytest

from rstn_core.experiments.cyst import (RegionSpec, cyst_rows, cyst_table, final_dsc, load_prediction,
                            pancreas_region, region_training_slices, restrict_to_region,
                            study_config, train_region_fold)
from rstn_core.experiments import cyst
from rstn_core.views import to_view, window


def brute_region(mask, t, spacing=(1.0, 1.0, 1.0)):
    """1{∃ j: M_j and |i - j| < t}, by looping over every pair of voxels."""
    sp = np.asarray(spacing, float)
    js = np.argwhere(mask)
    out = np.zeros(mask.shape, bool)
    for i in itertools.product(*map(range, mask.shape)):
        out[i] = any(np.sqrt((((np.array(i) - j) * sp) ** 2).sum()) < t for j in js)
    return out


def tiny_mask(seed=0, shape=(7, 8, 6), p=0.04):
    rng = np.random.default_rng(seed)
    m = rng.random(shape) < p
    m[3, 4, 2] = True
    return m


@pytest.mark.parametrize("t", [1, 1.5, 2, 2.5, 3, 15])
@pytest.mark.parametrize("seed", [0, 1])
def test_region_matches_brute_force(t, seed):
    m = tiny_mask(seed)
    assert np.array_equal(pancreas_region(m, t), brute_region(m, t))


@pytest.mark.parametrize("spacing,t", [((1.0, 1.0, 3.0), 3.5), ((0.7, 0.7, 2.5), 2.6),
                                       ((2.0, 1.0, 1.0), 2.0)])
def test_region_with_anisotropic_spacing_matches_brute_force(spacing, t):
    m = tiny_mask(2)
    assert np.array_equal(pancreas_region(m, t, spacing), brute_region(m, t, spacing))


def test_anisotropic_spacing_by_hand():
    m = np.zeros((9, 9, 9), bool)
    m[4, 4, 4] = True
    r = pancreas_region(m, 3.0, spacing=(1.0, 1.0, 2.5))   # t = 3 mm
    assert r[4, 4, 4] and r[6, 4, 4] and not r[7, 4, 4]     # 2 mm in, 3 mm out (strict <)
    assert r[4, 4, 5] and not r[4, 4, 6]                    # 2.5 mm in, 5 mm out
    assert r[5, 5, 5] is np.True_ or r[5, 5, 5]             # sqrt(1 + 1 + 6.25) ≈ 2.87 < 3
    assert not r[6, 4, 5]                                   # sqrt(4 + 6.25) ≈ 3.2
    v = pancreas_region(m, 3.0)                             # in voxels: 2.5 mm slice ignored
    assert v[4, 4, 6] and not v[4, 4, 7]


def test_distance_is_strict_and_empty_mask_gives_empty_region():
    m = np.zeros((1, 1, 40), bool)
    m[0, 0, 20] = True
    r = pancreas_region(m, 15)
    assert r[0, 0, 6] and r[0, 0, 34] and not r[0, 0, 5] and not r[0, 0, 35]
    assert r.sum() == 29                                    # |i - j| in 0..14
    assert not pancreas_region(np.zeros((5, 5, 5), bool)).any()
    assert pancreas_region(np.ones((3, 3, 3), np.uint8)).all()


def test_restricted_input_keeps_the_region_and_zeroes_the_rest():
    rng = np.random.default_rng(0)
    image = rng.uniform(-1000, 1000, (7, 8, 6)).astype(np.float32)
    m = tiny_mask(3)
    region = brute_region(m, 2.5)
    x = restrict_to_region(image, pancreas_region(m, 2.5))
    assert x.dtype == np.float32
    assert np.array_equal(x[region], image[region])         # every voxel within t kept
    assert (x[~region] == -1000).all()                      # the rest filled with air
    assert np.array_equal(window(x), window(image) * region)   # the network sees X · 1{R}
    # filling with 0 HU would not be "zero" for the network: 0 HU windows to 100/340
    grey = restrict_to_region(image, region, fill_hu=0.0)
    assert np.allclose(window(grey)[~region], 100 / 340)


@pytest.mark.parametrize("call,exc,match", [
    (lambda: pancreas_region(np.zeros((3, 3, 3)), 0), ValueError, "positive"),
    (lambda: pancreas_region(np.zeros((3, 3, 3)), -2), ValueError, "positive"),
    (lambda: pancreas_region(np.zeros((3, 3, 3)), True), ValueError, "positive"),
    (lambda: pancreas_region(np.zeros((3, 3, 3)), float("nan")), ValueError, "positive"),
    (lambda: pancreas_region(np.full((3, 3, 3), 0.7), 15), ValueError, "prob > 0.5"),
    (lambda: pancreas_region([[0, 1]], 15), TypeError, "numpy array"),
    (lambda: pancreas_region(np.array(["a"]), 15), TypeError, "dtype"),
    (lambda: pancreas_region(np.zeros((3, 3, 3), bool), 3, (1, 1)), ValueError,
     "3 positive sizes"),
    (lambda: pancreas_region(np.zeros((3, 3, 3), bool), 3, (1, 0, 1)), ValueError,
     "3 positive sizes"),
    (lambda: restrict_to_region(np.zeros((3, 3, 3)), np.zeros((3, 3), bool)), ValueError,
     "same shape"),
    (lambda: restrict_to_region([1, 2], np.zeros(2, bool)), TypeError, "numpy array in HU"),
    (lambda: restrict_to_region(np.zeros(2), np.zeros(2, bool), float("nan")), ValueError,
     "finite"),
    (lambda: RegionSpec(unit="cm"), ValueError, "'voxel' or 'mm'"),
    (lambda: RegionSpec(t=0), ValueError, "positive"),
])
def test_bad_inputs_raise_clear_errors(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_region_spec_units():
    m = np.zeros((9, 9, 9), bool)
    m[4, 4, 4] = True
    sp = (1.0, 1.0, 2.5)
    assert np.array_equal(RegionSpec(3, "mm").region(m, sp), pancreas_region(m, 3, sp))
    assert np.array_equal(RegionSpec(3).region(m, sp), pancreas_region(m, 3))
    assert RegionSpec(15).to_dict() == {"t": 15.0, "unit": "voxel", "fill_hu": -1000.0}


def test_load_prediction_thresholds_and_checks(tmp_path):
    probs = tmp_path / "test" / "probs"
    probs.mkdir(parents=True)
    np.savez(probs / "c1.npz", prob=np.array([0, 127, 128, 255], np.uint8))
    assert load_prediction(tmp_path, "c1").tolist() == [False, False, True, True]
    with pytest.raises(ValueError, match="another data set"):
        load_prediction(tmp_path, "c1", shape=(5,))
    with pytest.raises(FileNotFoundError, match="test the pancreas run first"):
        load_prediction(tmp_path, "c2")


def test_study_config_folders():
    from rstn_core.config import get_config
    cfg = get_config("smoke", run_root="runs/cyst")
    assert study_config(cfg, "pancreas").target == "pancreas"
    c = study_config(cfg, "cyst_region")
    assert c.target == "cyst" and c.run_root.endswith("cyst/cyst_region")
    with pytest.raises(ValueError, match="unknown study part"):
        study_config(cfg, "liver")


def _row(d95, d99, coarse=0.5):
    return {"coarse": coarse, "stop": {"0.95": {"dsc": d95}, "0.99": {"dsc": d99}}}


def test_cyst_table_counts_zero_dsc_cases(tmp_path):
    def write(part, method, fold, rows, region=False):
        p = tmp_path / part / "smoke" / method / f"fold{fold}" / "test" / "results.json"
        p.parent.mkdir(parents=True)
        cases = [dict(r, id=f"c{k}", **({"region": {"cyst_inside": 0.5}} if region else {}))
                 for k, r in enumerate(rows)]
        p.write_text(json.dumps({"fold": fold, "cases": cases}))

    write("pancreas", "stepwise", 0, [_row(0.8, 0.1), _row(0.6, 0.1)])
    write("cyst_whole", "rstn", 0, [_row(0.1, 0.0), _row(0.1, 0.4)])
    write("cyst_region", "stepwise", 0, [_row(0.0, 0.9), _row(0.5, 0.9)], region=True)
    write("cyst_region", "stepwise", 1, [_row(0.0, 0.9)], region=True)
    assert final_dsc(_row(0.3, 0.7), "stepwise") == 0.3
    assert final_dsc(_row(0.3, 0.7), "rstn") == 0.7
    rows = {(r["part"], r["method"]): r for r in cyst_rows(tmp_path, "smoke")}
    assert rows[("pancreas", "stepwise")]["dsc"] == [0.8, 0.6]
    assert rows[("cyst_whole", "RSTN, whole image")]["dsc"] == [0.0, 0.4]
    assert rows[("cyst_region", "stepwise, inside pancreas")]["folds"] == [0, 1]
    text = cyst_table(tmp_path, "smoke")
    assert "| cyst | RSTN, whole image | 20.00 ± 28.28 | 40.00 | 0.00 | 1 | 2 | – |" in text
    assert "| cyst | stepwise, inside pancreas | 16.67 ± 28.87 | 50.00 | 0.00 | 2 | 3 | 50.0 % |" \
        in text
    assert "no cyst-study results" in cyst_table(tmp_path, "standard")


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory):
    from rstn_core.data.phantom import phantom_preset, write_dataset
    root = tmp_path_factory.mktemp("phantom")
    write_dataset(root, phantom_preset("smoke"), 4, seed=0, progress=False)
    return root


def test_training_slices_are_cut_around_the_ground_truth(tiny_dataset):
    from rstn_core.data import list_cases, load_case
    from rstn_core.data.labels import target_mask
    from rstn_core.config import get_config
    cfg = get_config("smoke", target="cyst", data_root=str(tiny_dataset))
    refs = list_cases(tiny_dataset)[:2]
    s = region_training_slices(cfg, refs, "axial", RegionSpec(4))
    for ref, img, lab in zip(refs, s.images, s.labels):
        case = load_case(ref.image, ref.label)
        region = to_view(pancreas_region(target_mask(case, "pancreas"), 4), "axial")
        full = to_view(np.round(window(case.image) * 255).astype(np.uint8), "axial")
        assert np.array_equal(img[region], full[region]) and (img[~region] == 0).all()
        assert np.array_equal(lab, to_view(target_mask(case, "cyst"), "axial"))


def test_region_fold_trains_and_tests_on_the_predicted_region(tiny_dataset, tmp_path):
    from rstn_core.config import get_config
    from rstn_core.data import list_cases, load_case
    from rstn_core.data.labels import target_mask
    cfg = get_config("smoke", target="cyst", data_root=str(tiny_dataset),
                     run_root=str(tmp_path / "cyst_region"), views=("axial",))
    cfg = cfg.replace(**{"train.coarse_iterations": 2, "train.fine_iterations": 2,
                         "train.batch_size": 2, "test.max_rounds": 1, "train.threads": 1})
    spec = RegionSpec(6)
    stats = train_region_fold(cfg, "stepwise", 0, spec, progress=False)
    assert set(stats) == {"axial_coarse", "axial_fine"}
    with pytest.raises(FileExistsError, match="trained with region"):
        train_region_fold(cfg, "stepwise", 0, RegionSpec(7), progress=False)
    # a "pancreas run" whose stored prediction is the ground truth of the test case
    panc = tmp_path / "pancreas_run"
    test_ref = list_cases(tiny_dataset)[0]                    # fold 0 of 4 cases: case 0
    case = load_case(test_ref.image, test_ref.label)
    (panc / "test" / "probs").mkdir(parents=True)
    np.savez(panc / "test" / "probs" / f"{case.id}.npz",
             prob=(target_mask(case, "pancreas") * 255).astype(np.uint8))
    res = cyst.test_region_fold(cfg, "stepwise", 0, panc, spec, progress=False)
    (row,) = res["cases"]
    region = pancreas_region(target_mask(case, "pancreas"), 6)
    assert row["region"]["pancreas_dsc"] == 1.0 and not row["region"]["empty"]
    assert row["region"]["fraction"] == pytest.approx(region.mean())
    assert res["region"]["from"] == str(panc) and res["target"] == "cyst"
    gt = cyst.test_region_fold(cfg, "stepwise", 0, "gt", spec, progress=False)
    assert gt["path"].endswith("test-gt-region/results.json")
    assert gt["cases"][0]["region"] == row["region"]
