"""Image sizes from file headers (what ``stack`` checks before decoding anything)."""

from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
from PIL import Image

from niftislice.stacking.imagesize import declared_size

WIDTH, HEIGHT = 53, 37  # not square, so a swapped width and height shows


def _image(channels: int, dtype: type) -> np.ndarray:
    rng = np.random.default_rng(7)
    top = 255 if dtype is np.uint8 else 65535
    shape = (HEIGHT, WIDTH) if channels == 1 else (HEIGHT, WIDTH, channels)
    return rng.integers(0, top, shape, endpoint=True).astype(dtype)


@pytest.mark.parametrize("channels", [1, 3, 4])
@pytest.mark.parametrize("ext", [".png", ".jpg", ".tif", ".webp"])
def test_opencv_files_of_every_format(ext, channels):
    ok, buf = cv2.imencode(ext, _image(channels, np.uint8))
    assert ok
    assert declared_size(buf.tobytes()) == (WIDTH, HEIGHT)


@pytest.mark.parametrize("ext", [".png", ".tif"])
def test_sixteen_bit_files(ext):
    ok, buf = cv2.imencode(ext, _image(1, np.uint16))
    assert ok and declared_size(buf.tobytes()) == (WIDTH, HEIGHT)


@pytest.mark.parametrize(
    ("fmt", "options"),
    [
        ("PNG", {}),
        ("JPEG", {"progressive": True, "exif": b"Exif\x00\x00" + bytes(3000)}),
        ("TIFF", {"compression": "tiff_lzw"}),
        ("WEBP", {"lossless": True}),
        ("WEBP", {"quality": 60}),
    ],
)
def test_files_from_another_writer(fmt, options):
    """Pillow's files: a progressive JPEG behind an EXIF segment, an LZW TIFF, lossless (VP8L)
    and lossy (VP8) WebP."""
    buf = io.BytesIO()
    Image.fromarray(_image(3, np.uint8)).save(buf, fmt, **options)
    assert declared_size(buf.getvalue()) == (WIDTH, HEIGHT)


def test_cut_short_or_unknown_bytes_give_none():
    _, buf = cv2.imencode(".png", _image(1, np.uint8))
    data = buf.tobytes()
    assert declared_size(data[:20]) is None
    assert declared_size(b"") is None
    assert declared_size(b"BM" + bytes(60)) is None  # a BMP: not a format stack reads
    _, jpg = cv2.imencode(".jpg", _image(1, np.uint8))
    assert declared_size(jpg.tobytes()[:30]) is None
