#!/usr/bin/env bash
# The whole suite, as CI runs it: unit tests + every notebook in smoke mode (papermill, then
# nbval) + the book build + a check of the built book. Fails on any error.
set -euo pipefail
cd "$(dirname "$0")/.."
export RSTN_SMOKE=1 PYTHONUNBUFFERED=1
rm -rf _build/.jupyter_cache   # the cache sees notebook code, not library changes
start=$(date +%s)
python -m pytest -q tests
python -m pytest -q --nbval-lax notebooks/
jupyter-book build . --path-output . -q
test -f _build/html/index.html || { echo "book build produced no _build/html/index.html"; exit 1; }
python tools/check_book.py _build/html
echo "whole suite: $(( $(date +%s) - start )) s"
