import warnings

import numpy as np
import pytest

from rstn_core.metrics import dsc
from rstn_core.algorithms.stepwise import fixed_point_predict
from tests.helpers import ConstNet
from tests.helpers import VIEWS, stepwise_nets as _nets, stepwise_volume as _volume


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
