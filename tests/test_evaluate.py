"""experiments/evaluate.py: the read-off rules of the stop thresholds and the per-case rows."""
import pytest
from hypothesis import given
from hypothesis import strategies as st
from rstn_core.algorithms.rounds import first_stop
from rstn_core.experiments.evaluate import evaluate_stepwise_case, read_off
from rstn_core.metrics import dsc
from tests.helpers import FAST, VIEWS
from tests.helpers import stepwise_nets as _nets
from tests.helpers import stepwise_volume as _volume


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


@FAST
@given(st.integers(1, 10).flatmap(lambda T: st.tuples(
    st.lists(st.floats(0, 1), min_size=T, max_size=T),
    st.lists(st.floats(0, 1), min_size=T, max_size=T))), st.booleans())
def test_read_off_agrees_with_first_stop(after_d, strict):
    after, d = after_d
    out = read_off(after, d, strict=strict)
    for key in ("0.90", "0.95", "0.99"):
        R = float(key)
        t = out[key]["iterations"]
        if strict:
            assert t == first_stop(d, R, len(d))
        assert 1 <= t <= len(d) and out[key]["dsc"] == after[t - 1]
    assert out["best"]["dsc"] == max(after)
