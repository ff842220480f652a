import numpy as np
import pytest
import torch

from rstn_core.config import get_config
from rstn_core.engine.slices import SliceSet, positive_threshold
from rstn_core.algorithms.stepwise import train_coarse, train_fine
from rstn_core.engine.train import TrainSpec, run_training


def _toy_slices(n_cases=2, n=6, h=40, w=36, seed=0):
    rng = np.random.default_rng(seed)
    imgs, labs = [], []
    for _ in range(n_cases):
        lab = np.zeros((n, h, w), np.uint8)
        lab[1:5, 12:22, 10:20] = 1
        img = (rng.random((n, h, w)) * 80 + lab * 150).astype(np.uint8)
        imgs.append(img)
        labs.append(lab)
    return SliceSet(imgs, labs)


def test_positive_threshold_uses_given_counts_only():
    counts = np.array([0, 0, 10, 20, 30, 40, 1000])
    assert positive_threshold(counts, 0.0) == 10
    assert positive_threshold(np.zeros(5), 0.02) == 1.0
    s = _toy_slices()
    assert len(s.positive) == 2 * 4 and len(s.all) == 2 * 6


def test_fine_batch_boxes_cover_the_label_with_margins():
    s = _toy_slices()
    x, y, valid, boxes = s.fine_batch(np.random.default_rng(1), 4, 0, 3)
    for b, box in enumerate(boxes):
        assert box.r0 <= 12 and box.r1 >= 22 and box.c0 <= 10 and box.c1 >= 20
        assert box.r0 >= 9 and box.r1 <= 25 and box.c0 >= 7 and box.c1 <= 23


def _cfg(tmp_path, iters=6):
    cfg = get_config("smoke")
    return cfg.replace(**{"train.coarse_iterations": iters, "train.fine_iterations": iters,
                          "train.checkpoint_every": 2, "model.width": 1 / 32})


def test_interrupted_training_resumes_to_the_same_weights(tmp_path):
    torch.set_num_threads(1)
    s = _toy_slices()
    cfg = _cfg(tmp_path)
    full, _ = train_coarse(cfg, s, tmp_path / "full", progress=False)

    class Stop(Exception):
        pass

    # interrupted run: dies during iteration 4 (after the checkpoint at 4 iterations)
    from rstn_core.algorithms import stepwise
    net = stepwise.build_net(cfg)
    calls = {"n": 0}
    orig = s.coarse_batch

    def dying(*a, **k):
        calls["n"] += 1
        if calls["n"] == 5:
            raise Stop
        return orig(*a, **k)
    s.coarse_batch = dying
    with pytest.raises(Stop):
        train_coarse(cfg, s, tmp_path / "cut", progress=False, net=net)
    s.coarse_batch = orig
    assert (tmp_path / "cut" / "checkpoint_latest.pt").is_file()
    assert not (tmp_path / "cut" / "checkpoint_final.pt").exists()
    with pytest.raises(FileExistsError, match="--resume"):
        train_coarse(cfg, s, tmp_path / "cut", progress=False)
    resumed, stats = train_coarse(cfg, s, tmp_path / "cut", resume=True, progress=False)
    assert stats["new_iterations"] == 2
    for (k, a), (_, b) in zip(full.state_dict().items(), resumed.state_dict().items()):
        assert torch.equal(a, b), k
    lines = (tmp_path / "cut" / "loss.csv").read_text().splitlines()
    assert lines[0] == "iteration,loss" and len(lines) == 7


def test_finished_run_is_skipped_and_fine_training_runs(tmp_path):
    s = _toy_slices()
    cfg = _cfg(tmp_path, iters=3)
    _, st = train_fine(cfg, s, tmp_path / "fine", progress=False)
    assert not st["skipped"] and len(st["losses"]) == 3
    _, st2 = train_fine(cfg, s, tmp_path / "fine", progress=False)
    assert st2["skipped"] and st2["losses"] == st["losses"]


def test_nan_loss_is_reported_with_a_fix(tmp_path):
    p = torch.nn.Parameter(torch.zeros(1))
    spec = TrainSpec("toy", torch.nn.Linear(1, 1), torch.optim.SGD([p], lr=1.0),
                     lambda i, rng: p.sum() * float("nan"), 3)
    with pytest.raises(FloatingPointError, match="lower the learning rate"):
        run_training(spec, tmp_path, progress=False)
