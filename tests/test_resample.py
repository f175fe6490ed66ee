"""resample.py on small arrays: output sizes, the resize per interpolation, labels kept exact."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
from nibabel.processing import resample_from_to

from niftislice.errors import InputError
from niftislice.resample import (
    MAX_IMAGE_SIDE,
    interpolation,
    resample_labels,
    resize,
    sampling,
)
from niftislice.slicing import pixel_to_world, view_geometry
from niftislice.types import Interp, View


def _geometry(n_cols: int, n_rows: int, col_mm: float, row_mm: float):
    """An axial view with ``n_cols`` x ``n_rows`` voxels of ``col_mm`` x ``row_mm``."""
    return view_geometry(View.AXIAL, (n_cols, n_rows, 3), (col_mm, row_mm, 2.0), False)


@pytest.mark.parametrize(
    ("n_cols", "n_rows", "col_mm", "row_mm", "spacing", "size"),
    [
        (100, 80, 1.0, 1.3, "finest", (100, 104)),  # 1 x 1.3 mm becomes 1 x 1 mm
        (100, 80, 1.3, 1.0, "finest", (130, 80)),
        (64, 64, 0.5, 0.5, "finest", (64, 64)),  # square voxels: native size
        (100, 80, 1.0, 1.3, "native", (100, 80)),  # one pixel per voxel, even anisotropic
        (100, 80, 1.0, 1.3, 0.5, (200, 208)),
        (100, 80, 1.0, 1.3, 2.0, (50, 52)),
        (3, 2, 1.0, 1.0, 0.7, (4, 3)),  # 4.29 x 2.86 pixels round to 4 x 3
        (1, 1, 0.1, 0.1, 10.0, (1, 1)),  # never fewer than one pixel
        (61, 40, 3.3, 3.3, 2.0, (101, 66)),  # the README's: 201.3 mm -> 101 pixels of 1.993 mm
    ],
)
def test_output_size_keeps_the_physical_extent(n_cols, n_rows, col_mm, row_mm, spacing, size):
    """The image covers the slice's physical extent; the spacing recorded is the one the
    pixels really have (not the one asked for, when the extent is not a whole number of them)."""
    smp = sampling(_geometry(n_cols, n_rows, col_mm, row_mm), spacing)
    assert (smp.width, smp.height) == size
    assert smp.width * smp.col_spacing == pytest.approx(n_cols * col_mm)
    assert smp.height * smp.row_spacing == pytest.approx(n_rows * row_mm)
    if spacing != "native":
        square = (n_cols * col_mm / size[0], n_rows * row_mm / size[1])
        assert (smp.col_spacing, smp.row_spacing) == pytest.approx(square)
        # "square to within half a pixel over the image" (README): the whole-pixel sizes miss
        # the asked spacing by at most half a pixel across the field of view
        asked = min(col_mm, row_mm) if spacing == "finest" else spacing
        for n, mm in ((size[0], n_cols * col_mm), (size[1], n_rows * row_mm)):
            assert n == 1 or abs(n * asked - mm) <= asked / 2 + 1e-9


@pytest.mark.parametrize(
    ("view", "size"),
    [(View.AXIAL, (40, 39)), (View.CORONAL, (40, 75)), (View.SAGITTAL, (30, 58))],
)
def test_each_view_uses_its_own_in_plane_spacings(view, size):
    """Voxels 1 x 1.3 x 2.5 mm (x, y, z): each view squares its own two axes at its finer one
    (sagittal: 1.3 mm, not the volume's finest 1 mm)."""
    g = view_geometry(view, (40, 30, 30), (1.0, 1.3, 2.5), False)
    smp = sampling(g, "finest")
    assert (smp.width, smp.height) == size
    assert smp.col_spacing == pytest.approx(smp.row_spacing, rel=0.02)


def test_extreme_anisotropy_is_refused_with_advice():
    g = view_geometry(View.AXIAL, (20, 2000, 5), (1000.0, 0.01, 1.0), False)
    with pytest.raises(InputError, match=r"axial images would be .* --spacing native") as e:
        sampling(g, "finest")
    assert str(MAX_IMAGE_SIDE) not in str(e.value)  # says the size it would be, in pixels
    assert sampling(g, "native").width == 20  # native is always possible


@pytest.mark.parametrize("asked", list(Interp))
def test_labels_use_nearest_neighbour_always(asked):
    assert interpolation(True, asked) is Interp.NEAREST
    assert interpolation(False, asked) is asked


@pytest.mark.parametrize("interp", list(Interp))
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
@pytest.mark.parametrize("channels", [0, 3])
def test_every_interpolation_gives_the_asked_size_and_type(interp, dtype, channels):
    rng = np.random.default_rng(1)
    shape = (17, 23, channels) if channels else (17, 23)
    image = rng.integers(0, np.iinfo(dtype).max, shape, dtype=dtype)
    out = resize(image, 41, 29, interp)
    assert out.shape == ((29, 41, channels) if channels else (29, 41))
    assert out.dtype == dtype
    flat = np.full(shape, 1234 if dtype == np.uint16 else 77, dtype)
    assert np.all(resize(flat, 41, 29, interp) == flat.flat[0])  # no ringing, no shift


def test_same_size_is_returned_as_is():
    image = np.arange(12, dtype=np.uint8).reshape(3, 4)
    assert resize(image, 4, 3, Interp.CUBIC) is image


@pytest.mark.parametrize("asked", list(Interp))
def test_label_values_stay_exact_at_any_scale(asked):
    """Resampled label images hold only the label values that were there: no blends such as
    1.5 between labels 1 and 2, whatever interpolation the user asked for."""
    rng = np.random.default_rng(2)
    labels = rng.choice(np.array([0, 1, 2, 7, 200], dtype=np.uint8), size=(13, 19))
    for width, height in ((47, 31), (7, 5), (19, 40)):
        out = resize(labels, width, height, interpolation(True, asked))
        assert set(np.unique(out)) <= {0, 1, 2, 7, 200}
    blended = resize(labels, 47, 31, Interp.LINEAR)
    assert not set(np.unique(blended)) <= {0, 1, 2, 7, 200}  # what the rule prevents


def test_nearest_samples_at_pixel_centres():
    """Upsampling 2x repeats each pixel twice, in place (not shifted by half a pixel)."""
    image = np.array([[10, 20, 30]], dtype=np.uint8)
    assert resize(image, 6, 1, Interp.NEAREST).tolist() == [[10, 10, 20, 20, 30, 30]]


def test_area_downsampling_averages_whole_blocks():
    image = np.arange(16, dtype=np.uint8).reshape(4, 4) * 10
    expected = image.reshape(2, 2, 2, 2).mean(axis=(1, 3))
    np.testing.assert_array_equal(resize(image, 2, 2, Interp.AREA), expected)


@pytest.mark.parametrize("width", [7, 16, 33])
def test_resampled_pixels_are_where_pixel_to_world_says(width):
    """The resize and the sidecar agree on pixel centres: on a ramp whose value is the native
    column's world x, each output pixel's value is the world x pixel_to_world gives it."""
    n = 11
    g = view_geometry(View.CORONAL, (n, 4, 5), (2.0, 1.0, 1.0), True)  # columns run along +x
    affine = np.diag([2.0, 1.0, 1.0, 1.0])
    ramp = np.tile((np.arange(n) * 2.0 * 20).astype(np.uint16), (5, 1))  # 20 units per mm
    out = resize(ramp, width, 5, Interp.LINEAR)
    smp = sampling(g, "native")
    smp = type(smp)(width, 5, n * 2.0 / width, 1.0)
    m = pixel_to_world(g, smp, 0, affine)
    for c in range(1, width - 1):  # the edge pixels clamp to the edge voxels
        x_mm = (m @ [c, 2, 0, 1])[0]
        if 0 <= x_mm <= 2.0 * (n - 1):
            assert out[2, c] == pytest.approx(x_mm * 20, abs=1)


# ------------------------------------------------------------------------------------------
# label maps onto another voxel grid


def _rotation(deg: float) -> np.ndarray:
    t = np.deg2rad(deg)
    r = np.eye(4)
    r[:2, :2] = [[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]]
    return r


GRID_SHAPE = (20, 24, 18)
GRID = np.array([[1.0, 0, 0, -10], [0, 1.0, 0, -12], [0, 0, 1.2, -9], [0, 0, 0, 1]])


@pytest.mark.parametrize(
    "mask_affine",
    [
        np.diag([2.0, 2.0, 2.0, 1.0])
        @ np.array([[1, 0, 0, -5], [0, 1, 0, -6], [0, 0, 1, -5], [0, 0, 0, 1.0]]),
        _rotation(9)
        @ np.diag([1.5, 1.5, 2.5, 1.0])
        @ np.array([[1, 0, 0, -6], [0, 1, 0, -8], [0, 0, 1, -4], [0, 0, 0, 1.0]]),
        np.array(
            [[-0.5, 0, 0, 10], [0, 0.5, 0, -12], [0, 0, 0.6, -9], [0, 0, 0, 1.0]]
        ),  # LAS, ties
    ],
    ids=["2mm", "rotated", "LAS-half-voxels"],
)
def test_mask_placement_equals_nibabel_order_0(mask_affine):
    """Every anatomy voxel takes the label of the mask voxel at the same world point: the same
    labels as nibabel's ``resample_from_to(order=0, mode="grid-constant")``: a mask voxel covers
    half a voxel beyond its centre, also at the mask's edge, and 0 is outside."""
    rng = np.random.default_rng(3)
    mask = np.asfortranarray(rng.integers(0, 5, (14, 16, 12)).astype(np.uint8))
    ours, overlap = resample_labels(mask, mask_affine, GRID_SHAPE, GRID)
    ref = resample_from_to(
        nib.Nifti1Image(mask, mask_affine), (GRID_SHAPE, GRID), order=0, mode="grid-constant"
    )
    assert overlap
    assert ours.flags.f_contiguous and ours.dtype == np.uint8
    np.testing.assert_array_equal(ours, np.asanyarray(ref.dataobj))


def test_mask_on_the_same_grid_is_unchanged_and_a_disjoint_one_is_flagged():
    mask = np.asfortranarray(np.random.default_rng(4).integers(0, 3, GRID_SHAPE).astype(np.uint16))
    same, overlap = resample_labels(mask, GRID, GRID_SHAPE, GRID)
    assert overlap and same.dtype == np.uint16
    np.testing.assert_array_equal(same, mask)
    far = GRID.copy()
    far[:3, 3] += 1000.0
    out, overlap = resample_labels(mask, far, GRID_SHAPE, GRID)
    assert not overlap and not out.any()


def test_singular_mask_affine_is_an_input_error():
    with pytest.raises(InputError, match="singular"):
        resample_labels(np.zeros((2, 2, 2), np.uint8), np.zeros((4, 4)), GRID_SHAPE, GRID)
