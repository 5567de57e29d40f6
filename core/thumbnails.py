"""Small images for points: from the payload's `image_url`, or its `path` under an image root. Never raises."""
from __future__ import annotations

import hashlib
import io
import json
import threading
import urllib.request
from pathlib import Path
from typing import Any, Mapping

from PIL import Image

from . import images

MAX_DOWNLOAD_BYTES = 20_000_000
_roots_lock = threading.Lock()


def image_source(payload: Mapping[str, Any], image_root: str | Path | None) -> str | None:
    """Where the point's image lives: a file path (preferred, when it exists) or a URL."""
    rel = payload.get("path")
    if image_root and isinstance(rel, str) and rel:
        try:
            root = Path(image_root).expanduser().resolve()
            candidate = (root / rel).resolve()
            if candidate.is_relative_to(root) and candidate.is_file():  # a payload cannot point outside the root
                return str(candidate)
        except (OSError, ValueError):  # a NUL byte or a name too long for the file system: no such file
            pass
    for key in ("image_url", "url", "image"):
        value = payload.get(key)
        if isinstance(value, str) and value.startswith(("http://", "https://")):
            return value
    return None


def _fetch(url: str, timeout: float) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - http(s) only, checked above
        data = resp.read(MAX_DOWNLOAD_BYTES + 1)
    if len(data) > MAX_DOWNLOAD_BYTES:
        raise images.BadImage("image too large to download")
    return data


def thumbnail(payload: Mapping[str, Any], image_root: str | Path | None, size: int = 160,
              cache_dir: str | Path | None = None, max_pixels: int = 50_000_000,
              timeout: float = 3.0) -> Image.Image | None:
    """An RGB thumbnail no larger than size x size, or None when the image cannot be found or read."""
    source = image_source(payload, image_root)
    if source is None:
        return None
    key = source
    if not source.startswith("http"):
        try:
            st = Path(source).stat()
        except OSError:  # deleted since image_source looked
            return None
        key = f"{source}:{st.st_mtime_ns}:{st.st_size}"
    cached = Path(cache_dir) / f"{hashlib.sha1(f'{key}:{size}'.encode()).hexdigest()}.jpg" if cache_dir else None
    if cached is not None and cached.is_file():
        try:
            return Image.open(cached).convert("RGB")
        except OSError:
            pass
    try:
        data = _fetch(source, timeout) if source.startswith("http") else images.read_file(Path(source))
        img = images.thumbnail(images.decode(data, max_pixels).image, size)
    except Exception:  # missing, unreachable or corrupt: the caller shows a placeholder
        return None
    if cached is not None:
        try:
            cached.parent.mkdir(parents=True, exist_ok=True)
            buf = io.BytesIO()
            img.save(buf, "JPEG", quality=85)
            cached.write_bytes(buf.getvalue())
        except OSError:
            pass
    return img


def placeholder(size: int = 160, text: str = "no image") -> Image.Image:
    from PIL import ImageDraw

    img = Image.new("RGB", (size, size), (235, 235, 235))
    ImageDraw.Draw(img).text((10, size // 2 - 6), text, fill=(120, 120, 120))
    return img


# --- remembered image folders: collection -> folder it was ingested from ------------------------------------
def _roots_file(cache_dir: str | Path) -> Path:
    return Path(cache_dir) / "image_roots.json"


def remember_root(cache_dir: str | Path, location: str, collection: str, folder: str | Path) -> None:
    path = _roots_file(cache_dir)
    with _roots_lock:
        roots = recalled_roots(cache_dir)
        roots[f"{location}::{collection}"] = str(Path(folder).resolve())
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(roots, indent=1))


def recalled_roots(cache_dir: str | Path) -> dict[str, str]:
    try:
        return json.loads(_roots_file(cache_dir).read_text())
    except (OSError, ValueError):
        return {}


def recall_root(cache_dir: str | Path, location: str, collection: str) -> str | None:
    return recalled_roots(cache_dir).get(f"{location}::{collection}")
