#!/usr/bin/env bash
# Quick start: install, build the demo dataset (about 2,000 images with planted mislabels), ingest it into the
# embedded Qdrant, and open the app at http://localhost:8501.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export NUMBA_CACHE_DIR="${NUMBA_CACHE_DIR:-$PWD/data/numba-cache}"
.venv/bin/python -m core demo --out data/demo --collection demo
exec .venv/bin/python -m streamlit run app.py --server.port "${PORT:-8501}" "$@"
