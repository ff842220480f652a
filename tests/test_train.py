import pytest
import torch

from rstn_core.config import get_config
from rstn_core.algorithms.stepwise import train_coarse, train_fine
from rstn_core.engine.train import TrainSpec, run_training
from tests.helpers import toy_slices as _toy_slices




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


def test_a_finished_net_continues_from_its_weights_only_final(tmp_path, capsys):
    # equal-work controls train finished nets further: the weights-only final, copied to
    # checkpoint_latest.pt, resumes with a fresh optimizer state (and says so)
    import shutil
    cfg = get_config("smoke", **{"train.coarse_iterations": 4, "train.checkpoint_every": 2})
    s = _toy_slices()
    first, _ = train_coarse(cfg, s, tmp_path / "a", progress=False)
    (tmp_path / "b").mkdir()
    shutil.copy(tmp_path / "a" / "checkpoint_final.pt", tmp_path / "b" / "checkpoint_latest.pt")
    longer = cfg.replace(**{"train.coarse_iterations": 6})
    net, stats = train_coarse(longer, s, tmp_path / "b", resume=True, progress=False)
    assert stats["iterations"] == 6 and stats["new_iterations"] == 2
    assert "fresh optimizer state" in capsys.readouterr().out
    assert any(not torch.equal(a, b) for a, b in zip(first.state_dict().values(),
                                                     net.state_dict().values()))
