"""Formats nibabel already reads: Analyze 7.5 and NIfTI pairs (``.hdr`` + ``.img``), MGH/MGZ,
MINC 1 and 2 (``.mnc``) and Philips PAR/REC, through nibabel's own loaders.

nibabel's affine is already voxel to RAS+ mm, so it is used as it is. Analyze 7.5 stores no
orientation: nibabel assumes radiological storage (x from right to left) and so do we, with a
warning. Voxels are read only when asked, after the declared shape has been checked against the
limits. Where the file's scaling is one slope and intercept (Analyze, NIfTI pairs, MGH, PAR/REC
with the same scaling on every slice) the stored values are handed on with that scaling, as for
NIfTI; otherwise (MINC's per-slice ranges, PAR/REC with varying scaling) nibabel's scaled values
(float64) are handed on. MINC 2 needs h5py; without it, one line says so.
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from .._nib import nib
from ..errors import InputError
from ..extras import install_hint
from ..types import Limits
from .digest import SourceDigests, distinct
from .foreign import (
    ForeignImage,
    check_limits,
    check_stored_size,
    checked_affine,
    open_regular,
    to_source,
)
from .nifti import NiftiFile

log = logging.getLogger(__name__)

#: what a folder search looks for; ``.img`` and ``.rec`` are opened when named explicitly
SUFFIXES = (".hdr", ".img", ".mgh", ".mgz", ".mnc", ".par", ".rec")

_FORMAT_NAMES = {
    "AnalyzeImage": "Analyze",
    "Spm99AnalyzeImage": "Analyze",
    "Spm2AnalyzeImage": "Analyze",
    "Nifti1Pair": "NIfTI-1 pair",
    "Nifti2Pair": "NIfTI-2 pair",
    "MGHImage": "MGH",
    "Minc1Image": "MINC1",
    "Minc2Image": "MINC2",
    "PARRECImage": "PAR/REC",
}


def open_nibabel(path: Path, limits: Limits = Limits()) -> NiftiFile:
    """``path`` as the pipeline's source description (see :func:`.foreign.to_source`)."""
    return to_source(read_nibabel(path, limits), limits)


def read_nibabel(path: Path, limits: Limits = Limits()) -> ForeignImage:
    """Open ``path`` with nibabel (header only), check it, and return the image (voxels unread)."""
    with open_regular(path):
        pass  # a fifo, device or folder is refused before nibabel opens it
    img = _load(path)
    kind = _FORMAT_NAMES.get(type(img).__name__)
    if kind is None:
        raise InputError(f"nibabel reads it as {type(img).__name__}, not a format niftislice takes")
    stored = tuple(int(s) for s in img.shape)
    spatial, others = _axes(img, stored)
    shape = tuple(stored[a] for a in spatial) + (1,) * (3 - len(spatial))
    shape += tuple(stored[a] for a in others)
    check_limits(shape, limits)
    warnings: list[str] = []
    if len(others) > 1:
        warnings.append(f"{len(shape)}D image: axes beyond the 4th are flattened into volumes")
    affine = np.asarray(img.affine, dtype=np.float64)
    if affine.shape != (4, 4):
        raise InputError(f"{kind} image with a {affine.shape[0] - 1}D affine is not supported")
    affine, source = _orientation(img, kind, checked_affine(affine), warnings)
    scaling = _uniform_scaling(img)
    dtype = np.dtype(img.get_data_dtype()).newbyteorder("=") if scaling else np.dtype(np.float64)
    _check_data_file(img, kind, stored)
    order = [*spatial, *others]

    def load() -> np.ndarray:
        try:
            raw = img.dataobj.get_unscaled() if scaling else np.asanyarray(img.dataobj)
            arr = np.array(raw, dtype=dtype, copy=True)
        except (OSError, ValueError, EOFError) as e:
            raise InputError(f"cannot read the {kind} voxel data: {e}") from None
        return arr.transpose(order).reshape(shape, order="F")

    slope, inter = scaling or (1.0, 0.0)
    return ForeignImage(
        path=path,
        format=kind,
        shape=shape,
        dtype=dtype,
        affine=affine,
        affine_source=source,
        load=load,
        slope=slope,
        inter=inter,
        facts=_facts(img, kind, stored),
        warnings=tuple(warnings),
        digests=_digests(img, path),
    )


def _load(path: Path) -> Any:
    try:
        return nib.load(str(path))
    except ModuleNotFoundError as e:
        if e.name == "h5py":
            raise InputError(f"MINC2 files need h5py: {install_hint('h5py')}") from None
        raise InputError(f"reading it needs the Python module {e.name}") from None
    except FileNotFoundError as e:
        raise InputError(f"its data file is missing: {Path(str(e.filename)).name}") from None
    except Exception as e:  # nibabel's loaders raise many types (PARRECError, MincError...)
        log.debug("nibabel cannot read %s", path, exc_info=True)
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise InputError(f"not a readable image: {first}") from None


def _axes(img: Any, stored: tuple[int, ...]) -> tuple[list[int], list[int]]:
    """Data axes that the affine's three columns describe, and the others (time first in MINC)."""
    names = getattr(getattr(img.dataobj, "minc_file", None), "_dim_names", None)
    if names is not None:  # MINC's dimension names say which axes are spatial, in data order
        spatial = [i for i, n in enumerate(names) if str(n).endswith("space")]
    else:
        spatial = list(range(min(len(stored), 3)))
    if not 2 <= len(spatial) <= 3:
        raise InputError(f"image with {len(spatial)} spatial axes; niftislice reads 2 or 3")
    return spatial, [i for i in range(len(stored)) if i not in spatial]


def _orientation(
    img: Any, kind: str, affine: np.ndarray, warnings: list[str]
) -> tuple[np.ndarray, str]:
    if kind == "Analyze":
        warnings.append(
            "Analyze 7.5 stores no orientation; assuming radiological storage "
            "(x from right to left), as nibabel and SPM do"
        )
        return affine, "analyze default"
    if kind.startswith("NIfTI"):
        hdr = img.header
        if int(hdr["sform_code"]) > 0:
            return affine, "sform"
        if int(hdr["qform_code"]) > 0:
            return affine, "qform"
        warnings.append(
            "no orientation: qform_code and sform_code are 0; "
            "assuming RAS+ storage with pixdim voxel sizes"
        )
        return affine, "pixdim"
    return affine, {"MGH": "vox2ras", "PAR/REC": "PAR angulation"}.get(kind, "direction cosines")


def _uniform_scaling(img: Any) -> tuple[float, float] | None:
    """``(slope, inter)`` when one scaling applies to every voxel; None otherwise."""
    proxy = img.dataobj
    if isinstance(img, nib.parrec.PARRECImage):
        slopes, inters = img.header.get_data_scaling()
        if np.unique(slopes).size == 1 and np.unique(inters).size == 1:
            return float(slopes.flat[0]), float(inters.flat[0])
        return None
    if not hasattr(proxy, "get_unscaled"):
        return None  # MINC: per-slice ranges
    slope, inter = getattr(proxy, "slope", 1.0), getattr(proxy, "inter", 0.0)
    slope = 1.0 if slope is None or not math.isfinite(float(slope)) or slope == 0 else slope
    inter = 0.0 if inter is None or not math.isfinite(float(inter)) else inter
    return float(slope), float(inter)


def _digests(img: Any, path: Path) -> SourceDigests:
    """Header, then image file (one entry when one file holds both). nibabel reads them itself,
    so they are hashed by a read of their own (see :mod:`.digest`)."""
    held = [img.file_map[k].filename for k in ("header", "image") if k in img.file_map]
    files = distinct([Path(f) for f in held if f] or [path])
    return SourceDigests(files, path.parent)


def _check_data_file(img: Any, kind: str, stored: tuple[int, ...]) -> None:
    """For uncompressed data at a known offset: the declared voxels must fit in the file."""
    offset = getattr(img.dataobj, "offset", None)
    holder = img.file_map["image"].filename
    if offset is None or holder is None or str(holder).endswith((".gz", ".mgz", ".bz2")):
        return
    nbytes = math.prod(stored) * np.dtype(img.get_data_dtype()).itemsize
    try:
        size = os.stat(holder).st_size
    except OSError:
        raise InputError(f"its data file is missing: {Path(holder).name}") from None
    check_stored_size(size, int(offset), nbytes, False, f"{kind} data in {Path(holder).name}")


def _facts(img: Any, kind: str, stored: tuple[int, ...]) -> dict[str, Any]:
    files = {k: Path(v.filename).name for k, v in img.file_map.items() if v.filename}
    return {
        "nibabel_class": type(img).__name__,
        "files": files,
        "stored_shape": list(stored),
        "stored_dtype": str(np.dtype(img.get_data_dtype())),
        "zooms": [float(z) for z in img.header.get_zooms()],
    }
