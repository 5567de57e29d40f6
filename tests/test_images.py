"""Every kind of awkward image file either decodes to RGB or is rejected with a reason."""
import io

import numpy as np
import pytest
from PIL import Image

from core import images


def _bytes(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def test_exif_rotation_is_applied():
    img = Image.new("RGB", (40, 20), (10, 200, 10))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees on display
    out = images.decode(_bytes(img, "JPEG", exif=exif), 10**7)
    assert out.image.size == (20, 40) and (out.width, out.height) == (20, 40)


@pytest.mark.parametrize("mode", ["CMYK", "L", "P", "RGBA", "LA", "I;16", "1"])
def test_modes_become_rgb(mode):
    src = Image.new("RGB", (16, 12), (250, 10, 10)).convert(mode) if mode != "I;16" else \
        Image.fromarray(np.linspace(0, 65535, 16 * 12).astype(np.uint16).reshape(12, 16))
    fmt = "JPEG" if mode == "CMYK" else "TIFF" if mode == "I;16" else "PNG"
    out = images.decode(_bytes(src, fmt), 10**7)
    assert out.image.mode == "RGB" and out.image.size == (16, 12)


def test_sixteen_bit_keeps_contrast():
    arr = np.zeros((4, 4), np.uint16)
    arr[:, 2:] = 60000
    out = np.asarray(images.decode(_bytes(Image.fromarray(arr), "PNG"), 10**7).image)
    assert out[:, :2].max() == 0 and out[:, 2:].min() == 255  # scaled by range, not clipped at 255


def test_transparent_palette_composited_on_white():
    img = Image.new("RGBA", (8, 8), (0, 0, 0, 0)).convert("P")
    img.info["transparency"] = 0
    out = np.asarray(images.decode(_bytes(img, "PNG", transparency=0), 10**7).image)
    assert out.min() == 255


def test_gif_first_frame():
    frames = [Image.new("RGB", (10, 10), c) for c in [(255, 0, 0), (0, 0, 255)]]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:])
    out = np.asarray(images.decode(buf.getvalue(), 10**7).image)
    assert out[..., 0].mean() > 200 and out[..., 2].mean() < 50


@pytest.mark.parametrize("data, reason", [
    (b"", "empty file"),
    (b"hello, I am text", "not an image"),
])
def test_rejected_inputs(data, reason):
    with pytest.raises(images.BadImage, match=reason):
        images.decode(data, 10**7)


def test_truncated_jpeg_is_rejected():
    data = _bytes(Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8)), "JPEG")
    with pytest.raises(images.BadImage, match="corrupt or truncated"):
        images.decode(data[: len(data) // 2], 10**7)


def test_decompression_bomb_is_rejected_before_decoding():
    data = _bytes(Image.new("L", (4000, 4000)), "PNG")  # small file, many pixels
    with pytest.raises(images.BadImage, match="decompression bomb"):
        images.decode(data, max_pixels=1_000_000)
    assert images.decode(data, max_pixels=20_000_000).width == 4000


def test_sha1_matches_content(tmp_path):
    p = tmp_path / "x.png"
    p.write_bytes(_bytes(Image.new("RGB", (4, 4)), "PNG"))
    import hashlib
    assert images.load(p, 10**7).sha1 == hashlib.sha1(p.read_bytes()).hexdigest()
