"""PNG writing: every row filtered with PNG's "Up" filter, then compressed with ISA-L's deflate.

Encoding is most of a conversion's work, so this is the one encoder we do not take from OpenCV.
OpenCV's PNG encoder at its default settings (libpng, zlib level 1, run-length strategy) runs at
55-65 megapixels/s on the benchmark's MRI slices on one core of the development machine. Most of
that is zlib: ISA-L's deflate, which we already use to read ``.nii.gz``, compresses the same bytes
about five times faster. With the Up filter (each byte minus the byte above it, which suits the
smooth vertical structure of anatomy) the files come out 1-5 % larger than OpenCV's and about four
times faster (``benchmarks/README.md`` has the figures).

The container itself is fixed and small: the signature, ``IHDR``, one ``IDAT`` and ``IEND``, each
chunk with its CRC-32 (PNG specification, 3rd edition, sections 5 and 11). Everything here
releases the GIL in numpy or ISA-L, so images are encoded in parallel on threads. The tests decode
the files with libpng (through OpenCV) and Pillow, and compare the decompressed rows byte for byte
with libpng's own output for the same filter.
"""

from __future__ import annotations

import struct

import numpy as np
from isal import isal_zlib

from .errors import OptionError

_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_FILTER_UP = 2
# ISA-L level 1: level 0 is barely faster and 25 % larger on MRI slices; 2 and 3 are slower for
# sizes within 1 %.
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
    header = struct.pack(
        ">IIBBBBB", width, height, 8 * image.dtype.itemsize, _COLOUR_TYPE[channels], 0, 0, 0
    )
    compressed = isal_zlib.compress(scanlines, _LEVEL)
    # one IDAT chunk unless the data outgrows a chunk's length field (PNG: at most 2**31 - 1)
    idat = [
        part
        for start in range(0, len(compressed), _MAX_CHUNK)
        for part in _chunk(b"IDAT", compressed[start : start + _MAX_CHUNK])
    ]
    return b"".join((_SIGNATURE, *_chunk(b"IHDR", header), *idat, *_chunk(b"IEND", b"")))


def _chunk(kind: bytes, data: bytes) -> tuple[bytes, bytes, bytes, bytes]:
    """A chunk's four parts: length, type, data, CRC-32 of type and data."""
    crc = isal_zlib.crc32(data, isal_zlib.crc32(kind))
    return struct.pack(">I", len(data)), kind, data, struct.pack(">I", crc)
