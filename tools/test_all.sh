#!/usr/bin/env bash
# The whole suite, as CI runs it, at the smoke scale; fails on any error. Each notebook is
# executed exactly once: by pytest (tests/test_notebooks.py, marked `slow`), which stores its
# outputs in jupyter-book's cache; the book build then renders those outputs, and would
# execute (and fail on an error in) only a notebook the cache lacks, which this script
# reports as a failure of the reuse.
set -euo pipefail
cd "$(dirname "$0")/.."
export RSTN_SMOKE=1 PYTHONUNBUFFERED=1
rm -rf _build/.jupyter_cache   # the cache sees notebook code, not library changes
rm -rf runs/nb                 # the notebooks' own smoke runs, made afresh: a changed default never meets an old run
mkdir -p _build
start=$(date +%s)
python -m pytest -q -m "not slow" tests
t_unit=$(date +%s)
python -m pytest -q -m slow --durations=0 tests     # the notebooks and the slow unit tests
t_nb=$(date +%s)
python tools/book_mathjax.py          # MathJax 3 for the pages, fetched once with npm
# one progress line per notebook (read or executed); the whole log goes to the file
jupyter-book build . --path-output . 2>&1 | tee _build/book_build.log \
  | sed -u 's/\x1b\[[0-9;]*m//g' | { grep --line-buffered -oE "(reading sources\.\.\. \[ *[0-9]+%\] notebooks/[^ ]+|Execut(ing|ed) notebook.*)" \
      | sed -u 's/^/book: /' || true; } || {
  tail -60 _build/book_build.log; echo "book build failed (log: _build/book_build.log)"; exit 1; }
t_book=$(date +%s)
test -f _build/html/index.html || { echo "book build produced no _build/html/index.html"; exit 1; }
again=$(grep -c "Executing notebook" _build/book_build.log || true)
if [ "$again" -ne 0 ]; then
  grep -B2 "Executing notebook" _build/book_build.log | grep -o "notebooks/[^ ]*" | sort -u
  echo "the book build executed $again notebook(s) again: their cached outputs did not match"
  exit 1
fi
python tools/check_book.py _build/html
echo "unit tests $((t_unit - start)) s, notebooks $((t_nb - t_unit)) s, book build" \
     "$((t_book - t_nb)) s; whole suite: $(( $(date +%s) - start )) s"
