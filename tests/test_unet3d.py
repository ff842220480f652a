"""experiments/unet3d.py: the 3D peer trains and tests a fold through `rstn`, writes results.json
in the 2D methods' format, `rstn report` lists it, and a missing MONAI is one line."""
import json
import shutil
import sys

import numpy as np
import pytest
import torch
from monai.inferers import sliding_window_inference

from rstn_core.config import get_config
from rstn_core.errors import ConfigError
from rstn_core.experiments import unet3d
from rstn_core.experiments.pipeline import train_fold
from rstn_core.experiments.report import compare_runs


@pytest.fixture
def data(tmp_path, smoke_dataset):
    root = tmp_path / "data"                    # fold_cases writes folds.json beside the data
    shutil.copytree(smoke_dataset, root)
    return root


def test_smoke_fold_writes_the_shared_results_format_and_the_report_lists_it(
        tmp_path, data, run_rstn):
    runs = tmp_path / "runs"
    common = ["--fold", 0, "--scale", "smoke", "--data", data, "--runs", runs, "--device", "cpu",
              "--quiet"]
    code, err, out = run_rstn("train", "--method", "unet3d", *common)
    assert code == 0, err
    folder = runs / "smoke" / "unet3d" / "fold0"
    assert (folder / "checkpoint_final.pt").is_file() and (folder / "unet3d.json").is_file()
    assert "unet3d: 6 it" in out
    code, err, out = run_rstn("train", "--method", "unet3d", *common)    # finished: skipped
    assert code == 0 and "already trained" in out
    code, err, out = run_rstn("test", "--method", "unet3d", *common)
    assert code == 0, err
    res = json.loads((folder / "test" / "results.json").read_text())
    assert res["method"] == "unet3d" and res["fold"] == 0 and res["seconds_per_case"] > 0
    assert res["cost"]["params"] > 0 and res["cost"]["flops_per_volume"] > 0
    for row in res["cases"]:
        assert row["after"] == [row["coarse"]] and row["d"] == [1.0]
        assert {k: v["dsc"] for k, v in row["stop"].items()} == \
            {k: row["coarse"] for k in ("0.90", "0.95", "0.99", "best")}
        assert {"hd95", "nsd_1mm", "nsd_2mm"} <= set(row["stop"]["0.99"])
    assert (folder / "test" / "probs" / f"{res['cases'][0]['id']}.npz").is_file()
    code, err, out = run_rstn("report", "--runs", runs, "--book", tmp_path / "page.md")
    assert code == 0, err
    assert "3D U-Net peer" in out and "| 3D U-Net |" in out     # its table and boundary metrics
    assert "one pass" in compare_runs(folder.parent, folder.parent)


def test_without_monai_train_and_test_are_one_line_naming_the_extra(tmp_path, data, run_rstn,
                                                                     monkeypatch):
    for name in ("monai", "monai.inferers", "monai.losses", "monai.networks.nets"):
        monkeypatch.setitem(sys.modules, name, None)          # `import monai` fails
    runs = tmp_path / "runs"
    for verb in ("train", "test"):
        code, err, _ = run_rstn(verb, "--method", "unet3d", "--fold", 0, "--scale", "smoke",
                                "--data", data, "--runs", runs, "--device", "cpu", "--quiet")
        assert code == 2 and len(err) == 1 and '.[peer]' in err[0], err
    assert not (runs / "smoke" / "unet3d").exists()           # refused before writing


def test_the_2d_pipeline_points_the_peer_to_its_module():
    with pytest.raises(ConfigError, match="train_unet3d"):
        train_fold(get_config("smoke"), "unet3d", 0)


def test_a_one_shot_row_has_every_stop_rule_at_its_one_pass():
    label = np.zeros((12, 12, 6), bool)
    label[3:8, 3:8, 2:4] = True
    pred = label.copy()
    pred[3, 3:8, 2:4] = False
    row = unet3d.case_row(pred, label, spacing=(1.0, 1.0, 2.0))
    assert row["after"] == [row["coarse"]] and 0 < row["coarse"] < 1 and row["d"] == [1.0]
    assert all(v["iterations"] == 1 and v["dsc"] == row["coarse"] for v in row["stop"].values())
    assert row["stop"]["0.95"]["nsd_2mm"] == 1.0


def test_cost_counts_the_windows_that_sliding_window_inference_runs():
    s = unet3d.SETTINGS["smoke"]
    shape = (40, 70, 20)
    seen = []

    def net(x):
        seen.append(x.shape[0])
        return torch.zeros(x.shape[0], 2, *x.shape[2:])
    sliding_window_inference(torch.zeros(1, 1, *shape), s.patch, 1, net, overlap=s.overlap)
    cost = unet3d.count_cost(s, shape)
    assert cost["windows"] == sum(seen)
    assert cost["params"] == sum(p.numel() for p in unet3d.build_unet3d(s).parameters())
    assert cost["flops_per_volume"] == cost["flops_per_patch"] * cost["windows"] > 0


def test_fair_budget_and_settings_are_checked():
    stats = {"axial_coarse": {"seconds": 100.0}, "axial_fine": {"seconds": 50.5}}
    assert unet3d.fair_iterations(stats, 0.5) == 301
    with pytest.raises(ValueError, match="> 0"):
        unet3d.fair_iterations(stats, 0.0)
    with pytest.raises(ConfigError, match="multiple of 4"):
        unet3d.UNet3DSettings(channels=(4, 8, 16), strides=(2, 2), patch=(32, 30, 16))
