"""Image sizes read from file headers, before anything is decoded.

A decoder allocates what the header declares: a 200-byte PNG can declare 30000 x 30000 pixels and
cost 1.8 GB before its size can be compared with the sidecar's. These readers look only at the
header bytes of the formats ``stack`` accepts (PNG, JPEG, TIFF including BigTIFF, WebP) and return
``(width, height)`` in pixels, or None when the bytes are not one of them or are cut short.
"""

from __future__ import annotations

import struct

_PNG = b"\x89PNG\r\n\x1a\n"
# JPEG start-of-frame markers (baseline, progressive, lossless, ...); C4, C8 and CC are not frames
_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
_JPEG_NO_LENGTH = {0x01, 0xD8, *range(0xD0, 0xD8)}  # TEM, SOI, RST0-7: markers without a segment


def declared_size(data: bytes) -> tuple[int, int] | None:
    """``(width, height)`` the header of a PNG, JPEG, TIFF or WebP file declares, else None."""
    try:
        if data.startswith(_PNG):
            return _png(data)
        if data.startswith(b"\xff\xd8"):
            return _jpeg(data)
        if data[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
            return _tiff(data)
        if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
            return _webp(data)
    except (struct.error, IndexError):
        return None  # cut short
    return None


def _png(data: bytes) -> tuple[int, int] | None:
    if data[12:16] != b"IHDR":
        return None
    width, height = struct.unpack(">II", data[16:24])
    return int(width), int(height)


def _jpeg(data: bytes) -> tuple[int, int] | None:
    i = 2
    while i < len(data):
        if data[i] != 0xFF:
            return None
        while data[i] == 0xFF:  # fill bytes
            i += 1
        marker = data[i]
        i += 1
        if marker in _JPEG_NO_LENGTH:
            continue
        if marker in (0xD9, 0xDA):  # end of image, start of scan: no frame header before it
            return None
        (length,) = struct.unpack(">H", data[i : i + 2])
        if marker in _JPEG_SOF:
            height, width = struct.unpack(">HH", data[i + 3 : i + 7])
            return int(width), int(height)
        i += length
    return None


def _tiff(data: bytes) -> tuple[int, int] | None:
    """Width and height (tags 256, 257) of the first image file directory."""
    e = "<" if data[:2] == b"II" else ">"
    big = data[2:4] in (b"+\x00", b"\x00+")
    if big:
        (ifd,) = struct.unpack(e + "Q", data[8:16])
        (count,) = struct.unpack(e + "Q", data[ifd : ifd + 8])
        first, size = ifd + 8, 20
    else:
        (ifd,) = struct.unpack(e + "I", data[4:8])
        (count,) = struct.unpack(e + "H", data[ifd : ifd + 2])
        first, size = ifd + 2, 12
    found: dict[int, int] = {}
    for n in range(min(int(count), 4096)):
        entry = data[first + n * size : first + (n + 1) * size]
        tag, kind = struct.unpack(e + "HH", entry[:4])
        if tag in (256, 257):
            value = entry[12:] if big else entry[8:]
            short = kind == 3
            found[tag] = struct.unpack(e + ("H" if short else "I"), value[: 2 if short else 4])[0]
            if len(found) == 2:
                return int(found[256]), int(found[257])
    return None


def _webp(data: bytes) -> tuple[int, int] | None:
    chunk = data[12:16]
    if chunk == b"VP8 " and data[23:26] == b"\x9d\x01\x2a":
        width, height = struct.unpack("<HH", data[26:30])
        return width & 0x3FFF, height & 0x3FFF
    if chunk == b"VP8L" and data[20] == 0x2F:
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X":
        width = int.from_bytes(data[24:27], "little") + 1
        height = int.from_bytes(data[27:30], "little") + 1
        return width, height
    return None
