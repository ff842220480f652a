"""data/folds.py: the authors' contiguous folds, folds.json, and the fold split."""
import pytest
from rstn_core.data import DataError, fold_split, load_folds, make_folds, save_folds
from tests.helpers import one_line


def test_fold_out_of_range():
    with pytest.raises(DataError) as e:
        fold_split([f"c{i}" for i in range(8)], 4, k=4)
    one_line(e, "fold 4", "0..3")


def test_folds_like_the_authors(tmp_path):
    ids = [f"PANCREAS_{i:04d}" for i in range(82, 0, -1)]
    folds = make_folds(ids)
    assert [len(f) for f in folds] == [21, 21, 20, 20]
    assert sum(folds, []) == sorted(ids)                            # contiguous sorted blocks
    train, test = fold_split(ids, 1)
    assert test == folds[1] and set(train) == set(ids) - set(test)
    p = save_folds(folds, tmp_path / "folds.json")
    assert load_folds(p) == folds
    assert fold_split(ids, 2, folds=load_folds(p))[1] == folds[2]
    with pytest.raises(DataError):
        make_folds(ids[:3], k=4)
