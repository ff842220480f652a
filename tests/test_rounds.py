"""algorithms/rounds.py: first_stop, the round at which the stop rule d_t > thr fires, and the initial mask."""
from hypothesis import given
from hypothesis import strategies as st
from rstn_core.algorithms.rounds import first_stop
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
