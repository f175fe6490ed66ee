"""NRRD and NHDR (3D Slicer's native format): header through pynrrd, voxels read by us.

Geometry follows the NRRD specification: row ``i`` of ``space directions`` (pynrrd's matrix) is
the step in world mm along voxel axis ``i``, i.e. column ``i`` of the affine; ``space origin`` is
the centre of the first voxel; both are in ``space`` (``left-posterior-superior`` / ``LPS``,
``right-anterior-superior`` / ``RAS``, ``left-anterior-superior`` / ``LAS`` and their ``-time``
variants), turned into RAS+ by flipping the axes that point the other way. Axes whose direction is
``none`` (a DWI gradient list, a vector's components, a time axis) become volumes, after the three
spatial axes. Without any patient space (no ``space``, or ``scanner-xyz`` / ``3D-right-handed``),
the volume is taken as RAS+ storage with the ``spacings`` as voxel sizes, with a warning, as for a
NIfTI without orientation.

The header is parsed by pynrrd; voxel data (``raw`` or ``gzip`` encoding, attached or in a
detached data file) is read by :mod:`.foreign` so that no more than the declared bytes are ever
read or inflated; ``ascii`` and ``bzip2`` data go through pynrrd after the same size checks.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from ..types import Limits
from .digest import SourceDigests, distinct
from .foreign import (
    ForeignImage,
    check_limits,
    check_stored_size,
    checked_affine,
    open_regular,
    read_values,
    third_axis,
    to_source,
)
from .nifti import NiftiFile

log = logging.getLogger(__name__)

SUFFIXES = (".nrrd", ".nhdr")
MAX_HEADER_BYTES = 1 << 20  # a header longer than this is not an NRRD header

# world axis flips from each named space to RAS+
_TO_RAS = {
    "right-anterior-superior": (1.0, 1.0, 1.0),
    "left-anterior-superior": (-1.0, 1.0, 1.0),
    "left-posterior-superior": (-1.0, -1.0, 1.0),
}
_SHORT = {"ras": "right-anterior-superior", "las": "left-anterior-superior"}
_SHORT["lps"] = "left-posterior-superior"
_NO_PATIENT_SPACE = ("scanner-xyz", "3d-right-handed", "3d-left-handed")
# the NRRD specification's type names ("block" has no numeric meaning and is refused)
_TYPES = {
    **dict.fromkeys(("signed char", "int8", "int8_t"), "i1"),
    **dict.fromkeys(("uchar", "unsigned char", "uint8", "uint8_t"), "u1"),
    **dict.fromkeys(("short", "short int", "signed short", "signed short int"), "i2"),
    **dict.fromkeys(("int16", "int16_t"), "i2"),
    **dict.fromkeys(("ushort", "unsigned short", "unsigned short int", "uint16", "uint16_t"), "u2"),
    **dict.fromkeys(("int", "signed int", "int32", "int32_t"), "i4"),
    **dict.fromkeys(("uint", "unsigned int", "uint32", "uint32_t"), "u4"),
    **dict.fromkeys(("longlong", "long long", "long long int", "signed long long"), "i8"),
    **dict.fromkeys(("signed long long int", "int64", "int64_t"), "i8"),
    **dict.fromkeys(("ulonglong", "unsigned long long", "unsigned long long int"), "u8"),
    **dict.fromkeys(("uint64", "uint64_t"), "u8"),
    "float": "f4",
    "double": "f8",
}
_SPATIAL_KINDS = ("domain", "space")
_GZIP = ("gzip", "gz")
_RAW = ("raw",)


def open_nrrd(path: Path, limits: Limits = Limits()) -> NiftiFile:
    """``path`` as the pipeline's source description (see :func:`.foreign.to_source`)."""
    return to_source(read_nrrd(path, limits), limits)


def read_nrrd(path: Path, limits: Limits = Limits()) -> ForeignImage:
    """Parse an ``.nrrd`` or ``.nhdr`` header, check it, and return the image (voxels unread)."""
    header, data_offset = _read_header(path)
    warnings: list[str] = []
    sizes = [int(s) for s in header["sizes"]]
    dtype = _dtype(header)
    spatial, others = _axes(header, len(sizes))
    shape = tuple(sizes[a] for a in spatial) + (1,) * (3 - len(spatial))
    shape += tuple(sizes[a] for a in others)
    rgb = _rgb_channels(header, others, sizes, dtype)
    check_limits(shape[:3] if rgb else shape, limits)
    if len(others) > 1:
        warnings.append(f"{len(shape)}D image: axes beyond the 4th are flattened into volumes")
    affine, source = _affine(header, spatial, warnings)
    data_path, offset = _data_location(path, header, data_offset)
    encoding = str(header["encoding"]).lower()
    count = int(np.prod(sizes, dtype=object))
    _check_data_size(data_path, offset, header, encoding, count * dtype.itemsize)
    order = [*spatial, *others]
    digests = SourceDigests(distinct([path, data_path]), path.parent)

    def load() -> np.ndarray:
        flat = _read_data(path, header, (data_path, digests), offset, encoding, dtype, count)
        arr = flat.reshape(sizes, order="F")
        return arr.transpose(order).reshape(shape, order="F")  # a view unless axes move

    facts = _facts(header, path, data_path, encoding)
    return ForeignImage(
        path=path,
        format="NRRD",
        shape=shape[:3] if rgb else shape,
        rgb_channels=rgb,
        dtype=dtype.newbyteorder("="),
        affine=affine,
        affine_source=source,
        load=load,
        facts=facts,
        warnings=tuple(warnings),
        digests=digests,
    )


def _rgb_channels(
    header: dict[str, Any], others: list[int], sizes: list[int], dtype: np.dtype
) -> int:
    """3 or 4 for a colour volume (one ``RGB-color``/``RGBA-color`` axis of 8-bit values, as
    Slicer writes them), else 0: the non-spatial axes then become volumes."""
    kinds = [str(k) for k in header.get("kinds", [])]
    if len(others) != 1 or dtype != np.uint8 or len(kinds) != len(sizes):
        return 0
    axis = others[0]
    wanted = {"RGB-color": 3, "RGBA-color": 4}.get(kinds[axis])
    return wanted if wanted == sizes[axis] else 0


def _read_header(path: Path) -> tuple[dict[str, Any], int]:
    """pynrrd's parse of the header lines (read by us, at most ``MAX_HEADER_BYTES``) and the
    byte offset right after the header's blank line."""
    import nrrd  # lazily: only NRRD inputs pay for it

    lines: list[bytes] = []
    size = 0
    with open_regular(path) as f:
        while size < MAX_HEADER_BYTES:
            line = f.readline(MAX_HEADER_BYTES - size)
            if not line:
                break
            lines.append(line)
            size += len(line)
            if line in (b"\n", b"\r\n"):
                break
        else:
            raise InputError(f"not an NRRD file: no end of header in the first {size:,} bytes")
    if not lines or not lines[0].startswith(b"NRRD"):
        raise InputError("not an NRRD file: it does not start with the NRRD magic")
    if lines[-1] not in (b"\n", b"\r\n"):
        lines.append(b"\n")
    try:
        header = nrrd.read_header(lines)
    except (nrrd.NRRDError, ValueError, IndexError) as e:
        raise InputError(f"bad NRRD header: {e}") from None
    for key in ("type", "dimension", "encoding", "sizes"):
        if key not in header:
            raise InputError(f"bad NRRD header: the required field '{key}' is missing")
    if int(header["dimension"]) != len(header["sizes"]):
        raise InputError(
            f"bad NRRD header: dimension {header['dimension']} but {len(header['sizes'])} sizes"
        )
    return dict(header), size


def _dtype(header: dict[str, Any]) -> np.dtype:
    name = str(header["type"])
    if name not in _TYPES:
        raise InputError(f"NRRD type '{name}' is not a scalar type niftislice can read")
    dt = np.dtype(_TYPES[name])
    if dt.itemsize > 1 and str(header["encoding"]).lower() not in ("ascii", "text", "txt"):
        endian = header.get("endian")
        if endian not in ("little", "big"):
            raise InputError(f"NRRD type '{name}' needs 'endian: little' or 'big', got {endian!r}")
        dt = dt.newbyteorder("<" if endian == "little" else ">")
    return dt


def _axes(header: dict[str, Any], ndim: int) -> tuple[list[int], list[int]]:
    """Indices of the spatial axes (at most three, in file order) and of the other axes."""
    directions = header.get("space directions")
    if directions is not None:
        d = np.asarray(directions, dtype=float)
        if d.ndim != 2 or d.shape[0] != ndim or d.shape[1] < 3:
            raise InputError(f"NRRD space directions do not give {ndim} 3D vectors")
        # 'none' rows are NaN; in a -time space an axis with no x, y, z step is time
        moves = np.nan_to_num(np.abs(d[:, :3])).sum(axis=1) > 0
        spatial = [i for i in range(ndim) if moves[i]]
    elif "kinds" in header:
        kinds = [str(k) for k in header["kinds"]]
        spatial = [i for i, k in enumerate(kinds) if k in _SPATIAL_KINDS]
    else:
        spatial = list(range(min(ndim, 3)))
    if not 2 <= len(spatial) <= 3:
        raise InputError(
            f"NRRD has {len(spatial)} spatial axes; niftislice reads images with 2 or 3"
        )
    return spatial, [i for i in range(ndim) if i not in spatial]


def _space(header: dict[str, Any]) -> str | None:
    """The patient space's long name (case-insensitive, ``-time`` variants and the short
    spellings accepted); None without a patient space. Refuses what cannot be mapped."""
    space = header.get("space")
    if space is None:
        return None
    name = str(space).lower()
    name = _SHORT.get(name.removesuffix("t") if len(name) == 4 else name, name)
    name = name.removesuffix("-time")
    if name in _NO_PATIENT_SPACE:
        return None
    if name not in _TO_RAS:
        raise InputError(f"NRRD space '{space}' is not one niftislice can map to RAS")
    return name


def _affine(
    header: dict[str, Any], spatial: list[int], warnings: list[str]
) -> tuple[np.ndarray, str]:
    units = [u for u in header.get("space units", []) if u]
    if any(u != "mm" for u in units):
        raise InputError(f"NRRD space units {units} are not millimetres")
    space = _space(header)
    directions = header.get("space directions")
    if space is None or directions is None:
        return _spacings_affine(header, spatial, warnings), "spacings"
    d = np.asarray(directions, dtype=float)[spatial][:, :3].T  # columns: voxel axes
    if d.shape[1] == 2:
        d = np.column_stack([d, third_axis(d)])
    origin = np.asarray(header.get("space origin", np.zeros(3)), dtype=float)[:3]
    flips = np.asarray(_TO_RAS[space])
    affine = np.eye(4)
    affine[:3, :3] = flips[:, None] * d
    affine[:3, 3] = flips * origin
    return checked_affine(affine + 0.0), "space directions"  # + 0.0: no -0.0 in the sidecar


def _spacings_affine(header: dict[str, Any], spatial: list[int], warnings: list[str]) -> np.ndarray:
    """Identity orientation with the voxel sizes from ``spacings`` (1 mm where none)."""
    directions = header.get("space directions")
    if directions is not None:
        steps = np.linalg.norm(np.asarray(directions, dtype=float)[spatial], axis=1)
    else:
        given = np.asarray(header.get("spacings", [np.nan] * (max(spatial) + 1)), dtype=float)
        steps = given[spatial]
    steps = np.where(np.isfinite(steps) & (steps > 0), steps, 1.0)
    zooms = [*(abs(float(s)) for s in steps), 1.0][:3]
    warnings.append(
        f"no patient space (space: {header.get('space', 'none')}); "
        "assuming RAS+ storage with the spacings as voxel sizes"
    )
    return checked_affine(np.diag([*zooms, 1.0]))


def _data_location(path: Path, header: dict[str, Any], header_end: int) -> tuple[Path, int]:
    """The file holding the voxels and where they start (before ``line skip``/``byte skip``)."""
    name = header.get("data file", header.get("datafile"))
    if name is None:
        if path.suffix.lower() == ".nhdr":
            raise InputError("detached NRRD header without a 'data file' field")
        return path, header_end
    name = str(name)
    if name.startswith("LIST") or len(name.split()) > 1:
        raise InputError("NRRD data split over several files ('data file' list) is not supported")
    data = Path(name)
    return (data if data.is_absolute() else path.parent / data), 0


def _skips(header: dict[str, Any]) -> tuple[int, int]:
    line_skip = int(header.get("line skip", header.get("lineskip", 0)))
    byte_skip = int(header.get("byte skip", header.get("byteskip", 0)))
    if line_skip < 0 or byte_skip < -1:
        raise InputError(f"bad NRRD line skip {line_skip} or byte skip {byte_skip}")
    return line_skip, byte_skip


def _check_data_size(
    data_path: Path, offset: int, header: dict[str, Any], encoding: str, nbytes: int
) -> None:
    """Refuse before allocating when the data file cannot hold the declared voxels."""
    if encoding not in (*_RAW, *_GZIP, "ascii", "text", "txt", "bzip2", "bz2"):
        raise InputError(f"NRRD encoding '{encoding}' is not supported")
    with open_regular(data_path) as f:
        size = os.fstat(f.fileno()).st_size
    byte_skip = _skips(header)[1]
    if encoding in _RAW and byte_skip == -1:
        offset = size - nbytes
    elif encoding in _RAW:
        offset += byte_skip
    if encoding in (*_RAW, *_GZIP):
        check_stored_size(size, offset, nbytes, encoding in _GZIP, f"NRRD data in {data_path.name}")


def _read_data(
    path: Path,
    header: dict[str, Any],
    data: tuple[Path, SourceDigests],
    offset: int,
    encoding: str,
    dtype: np.dtype,
    count: int,
) -> np.ndarray:
    """The flat voxel values, native-endian, in file order (the data file hashed on the way)."""
    line_skip, byte_skip = _skips(header)
    data_path, digests = data
    what = f"NRRD data in {data_path.name}"
    with digests.open(data_path) as f:
        f.seek(offset)
        for _ in range(line_skip):
            f.readline(MAX_HEADER_BYTES)
        if encoding in _RAW:
            if byte_skip == -1:
                f.seek(-count * dtype.itemsize, 2)
            else:
                f.seek(byte_skip, 1)
            return read_values(f, dtype, count, compressed=False, what=what)
        if encoding in _GZIP:
            if byte_skip == -1:
                raise InputError("NRRD 'byte skip: -1' with gzip encoding is not supported")
            values = read_values(f, dtype, count + byte_skip, compressed=True, what=what)
            return values[byte_skip:] if byte_skip else values
    return _pynrrd_data(path, header, dtype, count)


def _pynrrd_data(path: Path, header: dict[str, Any], dtype: np.dtype, count: int) -> np.ndarray:
    """ASCII and bzip2 data, through pynrrd (sizes were checked already)."""
    import nrrd

    try:
        with open_regular(path) as f:
            nrrd.read_header(f)
            data = nrrd.read_data(header, f, str(path), index_order="C")
    except (nrrd.NRRDError, ValueError, OSError) as e:
        raise InputError(f"cannot read NRRD data: {e}") from None
    flat = np.ascontiguousarray(data).reshape(-1)
    if flat.size != count:
        raise InputError(f"NRRD data holds {flat.size:,} values, the header declares {count:,}")
    return flat.astype(dtype.newbyteorder("="), copy=False)


def _facts(header: dict[str, Any], path: Path, data_path: Path, encoding: str) -> dict[str, Any]:
    """Header fields for the sidecar, JSON-ready ('none' directions as null)."""
    keep = ("type", "dimension", "space", "sizes", "space directions", "space origin", "kinds")
    facts: dict[str, Any] = {k: _json_ready(header[k]) for k in keep if k in header}
    facts["encoding"] = encoding
    if data_path != path:
        facts["data_file"] = data_path.name
    return facts


def _json_ready(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return [_json_ready(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value
