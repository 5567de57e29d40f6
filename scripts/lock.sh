#!/usr/bin/env bash
# Refreshes requirements.lock: resolves requirements-dev.txt afresh (newest versions within its ranges) in a
# scratch venv and writes every installed package at its exact version. Then run scripts/test.sh; commit the lock
# only when the suite passes with it.
set -Eeuo pipefail
cd "$(dirname "$0")/.."
trap 'echo "lock refresh failed at line $LINENO: $BASH_COMMAND; requirements.lock is unchanged." >&2' ERR
PY=${PYTHON:-python3}
scratch=$(mktemp -d)
"$PY" -m venv "$scratch/venv"
"$scratch/venv/bin/python" -m pip install -q "torch==2.14.1" "torchvision==0.29.1"
"$scratch/venv/bin/python" -m pip install -q -r requirements-dev.txt
"$scratch/venv/bin/python" -m pip check
{
  echo "# Exact versions of everything the test suite passed with (Python $("$scratch/venv/bin/python" -c 'import platform; print(platform.python_version())'), $(uname -m))."
  echo "# Used as pip constraints by scripts/setup.sh, the Dockerfile and CI. Refresh: scripts/lock.sh, then scripts/test.sh."
  "$scratch/venv/bin/python" -m pip freeze --exclude-editable | LC_ALL=C sort -f
} > requirements.lock
rm -rf "$scratch"
echo "requirements.lock refreshed ($(grep -vc '^#' requirements.lock) packages). Run scripts/test.sh before committing it."
