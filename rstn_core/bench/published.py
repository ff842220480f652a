"""Published speed figures: what the papers and the authors' code report, for comparison only.

Nothing in this module was measured by `rstn_core.bench`. Every row is a figure printed in a
paper or reported for the authors' public code, with its source and hardware; the benchmark
copies the table into its JSON (``published``) and prints it beside our own measurements,
always labelled "published" or "authors'".
"""
from __future__ import annotations

__all__ = ["PUBLISHED_FIGURES", "AUTHORS_CPU_SECONDS", "AUTHORS_CPU_RSTN_ITERATION_96",
           "PUBLISHED", "published_table"]

# One row per published figure. value: the number; unit: its unit; hardware: where it was
# timed; source: which paper or report printed it.
PUBLISHED_FIGURES = [
    {"key": "authors_forward_96", "value": 0.45, "unit": "s per FCN-8s forward, batch 1",
     "input": "96x96 (+ pad 100)", "hardware": "2-core CPU, torch 2.13",
     "source": "authors' PyTorch port of the public code"},
    {"key": "authors_forward_512", "value": 2.3, "unit": "s per FCN-8s forward, batch 1",
     "input": "512x512 (+ pad 100)", "hardware": "2-core CPU, torch 2.13",
     "source": "authors' PyTorch port of the public code"},
    {"key": "authors_rstn_iteration_96", "value": 4.5, "unit": "s per RSTN training iteration",
     "input": "96x96, batch 1", "hardware": "2-core CPU, torch 2.13",
     "source": "authors' PyTorch port of the public code"},
    {"key": "stepwise_coarse", "value": 20.0, "unit": "s per volume (coarse stage)",
     "input": "512x512xL (NIH)", "hardware": "Titan X", "source": "MICCAI 2017"},
    {"key": "stepwise_round", "value": 20.0, "unit": "s per fine round",
     "input": "512x512xL (NIH)", "hardware": "Titan X", "source": "MICCAI 2017"},
    {"key": "rstn_coarse", "value": 30.0, "unit": "s per volume (coarse stage)",
     "input": "512x512xL (NIH)", "hardware": "Titan X Pascal", "source": "CVPR 2018"},
    {"key": "rstn_fine_total", "value": 40.0, "unit": "s per volume (all fine rounds, thr 0.99)",
     "input": "512x512xL (NIH)", "hardware": "Titan X Pascal", "source": "CVPR 2018"},
]

_BY_KEY = {row["key"]: row["value"] for row in PUBLISHED_FIGURES}

# Views of the table used by the benchmark (published numbers, not ours).
AUTHORS_CPU_SECONDS = {96: _BY_KEY["authors_forward_96"], 512: _BY_KEY["authors_forward_512"]}
AUTHORS_CPU_RSTN_ITERATION_96 = _BY_KEY["authors_rstn_iteration_96"]
PUBLISHED = {
    "stepwise": {"gpu": "Titan X (MICCAI 2017)", "coarse_s": _BY_KEY["stepwise_coarse"],
                 "per_round_s": _BY_KEY["stepwise_round"],
                 "note": "20 s coarse + 20 s per round; ~3 min per volume"},
    "rstn": {"gpu": "Titan X Pascal (CVPR 2018)", "coarse_s": _BY_KEY["rstn_coarse"],
             "fine_total_s": _BY_KEY["rstn_fine_total"],
             "note": "30 s coarse + 40 s coarse-to-fine (thr 0.99: 5.22 rounds on average); "
                     "0.2 min per round; ~1.3 min per case"},
}


def published_table() -> dict:
    """The published figures as the benchmark JSON stores them (key ``published``).

    Returns:
        {"note", "figures": PUBLISHED_FIGURES, "authors_cpu_seconds_per_forward",
        "authors_cpu_rstn_iteration_96_s", "stepwise", "rstn"}: plain JSON-able values.
    """
    return {"note": "published figures (papers, authors' code): not measured here",
            "figures": [dict(r) for r in PUBLISHED_FIGURES],
            "authors_cpu_seconds_per_forward": dict(AUTHORS_CPU_SECONDS),
            "authors_cpu_rstn_iteration_96_s": AUTHORS_CPU_RSTN_ITERATION_96,
            **{k: dict(v) for k, v in PUBLISHED.items()}}
