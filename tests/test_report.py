"""experiments/report.py: the tables read from run folders."""
import pytest


def _fake_run(root, method, folds_dscs):
    import json
    for fold, dscs in folds_dscs.items():
        rows = [{"id": f"c{k}", "coarse": 0.5, "stop": {"0.95": {"dsc": d}, "0.99": {"dsc": d + 0.1}}}
                for k, d in enumerate(dscs)]
        path = root / f"fold{fold}" / "test" / "results.json"
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps({"method": method, "fold": fold, "cases": rows}))
    return root


def test_compare_runs_pairs_cases_by_fold_and_id_with_each_methods_stop_rule(tmp_path):
    from rstn_core.experiments.report import compare_runs
    a = _fake_run(tmp_path / "a", "rstn", {0: [0.5, 0.6], 1: [0.7]})         # read at 0.99: +0.1
    b = _fake_run(tmp_path / "b", "stepwise", {0: [0.55, 0.6], 1: [0.6], 2: [0.1]})
    line = compare_runs(a, b).splitlines()[2].split(" | ")
    # a: 0.6, 0.7, 0.8 against b: 0.55, 0.6, 0.6 -> gains 5, 10, 20 points; fold 2 unpaired
    assert line[1:4] == ["3", "+11.67 ± 7.64", "3 / 0"]
    line = compare_runs(a, b, a_stop="0.95").splitlines()[2].split(" | ")
    assert line[1:4] == ["3", "+1.67 ± 7.64", "1 / 1"]
    with pytest.raises(FileNotFoundError, match="no fold"):
        compare_runs(tmp_path / "none", b)
