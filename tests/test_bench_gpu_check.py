"""rstn_core.bench.gpu_check: the prepared GPU check's code path, proved on the CPU (--dry).

The dry run measures nothing worth reading; it proves that every part runs, that its result
lands in the JSON and the Markdown table, and that one failing or overrunning part does not
lose the others. Budgets are scaled up (--total-budget) so a busy CI machine still finishes.
"""
import json

import pytest
import torch

from rstn_core.bench import bench_main, gpu_check
from rstn_core.bench.gpu_check import PARTS, run_gpu_check

DRY_TOTAL = 4 * gpu_check.DRY_TOTAL_BUDGET_S            # a loaded 2-core runner: 4x the time


@pytest.fixture(scope="module")
def dry(tmp_path_factory):
    out = tmp_path_factory.mktemp("gpu_check")
    threads = torch.get_num_threads()
    try:
        code = bench_main(["--gpu-check", "--dry", "--threads", "1", "--out", str(out),
                           "--total-budget", str(DRY_TOTAL)])
    finally:
        torch.set_num_threads(threads)
    assert code == 0
    return json.loads((out / "gpu_check.json").read_text()), (out / "gpu_check.md").read_text()


def test_dry_json_keys(dry):
    res, _ = dry
    assert {"meta", "parts", "errors", "published", "seconds_total"} <= set(res)
    meta = res["meta"]
    assert meta["dry"] is True and meta["device"] == "cpu" and meta["kind"] == "gpu_check"
    assert set(meta["budgets_s"]) == set(PARTS)
    assert set(res["parts"]) == set(PARTS)
    for name, part in res["parts"].items():
        assert part["status"] == "ok", (name, part.get("error"))
        assert part["seconds"] >= 0 and part["budget_given_s"] > 0
    assert res["errors"] == {}
    assert res["published"]["note"].startswith("published figures")


def test_dry_part_results(dry):
    parts = {k: v["result"] for k, v in dry[0]["parts"].items()}
    rows = parts["fcn_precision"]["rows"]
    assert {r["precision"] for r in rows} == {"fp32", "fp16", "bf16"}
    timed = [r for r in rows if "seconds" in r]
    assert {r["pass"] for r in timed} == {"forward", "forward+backward"}
    assert all(r["seconds"] > 0 and r["flops"] > 0 for r in timed)
    fwd = next(r for r in timed if r["pass"] == "forward")
    bwd = next(r for r in timed if r["pass"] == "forward+backward" and r["batch"] == fwd["batch"])
    assert 2 < bwd["flops"] / fwd["flops"] < 4                   # backward ~ 2 forwards
    mem = parts["rstn_memory"]["rows"]
    assert [(r["size"], r["T"]) for r in mem] == [(64, 1), (64, 2), (32, 1), (32, 2)]
    assert all(r["iterations_per_s"] > 0 for r in mem)
    alg = parts["algorithm2"]
    assert alg["volume_shape"] == [48, 48, 48] and alg["seconds"] > 0 and alg["rounds"] >= 1
    proj = parts["training_projection"]
    assert [r["method"] for r in proj["rows"]] == ["stepwise", "rstn"]
    assert all(r["projected_fold_hours"] > 0 for r in proj["rows"])
    assert parts["notebook"]["device_line"].startswith("device=cpu")
    tr = parts["torchrun"]
    assert tr["backend"] == "gloo" and tr["world_size"] == 1 and tr["all_reduce_ok"]


def test_dry_markdown(dry):
    _, md = dry
    assert md.startswith("### GPU check on") and "dry run" in md
    assert "| part | status | s | budget s | result |" in md
    for name in PARTS:
        assert f"| {name} | ok |" in md
    for header in ("| precision | batch | pass |", "| size | T | it/s |",
                   "| method | iterations timed |", "published (not ours)"):
        assert header in md


def test_a_failing_part_does_not_lose_the_others(tmp_path, monkeypatch):
    def broken(*args):
        raise RuntimeError("simulated failure\nsecond line")
    monkeypatch.setattr(gpu_check, "part_fcn_precision", broken)
    res = run_gpu_check(tmp_path, dry=True, parts=["fcn_precision", "torchrun"],
                        total_budget_s=DRY_TOTAL)
    assert res["parts"]["fcn_precision"]["status"] == "error"
    assert res["errors"]["fcn_precision"] == "RuntimeError: simulated failure"
    assert res["parts"]["torchrun"]["status"] == "ok"
    saved = json.loads((tmp_path / "gpu_check.json").read_text())
    assert saved["errors"] == res["errors"]
    assert "| fcn_precision | error |" in (tmp_path / "gpu_check.md").read_text()


def test_an_overrunning_part_is_interrupted(tmp_path, monkeypatch):
    import time

    def stuck(*args):
        time.sleep(30)
    monkeypatch.setattr(gpu_check, "part_rstn_memory", stuck)
    monkeypatch.setattr(gpu_check, "GRACE_S", 0.2)
    monkeypatch.setitem(gpu_check.DRY_BUDGETS, "rstn_memory", 1.5)
    t0 = time.perf_counter()
    res = run_gpu_check(tmp_path, dry=True, parts=["rstn_memory"])
    assert time.perf_counter() - t0 < 10
    assert res["parts"]["rstn_memory"]["status"] == "timeout"


def test_total_budget_skips_the_rest(tmp_path):
    res = run_gpu_check(tmp_path, dry=True, parts=["torchrun"], total_budget_s=0.5)
    assert res["parts"]["torchrun"]["status"] == "skipped"
    assert "total budget" in res["errors"]["torchrun"]


@pytest.mark.parametrize("argv, message", [
    (["--dry"], "--dry only goes with --gpu-check"),
    (["--gpu-check", "--dry", "--total-budget", "0"], "--total-budget 0"),
])
def test_bad_gpu_check_arguments(argv, message, capsys, tmp_path):
    assert bench_main(argv + ["--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("rstn bench: error:") and message in err[0]


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_gpu_check_without_gpu_is_one_line_error(capsys, tmp_path):
    assert bench_main(["--gpu-check", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--dry" in err[0]
