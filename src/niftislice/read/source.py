"""Any reader's volume as the :class:`~.nifti.NiftiFile` the pipeline consumes.

A reader of another format (DICOM, NRRD, MetaImage, ...) knows the voxel array's shape, dtype,
value scaling and its voxel-to-RAS+ affine before it reads any voxel data; it hands those and a
loader to :func:`array_source`. The size limits are checked here, before anything is allocated,
and a NIfTI-1 header is synthesised so that every later step (orientation, window, sidecar,
``info``, ``stack``) sees one kind of description, whatever the input format.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .._nib import nib
from ..errors import InputError
from ..types import Limits
from .digest import SourceDigests
from .nifti import NiftiFile, VolumeLoader, check_limits

_SCANNER = 1  # NIfTI xform code: scanner-based anatomical coordinates


def array_source(
    path: Path,
    *,
    fmt: str,
    shape: Sequence[int],
    dtype: np.dtype | type,
    affine: np.ndarray,
    loader: VolumeLoader,
    limits: Limits = Limits(),
    slope: float = 1.0,
    inter: float = 0.0,
    time_step: float | None = None,
    rgb_channels: int = 0,
    is_label: bool = False,
    facts: dict[str, Any] | None = None,
    warnings: Sequence[str] = (),
    file_size: int = 0,
    identity: dict[str, str] | None = None,
    digests: SourceDigests | None = None,
) -> NiftiFile:
    """Describe a volume read by another format's reader. ``shape``: ``(x, y, z[, t])`` voxels;
    ``affine``: voxel -> RAS+ mm (LPS: first ``diag(-1, -1, 1, 1) @``); data = stored * ``slope``
    + ``inter``; ``loader``: see :data:`~.nifti.VolumeLoader`; ``facts``: the sidecar's ``source``
    section; ``identity`` (patient name, ID...): written only when the user asks (``keep_phi``);
    ``digests``: the files the loader reads (:mod:`.digest`)."""
    dims = tuple(int(d) for d in shape)
    if len(dims) not in (3, 4) or min(dims) < 1:
        raise InputError(f"unsupported image shape {dims}")
    spatial, n_vol = (dims[0], dims[1], dims[2]), math.prod(dims[3:])
    check_limits(spatial, n_vol, limits)
    aff = np.asarray(affine, dtype=np.float64)
    if aff.shape != (4, 4) or not np.isfinite(aff).all() or abs(np.linalg.det(aff[:3, :3])) < 1e-12:
        raise InputError("the image's geometry gives no usable voxel-to-world affine")
    dt = np.dtype(np.uint8) if rgb_channels else np.dtype(dtype).newbyteorder("=")
    zooms = tuple(float(z) for z in nib.affines.voxel_sizes(aff))
    return NiftiFile(
        path=Path(path),
        header=_header(dims, dt, aff, zooms, time_step, slope, inter),
        nifti_version=1,
        compressed=False,
        file_size=file_size,
        data_shape=dims,
        spatial_shape=spatial,
        n_volumes=n_vol,
        dtype=dt,
        rgb_channels=rgb_channels,
        slope=float(slope),
        inter=float(inter),
        affine=aff,
        affine_source=fmt,
        zooms=zooms,
        vox_offset=0,
        is_label=is_label,
        warnings=tuple(warnings),
        format=fmt,
        facts=dict(facts or {}),
        loader=loader,
        identity=dict(identity or {}),
        digests=digests,
    )


def _header(
    dims: tuple[int, ...],
    dtype: np.dtype,
    affine: np.ndarray,
    zooms: tuple[float, ...],
    time_step: float | None,
    slope: float,
    inter: float,
) -> nib.Nifti1Header:
    """The NIfTI-1 header a NIfTI file of this volume would have (scanner-based xforms)."""
    hdr = nib.Nifti1Header()
    hdr.set_data_dtype(dtype)
    hdr.set_data_shape(dims)
    hdr.set_zooms(zooms + ((float(time_step or 1.0),) if len(dims) == 4 else ()))
    hdr.set_xyzt_units("mm", "sec" if len(dims) == 4 else "unknown")
    hdr.set_sform(affine, code=_SCANNER)
    hdr.set_qform(affine, code=_SCANNER)
    hdr["scl_slope"], hdr["scl_inter"] = slope, inter
    return hdr
