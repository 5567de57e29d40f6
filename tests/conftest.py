import os
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing in the tests may wait on the network

from core.store import open_store  # noqa: E402

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
