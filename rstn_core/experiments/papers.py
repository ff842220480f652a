"""The papers' published tables, with our numbers beside them.

One home for the numbers the papers report on NIH Pancreas-CT (82 cases, 4 folds): the MICCAI
2017 table of Algorithm 1 and its coarse views, and the CVPR 2018 tables of RSTN (Table 1's
variants, the case-by-case comparison, I/J pipelines, convergence, time) with the AAAI short
form's oracles. `beside_papers` lays each of them out with an "ours" column computed from the
fold results (`report.collect` rows), so the book's results page never copies a number by hand.

Sources: Zhou et al., MICCAI 2017 (Table 1 and its text); Yu et al., CVPR 2018 (Tables 1-3,
Sections 4.3-4.5); the AAAI short form of RSTN (strong and weak oracles).
"""
from __future__ import annotations

import numpy as np

from rstn_core.metrics import format_summary, paired_comparison, summarize

__all__ = ["MICCAI_VIEWS", "MICCAI_ALGORITHM1", "MICCAI_CONVERGENCE", "CVPR_VARIANTS",
           "CVPR_CASES", "CVPR_PIPELINES", "CVPR_CONVERGENCE", "ORACLES", "beside_papers"]

#: MICCAI 2017: coarse nets per view and fused (mean, std[, max, min]).
MICCAI_VIEWS = {"coronal": (66.88, 11.08), "sagittal": (71.41, 11.12), "axial": (73.08, 9.60),
                "fused": (75.74, 10.47, 88.12, 39.99)}
#: MICCAI 2017, Algorithm 1: condition -> (mean, std, iterations, max, min).
MICCAI_ALGORITHM1 = {
    "coarse": (75.74, 10.47, "–", 88.12, 39.99),
    "after 1 iteration": (82.16, 6.29, "1", 90.85, 54.39),
    "after 2": (82.13, 6.30, "2", 90.77, 57.05),
    "after 3": (82.09, 6.17, "3", 90.78, 58.39),
    "after 5": (82.11, 6.09, "5", 90.75, 62.40),
    "after 10": (82.25, 5.73, "10", 90.76, 61.73),
    "d(t) > 0.90": (82.13, 6.35, "1.83 ± 0.47", 90.85, 54.39),
    "d(t) > 0.95": (82.37, 5.68, "2.89 ± 1.75", 90.85, 62.43),
    "d(t) > 0.99": (82.28, 5.72, "9.87 ± 0.73", 90.77, 61.94),
    "best among all iterations (upper bound)": (82.65, 5.47, "3.49 ± 2.92", 90.85, 63.02),
    "oracle bounding box (upper bound)": (83.18, 4.81, "–", 91.03, 65.10),
}
#: MICCAI 2017: d(10) = DSC(Z(9), Z(10)) over the cases.
MICCAI_CONVERGENCE = {"mean": 0.9767, "median": 0.9794, "min": 0.9362}
#: CVPR 2018 Table 1: variant -> (mean, std, max, min).
CVPR_VARIANTS = {
    "stepwise baseline": (82.37, 5.68, 90.85, 62.43),
    "3×3 kernels (basic)": (83.47, 5.78, 90.63, 57.85),
    "1×1 kernels": (82.85, 6.68, 90.40, 53.44),
    "5×5 kernels": (83.64, 5.29, 90.35, 66.35),
    "two-layer 3×3": (83.93, 5.43, 90.52, 64.78),
    "fine-tuning with noisy data (3×3)": (83.99, 5.09, 90.57, 65.05),
    "best: two-layer 3×3 + fine-tuning, thr 0.99": (84.50, 4.97, 91.02, 62.81),
}
#: CVPR 2018: RSTN against the stepwise model, case by case.
CVPR_CASES = {"wins": "67 of 82", "largest gain": "+17.60", "largest loss": "−3.85",
              "mean gain": "2.13 ± 2.67", "p": "3.62e-08"}
#: CVPR 2018: coarse and fine nets, stepwise (I) or jointly trained (J).
CVPR_PIPELINES = {"coarse I_C": 75.74, "coarse J_C": 78.23, "I_C → I_F": 82.37,
                  "I_C → J_F": 83.80, "J_C → J_F": 84.50, "RSTN after one iteration": 82.73}
#: CVPR 2018: mean d(t) after t = 1, 2, 3, 5, 10 rounds.
CVPR_CONVERGENCE = {"RSTN": (0.9037, 0.9677, 0.9814, 0.9908, 0.9964),
                    "stepwise": (0.8286, 0.9477, 0.9661, 0.9743, 0.9774)}
#: AAAI short form: (without oracle, strong oracle, weak oracle), with and without the noisy phase.
ORACLES = {"with noisy fine-tuning": (84.50, 91.42, 86.37),
           "without noisy fine-tuning": (83.68, 91.29, 86.26)}

ROUNDS = (1, 2, 3, 5, 10)
PIPELINE_LABELS = {"coarse I_C": "coarse $I_C$", "coarse J_C": "coarse $J_C$",
                   "I_C → I_F": r"$I_C \to I_F$", "I_C → J_F": r"$I_C \to J_F$",
                   "J_C → J_F": r"$J_C \to J_F$", "RSTN after one iteration": "RSTN after one iteration"}
NBSP = "&nbsp;±&nbsp;"


def _ms(values, full: bool = False) -> str:
    """mean ± std in % (and max, min) of DSC values in [0, 1]; "—" when there are none."""
    v = [x for x in values if x is not None]
    if not v:
        return "—"
    s = summarize(v)
    text = format_summary(s).replace(" ± ", NBSP)
    return text + (f" (max {100 * s['max']:.2f}, min {100 * s['min']:.2f})" if full else "")


def _paper(mean, std, *rest) -> str:
    return f"{mean:.2f}{NBSP}{std:.2f}"


def _miccai(step: list) -> list:
    out = ["Coarse networks, one per view, and their fusion:", "",
           "| view | paper | ours |", "|---|---|---|"]
    for v, p in MICCAI_VIEWS.items():
        ours = (_ms([r["coarse"] for r in step], True) if v == "fused" else
                _ms([r["coarse_views"].get(v) for r in step]))
        paper = _paper(*p) + (f" (max {p[2]:.2f}, min {p[3]:.2f})" if len(p) > 2 else "")
        out.append(f"| {v} | {paper} | {ours} |")
    ours = {"coarse": (_ms([r["coarse"] for r in step], True), "–")}
    for t in ROUNDS:
        key = "after 1 iteration" if t == 1 else f"after {t}"
        ours[key] = (_ms([r["after"][t - 1] if len(r["after"]) >= t else None for r in step],
                         True), str(t))
    for R in ("0.90", "0.95", "0.99"):
        ours[f"d(t) > {R}"] = (_ms([r["stop"][R]["dsc"] for r in step], True),
                               f"{np.mean([r['stop'][R]['iterations'] for r in step]):.2f}")
    ours["best among all iterations (upper bound)"] = (
        _ms([r["stop"]["best"]["dsc"] for r in step], True),
        f"{np.mean([r['stop']['best']['iterations'] for r in step]):.2f}")
    ours["oracle bounding box (upper bound)"] = (_ms([r.get("oracle") for r in step], True), "–")
    out += ["", "Algorithm 1, with a fixed number of rounds or with a stopping threshold $R$:",
            "", "| condition | paper: mean DSC | paper: # iterations | paper: max | paper: min "
                "| ours | ours: # iterations |", "|---|---|---|---|---|---|---|"]
    for name, (mean, std, it, mx, mn) in MICCAI_ALGORITHM1.items():
        o, oit = ours[name]
        out.append(f"| {name} | {mean:.2f}{NBSP}{std:.2f} | {it} | {mx:.2f} | {mn:.2f} | {o} | "
                   f"{oit} |")
    d10 = [r["d"][9] for r in step if len(r["d"]) >= 10]
    out += ["", "Convergence after 10 rounds, $d^{(10)} = \\mathrm{DSC}(Z^{(9)}, Z^{(10)})$:", "",
            "| statistic | paper | ours |", "|---|---|---|"]
    for k, f in (("mean", np.mean), ("median", np.median), ("min", np.min)):
        out.append(f"| {k} | {MICCAI_CONVERGENCE[k]:.4f} | "
                   f"{f(d10):.4f} |" if d10 else f"| {k} | {MICCAI_CONVERGENCE[k]:.4f} | — |")
    return out


def _cvpr(step: list, rstn: dict, main: str, equal_work: list | None) -> list:
    base = rstn[main]
    names = {"3×3 kernels (basic)": "3x3", "1×1 kernels": "1x1", "5×5 kernels": "5x5",
             "two-layer 3×3": "two-layer 3x3"}
    out = ["Variants (CVPR Table 1; ours at thr 0.99, all with the noisy phase):", "",
           "| variant | paper: mean | paper: max | paper: min | ours | cases |",
           "|---|---|---|---|---|---|"]
    for name, (mean, std, mx, mn) in CVPR_VARIANTS.items():
        rows = step if name == "stepwise baseline" else rstn.get(names.get(name, ""))
        key = "0.95" if name == "stepwise baseline" else "0.99"
        ours = _ms([r["stop"][key]["dsc"] for r in rows], True) if rows else "—"
        out.append(f"| {name} | {mean:.2f}{NBSP}{std:.2f} | {mx:.2f} | {mn:.2f} | {ours} | "
                   f"{len(rows) if rows else '—'} |")
    by = {(r["fold"], r["id"]): r for r in step}
    pairs = [(r["stop"]["0.99"]["dsc"], by[(r["fold"], r["id"])]["stop"]["0.95"]["dsc"])
             for r in base if (r["fold"], r["id"]) in by]
    c = paired_comparison(*map(np.array, zip(*pairs))) if pairs else None
    out += ["", "RSTN against the stepwise model, case by case (ours: equal iterations):", "",
            "| statistic | paper | ours |", "|---|---|---|"]
    if c:
        ours = {"wins": f"{c['wins']} of {c['n']}",
                "largest gain": f"{100 * c['largest_gain']:+.2f}",
                "largest loss": f"{100 * c['largest_loss']:+.2f}",
                "mean gain": f"{100 * c['mean_gain']:.2f}{NBSP}{100 * c['std_gain']:.2f}",
                "p": f"{c['p_value']:.2g}"}
        for k, v in CVPR_CASES.items():
            out.append(f"| {k} | {v.replace(' ± ', NBSP)} | {ours[k]} |")
    i_rows = equal_work or step                    # the I nets: trained as long as RSTN if given
    shared = {(r["fold"], r["id"]) for r in i_rows} & {(r["fold"], r["id"]) for r in base}
    i_rows = [r for r in i_rows if (r["fold"], r["id"]) in shared]
    j_rows = [r for r in base if (r["fold"], r["id"]) in shared]
    pipes = {"coarse I_C": _ms([r["coarse"] for r in i_rows]),
             "coarse J_C": _ms([r["coarse"] for r in j_rows]),
             "I_C → I_F": _ms([r["stop"]["0.95"]["dsc"] for r in i_rows]),
             "I_C → J_F": "—",
             "J_C → J_F": _ms([r["stop"]["0.99"]["dsc"] for r in j_rows]),
             "RSTN after one iteration": _ms([r["after"][0] for r in j_rows])}
    out += ["", f"Joint training and both stages (I = stepwise networks"
                f"{', trained as long as RSTN (equal work)' if equal_work else ''}, J = jointly "
                f"trained; ours on the {len(shared)} cases both have):", "",
            "| pipeline | paper | ours |", "|---|---|---|"]
    for k, v in CVPR_PIPELINES.items():
        out.append(f"| {PIPELINE_LABELS[k]} | {v:.2f} | {pipes[k]} |")
    out += ["", "Convergence, mean $d^{(t)}$ after $t$ rounds:", "",
            "| method | " + " | ".join(f"$t={t}$" for t in ROUNDS) + " | ours |",
            "|---|" + "---|" * (len(ROUNDS) + 1)]
    for name, rows in (("RSTN", base), ("stepwise", step)):
        ours = " / ".join(f"{np.mean([r['d'][t - 1] for r in rows]):.4f}" for t in ROUNDS
                          if all(len(r["d"]) >= t for r in rows))
        out.append(f"| {name} | " + " | ".join(f"{x:.4f}" for x in CVPR_CONVERGENCE[name])
                   + f" | {ours} |")
    conv = [next((t for t, x in enumerate(r["d"], 1) if x > 0.99), None) for r in base]
    done = [t for t in conv if t is not None]
    step_conv = sum(any(x > 0.99 for x in r["d"]) for r in step)
    out += ["", "| convergence statistic | paper | ours |", "|---|---|---|",
            f"| RSTN cases converged at thr 0.99 | 80 of 82, in 5.22 iterations on average | "
            f"{len(done)} of {len(base)}" + (f", in {np.mean(done):.2f} iterations on average |"
                                             if done else " |"),
            f"| stepwise cases converged at 0.99 within 10 rounds | 3 of 82 | "
            f"{step_conv} of {len(step)} |",
            f"| iterations to reach 0.95, RSTN / stepwise | 2.02 / 2.89 | "
            f"{np.mean([r['stop']['0.95']['iterations'] for r in base]):.2f} / "
            f"{np.mean([r['stop']['0.95']['iterations'] for r in step]):.2f} |",
            f"| RSTN accuracy at thr 0.95 → 0.99 | 83.93 → 84.50 | "
            f"{100 * np.mean([r['stop']['0.95']['dsc'] for r in base]):.2f} → "
            f"{100 * np.mean([r['stop']['0.99']['dsc'] for r in base]):.2f} |"]
    out += ["", "Oracles (AAAI short form: the **strong** oracle takes the ground truth for the "
                "crop and the saliency weights, one pass; the **weak** one crops the "
                "ground-truth box every round but weights with the previous prediction, "
                "and iterates):", "",
            "| setting | paper: no oracle | paper: strong | paper: weak | ours: no oracle | "
            "ours: strong | ours: weak |", "|---|---|---|---|---|---|---|"]
    for k, (none, strong, weak) in ORACLES.items():
        ours = ((_ms([r["stop"]["0.99"]["dsc"] for r in base]),
                 _ms([r.get("oracle") for r in base]), _ms([r.get("oracle_weak") for r in base]))
                if k == "with noisy fine-tuning" else ("—", "—", "—"))
        out.append(f"| {k} | {none:.2f} | {strong:.2f} | {weak:.2f} | " + " | ".join(ours) + " |")
    return out


def beside_papers(step: list, rstn: dict, main: str = "3x3",
                  equal_work: list | None = None) -> str:
    """The papers' tables with an "ours" column, from `report.collect` case rows.

    Args:
        step: the stepwise model's rows; rstn: {variant name ("3x3", "1x1", "5x5",
            "two-layer 3x3"): rows}; main: the variant of the comparisons; equal_work: rows of
            the stepwise nets trained for as long as RSTN (the I pipelines), or None.
    Returns:
        Markdown: "## The fixed-point model (MICCAI 2017)" and "## RSTN (CVPR 2018)".
    """
    if not step or main not in rstn:
        return ""
    return "\n".join(["## The fixed-point model (MICCAI 2017)", ""] + _miccai(step)
                     + ["", "## RSTN (CVPR 2018)", ""] + _cvpr(step, rstn, main, equal_work)) + "\n"
