"""Reading image files into RGB PIL images, turning every kind of bad input into a readable reason."""
from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff", ".heic", ".heif", ".avif"}

try:  # HEIC/HEIF (iPhone photos) where the optional pillow-heif package is installed
    from pillow_heif import register_heif_opener

    register_heif_opener()
except ImportError:
    pass

# Our own pixel limit is checked before decoding; Pillow's is lifted so it does not fire first with its own wording.
Image.MAX_IMAGE_PIXELS = None

# Models scale the short side to ~224 px: a 5000x1 strip would become 1,120,000x224 (~750 MB). Past this ratio an
# image is refused; up to it, the scaled image stays under ~15 MB.
MAX_ASPECT_RATIO = 100


class BadImage(Exception):
    """A file that cannot be used as an image; the message says why, in words a user understands."""


@dataclass
class LoadedImage:
    image: Image.Image  # RGB, EXIF rotation applied
    sha1: str
    width: int
    height: int


def _to_rgb(img: Image.Image) -> Image.Image:
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16/32-bit greyscale: scale to 8 bits by the actual range, not by clipping at 255.
        import numpy as np

        arr = np.asarray(img, dtype=np.float64)
        lo, hi = float(arr.min()), float(arr.max())
        arr = (arr - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(arr)
        return Image.fromarray(arr.astype("uint8"), "L").convert("RGB")
    if img.mode == "P":
        img = img.convert("RGBA") if "transparency" in img.info else img.convert("RGB")
    if img.mode in ("RGBA", "LA", "PA", "RGBa"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if img.mode != "RGB":
        return img.convert("RGB")
    return img


def decode(data: bytes, max_pixels: int, sha1: str | None = None) -> LoadedImage:
    """Decode image bytes to RGB. Raises BadImage with the reason for empty, non-image, corrupt,
    truncated or oversized input."""
    if not data:
        raise BadImage("empty file (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            img = Image.open(io.BytesIO(data))
            width, height = img.size
            if width * height > max_pixels:
                raise BadImage(f"too many pixels ({width}x{height} > ATLAS_MAX_IMAGE_PIXELS={max_pixels:,}); "
                               "possible decompression bomb")
            if min(width, height) < 1 or max(width, height) > MAX_ASPECT_RATIO * min(width, height):
                raise BadImage(f"extreme shape ({width}x{height}): width and height may differ at most "
                               f"{MAX_ASPECT_RATIO}-fold; crop the image to its subject")
            img.seek(0)  # first frame of animations
            img.load()
            img = ImageOps.exif_transpose(img)
            rgb = _to_rgb(img)
    except BadImage:
        raise
    except UnidentifiedImageError:
        raise BadImage("not an image Pillow can read") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError, EOFError) as exc:
        raise BadImage(f"corrupt or truncated image ({exc})") from None
    return LoadedImage(rgb, sha1 or hashlib.sha1(data).hexdigest(), rgb.width, rgb.height)


def read_file(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except PermissionError:
        raise BadImage("cannot read file: permission denied") from None
    except OSError as exc:
        raise BadImage(f"cannot read file ({exc.strerror or exc})") from None


def load(path: Path | str, max_pixels: int) -> LoadedImage:
    return decode(read_file(Path(path)), max_pixels)


def limit_aspect(img: Image.Image, ratio: int = MAX_ASPECT_RATIO) -> Image.Image:
    """The centre of an image cropped to at most `ratio`:1, so that model preprocessing (short side to 224)
    stays small for images that did not come through decode(). Unchanged for ordinary images."""
    w, h = img.size
    if w > ratio * h:
        left = (w - ratio * h) // 2
        return img.crop((left, 0, left + ratio * h, h))
    if h > ratio * w:
        top = (h - ratio * w) // 2
        return img.crop((0, top, w, top + ratio * w))
    return img


def thumbnail(img: Image.Image, size: int = 256) -> Image.Image:
    out = img.copy()
    out.thumbnail((size, size))
    return out
