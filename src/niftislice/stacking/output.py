"""What ``stack`` writes: values in output units and dtype, and the NIfTI file itself.

``values="data"`` inverts the sidecar's intensity mapping (``data = offset + pixel * scale``) and
keeps the source dtype when the values fit it, with scl_slope/inter reset since values are already
in data units; integer sources with fractional scaling come back as float32. ``values="pixel"``
keeps the images' pixel values and dtype. The header copies the source's shape, voxel sizes,
qform/sform with their codes, units, intent, NIfTI version and byte order.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from .._nib import nib
from ..errors import OptionError, OutputError
from ..files import atomic_path, lexists, make_dirs
from ..options import View
from ..sidecar import NIFTI_UNITS

_UNIT_CODES = {name: code for code, name in NIFTI_UNITS.items()}


def output_values(
    acc: np.ndarray,
    values: str,
    fill: float | None,
    intensity: dict[str, Any],
    source: dict[str, Any],
    img_dtype: np.dtype,
    warnings: list[str],
) -> tuple[np.ndarray, float, float]:
    """Stacked pixel values ``acc`` (float32) as stored values, with the scl_slope and scl_inter
    that turn them into output units (1, 0 unless a scaled integer source was exported lossless).

    ``fill`` (output units; None when no slice is missing) must be storable too.
    """
    if values == "pixel":
        dtype = np.dtype(img_dtype)
        if dtype.kind not in "iu":
            return acc.astype(dtype if dtype.itemsize >= 4 else np.float32), 1.0, 0.0
        if fill is not None and not (fill.is_integer() and _fits(dtype, fill, fill)):
            raise OptionError(f"fill: {fill:g} cannot be stored in the images' {dtype} pixels")
        return _cast(acc, dtype, 1.0, 0.0), 1.0, 0.0
    p2d = intensity["pixel_to_data"]
    scale, offset = float(p2d["scale"]), float(p2d["offset"])
    if intensity.get("kind") == "window":
        warnings.append(
            f"the images hold windowed values: data comes back in steps of {scale:.4g} and "
            f"clipped to {intensity['low']:g}..{intensity['high']:g} "
            "(--lossless exports are exact; --values pixel keeps the pixel values)"
        )
    src = np.dtype(str(source["dtype"]))
    slope = float(source.get("scl_slope_applied", 1.0))
    inter = float(source.get("scl_inter_applied", 0.0))
    integral_scaling = slope.is_integer() and inter.is_integer()
    if src.kind in "iu" and not integral_scaling and intensity.get("kind") == "lossless":
        # pixels are the stored integers minus an offset: keep them, with the source's scaling
        stored = _stored_range(acc, scale / slope, (offset - inter) / slope)
        stored_fill = None if fill is None else (fill - inter) / slope
        if stored_fill is not None:
            stored = (min(stored[0], stored_fill), max(stored[1], stored_fill))
        if (stored_fill is None or stored_fill.is_integer()) and _fits(src, *stored):
            return _cast(acc, src, scale / slope, (offset - inter) / slope), slope, inter
        warnings.append(
            f"values are not stored {src} integers under scl_slope {slope:g}, scl_inter {inter:g} "
            f"(edited images or --fill {fill:g}?); written as float32"
        )
    if src.kind == "f" or not integral_scaling:
        dtype = src if src.kind == "f" and src.itemsize >= 4 else np.dtype(np.float32)
        return _cast(acc, dtype, scale, offset), 1.0, 0.0
    if fill is not None and not fill.is_integer():
        raise OptionError(f"fill: {fill:g} cannot be stored in integer ({src}) output")
    lo, hi = _stored_range(acc, scale, offset)
    if not (math.isfinite(lo) and math.isfinite(hi)):  # NaN in float images from elsewhere
        warnings.append(f"the images hold NaN or infinite values; written as float32, not {src}")
        return _cast(acc, np.dtype(np.float32), scale, offset), 1.0, 0.0
    if fill is not None:
        lo, hi = min(lo, fill), max(hi, fill)
    dtype = src
    if not _fits(src, lo, hi):
        dtype = np.promote_types(np.min_scalar_type(int(lo)), np.min_scalar_type(int(hi)))
        warnings.append(f"values {lo:g} to {hi:g} do not fit the source's {src}; stored as {dtype}")
    return _cast(acc, dtype, scale, offset), 1.0, 0.0


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
    source: dict[str, Any],
    view: View,
    values: str,
    scaling: tuple[float, float] = (1.0, 0.0),
) -> nib.Nifti1Image:
    """A NIfTI image of ``data`` with the source's geometry, units, intent and byte order."""
    v2 = int(source.get("nifti_version", 1)) == 2
    hdr_class = nib.Nifti2Header if v2 else nib.Nifti1Header
    hdr = hdr_class(endianness=">" if source.get("byte_order") == "big" else "<")
    hdr.set_data_dtype(data.dtype)
    img = (nib.Nifti2Image if v2 else nib.Nifti1Image)(data, None, header=hdr)
    h = img.header
    zooms = [float(z) for z in source["voxel_sizes"]][: min(data.ndim, 3)]
    if data.ndim > 3:
        zooms += [float(source.get("time_step") or 1.0)] + [1.0] * (data.ndim - 4)
    h.set_zooms(zooms)
    for kind, setter in (("qform", img.set_qform), ("sform", img.set_sform)):
        code = int(source.get(f"{kind}_code") or 0)
        matrix = source.get(kind)
        if code > 0 and matrix is not None:
            setter(np.array(matrix, dtype=np.float64), code=code if code <= 4 else 2)
        else:
            setter(None, code=0)
    units = source.get("units") or {}
    h["xyzt_units"] = _unit_code(units.get("space")) | _unit_code(units.get("time"))
    h["intent_code"] = int(source.get("intent") or 0)
    h["descrip"] = f"niftislice stack {view.value} ({values})".encode()[:79]
    h.set_slope_inter(*scaling)  # (1, 0) unless stored integers keep the source's scaling
    return img


def _unit_code(name: object) -> int:
    if name is None:
        return 0
    if str(name).isdigit():
        return int(str(name))
    return _UNIT_CODES.get(str(name), 0)


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
