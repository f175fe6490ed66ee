"""The grid of a stack of DICOM slices, from the standard (not from file order or
InstanceNumber), as a 4x4 RAS+ affine.

For ImageOrientationPatient ``(r, c)`` (``r``: direction of increasing column index, ``c``: of
increasing row index), PixelSpacing ``[Δrow, Δcol]`` and ``n = r x c``, voxel (column ``i``, row
``j``, slice ``k``) is at ``IPP_0 + i·Δcol·r + j·Δrow·c + k·v`` in LPS+ mm, where the slices are
sorted by ``IPP · n`` and ``v = (IPP_last - IPP_0) / (N - 1)`` is the measured step (not
SliceThickness). RAS+ is ``diag(-1, -1, 1) @ LPS+``.

Documented behaviours (each with a warning, or a refusal naming the reason):

- a single slice: the step along ``n`` is SpacingBetweenSlices, else SliceThickness, else 1 mm
  (warning);
- uneven steps (a missing slice, varying gaps): refused when any slice would sit more than 5 %
  of the step (or 0.05 mm, whichever is larger) off the regular grid;
- two slices at the same position (several echoes, phases or volumes not told apart): refused
  (whole volumes that the series tells apart are split first, see :mod:`.dicom_volumes`);
- gantry tilt (the slice positions step along a direction other than ``n``): converted without
  resampling, on a sheared grid whose third axis is the measured step ``v``, so every voxel is
  where the scanner put it (warning with the angle; views use the closest axes);
- positions that do not lie on one line: refused.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import InputError

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
_REL_TOLERANCE = 0.05  # of the slice step: how far a slice may sit off the regular grid
_ABS_TOLERANCE_MM = 0.05
_SAME_POSITION_MM = 1e-3
_TILT_WARN_DEG = 0.05


class GeometryError(InputError):
    """The slices do not make one regular volume; the message says why (one line)."""


@dataclass(frozen=True)
class StackGeometry:
    """How to stack the slices: their order and the RAS+ affine of the voxel grid."""

    order: tuple[int, ...]  # indices into the given positions, in increasing IPP·n
    affine: np.ndarray  # 4x4, voxel (column i, row j, slice k) -> RAS+ mm
    step_mm: float  # distance between slices along n
    tilt_deg: float  # angle between the slice step and n (gantry tilt), 0 for most series
    warnings: tuple[str, ...]


def orientation_vectors(orientation: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """``(r, c)`` as unit vectors; refuses cosines that are not two orthogonal directions."""
    r = np.asarray(orientation[:3], dtype=float)
    c = np.asarray(orientation[3:6], dtype=float)
    nr, nc = np.linalg.norm(r), np.linalg.norm(c)
    if not (0.9 < nr < 1.1 and 0.9 < nc < 1.1):
        raise GeometryError(
            f"ImageOrientationPatient {list(orientation)} does not hold two unit vectors"
        )
    r, c = r / nr, c / nc
    if abs(float(r @ c)) > 1e-2:
        raise GeometryError(
            f"ImageOrientationPatient {list(orientation)}: row and column directions "
            "are not perpendicular"
        )
    return r, c


def stack_geometry(
    orientation: Sequence[float],
    spacing: Sequence[float],
    positions: Sequence[Sequence[float]],
    single_slice_step: float | None = None,
) -> StackGeometry:
    """Sort slices along the normal, measure the step and build the RAS+ affine.

    ``spacing`` is PixelSpacing ``(Δrow, Δcol)`` in mm; ``positions`` the ImagePositionPatient of
    each slice (LPS+ mm); ``single_slice_step`` the depth of a lone slice (SpacingBetweenSlices or
    SliceThickness), if known. Raises :class:`GeometryError` for stacks that are not one regular
    grid.
    """
    r, c = orientation_vectors(orientation)
    d_row, d_col = (float(s) for s in spacing)
    if not (d_row > 0 and d_col > 0 and math.isfinite(d_row) and math.isfinite(d_col)):
        raise GeometryError(f"PixelSpacing {list(spacing)} is not two positive numbers")
    n = np.cross(r, c)
    pos = np.asarray(positions, dtype=float).reshape(-1, 3)
    depth = pos @ n
    order = np.argsort(depth, kind="stable")
    pos, depth = pos[order], depth[order]
    warnings: list[str] = []
    if len(pos) == 1:
        step = single_slice_step if single_slice_step and single_slice_step > 0 else 1.0
        warnings.append(
            f"a single slice: its depth ({step:g} mm, from "
            f"{'the header' if single_slice_step else 'no header field; assumed'}) is used "
            "as the slice spacing"
        )
        v, tilt = n * step, 0.0
    else:
        v, step, tilt = _measured_step(pos, depth, n, warnings)
    lps = np.eye(4)
    lps[:3, 0] = r * d_col
    lps[:3, 1] = c * d_row
    lps[:3, 2] = v
    lps[:3, 3] = pos[0]
    return StackGeometry(
        order=tuple(int(i) for i in order),
        affine=LPS_TO_RAS @ lps,
        step_mm=float(step),
        tilt_deg=tilt,
        warnings=tuple(warnings),
    )


def _measured_step(
    pos: np.ndarray, depth: np.ndarray, n: np.ndarray, warnings: list[str]
) -> tuple[np.ndarray, float, float]:
    """The regular step between sorted slice positions, or a :class:`GeometryError`."""
    steps = np.diff(depth)
    if float(steps.min()) < _SAME_POSITION_MM:
        same = int(np.sum(steps < _SAME_POSITION_MM)) + 1
        raise GeometryError(
            f"{same} slices share one position (echoes, phases, volumes or copies that the "
            "series does not tell apart); refusing to mix them"
        )
    count = len(pos)
    mean = float(depth[-1] - depth[0]) / (count - 1)
    off_grid = np.abs(depth - (depth[0] + mean * np.arange(count)))
    tolerance = max(_REL_TOLERANCE * mean, _ABS_TOLERANCE_MM)
    if float(off_grid.max()) > tolerance:
        smallest, largest = float(steps.min()), float(steps.max())
        ratios = steps / smallest
        hint = (
            f"; {round(float(ratios.sum())) - len(steps)} slice(s) missing?"
            if np.allclose(ratios, np.round(ratios), atol=0.05) and largest > 1.5 * smallest
            else ""
        )
        raise GeometryError(
            f"uneven slice spacing: steps from {smallest:.4g} to {largest:.4g} mm between "
            f"{count} slices{hint}; refusing to stack them on a regular grid"
        )
    v = (pos[-1] - pos[0]) / (count - 1)
    along = pos[0] + np.outer(np.arange(count), v)
    if float(np.abs(pos - along).max()) > tolerance:
        raise GeometryError("slice positions do not lie on one line; refusing to stack them")
    tilt = math.degrees(math.acos(min(1.0, abs(float(v @ n)) / float(np.linalg.norm(v)))))
    if tilt > _TILT_WARN_DEG:
        warnings.append(
            f"gantry tilt of {tilt:.2f}°: slices are stacked on a sheared grid that keeps "
            "every voxel where the scanner put it (not resampled); views use the closest axes"
        )
    return v, mean, tilt
