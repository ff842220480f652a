import warnings

import numpy as np
import pytest

from rstn_core.experiments.evaluate import evaluate_stepwise_case, read_off
from rstn_core.metrics import dsc
from rstn_core.algorithms.stepwise import StepwiseNets, fixed_point_predict
from tests.helpers import ConstNet, ThresholdNet

VIEWS = ("coronal", "sagittal", "axial")


def _volume():
    rng = np.random.default_rng(1)
    vol = (rng.random((24, 22, 20)) * 0.3).astype(np.float32)
    lab = np.zeros(vol.shape, bool)
    lab[8:14, 6:12, 5:11] = True
    vol[lab] = 0.9
    vol[20:23, 2:5, 2:5] = 0.7           # a distractor far from the target
    return vol, lab


def _nets(coarse_level=0.5, fine_level=0.8, margin=2):
    return StepwiseNets({v: ThresholdNet(coarse_level) for v in VIEWS},
                        {v: ThresholdNet(fine_level) for v in VIEWS}, margin=margin,
                        batch_size=5)


def test_algorithm1_fine_rounds_drop_what_the_boxes_exclude():
    vol, lab = _volume()
    res = fixed_point_predict(vol, _nets(), R=0.95, T=10, hu=False)
    z0 = res.masks[0]
    assert z0[20:23, 2:5, 2:5].all() and z0[lab].all()      # coarse finds target + distractor
    # the fine net (threshold 0.8) rejects the distractor (0.7) inside its own box
    assert (res.masks[1] == lab).all()
    assert res.d[0] == pytest.approx(dsc(z0, lab))            # d(1) = DSC(Z(0), Z(1))
    assert res.stopped_at == 2 and res.d[1] == 1.0            # d(2) = 1 > 0.95: stop
    assert len(res.masks) == 3


def test_algorithm1_runs_all_rounds_without_R_and_skips_empty_windows():
    vol, lab = _volume()
    res = fixed_point_predict(vol, _nets(), R=None, T=4, hu=False)
    assert res.stopped_at == 4 and len(res.d) == 4
    # in round 2 only windows touching the target (+/-1 slice, +margin) run, per view
    extents = [np.flatnonzero(lab.any(axis=tuple(a for a in range(3) if a != ax)))
               for ax in range(3)]
    expect = sum(len(e) + 2 for e in extents)
    assert res.windows_run[1] == expect


def test_empty_coarse_mask_has_a_defined_fallback():
    vol, _ = _volume()
    nets = _nets()
    nets.coarse = {v: ConstNet(-50.0) for v in VIEWS}
    with warnings.catch_warnings():
        warnings.simplefilter("error")                 # the fallback is recorded, not warned
        res = fixed_point_predict(vol, nets, R=0.95, T=3, hu=False)
    assert res.fallback == "half-peak" and res.masks[0].all()
    nets.coarse = {v: ConstNet(-1e4) for v in VIEWS}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = fixed_point_predict(vol, nets, R=0.95, T=3, hu=False)
    assert res.fallback == "empty" and not res.final.any()


def test_read_off_rules():
    after = [0.70, 0.80, 0.85, 0.84]
    d = [0.80, 0.93, 0.96, 0.995]
    r = read_off(after, d, strict=True)
    assert r["0.90"] == {"dsc": 0.80, "iterations": 2}
    assert r["0.95"] == {"dsc": 0.85, "iterations": 3}
    assert r["0.99"] == {"dsc": 0.84, "iterations": 4}
    assert r["best"] == {"dsc": 0.85, "iterations": 3}
    assert read_off([0.5, 0.6], [0.90, 0.91], strict=False)["0.90"]["iterations"] == 1
    assert read_off([0.5, 0.6], [0.90, 0.91], strict=True)["0.99"]["iterations"] == 2


def test_evaluate_stepwise_case_rows():
    vol, lab = _volume()
    hu = vol * 340 - 100                                      # back to HU for the public API
    row, res = evaluate_stepwise_case(hu, lab, _nets(), T=3)
    assert row["oracle"] == 1.0 and row["after"][0] == 1.0
    assert row["coarse"] == pytest.approx(dsc(res.masks[0], lab))
    assert row["coarse_components"] == 1.0                   # the distractor is the small part
    assert set(row["coarse_views"]) == set(VIEWS)
