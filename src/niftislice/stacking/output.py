"""What ``stack`` writes: values in output units and dtype, and the NIfTI file itself.

``values="data"`` inverts the sidecar's intensity mapping (``data = offset + pixel * scale``) and
keeps the source dtype when the values fit it, with scl_slope/inter reset since values are already
in data units; lossless exports of scaled integer sources come back as the stored integers in the
source dtype with its scl_slope/scl_inter (a CT's uint16 with scl_inter -1024 stays so), other
integer sources with fractional scaling as float32. ``values="pixel"`` keeps the images' pixel
values and dtype. The header copies the source's shape, voxel sizes,
qform/sform with their codes (and the unused quaternion fields of a qform_code 0 header), units,
intent, NIfTI version and byte order.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from .._nib import nib
from ..errors import InputError, OptionError, OutputError
from ..files import atomic_path, lexists, make_dirs
from ..read.validate import integral_scaling
from ..sidecar import NIFTI_UNITS
from ..types import View
from .record import IntensityInfo, SourceInfo

_UNIT_CODES = {name: code for code, name in NIFTI_UNITS.items()}


def output_values(
    acc: np.ndarray,
    values: str,
    fill: float | None,
    intensity: IntensityInfo,
    source: SourceInfo,
    img_dtype: np.dtype,
    warnings: list[str],
) -> tuple[np.ndarray, float, float]:
    """Stacked pixel values ``acc`` (float32) as stored values, with the scl_slope and scl_inter
    that turn them into output units (1, 0 unless a scaled integer source was exported lossless).

    ``fill`` (output units; None when no slice is missing) must be storable too.
    """
    if values == "pixel":
        return _pixel_values(acc, fill, np.dtype(img_dtype))
    if intensity.kind == "window":
        warnings.append(
            f"the images hold windowed values: data comes back in steps of {intensity.scale:.4g} "
            f"and clipped to {_num(intensity.low)}..{_num(intensity.high)} "
            "(--lossless exports are exact; --values pixel keeps the pixel values)"
        )
    if source.dtype is None:
        raise OptionError("values: a colour (RGB) source cannot be stacked as data; use pixel")
    scaled = (source.slope, source.inter) != (1.0, 0.0)
    if source.dtype.kind in "iu" and scaled and intensity.kind == "lossless":
        kept = _stored_integers(acc, fill, intensity, source, warnings)
        if kept is not None:
            return kept
    return _data_values(acc, fill, intensity, source, warnings), 1.0, 0.0


def _pixel_values(
    acc: np.ndarray, fill: float | None, dtype: np.dtype
) -> tuple[np.ndarray, float, float]:
    if dtype.kind not in "iu":
        return acc.astype(dtype if dtype.itemsize >= 4 else np.float32), 1.0, 0.0
    if fill is not None and not (fill.is_integer() and _fits(dtype, fill, fill)):
        raise OptionError(f"fill: {fill:g} cannot be stored in the images' {dtype} pixels")
    return _cast(acc, dtype, 1.0, 0.0), 1.0, 0.0


def _stored_integers(
    acc: np.ndarray,
    fill: float | None,
    intensity: IntensityInfo,
    source: SourceInfo,
    warnings: list[str],
) -> tuple[np.ndarray, float, float] | None:
    """Lossless pixels are the stored integers minus an offset: keep them in the source dtype,
    with the source's scaling; None when they do not fit (edited images, a fractional fill)."""
    src, slope, inter = source.dtype, source.slope, source.inter
    assert src is not None
    scale, offset = intensity.scale / slope, (intensity.offset - inter) / slope
    stored = _stored_range(acc, scale, offset)
    stored_fill = None if fill is None else (fill - inter) / slope
    if stored_fill is not None:
        stored = (min(stored[0], stored_fill), max(stored[1], stored_fill))
    if (stored_fill is None or stored_fill.is_integer()) and _fits(src, *stored):
        return _cast(acc, src, scale, offset), slope, inter
    if not integral_scaling(slope, inter):
        why = "edited images?" if fill is None else f"edited images or --fill {fill:g}?"
        warnings.append(
            f"values are not stored {src} integers under scl_slope {slope:g}, "
            f"scl_inter {inter:g} ({why}); written as float32"
        )
    return None


def _data_values(
    acc: np.ndarray,
    fill: float | None,
    intensity: IntensityInfo,
    source: SourceInfo,
    warnings: list[str],
) -> np.ndarray:
    """Values in data units: the source dtype when they fit it, else a wider or float type."""
    src, scale, offset = source.dtype, intensity.scale, intensity.offset
    assert src is not None
    lo, hi = _stored_range(acc, scale, offset)
    if not (math.isfinite(lo) and math.isfinite(hi)) and np.isfinite(_ends(acc)).all():
        raise InputError(
            f"the sidecar's intensity.pixel_to_data (scale {scale:g}, offset {offset:g}) takes "
            "the images' pixels beyond the float64 range"
        )
    if src.kind == "f" or not integral_scaling(source.slope, source.inter):
        dtype = src if src.kind == "f" and src.itemsize >= 4 else np.dtype(np.float32)
        return _cast(acc, _wide_enough(dtype, lo, hi, warnings), scale, offset)
    if fill is not None and not fill.is_integer():
        raise OptionError(f"fill: {fill:g} cannot be stored in integer ({src}) output")
    if not (math.isfinite(lo) and math.isfinite(hi)):  # NaN in float images from elsewhere
        warnings.append(f"the images hold NaN or infinite values; written as float32, not {src}")
        return _cast(acc, np.dtype(np.float32), scale, offset)
    if fill is not None:
        lo, hi = min(lo, fill), max(hi, fill)
    dtype = src
    if not _fits(src, lo, hi):
        dtype = _integer_for(lo, hi)
        warnings.append(f"values {lo:g} to {hi:g} do not fit the source's {src}; stored as {dtype}")
    return _cast(acc, dtype, scale, offset)


def _ends(acc: np.ndarray) -> np.ndarray:
    return np.array([np.min(acc), np.max(acc)], dtype=np.float64)


def _integer_for(lo: float, hi: float) -> np.dtype:
    """The smallest integer dtype holding ``lo..hi``; float64 beyond 64-bit integers."""
    if not (_fits(np.dtype(np.int64), lo, hi) or _fits(np.dtype(np.uint64), lo, hi)):
        return np.dtype(np.float64)
    return np.promote_types(np.min_scalar_type(int(lo)), np.min_scalar_type(int(hi)))


def _wide_enough(dtype: np.dtype, lo: float, hi: float, warnings: list[str]) -> np.dtype:
    """``dtype``, or float64 when the values ``lo..hi`` are beyond a float32's range."""
    if dtype.itemsize < 8 and max(abs(lo), abs(hi)) > float(np.finfo(dtype).max):
        warnings.append(f"values {lo:g} to {hi:g} are beyond {dtype}; stored as float64")
        return np.dtype(np.float64)
    return dtype


def _num(value: float | None) -> str:
    return "?" if value is None else f"{value:g}"


def _stored_range(acc: np.ndarray, scale: float, offset: float) -> tuple[float, float]:
    """Smallest and largest of ``rint(offset + acc * scale)``."""
    ends = [float(np.rint(offset + scale * float(v))) for v in (np.min(acc), np.max(acc))]
    return min(ends), max(ends)


def _fits(dtype: np.dtype, lo: float, hi: float) -> bool:
    info = np.iinfo(dtype)
    return info.min <= lo and hi <= info.max


def _cast(acc: np.ndarray, dtype: np.dtype, scale: float, offset: float) -> np.ndarray:
    """``offset + acc * scale`` as ``dtype`` (rounded for integers), one volume at a time."""
    out = np.empty(acc.shape, dtype=dtype)
    parts = range(acc.shape[3]) if acc.ndim == 4 else [None]
    for t in parts:
        sel = (Ellipsis, t) if t is not None else (Ellipsis,)
        vals = acc[sel].astype(np.float64)
        if scale != 1.0 or offset != 0.0:
            vals = vals * scale + offset
        out[sel] = np.rint(vals) if np.dtype(dtype).kind in "iu" else vals
    return out


def nifti_image(
    data: np.ndarray,
    source: SourceInfo,
    view: View,
    values: str,
    scaling: tuple[float, float] = (1.0, 0.0),
) -> nib.Nifti1Image:
    """A NIfTI image of ``data`` with the source's geometry, units, intent and byte order."""
    v2 = source.nifti_version == 2
    hdr_class = nib.Nifti2Header if v2 else nib.Nifti1Header
    hdr = hdr_class(endianness=">" if source.big_endian else "<")
    hdr.set_data_dtype(data.dtype)
    img = (nib.Nifti2Image if v2 else nib.Nifti1Image)(data, None, header=hdr)
    h = img.header
    zooms = list(source.voxel_sizes[: min(data.ndim, 3)])
    if data.ndim > 3:
        # a time step of 0 is kept: pixdim[4] is read as one only when the 4th axis is time
        step = 1.0 if source.time_step is None else source.time_step
        zooms += [step] + [1.0] * (data.ndim - 4)
    h.set_zooms(zooms)
    for code, matrix, setter in (
        (source.qform_code, source.qform, img.set_qform),
        (source.sform_code, source.sform, img.set_sform),
    ):
        if code > 0 and matrix is not None:
            setter(matrix, code=code if code <= 4 else 2)
        else:
            setter(None, code=0)
    for name, value in source.qform_unused.items():  # kept as the source had them
        if name == "qfac":
            h["pixdim"][0] = value
        else:
            h[name] = value
    space, time = source.units
    h["xyzt_units"] = (_unit_code(space) & 0x07) | (_unit_code(time) & 0x38)
    h["intent_code"] = source.intent
    h["descrip"] = f"niftislice stack {view.value} ({values})".encode()[:79]
    h.set_slope_inter(*scaling)  # (1, 0) unless stored integers keep the source's scaling
    return img


def _unit_code(name: str | None) -> int:
    if name is None:
        return 0
    if name.isdigit():
        return int(name) & 0xFF
    return _UNIT_CODES.get(name, 0)


def check_output_path(out_path: str | os.PathLike[str], overwrite: bool) -> Path:
    out = Path(out_path)
    if not out.name.lower().endswith((".nii", ".nii.gz")):
        raise OptionError(f"output: expected a .nii or .nii.gz file name, got {str(out_path)!r}")
    if lexists(out) and not overwrite:
        raise OutputError(f"output {out} exists (use --overwrite to replace it)")
    if out.is_dir():
        raise OutputError(f"output {out} is a folder")
    return out


def save_atomically(img: nib.Nifti1Image, out: Path) -> None:
    """Write next to ``out`` and move into place, so a failure never leaves half a file."""
    suffix = ".nii.gz" if out.name.lower().endswith(".nii.gz") else ".nii"
    make_dirs(out.parent)
    with atomic_path(out, suffix) as tmp:
        nib.save(img, tmp)
