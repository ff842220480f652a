"""rstn_core.engine.distributed: two gloo processes under torchrun train like one process.

The end-to-end test starts `python -m torch.distributed.run --nproc_per_node=2` on a small
script that trains a tiny coarse FCN-8s with the library's own `train_coarse` ->
`run_training`, each rank drawing its share of every batch through `slices.batch_source`
(as `pipeline.train_fold` does). Without BatchNorm and dropout, and with the per-sample Dice
loss, averaging the two ranks' gradients is the gradient of the whole batch: the result must
equal a one-process run on the full batch.
"""
import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from rstn_core.engine import distributed
from rstn_core.engine.loader import BatchSource
from rstn_core.engine.train import iteration_rng
from tests.helpers import ITERATIONS, toy_config, toy_slices

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = textwrap.dedent('''
    import json, sys
    from pathlib import Path
    import numpy as np
    import torch
    import rstn_core.engine.train as train
    from rstn_core.engine import distributed
    from rstn_core.engine.loader import batch_source
    from rstn_core.engine.slices import SliceSet
    from rstn_core.algorithms.stepwise import train_coarse
    from tests.helpers import toy_config, toy_slices

    out, mode = Path(sys.argv[1]), sys.argv[2]
    torch.set_num_threads(1)
    distributed.setup("cpu")                       # from torchrun's env vars (or nothing)
    rank, world = distributed.rank(), distributed.world_size()
    written = []                                   # every file this rank writes
    for name, where in (("atomic_torch_save", 1), ("atomic_write_text", 0)):
        def spy(*args, _orig=getattr(train, name), _where=where):
            written.append(Path(args[_where]).name)
            return _orig(*args)
        setattr(train, name, spy)
    src = batch_source(toy_slices(), workers=0)
    sizes = []                                     # items of each batch this rank trained on
    draw = src.coarse_batch
    def counted(*a, **k):
        batch = draw(*a, **k)
        sizes.append(len(batch[0]))
        return batch
    src.coarse_batch = counted
    net, stats = train_coarse(toy_config(), src, out / "run", progress=False)
    torch.save(net.state_dict(), out / f"{mode}_rank{rank}.pt")
    (out / f"{mode}_rank{rank}.json").write_text(json.dumps(
        {"world": world, "written": written, "losses": stats["losses"],
         "share": type(src).__name__, "sizes": sizes}))
''')


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(args, out: Path, timeout=50):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(k, None)
    run = subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=timeout)
    assert run.returncode == 0, run.stderr[-3000:]
    return run


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp")
    script = out / "ddp_train.py"
    script.write_text(SCRIPT)
    _run(["-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr=127.0.0.1",
          f"--master_port={_free_port()}", str(script), str(out), "ddp"], out)
    return out


@pytest.mark.slow
def test_both_ranks_end_with_the_same_weights(two_ranks):
    a = torch.load(two_ranks / "ddp_rank0.pt", weights_only=True)
    b = torch.load(two_ranks / "ddp_rank1.pt", weights_only=True)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    info = [json.loads((two_ranks / f"ddp_rank{r}.json").read_text()) for r in (0, 1)]
    assert [i["world"] for i in info] == [2, 2]
    assert all(i["share"] == "BatchSource" for i in info)
    assert all(i["sizes"] == [2] * ITERATIONS for i in info)   # half of the batch of 4 each
    assert info[0]["losses"] == info[1]["losses"]        # the mean over ranks, on every rank


@pytest.mark.slow
def test_only_rank_0_writes_files(two_ranks):
    r0, r1 = (json.loads((two_ranks / f"ddp_rank{r}.json").read_text())["written"]
              for r in (0, 1))
    assert r1 == []
    assert {"checkpoint_latest.pt", "checkpoint_final.pt", "loss.csv"} <= set(r0)
    run = two_ranks / "run"
    assert (run / "checkpoint_final.pt").is_file() and not (run / "checkpoint_latest.pt").exists()
    # the checkpoint holds rank 0's weights, which are everyone's
    ck = torch.load(run / "checkpoint_final.pt", weights_only=True)
    w = torch.load(two_ranks / "ddp_rank1.pt", weights_only=True)
    assert all(torch.equal(ck["model"][k], w[k]) for k in w)
    assert len((run / "loss.csv").read_text().splitlines()) == ITERATIONS + 1


@pytest.mark.slow
def test_two_ranks_equal_one_process_on_the_whole_batch(two_ranks, tmp_path):
    """Gradient averaging over the ranks' halves = the gradient of the whole batch."""
    from rstn_core.algorithms.stepwise import train_coarse
    from rstn_core.networks.build import build_net
    torch.set_num_threads(1)
    net, stats = train_coarse(toy_config(), toy_slices(), tmp_path / "one", progress=False)
    ddp = torch.load(two_ranks / "ddp_rank0.pt", weights_only=True)
    moved = 0.0
    init = build_net(toy_config())
    for k, v in net.state_dict().items():
        assert torch.allclose(v, ddp[k], rtol=0, atol=1e-5), k
        moved = max(moved, float((v - init.state_dict()[k]).abs().max()))
    assert moved > 1e-3                                  # the weights really changed
    losses = json.loads((two_ranks / "ddp_rank0.json").read_text())["losses"]
    assert np.allclose(losses, stats["losses"], rtol=0, atol=1e-5)


# -- no process group needed ---------------------------------------------------------------

def test_rank_shares_partition_the_one_process_batch():
    s = toy_slices()
    for method, args in (("coarse_batch", (5, "dice_bce", 0.5)), ("fine_batch", (5, 0, 3))):
        full = getattr(s, method)(iteration_rng(3, 7), *args)
        parts = [getattr(BatchSource(s, rank=r, world=2), method)(iteration_rng(3, 7), *args)
                 for r in (0, 1)]
        assert [len(p[0]) for p in parts] == [3, 2]
        for k, whole in enumerate(full):
            for r in (0, 1):
                got = parts[r][k]
                want = whole[r::2]
                if torch.is_tensor(whole):
                    assert torch.equal(got, want)
                else:
                    assert list(got) == list(want)


def test_world_larger_than_batch_is_refused():
    with pytest.raises(ValueError, match="world size 4 > batch size 2"):
        distributed.check_batch(2, world=4)
    with pytest.warns(UserWarning, match="not a multiple"):
        distributed.check_batch(8, world=3)
    with pytest.raises(ValueError, match="world size 3 > batch size 2"):
        BatchSource(toy_slices(), rank=0, world=3).coarse_batch(iteration_rng(0, 0), 2)


def test_one_process_helpers_are_no_ops():
    assert distributed.world_size() == 1 and distributed.rank() == 0 and distributed.is_main()
    assert distributed.setup("cpu") is False
    net = torch.nn.Linear(2, 2)
    with distributed.data_parallel(net) as m:
        assert m is net and "forward" not in vars(net)
    assert distributed.mean(torch.tensor(2.5)) == 2.5
    s = toy_slices()
    from rstn_core.engine.loader import batch_source
    assert batch_source(s) is s                         # today's path: the SliceSet itself
