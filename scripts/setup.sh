#!/usr/bin/env bash
# Installs what Image Atlas needs into ./.venv (idempotent). With TEST=1 it adds the test tools and Chromium.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}

apt_install() {
  # Debian/Ubuntu as root: optional system packages (the Fashion-MNIST demo data, Chromium for browser tests).
  command -v apt-get >/dev/null 2>&1 || return 0
  [ "$(id -u)" = 0 ] || { echo "not root: skipping apt-get install $*"; return 0; }
  apt-get install -y --no-install-recommends "$@" >/dev/null 2>&1 \
    || { apt-get update >/dev/null 2>&1 && apt-get install -y --no-install-recommends "$@" >/dev/null 2>&1; } \
    || echo "apt-get could not install $* (continuing)"
}

missing=()
[ -f /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz ] || missing+=(dataset-fashion-mnist)
if [ "${TEST:-0}" = 1 ] && ! command -v chromium >/dev/null 2>&1; then missing+=(chromium); fi
[ ${#missing[@]} -eq 0 ] || apt_install "${missing[@]}"

[ -x .venv/bin/python ] || "$PY" -m venv .venv
stamp=".venv/.installed-$( (cat requirements.txt; [ "${TEST:-0}" = 1 ] && cat requirements-dev.txt) | sha1sum | cut -c1-12)"
if [ ! -f "$stamp" ]; then
  # torch first and pinned: an unpinned resolve drags a different, larger build.
  .venv/bin/python -m pip install -q "torch==2.14.1" "torchvision==0.29.1"
  if [ "${TEST:-0}" = 1 ]; then
    .venv/bin/python -m pip install -q -r requirements-dev.txt
  else
    .venv/bin/python -m pip install -q -r requirements.txt
  fi
  touch "$stamp"
fi
