"""MathJax 3 from the book's own static files, so a built book renders its maths offline.

A Sphinx extension (`_config.yml`: `sphinx: local_extensions: {book_mathjax: tools/}`) that
runs at the start of every `jupyter-book build`, whoever starts it (`rstn book`,
`tools/test_all.sh` or the plain command):

1. the npm package `mathjax@3.2.2` is fetched once with `npm pack` into `.mathjax/`
   (git-ignored; about 6 MB) unless it is there already;
2. its `es5/` folder (the browser build, with its fonts) is unpacked into
   `_build/mathjax_static/mathjax/` and that folder is added to `html_static_path`, so the
   build copies it to `_build/html/_static/mathjax/`;
3. `mathjax_path` (set in `_config.yml`) names `mathjax/tex-mml-chtml.js`, a path relative
   to `_static`: every page loads MathJax from the book itself, never from a CDN.

Without npm and without a cached package the build goes on with MathJax from the CDN and
one warning (such a book needs the internet to show its maths; `tools/check_book.py` fails
on it). Run this file directly to fetch and unpack ahead of an offline build:

    python tools/book_mathjax.py [BOOK_DIR]
"""
from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

MATHJAX_VERSION = "3.2.2"
PACKAGE = f"mathjax@{MATHJAX_VERSION}"
TARBALL = f"mathjax-{MATHJAX_VERSION}.tgz"
CACHE_DIR = ".mathjax"                        # under the book's folder, git-ignored
STAGE_DIR = Path("_build") / "mathjax_static"  # becomes _build/html/_static/
MATHJAX_PATH = "mathjax/tex-mml-chtml.js"     # relative to _static
CDN_URL = f"https://cdn.jsdelivr.net/npm/mathjax@{MATHJAX_VERSION}/es5/tex-mml-chtml.js"


class MathJaxUnavailable(RuntimeError):
    """The MathJax package could neither be found in the cache nor fetched with npm."""


def fetch_tarball(book: Path, timeout: int = 300) -> Path:
    """The cached npm tarball of MathJax, fetched with `npm pack` when missing.

    Args:
        book: the book's folder (with _config.yml).
        timeout: seconds `npm pack` may take.
    Returns:
        the path of `.mathjax/mathjax-<version>.tgz`.
    Raises:
        MathJaxUnavailable: no cached tarball and npm missing or failing.
    """
    cache = book / CACHE_DIR
    tgz = cache / TARBALL
    if tgz.is_file():
        return tgz
    npm = shutil.which("npm")
    if npm is None:
        raise MathJaxUnavailable(f"no {tgz} and no npm to fetch {PACKAGE}; install Node.js "
                                 f"(npm) or put the tarball of `npm pack {PACKAGE}` there")
    cache.mkdir(parents=True, exist_ok=True)
    try:
        proc = subprocess.run([npm, "pack", PACKAGE, "--pack-destination", str(cache)],
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise MathJaxUnavailable(f"`npm pack {PACKAGE}` took more than {timeout} s") from None
    if proc.returncode or not tgz.is_file():
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise MathJaxUnavailable(f"`npm pack {PACKAGE}` failed (exit {proc.returncode}): {last}")
    return tgz


def stage(book: Path) -> Path:
    """Unpack MathJax's `es5/` build into the static folder the book build copies.

    Args:
        book: the book's folder.
    Returns:
        the folder to add to `html_static_path` (it holds `mathjax/tex-mml-chtml.js`).
    Raises:
        MathJaxUnavailable: as `fetch_tarball`.
    """
    static = book / STAGE_DIR
    target = static / "mathjax"
    marker = target / f".version-{MATHJAX_VERSION}"
    if marker.is_file() and (target / "tex-mml-chtml.js").is_file():
        return static
    tgz = fetch_tarball(book)
    shutil.rmtree(target, ignore_errors=True)
    tmp = static / "_unpack"
    shutil.rmtree(tmp, ignore_errors=True)
    with tarfile.open(tgz) as tar:
        members = [m for m in tar.getmembers()
                   if m.name.startswith("package/es5/") or m.name == "package/LICENSE"]
        tar.extractall(tmp, members=members, filter="data")
    (tmp / "package" / "es5").rename(target)
    shutil.copy2(tmp / "package" / "LICENSE", target / "LICENSE")
    shutil.rmtree(tmp, ignore_errors=True)
    marker.write_text(f"{PACKAGE} from {tgz.name}\n")
    return static


def _on_config_inited(app, config) -> None:
    from sphinx.util import logging
    logger = logging.getLogger(__name__)
    book = Path(app.srcdir)
    try:
        static = stage(book)
    except (MathJaxUnavailable, OSError, tarfile.TarError) as exc:
        logger.warning(f"book_mathjax: {exc}; the pages load MathJax from {CDN_URL} and "
                       "need the internet to show their maths")
        config.mathjax_path = CDN_URL
        return
    config.html_static_path = [*config.html_static_path, str(static)]
    config.mathjax_path = MATHJAX_PATH
    logger.info(f"book_mathjax: MathJax {MATHJAX_VERSION} served from _static/mathjax/")


def setup(app):
    """Sphinx entry point: stage MathJax before the build reads its configuration."""
    app.connect("config-inited", _on_config_inited)
    return {"parallel_read_safe": True, "parallel_write_safe": True}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    book = Path(argv[0] if argv else Path(__file__).resolve().parents[1]).resolve()
    try:
        static = stage(book)
    except (MathJaxUnavailable, OSError, tarfile.TarError) as exc:
        print(f"book_mathjax: {exc}")
        return 1
    print(f"MathJax {MATHJAX_VERSION} ready in {(static / 'mathjax').relative_to(book)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
