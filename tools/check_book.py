#!/usr/bin/env python
"""Check a built jupyter-book (run after `jupyter-book build .`).

Checks, for the book described by _config.yml and _toc.yml:

* `_build/html/index.html` exists, and every toc entry has a source file and an HTML page;
* every notebook page shows at least one figure (an <img> from the executed outputs) and
  has a Colab launch link to `.../blob/<branch>/<path of that notebook>.ipynb`;
* every page whose source contains maths has MathJax markup in its HTML;
* every page is clean for a reader: no stderr or warning blocks in cell outputs, no
  absolute path of the build machine (/work/, /tmp/, /root/, /home/), no raw Markdown table
  (`|---|` in a paragraph: a table that did not render), no `e+0` number in a table;
* MathJax is served by the book itself (`_static/mathjax/`, see tools/book_mathjax.py);
* if /usr/bin/chromium exists (`apt-get install -y chromium`): headless screenshots of the
  index, two chapters and the RSTN page (its `aligned` block) go to `_build/screenshots/`,
  with the network cut off, and the DOM of every prose page with maths must contain
  MathJax's rendered `<mjx-container>` elements and no raw `\begin{aligned}`. Without
  chromium this part is skipped with a note.

`--mathjax path/to/tex-mml-chtml.js` renders with another local MathJax 3 copy instead of
the one the page names.

Exits non-zero with one line per failure.

    python tools/check_book.py [BOOK_DIR | HTML_DIR] [--book-dir BOOK_DIR] [--no-browser]
                               [--mathjax FILE]
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlparse

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--hide-scrollbars",
                  "--virtual-time-budget=15000",
                  "--host-resolver-rules=MAP * ~NOTFOUND"]   # offline: no CDN can help
WINDOW_SIZE = "--window-size=1280,1600"


# -- pure helpers (unit-tested in tests/test_check_book.py) -------------------------------

def toc_entries(toc: dict) -> list[str]:
    """Every `root` and `file` of a jb-book _toc.yml, in reading order, without suffix."""
    out: list[str] = []

    def walk(node):
        if isinstance(node, dict):
            for key in ("root", "file"):
                if isinstance(node.get(key), str):
                    out.append(re.sub(r"\.(md|ipynb)$", "", node[key]))
            for key in ("parts", "chapters", "sections"):
                if key in node:
                    walk(node[key])
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(toc)
    return out


def repository(config: dict) -> tuple[str, str, str]:
    """(owner, name, branch) from the `repository` section of _config.yml."""
    repo = config.get("repository") or {}
    url = str(repo.get("url", "")).rstrip("/")
    parts = urlparse(url).path.strip("/").split("/")
    if len(parts) < 2 or not all(parts[:2]):
        raise ValueError(f"_config.yml: repository.url must be https://github.com/OWNER/NAME, "
                         f"got {url!r}.")
    return parts[0], parts[1].removesuffix(".git"), str(repo.get("branch", "main"))


def expected_colab_url(colab_url: str, owner: str, name: str, branch: str, entry: str) -> str:
    """The launch link sphinx-book-theme writes for the notebook `entry` (no suffix)."""
    return f"{colab_url.rstrip('/')}/github/{owner}/{name}/blob/{branch}/{entry}.ipynb"


class _TagCollector(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, {k: (v or "") for k, v in attrs}))

    handle_startendtag = handle_starttag


def _tags(html: str, name: str) -> list[dict]:
    parser = _TagCollector()
    parser.feed(html)
    parser.close()
    return [attrs for tag, attrs in parser.tags if tag == name]


def figure_sources(html: str) -> list[str]:
    """`src` of the <img> tags that are content figures (executed outputs or page images),
    not theme decoration: sources under `_images/` or inline `data:image/...`."""
    return [a.get("src", "") for a in _tags(html, "img")
            if "_images/" in a.get("src", "") or a.get("src", "").startswith("data:image")]


def links(html: str) -> list[str]:
    return [a["href"] for a in _tags(html, "a") if a.get("href")]


def colab_links(html: str, colab_url: str) -> list[str]:
    base = colab_url.rstrip("/")
    return [h for h in links(html) if h.startswith(base)]


def has_math_markup(html: str) -> bool:
    """MathJax input in the built HTML: `class="math..."` spans/divs or \\( \\[ delimiters."""
    return bool(re.search(r'class="[^"]*\bmath\b', html)) or "\\(" in html or "\\[" in html


_MATH_PATTERNS = [
    r"\$\$",                       # display maths
    r"(?<![\\$\w])\$[^\s$][^$\n]*?(?<![\s\\])\$(?!\w)",   # $inline$ (not prices like $5 or $ 5)
    r"\{math\}",                   # {math} role or directive
    r"\\begin\{(equation|align|aligned|gather)\*?\}",
]


def source_has_math(text: str) -> bool:
    """Whether a Markdown/notebook source contains maths (ignores fenced code blocks)."""
    text = re.sub(r"```.*?```", "", text, flags=re.S)
    return any(re.search(p, text) for p in _MATH_PATTERNS)


def count_mjx(dom: str) -> int:
    """Number of rendered MathJax 3 elements in a DOM dump."""
    return len(re.findall(r"<mjx-container\b", dom))


def mathjax_sources(html: str) -> list[str]:
    return [a["src"] for a in _tags(html, "script") if "mathjax" in a.get("src", "").lower()]


def rewrite_mathjax(html: str, local_url: str) -> str:
    """The page with every MathJax <script src> pointed at `local_url`."""
    for src in set(mathjax_sources(html)):
        html = html.replace(f'src="{src}"', f'src="{local_url}"')
    return html


_MACHINE_PATH = re.compile(r"(?<![\w.~-])/(?:work|tmp|root|home)/[\w.-]+")
_RAW_TABLE = re.compile(r"\|\s*:?-{3,}:?\s*\|")


def _visible_text(html: str, keep_pre: bool = True) -> str:
    """The page's text without <script>/<style> (and without <pre> unless keep_pre)."""
    html = re.sub(r"<(script|style)\b.*?</\1>", " ", html, flags=re.S | re.I)
    if not keep_pre:
        html = re.sub(r"<pre\b.*?</pre>", " ", html, flags=re.S | re.I)
        html = re.sub(r"<code\b.*?</code>", " ", html, flags=re.S | re.I)
    return re.sub(r"<[^>]+>", " ", html)


def clean_page_problems(html: str, entry: str) -> list[str]:
    """Failures (one line each) of what a reader should never see on a page: warning or
    stderr output blocks, the build machine's absolute paths, raw Markdown tables and
    `1e+03`-style numbers in tables."""
    fails = []
    stderr = len(re.findall(r'class="[^"]*\boutput\s+stderr\b', html))
    if stderr:
        fails.append(f"{entry}: {stderr} stderr/warning output block(s) in the cells' output; "
                     "fix the cause (or report it in one printed line)")
    text = _visible_text(html)
    paths = sorted(set(_MACHINE_PATH.findall(text)))
    if paths:
        fails.append(f"{entry}: absolute path(s) of the build machine on the page: "
                     f"{', '.join(paths[:3])}; print paths relative to the book's folder")
    raw = _RAW_TABLE.findall(_visible_text(html, keep_pre=False))
    if raw:
        fails.append(f"{entry}: {len(raw)} raw Markdown table line(s) ({raw[0]!r}) in the "
                     "page's text: a table did not render (escape `|` inside cells as `\\|`)")
    for table in re.findall(r"<table\b.*?</table>", html, flags=re.S | re.I):
        sci = re.findall(r"\d(?:\.\d+)?e\+\d+", _visible_text(table))
        if sci:
            fails.append(f"{entry}: number(s) like {sci[0]} in a table; format them for "
                         "people (e.g. 1,003)")
            break
    return fails


def check_notebook_page(html: str, entry: str, expected_colab: str, colab_url: str) -> list[str]:
    """Failures (one line each) of the HTML page of the notebook `entry`."""
    fails = []
    if not figure_sources(html):
        fails.append(f"{entry}: the notebook page shows no figure (no <img> from an output; "
                     "plt.show() draws nothing when the build ran with MPLBACKEND=Agg)")
    found = colab_links(html, colab_url)
    if expected_colab not in found:
        got = ", ".join(found) if found else "none"
        fails.append(f"{entry}: Colab launch link should be {expected_colab} (found: {got})")
    return fails


def book_root(path: str | Path) -> Path:
    """The book folder for `path`: the folder itself, or, for a built `_build/html` folder
    (or `_build`), the folder that holds `_build`."""
    p = Path(path).resolve()
    if (p / "_config.yml").is_file():
        return p
    for parent in (p, *p.parents):
        if parent.name == "_build" and (parent.parent / "_config.yml").is_file():
            return parent.parent
    return p


# -- the checks ---------------------------------------------------------------------------

def _load_yaml(path: Path) -> dict:
    import yaml
    return yaml.safe_load(path.read_text()) or {}


def _source(book: Path, entry: str) -> Path | None:
    for suffix in (".ipynb", ".md"):
        if (book / f"{entry}{suffix}").is_file():
            return book / f"{entry}{suffix}"
    return None


def _notebook_text(path: Path) -> str:
    import json
    nb = json.loads(path.read_text())
    return "\n".join("".join(c.get("source", "")) for c in nb.get("cells", [])
                     if c.get("cell_type") == "markdown")


def static_checks(book: Path, html_dir: Path | None = None) -> tuple[list[str], dict]:
    config = _load_yaml(book / "_config.yml")
    toc = _load_yaml(book / "_toc.yml")
    html_dir = html_dir or book / "_build" / "html"
    fails: list[str] = []
    info = {"pages": 0, "notebooks": 0, "math_pages": [], "notebook_pages": []}
    if not (html_dir / "index.html").is_file():
        return [f"{html_dir / 'index.html'} is missing: run `jupyter-book build .` first"], info
    owner, name, branch = repository(config)
    colab_url = (config.get("launch_buttons") or {}).get("colab_url", "")
    if not colab_url:
        fails.append("_config.yml: launch_buttons.colab_url is not set")
    for entry in toc_entries(toc):
        src = _source(book, entry)
        page = html_dir / f"{entry}.html"
        if src is None:
            fails.append(f"{entry}: in _toc.yml but no {entry}.md or {entry}.ipynb exists")
            continue
        if not page.is_file():
            fails.append(f"{entry}: no built page {page.relative_to(book)}")
            continue
        info["pages"] += 1
        html = page.read_text(errors="replace")
        fails += clean_page_problems(html, entry)
        if src.suffix == ".ipynb":
            info["notebooks"] += 1
            info["notebook_pages"].append(entry)
            if colab_url:
                fails += check_notebook_page(
                    html, entry, expected_colab_url(colab_url, owner, name, branch, entry),
                    colab_url)
            text = _notebook_text(src)
        else:
            text = src.read_text()
        if source_has_math(text):
            info["math_pages"].append(entry)
            if not has_math_markup(html):
                fails.append(f"{entry}: the source has maths but the page has no MathJax markup")
            remote = [m for m in mathjax_sources(html) if re.match(r"(https?:)?//", m)]
            if remote:
                fails.append(f"{entry}: MathJax is loaded from {remote[0]}, so the maths needs "
                             "the internet; build with tools/book_mathjax.py (npm) to serve it "
                             "from _static/mathjax/")
    return fails, info


def _chromium(args: list[str], profile: str, timeout: int = 180,
              window: str = WINDOW_SIZE) -> subprocess.CompletedProcess:
    cmd = [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", window, *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


RSTN_PAGE = "book/rstn"          # its `aligned` block was unreadable without MathJax


def dom_math_problems(dom: str, entry: str) -> tuple[int, list[str]]:
    """(rendered formulas, failures) of a page's DOM after MathJax ran: at least one
    <mjx-container>, and no TeX source left as text (e.g. a raw \\begin{aligned})."""
    n = count_mjx(dom)
    fails = []
    if n == 0:
        fails.append(f"{entry}: MathJax did not render (no <mjx-container> in the DOM)")
    text = _visible_text(re.sub(r"<mjx-assistive-mml\b.*?</mjx-assistive-mml>", " ", dom,
                                flags=re.S), keep_pre=False)
    raw = re.findall(r"\\begin\{\w+\*?\}", text)
    if raw:
        fails.append(f"{entry}: {len(raw)} TeX block(s) left unrendered ({raw[0]})")
    return n, fails


def browser_checks(book: Path, info: dict, mathjax: Path | None,
                   html_dir: Path | None = None) -> list[str]:
    if not Path(CHROMIUM).exists():
        print(f"note: {CHROMIUM} not found; skipping screenshots and the rendered-maths check "
              "(apt-get install -y chromium)")
        return []
    html_dir = html_dir or book / "_build" / "html"
    shots = html_dir.parent / "screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    md_math = [e for e in info["math_pages"] if e not in info["notebook_pages"] and e != "intro"]
    pages = ["index"]
    if md_math:
        pages.append(md_math[0])
    if info["notebook_pages"]:
        pages.append(info["notebook_pages"][0])
    elif len(md_math) > 1:
        pages.append(md_math[1])
    dom_pages = md_math or info["math_pages"][:1]

    fails: list[str] = []
    temp_pages: list[Path] = []
    profile = tempfile.mkdtemp(prefix="check_book_chromium_")
    offline_note = None

    def target(entry: str) -> Path:
        """The page to open: a copy using the local MathJax when one was given."""
        page = html_dir / f"{entry}.html"
        if mathjax is None:
            return page
        html = page.read_text(errors="replace")
        if not mathjax_sources(html):
            return page
        copy = page.with_name(f"_check_{page.name}")  # same folder: relative links still work
        copy.write_text(rewrite_mathjax(html, mathjax.resolve().as_uri()))
        temp_pages.append(copy)
        return copy

    try:
        for entry in pages:
            out = shots / (entry.replace("/", "__") + ".png")
            proc = _chromium([f"--screenshot={out}", target(entry).resolve().as_uri()], profile)
            if not out.is_file():
                fails.append(f"screenshot of {entry} failed (chromium exit {proc.returncode}): "
                             + (proc.stderr.strip().splitlines() or ["no output"])[-1])
            else:
                print(f"screenshot: {out}")
        if (html_dir / f"{RSTN_PAGE}.html").is_file():
            # the RSTN page's aligned block, about one screen down: a taller window shows it
            out = shots / "book__rstn_aligned.png"
            cmd = [f"--screenshot={out}", target(RSTN_PAGE).resolve().as_uri()]
            proc = _chromium(cmd, profile, window="--window-size=1280,2400")
            if out.is_file():
                print(f"screenshot: {out}")
            else:
                fails.append(f"screenshot of {RSTN_PAGE} failed (chromium exit "
                             f"{proc.returncode})")
        for entry in dom_pages:
            page = html_dir / f"{entry}.html"
            sources = mathjax_sources(page.read_text(errors="replace"))
            remote = [s for s in sources if s.startswith("http")]
            if mathjax is None and remote:
                offline_note = (f"note: {entry} loads MathJax from {remote[0]}; the offline "
                                "rendered-maths check needs the book's own copy (or --mathjax)")
                continue
            proc = _chromium(["--dump-dom", target(entry).resolve().as_uri()], profile)
            n, page_fails = dom_math_problems(proc.stdout, entry)
            fails += page_fails
            if n:
                print(f"MathJax (offline): {n} rendered formulas in {entry}")
        if not dom_pages:
            print("note: no page with maths; skipping the rendered-maths check")
    except subprocess.TimeoutExpired as exc:
        fails.append(f"chromium timed out after {exc.timeout} s")
    finally:
        for p in temp_pages:
            p.unlink(missing_ok=True)
        shutil.rmtree(profile, ignore_errors=True)
    if offline_note:
        print(offline_note)
    return fails


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Check a built jupyter-book (after "
                                 "`jupyter-book build .`).")
    ap.add_argument("path", nargs="?", default=None,
                    help="the book folder (with _config.yml), or its built _build/html folder")
    ap.add_argument("--book-dir", default=None, help="folder with _config.yml and _toc.yml "
                    "(default: the current folder)")
    ap.add_argument("--no-browser", action="store_true",
                    help="skip the chromium screenshots and the rendered-maths check")
    ap.add_argument("--mathjax", default=os.environ.get("RSTN_MATHJAX"),
                    help="a local MathJax 3 tex-mml-chtml.js for offline rendering "
                         "(default: $RSTN_MATHJAX)")
    args = ap.parse_args(argv)
    book = book_root(args.book_dir or args.path or ".")
    html_dir = None
    if args.path and (Path(args.path) / "index.html").is_file():
        html_dir = Path(args.path).resolve()      # a built book elsewhere (--path-output)
    mathjax = Path(args.mathjax) if args.mathjax else None
    if mathjax is not None and not mathjax.is_file():
        print(f"FAIL: --mathjax {mathjax} is not a file")
        return 1
    try:
        fails, info = static_checks(book, html_dir)
    except (OSError, ValueError) as exc:
        print(f"FAIL: {exc}")
        return 1
    if not args.no_browser and info["pages"]:
        fails += browser_checks(book, info, mathjax, html_dir)
    for f in fails:
        print(f"FAIL: {f}")
    print(f"book check: {info['pages']} pages ({info['notebooks']} notebooks, "
          f"{len(info['math_pages'])} with maths), {len(fails)} failure(s)")
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
