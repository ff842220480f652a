"""Fixtures shared by the tests: a small phantom data set, and the `rstn` command run in-process
with its exit code and stderr lines (for the one-line error checks)."""
import pytest

from rstn_core.data import phantom_preset, write_dataset


@pytest.fixture(scope="session")
def smoke_dataset(tmp_path_factory):
    """Four smoke-scale phantom cases (MSD layout) in a session-wide folder; treat it as
    read-only (copy it before writing into it)."""
    root = tmp_path_factory.mktemp("smoke_data") / "phantom_smoke"
    write_dataset(root, phantom_preset("smoke"), 4, seed=0, progress=False, workers=1)
    return root


@pytest.fixture
def run_rstn(capsys):
    """run_rstn(*argv) -> (exit code, stderr lines, stdout) of `rstn argv...` in-process."""
    from rstn_core.cli import main

    def run(*argv):
        code = main([str(a) for a in argv])
        out, err = capsys.readouterr()
        return code, [ln for ln in err.splitlines() if ln.strip()], out
    return run
