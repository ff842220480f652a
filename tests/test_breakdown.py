"""experiments/breakdown.py: DSC on the ends and the core of the organ, false positives on the
look-alikes, per stored prediction."""
import json

import numpy as np
import pytest

from rstn_core.data.phantom import phantom_preset, write_dataset
from rstn_core.data import list_cases, load_case, target_mask
from rstn_core.experiments.breakdown import (breakdown_table, case_breakdown, end_slices,
                                             run_breakdown)
from rstn_core.metrics import dsc


def test_end_slices_take_a_share_of_the_extent_at_each_end():
    y = np.zeros((4, 4, 20), bool)
    y[1:3, 1:3, 5:15] = True                         # extent 10 slices: 5..14
    ends = end_slices(y, 0.2)
    assert np.flatnonzero(ends).tolist() == [5, 6, 13, 14]
    assert not end_slices(np.zeros((2, 2, 5), bool)).any()
    with pytest.raises(ValueError, match="fraction must be in"):
        end_slices(y, 0.8)


def test_case_breakdown_separates_a_missed_end_from_the_core():
    y = np.zeros((6, 6, 20), bool)
    y[1:5, 1:5, 5:15] = True
    pred = y.copy()
    pred[..., 13:15] = False                         # the top end left out
    look = np.zeros_like(y)
    look[0, 0, 8] = True
    pred[0, 0, 8] = True                             # one false positive, on a look-alike
    pred[5, 5, 9] = True                             # one elsewhere
    r = case_breakdown(pred, y, look)
    assert r["dsc_core"] > 0.9 and r["dsc_ends"] == pytest.approx(dsc(pred[..., [5, 6, 13, 14]],
                                                                      y[..., [5, 6, 13, 14]]))
    assert r["dsc_ends"] == pytest.approx(2 / 3)     # half of the end voxels found: 2h/(h+2h)
    assert (r["fp"], r["fp_lookalike"]) == (2, 1)
    with pytest.raises(ValueError, match="differ"):
        case_breakdown(pred[:3], y)


def test_run_breakdown_reads_stored_predictions(tmp_path):
    data = tmp_path / "data"
    write_dataset(data, phantom_preset("smoke"), 2, 0, progress=False)
    ref = list_cases(data)[0]
    case = load_case(ref.image, ref.label)
    y = target_mask(case, "pancreas")
    for name, pred in (("perfect", y), ("empty", np.zeros_like(y))):
        probs = tmp_path / name / "fold0" / "test" / "probs"
        probs.mkdir(parents=True)
        np.savez(probs / f"{case.id}.npz", prob=(pred * 255).astype(np.uint8))
        (probs.parent / "results.json").write_text(json.dumps({"fold": 0, "cases": []}))
    rows = run_breakdown(tmp_path / "perfect", data)
    assert rows[0]["id"] == case.id and rows[0]["dsc"] == 1.0 and rows[0]["fp"] == 0
    table = breakdown_table({"perfect": tmp_path / "perfect", "empty": tmp_path / "empty"}, data)
    assert "| perfect | 1 | 100.00 | 100.00 | 100.00 | 0 | 0 |" in table
    assert "perfect vs empty | ends | 1 | +100.00" in table
    with pytest.raises(FileNotFoundError, match="no stored test predictions"):
        run_breakdown(tmp_path / "nothing", data)
