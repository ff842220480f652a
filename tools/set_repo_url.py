"""Set the book's repository URL in its one home, _config.yml, and in every notebook's Colab
install cell (tests/test_notebooks.py fails when the two differ).

    python tools/set_repo_url.py https://github.com/OWNER/rstn_core
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

import nbformat
import yaml

ROOT = Path(__file__).resolve().parents[1]
INSTALL = re.compile(r"git\+https?://[^\s\"'@]+")
URL_LINE = re.compile(r"^(\s+url:\s*)(\S+)(.*)$")


def set_config_url(config: Path, url: str) -> str:
    """Rewrite `repository: url:` in a jupyter-book _config.yml, keeping comments; returns
    the old URL."""
    lines = config.read_text().splitlines(keepends=True)
    in_repo, old = False, None
    for k, line in enumerate(lines):
        if re.match(r"^repository:\s*(#.*)?$", line):
            in_repo = True
        elif in_repo and re.match(r"^\S", line):
            break
        elif in_repo and (m := URL_LINE.match(line.rstrip("\n"))):
            old = m.group(2)
            lines[k] = f"{m.group(1)}{url}{m.group(3)}\n"
            break
    if old is None:
        raise ValueError(f"{config}: no `repository: url:` entry; add one under `repository:`.")
    config.write_text("".join(lines))
    assert yaml.safe_load(config.read_text())["repository"]["url"] == url
    return old


def set_notebook_url(path: Path, url: str) -> bool:
    """Point the Colab install cell(s) of one notebook at `url`; returns whether it changed."""
    nb = nbformat.read(str(path), as_version=4)
    changed = False
    for cell in nb.cells:
        if cell.cell_type == "code" and "google.colab" in cell.source:
            new = INSTALL.sub(lambda _: "git+" + url, cell.source)
            changed |= new != cell.source
            cell.source = new
    if changed:
        nbformat.write(nb, str(path))
    return changed


def main(argv=None, root: Path = ROOT) -> int:
    """Set the URL everywhere. Args: [URL]. Returns the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if len(argv) != 1 or not re.fullmatch(r"https?://\S+[^/]", argv[0]):
        print("usage: python tools/set_repo_url.py https://github.com/OWNER/REPO "
              f"(got {argv!r}: one http(s) URL, no trailing slash)", file=sys.stderr)
        return 2
    url = argv[0]
    try:
        old = set_config_url(root / "_config.yml", url)
    except (OSError, ValueError) as e:
        print(f"set_repo_url: {e}", file=sys.stderr)
        return 2
    changed = [p.name for p in sorted((root / "notebooks").glob("*.ipynb"))
               if set_notebook_url(p, url)]
    print(f"repository URL {old} -> {url}: _config.yml and {len(changed)} notebook(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
