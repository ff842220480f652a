"""The `rstn` command as a user meets it: one-line errors, and kill -9 + --resume."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from rstn_core.cli import main
from rstn_core.config import Config, get_config

ROOT = Path(__file__).resolve().parents[1]


def _err(capsys, argv):
    code = main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    return code, err


@pytest.mark.parametrize("argv, needle", [
    (["config", "--set", "train.nope=1"], "unknown key 'train.nope'"),
    (["config", "--set", "zoom"], "expected KEY=VALUE"),
    (["config", "--config", "no/such.json"], "config file no/such.json not found"),
    (["test", "--method", "stepwise", "--fold", "0", "--data", "no/such/dir"],
     "data root no/such/dir not found"),
    (["folds", "--notebook", "no/such.ipynb", "--folds", "0"], "notebook no/such.ipynb not found"),
    (["figures", "--runs", "no/such/runs", "--out", "no/such/runs/fig"],
     "no fold under no/such/runs/standard has both stepwise and rstn test results"),
])
def test_bad_input_gives_one_line_and_exit_2(capsys, argv, needle):
    code, err = _err(capsys, argv)
    assert code == 2
    assert len(err) == 1 and err[0].startswith("rstn: error:") and needle in err[0], err


def test_config_round_trip_json_and_yaml(tmp_path):
    cfg = get_config("standard", **{"train.zoom": 1, "rstn.layers": 2, "seed": 7})
    for name in ("c.json", "c.yaml"):
        (cfg.to_json if name.endswith("json") else cfg.to_yaml)(tmp_path / name)
        back = Config.load(tmp_path / name)
        assert back == cfg and back.train.zoom == 1 and back.rstn.init_scale == (1.0, 1.0, 1.0)
    assert get_config("paper").model.width == 1.0 and get_config("paper").train.zoom == 1
    with pytest.raises(ValueError, match="unknown scale"):
        get_config("huge")


def _train_cmd(runs, iters=40):
    return [sys.executable, "-m", "rstn_core.cli", "train", "--method", "stepwise", "--fold", "0",
            "--scale", "smoke", "--view", "axial", "--runs", str(runs), "--quiet",
            "--set", f"train.coarse_iterations={iters}", "--set", "train.fine_iterations=2",
            "--set", "train.checkpoint_every=5", "--set", "train.threads=1"]


@pytest.mark.slow
def test_kill_9_then_resume_equals_the_uninterrupted_run(tmp_path):
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    subprocess.run(_train_cmd(tmp_path / "full"), cwd=ROOT, env=env, check=True)
    proc = subprocess.Popen(_train_cmd(tmp_path / "cut"), cwd=ROOT, env=env)
    latest = tmp_path / "cut/smoke/stepwise/fold0/axial_coarse/checkpoint_latest.pt"
    deadline = time.time() + 120
    while not latest.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be killed; raise the iterations"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (latest.parent / "checkpoint_final.pt").exists()
    again = subprocess.run(_train_cmd(tmp_path / "cut"), cwd=ROOT, env=env, capture_output=True,
                           text=True)
    assert again.returncode == 2 and "--resume" in again.stderr
    subprocess.run(_train_cmd(tmp_path / "cut") + ["--resume"], cwd=ROOT, env=env, check=True)
    for net in ("axial_coarse", "axial_fine"):
        a = torch.load(tmp_path / f"full/smoke/stepwise/fold0/{net}/checkpoint_final.pt",
                       weights_only=True)
        b = torch.load(tmp_path / f"cut/smoke/stepwise/fold0/{net}/checkpoint_final.pt",
                       weights_only=True)
        assert a["losses"] == b["losses"]
        for k in a["model"]:
            assert torch.equal(a["model"][k], b["model"][k]), (net, k)
