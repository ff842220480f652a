import warnings

import pytest

from rstn_core.config import Config, RSTNConfig
from rstn_core.algorithms.rstn import rstn_predict, rstn_schedule
from tests.helpers import ConstNet
from tests.helpers import rstn_toy_models as _toy_models, rstn_toy_volume as _toy_volume


def test_schedule_phases_and_rates():
    cfg = Config(rstn=RSTNConfig(gt_iterations=2, pred_iterations=4, noisy_iterations=2,
                                 lr=1e-4, noisy_lr=1e-6, lr_decay_every=2))
    ref_at, lr_at, total = rstn_schedule(cfg)
    assert total == 8
    assert [ref_at(i) for i in range(8)] == ["gt"] * 2 + ["pred_or_gt"] * 4 + ["pred"] * 2
    assert [lr_at(i)[0] for i in range(8)] == pytest.approx([1, 1, 1, 1, 0.5, 0.5, 0.01, 0.01])
    # the noisy phase runs every parameter at noisy_lr, whatever the groups' multipliers
    from rstn_core.algorithms.rstn import rstn_groups
    assert [b * m for b, m in zip(rstn_groups(cfg), lr_at(7))] == pytest.approx([1e-6] * 3)


def test_algorithm2_records_every_round_and_stops_at_thr():
    vol, lab = _toy_volume()
    res = rstn_predict(vol, _toy_models(), thr=0.99, T=5, hu=False)
    assert res.stopped_at == 1 and res.d == [1.0]
    assert (res.final == lab).all()
    res = rstn_predict(vol, _toy_models(), thr=None, T=3, hu=False)
    assert len(res.masks) == 4 and len(res.probs) == 4 and len(res.d) == 3


def test_empty_coarse_gives_empty_rounds_without_crash():
    vol, _ = _toy_volume()
    ms = _toy_models()
    for m in ms.models.values():
        m.coarse = ConstNet(-50.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")                 # the fallback is recorded, not warned
        res = rstn_predict(vol, ms, thr=0.99, T=2, hu=False)
    assert res.fallback == "half-peak"


def test_volume_contrast_is_one_for_an_identity_g_and_sees_a_learned_one():
    import numpy as np
    import torch
    from rstn_core.algorithms.rstn import volume_contrast
    vol, lab = _toy_volume()
    ms = _toy_models()
    flat = volume_contrast(ms, vol, lab, hu=False)
    assert set(flat) == {"coronal", "sagittal", "axial"}
    assert all(np.allclose(c, 1.0) for c in flat.values())          # g = identity
    last = ms.models["axial"].saliency.g[-1]
    with torch.no_grad():                                            # g_k = 1 + P_k: organ x2
        last.weight.zero_()
        for k in range(3):
            last.weight[k, k, 1, 1] = 1.0
    c = volume_contrast(ms, vol, lab, hu=False)["axial"]
    assert (c > 1.5).all()
