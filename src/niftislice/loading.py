"""Reading NIfTI files: header checks first, then a streaming read of voxel data.

The header is parsed with nibabel's header classes from bytes we read ourselves, so that gzip is
recognised by its magic bytes (not the suffix), declared sizes are checked against limits and the
file before anything is allocated, and voxel data is read once, sequentially, in its native dtype
(no float64 copy). Compressed streams are always read to their end so the gzip CRC is verified, and
the file's sha256 is computed on the way.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import logging
import math
import os
import stat
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import nibabel as nib
import numpy as np

from .errors import InputError, ResourceLimitError

log = logging.getLogger(__name__)

GZIP_MAGIC = b"\x1f\x8b"
_SUPPORTED_CODES = {2, 4, 8, 16, 64, 128, 256, 512, 768, 1024, 1280, 2304}
_CODE_NAMES = {
    0: "unknown",
    1: "binary",
    32: "complex64",
    1536: "float128",
    1792: "complex128",
    2048: "complex256",
}
_READ_BLOCK = 1 << 24
MAX_EXTENSION_BYTES = 64 << 20


@dataclass(frozen=True)
class Limits:
    """Refuse inputs beyond these before allocating anything."""

    max_voxels: int = 2**31  # per 3D volume
    max_slices: int = 4096  # along any spatial axis
    allow_many_slices: bool = False


@dataclass(frozen=True)
class NiftiFile:
    """What the header says about a file, checked for sanity; voxel data is not read yet."""

    path: Path
    header: nib.Nifti1Header
    nifti_version: int
    compressed: bool
    file_size: int
    data_shape: tuple[int, ...]  # as declared, dims beyond the 3rd included
    spatial_shape: tuple[int, int, int]
    n_volumes: int  # product of dims 4..7 (1 for 3D)
    dtype: np.dtype  # on-disk dtype, with byte order
    rgb_channels: int  # 0 for scalar data, 3 or 4 for RGB(A)
    slope: float
    inter: float
    affine: np.ndarray
    affine_source: str  # "sform", "qform" or "pixdim"
    zooms: tuple[float, ...]
    vox_offset: int
    is_label: bool
    warnings: tuple[str, ...] = field(default=())

    @property
    def volume_bytes(self) -> int:
        return int(np.prod(self.spatial_shape)) * self.dtype.itemsize

    @property
    def is_scaled(self) -> bool:
        return not (self.slope == 1.0 and self.inter == 0.0)

    def volume_subindex(self, t: int) -> tuple[int, ...]:
        """The index along dims 4..7 (file order) of flat volume ``t``."""
        extra = self.data_shape[3:]
        return tuple(int(i) for i in np.unravel_index(t, extra, order="F")) if extra else ()


def _open_raw(path: Path) -> BinaryIO:
    try:
        st = os.stat(path)  # follows symlinks: broken or looping links fail here
    except OSError as e:
        raise InputError(f"cannot open: {e.strerror or e}") from None
    if stat.S_ISDIR(st.st_mode):
        raise InputError("is a directory, not a file")
    if not stat.S_ISREG(st.st_mode):
        raise InputError("not a regular file (device, fifo or socket); refusing to read it")
    try:
        return open(path, "rb")  # noqa: SIM115 - closed by the caller
    except OSError as e:
        raise InputError(f"cannot open: {e.strerror or e}") from None


class _HashingReader(io.RawIOBase):
    """Passes reads through and hashes every byte, so one read serves gzip and sha256."""

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self.sha256 = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:  # type: ignore[override]
        n = self._raw.readinto(b)
        if n:
            self.sha256.update(memoryview(b)[:n])
        return n or 0

    def close(self) -> None:
        self._raw.close()
        super().close()


class _Stream:
    """A sequential reader over the (decompressed) file content."""

    def __init__(self, path: Path) -> None:
        raw = _open_raw(path)
        self.file_size = os.fstat(raw.fileno()).st_size
        head = raw.read(2)
        raw.seek(0)
        self.compressed = head == GZIP_MAGIC
        self.hasher = _HashingReader(raw)
        buffered = io.BufferedReader(self.hasher, buffer_size=1 << 20)
        self._f: BinaryIO = gzip.GzipFile(fileobj=buffered, mode="rb") if self.compressed else buffered  # type: ignore[assignment]
        self.pos = 0

    def readinto(self, view: memoryview) -> int:
        total = 0
        try:
            while total < len(view):
                n = self._f.readinto(view[total : total + _READ_BLOCK])
                if not n:
                    break
                total += n
        except (EOFError, OSError, zlib.error) as e:
            raise InputError(f"corrupt compressed data: {_gzip_reason(e)}") from None
        self.pos += total
        return total

    def read(self, n: int) -> bytes:
        buf = bytearray(n)
        got = self.readinto(memoryview(buf))
        return bytes(buf[:got])

    def skip(self, n: int) -> int:
        done = 0
        while done < n:
            chunk = self.read(min(n - done, _READ_BLOCK))
            if not chunk:
                break
            done += len(chunk)
        return done

    def drain(self) -> int:
        """Read to the end (verifying the gzip CRC and length); returns the bytes left over."""
        left = 0
        while True:
            chunk = self.read(_READ_BLOCK)
            if not chunk:
                return left
            left += len(chunk)

    def close(self) -> None:
        self._f.close()
        self.hasher.close()


def _gzip_reason(e: BaseException) -> str:
    msg = str(e) or type(e).__name__
    if isinstance(e, EOFError):
        return "the gzip stream ends early (truncated file)"
    if "CRC" in msg:
        return "gzip CRC check failed (the file is damaged)"
    return msg


def _parse_header(block: bytes, path: Path) -> tuple[nib.Nifti1Header, int, str]:
    if len(block) < 4:
        raise InputError("empty file" if not block else "truncated header (fewer than 4 bytes)")
    size_le = int.from_bytes(block[:4], "little")
    size_be = int.from_bytes(block[:4], "big")
    if 348 in (size_le, size_be):
        klass, size, version = nib.Nifti1Header, 348, 1
    elif 540 in (size_le, size_be):
        klass, size, version = nib.Nifti2Header, 540, 2
    else:
        raise InputError(
            f"not a NIfTI file (sizeof_hdr is {size_le}, expected 348 or 540)"
        )
    endian = "<" if size in (size_le,) else ">"
    if len(block) < size:
        raise InputError(f"truncated header: {len(block)} of {size} bytes")
    hdr = klass(binaryblock=block[:size], endianness=endian, check=False)
    magic = bytes(hdr["magic"])
    good = (b"n+1", b"ni1") if version == 1 else (b"n+2", b"ni2")
    if magic.rstrip(b"\x00")[:3] not in good:
        raise InputError(f"bad magic {magic!r} for a NIfTI-{version} header")
    if magic.startswith(b"ni"):
        raise InputError("header-only file (.hdr/.img pairs are not supported; use a single .nii)")
    return hdr, version, endian


def _declared_shape(hdr: nib.Nifti1Header) -> tuple[int, ...]:
    dim = [int(d) for d in hdr["dim"]]
    ndim = dim[0]
    if not 1 <= ndim <= 7:
        raise InputError(f"dim[0] is {ndim}, expected 1 to 7")
    shape = tuple(dim[1 : ndim + 1])
    bad = [(i + 1, d) for i, d in enumerate(shape) if d < 1]
    if bad:
        i, d = bad[0]
        raise InputError(f"dim[{i}] is {d}; every dimension must be at least 1")
    return shape


def _dtype(hdr: nib.Nifti1Header) -> tuple[np.dtype, int]:
    code = int(hdr["datatype"])
    if code not in _SUPPORTED_CODES:
        name = _CODE_NAMES.get(code, f"code {code}")
        raise InputError(f"unsupported datatype {name} (code {code})")
    dt = hdr.get_data_dtype()
    if code == 128:
        return dt, 3
    if code == 2304:
        return dt, 4
    return dt, 0


def _scaling(hdr: nib.Nifti1Header, warnings: list[str]) -> tuple[float, float]:
    slope, inter = float(hdr["scl_slope"]), float(hdr["scl_inter"])
    if math.isnan(slope) or slope == 0:
        # NIfTI: slope 0 means "no scaling"; nibabel writes NaN for the same.
        return 1.0, 0.0
    if math.isinf(slope):
        raise InputError(f"scl_slope is {slope}; cannot scale voxel values")
    if not math.isfinite(inter):
        warnings.append(f"scl_inter is {inter}; using 0")
        inter = 0.0
    return slope, inter


def _affine(hdr: nib.Nifti1Header, zooms: Sequence[float], warnings: list[str]) -> tuple[np.ndarray, str]:
    def usable(a: np.ndarray | None) -> bool:
        if a is None or not np.all(np.isfinite(a)):
            return False
        return abs(np.linalg.det(a[:3, :3])) > 1e-12

    candidates: list[tuple[str, np.ndarray | None]] = []
    sform_code, qform_code = int(hdr["sform_code"]), int(hdr["qform_code"])
    sform = qform = None
    if sform_code > 0:
        sform = hdr.get_sform()
        candidates.append(("sform", sform))
    if qform_code > 0:
        try:
            qform = hdr.get_qform()
        except Exception as e:  # nibabel raises on quaternions out of range
            warnings.append(f"qform is unusable ({e}); ignoring it")
        candidates.append(("qform", qform))
    for bad_code, name in ((sform_code, "sform_code"), (qform_code, "qform_code")):
        if bad_code not in (0, 1, 2, 3, 4, 5):
            warnings.append(f"{name} {bad_code} is not a known code; treating it as set")
    if sform is not None and qform is not None and usable(sform) and usable(qform):
        diff = float(np.max(np.abs(sform - qform)))
        if diff > 1e-3:
            warnings.append(f"qform and sform disagree (by up to {diff:.3g} mm); using the sform")
    for name, a in candidates:
        if usable(a):
            return np.asarray(a, dtype=np.float64), name
        warnings.append(f"{name} is singular or not finite; ignoring it")
    if not candidates:
        warnings.append("no qform or sform (codes 0); orientation is a guess from voxel sizes (RAS assumed)")
    base = np.diag([*zooms[:3], 1.0]).astype(np.float64)
    return base, "pixdim"


def _zooms(hdr: nib.Nifti1Header, ndim: int, warnings: list[str]) -> tuple[float, ...]:
    pixdim = [float(p) for p in hdr["pixdim"][1:4]]
    out: list[float] = []
    for i, p in enumerate(pixdim):
        if i >= ndim:
            out.append(1.0)
        elif not math.isfinite(p):
            raise InputError(f"pixdim[{i + 1}] is {p}; voxel sizes must be finite")
        elif p == 0:
            warnings.append(f"pixdim[{i + 1}] is 0; assuming 1 mm")
            out.append(1.0)
        elif p < 0:
            warnings.append(f"pixdim[{i + 1}] is negative ({p:g}); using its magnitude")
            out.append(abs(p))
        else:
            out.append(p)
    return tuple(out)


def read_header(path: str | os.PathLike[str], limits: Limits = Limits()) -> NiftiFile:
    """Parse and check a file's header; reads at most the header and its extensions."""
    p = Path(path)
    stream = _Stream(p)
    try:
        block = stream.read(540)
        hdr, version, _ = _parse_header(block, p)
        warnings: list[str] = []
        shape = _declared_shape(hdr)
        if len(shape) < 2:
            raise InputError(f"a {len(shape)}D image has no slices to export")
        if version == 2 and 3000 <= int(hdr["intent_code"]) <= 3099:
            raise InputError("CIFTI file (brain-ordinate data, not a volume); not supported")
        dtype, channels = _dtype(hdr)
        zooms = _zooms(hdr, len(shape), warnings)
        spatial = (shape + (1, 1))[:3]
        spatial = (int(spatial[0]), int(spatial[1]), int(spatial[2]))
        n_vol = int(np.prod(shape[3:], dtype=object)) if len(shape) > 3 else 1
        n_vox = int(np.prod(spatial, dtype=object))
        if n_vox > limits.max_voxels:
            raise ResourceLimitError(
                f"declared size {'x'.join(map(str, spatial))} is {n_vox:,} voxels per volume, "
                f"over the limit of {limits.max_voxels:,} (raise it with --max-voxels)"
            )
        if max(spatial) > limits.max_slices and not limits.allow_many_slices:
            raise ResourceLimitError(
                f"declared size {'x'.join(map(str, spatial))} would give {max(spatial):,} slices "
                f"in one view, over {limits.max_slices:,} (pass --allow-many-slices to accept it)"
            )
        if len(shape) > 4:
            warnings.append(
                f"{len(shape)}D image: dimensions beyond the 4th are flattened into the volume index"
            )
        vox_offset_f = float(hdr["vox_offset"])
        min_offset = 352 if version == 1 else 544
        if not math.isfinite(vox_offset_f) or vox_offset_f < 0:
            raise InputError(f"vox_offset is {vox_offset_f}; expected a byte offset >= {min_offset}")
        vox_offset = int(vox_offset_f)
        if vox_offset < min_offset:
            if vox_offset == 0 and version == 1:
                warnings.append(f"vox_offset is 0; assuming {min_offset}")
                vox_offset = min_offset
            else:
                raise InputError(f"vox_offset is {vox_offset}, inside the header (minimum {min_offset})")
        need = vox_offset + n_vox * n_vol * dtype.itemsize
        if not stream.compressed and stream.file_size < need:
            raise InputError(
                f"truncated voxel data: header declares {need:,} bytes, file holds {stream.file_size:,}"
            )
        slope, inter = _scaling(hdr, warnings)
        affine, affine_source = _affine(hdr, zooms, warnings)
        intent = int(hdr["intent_code"])
        is_label = intent in (1002, 1003)
        return NiftiFile(
            path=p,
            header=hdr,
            nifti_version=version,
            compressed=stream.compressed,
            file_size=stream.file_size,
            data_shape=shape,
            spatial_shape=spatial,
            n_volumes=n_vol,
            dtype=dtype,
            rgb_channels=channels,
            slope=slope,
            inter=inter,
            affine=affine,
            affine_source=affine_source,
            zooms=zooms,
            vox_offset=vox_offset,
            is_label=is_label,
            warnings=tuple(warnings),
        )
    finally:
        stream.close()


@dataclass
class ReadResult:
    """Filled in when a full read of the file finishes (the whole file was hashed)."""

    sha256: str | None = None


def iter_volumes(
    nf: NiftiFile, indices: Sequence[int] | None = None, result: ReadResult | None = None
) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(t, array)`` for each selected volume, in file order, as native-endian arrays.

    Scalar data has shape ``spatial_shape`` (Fortran order, as stored); RGB data has a trailing
    channel axis of 3 or 4 uint8 values. The whole file is always read, so a damaged gzip stream
    is reported even if the damage lies after the last selected volume.
    """
    wanted = set(range(nf.n_volumes) if indices is None else indices)
    stream = _Stream(nf.path)
    try:
        skipped = stream.skip(nf.vox_offset)
        if skipped < nf.vox_offset:
            raise InputError(f"file ends at byte {skipped} before the voxel data (vox_offset {nf.vox_offset})")
        nbytes = nf.volume_bytes
        for t in range(nf.n_volumes):
            if t not in wanted:
                got = stream.skip(nbytes)
                if got < nbytes:
                    _truncated(nf, t, got)
                continue
            buf = np.empty(nbytes, dtype=np.uint8)
            got = stream.readinto(memoryview(buf))
            if got < nbytes:
                _truncated(nf, t, got)
            yield t, _as_volume(buf, nf)
        stream.drain()
        if result is not None:
            result.sha256 = stream.hasher.sha256.hexdigest()
    finally:
        stream.close()


def _truncated(nf: NiftiFile, t: int, got: int) -> None:
    where = f" in volume {t}" if nf.n_volumes > 1 else ""
    raise InputError(
        f"truncated voxel data{where}: expected {nf.volume_bytes:,} bytes, found {got:,}"
    )


def _as_volume(buf: np.ndarray, nf: NiftiFile) -> np.ndarray:
    if nf.rgb_channels:
        c = nf.rgb_channels
        arr = buf.reshape((c, *nf.spatial_shape), order="F")
        return np.moveaxis(arr, 0, -1)
    arr = buf.view(nf.dtype).reshape(nf.spatial_shape, order="F")
    if not nf.dtype.isnative:
        arr = arr.byteswap(inplace=True).view(nf.dtype.newbyteorder("="))
    return arr


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
