"""``convert --lossless --spacing native`` then ``stack`` gives the source file back: the same
dtype, stored integers, scl_slope/scl_inter, shape and header fields, whatever the scaling."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from _stack_helpers import VIEWS, export, max_affine_error, sidecar, small_template, stored
from conftest import NIBABEL_DATA

import niftislice
from niftislice import StackOptions
from niftislice.cli import main
from niftislice.encoding import decode

_QFORM_FIELDS = ("quatern_b", "quatern_c", "quatern_d", "qoffset_x", "qoffset_y", "qoffset_z")


@pytest.fixture(scope="module")
def head() -> nib.Nifti1Image:
    return small_template()


def _ct_like(head: nib.Nifti1Image, path: Path) -> tuple[Path, np.ndarray]:
    """What dcm2niix writes for a CT: uint16 stored values, scl_slope 1, scl_inter -1024.

    Stored 0 is air outside the body (-1024 HU); the head's grey values become 0..3060 HU.
    """
    grey = np.asanyarray(head.dataobj)[::2, ::2, ::2].astype(np.uint16)
    raw = np.where(grey > 8, grey * 12 + 1024, 0).astype(np.uint16)
    img = nib.Nifti1Image(raw, head.affine @ np.diag([2.0, 2.0, 2.0, 1.0]))
    img.header.set_data_dtype(np.uint16)
    img.header.set_slope_inter(1.0, -1024.0)
    img.set_qform(img.affine, code=1)
    img.set_sform(img.affine, code=1)
    nib.save(img, path)
    return path, raw


def _scaling(path: Path) -> tuple[float, float]:
    proxy = nib.load(path).dataobj
    return float(proxy.slope), float(proxy.inter)


@pytest.mark.parametrize("view", VIEWS)
def test_ct_uint16_with_intercept_comes_back_as_stored(view, head, tmp_path):
    src, raw = _ct_like(head, tmp_path / "ct.nii.gz")
    folder = export(src, tmp_path / "out", lossless=True, spacing="native", views=view)
    out = tmp_path / "back.nii.gz"
    niftislice.stack(folder, out, StackOptions(view=view))
    back = nib.load(out)
    assert back.get_data_dtype() == np.dtype(np.uint16)
    np.testing.assert_array_equal(stored(out), raw)
    assert _scaling(out) == (1.0, -1024.0)
    np.testing.assert_array_equal(back.get_fdata(), nib.load(src).get_fdata())
    assert max_affine_error(back, nib.load(src)) < 1e-6


def test_ct_lossless_images_hold_the_stored_integers_and_the_sidecar_gives_hounsfield(
    head, tmp_path
):
    src, raw = _ct_like(head, tmp_path / "ct.nii.gz")
    folder = export(src, tmp_path / "out", lossless=True, spacing="native", views="axial")
    p2d = sidecar(folder)["intensity"]["pixel_to_data"]
    assert (p2d["scale"], p2d["offset"]) == (1.0, -1024.0)  # pixel 0 (stored 0) is air
    middle = nib.load(src).shape[2] // 2
    png = folder / "axial" / f"ct_axial_{middle:04d}.png"
    pixels = decode(png.read_bytes())
    assert pixels.dtype == np.uint16 and pixels.min() == 0
    assert sorted(np.unique(pixels)) == sorted(np.unique(raw[:, :, middle]))


def test_integral_slope_other_than_one_keeps_the_stored_integers(head, tmp_path):
    """int16 with scl_slope 2: data reaches 40000, beyond int16; the stored integers fit."""
    grey = np.asanyarray(head.dataobj)[::2, ::2, ::2].astype(np.int16)
    raw = (grey.astype(np.int32) * 80 - 400).astype(np.int16)  # -400 .. 20000
    img = nib.Nifti1Image(raw, head.affine @ np.diag([2.0, 2.0, 2.0, 1.0]))
    img.header.set_slope_inter(2.0, 0.0)
    src = tmp_path / "slope2.nii.gz"
    nib.save(img, src)
    folder = export(src, tmp_path / "out", lossless=True, spacing="native", views="coronal")
    out = tmp_path / "back.nii.gz"
    niftislice.stack(folder, out)
    assert nib.load(out).get_data_dtype() == np.dtype(np.int16)
    np.testing.assert_array_equal(stored(out), raw)
    assert _scaling(out) == (2.0, 0.0)


def test_single_volume_4d_file_comes_back_4d_with_its_header(tmp_path):
    """nibabel's example4d.nii.gz cut to its first volume: 128 x 96 x 24 x 1, TR 2 s."""
    ex = nib.load(NIBABEL_DATA / "example4d.nii.gz")
    data = np.asanyarray(ex.dataobj)[..., :1]
    img = nib.Nifti1Image(data, ex.affine, header=ex.header)
    src = tmp_path / "one_volume.nii.gz"
    nib.save(img, src)
    source = nib.load(src)
    assert source.shape == (128, 96, 24, 1)
    folder = export(src, tmp_path / "out", lossless=True, spacing="native", views="axial")
    out = tmp_path / "back.nii.gz"
    rc = main(["stack", str(folder), "-o", str(out), "-q"])
    assert rc == 0
    back = nib.load(out)
    assert back.shape == source.shape
    np.testing.assert_array_equal(stored(out), stored(src))
    assert back.header.get_zooms() == source.header.get_zooms()
    assert back.header.get_xyzt_units() == source.header.get_xyzt_units()
    assert max_affine_error(back, source) < 1e-6
    # one volume asked for by index is a 3D volume, as for any 4D export
    assert niftislice.stack(folder, options=StackOptions(volume=0)).image.shape == source.shape[:3]


def test_unused_qform_parameters_are_kept(head, tmp_path):
    """nibabel writes qform_code 0 (unknown) but fills the quaternion and offsets all the same."""
    small = head.slicer[::2, ::2, ::2]
    aff = small.affine.copy()
    aff[:3, 3] += (3.25, -7.5, 11.0)
    img = nib.Nifti1Image(np.asanyarray(small.dataobj), aff)
    src = tmp_path / "default_header.nii.gz"
    nib.save(img, src)
    source = nib.load(src).header
    assert int(source["qform_code"]) == 0 and float(source["qoffset_x"]) != 0
    folder = export(src, tmp_path / "out", lossless=True, spacing="native", views="sagittal")
    out = tmp_path / "back.nii.gz"
    niftislice.stack(folder, out)
    back = nib.load(out).header
    for name in (*_QFORM_FIELDS, "qform_code", "sform_code"):
        assert float(back[name]) == float(source[name]), name
    assert float(back["pixdim"][0]) == float(source["pixdim"][0])  # qfac
    np.testing.assert_array_equal(stored(out), stored(src))


def test_anatomical_qform_fields_come_back_exactly(tmp_path):
    """nibabel's anatomical.nii (big-endian int16, qform and sform code 2): every qform field."""
    src = NIBABEL_DATA / "anatomical.nii"
    folder = export(src, tmp_path / "out", lossless=True, spacing="native", views="axial")
    out = tmp_path / "back.nii"
    niftislice.stack(folder, out)
    back, source = nib.load(out).header, nib.load(src).header
    for name in (*_QFORM_FIELDS, "qform_code", "sform_code"):
        assert float(back[name]) == float(source[name]), name
    assert back.get_data_dtype() == source.get_data_dtype()
    np.testing.assert_array_equal(stored(out), stored(src))
