"""The Performance page's figure: seconds of Algorithm 2 per volume against the volume's size,
one line per benchmark result that has a ``scaling`` measurement (e.g. before and after a
change), with the range of the repeats and the fitted exponent."""
from __future__ import annotations

from matplotlib.figure import Figure

from rstn_core.io import atomic_savefig

__all__ = ["plot_scaling"]


def plot_scaling(results: list[dict], path) -> int:
    r"""Draw seconds per volume against voxels (log-log) for every result with ``scaling``.

    .. math:: t = c \cdot n^a \quad (a: \text{the fitted exponent, in the legend})

    Args:
        results: benchmark result dicts (`rstn bench` JSON); path: the PNG to write.
    Returns:
        The number of lines drawn (0: nothing had a scaling measurement; no file written).
    """
    rows = [r for r in results if r.get("scaling")]
    if not rows:
        return 0
    fig = Figure(figsize=(5.5, 3.6))                  # no pyplot: no global figure state
    ax = fig.subplots()
    for res in rows:
        sc, meta = res["scaling"], res["meta"]
        n = [r["voxels"] for r in sc["rows"]]
        med = [r["timing"]["median"] for r in sc["rows"]]
        lo = [m - r["timing"]["min"] for m, r in zip(med, sc["rows"])]
        hi = [r["timing"]["max"] - m for m, r in zip(med, sc["rows"])]
        label = (f"{meta.get('label') or meta['date']} (a = {sc['exponent']:.2f}, "
                 f"{meta['threads']} thread{'s' if meta['threads'] > 1 else ''})")
        ax.errorbar(n, med, yerr=[lo, hi], marker="o", capsize=3, label=label)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("voxels per volume")
    ax.set_ylabel(f"s per volume (Algorithm 2, T = {rows[0]['scaling']['T']})")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    atomic_savefig(fig, path, dpi=110, bbox_inches="tight")
    return len(rows)
