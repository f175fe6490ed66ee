"""PNG writing: every row filtered with PNG's "Up" filter, then compressed with libdeflate.

Encoding is most of a conversion's work, so this is the one encoder we do not take from OpenCV.
The compressor is libdeflate (the ``deflate`` package) because its output is the same bytes in
every process: shards and manifests promise byte-identical files run to run and whatever ``-j``.
ISA-L's deflate (``isal``, which we still use to read ``.nii.gz``) is three times faster but is not
reproducible through python-isal 1.9: the same 3,000 small images compressed in 5 fresh processes
gave 31 that differed between processes (identical within a process, and identical across
processes only with address randomisation off and a fixed hash seed, so it depends on the
process's memory layout); libdeflate gave none in 6. On 142 MRI slices upsampled to 0.5 mm,
one core, medians of 5 (``python benchmarks/png_writer.py``): OpenCV's PNG encoder (libpng,
zlib level 1) 173 megapixels/s and 3.44 MB, this writer 229 megapixels/s and 2.90 MB (with
ISA-L's deflate it was 767 megapixels/s and 3.05 MB). The Up filter (each byte minus the byte
above it) suits the smooth vertical structure of anatomy.

The container itself is fixed and small: the signature, ``IHDR``, one ``IDAT`` and ``IEND``, each
chunk with its CRC-32 (PNG specification, 3rd edition, sections 5 and 11). numpy and libdeflate
release the GIL, so images are encoded in parallel on threads. The tests decode the files with
libpng (through OpenCV) and Pillow, compare the decompressed rows byte for byte with libpng's own
output for the same filter, and check that fresh processes write the same bytes.
"""

from __future__ import annotations

import functools
import struct

import deflate
import numpy as np

from .errors import OptionError

_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_FILTER_UP = 2
# libdeflate level 1: levels 2 and 3 are 7 % and 18 % slower for files 2-3 % smaller
_LEVEL = 1
# PNG colour types by channel count: grey, grey + alpha, RGB, RGBA.
_COLOUR_TYPE = {1: 0, 2: 4, 3: 2, 4: 6}
_MAX_SIDE = 2**31 - 1
_MAX_CHUNK = 2**31 - 1


def encode_png(image: np.ndarray) -> bytes:
    """Encode a grey (H, W) or grey+alpha/RGB/RGBA (H, W, C) uint8 or uint16 image as PNG."""
    if image.dtype.kind != "u" or image.dtype.itemsize not in (1, 2):
        raise OptionError(f"PNG stores uint8 or uint16 samples, not {image.dtype}")
    channels = image.shape[2] if image.ndim == 3 else 1
    if image.ndim not in (2, 3) or channels not in _COLOUR_TYPE:
        raise OptionError(f"PNG needs (H, W) or (H, W, 1-4) samples, not shape {image.shape}")
    height, width = image.shape[:2]
    if not (0 < height <= _MAX_SIDE and 0 < width <= _MAX_SIDE):
        raise OptionError(f"PNG cannot store a {width} x {height} image")
    # PNG samples are big-endian; this is a copy for uint16 and a no-op view for uint8.
    samples = np.ascontiguousarray(image, dtype=image.dtype.newbyteorder(">"))
    rows = samples.reshape(height, -1).view(np.uint8)
    scanlines = np.empty((height, rows.shape[1] + 1), np.uint8)
    scanlines[:, 0] = _FILTER_UP
    scanlines[0, 1:] = rows[0]  # the row above the first one counts as zeros
    np.subtract(rows[1:], rows[:-1], out=scanlines[1:, 1:])  # modulo 256, as the filter wants
    compressed = deflate.zlib_compress(scanlines, _LEVEL)
    head = _head(width, height, 8 * image.dtype.itemsize, _COLOUR_TYPE[channels])
    if len(compressed) <= _MAX_CHUNK:  # always, but for images of gigabytes
        crc = deflate.crc32(compressed, _IDAT_CRC)
        return b"".join((head, _LENGTH.pack(len(compressed)), b"IDAT", compressed,
                         _LENGTH.pack(crc), _IEND))  # fmt: skip
    # one IDAT chunk unless the data outgrows a chunk's length field (PNG: at most 2**31 - 1)
    idat = [
        part
        for start in range(0, len(compressed), _MAX_CHUNK)
        for part in _chunk(b"IDAT", compressed[start : start + _MAX_CHUNK])
    ]
    return b"".join((head, *idat, _IEND))


def _chunk(kind: bytes, data: bytes) -> tuple[bytes, bytes, bytes, bytes]:
    """A chunk's four parts: length, type, data, CRC-32 of type and data."""
    crc = deflate.crc32(data, deflate.crc32(kind))
    return _LENGTH.pack(len(data)), kind, data, _LENGTH.pack(crc)


@functools.lru_cache(maxsize=64)
def _head(width: int, height: int, depth: int, colour: int) -> bytes:
    """The signature and ``IHDR`` chunk: the same for every image of a view (a series of small
    images spends a fifth of its encoding time on its container without this cache)."""
    header = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)
    return b"".join((_SIGNATURE, *_chunk(b"IHDR", header)))


_LENGTH = struct.Struct(">I")
_IDAT_CRC = deflate.crc32(b"IDAT")
_IEND = b"".join(_chunk(b"IEND", b""))
