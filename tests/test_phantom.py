"""The synthetic CT phantom: config, reproducibility, anatomy, measured difficulty, writing."""
import json
import time
from dataclasses import replace

import numpy as np
import pytest

from rstn_core.data import (DataError, PhantomConfig, list_cases, load_case, make_case,
                            phantom_preset, target_mask, write_dataset)
from rstn_core.data.labels import PHANTOM_LABELS
from rstn_core.data.orient import axcodes


def best_interval_dsc(img, target, lo=-100, hi=300, step=5):
    """Best DSC of a single HU interval [a, b) (grid of `step` HU) against `target`."""
    img, target = img.ravel(), target.ravel().astype(bool)
    edges = np.arange(lo, hi + step, step)
    ok = (img >= edges[0]) & (img < edges[-1])
    idx = np.searchsorted(edges, img[ok], side="right") - 1
    nb = len(edges) - 1
    ct = np.r_[0, np.cumsum(np.bincount(idx, minlength=nb)[:nb])]
    cp = np.r_[0, np.cumsum(np.bincount(idx, weights=target[ok], minlength=nb)[:nb])]
    y = target.sum()
    best = 0.0
    for a in range(nb):
        d = 2 * (cp[a + 1:] - cp[a]) / np.maximum(ct[a + 1:] - ct[a] + y, 1)
        best = max(best, float(d.max()))
    return best


@pytest.fixture(scope="module")
def smoke_case():
    return make_case(phantom_preset("smoke"), 0, 1)


@pytest.fixture(scope="module")
def standard_cases():
    return [make_case(phantom_preset("standard"), 0, i) for i in range(3)]


# -- config -------------------------------------------------------------------------------------
@pytest.mark.parametrize("scale, shape", [("smoke", (96, 96, 48)), ("standard", (160, 160, 96)),
                                          ("colab", (256, 256, 128)), ("paper", (512, 512, 240))])
def test_presets(scale, shape):
    cfg = phantom_preset(scale)
    assert cfg.shape == shape
    assert 330 < cfg.fov_mm[0] < 380                  # the same in-plane field of view


def test_scales_have_one_home():
    from rstn_core.config import SCALES as config_scales
    from rstn_core.data.phantom import SCALES
    assert config_scales is SCALES and SCALES == ("smoke", "standard", "colab", "paper")
    for scale in SCALES:
        phantom_preset(scale)


def test_colab_preset_keeps_the_proportions():
    """colab: 256 px slices (~1.4 mm) and the same 352 x 352 x 307 mm volume as smoke and
    standard, so the pancreas is the same share of its voxels."""
    colab, std = phantom_preset("colab"), phantom_preset("standard")
    assert colab.spacing[0] == pytest.approx(352 / 256)
    assert np.allclose(colab.fov_mm, std.fov_mm, rtol=0.01)


def test_paper_preset_draws_slices():
    assert phantom_preset("paper").slices_range == (180, 460)


def test_unknown_scale():
    with pytest.raises(DataError, match="unknown phantom scale"):
        phantom_preset("huge")


def test_config_json_roundtrip():
    cfg = replace(phantom_preset("standard"), lookalike=0.3, cysts=False)
    back = PhantomConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert back == cfg


@pytest.mark.parametrize("kw", [{"lookalike": 1.5}, {"contrast": -1}, {"shape": (8, 8, 8)},
                                {"spacing": (1, 0, 1)}, {"fat_plane_missing_prob": 2}])
def test_config_rejects_bad_values(kw):
    with pytest.raises(DataError) as e:
        replace(phantom_preset("smoke"), **kw)
    assert "\n" not in str(e.value)


def test_config_rejects_unknown_keys():
    with pytest.raises(DataError, match="unknown keys"):
        PhantomConfig.from_dict({"noise": 3})


# -- one case -----------------------------------------------------------------------------------
def test_reproducible_and_distinct(smoke_case):
    again = make_case(phantom_preset("smoke"), 0, 1)
    assert np.array_equal(again.image, smoke_case.image)
    assert np.array_equal(again.labels, smoke_case.labels)
    other = make_case(phantom_preset("smoke"), 0, 2)
    assert not np.array_equal(other.labels, smoke_case.labels)


def test_smoke_case_is_fast():
    t = time.process_time()
    make_case(phantom_preset("smoke"), 5, 3)
    assert time.process_time() - t < 1.5                # CPU seconds (CI makes these)


def test_arrays_and_affine(smoke_case):
    c = smoke_case
    assert c.image.dtype == np.float32 and c.labels.dtype == np.uint8
    assert c.image.shape == c.labels.shape == (96, 96, 48)
    assert axcodes(c.affine) == "RAS"
    assert np.allclose(np.diag(c.affine)[:3], c.spacing)
    assert set(np.unique(c.labels)) <= set(PHANTOM_LABELS)
    assert c.image.min() >= -1024 and np.isfinite(c.image).all()


def test_anatomy_in_ras(smoke_case):
    """Spine posterior (low y), liver on the patient's right (high x), spleen left, air around."""
    c = smoke_case
    centre = lambda v: np.argwhere(c.labels == v).mean(0)          # noqa: E731
    body = np.argwhere(c.image > -500).mean(0)
    spine, liver, spleen = centre(18), centre(10), centre(11)
    assert spine[1] < body[1] - 5
    assert liver[0] > body[0] + 5 and spleen[0] < body[0] - 5
    assert centre(9)[0] > centre(8)[0]                              # right kidney on the right
    assert c.image[0, 0, :].max() < -900                            # air in the corner


def test_target_groups(smoke_case):
    c = smoke_case
    assert np.array_equal(target_mask(c, "pancreas"), np.isin(c.labels, (1, 2)))
    assert np.array_equal(target_mask(c, "cyst"), c.labels == 2)
    assert np.array_equal(target_mask(c, "kidneys"), np.isin(c.labels, (8, 9)))
    assert np.array_equal(target_mask(c, "adrenal_glands"), np.isin(c.labels, (3, 4)))
    assert np.array_equal(target_mask(c, "bowel"), np.isin(c.labels, (13, 14)))


def test_knobs_lookalike_cysts_contrast():
    cfg = phantom_preset("smoke")
    c0 = make_case(replace(cfg, lookalike=0.0, cysts=False, contrast=0.0), 0, 1)
    assert not (c0.labels == 14).any() and not (c0.labels == 2).any()
    assert c0.meta["hu"]["liver"] == c0.meta["hu"]["pancreas"]      # contrast 0: equal HU
    c1 = make_case(replace(cfg, lookalike=1.0), 0, 1)
    assert len(c1.meta["lookalikes"]) == 3 and (c1.labels == 14).any()
    assert c1.meta["hu"]["look_solid"] == c1.meta["hu"]["pancreas"]


def test_a_knob_changes_only_its_own_part():
    """Same patient with and without look-alikes or cysts; same patient at every scale."""
    cfg = phantom_preset("smoke")
    a = make_case(replace(cfg, lookalike=0.0), 0, 1)
    b = make_case(replace(cfg, lookalike=1.0), 0, 1)
    assert np.array_equal(np.isin(a.labels, (1, 2)), np.isin(b.labels, (1, 2)))
    c = make_case(replace(cfg, lookalike=0.0, cysts=False), 0, 1)
    assert np.array_equal(a.labels == 10, c.labels == 10)          # the liver is untouched
    assert a.meta["hu"] == c.meta["hu"] and not (c.labels == 2).any()
    std = make_case(phantom_preset("standard"), 0, 1).meta
    smoke = make_case(cfg, 0, 1).meta
    assert std["lookalikes"] == smoke["lookalikes"] and std["hu"] == smoke["hu"]
    assert abs(std["pancreas_ml"] - smoke["pancreas_ml"]) < 0.15 * std["pancreas_ml"]


def test_target_scale_grows_the_pancreas():
    cfg = phantom_preset("smoke")
    small = make_case(replace(cfg, target_scale=0.8), 0, 1).meta["pancreas_ml"]
    big = make_case(replace(cfg, target_scale=1.25), 0, 1).meta["pancreas_ml"]
    assert big > 1.5 * small


# -- the papers' problem, measured (standard scale, seed 0, cases 0-2) ---------------------------
def test_measured_difficulty(standard_cases):
    rows = []
    for c in standard_cases:
        p = np.isin(c.labels, (1, 2))
        frac = 100 * p.mean()
        slice_max = [100 * np.moveaxis(p, v, 0).reshape(p.shape[v], -1).mean(1).max()
                     for v in range(3)]
        med = float(np.median(c.image[c.labels == 1]))
        dsc = best_interval_dsc(c.image, p)
        rows.append((c.id, frac, slice_max, med, dsc, c.meta["cyst_inside_fraction"]))
        print(f"{c.id}: pancreas {frac:.3f}% of voxels, max slice % (cor/sag/ax) "
              f"{[round(float(s), 2) for s in slice_max]}, median HU {med:.0f}, "
              f"best HU interval DSC {dsc:.3f}, cyst inside {c.meta['cyst_inside_fraction']:.2f}")
        assert 0.1 <= frac <= 0.5
        assert slice_max[2] < 1.5                         # axial (the papers' statement)
        assert max(slice_max) < 2.0                       # coronal/sagittal: see data/README.md
        assert 90 <= med <= 130
        assert dsc < 0.35                                 # intensity alone fails
    assert sum(r[5] >= 0.95 for r in rows) >= 2           # cysts inside the pancreas, mostly


def test_lookalikes_sit_in_the_box_and_open_outside_it():
    """Axial view, box = the pancreas's per-slice box + 9 px (the standard test frame): solid
    look-alike bowel lies inside it, and its loop's lumen shows in the same slice outside it."""
    from scipy import ndimage

    from rstn_core.data.phantom.anatomy import build_tissues
    from rstn_core.data.phantom.tissues import LABEL_LUT, TISSUE
    inside = lumen_out = lumen_in = 0
    for cid in (0, 3):
        T = build_tissues(phantom_preset("standard"), 0, cid).T
        p = np.isin(LABEL_LUT[T], (1, 2))
        look = LABEL_LUT[T] == 14
        solid = T == TISSUE["look_solid"]
        lumen = np.isin(T, (TISSUE["look_fluid"], TISSUE["look_gas"]))
        for z in range(T.shape[2]):
            if not p[:, :, z].any():
                continue
            xs, ys = np.where(p[:, :, z])
            box = np.zeros(p.shape[:2], bool)
            box[max(xs.min() - 9, 0):xs.max() + 10, max(ys.min() - 9, 0):ys.max() + 10] = True
            comps, _ = ndimage.label(look[:, :, z], np.ones((3, 3)))
            for k in np.unique(comps[solid[:, :, z] & box]):
                comp = comps == k
                n = int((comp & box & solid[:, :, z]).sum())
                inside += n
                lumen_out += n * bool((comp & lumen[:, :, z] & ~box).any())
                lumen_in += n * bool((comp & lumen[:, :, z] & box).any())
    print(f"look-alike solid voxels in the box: {inside}; lumen in the slice outside the box "
          f"{lumen_out / inside:.0%}, inside it {lumen_in / inside:.0%}")
    assert inside > 500
    assert lumen_out > 0.5 * inside and lumen_in < 0.2 * inside


# -- writing --------------------------------------------------------------------------------------
def test_write_dataset_layout_and_resume(tmp_path):
    cfg = phantom_preset("smoke")
    out = write_dataset(tmp_path / "ph", cfg, 2, seed=3, progress=False, workers=1)
    assert out["written"] == 2 and out["workers"] == 1
    d = json.loads((tmp_path / "ph" / "dataset.json").read_text())
    assert d["numTraining"] == 2 and d["labels"]["1"] == "pancreas" and d["labels"]["2"] == "cyst"
    assert d["generator"]["seed"] == 3 and d["generator"]["config"] == cfg.to_dict()
    assert [e["image"] for e in d["training"]] == ["./imagesTr/phantom_000.nii.gz",
                                                   "./imagesTr/phantom_001.nii.gz"]
    refs = list_cases(tmp_path / "ph")
    assert [r.id for r in refs] == ["phantom_000", "phantom_001"] and refs[0].source == "phantom"
    case = load_case(refs[1])
    ref = make_case(cfg, 3, 1)
    assert np.array_equal(case.labels, ref.labels)
    assert np.abs(case.image - ref.image).max() <= 0.5 + 1e-3       # stored as int16 HU
    assert np.allclose(case.affine, ref.affine, atol=1e-4)
    assert not [p for p in (tmp_path / "ph").rglob(".*")]            # no temporary files left
    again = write_dataset(tmp_path / "ph", cfg, 3, seed=3, progress=False, workers=1)
    assert again["skipped"] == 2 and again["written"] == 1
    with pytest.raises(DataError, match="other settings"):
        write_dataset(tmp_path / "ph", cfg, 3, seed=4, progress=False, workers=1)


def _dataset_arrays(root):
    """dataset.json and every case's (image, labels, affine) of a written data set."""
    import nibabel as nib
    out = {"dataset.json": json.loads((root / "dataset.json").read_text())}
    for p in sorted((root / "imagesTr").glob("*.nii.gz")):
        img = nib.load(p)
        lab = nib.load(root / "labelsTr" / p.name)
        out[p.name] = (np.asarray(img.dataobj), np.asarray(lab.dataobj), img.affine)
    return out


def test_workers_write_the_same_files_as_one_process(tmp_path):
    """Cases made in 2 worker processes (one case resumed from disk) equal those made in this
    process: same dataset.json, same arrays, same dtypes."""
    cfg = phantom_preset("smoke")
    serial = write_dataset(tmp_path / "w1", cfg, 3, seed=5, progress=False, workers=1)
    write_dataset(tmp_path / "w2", cfg, 1, seed=5, progress=False, workers=1)
    par = write_dataset(tmp_path / "w2", cfg, 3, seed=5, progress=False, workers=2)
    assert serial["written"] == 3 and serial["workers"] == 1
    assert par["written"] == 2 and par["skipped"] == 1 and par["workers"] == 2
    a, b = _dataset_arrays(tmp_path / "w1"), _dataset_arrays(tmp_path / "w2")
    assert a.keys() == b.keys() and len(a) == 4
    assert a["dataset.json"] == b["dataset.json"]
    for name in sorted(a)[1:]:
        for x, y in zip(a[name], b[name]):
            assert x.dtype == y.dtype and np.array_equal(x, y), name
    assert not [p for p in (tmp_path / "w2").rglob(".*")]            # no temporary files left
    again = write_dataset(tmp_path / "w2", cfg, 3, seed=5, progress=False, workers=2)
    assert again["written"] == 0 and again["skipped"] == 3


@pytest.mark.parametrize("workers", [0, -2, 1.5, True, "4"])
def test_workers_must_be_a_positive_integer(tmp_path, workers):
    with pytest.raises(DataError, match="workers must be an integer >= 1") as e:
        write_dataset(tmp_path / "ph", phantom_preset("smoke"), 1, progress=False,
                      workers=workers)
    assert "\n" not in str(e.value)
    assert not (tmp_path / "ph").exists()                            # checked before any write


def test_workers_default_to_every_core(tmp_path, monkeypatch):
    import rstn_core.data.phantom.write as w
    monkeypatch.setattr(w.os, "cpu_count", lambda: 1)                # no pool: in this process
    out = write_dataset(tmp_path / "ph", phantom_preset("smoke"), 1, progress=False)
    assert out["workers"] == 1 and out["written"] == 1
