"""The papers' tables from fold results: MICCAI Algorithm 1 table, CVPR Table 1, convergence,
paired comparison, joint vs stepwise coarse nets, oracles, and the boundary metrics (HD95, NSD)
beside DSC. `rstn report` prints them and writes the book's results page
(book/results_generated.md)."""
from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import numpy as np

from rstn_core.experiments.papers import beside_papers
from rstn_core.io import atomic_write_text
from rstn_core.metrics import format_summary, paired_comparison, summarize

__all__ = ["collect", "miccai_table", "rstn_table", "convergence_table", "comparison_table",
           "claim_table", "compare_runs", "fold_table", "surface_table", "report"]

ROUNDS = (1, 2, 3, 5, 10)


def collect(run_root, scale: str | None = None) -> dict:
    """{(scale, method, variant): [case rows with "fold" and "id"]} from every results.json."""
    out = defaultdict(list)
    for path in sorted(Path(run_root).glob("*/*/fold*/test/results.json")):
        res = json.loads(path.read_text())
        if scale and res["scale"] != scale:
            continue
        for row in res["cases"]:
            out[(res["scale"], res["method"], res.get("variant", ""))].append(
                dict(row, fold=res["fold"], seconds_per_case=res.get("seconds_per_case")))
    return dict(out)


def _row(name, values, iters=None):
    s = summarize(values)
    it = "–" if iters is None else (f"{np.mean(iters):.2f} ± {np.std(iters, ddof=1):.2f}"
                                    if len(iters) > 1 else f"{iters[0]}")
    return f"| {name} | {format_summary(s)} | {it} | {100 * s['max']:.2f} | {100 * s['min']:.2f} |"


HEAD = "| condition | mean DSC (%) | # iterations | max | min |\n|---|---|---|---|---|"


def miccai_table(rows: list, strict: bool = True) -> str:
    """MICCAI 2017 Table (Algorithm 1): coarse, after t rounds, d(t) > R, best, oracle."""
    T = len(rows[0]["after"])
    lines = [HEAD, _row("coarse (fused)", [r["coarse"] for r in rows])]
    for t in ROUNDS:
        if t <= T:
            lines.append(_row(f"after {t} iteration{'s' if t > 1 else ''}",
                              [r["after"][t - 1] for r in rows], [t]))
    op = ">" if strict else "≥"
    for R in ("0.90", "0.95", "0.99"):
        lines.append(_row(f"d(t) {op} {R}", [r["stop"][R]["dsc"] for r in rows],
                          [r["stop"][R]["iterations"] for r in rows]))
    lines.append(_row("best among all iterations", [r["stop"]["best"]["dsc"] for r in rows],
                      [r["stop"]["best"]["iterations"] for r in rows]))
    if "oracle_weak" in rows[0]:
        lines.append(_row("strong oracle (GT box and GT weights)", [r["oracle"] for r in rows]))
    elif "oracle" in rows[0]:                   # a one-shot method (unet3d) has no box oracle
        lines.append(_row("oracle bounding box", [r["oracle"] for r in rows]))
    if "oracle_weak" in rows[0]:
        lines.append(_row("weak oracle (GT box, predicted weights)",
                          [r["oracle_weak"] for r in rows]))
    return "\n".join(lines)


def _views_and_pp(rows) -> str:
    views = rows[0]["coarse_views"]
    lines = ["| coarse net | mean DSC (%) |", "|---|---|"]
    for v in views:
        lines.append(f"| {v} | {format_summary(summarize([r['coarse_views'][v] for r in rows]))} |")
    lines.append(f"| fused | {format_summary(summarize([r['coarse'] for r in rows]))} |")
    lines.append(f"| fused + large components | "
                 f"{format_summary(summarize([r['coarse_components'] for r in rows]))} |")
    lines.append(f"| fine (stop rule) + large components | "
                 f"{format_summary(summarize([r['fine_components'] for r in rows]))} |")
    return "\n".join(lines)


def rstn_table(groups: dict) -> str:
    """CVPR Table 1: one row per variant run (stop at thr 0.99 and 0.95)."""
    lines = ["| variant | mean DSC (%), thr 0.95 | thr 0.99 | max | min |", "|---|---|---|---|---|"]
    for name, rows in groups.items():
        v99 = [r["stop"]["0.99"]["dsc"] for r in rows]
        s = summarize(v99)
        lines.append(f"| {name} | {format_summary(summarize([r['stop']['0.95']['dsc'] for r in rows]))}"
                     f" | {format_summary(s)} | {100 * s['max']:.2f} | {100 * s['min']:.2f} |")
    return "\n".join(lines)


def convergence_table(groups: dict) -> str:
    """Mean d(t) after 1, 2, 3, 5, 10 rounds; rounds to reach 0.95 / 0.99; cases converged."""
    lines = ["| method | " + " | ".join(f"d({t})" for t in ROUNDS) +
             " | rounds to 0.95 | rounds to 0.99 | converged at 0.99 |",
             "|---|" + "---|" * (len(ROUNDS) + 3)]
    for name, rows in groups.items():
        T = len(rows[0]["d"])
        ds = [f"{np.mean([r['d'][t - 1] for r in rows]):.4f}" if t <= T else "–" for t in ROUNDS]
        conv = sum(any(x > 0.99 for x in r["d"]) for r in rows)
        lines.append(f"| {name} | " + " | ".join(ds) +
                     f" | {np.mean([r['stop']['0.95']['iterations'] for r in rows]):.2f}"
                     f" | {np.mean([r['stop']['0.99']['iterations'] for r in rows]):.2f}"
                     f" | {conv}/{len(rows)} |")
    return "\n".join(lines)


def comparison_table(a_rows, b_rows, a_name="RSTN (thr 0.99)", b_name="stepwise (d > 0.95)",
                     a_key="0.99", b_key="0.95", coarse_name="coarse J_C vs I_C") -> str:
    """Paired comparison on the same cases: mean gain ± std, wins/losses, extremes, p."""
    b_by = {(r["fold"], r["id"]): r for r in b_rows}
    pairs = [(r["stop"][a_key]["dsc"], b_by[(r["fold"], r["id"])]["stop"][b_key]["dsc"])
             for r in a_rows if (r["fold"], r["id"]) in b_by]
    if not pairs:
        return "(no common cases)"
    a, b = map(np.array, zip(*pairs))
    c = paired_comparison(a, b)
    ca = paired_comparison(np.array([r["coarse"] for r in a_rows if (r["fold"], r["id"]) in b_by]),
                           np.array([b_by[(r["fold"], r["id"])]["coarse"] for r in a_rows
                                     if (r["fold"], r["id"]) in b_by]))
    return "\n".join([
        "| comparison | n | mean gain ± std (points) | wins / losses | largest gain / loss | p |",
        "|---|---|---|---|---|---|",
        f"| {a_name} vs {b_name} | {c['n']} | {100 * c['mean_gain']:+.2f} ± {100 * c['std_gain']:.2f}"
        f" | {c['wins']} / {c['losses']} | {100 * c['largest_gain']:+.2f} / "
        f"{100 * c['largest_loss']:+.2f} | {c['p_value']:.3g} |",
        f"| {coarse_name} | {ca['n']} | {100 * ca['mean_gain']:+.2f} ± {100 * ca['std_gain']:.2f}"
        f" | {ca['wins']} / {ca['losses']} | {100 * ca['largest_gain']:+.2f} / "
        f"{100 * ca['largest_loss']:+.2f} | {ca['p_value']:.3g} |"])


def _run_rows(run) -> tuple[list, str]:
    """Case rows (with "fold") of every fold under one method's run folder, and its method."""
    paths = sorted(Path(run).glob("fold*/test/results.json"))
    if not paths:
        raise FileNotFoundError(f"no fold*/test/results.json under {run}; give a method's run "
                                "folder, e.g. runs/standard/rstn.")
    rows, methods = [], set()
    for path in paths:
        res = json.loads(path.read_text())
        methods.add(res["method"])
        rows += [dict(r, fold=res["fold"]) for r in res["cases"]]
    return rows, methods.pop()


def compare_runs(a_run, b_run, a_stop: str | None = None, b_stop: str | None = None) -> str:
    """The paired comparison of two runs on their common cases (`rstn compare A B`), e.g. RSTN
    against stepwise nets trained for as long (equal time). Each run stops with its method's
    rule unless told otherwise (stepwise: d > 0.95, MICCAI; RSTN: d > 0.99, CVPR)."""
    (a, ma), (b, mb) = _run_rows(a_run), _run_rows(b_run)
    rule = {"stepwise": "0.95", "rstn": "0.99", "unet3d": "0.99"}   # unet3d: one pass
    a_stop, b_stop = a_stop or rule[ma], b_stop or rule[mb]
    op = {"stepwise": ">", "rstn": ">"}          # both stop rules are strict (d(t) > thr)

    def name(run, m, stop):
        return f"{run} (one pass)" if m == "unet3d" else f"{run} (d {op[m]} {stop})"
    return comparison_table(a, b, a_name=name(a_run, ma, a_stop),
                            b_name=name(b_run, mb, b_stop), a_key=a_stop, b_key=b_stop,
                            coarse_name="their coarse nets (fused)")


def claim_table(run_root, scale: str) -> str:
    """The MICCAI claim measured fairly: fine stage (d(t) > 0.95) vs the fused coarse result,
    paired over the same cases, at equal iterations (test/) and at equal time
    (test_equal_time/: each fine net at its coarse net's training time)."""
    lines = ["| fine stage (d > 0.95) vs | training | n | mean gain ± std (points) | "
             "wins / losses | p (paired t) |", "|---|---|---|---|---|---|"]
    for sub, what in (("test", "equal iterations"), ("test_equal_time", "equal time")):
        rows = []
        for path in sorted(Path(run_root).glob(f"{scale}/stepwise/fold*/{sub}/results.json")):
            rows += json.loads(path.read_text())["cases"]
        if not rows:
            continue
        fine = np.array([r["stop"]["0.95"]["dsc"] for r in rows])
        for ref, key in (("fused coarse", "coarse"), ("fused coarse + components",
                                                      "coarse_components")):
            c = paired_comparison(fine, np.array([r[key] for r in rows]))
            lines.append(f"| {ref} | {what} | {c['n']} | {100 * c['mean_gain']:+.2f} ± "
                         f"{100 * c['std_gain']:.2f} | {c['wins']} / {c['losses']} | "
                         f"{c['p_value']:.3g} |")
    return "\n".join(lines) if len(lines) > 2 else ""


def _mean_std(values, scale=1.0, digits=2) -> str:
    v = [x for x in values if x is not None and np.isfinite(x)]
    if not v:
        return "–"
    text = format_summary(summarize(v), scale, digits)
    return text + (f" ({len(v)}/{len(values)})" if len(v) < len(values) else "")


def surface_table(groups: dict, keys: dict | None = None) -> str:
    """DSC with the boundary metrics beside it, per method and stop rule: HD95 (mm) and NSD at
    1 and 2 mm (%), mean ± std over the cases (papers' columns: DSC only). HD95 is left out
    of the mean where one mask is empty (infinite); the count then shows as (n/N).

    Args:
        groups: {name: case rows}; keys: {name: stop keys to show} (default: the method's
            rule, "0.95" for names starting with "stepwise", else "0.99").
    Returns:
        a Markdown table, or "" when no row carries surface metrics (results made before
        they were added: rerun `rstn test`).
    """
    lines = ["| method | stop rule | DSC (%) | HD95 (mm) | NSD 1 mm (%) | NSD 2 mm (%) |",
             "|---|---|---|---|---|---|"]
    for name, rows in groups.items():
        ks = (keys or {}).get(name) or (["0.95"] if name.lower().startswith("stepwise")
                                        else ["0.99"])
        for k in ks:
            stops = [r["stop"][k] for r in rows if k in r.get("stop", {})]
            if not stops or any("hd95" not in st for st in stops):
                continue
            rule = "best round" if k == "best" else f"d(t) > {k}"
            lines.append(f"| {name} | {rule} | "
                         f"{_mean_std([st['dsc'] for st in stops], 100)} | "
                         f"{_mean_std([st['hd95'] for st in stops])} | "
                         f"{_mean_std([st['nsd_1mm'] for st in stops], 100)} | "
                         f"{_mean_std([st['nsd_2mm'] for st in stops], 100)} |")
    return "\n".join(lines) if len(lines) > 2 else ""


def fold_table(res: dict) -> str:
    """The table of one fold's results.json (as `rstn test` prints it)."""
    rows = [dict(r, fold=res["fold"]) for r in res["cases"]]
    head = (f"{res['method']} · fold {res['fold']} · scale {res['scale']} · "
            f"{len(rows)} test cases · {res.get('seconds_per_case', 0):.1f} s per case")
    surf = surface_table({res["method"]: rows},
                         {res["method"]: ["0.90", "0.95", "0.99", "best"]})
    return head + "\n\n" + miccai_table(rows) + "\n\n" + \
        _views_and_pp(rows) + (f"\n\n{surf}" if surf else "")


def report(run_root="runs", scale: str | None = None, book_path=None,
           equal_work=None) -> str:
    """All tables from every fold found under `run_root`; optionally the book page too.

    equal_work: the run folder of stepwise nets trained for as long as RSTN (e.g.
    runs_long/standard/stepwise): RSTN is compared with them too, and they are the I nets of
    the papers' I/J table."""
    groups = collect(run_root, scale)
    ew_rows = _run_rows(equal_work)[0] if equal_work else None
    if not groups:
        return f"no results under {run_root}; run `rstn test --method ... --fold K` first."
    parts = []
    for sc in sorted({k[0] for k in groups}):
        step = groups.get((sc, "stepwise", ""), [])
        rstns = {f"RSTN {k[2]}".strip(): v for k, v in groups.items()
                 if k[0] == sc and k[1] == "rstn"}
        folds = sorted({r["fold"] for rows in groups.values() for r in rows})
        parts.append(f"## Scale `{sc}` on the phantom — folds {folds}\n")
        if step:
            parts.append(f"### Stepwise (MICCAI Algorithm 1), {len(step)} cases\n\n"
                         + miccai_table(step) + "\n\n" + _views_and_pp(step) + "\n")
            claim = claim_table(run_root, sc)
            if claim:
                parts.append("### Does the fine stage beat the coarse one?\n\n" + claim + "\n")
        for name, rows in rstns.items():
            parts.append(f"### {name} (CVPR Algorithm 2), {len(rows)} cases\n\n"
                         + miccai_table(rows, strict=True) + "\n\n" + _views_and_pp(rows) + "\n")
        peer = groups.get((sc, "unet3d", ""), [])     # the 3D peer (experiments/unet3d.py)
        if peer:
            parts.append(f"### 3D U-Net peer (MONAI, one pass), {len(peer)} cases\n\n"
                         + miccai_table(peer) + "\n")
            others = [(f"{k} (d > 0.99)", v, "0.99") for k, v in rstns.items()]
            if step:
                others.insert(0, ("stepwise (d > 0.95)", step, "0.95"))
            for name, rows, key in others:
                parts.append(f"### Paired comparison: 3D U-Net vs {name}\n\n" + comparison_table(
                    peer, rows, a_name="3D U-Net", b_name=name, a_key="0.99", b_key=key,
                    coarse_name="3D U-Net vs their coarse nets (fused)") + "\n")
        surf = surface_table({**({"stepwise": step} if step else {}), **rstns,
                              **({"3D U-Net": peer} if peer else {})})
        if surf:
            parts.append("### Boundary metrics beside DSC (HD95, NSD; not in the papers)\n\n"
                         + surf + "\n")
        if rstns:
            parts.append("### CVPR Table 1 (variants run)\n\n" + rstn_table(
                {**({"stepwise baseline": step} if step else {}), **rstns}) + "\n")
            conv = {**({"stepwise": step} if step else {}), **rstns}
            parts.append("### Convergence\n\n" + convergence_table(conv) + "\n")
            if step:
                for name, rows in rstns.items():
                    parts.append(f"### Paired comparison: {name} vs stepwise\n\n"
                                 + comparison_table(rows, step, a_name=name) + "\n")
            if ew_rows:
                for name, rows in rstns.items():
                    parts.append(f"### Paired comparison at equal work: {name} vs stepwise "
                                 "trained as long\n\n" + comparison_table(
                                     rows, ew_rows, a_name=name,
                                     b_name="stepwise, equal work (d > 0.95)",
                                     coarse_name="coarse J_C vs I_C (equal work)") + "\n")
        if step and rstns:
            by_variant = {k[2]: v for k, v in groups.items() if k[0] == sc and k[1] == "rstn"}
            main = "3x3" if "3x3" in by_variant else next(iter(by_variant))
            parts.append(beside_papers(step, by_variant, main, ew_rows))
    text = "\n".join(parts)
    if book_path:
        atomic_write_text(book_path, "<!-- written by `rstn report`; do not edit -->\n\n" + text)
    return text
