"""A corpus of malformed (and a few tricky but valid) NIfTI inputs, built byte by byte.

Each :class:`Case` says what the CLI must do with one input:

- ``"error"``: exit status 1, exactly one ``niftislice: error: <path>: <message>`` line whose
  message matches ``pattern``, nothing left in OUT;
- ``"warn"``: converted (exit 0, sidecar and images written) with a
  ``niftislice: warning: <path>: <message>`` line matching ``pattern`` (a documented repair);
- ``"ok"``: converted (exit 0); warnings are allowed but no error.

Patterns are matched case-insensitively with :func:`re.search`. Files are built with
:mod:`nifti_bytes`, never with nibabel (which repairs headers when saving).
"""

from __future__ import annotations

import bz2
import math
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path
from typing import Literal

import numpy as np
from nifti_bytes import (
    GZIP_HEADER_SIZE,
    Extension,
    Header,
    flip_byte,
    gzip_bytes,
    gzip_stream,
    header_for,
    nifti_file,
    valid_volume,
    voxel_bytes,
)

Outcome = Literal["error", "warn", "ok"]
CLASSES = ("truncation", "compression", "header", "geometry", "values", "filesystem", "bomb")


@dataclass(frozen=True)
class Case:
    name: str
    klass: str
    outcome: Outcome
    pattern: str | None
    filename: str
    payload: Callable[[], bytes] | None = None  # the file's bytes (built lazily)
    setup: Callable[[Path], Path] | None = None  # builds the input in a folder, returns its path
    args: tuple[str, ...] = ()  # extra CLI arguments
    relative: bool = False  # pass the input as a relative path after "--" (cwd = its folder)
    slow: bool = False

    def materialise(self, folder: Path) -> Path:
        """Create the input inside ``folder``; return the path to pass to the CLI."""
        if self.setup is not None:
            return self.setup(folder)
        assert self.payload is not None
        path = folder / self.filename
        path.write_bytes(self.payload())
        return path

    @property
    def may_block(self) -> bool:
        """Inputs that a careless reader would block on or read forever: subprocess only."""
        return self.klass == "filesystem" and self.setup is not None


CASES: list[Case] = []


def _add(
    name: str,
    klass: str,
    outcome: Outcome,
    pattern: str | None,
    payload: Callable[[], bytes] | None = None,
    *,
    filename: str | None = None,
    setup: Callable[[Path], Path] | None = None,
    args: tuple[str, ...] = (),
    relative: bool = False,
    slow: bool = False,
) -> None:
    assert klass in CLASSES, klass
    assert outcome != "error" or pattern, name
    assert all(c.name != name for c in CASES), name
    CASES.append(
        Case(
            name,
            klass,
            outcome,
            pattern,
            filename or f"{name}.nii",
            payload and cache(payload),
            setup,
            args,
            relative,
            slow,
        )
    )


def _base(**overrides: object) -> bytes:
    return valid_volume(**overrides).to_bytes()  # type: ignore[arg-type]


def _hdr(**fields: object) -> Callable[[], bytes]:
    """The base volume with header ``fields`` replaced (data unchanged)."""

    def build() -> bytes:
        vol = valid_volume()
        return nifti_file(replace(vol.header, **fields), vol.array)  # type: ignore[arg-type]

    return build


def _arr(arr: np.ndarray, version: int = 1, **fields: object) -> Callable[[], bytes]:
    """A file holding ``arr`` with header ``fields`` replaced."""

    def build() -> bytes:
        hdr = header_for(arr, version=version, **fields)
        return nifti_file(hdr, arr)

    return build


def _gz(fn: Callable[[], bytes]) -> Callable[[], bytes]:
    return lambda: gzip_bytes(fn())


# ---------------------------------------------------------------- empty and truncated files
VALID = _base
VALID_GZ = _gz(_base)

_add("empty", "truncation", "error", r"empty", lambda: b"")
_add("empty_gz", "truncation", "error", r"empty", lambda: b"", filename="empty_gz.nii.gz")
_add("header_3_bytes", "truncation", "error", r"truncated header|not a nifti", lambda: VALID()[:3])
_add("header_truncated_100", "truncation", "error", r"truncated header", lambda: VALID()[:100])
_add("header_truncated_347", "truncation", "error", r"truncated header", lambda: VALID()[:347])
_add(
    "nifti2_header_truncated_500",
    "truncation",
    "error",
    r"truncated header",
    lambda: _base(version=2)[:500],
)
_add(
    "header_truncated_gz",
    "truncation",
    "error",
    r"truncated header",
    _gz(lambda: VALID()[:200]),
    filename="header_truncated_gz.nii.gz",
)
_add(
    "voxels_truncated",
    "truncation",
    "error",
    r"truncated voxel data: header declares [\d,]+ bytes, file holds [\d,]+",
    lambda: nifti_file(valid_volume((30, 7, 10)).header, b"\1" * 1000),
)
_add(
    "voxels_missing",
    "truncation",
    "error",
    r"truncated voxel data",
    lambda: nifti_file(valid_volume().header, b""),
)
_add("voxels_one_byte_short", "truncation", "error", r"truncated voxel data", lambda: VALID()[:-1])
_add(
    "header_without_ext_flag",
    "truncation",
    "error",
    r"truncated voxel data|vox_offset",
    lambda: VALID()[:348],
)
_add(
    "voxels_truncated_gz",
    "truncation",
    "error",
    r"truncated voxel data",
    _gz(lambda: VALID()[:-7]),
    filename="voxels_truncated_gz.nii.gz",
)
_add(
    "voxels_truncated_4d_last_volume",
    "truncation",
    "error",
    r"truncated voxel data",
    lambda: valid_volume((7, 6, 5, 3)).to_bytes()[:-50],
)
_add(
    "trailing_bytes",
    "truncation",
    "warn",
    r"\b100 bytes? (after|beyond|past)",
    lambda: valid_volume().to_bytes(trailing=b"\xab" * 100),
)

# ---------------------------------------------------------------- compression
_add("gzip_named_nii", "compression", "ok", None, VALID_GZ)
_add("plain_named_niigz", "compression", "ok", None, VALID, filename="plain_named_niigz.nii.gz")
_add(
    "gzip_truncated_half",
    "compression",
    "error",
    r"gzip|compress",
    lambda: (lambda g: g[: len(g) // 2])(VALID_GZ()),
    filename="gzip_truncated_half.nii.gz",
)
_add(
    "gzip_truncated_to_header",
    "compression",
    "error",
    r"gzip|compress|empty",
    lambda: VALID_GZ()[:GZIP_HEADER_SIZE],
    filename="gzip_truncated_to_header.nii.gz",
)
_add(
    "gzip_truncated_trailer",
    "compression",
    "error",
    r"gzip|compress",
    lambda: VALID_GZ()[:-3],
    filename="gzip_truncated_trailer.nii.gz",
)
_add(
    "gzip_flipped_payload_byte",
    "compression",
    "error",
    r"gzip|compress|crc|corrupt",
    lambda: (lambda g: flip_byte(g, len(g) // 2, 0x10))(VALID_GZ()),
    filename="gzip_flipped_payload_byte.nii.gz",
)
_add(
    "gzip_flipped_first_deflate_byte",
    "compression",
    "error",
    r"gzip|compress|crc|corrupt",
    lambda: flip_byte(VALID_GZ(), GZIP_HEADER_SIZE, 0x01),
    filename="gzip_flipped_first_deflate_byte.nii.gz",
)
_add(
    "gzip_crc_flipped",
    "compression",
    "error",
    r"crc",
    lambda: flip_byte(VALID_GZ(), -8, 0x01),
    filename="gzip_crc_flipped.nii.gz",
)
_add(
    "gzip_isize_wrong",
    "compression",
    "error",
    r"gzip|compress|length|size",
    lambda: flip_byte(VALID_GZ(), -1, 0x01),
    filename="gzip_isize_wrong.nii.gz",
)
_add(
    "gzip_magic_then_garbage",
    "compression",
    "error",
    r"gzip|compress",
    lambda: b"\x1f\x8b" + bytes(range(256)) * 3,
    filename="gzip_magic_then_garbage.nii.gz",
)
_add(
    "gzip_trailing_garbage",
    "compression",
    "error",
    r"gzip|compress|trailing",
    lambda: VALID_GZ() + b"garbage!",
    filename="gzip_trailing_garbage.nii.gz",
)
_add(
    "gzip_multimember",
    "compression",
    "ok",
    None,
    lambda: gzip_bytes(VALID()[:352]) + gzip_bytes(VALID()[352:]),
    filename="gzip_multimember.nii.gz",
)
_add(
    "gzip_of_empty",
    "compression",
    "error",
    r"empty|truncated header",
    lambda: gzip_bytes(b""),
    filename="gzip_of_empty.nii.gz",
)
_add(
    "double_gzip",
    "compression",
    "error",
    r"not a nifti|sizeof_hdr|gzip",
    lambda: gzip_bytes(VALID_GZ()),
    filename="double_gzip.nii.gz",
)
_add(
    "bzip2_named_niigz",
    "compression",
    "error",
    r"not a nifti|sizeof_hdr|compress",
    lambda: bz2.compress(VALID()),
    filename="bzip2_named_niigz.nii.gz",
)
_add(
    "gzip_big_endian_nifti2",
    "compression",
    "ok",
    None,
    _gz(lambda: _base(version=2, endian=">")),
    filename="gzip_big_endian_nifti2.nii.gz",
)

# ---------------------------------------------------------------- header fields
_add("bad_magic", "header", "error", r"magic", _hdr(magic=b"abc\0"))
_add("magic_ni1_pair", "header", "error", r"magic|\.hdr|pair", _hdr(magic=b"ni1\0"))
_add("magic_n2_in_nifti1", "header", "error", r"magic", _hdr(magic=b"n+2\0"))
_add(
    "nifti2_magic_crlf_mangled",
    "header",
    "error",
    r"magic",
    lambda: _base(version=2, magic=b"n+2\0\n\x1a\n\0"),
)
_add("sizeof_hdr_0", "header", "error", r"sizeof_hdr", _hdr(sizeof_hdr=0))
_add("sizeof_hdr_1000", "header", "error", r"sizeof_hdr.*1000", _hdr(sizeof_hdr=1000))
_add("sizeof_hdr_negative", "header", "error", r"sizeof_hdr.*-348", _hdr(sizeof_hdr=-348))
_add(
    "text_file",
    "header",
    "error",
    r"not a nifti|sizeof_hdr",
    lambda: b"This is not a NIfTI file, just some text.\n" * 20,
)
_add("big_endian_valid", "header", "ok", None, lambda: _base(endian=">"))
_add("dim0_zero", "header", "error", r"dim\[0\]\D+0\b", _hdr(dim=(0, 7, 6, 5, 1, 1, 1, 1)))
_add("dim0_eight", "header", "error", r"dim\[0\]\D+8\b", _hdr(dim=(8, 7, 6, 5, 1, 1, 1, 1)))
_add("dim0_negative", "header", "error", r"dim\[0\]\D+-3\b", _hdr(dim=(-3, 7, 6, 5, 1, 1, 1, 1)))
# 256 is 1 byte-swapped: nibabel guesses the byte order from dim[0] and would misread the file
_add("dim0_256", "header", "error", r"dim\[0\]\D+256\b", _hdr(dim=(256, 7, 6, 5, 1, 1, 1, 1)))
_add("dim2_zero", "header", "error", r"dim\[2\]\D+0\b", _hdr(dim=(3, 7, 0, 5, 1, 1, 1, 1)))
_add("dim3_negative", "header", "error", r"dim\[3\]\D+-5\b", _hdr(dim=(3, 7, 6, -5, 1, 1, 1, 1)))
_add(
    "image_1d",
    "header",
    "error",
    r"1D|one-dimensional|dim\[0\]",
    _arr(np.arange(100, dtype=np.int16)),
)
_add("image_2d", "header", "ok", None, _arr(np.arange(42, dtype=np.int16).reshape(7, 6)))
_add("image_4d", "header", "ok", None, lambda: valid_volume((7, 6, 5, 3)).to_bytes())
_add("image_5d", "header", "warn", r"5D", lambda: valid_volume((7, 6, 5, 1, 3)).to_bytes())
_add("image_7d", "header", "warn", r"7D", lambda: valid_volume((4, 3, 2, 1, 2, 1, 2)).to_bytes())
_add("image_5d_singletons", "header", "ok", None, lambda: valid_volume((7, 6, 5, 1, 1)).to_bytes())
_add("dims_beyond_dim0_ignored", "header", "ok", None, _hdr(dim=(3, 7, 6, 5, 9, 9, 9, 9)))
_add(
    "pixdim_zero",
    "header",
    "warn",
    r"pixdim\[1\]\D+0\b",
    _hdr(pixdim=(1.0, 0.0, 2.0, 2.0, 1, 0, 0, 0), sform_code=0),
)
_add(
    "pixdim_negative",
    "header",
    "warn",
    r"pixdim\[2\].*-2\b",
    _hdr(pixdim=(1.0, 2.0, -2.0, 2.0, 1, 0, 0, 0), sform_code=0),
)
_add(
    "pixdim_nan",
    "header",
    "error",
    r"pixdim\[3\].*nan",
    _hdr(pixdim=(1.0, 2.0, 2.0, math.nan, 1, 0, 0, 0), sform_code=0),
)
_add(
    "pixdim_inf",
    "header",
    "error",
    r"pixdim\[1\].*inf",
    _hdr(pixdim=(1.0, math.inf, 2.0, 2.0, 1, 0, 0, 0), sform_code=0),
)
_add(
    "pixdim_nan_with_valid_sform",
    "header",
    "warn",
    r"pixdim\[3\].*nan",
    _hdr(pixdim=(1.0, 2.0, 2.0, math.nan, 1, 0, 0, 0), qform_code=0),
)
_add(
    "pixdim_time_nan",
    "header",
    "ok",
    None,
    lambda: valid_volume((7, 6, 5, 2), pixdim=(1.0, 2.0, 2.0, 2.0, math.nan, 0, 0, 0)).to_bytes(),
)
_add("datatype_unknown_999", "header", "error", r"datatype.*999", _hdr(datatype=999))
_add("datatype_zero", "header", "error", r"datatype.*\b0\b", _hdr(datatype=0))
_add("datatype_binary", "header", "error", r"binary", _hdr(datatype=1, bitpix=1))
_add(
    "datatype_complex64",
    "header",
    "error",
    r"complex64",
    lambda: nifti_file(replace(Header(), datatype=32), np.zeros((7, 6, 5), np.complex64)),
)
_add(
    "datatype_complex128",
    "header",
    "error",
    r"complex128",
    lambda: nifti_file(replace(Header(), datatype=1792), np.zeros((7, 6, 5), np.complex128)),
)
_add(
    "datatype_float128",
    "header",
    "error",
    r"float128",
    lambda: nifti_file(replace(Header(), datatype=1536), b"\0" * (7 * 6 * 5 * 16)),
)
_add(
    "datatype_rgb24",
    "header",
    "ok",
    None,
    lambda: nifti_file(replace(Header(), datatype=128), bytes(i % 251 for i in range(630))),
)
_add(
    "datatype_rgba32",
    "header",
    "ok",
    None,
    lambda: nifti_file(replace(Header(), datatype=2304), bytes(i % 251 for i in range(840))),
)
_add("bitpix_mismatch", "header", "ok", None, _hdr(bitpix=8))
for _dt in ("u1", "i1", "u2", "i4", "u4", "i8", "u8", "f4", "f8"):
    _add(
        f"dtype_{_dt}",
        "header",
        "ok",
        None,
        (lambda dt: lambda: valid_volume(dtype=dt).to_bytes())(_dt),
    )
_add(
    "dtype_f8_big_endian",
    "header",
    "ok",
    None,
    lambda: valid_volume(dtype="f8", endian=">").to_bytes(),
)
_add("scl_slope_zero", "header", "ok", None, _hdr(scl_slope=0.0, scl_inter=5.0))
_add("scl_slope_nan", "header", "ok", None, _hdr(scl_slope=math.nan, scl_inter=math.nan))
_add("scl_slope_inf", "header", "error", r"scl_slope.*inf", _hdr(scl_slope=math.inf))
_add("scl_slope_neg_inf", "header", "error", r"scl_slope.*-inf", _hdr(scl_slope=-math.inf))
# float32 arithmetic flushes a subnormal slope to 0, which NIfTI reads as "no scaling"
_add("scl_slope_subnormal", "header", "error", r"scl_slope.*subnormal", _hdr(scl_slope=-1e-40))
_add("scl_inter_nan", "header", "warn", r"scl_inter.*nan", _hdr(scl_slope=2.0, scl_inter=math.nan))
_add("scl_inter_inf", "header", "warn", r"scl_inter.*inf", _hdr(scl_inter=math.inf))
_add("scaling_valid", "header", "ok", None, _hdr(scl_slope=0.5, scl_inter=-100.0))
_add(
    "scaling_overflows",
    "header",
    "error",
    r"overflow|scl_slope",
    lambda: valid_volume(version=2, scl_slope=1e305).to_bytes()[:-2] + struct.pack("<h", 32767),
)
_add("vox_offset_too_small", "header", "error", r"vox_offset\D+100\b", _hdr(vox_offset=100.0))
_add("vox_offset_nan", "header", "error", r"vox_offset.*nan", _hdr(vox_offset=math.nan))
_add("vox_offset_inf", "header", "error", r"vox_offset.*inf", _hdr(vox_offset=math.inf))
_add("vox_offset_negative", "header", "error", r"vox_offset.*-352", _hdr(vox_offset=-352.0))
_add(
    "vox_offset_beyond_end",
    "header",
    "error",
    r"vox_offset|truncated voxel data",
    lambda: (
        replace(valid_volume().header, vox_offset=1e6).pack()
        + b"\0" * 4
        + voxel_bytes(valid_volume().array)
    ),
)
_add("vox_offset_fractional", "header", "error", r"vox_offset.*352\.5", _hdr(vox_offset=352.5))
_add("vox_offset_unaligned", "header", "ok", None, _hdr(vox_offset=353.0))
_add(
    "extension_valid",
    "header",
    "ok",
    None,
    lambda: nifti_file(
        valid_volume().header,
        valid_volume().array,
        extensions=[Extension(6, b"a comment"), Extension(4, b"<xml/>" * 10)],
    ),
)
for _name, _esize in (
    ("zero", 0),
    ("13", 13),
    ("negative", -16),
    ("past_data", 4096),
    ("huge", 2**31 - 1),
):
    _add(
        f"extension_esize_{_name}",
        "header",
        "warn",
        r"extension|esize",
        (
            lambda es: (
                lambda: nifti_file(
                    valid_volume().header,
                    valid_volume().array,
                    extensions=[Extension(6, b"x" * 24, esize=es)],
                )
            )
        )(_esize),
    )
_add(
    "extension_flag_without_room",
    "header",
    "ok",
    None,
    lambda: nifti_file(valid_volume().header, valid_volume().array, extension_flag=b"\1\0\0\0"),
)
_add("nifti2_valid", "header", "ok", None, lambda: _base(version=2))
_add("nifti2_big_endian", "header", "ok", None, lambda: _base(version=2, endian=">"))
_add(
    "nifti2_cifti_dense",
    "header",
    "error",
    r"CIFTI",
    lambda: nifti_file(
        replace(
            Header(version=2),
            intent_code=3006,
            qform_code=0,
            sform_code=0,
            dim=(6, 1, 1, 1, 1, 20, 30, 1),
            datatype=16,
        ),
        np.ones((1, 1, 1, 1, 20, 30), np.float32),
        extensions=[Extension(32, b"<CIFTI Version='2'/>")],
    ),
)
_add("nifti1_cifti_intent", "header", "error", r"CIFTI", _hdr(intent_code=3001))
_add(
    "nifti2_pointset",
    "header",
    "error",
    r"not a volume|point|intent",
    lambda: nifti_file(
        replace(Header(version=2), intent_code=1008, dim=(5, 100, 1, 1, 1, 3, 1, 1), datatype=16),
        np.ones((100, 1, 1, 1, 3), np.float32),
    ),
)
_add(
    "nifti2_triangle",
    "header",
    "error",
    r"not a volume|triangle|intent",
    lambda: nifti_file(
        replace(Header(version=2), intent_code=1009, dim=(5, 50, 1, 1, 1, 3, 1, 1), datatype=8),
        np.ones((50, 1, 1, 1, 3), np.int32),
    ),
)
_add(
    "nifti2_vox_offset_negative",
    "header",
    "error",
    r"vox_offset",
    lambda: _base(version=2, vox_offset=-544),
)
_add("label_intent", "header", "ok", None, _hdr(intent_code=1002))


# ---------------------------------------------------------------- geometry
def _rot(deg: float) -> np.ndarray:
    a = math.radians(deg)
    m = np.eye(4)
    m[:3, :3] = np.array([[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1]])
    return m @ np.diag([2.0, 2.0, 2.0, 1.0])


_add(
    "sform_singular_qform_valid",
    "geometry",
    "warn",
    r"sform.*singular",
    _hdr(srow_z=(0.0, 0.0, 0.0, -4.0)),
)
_add(
    "sform_singular_no_qform",
    "geometry",
    "warn",
    r"sform.*singular",
    _hdr(srow_x=(2.0, 0.0, 0.0, 0.0), srow_y=(4.0, 0.0, 0.0, 0.0), qform_code=0),
)
_add(
    "sform_all_zero",
    "geometry",
    "warn",
    r"sform.*singular",
    _hdr(srow_x=(0.0,) * 4, srow_y=(0.0,) * 4, srow_z=(0.0,) * 4),
)
_add(
    "sform_nan", "geometry", "warn", r"sform.*(finite|nan)", _hdr(srow_y=(0.0, math.nan, 0.0, -5.0))
)
_add(
    "sform_inf_no_qform",
    "geometry",
    "warn",
    r"sform.*(finite|inf)",
    _hdr(srow_x=(math.inf, 0.0, 0.0, -6.0), qform_code=0),
)
_add(
    "sform_sheared",
    "geometry",
    "warn",
    r"shear|oblique",
    _hdr(srow_x=(2.0, 1.0, 0.0, -6.0), qform_code=0),
)
_add(
    "sform_oblique_30deg",
    "geometry",
    "warn",
    r"oblique",
    lambda: nifti_file(valid_volume().header.with_affine(_rot(30.0)), valid_volume().array),
)
_add(
    "quatern_out_of_range",
    "geometry",
    "warn",
    r"quatern|qform",
    _hdr(quatern_b=0.9, quatern_c=0.9, quatern_d=0.9, sform_code=0),
)
_add("quatern_nan", "geometry", "warn", r"quatern|qform", _hdr(quatern_c=math.nan, sform_code=0))
_add("qoffset_inf", "geometry", "warn", r"qoffset|qform", _hdr(qoffset_y=math.inf, sform_code=0))
_add(
    "qform_sform_disagree",
    "geometry",
    "warn",
    r"qform and sform (differ|disagree).*sform",
    _hdr(qoffset_x=50.0),
)
_add(
    "xform_codes_zero",
    "geometry",
    "warn",
    r"(qform|sform)[_ ]code|no qform",
    _hdr(qform_code=0, sform_code=0),
)
_add(
    "xform_codes_unknown",
    "geometry",
    "warn",
    r"(qform|sform)_code\D+(7|9)\b",
    _hdr(qform_code=7, sform_code=9),
)
_add(
    "xform_codes_negative",
    "geometry",
    "warn",
    r"(qform|sform)_code\D+-1\b",
    _hdr(qform_code=-1, sform_code=-1),
)
_add(
    "qfac_zero", "geometry", "ok", None, _hdr(pixdim=(0.0, 2.0, 2.0, 2.0, 1, 0, 0, 0), sform_code=0)
)
_add(
    "qfac_minus_one",
    "geometry",
    "ok",
    None,
    _hdr(pixdim=(-1.0, 2.0, 2.0, 2.0, 1, 0, 0, 0), srow_z=(0.0, 0.0, -2.0, -4.0)),
)
_add("qform_only", "geometry", "ok", None, _hdr(sform_code=0))
_add("sform_only", "geometry", "ok", None, _hdr(qform_code=0))
_add(
    "anisotropic_flipped",
    "geometry",
    "ok",
    None,
    _hdr(
        srow_x=(-1.0, 0.0, 0.0, 6.0),
        srow_y=(0.0, 0.0, 3.0, -5.0),
        srow_z=(0.0, 1.5, 0.0, -4.0),
        qform_code=0,
    ),
)


# ---------------------------------------------------------------- values
_F32 = np.finfo(np.float32)
_F64 = np.finfo(np.float64)
_grad_f4 = valid_volume(dtype="f4").array

_add("all_nan", "values", "warn", r"nan|finite", _arr(np.full((7, 6, 5), np.nan, np.float32)))
_add("all_inf", "values", "warn", r"inf|finite", _arr(np.full((7, 6, 5), np.inf, np.float32)))
_add(
    "some_nan_inf",
    "values",
    "ok",
    None,
    _arr(
        np.where(_grad_f4 % 7 == 0, np.nan, np.where(_grad_f4 % 11 == 0, -np.inf, _grad_f4)).astype(
            np.float32
        )
    ),
)
_add("constant_7", "values", "warn", r"constant", _arr(np.full((7, 6, 5), 7, np.int16)))
_add("constant_zero_u1", "values", "warn", r"constant", _arr(np.zeros((7, 6, 5), np.uint8)))
_add(
    "constant_after_scaling",
    "values",
    "warn",
    r"constant",
    _arr(np.full((7, 6, 5), 3, np.int16), scl_slope=1e-30, scl_inter=4.0),
)
_add(
    "float32_extremes",
    "values",
    "ok",
    None,
    _arr(np.where(_grad_f4 % 2 == 0, _F32.max, _F32.min).astype(np.float32)),
)
_add(
    "float64_extremes",
    "values",
    "ok",
    None,
    _arr(np.where(valid_volume(dtype="f8").array % 2 == 0, _F64.max, _F64.min)),
)
_add(
    "int64_extremes",
    "values",
    "ok",
    None,
    _arr(
        np.where(
            valid_volume(dtype="i8").array % 2 == 0, np.iinfo(np.int64).max, np.iinfo(np.int64).min
        ).astype(np.int64)
    ),
)
_add(
    "uint64_max",
    "values",
    "ok",
    None,
    _arr(
        np.where(valid_volume(dtype="u8").array % 2 == 0, np.iinfo(np.uint64).max, 0).astype(
            np.uint64
        )
    ),
)
_add("subnormal_floats", "values", "ok", None, _arr((_grad_f4 * 1e-44).astype(np.float32)))
_add(
    "scaled_past_float32",
    "values",
    "ok",
    None,
    _arr(
        np.full((7, 6, 5), _F32.max, np.float32) * (valid_volume(dtype="f4").array % 2),
        scl_slope=10.0,
    ),
)


# ---------------------------------------------------------------- filesystem
def _dir_named_nii(d: Path) -> Path:
    p = d / "folder.nii"
    p.mkdir()
    (p / "inner.nii").write_bytes(VALID())
    return p


def _fifo(d: Path) -> Path:
    p = d / "pipe.nii"
    os.mkfifo(p)
    return p


def _link(target: str | Path, name: str) -> Callable[[Path], Path]:
    def make(d: Path) -> Path:
        p = d / name
        p.symlink_to(target if not str(target).startswith("@") else d / str(target)[1:])
        return p

    return make


def _loop(d: Path) -> Path:
    (d / "loop_a.nii").symlink_to(d / "loop_b.nii")
    (d / "loop_b.nii").symlink_to(d / "loop_a.nii")
    return d / "loop_a.nii"


def _link_to_valid(d: Path) -> Path:
    (d / "real_target.nii").write_bytes(VALID())
    return _link("@real_target.nii", "link_to_valid.nii")(d)


def _link_to_dir(d: Path) -> Path:
    (d / "somedir").mkdir()
    return _link("@somedir", "link_to_dir.nii")(d)


def _named(name: str | bytes, payload: Callable[[], bytes] = VALID) -> Callable[[Path], Path]:
    def make(d: Path) -> Path:
        if isinstance(name, bytes):
            p = Path(os.fsdecode(os.path.join(os.fsencode(d), name)))
        else:
            p = d / name
        p.write_bytes(payload())
        return p

    return make


_add(
    "directory_named_nii",
    "filesystem",
    "error",
    r"directory",
    setup=_dir_named_nii,
    filename="folder.nii",
)
_add("fifo", "filesystem", "error", r"not a regular file|fifo", setup=_fifo, filename="pipe.nii")
_add(
    "broken_symlink",
    "filesystem",
    "error",
    r"no such file|not found|does not exist|broken",
    setup=_link("@does_not_exist.nii", "broken.nii"),
    filename="broken.nii",
)
_add(
    "symlink_loop", "filesystem", "error", r"symbolic link|loop", setup=_loop, filename="loop_a.nii"
)
_add(
    "symlink_to_dev_zero",
    "filesystem",
    "error",
    r"not a regular file|device",
    setup=_link("/dev/zero", "zero.nii"),
    filename="zero.nii",
)
_add(
    "symlink_to_dev_urandom",
    "filesystem",
    "error",
    r"not a regular file|device",
    setup=_link("/dev/urandom", "random.nii.gz"),
    filename="random.nii.gz",
)
_add(
    "symlink_to_dev_null",
    "filesystem",
    "error",
    r"not a regular file|device|empty",
    setup=_link("/dev/null", "null.nii"),
    filename="null.nii",
)
_add(
    "symlink_to_directory",
    "filesystem",
    "error",
    r"directory",
    setup=_link_to_dir,
    filename="link_to_dir.nii",
)
_add(
    "symlink_to_valid", "filesystem", "ok", None, setup=_link_to_valid, filename="link_to_valid.nii"
)
_add(
    "nonexistent",
    "filesystem",
    "error",
    r"no such file|not found|does not exist",
    setup=lambda d: d / "nonexistent.nii",
    filename="nonexistent.nii",
)
_add(
    "name_leading_dash",
    "filesystem",
    "ok",
    None,
    setup=_named("-scan.nii"),
    filename="-scan.nii",
    relative=True,
)
_add(
    "name_with_spaces",
    "filesystem",
    "ok",
    None,
    setup=_named("my scan 01.nii"),
    filename="my scan 01.nii",
)
_add(
    "name_non_ascii",
    "filesystem",
    "ok",
    None,
    setup=_named("héllo_脑_ü.nii.gz", VALID_GZ),
    filename="héllo_脑_ü.nii.gz",
)
_add(
    "name_with_newline",
    "filesystem",
    "ok",
    None,
    setup=_named("two\nlines.nii"),
    filename="two\nlines.nii",
)
_add(
    "name_invalid_utf8",
    "filesystem",
    "ok",
    None,
    setup=_named(b"bad_\xff\xfe.nii"),
    filename="bad_\udcff\udcfe.nii",
)
_add(
    "name_upper_case_suffix",
    "filesystem",
    "ok",
    None,
    setup=_named("SCAN.NII.GZ", VALID_GZ),
    filename="SCAN.NII.GZ",
)
_add(
    "name_double_suffix",
    "filesystem",
    "ok",
    None,
    setup=_named("scan.nii.nii.gz", VALID_GZ),
    filename="scan.nii.nii.gz",
)
_add("name_dotdot_stem", "filesystem", "ok", None, setup=_named("...nii"), filename="...nii")
_add("name_only_suffix", "filesystem", "ok", None, setup=_named(".nii"), filename=".nii")
_add(
    "name_very_long",
    "filesystem",
    "ok",
    None,
    setup=_named("x" * 240 + ".nii"),
    filename="x" * 240 + ".nii",
)
_add(
    "error_in_newline_name",
    "filesystem",
    "error",
    r"truncated",
    setup=_named("bad\nname.nii", lambda: VALID()[:-1]),
    filename="bad\nname.nii",
)


# ---------------------------------------------------------------- resource bombs
def _declares(
    dims: tuple[int, ...],
    datatype: int = 4,
    version: int = 1,
    data: bytes = b"\0" * 64,
    gz: bool = False,
) -> Callable[[], bytes]:
    def build() -> bytes:
        hdr = replace(Header(version=version), dim=dims, datatype=datatype)
        raw = nifti_file(hdr, data)
        return gzip_bytes(raw) if gz else raw

    return build


def _trailing_gzip_bomb() -> bytes:
    vol = valid_volume().to_bytes()
    zeros = bytes(1 << 20)
    return gzip_stream([vol, *([zeros] * 320)], level=1)


_add(
    "bomb_32768_cubed",
    "bomb",
    "error",
    r"voxels|max-voxels",
    _declares((3, 32767, 32767, 32767, 1, 1, 1, 1)),
)
_add(
    "bomb_terabytes_nifti2",
    "bomb",
    "error",
    r"voxels|max-voxels",
    _declares((3, 2**40, 2**20, 1, 1, 1, 1, 1), version=2),
)
_add(
    "bomb_4d_1000",
    "bomb",
    "error",
    r"voxels|volumes|max-voxels|truncated voxel data",
    _declares((4, 1000, 1000, 1000, 1000, 1, 1, 1)),
)
_add(
    "bomb_int64_wraps_to_zero",
    "bomb",
    "error",
    r"voxels|max-voxels",
    _declares((3, 2**21, 2**21, 2**22, 1, 1, 1, 1), version=2),
)
_add(
    "bomb_dims_2_pow_62",
    "bomb",
    "error",
    r"voxels|max-voxels",
    _declares((3, 2**62, 2**62, 2**62, 1, 1, 1, 1), version=2),
)
_add(
    "bomb_many_volumes",
    "bomb",
    "error",
    r"volumes|voxels|truncated voxel data",
    _declares((4, 2, 2, 2, 2**62, 1, 1, 1), version=2),
)
_add(
    "bomb_gz_declares_8gib",
    "bomb",
    "error",
    r"voxels|max-voxels|truncated voxel data",
    _declares((3, 2048, 2048, 2048, 1, 1, 1, 1), datatype=2, data=bytes(1 << 20), gz=True),
    filename="bomb_gz_declares_8gib.nii.gz",
)
_add(
    "bomb_gz_declares_512mib_holds_1k",
    "bomb",
    "error",
    r"truncated|voxels",
    _declares((3, 512, 512, 512, 1, 1, 1, 1), datatype=8, data=bytes(1024), gz=True),
    filename="bomb_gz_declares_512mib_holds_1k.nii.gz",
)
_add(
    "bomb_gz_declares_16gib_under_voxel_limit",
    "bomb",
    "error",
    r"truncated voxel data",
    _declares((3, 2048, 1024, 1023, 1, 1, 1, 1), datatype=64, data=bytes(4096), gz=True),
    filename="bomb_gz_declares_16gib_under_voxel_limit.nii.gz",
)
_add(
    "bomb_plain_declares_512mib_holds_1k",
    "bomb",
    "error",
    r"truncated|voxels",
    _declares((3, 512, 512, 512, 1, 1, 1, 1), datatype=8, data=bytes(1024)),
)
_add(
    "bomb_gz_320mib_trailing_zeros",
    "bomb",
    "warn",
    r"bytes? (after|beyond|past)",
    _trailing_gzip_bomb,
    filename="bomb_gz_320mib_trailing_zeros.nii.gz",
    slow=True,
)
_add(
    "bomb_many_slices",
    "bomb",
    "error",
    r"allow-many-slices",
    lambda: valid_volume((2, 2, 32767), "u1").to_bytes(),
)
_add(
    "bomb_many_slices_allowed",
    "bomb",
    "ok",
    None,
    lambda: valid_volume((2, 2, 32767), "u1").to_bytes(),
    args=("--allow-many-slices", "--views", "coronal,sagittal"),
)
# 16 x 16 x 2 voxels of 1000 x 0.01 x 1 mm: square pixels at the finest spacing would make
# 1.6-million-pixel-wide slices (at 64 x 64 x 4 the run peaks at 1.4 GiB).
_add(
    "bomb_anisotropic_resample",
    "bomb",
    "error",
    r"pixels|spacing",
    lambda: nifti_file(
        header_for(
            valid_volume((16, 16, 2)).array,
            qform_code=0,
            srow_x=(1000.0, 0.0, 0.0, 0.0),
            srow_y=(0.0, 0.01, 0.0, 0.0),
            srow_z=(0.0, 0.0, 1.0, 0.0),
        ),
        valid_volume((16, 16, 2)).array,
    ),
)
_add(
    "max_voxels_option_refuses", "bomb", "error", r"max-voxels", VALID, args=("--max-voxels", "100")
)
_add("max_voxels_option_allows", "bomb", "ok", None, VALID, args=("--max-voxels", "210"))


# Cases that fail because of a bug outside loading/validation, with the fix that is needed.
# They run as strict xfails: when the fix lands they XPASS and fail; then delete the entry.
NEEDS_FIX: dict[str, str] = {}


def by_name(name: str) -> Case:
    return next(c for c in CASES if c.name == name)


def byte_cases() -> list[Case]:
    return [c for c in CASES if c.payload is not None]


def counts_by_class() -> dict[str, int]:
    return {k: sum(c.klass == k for c in CASES) for k in CLASSES}
