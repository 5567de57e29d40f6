#!/usr/bin/env bash
# The whole test suite, from a fresh clone: installs what the tests need, then runs pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
TEST=1 scripts/setup.sh
export HF_HUB_OFFLINE=1 NUMBA_CACHE_DIR="${NUMBA_CACHE_DIR:-$PWD/data/numba-cache}"
exec .venv/bin/python -m pytest -q "$@"
