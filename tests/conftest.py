import atexit
import os
import shutil
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing in the tests may wait on the network
# Exported models go to a temporary folder, not ./data/cache; numba's compiled map code (scripts/setup.sh warms it
# there) stays where it is, or every test process would compile UMAP again.
os.environ.setdefault("NUMBA_CACHE_DIR", str((ROOT / "data" / "cache" / "numba").resolve()))
os.environ["ATLAS_CACHE_DIR"] = tempfile.mkdtemp(prefix="atlas-test-cache-")
atexit.register(shutil.rmtree, os.environ["ATLAS_CACHE_DIR"], True)

from core.ingest import ingest  # noqa: E402
from core.store import open_store  # noqa: E402
from tests.fakes import ColorEmbedder, write_image  # noqa: E402

ENGINES = ["embedded", "client"]


@pytest.fixture(params=ENGINES)
def store(request, tmp_path):
    """The same suite runs on every engine: Qdrant Edge, and qdrant-client's API (stand-in for a server)."""
    if request.param == "embedded":
        s = open_store(path=str(tmp_path / "qdrant"))
    else:
        s = open_store(url=":memory:")
    yield s
    s.close()


def unit_rows(n: int, d: int, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def shown(markdown: str) -> str:
    """What a message built with ui.text.md_escape shows: without its backslash escapes and word joiners."""
    import re

    return re.sub(r"\\(.)", r"\1", markdown.replace("\u2060", ""))


# --- app environments shared by the AppTest files ---------------------------------------------------------------
@pytest.fixture
def app_env(tmp_path, monkeypatch):
    folder = tmp_path / "fruit"
    for label, n in {"apple": 5, "banana": 3, "**kiwi** <img src=x>": 2}.items():
        for i in range(n):
            write_image(folder / label / f"{i}.png", (40 * i, 100, 200))
    store_path = tmp_path / "qdrant"
    cache = tmp_path / "cache"
    with open_store(path=str(store_path)) as store:
        ingest(store, folder, "fruits", ColorEmbedder(), cache_dir=cache)
    monkeypatch.setenv("ATLAS_STORE_PATH", str(store_path))
    monkeypatch.setenv("ATLAS_CACHE_DIR", str(cache))
    monkeypatch.delenv("QDRANT_URL", raising=False)
    return tmp_path


def make_colors_env(tmp_path, monkeypatch, extras: dict[str, tuple[int, int, int]]):
    """Collection "colors": 12 jittered images each of red, green and blue, plus `extras` ({"blue/odd.png": rgb}),
    embedded with the colour embedder into an embedded store the app is pointed at; returns the store folder."""
    folder = tmp_path / "colors"
    rng = np.random.default_rng(0)
    for label, base in {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220)}.items():
        for i in range(12):
            jitter = tuple(int(c + rng.integers(-25, 25)) for c in base)
            write_image(folder / label / f"{i}.png", tuple(max(0, min(255, c)) for c in jitter))
    for rel, rgb in extras.items():
        write_image(folder / rel, rgb)
    store_path = tmp_path / "qdrant"
    with open_store(path=str(store_path)) as store:
        ingest(store, folder, "colors", ColorEmbedder(), cache_dir=tmp_path / "cache")
    monkeypatch.setenv("ATLAS_STORE_PATH", str(store_path))
    monkeypatch.setenv("ATLAS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("QDRANT_URL", raising=False)
    return store_path


@pytest.fixture
def colors_env(tmp_path, monkeypatch):
    """A red image filed under 'blue' and a green one under 'red' (label issues), and a black one (an outlier)."""
    return make_colors_env(tmp_path, monkeypatch, {"blue/odd.png": (225, 25, 35), "red/greenish.png": (35, 205, 45),
                                                   "blue/dark.png": (0, 0, 0)})


# --- a real `streamlit run` for the browser tests ----------------------------------------------------------------
@contextmanager
def streamlit_app(**env: str) -> Iterator[str]:
    """`streamlit run app.py` on a free port with these settings (QDRANT_URL unset unless given); yields its URL."""
    import socket
    import subprocess
    import time
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    full_env = {k: v for k, v in os.environ.items() if k != "QDRANT_URL"} | {"HF_HUB_OFFLINE": "1", **env}
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"), "--server.port",
                             str(port), "--server.headless", "true", "--server.address", "127.0.0.1"],
                            cwd=ROOT, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 120
        while True:
            try:
                urllib.request.urlopen(f"{url}/_stcore/health", timeout=2)
                break
            except OSError:
                if time.time() > deadline or proc.poll() is not None:
                    proc.kill()
                    raise RuntimeError("streamlit did not start: "
                                       + proc.stdout.read().decode(errors="replace")[-2000:]) from None
                time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
