"""Image Atlas core library: UI-free; the app, the CLI and the tests all call into it."""
import os
from pathlib import Path

from . import settings

# numba (UMAP, NN-descent) compiles its kernels on first use, about a minute on 2 cores. Its on-disk cache must be
# chosen before numba is first imported, by whichever module that is, so it is set here; `python -m core warmup`
# (run by scripts/setup.sh) fills it ahead, so that a user's first map does not pay for it.
os.environ.setdefault("NUMBA_CACHE_DIR", str((Path(settings.get("ATLAS_CACHE_DIR")) / "numba").resolve()))
