"""encoding.py on small images: each format's bytes, round trips per bit depth and channels."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from niftislice.encoding import EXTENSIONS, decode, encode
from niftislice.errors import InputError, OptionError
from niftislice.types import ImageFormat

MAGIC = {
    ImageFormat.PNG: (b"\x89PNG\r\n\x1a\n",),
    ImageFormat.JPG: (b"\xff\xd8\xff",),
    ImageFormat.TIF: (b"II*\x00", b"MM\x00*"),
    ImageFormat.WEBP: (b"RIFF",),
}


def _image(dtype: type, channels: int, shape: tuple[int, int] = (37, 53)) -> np.ndarray:
    """A smooth image (lossy codecs keep it well) with a different ramp in each channel."""
    h, w = shape
    top = np.iinfo(dtype).max
    y, x = np.mgrid[0:h, 0:w]
    planes = [(x / (w - 1)) * top, (y / (h - 1)) * top, ((x + y) / (w + h - 2)) * top]
    planes.append(np.full((h, w), top * 0.6))
    stack = np.stack(planes[: channels or 1], axis=-1) if channels else planes[0]
    return np.rint(stack).astype(dtype)


@pytest.mark.parametrize(
    ("fmt", "dtype", "channels"),
    [
        (ImageFormat.PNG, np.uint8, 0),
        (ImageFormat.PNG, np.uint16, 0),
        (ImageFormat.PNG, np.uint8, 3),
        (ImageFormat.PNG, np.uint8, 4),
        (ImageFormat.PNG, np.uint16, 3),
        (ImageFormat.TIF, np.uint8, 0),
        (ImageFormat.TIF, np.uint16, 0),
        (ImageFormat.TIF, np.uint8, 3),
        (ImageFormat.TIF, np.uint8, 4),
    ],
)
def test_lossless_formats_round_trip_exactly(fmt, dtype, channels):
    image = _image(dtype, channels)
    data = encode(image, fmt)
    assert data.startswith(MAGIC[fmt])
    back = decode(data)
    assert back.dtype == dtype
    np.testing.assert_array_equal(back, image)


@pytest.mark.parametrize("fmt", [ImageFormat.JPG, ImageFormat.WEBP])
@pytest.mark.parametrize("channels", [0, 3])
def test_lossy_formats_keep_the_picture(fmt, channels):
    image = _image(np.uint8, channels)
    data = encode(image, fmt)
    assert data.startswith(MAGIC[fmt])
    back = decode(data)
    if fmt is ImageFormat.WEBP and not channels:  # WebP has no grey mode: three equal channels
        assert back.shape == (*image.shape, 3)
        assert np.abs(back.astype(int) - back[..., :1]).max() <= 1
        back = back[..., 0]
    assert back.shape == image.shape and back.dtype == np.uint8
    assert np.abs(back.astype(int) - image).mean() < 2.0


@pytest.mark.parametrize("fmt", list(ImageFormat))
def test_colour_is_rgb_in_every_format(fmt):
    """A red image stays red (OpenCV works in BGR; a missed conversion swaps red and blue), as
    another reader (Pillow) sees the file."""
    image = np.zeros((16, 16, 3), np.uint8)
    image[..., 0] = 220
    data = encode(image, fmt)
    with Image.open(io.BytesIO(data)) as im:
        r, g, b = np.asarray(im.convert("RGB"), dtype=int).mean(axis=(0, 1))
    assert r > 200 and g < 20 and b < 20
    assert decode(data)[..., 0].mean() > 200


def test_jpeg_drops_alpha():
    image = _image(np.uint8, 4)
    back = decode(encode(image, ImageFormat.JPG))
    assert back.shape == (*image.shape[:2], 3)
    assert np.abs(back.astype(int) - image[..., :3]).mean() < 2.0


@pytest.mark.parametrize("fmt", [ImageFormat.JPG, ImageFormat.WEBP])
def test_sixteen_bits_are_refused_where_the_format_cannot_hold_them(fmt):
    with pytest.raises(OptionError, match=rf"format: {fmt.value} cannot store 16-bit.*png or tif"):
        encode(_image(np.uint16, 0), fmt)


@pytest.mark.parametrize(("fmt", "default"), [(ImageFormat.JPG, 95), (ImageFormat.WEBP, 90)])
def test_quality_default_and_effect(fmt, default):
    rng = np.random.default_rng(0)
    image = np.clip(_image(np.uint8, 0).astype(int) + rng.integers(-20, 20, (37, 53)), 0, 255)
    image = image.astype(np.uint8)
    assert encode(image, fmt) == encode(image, fmt, default)
    assert len(encode(image, fmt, 30)) < len(encode(image, fmt, default))


def test_every_format_has_its_extension():
    assert {f: EXTENSIONS[f] for f in ImageFormat} == {
        ImageFormat.PNG: ".png",
        ImageFormat.JPG: ".jpg",
        ImageFormat.TIF: ".tif",
        ImageFormat.WEBP: ".webp",
    }


def test_decode_accepts_an_array_and_refuses_garbage():
    data = encode(_image(np.uint8, 0), ImageFormat.PNG)
    np.testing.assert_array_equal(decode(np.frombuffer(data, np.uint8)), decode(data))
    with pytest.raises(InputError, match="not a readable image"):
        decode(b"not an image at all")
