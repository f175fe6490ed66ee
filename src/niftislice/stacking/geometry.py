"""Going back from images to the source voxel grid, using only what the sidecar records.

Each exported slice has a ``pixel_to_world`` matrix (pixel ``(column, row, 0, 1)`` to world mm)
and the sidecar has the source affine (voxel index to world mm). Composing the inverse of one
with the other takes every source voxel centre to the pixel position that shows it:

    pixel = inv(pixel_to_world[k]) @ source_affine @ (i, j, k, 1)

Display flips and transposes, the reorientation to RAS+ and any oblique rotation cancel in that
product; what remains for a non-resampled axis is an integer shift and sign, and for a resampled
one the inverse of the exporter's half-pixel scaling. Sampling the image at those positions
(nearest neighbour or linear) is therefore the exact inverse of the export for native spacing
and the closest inverse otherwise. The slice coordinate depends on one stored axis only, so each
image fills one plane of the source array.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from .._cv2 import cv2
from ..errors import InputError

_TOL = 1e-4  # matrices in the sidecar are rounded to 1e-9; this leaves ample room


@dataclass(frozen=True)
class PlaneMap:
    """Where the voxel centres of one source plane fall in one image.

    ``axis`` is the stored source axis the view's slices run along and ``index`` the plane's
    position on it; ``cols``/``rows`` (float64, shape of the plane with the other two stored axes
    in increasing order) are the image coordinates of each voxel centre.
    """

    axis: int
    index: int
    cols: np.ndarray
    rows: np.ndarray


def slice_matrices(listed: Mapping[int, np.ndarray], n_slices: int) -> dict[int, np.ndarray]:
    """``pixel_to_world`` for every slice ``0..n_slices-1``.

    Slices the sidecar lists keep their own matrix; the others are derived from the nearest listed
    one through its third column, which steps to the next slice index (see slicing.pixel_to_world).
    """
    if not listed:
        raise InputError("the sidecar lists no slices for this view")
    known = sorted(listed)
    out: dict[int, np.ndarray] = {}
    for k in range(n_slices):
        if k in listed:
            out[k] = listed[k]
            continue
        ref = min(known, key=lambda j: abs(j - k))
        step = np.eye(4)
        step[2, 3] = k - ref
        out[k] = listed[ref] @ step
    return out


def plane_map(
    pixel_to_world: np.ndarray, source_affine: np.ndarray, shape: tuple[int, int, int], where: str
) -> PlaneMap:
    """Image coordinates of the voxel centres of the source plane that one slice shows."""
    try:
        m = np.linalg.inv(pixel_to_world) @ source_affine
    except np.linalg.LinAlgError:
        raise InputError(f"{where}: pixel_to_world is singular") from None
    slice_row = m[2, :3]
    axis = int(np.argmax(np.abs(slice_row)))
    others = [a for a in range(3) if a != axis]
    if (
        abs(abs(slice_row[axis]) - 1) > _TOL
        or np.any(np.abs(slice_row[others]) > _TOL)
        or np.any(np.abs(m[:2, axis]) > _TOL)
    ):
        raise InputError(
            f"{where}: pixel_to_world does not map the source grid onto whole slices "
            "(sidecar from another source file?)"
        )
    pos = -m[2, 3] / slice_row[axis]
    index = round(pos)
    if abs(pos - index) > 1e-3 or not 0 <= index < shape[axis]:
        raise InputError(
            f"{where}: the slice lies at {pos:.4g} along source axis {axis}, "
            f"not on one of its {shape[axis]} planes (sidecar from another source file?)"
        )
    p, q = others
    ip = np.arange(shape[p], dtype=np.float64)[:, None]
    iq = np.arange(shape[q], dtype=np.float64)[None, :]

    def coords(r: int) -> np.ndarray:
        return m[r, p] * ip + m[r, q] * iq + (m[r, axis] * index + m[r, 3])

    return PlaneMap(axis, index, coords(0), coords(1))


def check_coverage(maps: list[PlaneMap], shape: tuple[int, int, int], view: str) -> int:
    """The stored axis the view's slices run along; every plane on it must be shown exactly once."""
    axes = {pm.axis for pm in maps}
    if len(axes) != 1:
        raise InputError(f"{view}: slices run along different source axes {sorted(axes)}")
    axis = axes.pop()
    seen = sorted(pm.index for pm in maps)
    if seen != list(range(shape[axis])):
        raise InputError(
            f"{view}: the sidecar's {len(maps)} slices do not cover the {shape[axis]} source planes"
        )
    return axis


def sample(image: np.ndarray, pm: PlaneMap, nearest: bool) -> np.ndarray:
    """Values of a 2D image at the plane's voxel centres.

    Nearest neighbour (and any mapping that lands on whole pixels, as native spacing does) is plain
    indexing, so values come back bit for bit; otherwise bilinear with OpenCV, edges replicated
    (voxel centres lie at most half a pixel outside the image).
    """
    h, w = image.shape[:2]
    cols, rows = pm.cols, pm.rows
    whole = max(_off_grid(cols), _off_grid(rows)) < 1e-3
    if nearest or whole:
        ci = np.clip(np.floor(cols + 0.5 + 1e-6), 0, w - 1).astype(np.intp)
        ri = np.clip(np.floor(rows + 0.5 + 1e-6), 0, h - 1).astype(np.intp)
        return image[ri, ci]
    src = image if image.dtype in (np.float32, np.float64) else image.astype(np.float32)
    return cv2.remap(
        src,
        cols.astype(np.float32),
        rows.astype(np.float32),
        cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    )


def _off_grid(coords: np.ndarray) -> float:
    return float(np.max(np.abs(coords - np.rint(coords)))) if coords.size else 0.0
