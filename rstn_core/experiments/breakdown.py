"""Where a method wins: DSC on the ends of the gland and on its core, and the false positives
that lie on the phantom's look-alike structures.

A whole-volume DSC hides *where* two methods differ. The CVPR paper's argument for RSTN is
context: a fine net that looks only inside the box of one mask cannot recover what the box left
out (the thin ends of the organ) nor tell a look-alike inside the box from the organ. Two
numbers per case test that argument on stored predictions:

    ends(Y)  = the axial slices in the first and last `fraction` of the organ's axial extent
    DSC_ends = DSC(Z ∩ ends, Y ∩ ends),   DSC_core = DSC(Z ∩ core, Y ∩ core)
    FP_look  = |Z ∩ L \\ Y|,  L = the phantom's look-alike loops (label ``bowel_lookalike``)

`rstn compare A B --breakdown` prints them for two runs side by side with paired tests.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from rstn_core.data import DataError, list_cases, load_case, target_mask
from rstn_core.metrics import dsc, paired_comparison

__all__ = ["end_slices", "case_breakdown", "run_breakdown", "breakdown_table"]

LOOKALIKE = "bowel_lookalike"


def end_slices(label: np.ndarray, fraction: float = 0.2, axis: int = 2) -> np.ndarray:
    """The slices along `axis` in the first and last `fraction` of the label's extent.

    Args:
        label: the binary organ mask; fraction: share of the extent at each end, in (0, 0.5];
        axis: 2 = axial slices of an (X, Y, Z) volume.
    Shapes:
        label (X, Y, Z); returns (label.shape[axis],) bool, all False for an empty label.
    """
    if not 0 < fraction <= 0.5:
        raise ValueError(f"end_slices: fraction must be in (0, 0.5], got {fraction!r}; "
                         "0.2 takes a fifth of the organ's extent at each end.")
    label = np.asarray(label, bool)
    other = tuple(a for a in range(label.ndim) if a != axis)
    present = np.flatnonzero(label.any(axis=other))
    out = np.zeros(label.shape[axis], bool)
    if present.size == 0:
        return out
    lo, hi = present[0], present[-1]
    k = max(1, int(round(fraction * (hi - lo + 1))))
    out[lo:lo + k] = True
    out[hi - k + 1:hi + 1] = True
    return out


def case_breakdown(pred: np.ndarray, label: np.ndarray, lookalike: np.ndarray | None = None,
                   fraction: float = 0.2) -> dict:
    """DSC on the end slices and the core slices of the organ, all false positives and those
    on the look-alikes, for one case.

    Shapes:
        pred, label, lookalike (X, Y, Z) bool (lookalike None: no look-alikes, FP_look = 0).
    """
    pred, label = np.asarray(pred, bool), np.asarray(label, bool)
    if pred.shape != label.shape:
        raise ValueError(f"case_breakdown: pred {pred.shape} and label {label.shape} differ; "
                         "both must be on the case's grid.")
    ends = end_slices(label, fraction)
    fp = pred & ~label
    return {"dsc": dsc(pred, label),
            "dsc_ends": dsc(pred[..., ends], label[..., ends]),
            "dsc_core": dsc(pred[..., ~ends], label[..., ~ends]),
            "fp": int(fp.sum()),
            "fp_lookalike": int((fp & lookalike).sum()) if lookalike is not None else 0}


def _labels(data_root, target: str) -> dict:
    """{case id: (label, look-alike mask or None)} of a data set's labelled cases."""
    out = {}
    for ref in list_cases(data_root):
        if ref.label is None:
            continue
        case = load_case(ref.image, ref.label)
        try:
            look = target_mask(case, LOOKALIKE)
        except DataError:                                  # no look-alikes in this data
            look = None
        out[case.id] = (target_mask(case, target), look)
    return out


def run_breakdown(run, data_root, target: str = "pancreas", fraction: float = 0.2,
                  labels: dict | None = None) -> list:
    """One `case_breakdown` row (with "fold" and "id") per stored test prediction of a
    method's run folder (`<run>/fold*/test/probs/<id>.npz`, probability as uint8)."""
    labels = labels if labels is not None else _labels(data_root, target)
    rows = []
    for res_path in sorted(Path(run).glob("fold*/test/results.json")):
        fold = json.loads(res_path.read_text())["fold"]
        for npz in sorted((res_path.parent / "probs").glob("*.npz")):
            if npz.stem not in labels:
                raise FileNotFoundError(f"{npz}: case {npz.stem} is not in the data set "
                                        f"{data_root}; give the data the run was tested on.")
            with np.load(npz) as z:
                pred = z["prob"] >= 128                         # P > 0.5, stored as uint8
            label, look = labels[npz.stem]
            rows.append({"fold": fold, "id": npz.stem,
                         **case_breakdown(pred, label, look, fraction)})
    if not rows:
        raise FileNotFoundError(f"no stored test predictions under {run}/fold*/test/probs; "
                                "run `rstn test` for the run first.")
    return rows


def breakdown_table(runs: dict, data_root, target: str = "pancreas",
                    fraction: float = 0.2) -> str:
    """Markdown: per run, mean DSC on the ends and the core and the false positives; then the
    first run against each other on the cases they share (paired, points of DSC)."""
    labels = _labels(data_root, target)
    rows = {name: {(r["fold"], r["id"]): r for r in run_breakdown(run, data_root, target,
                                                                  fraction, labels)}
            for name, run in runs.items()}
    lines = [f"| run | cases | DSC (%) | DSC, end slices (%) | DSC, core (%) | "
             f"false-positive voxels | of them on look-alikes |", "|---|---|---|---|---|---|---|"]
    for name, by in rows.items():
        r = list(by.values())
        lines.append(f"| {name} | {len(r)} | {100 * np.mean([x['dsc'] for x in r]):.2f} | "
                     f"{100 * np.mean([x['dsc_ends'] for x in r]):.2f} | "
                     f"{100 * np.mean([x['dsc_core'] for x in r]):.2f} | "
                     f"{sum(x['fp'] for x in r)} | {sum(x['fp_lookalike'] for x in r)} |")
    names = list(rows)
    if len(names) > 1:
        lines += ["", "| paired, on the shared cases | region | n | mean gain ± std (points) | "
                      "wins / losses | p |", "|---|---|---|---|---|---|"]
        a = rows[names[0]]
        for other in names[1:]:
            b = rows[other]
            keys = sorted(set(a) & set(b))
            for region in ("dsc_ends", "dsc_core"):
                c = paired_comparison([a[k][region] for k in keys], [b[k][region] for k in keys])
                lines.append(f"| {names[0]} vs {other} | {region[4:]} | {c['n']} | "
                             f"{100 * c['mean_gain']:+.2f} ± {100 * c['std_gain']:.2f} | "
                             f"{c['wins']} / {c['losses']} | {c['p_value']:.3g} |")
    return "\n".join(lines) + (f"\n\n(end slices: the first and last {fraction:.0%} of the "
                               "organ's axial extent in the ground truth.)")
