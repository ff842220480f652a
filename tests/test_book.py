"""rstn_core.book (the notebooks' set-up and tables) and tools/set_repo_url.py."""
from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from rstn_core import book

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def tree(tmp_path, monkeypatch):
    """A book folder (with _config.yml) and a notebooks/ folder inside, as the working dir."""
    (tmp_path / "_config.yml").write_text("title: t\n")
    (tmp_path / "notebooks").mkdir()
    monkeypatch.chdir(tmp_path / "notebooks")
    monkeypatch.delenv("RSTN_SMOKE", raising=False)
    return tmp_path


def test_setup_roots_paths_at_the_book_folder(tree):
    lesson = book.setup("standard", "cpu", 1, 3, None, None, notebook="04_fixed_point")
    assert lesson.root == tree.resolve() and lesson.cfg.root == str(tree.resolve())
    assert lesson.run_root == tree.resolve() / "runs" / "nb" / "04_fixed_point"
    assert lesson.cfg.path("data_dir") == tree.resolve() / "data"
    assert (lesson.scale, lesson.fold, lesson.seed, lesson.smoke) == ("standard", 1, 3, False)
    assert Path.cwd() == tree / "notebooks"                      # never changes directory
    own = book.setup("smoke", run_root="elsewhere", data_root="/d", notebook="x")
    assert own.run_root == tree.resolve() / "elsewhere" and own.cfg.data_root == "/d"


def test_setup_smoke_switch_and_seeds(tree, monkeypatch):
    monkeypatch.setenv("RSTN_SMOKE", "1")
    lesson = book.setup("paper", seed=5, notebook="x", **{"train.zoom": 1})
    assert lesson.scale == lesson.cfg.scale == "smoke" and lesson.smoke
    assert lesson.cfg.train.zoom == 1 and lesson.cfg.seed == 5
    a = (np.random.rand(), torch.rand(1).item())
    book.setup("smoke", seed=5, notebook="x")
    assert (np.random.rand(), torch.rand(1).item()) == a


def test_setup_cuda_missing_is_one_line(tree, monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert book.setup("smoke", "cuda", notebook="x").device == "cpu"
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "device 'cuda': CUDA is not available here; using the CPU."


@pytest.mark.parametrize("kw, match", [({"scale": "huge"}, "scale 'huge'"),
                                       ({"device": "tpu"}, "device 'tpu'"),
                                       ({"fold": 7}, "fold 7"), ({"seed": "1"}, "seed '1'")])
def test_setup_bad_parameters(tree, kw, match):
    with pytest.raises(ValueError, match=match):
        book.setup(**kw)


def test_book_root_outside_a_book(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert book.book_root() == tmp_path.resolve()
    assert book.book_root(ROOT / "notebooks") == ROOT


def test_md_table_text():
    text = book.md_table_text([("a", 0.12345, 3), ("b", 2.0, None)], ["x", "y", "z"], ".3f")
    assert text.splitlines() == ["| x | y | z |", "|---|---|---|", "| a | 0.123 | 3 |",
                                 "| b | 2.000 | None |"]
    with pytest.raises(ValueError, match="row 0 has 1 cells"):
        book.md_table_text([("a",)], ["x", "y"])


def test_set_repo_url_rewrites_config_and_notebooks(tmp_path):
    spec = importlib.util.spec_from_file_location("set_repo_url", ROOT / "tools" / "set_repo_url.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    shutil.copy(ROOT / "_config.yml", tmp_path / "_config.yml")
    shutil.copytree(ROOT / "notebooks", tmp_path / "notebooks")
    new = "https://github.com/someone/fork"
    assert tool.main([new], root=tmp_path) == 0
    text = (tmp_path / "_config.yml").read_text()
    assert f"url: {new}" in text and "# The repository URL lives here" in text
    for nb in (tmp_path / "notebooks").glob("*.ipynb"):
        src = "".join("".join(c["source"]) for c in json.loads(nb.read_text())["cells"])
        assert f"git+{new}" in src and "rstn-book/rstn_core" not in src, nb.name
    assert tool.main(["not a url"], root=tmp_path) == 2


def test_reference_case_turns_one_knob_on_the_same_patient(tree):
    lesson = book.setup("smoke", "cpu", 0, 0, None, None, notebook="x")
    small, y_small = lesson.reference_case(0, target_scale=0.6)
    default, y = lesson.reference_case(0)
    assert small.id == default.id and small.image.shape == default.image.shape
    assert small.meta["pancreas_scale"] / 0.6 == pytest.approx(default.meta["pancreas_scale"],
                                                                rel=0.01)
    assert 0 < y_small.sum() < y.sum()
    with pytest.raises(ValueError, match="unknown phantom knob"):
        lesson.reference_case(0, size=2)
