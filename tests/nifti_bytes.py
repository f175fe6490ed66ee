"""Byte-level NIfTI-1 / NIfTI-2 file builder for tests.

nibabel repairs headers when it saves (it fixes ``sizeof_hdr``, ``vox_offset``, ``bitpix``, the
magic, ...), so malformed files must be packed by hand. Every header field here is written exactly
as given, in either byte order; extensions may carry any ``esize``; the data payload is raw bytes;
and the result can be gzip-compressed and then truncated or corrupted.

Layouts follow the NIfTI-1 (348-byte) and NIfTI-2 (540-byte) specifications; ``test_nifti_bytes``
checks every field offset against nibabel's header dtypes.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Literal

import numpy as np

Endian = Literal["<", ">"]

NIFTI1_SIZE = 348
NIFTI2_SIZE = 540
NIFTI1_MAGIC = b"n+1\x00"
NIFTI2_MAGIC = b"n+2\x00\r\n\x1a\n"

# NIfTI datatype code -> (name, bitpix, numpy dtype without byte order or None if numpy has none).
DATATYPES: dict[int, tuple[str, int, str | None]] = {
    0: ("unknown", 0, None),
    1: ("binary", 1, None),
    2: ("uint8", 8, "u1"),
    4: ("int16", 16, "i2"),
    8: ("int32", 32, "i4"),
    16: ("float32", 32, "f4"),
    32: ("complex64", 64, "c8"),
    64: ("float64", 64, "f8"),
    128: ("rgb24", 24, None),
    256: ("int8", 8, "i1"),
    512: ("uint16", 16, "u2"),
    768: ("uint32", 32, "u4"),
    1024: ("int64", 64, "i8"),
    1280: ("uint64", 64, "u8"),
    1536: ("float128", 128, None),
    1792: ("complex128", 128, "c16"),
    2048: ("complex256", 256, None),
    2304: ("rgba32", 32, None),
}
CODE_FOR_DTYPE: dict[str, int] = {v[2]: k for k, v in DATATYPES.items() if v[2] is not None}

# (field name, struct code) in file order. "{n}" fields are arrays.
_NIFTI1_LAYOUT: tuple[tuple[str, str], ...] = (
    ("sizeof_hdr", "i"),
    ("data_type", "10s"),
    ("db_name", "18s"),
    ("extents", "i"),
    ("session_error", "h"),
    ("regular", "1s"),
    ("dim_info", "B"),
    ("dim", "8h"),
    ("intent_p1", "f"),
    ("intent_p2", "f"),
    ("intent_p3", "f"),
    ("intent_code", "h"),
    ("datatype", "h"),
    ("bitpix", "h"),
    ("slice_start", "h"),
    ("pixdim", "8f"),
    ("vox_offset", "f"),
    ("scl_slope", "f"),
    ("scl_inter", "f"),
    ("slice_end", "h"),
    ("slice_code", "B"),
    ("xyzt_units", "B"),
    ("cal_max", "f"),
    ("cal_min", "f"),
    ("slice_duration", "f"),
    ("toffset", "f"),
    ("glmax", "i"),
    ("glmin", "i"),
    ("descrip", "80s"),
    ("aux_file", "24s"),
    ("qform_code", "h"),
    ("sform_code", "h"),
    ("quatern_b", "f"),
    ("quatern_c", "f"),
    ("quatern_d", "f"),
    ("qoffset_x", "f"),
    ("qoffset_y", "f"),
    ("qoffset_z", "f"),
    ("srow_x", "4f"),
    ("srow_y", "4f"),
    ("srow_z", "4f"),
    ("intent_name", "16s"),
    ("magic", "4s"),
)

_NIFTI2_LAYOUT: tuple[tuple[str, str], ...] = (
    ("sizeof_hdr", "i"),
    ("magic", "8s"),
    ("datatype", "h"),
    ("bitpix", "h"),
    ("dim", "8q"),
    ("intent_p1", "d"),
    ("intent_p2", "d"),
    ("intent_p3", "d"),
    ("pixdim", "8d"),
    ("vox_offset", "q"),
    ("scl_slope", "d"),
    ("scl_inter", "d"),
    ("cal_max", "d"),
    ("cal_min", "d"),
    ("slice_duration", "d"),
    ("toffset", "d"),
    ("slice_start", "q"),
    ("slice_end", "q"),
    ("descrip", "80s"),
    ("aux_file", "24s"),
    ("qform_code", "i"),
    ("sform_code", "i"),
    ("quatern_b", "d"),
    ("quatern_c", "d"),
    ("quatern_d", "d"),
    ("qoffset_x", "d"),
    ("qoffset_y", "d"),
    ("qoffset_z", "d"),
    ("srow_x", "4d"),
    ("srow_y", "4d"),
    ("srow_z", "4d"),
    ("slice_code", "i"),
    ("xyzt_units", "i"),
    ("intent_code", "i"),
    ("intent_name", "16s"),
    ("dim_info", "B"),
    ("unused_str", "15s"),
)


def layout(version: int) -> tuple[tuple[str, str], ...]:
    """Field names and struct codes of a NIfTI-``version`` header, in file order."""
    return _NIFTI1_LAYOUT if version == 1 else _NIFTI2_LAYOUT


def field_offsets(version: int) -> dict[str, int]:
    """Byte offset of each header field (for targeted byte edits)."""
    offsets: dict[str, int] = {}
    pos = 0
    for name, code in layout(version):
        offsets[name] = pos
        pos += struct.calcsize("<" + code)
    return offsets


@dataclass(frozen=True)
class Header:
    """Every NIfTI header field, written verbatim by :meth:`pack`.

    ``None`` means "derive the conventional value": ``sizeof_hdr`` (348 or 540), ``magic``
    (``n+1`` / ``n+2``), ``bitpix`` (from ``datatype``), ``vox_offset`` (right after the header,
    extension flag and extensions; set by :func:`nifti_file`).
    The default describes a valid 7 x 6 x 5 int16 volume with 2 mm voxels whose qform and sform
    agree.
    """

    version: int = 1
    endian: Endian = "<"
    sizeof_hdr: int | None = None
    magic: bytes | None = None
    dim: tuple[int, ...] = (3, 7, 6, 5, 1, 1, 1, 1)
    datatype: int = 4
    bitpix: int | None = None
    pixdim: tuple[float, ...] = (1.0, 2.0, 2.0, 2.0, 1.0, 0.0, 0.0, 0.0)
    vox_offset: float | None = None
    scl_slope: float = 1.0
    scl_inter: float = 0.0
    intent_code: int = 0
    intent_p1: float = 0.0
    intent_p2: float = 0.0
    intent_p3: float = 0.0
    intent_name: bytes = b""
    dim_info: int = 0
    slice_start: int = 0
    slice_end: int = 0
    slice_code: int = 0
    slice_duration: float = 0.0
    toffset: float = 0.0
    xyzt_units: int = 10  # mm and seconds
    cal_max: float = 0.0
    cal_min: float = 0.0
    descrip: bytes = b"niftislice test volume"
    aux_file: bytes = b""
    qform_code: int = 1
    sform_code: int = 1
    quatern_b: float = 0.0
    quatern_c: float = 0.0
    quatern_d: float = 0.0
    qoffset_x: float = -6.0
    qoffset_y: float = -5.0
    qoffset_z: float = -4.0
    srow_x: tuple[float, float, float, float] = (2.0, 0.0, 0.0, -6.0)
    srow_y: tuple[float, float, float, float] = (0.0, 2.0, 0.0, -5.0)
    srow_z: tuple[float, float, float, float] = (0.0, 0.0, 2.0, -4.0)
    # NIfTI-1 only (Analyze leftovers)
    data_type: bytes = b""
    db_name: bytes = b""
    extents: int = 0
    session_error: int = 0
    regular: bytes = b"r"
    glmax: int = 0
    glmin: int = 0
    # NIfTI-2 only
    unused_str: bytes = b""

    @property
    def size(self) -> int:
        return NIFTI1_SIZE if self.version == 1 else NIFTI2_SIZE

    def with_shape(self, shape: Sequence[int]) -> Header:
        """Set ``dim`` from a shape (unused trailing entries 1)."""
        dims = [len(shape), *shape] + [1] * (7 - len(shape))
        return replace(self, dim=tuple(int(d) for d in dims))

    def with_affine(self, affine: np.ndarray, *, qform: bool = False) -> Header:
        """Set the sform rows from a 4 x 4 affine (and, if ``qform``, pixdim and qoffset too,
        valid only for a diagonal affine)."""
        rows = [tuple(float(v) for v in affine[i]) for i in range(3)]
        hdr = replace(self, srow_x=rows[0], srow_y=rows[1], srow_z=rows[2])  # type: ignore[arg-type]
        if qform:
            zooms = np.abs(np.diag(affine)[:3])
            pix = (1.0, *(float(z) for z in zooms), *self.pixdim[4:])
            hdr = replace(
                hdr,
                pixdim=pix,
                quatern_b=0.0,
                quatern_c=0.0,
                quatern_d=0.0,
                qoffset_x=float(affine[0, 3]),
                qoffset_y=float(affine[1, 3]),
                qoffset_z=float(affine[2, 3]),
            )
        return hdr

    def values(self) -> dict[str, object]:
        """Field values as packed (derived defaults filled in)."""
        v: dict[str, object] = {f.name: getattr(self, f.name) for f in fields(self)}
        v["sizeof_hdr"] = self.size if self.sizeof_hdr is None else self.sizeof_hdr
        if self.magic is None:
            v["magic"] = NIFTI1_MAGIC if self.version == 1 else NIFTI2_MAGIC
        if self.bitpix is None:
            v["bitpix"] = DATATYPES.get(self.datatype, ("", 0, None))[1]
        if self.vox_offset is None:
            v["vox_offset"] = self.size + 4
        return v

    def pack(self) -> bytes:
        """The header bytes (348 or 540), exactly as the fields say."""
        v = self.values()
        out = bytearray()
        for name, code in layout(self.version):
            value = v[name]
            count = int(code[:-1]) if code[:-1].isdigit() and code[-1] != "s" else 1
            fmt = self.endian + code
            if count > 1:
                seq = list(value)  # type: ignore[call-overload]
                out += struct.pack(fmt, *seq[:count])
            elif code == "q" and self.version == 2 and name == "vox_offset":
                out += struct.pack(fmt, int(value))  # type: ignore[call-overload]
            else:
                out += struct.pack(fmt, value)
        assert len(out) == self.size, len(out)
        return bytes(out)


@dataclass(frozen=True)
class Extension:
    """One header extension. ``esize=None`` pads ``content`` to a multiple of 16 (the valid
    form); an explicit ``esize`` is written as is, with ``content`` written raw after it."""

    code: int
    content: bytes
    esize: int | None = None

    def pack(self, endian: Endian) -> bytes:
        if self.esize is None:
            size = -(-(8 + len(self.content)) // 16) * 16
            return struct.pack(endian + "ii", size, self.code) + self.content.ljust(size - 8, b"\0")
        return struct.pack(endian + "ii", self.esize, self.code) + self.content


def voxel_bytes(array: np.ndarray, endian: Endian = "<") -> bytes:
    """Array data in NIfTI order (first index fastest) and the given byte order."""
    arr = np.asarray(array)
    return arr.astype(arr.dtype.newbyteorder(endian), copy=False).tobytes(order="F")


def header_for(array: np.ndarray, **overrides: object) -> Header:
    """A valid header describing ``array`` (shape and datatype), with ``overrides`` applied."""
    arr = np.asarray(array)
    hdr = Header().with_shape(arr.shape)
    hdr = replace(hdr, datatype=CODE_FOR_DTYPE[arr.dtype.str[1:]])
    return replace(hdr, **overrides)  # type: ignore[arg-type]


def nifti_file(
    header: Header,
    data: bytes | np.ndarray = b"",
    *,
    extensions: Iterable[Extension] = (),
    extension_flag: bytes | None = None,
    trailing: bytes = b"",
) -> bytes:
    """A complete single-file NIfTI: header, 4-byte extension flag, extensions, padding up to
    ``vox_offset`` (when that lies beyond them), data, ``trailing``.

    ``data`` may be raw bytes or an array (packed with the header's byte order).
    ``header.vox_offset=None`` places the data right after the extensions.
    """
    exts = b"".join(e.pack(header.endian) for e in extensions)
    flag = extension_flag if extension_flag is not None else (b"\x01\0\0\0" if exts else b"\0" * 4)
    natural = header.size + len(flag) + len(exts)
    if header.vox_offset is None:
        header = replace(header, vox_offset=natural)
    head = header.pack() + flag + exts
    offset = header.vox_offset
    assert offset is not None
    if np.isfinite(offset) and offset == int(offset) and int(offset) > len(head):
        head = head.ljust(int(offset), b"\0")
    payload = voxel_bytes(data, header.endian) if isinstance(data, np.ndarray) else data
    return head + payload + trailing


def gzip_bytes(raw: bytes, *, level: int = 6) -> bytes:
    """Deterministic gzip (mtime 0) of ``raw``."""
    return gzip.compress(raw, compresslevel=level, mtime=0)


def gzip_stream(chunks: Iterable[bytes], *, level: int = 9) -> bytes:
    """gzip of the concatenation of ``chunks`` without holding it in memory (for bombs)."""
    comp = zlib.compressobj(level, zlib.DEFLATED, 31)
    out = bytearray()
    for chunk in chunks:
        out += comp.compress(chunk)
    out += comp.flush()
    # zlib writes mtime 0 and OS 3 (unix) itself; nothing else to fix.
    return bytes(out)


GZIP_HEADER_SIZE = 10  # without optional fields, as gzip_bytes writes it
GZIP_TRAILER_SIZE = 8  # CRC-32 and ISIZE


def flip_byte(blob: bytes, index: int, mask: int = 0xFF) -> bytes:
    """``blob`` with the byte at ``index`` XOR-ed with ``mask`` (negative index from the end)."""
    out = bytearray(blob)
    out[index] ^= mask
    return bytes(out)


def set_bytes(blob: bytes, offset: int, value: bytes) -> bytes:
    """``blob`` with ``value`` written at ``offset``."""
    out = bytearray(blob)
    out[offset : offset + len(value)] = value
    return bytes(out)


@dataclass(frozen=True)
class Volume:
    """A header plus its data, the usual starting point of a test file."""

    header: Header
    array: np.ndarray = field(compare=False)
    extensions: tuple[Extension, ...] = ()

    def to_bytes(self, *, trailing: bytes = b"") -> bytes:
        return nifti_file(self.header, self.array, extensions=self.extensions, trailing=trailing)


def gradient(shape: Sequence[int] = (7, 6, 5), dtype: str = "i2") -> np.ndarray:
    """A deterministic non-constant test array (distinct values along every axis)."""
    grids = np.indices(tuple(shape))
    weights = [1, 10, 100, 1000, 3, 5, 7][: len(shape)]
    values = sum(w * g for w, g in zip(weights, grids, strict=True))
    return np.asarray(values % 120, dtype=np.dtype(dtype))


def valid_volume(
    shape: Sequence[int] = (7, 6, 5),
    dtype: str = "i2",
    *,
    version: int = 1,
    endian: Endian = "<",
    **overrides: object,
) -> Volume:
    """A valid volume built from :func:`gradient`; ``overrides`` set header fields."""
    arr = gradient(shape, dtype)
    hdr = header_for(arr, version=version, endian=endian)
    return Volume(replace(hdr, **overrides), arr)  # type: ignore[arg-type]
