"""Results worth keeping across page reloads and restarts (projections, kNN graphs): in memory and on disk,
keyed by a hash of everything they were computed from."""
from __future__ import annotations

import hashlib
import json
import os
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np

Arrays = dict[str, np.ndarray]


def key_of(*parts: Any) -> str:
    return hashlib.sha1(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


class ArrayCache:
    """A small LRU of numpy results in memory, backed by .npz files in `directory` (None: memory only)."""

    def __init__(self, directory: str | os.PathLike[str] | None, max_items: int = 16):
        self.directory = Path(directory) if directory else None
        self.max_items = max_items
        self._items: OrderedDict[str, Arrays] = OrderedDict()
        self._lock = threading.Lock()

    def _file(self, kind: str, key: str) -> Path | None:
        return self.directory / kind / f"{key}.npz" if self.directory else None

    def get(self, kind: str, key: str) -> Arrays | None:
        with self._lock:
            if f"{kind}/{key}" in self._items:
                self._items.move_to_end(f"{kind}/{key}")
                return self._items[f"{kind}/{key}"]
        path = self._file(kind, key)
        if path is None or not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {name: data[name] for name in data.files}
        except (OSError, ValueError):
            return None
        self._remember(kind, key, arrays)
        return arrays

    def put(self, kind: str, key: str, arrays: Arrays) -> None:
        self._remember(kind, key, arrays)
        path = self._file(kind, key)
        if path is None:
            return
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # one temporary name per writer: two threads or processes may store the same key at once
            tmp = path.with_name(f"{path.stem}.{os.getpid()}-{threading.get_ident()}.tmp.npz")
            np.savez(tmp, **arrays)
            os.replace(tmp, path)  # readers never see half a file
        except OSError:
            pass  # a full or read-only disk costs a recomputation later, not an error now

    def _remember(self, kind: str, key: str, arrays: Arrays) -> None:
        with self._lock:
            self._items[f"{kind}/{key}"] = arrays
            self._items.move_to_end(f"{kind}/{key}")
            while len(self._items) > self.max_items:
                self._items.popitem(last=False)
