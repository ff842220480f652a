import json

import numpy as np
import pytest

from rstn_core.experiments.organs import (CHAPTER_ORGAN_TABLE, COLUMNS, ORGANS, hard_target_gain,
                              load_organ_probs, merge_organs, organ_commands, organ_config,
                              organ_rows, organ_table)


def test_merge_by_hand_overlaps_ties_and_threshold():
    #          voxel:   0    1    2    3    4    5    6
    a = np.array([0.9, 0.6, 0.4, 0.7, 0.5, 0.2, 0.0])
    b = np.array([0.1, 0.8, 0.3, 0.7, 0.5, 0.2, 0.51])
    lab = merge_organs({"a": a, "b": b})
    # 0: only a; 1: both claim, b more confident; 2: nobody > 0.5; 3: tie -> a (listed first);
    # 4: exactly 0.5 is not > 0.5; 5: nobody; 6: b alone just above
    assert lab.tolist() == [1, 2, 0, 1, 0, 0, 2]
    assert lab.dtype == np.uint8
    # the tie goes to whichever organ is listed first
    assert merge_organs({"b": b, "a": a}).tolist() == [2, 1, 0, 1, 0, 0, 1]


def test_merge_binary_masks_is_a_priority_order_and_values_are_kept():
    kidney = np.zeros((4, 4), bool)
    kidney[:2] = True
    adrenal = np.zeros((4, 4), bool)
    adrenal[1:3] = True
    lab = merge_organs({"adrenal": adrenal, "kidney": kidney}, values={"kidney": 8,
                                                                        "adrenal": 3})
    assert lab[0].tolist() == [8] * 4 and lab[1].tolist() == [3] * 4   # overlap: listed first
    assert lab[2].tolist() == [3] * 4 and lab[3].tolist() == [0] * 4
    single = np.random.default_rng(0).random((5, 6, 7))
    assert np.array_equal(merge_organs({"x": single}), (single > 0.5).astype(np.uint8))
    assert (merge_organs({"x": single}, threshold=0.0) == (single > 0)).all()


@pytest.mark.parametrize("probs,kw,exc,match", [
    ({}, {}, ValueError, "empty"),
    ([np.zeros(3)], {}, TypeError, "dict"),
    ({"a": np.zeros(3), "b": np.zeros(4)}, {}, ValueError, "one shape"),
    ({"a": np.full(3, 255.0)}, {}, ValueError, "divide by 255"),
    ({"a": np.full(3, -0.1)}, {}, ValueError, r"\[0, 1\]"),
    ({"a": np.full(3, np.nan)}, {}, ValueError, r"\[0, 1\]"),
    ({"a": np.array(["x"])}, {}, TypeError, "numeric"),
    ({"a": np.zeros(3)}, {"threshold": 1.0}, ValueError, "threshold"),
    ({"a": np.zeros(3)}, {"threshold": True}, ValueError, "threshold"),
    ({"a": np.zeros(3), "b": np.zeros(3)}, {"values": {"a": 1, "b": 1}}, ValueError, "distinct"),
    ({"a": np.zeros(3)}, {"values": {"a": 0}}, ValueError, "1..255"),
    ({"a": np.zeros(3), "b": np.zeros(3)}, {"values": {"a": 1}}, ValueError, "every organ"),
])
def test_merge_bad_inputs(probs, kw, exc, match):
    with pytest.raises(exc, match=match):
        merge_organs(probs, **kw)


def test_chapter_gain_over_the_hard_targets_is_4_29():
    means = {t: {c: v / 100 for c, v in zip(COLUMNS, vals)}
             for t, vals in CHAPTER_ORGAN_TABLE.items()}
    assert round(100 * hard_target_gain(means), 2) == 4.29
    assert hard_target_gain({"kidney_left": means["kidney_left"]}) is None
    assert set(CHAPTER_ORGAN_TABLE) == set(ORGANS)


def test_organ_config_and_commands():
    from rstn_core.config import get_config
    c = organ_config(get_config("smoke"), "duodenum", "runs/organs")
    assert c.target == "duodenum" and c.run_root == "runs/organs/duodenum"
    lines = organ_commands(["ivc"], ["rstn"], [1], "standard")
    assert lines == ["rstn train --method rstn --fold 1 --scale standard --target ivc "
                     "--runs runs/organs/ivc --quiet",
                     "rstn test --method rstn --fold 1 --scale standard --target ivc "
                     "--runs runs/organs/ivc --quiet"]
    with pytest.raises(ValueError, match="plain name"):
        organ_config(get_config("smoke"), "../x")


def _write(root, target, method, fold, rows, stored_target=None):
    p = root / target / "smoke" / method / f"fold{fold}" / "test" / "results.json"
    p.parent.mkdir(parents=True)
    cases = [{"id": f"c{k}", "coarse": c, "stop": {"0.95": {"dsc": f}, "0.99": {"dsc": f}}}
             for k, (c, f) in enumerate(rows)]
    p.write_text(json.dumps({"target": stored_target or target, "fold": fold, "cases": cases}))


def test_organ_table_reads_runs_of_each_target(tmp_path):
    _write(tmp_path, "gallbladder", "stepwise", 0, [(0.8, 0.7), (0.6, 0.5)])   # F < C
    _write(tmp_path, "gallbladder", "rstn", 0, [(0.8, 0.9), (0.6, 0.7)])
    _write(tmp_path, "kidney_left", "stepwise", 0, [(0.9, 0.95)])
    _write(tmp_path, "kidney_left", "stepwise", 1, [(0.7, 0.75)])
    rows = organ_rows(tmp_path, "smoke")
    assert list(rows) == ["gallbladder", "kidney_left"]
    assert rows["kidney_left"][("stepwise", "fine")] == [0.95, 0.75]
    text = organ_table(tmp_path, "smoke")
    assert "| gallbladder | 70.00 | 60.00 † | 70.00 | 80.00 | 2 |" in text
    assert "| kidney left | 80.00 | 85.00 | – | – | 2 |" in text
    assert "+20.00 points" in text                     # gallbladder only (kidneys excluded)
    assert "±" in organ_table(tmp_path, "smoke", std=True)
    assert "no organ results" in organ_table(tmp_path / "none", "smoke")


def test_organ_table_refuses_a_run_of_another_target(tmp_path):
    _write(tmp_path, "ivc", "stepwise", 0, [(0.5, 0.5)], stored_target="pancreas")
    with pytest.raises(ValueError, match="holds target 'pancreas'"):
        organ_rows(tmp_path, "smoke")


def test_load_organ_probs(tmp_path):
    d = tmp_path / "ivc" / "smoke" / "rstn" / "fold0" / "test" / "probs"
    d.mkdir(parents=True)
    np.savez(d / "c0.npz", prob=np.array([0, 255], np.uint8))
    out = load_organ_probs(tmp_path, ["ivc"], "smoke", "rstn", 0, "c0")
    assert out["ivc"].tolist() == [0.0, 1.0]
    with pytest.raises(FileNotFoundError, match="--target duodenum"):
        load_organ_probs(tmp_path, ["duodenum"], "smoke", "rstn", 0, "c0")


def test_overlapping_stepwise_masks_are_decided_by_confidence():
    # test_fold saves a stepwise mask as 0.5 + 0.5 * (views' mean probability) on the mask:
    # the more confident organ wins the shared voxel whatever the dict order
    import numpy as np
    from rstn_core.experiments.organs import merge_organs
    mask = np.array([True, True, False])
    coded = lambda conf: np.where(mask, 0.5 + 0.5 * conf, 0.499 * conf)
    probs = {"duodenum": coded(np.array([0.6, 0.9, 0.1])),
             "pancreas": coded(np.array([0.8, 0.7, 0.2]))}
    lab = merge_organs(probs)
    assert lab.tolist() == [2, 1, 0]
