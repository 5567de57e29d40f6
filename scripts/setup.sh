#!/usr/bin/env bash
# Installs what Image Atlas needs into ./.venv (idempotent), at the exact versions in requirements.lock.
#   TEST=1     also the test tools and Chromium (scripts/test.sh sets it)
#   BROWSER=1  also Playwright and Chromium, for the quick start's smoke check (scripts/demo.sh --smoke)
#   PYTHON=... the interpreter to build the venv from (default python3, 3.10 or newer)
# Every step that fails stops the script with what failed and what to do.
set -Eeuo pipefail
cd "$(dirname "$0")/.."

step="starting"
hint=""
on_error() {
  local rc=$?
  echo >&2
  echo "setup failed (exit $rc) while $step." >&2
  echo "  command: $BASH_COMMAND (scripts/setup.sh line $1)" >&2
  [ -z "$hint" ] || echo "  what to do: $hint" >&2
  exit "$rc"
}
trap 'on_error $LINENO' ERR

want_browser=0
if [ "${TEST:-0}" = 1 ] || [ "${BROWSER:-0}" = 1 ]; then want_browser=1; fi

step="checking Python"
PY=${PYTHON:-python3}
hint="install Python 3.10 or newer (python3 and python3-venv), or name one with PYTHON=/path/to/python3.11"
command -v "$PY" >/dev/null
"$PY" -c 'import sys; assert sys.version_info >= (3, 10), sys.version' 2>/dev/null \
  || { echo "$PY is $("$PY" --version 2>&1); Image Atlas needs Python 3.10 or newer." >&2; false; }

apt_install() {
  # Debian/Ubuntu as root: system packages. Prints why when it cannot, and returns non-zero.
  if ! command -v apt-get >/dev/null 2>&1; then echo "no apt-get here: cannot install $*" >&2; return 1; fi
  if [ "$(id -u)" != 0 ]; then echo "not root: cannot apt-get install $*" >&2; return 1; fi
  local log; log=$(mktemp)
  if apt-get install -y --no-install-recommends "$@" >"$log" 2>&1 \
     || { apt-get update >>"$log" 2>&1 && apt-get install -y --no-install-recommends "$@" >>"$log" 2>&1; }; then
    rm -f "$log"; return 0
  fi
  tail -5 "$log" >&2; rm -f "$log"; return 1
}

# The demo's images come from Debian's dataset-fashion-mnist when it can be installed; `core demo` has fallbacks
# (download, then scikit-learn's digits) and says which it used, so a failure here is only a note.
step="installing the Fashion-MNIST demo data (optional)"
if [ ! -f /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz ]; then
  apt_install dataset-fashion-mnist || echo "note: dataset-fashion-mnist not installed; the demo will download Fashion-MNIST or use scikit-learn's digits"
fi

if [ "$want_browser" = 1 ] && ! command -v chromium >/dev/null 2>&1; then
  step="installing Chromium for the browser tests"
  hint="install Chromium yourself (Debian: apt-get install chromium) and run this again"
  apt_install chromium
fi

step="creating the virtual environment .venv"
hint="install the venv module (Debian: apt-get install python3-venv), or remove a broken .venv and run this again"
[ -x .venv/bin/python ] || "$PY" -m venv .venv

reqs=requirements.txt
[ "$want_browser" = 1 ] && reqs=requirements-dev.txt
stamp=".venv/.installed-$(cat "$reqs" requirements.txt requirements.lock | sha1sum | cut -c1-12)"
if [ ! -f "$stamp" ]; then
  step="installing Python packages from $reqs (pinned by requirements.lock; a few minutes the first time)"
  hint="read pip's message above; a network or disk problem is the usual cause (df -h .). The exact versions are in requirements.lock"
  # torch first and pinned: an unpinned resolve drags a different, larger build.
  .venv/bin/python -m pip install -q -c requirements.lock "torch==2.14.1" "torchvision==0.29.1"
  .venv/bin/python -m pip install -q -c requirements.lock -r "$reqs"
  step="checking the installed packages"
  hint="the environment in .venv is inconsistent: rm -rf .venv and run this again"
  .venv/bin/python -m pip check >/dev/null
  touch "$stamp"
fi

# numba compiles UMAP, NN-descent and friends on first use (about a minute); do it now, into the project's cache.
step="compiling the map code ahead (numba, about a minute the first time)"
hint="run .venv/bin/python -m core warmup to see the full error"
.venv/bin/python -m core warmup --quiet
