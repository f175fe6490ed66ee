"""Anatomy, not array axes, decides what an image shows (DESIGN.md's orientation table)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import STORAGE_ORDERS, reorient_to, save

import niftislice
from niftislice import ConvertOptions, View

VIEWS = [View.AXIAL, View.CORONAL, View.SAGITTAL]


def images(path, **opts) -> dict[View, list[np.ndarray]]:
    vol = niftislice.load(path, ConvertOptions.parse(**opts))
    return {v: [s.image for s in vol.slices(v)] for v in VIEWS}


@pytest.fixture(scope="module")
def anisotropic_head(small_head):
    """The 3 mm template resampled to 3 x 3 x 3.9 mm voxels (slices 1.3 x thicker)."""
    from scipy.ndimage import zoom

    data, aff = small_head
    thick = zoom(data, (1, 1, 1 / 1.3), order=1)
    aff = aff.copy()
    aff[2, 2] *= data.shape[2] / thick.shape[2]  # same extent, fewer, thicker slices
    return thick, aff


@pytest.mark.parametrize("axcodes", STORAGE_ORDERS)
def test_same_anatomy_same_images_in_every_storage_order(tmp_path, anisotropic_head, axcodes):
    data, aff = anisotropic_head
    ref = images(save(tmp_path / "ras.nii.gz", data, aff))
    arr, a = reorient_to(data, aff, axcodes)
    path = save(tmp_path / f"{axcodes}.nii.gz", arr, a)
    got = images(path)
    for v in VIEWS:
        assert len(got[v]) == len(ref[v]), v
        for k, (g, r) in enumerate(zip(got[v], ref[v], strict=True)):
            assert g.shape == r.shape, (v, k)
            assert np.array_equal(g, r), f"{axcodes} {v.value} slice {k} differs"


def _octant_phantom() -> tuple[np.ndarray, np.ndarray]:
    """Dim cube with a bright marker in the Right-Anterior-Superior octant (RAS storage)."""
    data = np.full((20, 24, 16), 10, np.int16)
    data[14:18, 17:21, 11:14] = 1000  # x high = Right, y high = Anterior, z high = Superior
    return data, np.diag([1.0, 1.0, 1.0, 1.0])


def _bright_centroid(img: np.ndarray) -> tuple[float, float]:
    rows, cols = np.nonzero(img > 128)
    return rows.mean() / img.shape[0], cols.mean() / img.shape[1]


# Expected quadrant of a Right-Anterior-Superior marker: (top?, left?) per view and convention.
EXPECTED = {
    (View.AXIAL, False): (True, True),  # anterior up; radiological: patient right on image left
    (View.AXIAL, True): (True, False),
    (View.CORONAL, False): (True, True),  # superior up; right on left
    (View.CORONAL, True): (True, False),
    (View.SAGITTAL, False): (True, True),  # superior up; anterior on the left
    (View.SAGITTAL, True): (True, True),
}


@pytest.mark.parametrize("neurological", [False, True])
@pytest.mark.parametrize("axcodes", ["RAS", "LPS", "PIR", "IRP", "SLA", "ASL", "LIP", "RSP"])
def test_marker_lands_in_expected_quadrant(tmp_path, axcodes, neurological):
    data, aff = _octant_phantom()
    arr, a = reorient_to(data, aff, axcodes)
    path = save(tmp_path / "ph.nii.gz", arr, a)
    vol = niftislice.load(path, ConvertOptions(window="minmax", neurological=neurological))
    for view in VIEWS:
        # the slice through the middle of the marker
        k = {View.AXIAL: 12, View.CORONAL: 18, View.SAGITTAL: 15}[view]
        img = next(s.image for s in vol.slices(view) if s.index == k)
        r, c = _bright_centroid(img)
        top, left = EXPECTED[(view, neurological)]
        assert (r < 0.5) == top, f"{view.value}: marker row {r:.2f}"
        assert (c < 0.5) == left, f"{view.value}: marker column {c:.2f}"


def test_slice_index_counts_along_ras_axes(tmp_path):
    """k = 0 is the most left / posterior / inferior slice, whatever the storage order."""
    data = np.zeros((10, 12, 14), np.uint8)
    data[0, :, :] = 200  # leftmost sagittal plane
    data[:, 0, :] = 200  # most posterior coronal plane
    data[:, :, 0] = 200  # most inferior axial plane
    arr, a = reorient_to(data, np.eye(4), "PIR")
    vol = niftislice.load(save(tmp_path / "p.nii.gz", arr, a), ConvertOptions(window="0:200"))
    for view in VIEWS:
        first = next(vol.slices(view))
        assert first.index == 0 and first.image.min() == 255, view


def test_real_las_file_matches_its_ras_equivalent(tmp_path):
    """nibabel's anatomical.nii (LAS, big-endian) shows the same as its RAS-resaved copy."""
    import nibabel as nib
    from conftest import NIBABEL_DATA

    src = NIBABEL_DATA / "anatomical.nii"
    img = nib.as_closest_canonical(nib.load(src))
    ras = tmp_path / "ras.nii"
    nib.save(nib.Nifti1Image(np.asanyarray(img.dataobj), img.affine), ras)
    a, b = images(src), images(ras)
    for v in VIEWS:
        assert len(a[v]) == len(b[v]) > 0
        assert all(np.array_equal(x, y) for x, y in zip(a[v], b[v], strict=True))


def test_oblique_affine_warns_and_records_angle(tmp_path, small_head):
    data, aff = small_head
    theta = np.deg2rad(10)
    rot = np.array(
        [
            [1, 0, 0, 0],
            [0, np.cos(theta), -np.sin(theta), 0],
            [0, np.sin(theta), np.cos(theta), 0],
            [0, 0, 0, 1],
        ]
    )
    path = save(tmp_path / "obl.nii.gz", data, rot @ aff)
    vol = niftislice.load(path)
    assert any("oblique" in w for w in vol.plan.warnings)
    assert vol.plan.reo.obliquity_deg == pytest.approx(10, abs=0.01)
