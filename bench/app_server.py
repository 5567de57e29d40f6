"""The app as scripts/demo.sh starts it (`python -m ui.serve`), on a free port, for the browser benchmarks."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def start_app(store: Path, cache: Path, extra_env: dict[str, str] | None = None,
              timeout_s: float = 120) -> tuple[subprocess.Popen, str]:
    """(process, url) of the app serving the embedded store `store` with its cache in `cache`; QDRANT_URL unset."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if k != "QDRANT_URL"} | {
        "HF_HUB_OFFLINE": "1", "ATLAS_STORE_PATH": str(store), "ATLAS_CACHE_DIR": str(cache)} | (extra_env or {})
    proc = subprocess.Popen([sys.executable, "-m", "ui.serve", "--server.port", str(port), "--server.headless",
                             "true", "--server.address", "127.0.0.1"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + timeout_s
    while True:
        try:
            urllib.request.urlopen(f"{url}/_stcore/health", timeout=2)
            return proc, url
        except OSError:
            if time.time() > deadline or proc.poll() is not None:
                proc.kill()
                raise SystemExit("The app did not start; run `python -m ui.serve` by hand to see why.") from None
            time.sleep(0.5)
