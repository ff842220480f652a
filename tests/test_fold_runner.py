"""experiments/fold_runner.py: `--jobs` runs folds side by side, each with its parameters injected."""
import pytest
import time


def _notebook(path):
    import nbformat
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell("fold = -1\nscale = 'smoke'\nrun_dir = ''")
    params.metadata["tags"] = ["parameters"]
    body = nbformat.v4.new_code_cell(textwrap_dedent('''
        import pathlib, time
        here = pathlib.Path(run_dir).parent
        (here / f"started{fold}").write_text("x")
        t0 = time.time()                     # both folds must be running side by side
        while len(list(here.glob("started*"))) < 2:
            assert time.time() - t0 < 30, "the other fold never started: not run in parallel"
            time.sleep(0.05)
        print("fold", fold)
    '''))
    nb.cells = [params, body]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nbformat.write(nb, str(path))


def textwrap_dedent(s):
    import textwrap
    return textwrap.dedent(s).strip()


@pytest.mark.slow
def test_fold_runner_runs_two_folds_side_by_side(tmp_path):
    import nbformat
    from rstn_core.experiments.fold_runner import run_folds
    nb = tmp_path / "tiny.ipynb"
    _notebook(nb)
    t0 = time.perf_counter()
    outs = run_folds(nb, [0, 1], {"scale": "smoke"}, out_root=tmp_path / "out", jobs=2)
    assert [o.name for o in outs] == ["fold0.ipynb", "fold1.ipynb"]
    for fold, out in enumerate(outs):
        assert out.is_file() and out.with_suffix(".done").is_file()
        cells = nbformat.read(str(out), as_version=4).cells
        injected = [c for c in cells if "injected-parameters" in c.metadata.get("tags", [])]
        assert injected and f"fold = {fold}" in injected[0].source
        printed = "".join(o.get("text", "") for c in cells for o in c.get("outputs", []))
        assert f"fold {fold}" in printed
    assert time.perf_counter() - t0 < 60
