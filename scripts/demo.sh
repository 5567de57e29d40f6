#!/usr/bin/env bash
# Quick start: install, build the demo dataset (2,000 images with planted mislabels), ingest it into the embedded
# Qdrant, and open the app at http://localhost:8501 (PORT=... for another port; other arguments go to streamlit).
#
#   scripts/demo.sh --smoke   the same steps without a person: start the app in the background, wait until it is
#                             healthy, open every page in headless Chromium (draws the default map too), fail on
#                             any exception, stop the app. CI runs this. SCREENSHOTS=docs also rewrites the
#                             README's screenshots from what the browser saw.
set -Eeuo pipefail
cd "$(dirname "$0")/.."

smoke=0
if [ "${1:-}" = "--smoke" ]; then smoke=1; shift; fi
PORT=${PORT:-8501}

step="starting"
hint=""
trap 'rc=$?; echo >&2; echo "demo failed (exit $rc) while $step." >&2; [ -z "$hint" ] || echo "  what to do: $hint" >&2; exit $rc' ERR

step="installing (scripts/setup.sh)"
hint="see the message above from scripts/setup.sh"
scripts/setup.sh
if [ "$smoke" = 1 ]; then
  step="installing the browser check (Playwright, Chromium)"
  BROWSER=1 scripts/setup.sh
fi

step="building and ingesting the demo dataset"
hint="see the message above; python -m core demo --help lists the options"
.venv/bin/python -m core demo --out data/demo --collection demo

if [ "$smoke" = 0 ]; then
  echo "Opening Image Atlas at http://localhost:$PORT (Ctrl+C stops it)"
  exec .venv/bin/python -m ui.serve --server.port "$PORT" "$@"
fi

step="starting the app in the background"
hint="the app's log is in data/demo-smoke.log"
log=data/demo-smoke.log
.venv/bin/python -m ui.serve --server.port "$PORT" --server.headless true \
  --server.address 127.0.0.1 "$@" >"$log" 2>&1 &
app=$!
trap 'kill "$app" 2>/dev/null || true; wait "$app" 2>/dev/null || true' EXIT

step="waiting for the app to answer on http://127.0.0.1:$PORT/_stcore/health"
hint="the last lines of $log say why it did not start (another process on port $PORT? set PORT=...)"
for _ in $(seq 120); do
  if .venv/bin/python -c "import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)" \
       "http://127.0.0.1:$PORT/_stcore/health" 2>/dev/null; then
    break
  fi
  kill -0 "$app" 2>/dev/null || { tail -20 "$log" >&2; false; }
  sleep 1
done
.venv/bin/python -c "import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)" \
  "http://127.0.0.1:$PORT/_stcore/health" || { tail -20 "$log" >&2; false; }

step="opening every page in headless Chromium"
hint="the pages and their errors are listed above; the app's log is in $log"
.venv/bin/python scripts/check_pages.py "http://127.0.0.1:$PORT" --draw-map ${SCREENSHOTS:+--screenshots "$SCREENSHOTS"}
echo "quick start smoke check passed: the demo app served every page without an exception."
