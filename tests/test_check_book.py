"""Tests of the pure helpers of tools/check_book.py, on small HTML strings."""
import importlib.util
from pathlib import Path

import pytest

_PATH = Path(__file__).resolve().parents[1] / "tools" / "check_book.py"
_spec = importlib.util.spec_from_file_location("check_book", _PATH)
cb = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(cb)

COLAB = "https://colab.research.google.com"
NB_URL = f"{COLAB}/github/rstn-book/rstn_core/blob/main/notebooks/02_dsc_and_loss.ipynb"


def test_toc_entries_in_reading_order():
    toc = {"format": "jb-book", "root": "intro", "parts": [
        {"caption": "A", "chapters": [{"file": "book/problem"},
                                      {"file": "notebooks/01_data_phantom.ipynb"}]},
        {"caption": "B", "chapters": [{"file": "book/rstn",
                                       "sections": [{"file": "notebooks/06_rstn_testing"}]}]},
    ]}
    assert cb.toc_entries(toc) == ["intro", "book/problem", "notebooks/01_data_phantom",
                                   "book/rstn", "notebooks/06_rstn_testing"]


def test_repository_and_expected_colab_url():
    cfg = {"repository": {"url": "https://github.com/rstn-book/rstn_core/", "branch": "main"}}
    owner, name, branch = cb.repository(cfg)
    assert (owner, name, branch) == ("rstn-book", "rstn_core", "main")
    assert cb.expected_colab_url(COLAB + "/", owner, name, branch,
                                 "notebooks/02_dsc_and_loss") == NB_URL
    with pytest.raises(ValueError, match="repository.url"):
        cb.repository({"repository": {"url": "https://github.com/"}})


def test_figure_sources_ignore_decoration():
    html = ('<img src="_static/logo.png"><p><img alt="x" src="../_images/abc.png"/>'
            '<img src="data:image/png;base64,AAAA">')
    assert cb.figure_sources(html) == ["../_images/abc.png", "data:image/png;base64,AAAA"]
    assert cb.figure_sources('<img src="_static/logo.png">') == []


def test_colab_links():
    html = (f'<a href="{NB_URL}" class="btn">Colab</a>'
            '<a href="https://github.com/rstn-book/rstn_core">repo</a><a name="x">')
    assert cb.colab_links(html, COLAB) == [NB_URL]


def test_check_notebook_page_reports_one_line_per_failure():
    good = f'<img src="../_images/f.png"><a href="{NB_URL}">'
    assert cb.check_notebook_page(good, "notebooks/02_dsc_and_loss", NB_URL, COLAB) == []
    wrong = NB_URL.replace("02_dsc_and_loss", "03_fcn8s_coarse")
    fails = cb.check_notebook_page(f'<a href="{wrong}">', "notebooks/02_dsc_and_loss",
                                   NB_URL, COLAB)
    assert len(fails) == 2
    assert "no figure" in fails[0]
    assert "Colab launch link" in fails[1] and wrong in fails[1]
    assert all("\n" not in f for f in fails)


@pytest.mark.parametrize("html, expected", [
    ('<span class="math notranslate nohighlight">\\(x\\)</span>', True),
    ('<div class="math notranslate nohighlight">\\[ y \\]</div>', True),
    ("<p>no maths, only $5</p>", False),
    ('<p class="mathematics-free">text</p>', False),
])
def test_has_math_markup(html, expected):
    assert cb.has_math_markup(html) is expected


@pytest.mark.parametrize("text, expected", [
    ("The loss $L = 1 - D$ is small.", True),
    ("$$\nZ = f(X)\n$$", True),
    ("A {math}`x` role.", True),
    ("\\begin{align} a &= b \\end{align}", True),
    ("It costs $5 and $6 dollars.", False),
    ("Code only:\n```python\nx = '$a$'\n```\n", False),
    ("No maths here.", False),
])
def test_source_has_math(text, expected):
    assert cb.source_has_math(text) is expected


def test_count_mjx_and_mathjax_rewrite():
    dom = '<p><mjx-container class="MathJax" jax="CHTML"></mjx-container> and <mjx-container>'
    assert cb.count_mjx(dom) == 2
    assert cb.count_mjx("<p>\\(x\\)</p>") == 0
    cdn = "https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-mml-chtml.js"
    html = f'<script defer="defer" src="{cdn}"></script><script src="_static/x.js"></script>'
    assert cb.mathjax_sources(html) == [cdn]
    out = cb.rewrite_mathjax(html, "file:///tmp/mj/tex-mml-chtml.js")
    assert cdn not in out and 'src="file:///tmp/mj/tex-mml-chtml.js"' in out
    assert 'src="_static/x.js"' in out


def test_missing_build_is_one_failure(tmp_path):
    (tmp_path / "_config.yml").write_text(
        "repository:\n  url: https://github.com/o/r\nlaunch_buttons:\n  colab_url: " + COLAB)
    (tmp_path / "_toc.yml").write_text("format: jb-book\nroot: intro\n")
    assert cb.main(["--book-dir", str(tmp_path), "--no-browser"]) == 1


def test_book_root_accepts_the_book_or_its_build(tmp_path):
    (tmp_path / "_config.yml").write_text("title: t\n")
    html = tmp_path / "_build" / "html"
    html.mkdir(parents=True)
    assert cb.book_root(tmp_path) == tmp_path.resolve()
    assert cb.book_root(html) == tmp_path.resolve()
    assert cb.book_root(tmp_path / "_build") == tmp_path.resolve()
