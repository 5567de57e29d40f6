"""Small images for points: from the payload's `image_url`, or its `path` under an image root. Never raises.

Both come from data, so both are checked: the image root must lie under ATLAS_ALLOWED_ROOTS (core.paths) and a
path must stay inside it; a URL is fetched only through core.netguard (allowed hosts, public addresses, one
deadline, a size cap).
"""
from __future__ import annotations

import hashlib
import io
import json
import threading
from pathlib import Path
from typing import Any, Iterable, Mapping

from PIL import Image

from . import images, netguard, paths, settings

MAX_DOWNLOAD_BYTES = 20_000_000
_roots_lock = threading.Lock()


def image_source(payload: Mapping[str, Any], image_root: str | Path | None) -> str | None:
    """Where the point's image lives: a file path (preferred, when it exists) or a URL."""
    rel = payload.get("path")
    if image_root and isinstance(rel, str) and rel:
        try:
            root = paths.check_path(image_root, "image folder")
            candidate = (root / rel).resolve()
            if candidate.is_relative_to(root) and candidate.is_file():  # a payload cannot point outside the root
                return str(candidate)
        except (OSError, ValueError):  # outside the allowed roots, a NUL byte, a name too long: no such file
            pass
    for key in ("image_url", "url", "image"):
        value = payload.get(key)
        if isinstance(value, str) and value.startswith(("http://", "https://")):
            return value
    return None


def _trusted() -> list[str]:
    """Image URLs the operator configured: fetched even from private addresses."""
    return [settings.get("ATLAS_IMAGE_BASE_URL")]


def thumbnail(payload: Mapping[str, Any], image_root: str | Path | None, size: int = 160,
              cache_dir: str | Path | None = None, max_pixels: int = 50_000_000,
              timeout: float = netguard.DEFAULT_TIMEOUT, base_urls: Iterable[str] = ()) -> Image.Image | None:
    """An RGB thumbnail no larger than size x size, or None when the image cannot be found, read or fetched.

    timeout: seconds for the whole download; base_urls: where the collection's images were published at ingest
    (recall_base_urls), whose host may be fetched from besides ATLAS_ALLOWED_HOSTS."""
    source = image_source(payload, image_root)
    if source is None:
        return None
    base_urls = list(base_urls)
    is_url = source.startswith("http")
    if is_url and not netguard.host_permitted(source, base_urls=base_urls, trusted=_trusted()):
        return None  # not even from the cache: what the rules refuse is not shown
    key = source
    if not is_url:
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
        data = netguard.fetch(source, base_urls=base_urls, trusted=_trusted(), timeout=timeout,
                              max_bytes=MAX_DOWNLOAD_BYTES) if is_url else images.read_file(Path(source))
        img = images.thumbnail(images.decode(data, max_pixels).image, size)
    except Exception:  # missing, refused, unreachable or corrupt: the caller shows a placeholder
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


def remember_root(cache_dir: str | Path, location: str, collection: str, folder: str | Path,
                  base_url: str = "") -> None:
    """Remember the folder a collection was ingested from, and the base URL its image_url values start with."""
    path = _roots_file(cache_dir)
    with _roots_lock:
        roots = recalled_roots(cache_dir)
        roots[f"{location}::{collection}"] = str(Path(folder).resolve())
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(roots, indent=1))
        if base_url:
            # kept for good: points written with an older base URL keep it in their payload
            urls = _read_json(_base_urls_file(cache_dir))
            known = urls.setdefault(f"{location}::{collection}", [])
            if base_url.rstrip("/") not in known:
                known.append(base_url.rstrip("/"))
            _base_urls_file(cache_dir).write_text(json.dumps(urls, indent=1))


def _base_urls_file(cache_dir: str | Path) -> Path:
    return Path(cache_dir) / "image_base_urls.json"


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def recall_base_urls(cache_dir: str | Path, location: str, collection: str) -> list[str]:
    """The base URLs a collection's images were published at when it was ingested here (may be empty)."""
    urls = _read_json(_base_urls_file(cache_dir)).get(f"{location}::{collection}", [])
    return [u for u in urls if isinstance(u, str)]


def recalled_roots(cache_dir: str | Path) -> dict[str, str]:
    try:
        return json.loads(_roots_file(cache_dir).read_text())
    except (OSError, ValueError):
        return {}


def recall_root(cache_dir: str | Path, location: str, collection: str) -> str | None:
    return recalled_roots(cache_dir).get(f"{location}::{collection}")
