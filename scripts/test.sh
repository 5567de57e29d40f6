#!/usr/bin/env bash
# The whole test suite, from a fresh clone: installs what the tests need, then runs pytest (arguments go to it).
set -Eeuo pipefail
cd "$(dirname "$0")/.."
TEST=1 scripts/setup.sh
export HF_HUB_OFFLINE=1  # nothing in the tests may wait on the network
exec .venv/bin/python -m pytest -q "$@"
