"""slicing.py on small arrays: which voxel each pixel shows, and where it is in the world."""

from __future__ import annotations

import numpy as np
import pytest

from niftislice.resample import Sampling, sampling
from niftislice.slicing import pixel_to_world, pixel_to_world_many, view_block, view_geometry
from niftislice.types import View

SHAPE = (5, 6, 7)  # canonical x, y, z: every axis a different length
SPACING = (1.0, 1.5, 2.5)
# a RAS+ affine with anisotropic voxels and an offset
AFFINE = np.array(
    [[1.0, 0, 0, -20.0], [0, 1.5, 0, 31.0], [0, 0, 2.5, -7.5], [0, 0, 0, 1]], dtype=np.float64
)


def _coded_volume() -> np.ndarray:
    """Voxel (i, j, k) holds 100 i + 10 j + k, so a pixel says which voxel it shows."""
    i, j, k = np.indices(SHAPE)
    return (100 * i + 10 * j + k).astype(np.int16)


def _voxel(value: int) -> tuple[int, int, int]:
    return value // 100, value // 10 % 10, value % 10


@pytest.mark.parametrize(
    ("view", "neurological", "edges"),
    [
        (View.AXIAL, False, "APRL"),  # top, bottom, left, right
        (View.AXIAL, True, "APLR"),
        (View.CORONAL, False, "SIRL"),
        (View.CORONAL, True, "SILR"),
        (View.SAGITTAL, False, "SIAP"),
        (View.SAGITTAL, True, "SIAP"),  # sagittal is the same in both displays
    ],
)
def test_edge_letters_follow_the_display_convention(view, neurological, edges):
    g = view_geometry(view, SHAPE, SPACING, neurological)
    letters = g.edge_letters
    assert letters["top"] + letters["bottom"] + letters["left"] + letters["right"] == edges
    assert g.to_json()["orientation_letters"] == letters


@pytest.mark.parametrize(
    ("view", "n_slices", "size", "spacing"),
    [
        (View.AXIAL, 7, (5, 6), (1.0, 1.5, 2.5)),  # (cols, rows), (col, row, slice) mm
        (View.CORONAL, 6, (5, 7), (1.0, 2.5, 1.5)),
        (View.SAGITTAL, 5, (6, 7), (1.5, 2.5, 1.0)),
    ],
)
def test_view_sizes_and_spacings(view, n_slices, size, spacing):
    g = view_geometry(view, SHAPE, SPACING, False)
    assert g.n_slices == n_slices
    assert (g.n_cols, g.n_rows) == size
    assert (g.col_spacing, g.row_spacing, g.slice_spacing) == spacing


@pytest.mark.parametrize("view", list(View))
@pytest.mark.parametrize("neurological", [False, True])
def test_each_pixel_shows_the_voxel_the_convention_says(view, neurological):
    """Top row is the superior/anterior end; the image left is patient right (radiological),
    patient left (neurological), or anterior (sagittal); slice k is index k along the axis."""
    vol = _coded_volume()
    g = view_geometry(view, SHAPE, SPACING, neurological)
    block = view_block(vol, g)
    assert block.shape == (g.n_slices, g.n_rows, g.n_cols) and block.flags.c_contiguous
    for k in (0, g.n_slices - 1):
        image = block[k]
        top, bottom = _voxel(int(image[0, 0])), _voxel(int(image[-1, 0]))
        left, right = _voxel(int(image[0, 0])), _voxel(int(image[0, -1]))
        assert top[g.slice_axis] == k
        assert top[g.row_axis] == SHAPE[g.row_axis] - 1 and bottom[g.row_axis] == 0
        col_pos_left = (view is View.SAGITTAL) or not neurological  # +x (R) or +y (A) on the left
        assert (left[g.col_axis] > right[g.col_axis]) == col_pos_left


@pytest.mark.parametrize("view", list(View))
def test_a_range_of_slices_and_colour_channels(view):
    vol = _coded_volume()
    rgb = np.stack([vol, vol + 1, vol + 2], axis=-1)
    g = view_geometry(view, SHAPE, SPACING, False)
    whole = view_block(rgb, g)
    part = view_block(rgb, g, 1, 3)
    assert part.shape == (2, g.n_rows, g.n_cols, 3)
    np.testing.assert_array_equal(part, whole[1:3])
    np.testing.assert_array_equal(whole[..., 2], view_block(vol, g) + 2)


@pytest.mark.parametrize("view", list(View))
@pytest.mark.parametrize("neurological", [False, True])
def test_pixel_to_world_of_a_native_pixel_is_its_voxel_centre(view, neurological):
    """At native size, pixel (c, r) of slice k maps to the world position of the voxel it shows."""
    vol = _coded_volume()
    g = view_geometry(view, SHAPE, SPACING, neurological)
    smp = sampling(g, "native")
    block = view_block(vol, g)
    for k in range(g.n_slices):
        m = pixel_to_world(g, smp, k, AFFINE)
        for r, c in ((0, 0), (g.n_rows - 1, 0), (1, g.n_cols - 2)):
            ijk = _voxel(int(block[k, r, c]))
            np.testing.assert_allclose(m @ [c, r, 0, 1], AFFINE @ [*ijk, 1], atol=1e-9)
        # the third column steps to the next slice
        np.testing.assert_allclose(m @ [0, 0, 1, 1], pixel_to_world(g, smp, k + 1, AFFINE)[:, 3])


@pytest.mark.parametrize("view", list(View))
def test_resampled_pixel_centres_and_edges(view):
    """With square pixels, the image's outer edges are the slice's outer voxel edges, and pixel
    centres sit at ``(c + 0.5) * n / width - 0.5`` native columns."""
    g = view_geometry(view, SHAPE, SPACING, False)
    smp = sampling(g, 0.5)
    m = pixel_to_world(g, smp, 0, np.eye(4))  # world = canonical voxel index
    left_edge = m @ [-0.5, -0.5, 0, 1]
    right_edge = m @ [smp.width - 0.5, smp.height - 0.5, 0, 1]
    # edges half a voxel beyond the first and last voxel centres, flips included
    assert abs(left_edge[g.col_axis] - right_edge[g.col_axis]) == pytest.approx(g.n_cols)
    assert abs(left_edge[g.row_axis] - right_edge[g.row_axis]) == pytest.approx(g.n_rows)
    c = 3
    native = (c + 0.5) * g.n_cols / smp.width - 0.5
    expected = g.n_cols - 1 - native if g.col_flip else native
    assert (m @ [c, 0, 0, 1])[g.col_axis] == pytest.approx(expected)


@pytest.mark.parametrize("view", list(View))
def test_many_slices_in_one_product(view):
    g = view_geometry(view, SHAPE, SPACING, True)
    smp = Sampling(11, 9, 0.7, 0.9)
    ks = [0, 2, g.n_slices - 1]
    many = pixel_to_world_many(g, smp, ks, AFFINE)
    for m, k in zip(many, ks, strict=True):
        np.testing.assert_array_equal(m, pixel_to_world(g, smp, k, AFFINE))
