"""Files: atomic writes with umask permissions and fsync, temporary files removed on errors and
swept after a kill, one-line errors naming the file, and kill -9 during `train --resume`
keeping every snapshot."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from rstn_core.errors import FileFormatError
from rstn_core.io import (atomic_path, atomic_savefig, atomic_torch_save, atomic_write_bytes,
                          atomic_write_text, clean_stale_temps, load_checkpoint, read_json)

ROOT = Path(__file__).resolve().parents[1]


def temps(folder):
    return sorted(p.name for p in Path(folder).rglob(".*.tmp*"))


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o027, 0o640), (0o077, 0o600)])
def test_new_files_get_the_umask_permissions(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        p = atomic_write_text(tmp_path / "a.txt", "x")
    finally:
        os.umask(old)
    assert os.stat(p).st_mode & 0o777 == mode


def test_a_rewritten_file_keeps_its_mode(tmp_path):
    p = atomic_write_text(tmp_path / "a.txt", "x")
    os.chmod(p, 0o664)
    atomic_write_text(p, "y")
    assert os.stat(p).st_mode & 0o777 == 0o664 and p.read_text() == "y"


def test_file_and_folder_are_fsynced(tmp_path, monkeypatch):
    synced = []
    real = os.fsync

    def spy(fd):
        synced.append(os.readlink(f"/proc/self/fd/{fd}") if os.path.exists("/proc/self/fd")
                      else fd)
        return real(fd)
    monkeypatch.setattr(os, "fsync", spy)
    atomic_write_bytes(tmp_path / "f.bin", b"123")
    assert len(synced) == 2
    if isinstance(synced[0], str):
        assert synced[0].startswith(str(tmp_path / ".f.bin.")) and synced[1] == str(tmp_path)


@pytest.mark.parametrize("exc", [RuntimeError, KeyboardInterrupt])
def test_an_interrupted_write_leaves_the_old_file_and_no_temporary(tmp_path, exc):
    p = atomic_write_text(tmp_path / "a.txt", "old")
    with pytest.raises(exc):
        with atomic_path(p) as tmp:
            tmp.write_text("half")
            raise exc()
    assert p.read_text() == "old" and temps(tmp_path) == []


def test_temporaries_of_killed_processes_are_swept(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    stale = tmp_path / f".a.txt.{dead}.x1y2.tmp"
    other = tmp_path / f".b.txt.{dead}.x1y2.tmp"
    live = tmp_path / ".a.txt.1.abcd.tmp"             # pid 1 is alive: left alone
    foreign = tmp_path / ".a.txt.tmp"                 # not ours: left alone
    for f in (stale, other, live, foreign):
        f.write_text("")
    atomic_write_text(tmp_path / "a.txt", "x")        # the next write to a.txt sweeps its own
    assert not stale.exists() and other.exists() and live.exists() and foreign.exists()
    assert clean_stale_temps(tmp_path) == [other]


def test_one_line_errors_name_the_file(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(NotADirectoryError, match=r"f is a file, not a folder"):
        atomic_write_text(tmp_path / "f" / "g.txt", "x")
    with pytest.raises(IsADirectoryError, match="it is a folder"):
        atomic_write_text(tmp_path, "x")
    bad = tmp_path / "bad.json"
    bad.write_text('{"a": 1,\n "b": }')
    with pytest.raises(FileFormatError, match=r"bad\.json: not valid JSON \(line 2, column 7"):
        read_json(bad, "results file")
    with pytest.raises(FileNotFoundError, match="none.json not found"):
        read_json(tmp_path / "none.json")
    ck = tmp_path / "ck.pt"
    ck.write_bytes(b"\x00garbage")
    with pytest.raises(FileFormatError, match=r"ck\.pt could not be read"):
        load_checkpoint(ck)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_folder_is_one_line(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        with pytest.raises(PermissionError, match=r"ro is not writable") as e:
            atomic_write_text(ro / "train.json", "{}")
        assert ".tmp" not in str(e.value)
    finally:
        ro.chmod(0o755)


def test_figures_are_written_atomically(tmp_path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig = plt.figure(figsize=(1, 1))
    p = atomic_savefig(fig, tmp_path / "f.png", dpi=20)
    plt.close(fig)
    assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and temps(tmp_path) == []


def test_checkpoints_round_trip(tmp_path):
    atomic_torch_save({"model": {"w": torch.ones(2)}, "iteration": 3}, tmp_path / "c.pt")
    assert load_checkpoint(tmp_path / "c.pt")["iteration"] == 3


# -- kill -9 during `train --resume` keeps every snapshot ---------------------------------------
ITERS, EVERY = 40, 5


def _train(runs, resume=False):
    return [sys.executable, "-m", "rstn_core.cli", "train", "--method", "stepwise", "--fold", "0",
            "--scale", "smoke", "--device", "cpu", "--view", "axial", "--runs", str(runs),
            "--quiet", "--set", f"train.coarse_iterations={ITERS}", "--set",
            "train.fine_iterations=2", "--set", f"train.checkpoint_every={EVERY}", "--set",
            "train.threads=1", "--set", "train.keep_snapshots=true"] + \
        (["--resume"] if resume else [])


def _kill_when(proc, ready, timeout=180):
    deadline = time.time() + timeout
    while proc.poll() is None and time.time() < deadline:
        if ready():
            os.kill(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.01)
    proc.wait()


def test_kill_9_during_resume_keeps_every_snapshot(tmp_path):
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    net = tmp_path / "runs/smoke/stepwise/fold0/axial_coarse"
    snaps = net / "snapshots"

    def count():
        return len(list(snaps.glob("it*.pt"))) if snaps.is_dir() else 0

    proc = subprocess.Popen(_train(tmp_path / "runs"), cwd=ROOT, env=env)
    _kill_when(proc, lambda: count() >= 1)
    kills = 1
    # each resume is killed the moment a new snapshot appears: between the snapshot and
    # checkpoint_latest.pt, where a snapshot used to be lost for good
    for _ in range(3):
        if (net / "checkpoint_final.pt").exists():
            break
        n = count()
        proc = subprocess.Popen(_train(tmp_path / "runs", resume=True), cwd=ROOT, env=env)
        _kill_when(proc, lambda: count() > n)
        kills += proc.returncode == -signal.SIGKILL
    assert kills >= 2, "the runs ended before they could be killed; raise ITERS"
    subprocess.run(_train(tmp_path / "runs", resume=True), cwd=ROOT, env=env, check=True)
    want = [f"it{i}.pt" for i in range(EVERY, ITERS, EVERY)]
    assert sorted(p.name for p in snaps.glob("it*.pt")) == sorted(want)
    for name in want:
        ck = load_checkpoint(snaps / name)
        assert ck["iteration"] == int(name[2:-3]) and ck["seconds"] >= 0
    assert temps(net) == []                         # a killed write's temporary is swept
    assert (net / "checkpoint_final.pt").is_file() and not (net / "checkpoint_latest.pt").exists()
    loss = np.loadtxt(net / "loss.csv", delimiter=",", skiprows=1)
    assert len(loss) == ITERS
