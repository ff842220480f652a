"""algorithms/rounds.py: first_stop, the round at which the stop rule d_t > thr fires, and the initial mask."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from rstn_core.algorithms.rounds import FixedPointResult, RSTNResult, first_stop
from tests.helpers import FAST

ds = st.lists(st.floats(0, 1), max_size=12)


thresholds = st.none() | st.floats(0.01, 1.0)


@FAST
@given(ds, thresholds)
def test_first_stop_is_the_first_round_above_the_threshold(d, thr):
    T = len(d)
    t = first_stop(d, thr, T)
    assert 0 <= t <= T
    if thr is None or not any(x > thr for x in d):
        assert t == T                                           # never above: all T rounds
    else:
        assert d[t - 1] > thr and all(x <= thr for x in d[: t - 1])


@FAST
@given(thresholds, st.integers(0, 10))
def test_first_stop_without_rounds_is_T(thr, T):
    assert first_stop([], thr, T) == T                          # empty d(t); T = 0 gives 0
    assert first_stop([], thr, 0) == 0


def test_confidence_is_above_half_exactly_on_the_mask_and_keeps_the_order():
    mask = np.array([True, True, False, False])
    mean_p = np.array([0.4, 0.9, 0.6, 0.1], np.float16)   # majority vote and mean disagree
    res = FixedPointResult(masks=[mask], d=[], view_probs={}, stopped_at=0, probs=[mean_p])
    c = res.confidence()
    assert ((c > 0.5) == mask).all()
    assert c[1] > c[0] and c[2] > c[3]                    # ordered by the mean probability
    p = np.array([0.2, 0.7], np.float16)
    r = RSTNResult(masks=[p > 0.5], d=[], view_probs={}, stopped_at=0, probs=[p])
    assert np.allclose(r.confidence(), p.astype(np.float32))
    with pytest.raises(ValueError, match="was not recorded"):
        res.confidence(3)
