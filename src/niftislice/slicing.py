"""Views of a canonical (RAS+) volume as display-ready 2D images, and their geometry.

Display convention (DESIGN.md): axial slices along z with anterior up, coronal along y with
superior up, sagittal along x with superior up and anterior on the left; radiological display puts
the patient's right on the image left in axial and coronal views, neurological mirrors them.
Only flips and transposes are used here, never interpolation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from .types import View

# view -> (slice axis, row axis, column axis) in canonical x=0, y=1, z=2
_AXES: dict[View, tuple[int, int, int]] = {
    View.AXIAL: (2, 1, 0),
    View.CORONAL: (1, 2, 0),
    View.SAGITTAL: (0, 2, 1),
}
_AXIS_NAMES = "xyz"
# letters at the (top, bottom, left, right) edges for the positive/negative ends of x, y, z
_POS, _NEG = "RAS", "LPI"


@dataclass(frozen=True)
class ViewGeometry:
    """How one view's images index the canonical grid.

    Column ``c`` of a native image is canonical index ``n_cols - 1 - c`` along ``col_axis`` when
    ``col_flip`` (likewise rows); image row 0 is the top.
    """

    view: View
    slice_axis: int
    row_axis: int
    col_axis: int
    row_flip: bool
    col_flip: bool
    n_slices: int
    n_rows: int
    n_cols: int
    row_spacing: float  # mm between native rows
    col_spacing: float
    slice_spacing: float

    @property
    def edge_letters(self) -> dict[str, str]:
        """Anatomical direction at each image edge, e.g. axial radiological: A, P, R, L."""

        def ends(axis: int, flip: bool) -> tuple[str, str]:
            pos, neg = _POS[axis], _NEG[axis]
            return (pos, neg) if flip else (neg, pos)

        top, bottom = ends(self.row_axis, self.row_flip)
        left, right = ends(self.col_axis, self.col_flip)
        return {"top": top, "bottom": bottom, "left": left, "right": right}

    def to_json(self) -> dict[str, object]:
        return {
            "slice_axis": _AXIS_NAMES[self.slice_axis],
            "row_axis": _AXIS_NAMES[self.row_axis],
            "col_axis": _AXIS_NAMES[self.col_axis],
            "row_flip": self.row_flip,
            "col_flip": self.col_flip,
            "native_size": [self.n_cols, self.n_rows],
            "native_spacing_mm": [self.col_spacing, self.row_spacing],
            "slice_spacing_mm": self.slice_spacing,
            "orientation_letters": self.edge_letters,
        }


def view_geometry(
    view: View, shape: tuple[int, int, int], spacing: tuple[float, float, float], neurological: bool
) -> ViewGeometry:
    s, r, c = _AXES[view]
    # Columns run along x in axial/coronal: radiological puts patient right (max x) at the left.
    col_flip = True if view is View.SAGITTAL else not neurological
    return ViewGeometry(
        view=view,
        slice_axis=s,
        row_axis=r,
        col_axis=c,
        row_flip=True,  # top of the image is the positive end (anterior or superior)
        col_flip=col_flip,
        n_slices=shape[s],
        n_rows=shape[r],
        n_cols=shape[c],
        row_spacing=float(spacing[r]),
        col_spacing=float(spacing[c]),
        slice_spacing=float(spacing[s]),
    )


def view_block(
    canonical: np.ndarray, g: ViewGeometry, start: int = 0, stop: int | None = None
) -> np.ndarray:
    """Slices ``start..stop-1`` of the view (default: all) as one C-contiguous
    ``(n, n_rows, n_cols[, channels])`` array: ``block[i]`` is slice ``start + i``.

    One block transpose keeps every slice contiguous, so per-slice work never strides across the
    volume.
    """
    arr = canonical
    if g.row_flip:
        arr = np.flip(arr, axis=g.row_axis)
    if g.col_flip:
        arr = np.flip(arr, axis=g.col_axis)
    axes = (g.slice_axis, g.row_axis, g.col_axis, *range(3, canonical.ndim))
    arr = np.transpose(arr, axes)[start:stop]
    out = np.empty(arr.shape, arr.dtype)
    # Copy plane by plane along the source's slowest axis: each plane fits in cache, so the
    # transpose costs about a memcpy (one whole-array gather is ~5x slower for sagittal blocks).
    outer = int(np.argmax([abs(st) for st in arr.strides[:3]]))
    index: list[object] = [slice(None)] * arr.ndim
    for i in range(arr.shape[outer]):
        index[outer] = i
        out[tuple(index)] = arr[tuple(index)]
    return out


class OutputGrid(Protocol):
    """An output image size in pixels (:class:`niftislice.resample.Sampling` is one)."""

    @property
    def width(self) -> int: ...

    @property
    def height(self) -> int: ...


def pixel_to_world(
    g: ViewGeometry, smp: OutputGrid, k: int, canonical_affine: np.ndarray
) -> np.ndarray:
    """4x4 matrix taking output pixel ``(column, row, 0, 1)`` of slice ``k`` to world mm.

    Pixel centres follow the half-pixel convention of the resampler (OpenCV's): output pixel
    ``c`` samples native position ``(c + 0.5) * n_cols / width - 0.5``. The third column steps to
    the next slice index, so ``(column, row, s, 1)`` reaches slice ``k + s``.
    """
    return pixel_to_world_many(g, smp, [k], canonical_affine)[0]


def pixel_to_world_many(
    g: ViewGeometry, smp: OutputGrid, ks: Sequence[int], canonical_affine: np.ndarray
) -> np.ndarray:
    """:func:`pixel_to_world` of every slice in ``ks`` as one ``(len(ks), 4, 4)`` array.

    Slices differ only in the translation, by ``k`` times the third column, so this is one
    matrix product however many slices a view has (a sidecar lists them all).
    """
    sx, sy = g.n_cols / smp.width, g.n_rows / smp.height
    # output pixel -> native display coordinates (u, v, k) of slice 0
    to_display = np.array(
        [[sx, 0, 0, 0.5 * sx - 0.5], [0, sy, 0, 0.5 * sy - 0.5], [0, 0, 1, 0], [0, 0, 0, 1]],
        dtype=np.float64,
    )
    # native display coordinates -> canonical voxel index (i, j, k)
    to_voxel = np.zeros((4, 4))
    to_voxel[3, 3] = 1
    for src, axis, flip, n in (
        (0, g.col_axis, g.col_flip, g.n_cols),
        (1, g.row_axis, g.row_flip, g.n_rows),
        (2, g.slice_axis, False, g.n_slices),
    ):
        to_voxel[axis, src] = -1.0 if flip else 1.0
        to_voxel[axis, 3] = (n - 1) if flip else 0.0
    first = canonical_affine @ to_voxel @ to_display
    many = np.repeat(first[None], len(ks), axis=0)
    many[:, :, 3] += np.asarray(ks, dtype=np.float64)[:, None] * first[:, 2]
    return many
