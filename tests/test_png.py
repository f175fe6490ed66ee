"""The PNG writer: files that libpng and Pillow read back exactly, rows identical to libpng's."""

from __future__ import annotations

import io
import struct
import zlib

import cv2
import nibabel as nib
import numpy as np
import pytest
from PIL import Image

from niftislice.png import encode_png

SHAPES = [(1, 1), (1, 9), (9, 1), (37, 53), (256, 500)]


def _chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """(type, data) of every chunk, checking lengths and CRCs on the way."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, chunks = 8, []
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        assert crc == zlib.crc32(kind + body), kind
        chunks.append((kind, body))
        pos += 12 + length
    assert pos == len(data)
    return chunks


def _scanlines(data: bytes) -> bytes:
    return zlib.decompress(b"".join(body for kind, body in _chunks(data) if kind == b"IDAT"))


def _libpng(data: bytes) -> np.ndarray:
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if img.ndim == 3:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB if img.shape[2] == 3 else cv2.COLOR_BGRA2RGBA)
    return img


def _random(shape: tuple[int, ...], dtype: type) -> np.ndarray:
    rng = np.random.default_rng(sum(shape) + np.dtype(dtype).itemsize)
    return rng.integers(0, np.iinfo(dtype).max, shape, dtype=dtype, endpoint=True)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
@pytest.mark.parametrize("channels", [1, 3, 4])
@pytest.mark.parametrize("shape", SHAPES)
def test_libpng_reads_back_every_sample(shape, channels, dtype):
    image = _random(shape if channels == 1 else (*shape, channels), dtype)
    decoded = _libpng(encode_png(image))
    assert decoded.dtype == dtype
    np.testing.assert_array_equal(decoded.reshape(image.shape), image)


@pytest.mark.parametrize(
    ("channels", "dtype", "mode"),
    [
        (1, np.uint8, "L"),
        (1, np.uint16, "I;16"),
        (2, np.uint8, "LA"),
        (3, np.uint8, "RGB"),
        (4, np.uint8, "RGBA"),
    ],
)
def test_pillow_verifies_and_reads_back(channels, dtype, mode):
    shape = (37, 53) if channels == 1 else (37, 53, channels)
    image = _random(shape, dtype)
    data = encode_png(image)
    Image.open(io.BytesIO(data)).verify()  # checks every CRC and the zlib stream
    with Image.open(io.BytesIO(data)) as im:
        assert im.mode == mode
        assert im.size == (53, 37)
        np.testing.assert_array_equal(np.asarray(im).astype(dtype), image)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_rows_match_libpng_byte_for_byte(sample, dtype):
    """libpng told to use the Up filter produces exactly our filtered rows, on real MRI slices."""
    data = np.asarray(nib.load(sample).dataobj)
    for image in (data[:, :, 90], data[:, 110, :], data[98]):
        image = np.ascontiguousarray(image).astype(dtype) * (257 if dtype == np.uint16 else 1)
        up = [cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_UP]
        reference = cv2.imencode(".png", image, up)[1].tobytes()
        ours = encode_png(image)
        assert _scanlines(ours) == _scanlines(reference)
        assert [k for k, _ in _chunks(ours)] == [b"IHDR", b"IDAT", b"IEND"]
        assert _chunks(ours)[0][1] == _chunks(reference)[0][1]  # the same IHDR, field by field
        # Not a size regression either: within 10 % of OpenCV's default encoder.
        default = cv2.imencode(".png", image)[1]
        assert len(ours) < 1.1 * default.size


def test_header_fields():
    ihdr = _chunks(encode_png(np.zeros((3, 5, 3), np.uint16)))[0][1]
    assert struct.unpack(">IIBBBBB", ihdr) == (5, 3, 16, 2, 0, 0, 0)


@pytest.mark.parametrize(
    "image",
    [
        np.zeros((4, 4), np.float32),
        np.zeros((4, 4), np.int16),
        np.zeros((4, 4, 5), np.uint8),
        np.zeros((0, 4), np.uint8),
        np.zeros((4,), np.uint8),
    ],
    ids=["float32", "int16", "5-channels", "empty", "1d"],
)
def test_refuses_what_png_cannot_store(image):
    with pytest.raises(ValueError, match="PNG"):
        encode_png(image)


def test_does_not_change_its_input():
    image = _random((20, 30), np.uint16)
    before = image.copy()
    encode_png(image)
    encode_png(np.asfortranarray(image))
    np.testing.assert_array_equal(image, before)


def test_big_endian_input_gives_the_same_file():
    image = _random((20, 30), np.uint16)
    assert encode_png(image.astype(">u2")) == encode_png(image)


def test_data_beyond_one_chunk_is_split_into_several_idat(monkeypatch):
    from niftislice import png

    image = _random((50, 60), np.uint16)
    monkeypatch.setattr(png, "_MAX_CHUNK", 100)
    data = encode_png(image)
    kinds = [k for k, _ in _chunks(data)]
    assert kinds[0] == b"IHDR" and kinds[-1] == b"IEND" and kinds.count(b"IDAT") > 10
    np.testing.assert_array_equal(_libpng(data), image)
    Image.open(io.BytesIO(data)).verify()


_SAME_BYTES_SCRIPT = """
import hashlib, sys
import numpy as np
from niftislice.png import encode_png

rng = np.random.default_rng(0)
for n in range(3000):
    rows, cols = rng.integers(1, 40, 2)
    image = (rng.integers(0, 4, (rows, cols)) * 60).astype(np.uint8)
    if n % 2:
        image = np.cumsum(image, axis=0).astype(np.uint8)
    if n % 7 == 0:
        image = image.astype(np.uint16) * 200
    sys.stdout.write(hashlib.sha256(encode_png(image)).hexdigest()[:12] + chr(10))
"""


def test_every_process_writes_the_same_bytes():
    """Shards and manifests promise byte-identical files run to run and whatever -j, so the
    same pixels must give the same bytes in every process. ISA-L through python-isal 1.9 did
    not: 14-31 of these 3,000 small images came out differently in one of 4-5 fresh processes
    (its output depends on the process's memory layout)."""
    import subprocess
    import sys

    runs = [
        subprocess.run(
            [sys.executable, "-c", _SAME_BYTES_SCRIPT], capture_output=True, text=True, check=True
        ).stdout.split()
        for _ in range(4)
    ]
    assert len(runs[0]) == 3000
    differing = [i for i in range(3000) if len({r[i] for r in runs}) > 1]
    assert not differing, f"{len(differing)} of 3000 images differ between processes"
