"""algorithms/oracles.py: the strong and weak oracles of RSTN (CVPR 2018, Table 2)."""
import numpy as np
from rstn_core.algorithms.oracles import rstn_strong_oracle, rstn_weak_oracle
from rstn_core.algorithms.rstn import saliency_channels
from tests.helpers import rstn_toy_models as _toy_models
from tests.helpers import rstn_toy_volume as _toy_volume


def test_oracles_and_saliency_channels():
    vol, lab = _toy_volume()
    ms = _toy_models()
    assert (rstn_strong_oracle(vol, lab, ms, hu=False) == lab).all()
    weak, rounds = rstn_weak_oracle(vol, lab, ms, thr=0.99, T=5, hu=False)
    assert (weak == lab).all() and rounds == 1           # converged after one round
    w = saliency_channels(ms.models["axial"], np.random.rand(3, 16, 16))
    assert w.shape == (3, 16, 16) and np.allclose(w, 1.0)     # identity at initialisation
