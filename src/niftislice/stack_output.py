"""What ``stack`` writes: values in output units and dtype, and the NIfTI file itself.

``values="data"`` inverts the sidecar's intensity mapping (``data = offset + pixel * scale``) and
keeps the source dtype when the values fit it, with scl_slope/inter reset since values are already
in data units; integer sources with fractional scaling come back as float32. ``values="pixel"``
keeps the images' pixel values and dtype. The header copies the source's shape, voxel sizes,
qform/sform with their codes, units, intent, NIfTI version and byte order.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

from .errors import OptionError, OutputError
from .options import View
from .sidecar import _UNITS

_UNIT_CODES = {name: code for code, name in _UNITS.items()}


def output_values(
    acc: np.ndarray,
    values: str,
    fill: float,
    intensity: dict[str, Any],
    source: dict[str, Any],
    img_dtype: np.dtype,
    warnings: list[str],
) -> np.ndarray:
    """Stacked pixel values ``acc`` (float32) in output units and dtype; ``fill`` must fit too."""
    if values == "pixel":
        dtype = np.dtype(img_dtype)
        if dtype.kind in "iu":
            info = np.iinfo(dtype)
            if not (fill.is_integer() and info.min <= fill <= info.max):
                raise OptionError(f"fill: {fill:g} cannot be stored in the images' {dtype} pixels")
            return _cast(acc, dtype, 1.0, 0.0)
        return acc.astype(dtype if dtype.itemsize >= 4 else np.float32)
    p2d = intensity["pixel_to_data"]
    scale, offset = float(p2d["scale"]), float(p2d["offset"])
    if intensity.get("kind") == "window":
        warnings.append(
            f"the images hold windowed values: data comes back in steps of {scale:.4g} and "
            f"clipped to {intensity['low']:g}..{intensity['high']:g} "
            "(export with --lossless for exact values)"
        )
    src = np.dtype(str(source["dtype"]))
    integral_scaling = (
        float(source.get("scl_slope_applied", 1.0)).is_integer()
        and float(source.get("scl_inter_applied", 0.0)).is_integer()
    )
    if src.kind == "f" or not integral_scaling:
        return _cast(
            acc,
            src if src.kind == "f" and src.itemsize >= 4 else np.dtype(np.float32),
            scale,
            offset,
        )
    if not fill.is_integer():
        raise OptionError(f"fill: {fill:g} cannot be stored in integer ({src}) output")
    lo, hi = (float(np.rint(offset + scale * v)) for v in (np.min(acc), np.max(acc)))
    lo, hi = min(lo, hi, fill), max(lo, hi, fill)
    dtype = src
    if not _fits(src, lo, hi):
        dtype = np.promote_types(np.min_scalar_type(int(lo)), np.min_scalar_type(int(hi)))
        warnings.append(f"values {lo:g} to {hi:g} do not fit the source's {src}; stored as {dtype}")
    return _cast(acc, dtype, scale, offset)


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
    data: np.ndarray, source: dict[str, Any], view: View, values: str
) -> nib.Nifti1Image:
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
    h.set_slope_inter(1.0, 0.0)
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
    if (out.exists() or out.is_symlink()) and not overwrite:
        raise OutputError(f"output {out} exists (use --overwrite to replace it)")
    if out.is_dir():
        raise OutputError(f"output {out} is a folder")
    return out


def save_atomically(img: nib.Nifti1Image, out: Path) -> None:
    """Write next to ``out`` and move into place, so a failure never leaves half a file."""
    suffix = ".nii.gz" if out.name.lower().endswith(".nii.gz") else ".nii"
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".niftislice-tmp-", suffix=suffix, dir=out.parent)
        os.close(fd)
    except OSError as e:
        raise OutputError(f"cannot write in {out.parent}: {e.strerror or e}") from None
    try:
        nib.save(img, tmp)
        os.replace(tmp, out)
    except OSError as e:
        raise OutputError(f"cannot write {out}: {e.strerror or e}") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
