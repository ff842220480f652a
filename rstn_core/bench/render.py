"""Markdown tables of benchmark results: the book's generated Performance page and the
GPU check's report. Published figures are always labelled as such, never as ours."""
from __future__ import annotations

from rstn_core.bench.published import AUTHORS_CPU_RSTN_ITERATION_96, PUBLISHED

__all__ = ["render_gpu_check", "render_markdown", "render_result", "table"]


def _f(v, fmt=None, none="—"):
    """A number for people: 3 significant digits, thousands with separators (never 1e+03)."""
    if v is None:
        return none
    if fmt is not None:
        return fmt.format(v)
    return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.3g}"


_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def _sci(v) -> str:
    """A small number for people: "7.9 × 10⁻⁸" (0 stays "0")."""
    if not v:
        return "0"
    mantissa, exponent = f"{v:.1e}".split("e")
    return f"{mantissa} × 10{str(int(exponent)).translate(_SUPERSCRIPT)}"


def _pct(v):
    return "—" if v is None else f"{100 * v:.1f}%"


def _rng(t: dict, per: int = 1) -> str:
    """'median (min–max)' of a timing dict, divided by `per` (e.g. the batch)."""
    return f"{t['median'] / per:.3g} ({t['min'] / per:.3g}–{t['max'] / per:.3g})"


def _x(v, r) -> str:
    return f"{v:.2f}× ({r[0]:.2f}–{r[1]:.2f})"


def _g(v):
    return "—" if v is None else f"{v / 1e9:.3g}"


def table(header, rows) -> str:
    """A Markdown table: one header row, one row per list (cells formatted with str)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def render_result(res: dict) -> str:
    """The markdown tables of one benchmark result (the dict `bench_main` writes as JSON)."""
    meta = res["meta"]
    peak = meta.get("peak_flops")
    opts = [name for key, name in (("compile", "torch.compile"),
                                   ("channels_last", "channels-last"),
                                   ("activation_checkpointing", "activation checkpointing"))
            if meta.get(key)]
    head = (f"### {meta['scale']} scale on {meta['device_name']} ({meta['device']})"
            + (f" — {meta['label']}" if meta.get("label") else "")
            + (" — quick" if meta.get("quick") else "")
            + (f" — {', '.join(opts)}" if opts else ""))
    info = meta.get("peak_info", {})
    parts = [head, "",
             f"{meta['date']}; torch {meta['torch']}, torch threads: {meta['threads']}, "
             f"load average {meta['load_before']} before / {meta['load_after']} after; "
             f"peak {_g(peak)} GFLOP/s ({info.get('formula', '')}"
             + (f": {info.get('cores')} cores x {_f(info.get('ghz'))} GHz x "
                f"{info.get('flop_per_cycle_per_core')} ({info.get('isa')})"
                if meta["device"] == "cpu" and "cores" in info else "") + ").", ""]
    fw = res.get("forward")
    if fw:
        first = any(r.get("first_call_seconds") is not None for r in fw["rows"])
        parts += [f"**FCN-8s inference** at {fw['size'][0]}×{fw['size'][1]} (width "
                  f"{fw['width']:g}, fc6 {fw['fc_kernel']}×{fw['fc_kernel']}, "
                  f"BN {'on' if fw['batch_norm'] else 'off'}):", "",
                  table(["batch", "s per batch", "slices/s", "GFLOP per slice", "GFLOP/s",
                          "of peak"] + (["first call s (compiles)"] if first else []),
                         [[r["batch"], _f(r["seconds"]), _f(r["slices_per_s"]),
                           _g(r["flops_per_slice"]), _g(r["flop_per_s"]),
                           _pct(r["peak_fraction"])]
                          + ([_f(r.get("first_call_seconds"))] if first else [])
                          for r in fw["rows"]]), ""]
    opt = res.get("options")
    if opt:
        parts += [f"**Inference options** (the scale's FCN-8s, {opt['size'][0]}×{opt['size'][1]}, "
                  f"batch {opt['batch']}, repeats interleaved; median and range):", "",
                  table(["option", "s per batch", "speed-up", "max |Δp| vs as built"],
                        [[r["option"], _rng(r["timing"]), f"{r['speedup']:.2f}×",
                          f"{r['max_abs_diff']:.1e}"] for r in opt["rows"]]), ""]
    full = res.get("full_width")
    if full:
        parts += ["**Full-width FCN-8s** (VGG16 width, 7×7 fc6, no BN) beside the reference "
                  "model of the authors' architecture (pad 100, ceil-mode pools, un-padded "
                  "7×7 fc6, crops 5/9/31), both measured in this run: the same input, batch "
                  "and threads, repeats interleaved; seconds per slice, median (range):", "",
                  table(["input", "batch", "ours: s per slice", "authors': s per slice",
                         "speed-up", "ours: GFLOP per slice", "authors': GFLOP per slice",
                         "ours: GFLOP/s", "authors': GFLOP/s", "ours: of peak"],
                        [[f"{r['size']}×{r['size']}", r["batch"],
                          _rng(r["timing"], r["batch"]), _rng(r["authors_timing"], r["batch"]),
                          _x(r["speedup"], r["speedup_range"]), _g(r["flops_per_slice"]),
                          _g(r["authors_flops_per_slice"]), _g(r["flop_per_s"]),
                          _g(r["authors_flop_per_s"]), _pct(r["peak_fraction"])]
                         for r in full]), ""]
    alg = res.get("algorithms")
    if alg:
        rows = []
        for name, label in (("stepwise", "Algorithm 1 (stepwise)"), ("rstn", "Algorithm 2 (RSTN)")):
            a = alg.get(name)
            if not a:
                continue
            rows.append([label, a["rounds"], f"{a['windows_coarse']} + "
                         f"{sum(a['windows_fine_per_round'])}", _f(a["seconds"]),
                         _f(a["net_seconds_coarse"]), _f(a["net_seconds_fine_per_round"]),
                         _f(a["other_seconds"]), "yes" if a["oracle_ok"] else "**no**",
                         PUBLISHED[name]["note"]])
        parts += [f"**One volume** ({'×'.join(map(str, meta['volume_shape']))}) through "
                  "Algorithm 1 (R = None) and 2 (thr = None), oracle nets (every round "
                  "crops the label's boxes):", "",
                  table(["algorithm", "rounds", "windows (coarse + fine)", "total s",
                          "coarse nets s", "fine nets s per round", "other s", "oracle ok",
                          "published (GPU, 512×512×L)"], rows), ""]
    bt = res.get("batched")
    if bt:
        r1, r2 = bt["rows"][0], bt["rows"][-1]
        parts += [f"**Batched inference** (`coarse_probability`, {bt['view']} view, "
                  f"{bt['windows']} windows of {bt['slice'][0]}×{bt['slice'][1]}):", "",
                  table([f"batch {r1['batch']}: s", f"batch {r2['batch']}: s", "speed-up",
                          "max \\|Δp\\|", "same probabilities"],
                         [[_f(r1["seconds"]), _f(r2["seconds"]), f"{bt['speedup']:.2f}×",
                           _sci(bt['max_abs_diff']), "yes" if bt["allclose"] else "**no**"]]),
                  ""]
    tr = res.get("training")
    if tr:
        rows = []
        for r in tr:
            if "error" in r:
                rows.append([r["T"]] + ["—"] * 7 + [r["error"]])
                continue
            rows.append([r["T"], r["batch"], _f(r["iterations_per_s"]),
                         _f(r["seconds_per_iteration"]), f"{r['memory_peak_mb']:.0f}",
                         f"{r['memory_delta_mb']:.0f}", _g(r["flops_per_iteration"]),
                         _pct(r.get("peak_fraction")), ""])
        ok = [r for r in tr if "error" not in r]
        sl = ok[0]["slice"] if ok else ["?", "?"]
        kind = ok[0]["memory_kind"] if ok else ""
        opt = ok[0]["optimizer"] if ok else ""
        parts += [f"**RSTN training** (forward + backward + {opt} step, full "
                  f"{sl[0]}×{sl[1]} windows, ground-truth crops; memory: {kind}; the "
                  f"published, not measured here: the authors' port ~{AUTHORS_CPU_RSTN_ITERATION_96} s "
                  "per iteration at 96×96 on a 2-core CPU):", "",
                  table(["T", "batch", "it/s", "s per it", "peak MB", "Δ MB", "GFLOP per it",
                          "of peak", "note"], rows), ""]
    sc = res.get("scaling")
    if sc:
        parts += [f"**Algorithm 2 per volume against its size** (the scale's nets, oracle, "
                  f"T = {sc['T']} rounds, batch {sc['batch_size']}; repeats interleaved over "
                  f"the sizes; fitted exponent of s ∝ voxels^a: **a = {sc['exponent']:.2f}**):",
                  "", table(["volume", "voxels", "s per volume", "fine windows per round"],
                            [["×".join(map(str, r["shape"])), f"{r['voxels']:,}",
                              _rng(r["timing"]), r["windows_fine_per_round"][0]
                              if r["windows_fine_per_round"] else 0]
                             for r in sc["rows"]]), ""]
    sl = res.get("slab")
    if sl:
        parts += [f"**A full-width {'×'.join(map(str, sl['shape']))} slab through Algorithm 2** "
                  f"(views {', '.join(sl['views'])}, T = {sl['T']}, batch {sl['batch_size']}, "
                  "oracle; the same pipeline, batch and threads, only the FCN-8s differs; "
                  "repeats interleaved):", "",
                  table(["net", "s per slab", "coarse nets s", "fine nets s"],
                        [[name, _rng(sl[k]["timing"]), _f(sl[k]["net_seconds_coarse"]),
                          _f(sl[k]["net_seconds_fine"])]
                         for k, name in (("ours", "our FCN-8s"),
                                         ("authors", "the authors' architecture"))]), "",
                  f"Ours is {_x(sl['speedup'], sl['speedup_range'])} faster.", ""]
    jobs = meta.get("running")
    if jobs is not None:
        parts += ["Other processes on the CPU when the run started: "
                  + ("; ".join(f"{j['cpu']:.2f} core(s): `{_short_command(j['command'])[:70]}`"
                               for j in jobs)
                     if jobs else "none") + ".", ""]
    parts.append(f"Total benchmark time {res.get('seconds_total', 0):.0f} s.")
    return "\n".join(parts)


def _short_command(command: str) -> str:
    """A process's command line without the machine's paths: every absolute path becomes its
    last part (``/root/.pyenv/.../python`` -> ``python``), so pages show no machine paths."""
    return " ".join(tok.rsplit("/", 1)[-1] if tok.startswith("/") else tok
                    for tok in command.split())


def render_markdown(results: list[dict]) -> str:
    """The book's generated Performance tables for any number of results (none: a note)."""
    if not results:
        return ("No benchmark has been recorded yet: run `rstn bench --scale standard --out "
                "runs/bench/standard_cpu.json --markdown book/performance_generated.md` "
                "(see benchmarks/README.md), which overwrites this file with the tables.\n")
    head = ("<!-- generated by `rstn bench ... --markdown` / `rstn bench --render`; "
            "do not edit by hand -->\n\n")
    return head + "\n\n".join(render_result(r) for r in results) + "\n"


# ---------------------------------------------------------------------------------------------
# The GPU check (rstn bench --gpu-check)
# ---------------------------------------------------------------------------------------------
def _headline(name: str, r: dict) -> str:
    """One line per part for the summary table."""
    if name == "fcn_precision":
        ok = [x for x in r["rows"] if x.get("pass") == "forward+backward" and "seconds" in x]
        best = max(ok, key=lambda x: x["tflop_per_s"] or 0, default=None)
        return (f"best fwd+bwd {best['tflop_per_s']:.1f} TFLOP/s ({best['precision']}, batch "
                f"{best['batch']}, {_pct(best['peak_fraction'])} of peak)" if best else "—")
    if name == "rstn_memory":
        ok = [x for x in r["rows"] if "iterations_per_s" in x]
        big = max(ok, key=lambda x: (x["size"], x["T"]), default=None)
        if not big:
            return "—"
        mem = (f", peak {big['memory_peak_mb']:.0f} MB" if big["memory_peak_mb"] is not None
               else "")
        return f"{big['size']} px, T = {big['T']}: {big['iterations_per_s']:.2f} it/s{mem}"
    if name == "algorithm2":
        return (f"{'×'.join(map(str, r['volume_shape']))}: {r['seconds']:.1f} s "
                f"({r['rounds']} round(s))")
    if name == "training_projection":
        ok = [x for x in r["rows"] if "projected_fold_hours" in x]
        return "; ".join(f"{x['method']} {x['seconds_per_iteration'] * 1e3:.0f} ms/it, "
                         f"fold ~{x['projected_fold_hours']:.1f} h" for x in ok) or "—"
    if name == "notebook":
        return f"{r['notebook']} in {r['seconds']:.0f} s on {r['device']}"
    if name == "torchrun":
        return (f"{r['backend']}, world {r['world_size']}, all-reduce "
                f"{'ok' if r['all_reduce_ok'] else '**wrong**'}, {r['seconds']:.0f} s")
    return ""


def _gpu_part_tables(name: str, r: dict) -> list[str]:
    if name == "fcn_precision":
        rows = []
        for x in r["rows"]:
            if "seconds" not in x:
                rows.append([x["precision"], x["batch"], x.get("pass", "—")] + ["—"] * 4
                            + [x.get("skipped") or x.get("error", "")])
                continue
            rows.append([x["precision"], x["batch"], x["pass"], _f(x["seconds"]),
                         _f(x["tflop_per_s"]), _f(x["peak_tflop_per_s"]),
                         _pct(x["peak_fraction"]), x["peak_source"]])
        return [f"**{r['net']}** at {r['size']}×{r['size']} (TF32 for fp32 convolutions: "
                f"{'on' if r['tf32']['cudnn_allow_tf32'] else 'off'}):", "",
                table(["precision", "batch", "pass", "s", "TFLOP/s", "peak TFLOP/s",
                       "of peak", "peak from / note"], rows), ""]
    if name == "rstn_memory":
        rows = [[x["size"], x["T"]] + (
            [_f(x["iterations_per_s"]), _f(x["seconds_per_iteration"]),
             _f(x["memory_peak_mb"], "{:.0f}"), ""] if "iterations_per_s" in x
            else ["—"] * 3 + [x.get("skipped") or x.get("error", "")]) for x in r["rows"]]
        return [f"**RSTN training** ({r['config']} config, batch {r['batch']}, "
                f"{r['optimizer']}; label: {r['label']}; memory: {r['memory_kind']}):", "",
                table(["size", "T", "it/s", "s per it", "peak MB", "note"], rows), ""]
    if name == "algorithm2":
        pub = r["published"]
        return [f"**Algorithm 2** on one {'×'.join(map(str, r['volume_shape']))} phantom "
                f"volume (width {r['width']:g}, thr {r['thr']}, T = {r['T']}, batch "
                f"{r['batch_size']}, {r['nets']}; phantom made in {r['phantom_seconds']:.1f} s):",
                "", table(["total s", "coarse nets s", "s per whole-slice round",
                           "rounds (with windows)", "fine windows per round",
                           "coarse + 5.22 rounds s", "published (not ours)"],
                          [[_f(r["seconds"]), _f(r["coarse_net_seconds"]),
                            _f(r["seconds_per_round_whole_slices"]),
                            f"{r['rounds']} ({r['rounds_with_windows']})",
                            ", ".join(map(str, r["windows_fine_per_round"])),
                            _f(r["projected_seconds_at_published_rounds"]),
                            f"{pub['gpu']}: {pub['note']}"]]), ""]
    if name == "training_projection":
        rows = [[x["method"]] + (
            [x["iterations_timed"], _f(x["seconds_per_iteration"] * 1e3),
             x["iterations_per_fold"], _f(x["projected_fold_hours"]), x["fold_iterations"]]
            if "seconds_per_iteration" in x else ["—"] * 4 + [x.get("skipped", "")])
            for x in r["rows"]]
        note = f" — {r['note']}" if r.get("note") else ""
        both = r.get("projected_rstn_fold_hours_with_stepwise_start")
        return [f"**Training projection** at scale {r['scale']}, {r['size']} px, batch "
                f"{r['batch']}, width {r['width']:g} ({r['what']}){note}:", "",
                table(["method", "iterations timed", "ms per it", "iterations per fold",
                       "projected fold h", "fold iterations"], rows), ""] + (
            [f"RSTN fold including its stepwise start: ~{both:.1f} h.", ""] if both else [])
    if name == "notebook":
        return [f"**Notebook**: `{r['notebook']}` with device={r['device']} in "
                f"{r['seconds']:.0f} s; it printed: `{r.get('device_line')}`.", ""]
    if name == "torchrun":
        return [f"**torchrun**: backend {r['backend']}, world size {r['world_size']}, "
                f"{r['device_name']}; all-reduce sum {r['all_reduce_sum']:g} "
                f"({'ok' if r['all_reduce_ok'] else 'wrong'}), one DDP step "
                f"(loss {r['ddp_step_loss']:.4g}); {r['seconds']:.0f} s with start-up.", ""]
    return []


def render_gpu_check(res: dict) -> str:
    """The Markdown report of one GPU check (`rstn bench --gpu-check`): a summary table of
    the parts (status, seconds, budget, headline), then one table per part that ran.

    Args:
        res: the dict `run_gpu_check` writes as gpu_check.json.
    Returns:
        Markdown text.
    """
    meta = res["meta"]
    head = (f"### GPU check on {meta['device_name']} ({meta['device']})"
            + (" — dry run: CPU, tiny sizes; the numbers mean nothing" if meta["dry"] else ""))
    parts = [head, "",
             f"{meta['date']}; torch {meta['torch']}, CUDA {meta['cuda']}, cuDNN "
             f"{meta['cudnn']}; GPU table entry: {meta['gpu_table_entry']}; total "
             f"{res.get('seconds_total', 0):.0f} s of a {meta['total_budget_s']:.0f} s budget.",
             ""]
    rows = []
    for name, e in res["parts"].items():
        line = e.get("error", "")
        if e.get("status") == "ok":
            try:
                line = _headline(name, e["result"])
            except (KeyError, TypeError, ValueError) as err:
                line = f"(no headline: {err})"
        rows.append([name, e["status"], _f(e.get("seconds")), f"{e['budget_given_s']:.0f}",
                     line])
    parts += [table(["part", "status", "s", "budget s", "result"], rows), ""]
    for name, e in res["parts"].items():
        if e.get("status") == "ok":
            try:
                parts += _gpu_part_tables(name, e["result"])
            except (KeyError, TypeError, ValueError) as err:
                parts += [f"**{name}**: cannot render ({err}).", ""]
    parts.append("Published figures in the tables are the papers' (their GPUs), never ours.")
    return "\n".join(parts) + "\n"
