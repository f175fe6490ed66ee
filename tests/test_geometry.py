"""Physical aspect ratio, output spacing and the sidecar's pixel -> world matrices."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import STORAGE_ORDERS, reorient_to, save

import niftislice
from niftislice import ConvertOptions, View


def _aniso(shape, zooms, axcodes="RAS", tmp_path=None):
    rng = np.random.default_rng(0)
    data = rng.integers(0, 1000, size=shape).astype(np.int16)
    aff = np.diag([*zooms, 1.0])
    aff[:3, 3] = [-50, -60, -20]
    arr, a = reorient_to(data, aff, axcodes)
    return save(tmp_path / f"a_{axcodes}.nii.gz", arr, a)


@pytest.mark.parametrize("zooms", [(1.0, 1.0, 1.3), (2.0, 1.0, 3.0), (0.7, 1.9, 1.0)])
@pytest.mark.parametrize("axcodes", ["RAS", "PIR", "LPS"])
def test_image_aspect_matches_physical_extent(tmp_path, zooms, axcodes):
    shape = (40, 50, 30)
    path = _aniso(shape, zooms, axcodes, tmp_path)
    extent = np.array(shape) * np.array(zooms)  # mm along x, y, z
    vol = niftislice.load(path)
    # (width axis, height axis) per view in RAS terms
    axes = {View.AXIAL: (0, 1), View.CORONAL: (0, 2), View.SAGITTAL: (1, 2)}
    for view, (wa, ha) in axes.items():
        img = next(vol.slices(view)).image
        h, w = img.shape
        # square pixels at the finest in-plane spacing
        finest = min(zooms[wa], zooms[ha])
        assert w == round(extent[wa] / finest) and h == round(extent[ha] / finest)
        assert abs(w - h * extent[wa] / extent[ha]) <= 1.0, (view, w, h)


def test_fixed_and_native_spacing(tmp_path):
    path = _aniso((40, 50, 30), (1.0, 1.0, 1.3), "RAS", tmp_path)
    s = next(niftislice.load(path, ConvertOptions(spacing=2)).slices("coronal"))
    h = s.image.shape[0]
    assert s.image.shape[1] == 20 and h in (19, 20)  # 40 mm wide, 39 mm tall, at 2 mm
    # the real spacing is recorded: the extent divided by the whole number of pixels
    assert s.spacing_mm == pytest.approx((2.0, 30 * 1.3 / h))
    n = next(niftislice.load(path, ConvertOptions(spacing="native")).slices("coronal"))
    assert n.image.shape == (30, 40) and n.spacing_mm == pytest.approx((1.0, 1.3))


def _voxel_world(affine, ijk):
    return (affine @ np.array([*ijk, 1.0]))[:3]


@pytest.mark.parametrize("axcodes", STORAGE_ORDERS)
@pytest.mark.parametrize("spacing", ["finest", "native", 0.5])
def test_sidecar_maps_known_voxel_to_world(tmp_path, axcodes, spacing):
    """A single bright voxel: its pixel, mapped by the sidecar matrix, is its world position."""
    data = np.zeros((21, 25, 17), np.int16)
    ijk_ras = (13, 7, 9)
    data[ijk_ras] = 1000
    aff = np.diag([1.2, 0.9, 2.0, 1.0])
    aff[:3, 3] = [-10.5, 20.25, -3.0]
    arr, a = reorient_to(data, aff, axcodes)
    path = save(tmp_path / "v.nii.gz", arr, a)
    expected = _voxel_world(aff, ijk_ras)
    out = tmp_path / "out"
    niftislice.convert(
        path, out, ConvertOptions(spacing=spacing, window="0:1000", interp="nearest", label=False)
    )
    side = json.loads((out / "v" / "v.json").read_text())
    assert np.allclose(side["source"]["affine"], a, atol=1e-6)
    for view, entry in side["views"].items():
        sl = next(s for s in entry["slices"] if _slice_has_voxel(s, expected))
        m = np.array(sl["pixel_to_world"])
        img = niftislice.encoding.decode((out / "v" / view / sl["file"]).read_bytes())
        # pixel nearest to the voxel centre, found by inverting the matrix
        cr = np.linalg.solve(m[:3, :3], expected - m[:3, 3])
        assert abs(cr[2]) < 1e-4, (view, cr)
        col, row = (round(float(cr[0])), round(float(cr[1])))
        assert img[row, col] > 0, (view, row, col)
        world = (m @ [cr[0], cr[1], 0, 1])[:3]
        assert np.allclose(world, expected, atol=0.01)


def _slice_has_voxel(entry, world) -> bool:
    m = np.array(entry["pixel_to_world"])
    cr = np.linalg.solve(m[:3, :3], world - m[:3, 3])
    return abs(cr[2]) < 1e-4  # the header stores the affine in float32


def test_pixel_centres_follow_resampling(tmp_path):
    """With 2x upsampling, pixel (0, 0) sits a quarter voxel inside the first voxel's centre."""
    data = np.zeros((4, 4, 4), np.uint8)
    path = save(tmp_path / "t.nii.gz", data, np.eye(4))
    vol = niftislice.load(path, ConvertOptions(spacing=0.5))
    s = next(vol.slices("axial"))
    m = s.pixel_to_world
    # axial radiological: column 0 is x = 3 (right), row 0 is y = 3 (anterior)
    assert np.allclose((m @ [0, 0, 0, 1])[:3], [3.25, 3.25, 0])
    assert np.allclose((m @ [7, 7, 0, 1])[:3], [-0.25, -0.25, 0])
    assert np.allclose((m @ [0, 0, 1, 1])[:3], [3.25, 3.25, 1])  # third column: next slice
