"""experiments/papers.py: the published numbers (consistent across the papers' own tables) and
the tables with our column beside them."""
import numpy as np
import pytest

from rstn_core.experiments import papers


def test_published_numbers_agree_across_the_papers_tables():
    # the CVPR baseline is the MICCAI model with R = 0.95; its best RSTN is J_C -> J_F
    assert papers.CVPR_VARIANTS["stepwise baseline"][:2] == papers.MICCAI_ALGORITHM1["d(t) > 0.95"][:2]
    assert papers.CVPR_PIPELINES["I_C → I_F"] == papers.MICCAI_ALGORITHM1["d(t) > 0.95"][0]
    assert papers.CVPR_PIPELINES["coarse I_C"] == papers.MICCAI_VIEWS["fused"][0]
    best = papers.CVPR_VARIANTS["best: two-layer 3×3 + fine-tuning, thr 0.99"][0]
    assert papers.CVPR_PIPELINES["J_C → J_F"] == best == papers.ORACLES["with noisy fine-tuning"][0]
    for none, strong, weak in papers.ORACLES.values():
        assert none < weak < strong                    # an oracle never hurts; strong >= weak


def _row(fold, k, coarse, fine, d, oracle=0.8, weak=None):
    stop = {key: {"dsc": fine, "iterations": 3} for key in ("0.90", "0.95", "0.99", "best")}
    r = {"fold": fold, "id": f"c{k}", "coarse": coarse, "after": [fine] * 10, "d": d,
         "stop": stop, "oracle": oracle, "coarse_views": {"axial": coarse}}
    if weak is not None:
        r["oracle_weak"] = weak
    return r


def test_beside_papers_puts_our_numbers_beside_the_papers():
    d = [0.9] + [0.995] * 9
    step = [_row(0, k, 0.6, 0.7 + 0.01 * k, d) for k in range(4)]
    rstn = {"3x3": [_row(0, k, 0.65, 0.75 + 0.01 * k, d, 0.85, 0.82) for k in range(4)],
            "1x1": [_row(0, k, 0.65, 0.74, d) for k in range(2)]}
    text = papers.beside_papers(step, rstn, "3x3")
    assert "## The fixed-point model (MICCAI 2017)" in text and "## RSTN (CVPR 2018)" in text
    assert "| 1×1 kernels | 82.85&nbsp;±&nbsp;6.68 | 90.40 | 53.44 | 74.00&nbsp;±&nbsp;0.00" in text
    assert "| wins | 67 of 82 | 4 of 4 |" in text
    assert "| mean gain | 2.13&nbsp;±&nbsp;2.67 | 5.00&nbsp;±&nbsp;0.00 |" in text
    assert "85.00&nbsp;±&nbsp;0.00 | 82.00&nbsp;±&nbsp;0.00 |" in text     # strong, weak oracle
    assert "| RSTN cases converged at thr 0.99 | 80 of 82, in 5.22 iterations on average | " \
           "4 of 4, in 2.00 iterations on average |" in text
    assert papers.beside_papers([], rstn) == "" and papers.beside_papers(step, {}) == ""


def test_beside_papers_pairs_the_equal_work_nets_on_shared_cases_only():
    d = [0.99] * 10
    step = [_row(0, k, 0.6, 0.7, d) for k in range(4)]
    rstn = {"3x3": [_row(0, k, 0.65, 0.75, d) for k in range(4)]}
    long = [_row(0, k, 0.62, 0.72, d) for k in range(2)]          # only 2 of the 4 cases
    text = papers.beside_papers(step, rstn, "3x3", equal_work=long)
    assert "ours on the 2 cases both have" in text
    assert "| coarse $I_C$ | 75.74 | 62.00&nbsp;±&nbsp;0.00 |" in text
