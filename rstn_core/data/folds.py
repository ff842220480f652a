"""Cross-validation folds as the authors made them: k contiguous blocks of the sorted ids.

NIH's 82 cases give folds of 21, 21, 20, 20 (`np.array_split` sizes: the first
``n % k`` folds get one case more). Fold f is the test set; the other k - 1 train.
"""
from __future__ import annotations

import json
from pathlib import Path

from rstn_core.data.errors import DataError
from rstn_core.io import atomic_write_json

__all__ = ["make_folds", "fold_split", "save_folds", "load_folds"]


def make_folds(case_ids, k: int = 4) -> list[list[str]]:
    """Split the sorted ids into k contiguous blocks of near-equal size.

    >>> make_folds(["c", "a", "b", "d", "e"], k=2)
    [['a', 'b', 'c'], ['d', 'e']]
    """
    ids = sorted(str(i) for i in case_ids)
    if len(set(ids)) != len(ids):
        dup = sorted({i for i in ids if ids.count(i) > 1})
        raise DataError(f"make_folds: duplicate case ids {dup}; every case needs its own id.")
    if not isinstance(k, int) or k < 2:
        raise DataError(f"make_folds: k must be an integer >= 2, got {k!r}.")
    if not ids:
        raise DataError(f"make_folds: no cases to split into {k} folds; folds need labelled "
                        "cases (is the data set's labelsTr/ missing?).")
    if len(ids) < k:
        fix = f"use k <= {len(ids)} or more cases" if len(ids) >= 2 else "add cases"
        raise DataError(f"make_folds: {len(ids)} cases cannot make {k} folds; {fix}.")
    n, r = divmod(len(ids), k)
    out, start = [], 0
    for f in range(k):
        size = n + (1 if f < r else 0)
        out.append(ids[start:start + size])
        start += size
    return out


def fold_split(case_ids, fold: int, k: int = 4, folds=None) -> tuple[list[str], list[str]]:
    """(train_ids, test_ids) for test fold `fold` of `k` (or of the given `folds`)."""
    folds = folds if folds is not None else make_folds(case_ids, k)
    k = len(folds)
    if isinstance(fold, bool) or not isinstance(fold, int) or not 0 <= fold < k:
        raise DataError(f"fold {fold!r} is out of range for {k} folds; use 0..{k - 1}.")
    test = list(folds[fold])
    train = [i for f, ids in enumerate(folds) if f != fold for i in ids]
    return train, test


def save_folds(folds, path, seed: int | None = None) -> Path:
    """Write folds as JSON, atomically: {"k": k, "seed": seed, "folds": [[ids of fold 0], ...]}.

    Args:
        folds: the k lists of case ids; path: the file; seed: the run's seed, recorded beside
            k (the split itself is the sorted ids' contiguous blocks, seed-free).
    Returns:
        the path written.
    """
    folds = [[str(i) for i in f] for f in folds]
    return atomic_write_json(path, {"k": len(folds), "seed": seed, "folds": folds})


def load_folds(path) -> list[list[str]]:
    """Read folds written by `save_folds` (or a bare list of lists); a file whose recorded k
    differs from its number of folds is refused (edited by hand)."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"{p} does not exist; write it with save_folds(make_folds(ids), path).")
    try:
        d = json.loads(p.read_text())
        folds = d["folds"] if isinstance(d, dict) else d
        if not isinstance(folds, list) or not all(isinstance(f, list) for f in folds):
            raise ValueError("folds")
        k = d.get("k", len(folds)) if isinstance(d, dict) else len(folds)
        folds = [[str(i) for i in f] for f in folds]
    except (ValueError, KeyError, TypeError):
        raise DataError(f"{p}: not a folds file; expected {{\"k\": 4, \"folds\": [[ids], ...]}} "
                        "as written by save_folds.") from None
    if k != len(folds):
        raise DataError(f"{p}: records k={k} but holds {len(folds)} folds; delete it to split "
                        "the cases again.")
    flat = [i for f in folds for i in f]
    if len(set(flat)) != len(flat):
        raise DataError(f"{p}: a case appears in two folds; each case must be in exactly one.")
    return folds
