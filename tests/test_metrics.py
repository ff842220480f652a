"""Tests of rstn_core.metrics: DSC on hand-worked masks, summaries, the paired comparison."""

import math

import numpy as np
import pytest
import scipy.stats
import torch

from rstn_core.metrics import dsc, format_summary, paired_comparison, summarize

# (a, b, expected DSC), worked out by hand: DSC = 2|A∩B| / (|A| + |B|)
DSC_CASES = [
    ([[1, 1], [0, 0]], [[1, 0], [0, 0]], 2 / 3),   # |A∩B| = 1, |A| + |B| = 3
    ([[1, 1], [1, 0]], [[0, 1], [1, 1]], 2 / 3),   # 2 * 2 / (3 + 3)
    ([[1, 0], [0, 1]], [[1, 0], [0, 1]], 1.0),     # identical
    ([[1, 0], [0, 0]], [[0, 0], [0, 1]], 0.0),     # disjoint
    ([[0, 0], [0, 0]], [[0, 0], [0, 0]], 1.0),     # both empty: perfect agreement
    ([[0, 0], [0, 0]], [[0, 1], [0, 0]], 0.0),     # one empty
    ([[[1, 1], [1, 1]], [[1, 0], [0, 0]]],         # 3-D: |A| = 5, |B| = 2, |A∩B| = 1
     [[[1, 0], [0, 0]], [[0, 0], [0, 1]]], 2 / 7),
]

CONVERTERS = {
    "numpy int": lambda m: np.array(m, dtype=np.uint8),
    "numpy bool": lambda m: np.array(m, dtype=bool),
    "numpy float": lambda m: np.array(m, dtype=np.float32),
    "torch bool": lambda m: torch.tensor(m, dtype=torch.bool),
    "torch float": lambda m: torch.tensor(m, dtype=torch.float32),
}


@pytest.mark.parametrize("kind", list(CONVERTERS))
@pytest.mark.parametrize("a, b, expected", DSC_CASES)
def test_dsc_hand_worked(a, b, expected, kind):
    conv = CONVERTERS[kind]
    value = dsc(conv(a), conv(b))
    assert isinstance(value, float)
    assert value == pytest.approx(expected)
    assert dsc(conv(b), conv(a)) == pytest.approx(expected)  # symmetric


def test_dsc_mixed_numpy_and_torch():
    assert dsc(np.array([[1, 1], [0, 0]]), torch.tensor([[True, False], [False, False]])) == pytest.approx(2 / 3)


def test_dsc_shape_mismatch_raises():
    with pytest.raises(ValueError, match="same shape"):
        dsc(np.zeros((2, 2)), np.zeros((2, 3)))


def test_dsc_rejects_probabilities():
    with pytest.raises(ValueError, match="binary"):
        dsc(np.array([0.2, 0.9]), np.array([0, 1]))


def test_summarize_known_numbers():
    s = summarize([0.8, 0.9, 0.7])
    # mean 0.8; deviations 0, 0.1, -0.1 -> sample variance 0.02 / 2 = 0.01 -> std 0.1
    assert s["mean"] == pytest.approx(0.8)
    assert s["std"] == pytest.approx(0.1)
    assert (s["max"], s["min"], s["n"]) == (pytest.approx(0.9), pytest.approx(0.7), 3)


def test_summarize_matches_numpy():
    values = np.random.default_rng(0).uniform(0.4, 0.9, size=82)
    s = summarize(list(values))
    assert s["mean"] == pytest.approx(values.mean())
    assert s["std"] == pytest.approx(values.std(ddof=1))
    assert s["max"] == values.max() and s["min"] == values.min() and s["n"] == 82


def test_summarize_single_value_has_zero_std():
    assert summarize([0.5]) == {"mean": 0.5, "std": 0.0, "max": 0.5, "min": 0.5, "n": 1}


def test_summarize_empty_raises():
    with pytest.raises(ValueError, match="empty"):
        summarize([])


@pytest.mark.parametrize("s, kwargs, expected", [
    ({"mean": 0.8237, "std": 0.0568}, {}, "82.37 ± 5.68"),
    ({"mean": 0.8237, "std": 0.0568}, {"scale": 1, "digits": 3}, "0.824 ± 0.057"),
    ({"mean": 0.5, "std": 0.0}, {"digits": 0}, "50 ± 0"),
])
def test_format_summary(s, kwargs, expected):
    assert format_summary(s, **kwargs) == expected


def test_format_summary_missing_key_raises():
    with pytest.raises(ValueError, match="std"):
        format_summary({"mean": 0.5})


def test_paired_comparison_known_pair():
    a = [0.90, 0.80, 0.70, 0.60]
    b = [0.85, 0.82, 0.70, 0.50]
    r = paired_comparison(a, b)
    # gains: +0.05, -0.02, 0, +0.10
    assert (r["n"], r["wins"], r["losses"], r["ties"]) == (4, 2, 1, 1)
    assert r["mean_gain"] == pytest.approx(0.0325)
    assert r["largest_gain"] == pytest.approx(0.10)
    assert r["largest_loss"] == pytest.approx(-0.02)
    # sample std of the gains: squared deviations sum to 0.008675, / 3
    assert r["std_gain"] == pytest.approx(math.sqrt(0.008675 / 3))
    # paired t-test by hand: t = mean / (std / sqrt(n)), two-sided, n - 1 = 3 degrees of freedom
    t = 0.0325 / (math.sqrt(0.008675 / 3) / 2)
    assert r["p_value"] == pytest.approx(2 * scipy.stats.t.sf(t, df=3))
    assert r["p_value"] == pytest.approx(scipy.stats.ttest_rel(a, b).pvalue)


def test_paired_comparison_direction():
    r = paired_comparison([0.5, 0.6, 0.7], [0.6, 0.9, 0.8])
    assert (r["wins"], r["losses"]) == (0, 3)
    assert r["largest_gain"] == pytest.approx(-0.1) and r["largest_loss"] == pytest.approx(-0.3)


@pytest.mark.parametrize("a, b", [([0.7], [0.6]), ([0.5, 0.6, 0.7], [0.5, 0.6, 0.7])])
def test_paired_comparison_undefined_p_is_nan(a, b):
    r = paired_comparison(a, b)
    assert math.isnan(r["p_value"])
    if len(a) == 1:
        assert r["std_gain"] == 0.0 and r["wins"] == 1
    else:
        assert r["ties"] == 3


def test_paired_comparison_length_mismatch_raises():
    with pytest.raises(ValueError, match="same cases"):
        paired_comparison([0.1, 0.2], [0.1])


# ------------------------------------------------------------------------------------------
# Surface metrics: HD95 and NSD in mm (hand-worked cases, then MONAI as the reference)
# ------------------------------------------------------------------------------------------
from rstn_core.metrics import hd95, nsd, surface_distances, surface_metrics  # noqa: E402
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from tests.helpers import FAST


def _cube(shape=(24, 24, 24), lo=(6, 6, 6), hi=(14, 14, 14)):
    m = np.zeros(shape, bool)
    m[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]] = True
    return m


# (shift along axis 0 in voxels, spacing, expected HD95 in mm): a cube against itself moved
# by s voxels along x: every face voxel moves by s * spacing_x, the side faces by 0 -> the
# 95th percentile is the shift in mm on both sides.
HD_CASES = [(0, (1, 1, 1), 0.0), (1, (1, 1, 1), 1.0), (1, (2.5, 1, 1), 2.5),
            (2, (0.7, 1, 3), 1.4)]


@pytest.mark.parametrize("shift,spacing,expected", HD_CASES)
def test_hd95_of_a_shifted_cube_is_the_shift_in_mm(shift, spacing, expected):
    a = _cube()
    b = np.roll(a, shift, axis=0)
    assert hd95(a, b, spacing) == pytest.approx(expected)


def test_nsd_counts_surface_within_tolerance():
    a = _cube()
    b = np.roll(a, 1, axis=0)
    assert nsd(a, a, 0.0) == 1.0
    assert nsd(a, b, 1.0, (1, 1, 1)) == 1.0          # every distance is <= 1 mm
    assert nsd(a, b, 1.0, (3, 1, 1)) < 1.0            # 3 mm apart on the moved faces
    assert nsd(a, b, 3.0, (3, 1, 1)) == 1.0


def test_surface_metrics_empty_masks():
    e = np.zeros((8, 8, 8), bool)
    m = _cube((8, 8, 8), (2, 2, 2), (5, 5, 5))
    assert hd95(e, e) == 0.0 and nsd(e, e, 1.0) == 1.0
    assert math.isinf(hd95(m, e)) and nsd(m, e, 2.0) == 0.0
    assert surface_metrics(m, e, (1, 1, 1)) == {"hd95": None, "nsd_1mm": 0.0, "nsd_2mm": 0.0}
    d_ab, d_ba = surface_distances(e, e)
    assert d_ab.size == 0 and d_ba.size == 0


@pytest.mark.parametrize("bad", [(1, 1), (1, 0, 1), (1, -2, 1)])
def test_surface_metrics_refuse_bad_spacing(bad):
    with pytest.raises(ValueError, match="spacing"):
        hd95(_cube(), _cube(), bad)


def test_surface_metrics_refuse_shape_mismatch_and_bad_tolerance():
    with pytest.raises(ValueError, match="same shape"):
        hd95(np.zeros((4, 4, 4)), np.zeros((4, 4, 5)))
    with pytest.raises(ValueError, match="tolerance_mm"):
        nsd(_cube(), _cube(), -1.0)


def _blob(rng, shape, spacing):
    """A random smooth blob: a noisy ellipsoid touching nothing at the border."""
    from scipy.ndimage import gaussian_filter
    g = np.stack(np.meshgrid(*[np.arange(n) * s for n, s in zip(shape, spacing)],
                             indexing="ij"))
    c = np.array([n * s / 2 for n, s in zip(shape, spacing)])[:, None, None, None]
    r = np.sqrt((((g - c) / np.array([12, 9, 10])[:, None, None, None]) ** 2).sum(0))
    return (r + 0.6 * gaussian_filter(rng.standard_normal(shape), 2)) < 1.0


@pytest.mark.parametrize("seed,spacing", [(0, (1.0, 1.0, 1.0)), (1, (0.8, 0.8, 2.5)),
                                          (2, (2.2, 2.2, 3.2))])
def test_surface_metrics_match_monai(seed, spacing):
    monai_metrics = pytest.importorskip("monai.metrics")
    rng = np.random.default_rng(seed)
    shape = (40, 36, 24)
    a, b = _blob(rng, shape, spacing), _blob(rng, shape, spacing)
    assert a.any() and b.any()

    def t(m):
        return torch.as_tensor(m[None, None].astype(np.float32))
    ref_hd = float(monai_metrics.compute_hausdorff_distance(
        t(a), t(b), include_background=True, percentile=95, spacing=spacing))
    assert hd95(a, b, spacing) == pytest.approx(ref_hd, rel=1e-5, abs=1e-5)
    for tol in (1.0, 2.0):
        ref = float(monai_metrics.compute_surface_dice(t(a), t(b), [tol],
                                                       include_background=True,
                                                       spacing=spacing))
        assert nsd(a, b, tol, spacing) == pytest.approx(ref, abs=1e-6)
    sm = surface_metrics(a, b, spacing)
    assert sm["hd95"] == pytest.approx(ref_hd, rel=1e-5, abs=1e-5)


pairs = st.tuples(st.integers(1, 6), st.integers(1, 6), st.integers(1, 4)).flatmap(
    lambda s: st.tuples(arrays(bool, s), arrays(bool, s)))


@FAST
@given(pairs)
def test_dsc_is_symmetric_bounded_and_one_on_itself(ab):
    a, b = ab
    v = dsc(a, b)
    assert 0.0 <= v <= 1.0 and v == dsc(b, a)
    assert dsc(a, a) == 1.0                                     # empty vs empty is 1 too
    if a.any() != b.any():
        assert v == 0.0 if not (a & b).any() else v > 0
    n = a.sum() + b.sum()
    if n:
        assert v == pytest.approx(2 * (a & b).sum() / n)


def test_dsc_of_empty_inputs():
    e = np.zeros((0,), bool)
    assert dsc(e, e) == 1.0
    assert dsc(np.zeros((3, 3), bool), np.ones((3, 3), bool)) == 0.0
