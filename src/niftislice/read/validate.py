"""Header checks: every field that decides how voxel data is read or placed, checked and repaired.

Pure functions over a parsed header. Each either returns a checked value (appending a warning to
``warnings`` when it repaired something, so the repair is reported and documented) or raises
:class:`~niftislice.errors.InputError` with a message that names the field and its bad value.

Repairs (warning), from the NIfTI-1 reference code where it has a rule:

- ``scl_slope`` 0 or NaN: no scaling (the standard says so; no warning). NaN/Inf ``scl_inter``: 0.
  Inf or subnormal (non-zero below 1.2e-38, which float32 arithmetic flushes to 0) is an error.
- ``pixdim[i]`` 0, negative, NaN, Inf or implausible: taken from the usable sform; without one,
  0 becomes 1 mm and a negative size its magnitude, the rest is an error.
- qform quaternion with b² + c² + d² > 1: normalised (a = 0), as ``nifti_quatern_to_mat44`` does.
- sform/qform not finite, singular or with voxel sizes outside 1 nm..1 km: ignored, the next
  source is used (sform, qform, pixdim).
- unknown or negative xform codes: warned about; codes > 0 count as set.
- broken extensions (bad ``esize``): ignored; voxel data is found through ``vox_offset``.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence

import numpy as np

from .._nib import nib
from ..errors import InputError

NIFTI1_MAGIC = b"n+1\x00"
NIFTI2_MAGIC = b"n+2\x00\r\n\x1a\n"
HEADER_SIZES = {1: 348, 2: 540}

SUPPORTED_DATATYPES = {2, 4, 8, 16, 64, 128, 256, 512, 768, 1024, 1280, 2304}
DATATYPE_NAMES = {
    0: "unknown",
    1: "binary",
    2: "uint8",
    4: "int16",
    8: "int32",
    16: "float32",
    32: "complex64",
    64: "float64",
    128: "rgb24",
    256: "int8",
    512: "uint16",
    768: "uint32",
    1024: "int64",
    1280: "uint64",
    1536: "float128",
    1792: "complex128",
    2048: "complex256",
    2304: "rgba32",
}
KNOWN_XFORM_CODES = range(0, 6)  # unknown, scanner, aligned, talairach, mni152, template
NON_VOLUME_INTENTS = {1008: "point set", 1009: "triangle mesh"}
#: Plausible voxel sizes, in the header's space units (mm in nearly every file): 1 nm to 1 km.
#: Not a float32 limit (pixdim holds 1e-38 to 3e38) but what a volume can be and what other tools
#: compute with it in float32: the smallest voxels imaged are a few nm (electron microscopy),
#: micro-CT 0.5-50 um, clinical 0.2-10 mm; a voxel volume (size cubed) stays a normal float32
#: (1e-18 to 1e18) and an inverse affine finite. ``stack`` writes back this range only.
VOXEL_MM = (1e-6, 1e6)
#: The ends as a float32 header holds them (float32(1e-6) is 9.99999997e-07)
_VOXEL_F32 = (float(np.float32(VOXEL_MM[0])), float(np.float32(VOXEL_MM[1])))
_F32_TINY = float(np.finfo(np.float32).tiny)


def parse_header(block: bytes) -> tuple[nib.Nifti1Header, int]:
    """The header at the start of ``block`` and its NIfTI version (1 or 2).

    The byte order comes from ``sizeof_hdr`` (nibabel guesses it from ``dim[0]``, which a bad
    ``dim[0]`` fools).
    """
    if not block:
        raise InputError("empty file")
    if len(block) < 4:
        raise InputError(f"truncated header: the file holds {len(block)} bytes")
    size_le, size_be = struct.unpack("<i", block[:4])[0], struct.unpack(">i", block[:4])[0]
    version = next((v for v, n in HEADER_SIZES.items() if n in (size_le, size_be)), 0)
    if not version:
        raise InputError(f"not a NIfTI file: sizeof_hdr is {size_le}, expected 348 or 540")
    size = HEADER_SIZES[version]
    endian = "<" if size_le == size else ">"
    if len(block) < size:
        raise InputError(
            f"truncated header: a NIfTI-{version} header has {size} bytes, "
            f"the file holds {len(block)}"
        )
    klass = nib.Nifti1Header if version == 1 else nib.Nifti2Header
    hdr = klass(binaryblock=block[:size], endianness=endian, check=False)
    _check_magic(bytes(block[344:348] if version == 1 else block[4:12]), version)
    return hdr, version


def _check_magic(magic: bytes, version: int) -> None:
    want = NIFTI1_MAGIC if version == 1 else NIFTI2_MAGIC
    if magic == want:
        return
    if magic[:4] in (b"ni1\x00", b"ni2\x00"):
        raise InputError(
            f"magic {magic[:3].decode()!r} marks a .hdr/.img pair; "
            "only single-file NIfTI is supported"
        )
    if version == 2 and magic[:4] == NIFTI2_MAGIC[:4]:
        raise InputError(
            f"bad NIfTI-2 magic {magic!r}: its line-ending bytes were changed "
            "(a text-mode transfer?), so the file may be damaged"
        )
    raise InputError(f"bad magic {magic!r} for a NIfTI-{version} header (expected {want!r})")


def declared_shape(hdr: nib.Nifti1Header) -> tuple[int, ...]:
    """``dim[1..dim[0]]``, each at least 1; at least two dimensions."""
    dim = [int(d) for d in hdr["dim"]]
    if not 1 <= dim[0] <= 7:
        raise InputError(f"dim[0] is {dim[0]}, expected 1 to 7")
    shape = tuple(dim[1 : dim[0] + 1])
    for i, d in enumerate(shape, start=1):
        if d < 1:
            raise InputError(f"dim[{i}] is {d}; every dimension must be at least 1")
    if len(shape) < 2:
        raise InputError(f"a 1D image (dim[0] is 1, {shape[0]} values) has no slices to export")
    return shape


def check_intent(hdr: nib.Nifti1Header) -> None:
    """Refuse NIfTI files whose intent says they are not a volume (CIFTI, meshes)."""
    intent = int(hdr["intent_code"])
    if 3000 <= intent <= 3099:
        raise InputError(f"CIFTI file (intent_code {intent}): brain-ordinate data, not a volume")
    if intent in NON_VOLUME_INTENTS:
        raise InputError(f"not a volume: intent_code {intent} ({NON_VOLUME_INTENTS[intent]})")


def data_dtype(hdr: nib.Nifti1Header, warnings: list[str]) -> tuple[np.dtype, int]:
    """On-disk dtype (with byte order) and RGB channel count (0 for scalar data)."""
    code = int(hdr["datatype"])
    if code not in SUPPORTED_DATATYPES:
        name = DATATYPE_NAMES.get(code, "not a NIfTI datatype")
        raise InputError(f"unsupported datatype {code} ({name})")
    dt = hdr.get_data_dtype()
    bitpix = int(hdr["bitpix"])
    if bitpix != dt.itemsize * 8:
        warnings.append(
            f"bitpix is {bitpix} but datatype {code} ({DATATYPE_NAMES[code]}) "
            f"has {dt.itemsize * 8} bits; using the datatype"
        )
    return dt, {128: 3, 2304: 4}.get(code, 0)


def scaling(hdr: nib.Nifti1Header, warnings: list[str]) -> tuple[float, float]:
    """``(slope, inter)`` to apply; ``(1, 0)`` when the file asks for no scaling."""
    slope, inter = float(hdr["scl_slope"]), float(hdr["scl_inter"])
    if math.isnan(slope) or slope == 0:
        return 1.0, 0.0  # NIfTI: slope 0 means unscaled; nibabel writes NaN for the same
    if math.isinf(slope):
        raise InputError(f"scl_slope is {slope}; voxel values cannot be scaled by it")
    if abs(slope) < _F32_TINY:  # float32 arithmetic flushes it to 0: "no scaling" to some tools
        raise InputError(
            f"scl_slope is {slope:g}, a subnormal float32; voxel values cannot be scaled by it"
        )
    if not math.isfinite(inter):
        warnings.append(f"scl_inter is {inter} with scl_slope {slope:g}; using 0")
        inter = 0.0
    return slope, inter


def integral_scaling(slope: float, inter: float) -> bool:
    """Whether ``scl_slope`` and ``scl_inter`` are whole numbers, so that integer stored values
    give integer data values (``data = stored * slope + inter``). The one place this is decided."""
    return float(slope).is_integer() and float(inter).is_integer()


def plausible_voxel_size(size: float) -> bool:
    """Whether ``size`` lies in :data:`VOXEL_MM` (its ends as stored in float32 included)."""
    return math.isfinite(size) and _VOXEL_F32[0] <= size <= _VOXEL_F32[1]


def voxel_sizes(
    hdr: nib.Nifti1Header, ndim: int, sform: np.ndarray | None, warnings: list[str]
) -> tuple[float, float, float]:
    """``pixdim[1..3]`` as plausible voxel sizes (mm). A bad entry is taken from the usable
    ``sform`` when there is one, else 1 mm (0) or its magnitude (negative); NaN, Inf or an
    implausible size without a usable sform is an error."""
    out: list[float] = []
    for i in range(1, 4):
        p = float(hdr["pixdim"][i])
        if i > ndim:
            out.append(1.0)
            continue
        if plausible_voxel_size(p):
            out.append(p)
            continue
        if sform is not None:
            size = float(np.linalg.norm(sform[:3, i - 1]))
            warnings.append(f"pixdim[{i}] is {p:g}; using {size:g} from the sform")
        elif p == 0 or (p < 0 and plausible_voxel_size(-p)):
            size = abs(p) if p < 0 else 1.0
            warnings.append(f"pixdim[{i}] is {p:g}; using {size:g} mm")
        else:
            raise InputError(
                f"pixdim[{i}] is {p:g}; voxel sizes must be finite, between "
                f"{VOXEL_MM[0]:g} and {VOXEL_MM[1]:g} mm "
                "(and no usable sform gives them)"
            )
        out.append(size)
    return out[0], out[1], out[2]


def affine_problem(a: np.ndarray) -> str | None:
    """Why a 4 x 4 affine cannot place the voxels (None: it can)."""
    if not np.all(np.isfinite(a)):
        return "has non-finite values"
    with np.errstate(all="ignore"):
        sizes = np.linalg.norm(a[:3, :3], axis=0)
        if np.any(sizes == 0):
            return "is singular (a voxel axis has length 0)"
        if not all(plausible_voxel_size(float(s)) for s in sizes):
            shown = ", ".join(f"{s:.3g}" for s in sizes)
            low, high = VOXEL_MM
            return f"has implausible voxel sizes ({shown} mm; expected {low:g} to {high:g})"
        if abs(float(np.linalg.det(a[:3, :3] / sizes))) < 1e-6:
            return "is singular (its axes are not independent)"
    return None


def sform_of(hdr: nib.Nifti1Header) -> np.ndarray:
    return np.vstack([hdr["srow_x"], hdr["srow_y"], hdr["srow_z"], [0, 0, 0, 1]]).astype(np.float64)


def qform_of(hdr: nib.Nifti1Header, zooms: Sequence[float], warnings: list[str]) -> np.ndarray:
    """The qform matrix by the NIfTI-1 reference algorithm (``nifti_quatern_to_mat44``).

    The quaternion is completed here and the rotation is nibabel's ``quat2mat``: nibabel's own
    ``Nifti1Header.get_qform`` raises on 3 of the malformed corpus' headers (qfac 0, a negative
    pixdim, b²+c²+d² > 1) and uses pixdim as stored, not the repaired ``zooms``.
    """
    b, c, d = (float(hdr[k]) for k in ("quatern_b", "quatern_c", "quatern_d"))
    norm2 = b * b + c * c + d * d
    a2 = 1.0 - norm2
    if a2 < 1e-7 and norm2 > 0 and math.isfinite(norm2):
        if norm2 > 1 + 1e-6:
            warnings.append(
                f"qform quaternion out of range (quatern_b/c/d {b:g}, {c:g}, {d:g}: "
                f"b²+c²+d² = {norm2:.4g} > 1); normalised"
            )
        s = 1.0 / math.sqrt(norm2)
        a, b, c, d = 0.0, b * s, c * s, d * s
    else:
        a = math.sqrt(a2) if a2 >= 0 else math.nan
    qfac = -1.0 if float(hdr["pixdim"][0]) < 0 else 1.0
    out = np.eye(4)
    rot = nib.quaternions.quat2mat((a, b, c, d))
    out[:3, :3] = rot * np.array([zooms[0], zooms[1], zooms[2] * qfac])
    out[:3, 3] = [float(hdr[k]) for k in ("qoffset_x", "qoffset_y", "qoffset_z")]
    return out


def xform_codes(hdr: nib.Nifti1Header, warnings: list[str]) -> tuple[int, int]:
    """``(qform_code, sform_code)``, warning about codes the standard does not define."""
    codes = int(hdr["qform_code"]), int(hdr["sform_code"])
    for name, code in zip(("qform_code", "sform_code"), codes, strict=True):
        if code not in KNOWN_XFORM_CODES:
            state = "treating it as set" if code > 0 else "treating it as 0 (not set)"
            warnings.append(f"{name} {code} is not a known code; {state}")
    return codes


def vox_offset(hdr: nib.Nifti1Header, version: int, warnings: list[str]) -> int:
    """Byte offset of the voxel data: a whole number at or past the end of the header."""
    raw = float(hdr["vox_offset"])
    first = HEADER_SIZES[version] + 4
    if not math.isfinite(raw) or raw != int(raw):
        raise InputError(f"vox_offset is {raw}; expected a whole byte offset >= {first}")
    value = int(raw)
    if value == 0 and version == 1:
        warnings.append(f"vox_offset is 0; assuming {first}, right after the header")
        return first
    if value < first:
        raise InputError(
            f"vox_offset is {value}, inside the header (the data starts at {first} or later)"
        )
    return value


def check_extensions(flag: bytes, region: bytes, endian: str, warnings: list[str]) -> None:
    """Walk the extension chain in ``region`` (the bytes between the extension flag and
    ``vox_offset``); a broken chain is reported and ignored."""
    if len(flag) < 4 or flag[0] == 0 or len(region) < 8:
        return
    pos = 0
    while pos + 8 <= len(region):
        esize, ecode = struct.unpack(endian + "ii", region[pos : pos + 8])
        if esize < 16 or esize % 16 or pos + esize > len(region):
            why = (
                "not a positive multiple of 16"
                if esize < 16 or esize % 16
                else f"past vox_offset ({len(region) - pos} bytes left)"
            )
            warnings.append(
                f"extension {ecode} at byte {pos}: esize {esize} is {why}; "
                "ignoring the header extensions"
            )
            return
        pos += esize
