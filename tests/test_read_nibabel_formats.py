"""Analyze, NIfTI pairs, MGH/MGZ, MINC and PAR/REC through nibabel: same voxels and RAS affine
as nibabel gives, axes in NIfTI order, scaling kept as one slope and intercept where the file has
one."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from _formats_helpers import write_nibabel
from conftest import NIBABEL_DATA, reorient_to

from niftislice.errors import InputError, ResourceLimitError
from niftislice.read.nibabel_formats import read_nibabel
from niftislice.read.nifti import Limits


@pytest.mark.parametrize("suffix", [".mgh", ".mgz"])
@pytest.mark.parametrize("axcodes", ["RAS", "PIR", "LPS"])
def test_mgh_keeps_the_affine(
    tmp_path: Path, small_head: tuple[np.ndarray, np.ndarray], suffix: str, axcodes: str
) -> None:
    arr, aff = reorient_to(*small_head, axcodes)
    img = read_nibabel(write_nibabel(tmp_path / f"v{suffix}", arr, aff))
    assert img.format == "MGH" and img.warnings == ()
    np.testing.assert_allclose(img.affine, aff, atol=1e-4)  # MGH stores float32 geometry
    assert np.array_equal(img.load(), arr)


def test_analyze_assumes_radiological_storage(
    tmp_path: Path, small_head: tuple[np.ndarray, np.ndarray]
) -> None:
    arr, aff = reorient_to(*small_head, "LAS")
    path = write_nibabel(tmp_path / "v.hdr", arr, aff)
    assert (tmp_path / "v.img").is_file()
    img = read_nibabel(path)
    assert img.format == "Analyze" and "no orientation" in img.warnings[0]
    assert nib.aff2axcodes(img.affine) == ("L", "A", "S")
    np.testing.assert_allclose(img.affine[:3, :3], aff[:3, :3])
    assert np.array_equal(img.load(), arr)


def test_nifti_pair(tmp_path: Path, small_head: tuple[np.ndarray, np.ndarray]) -> None:
    arr, aff = reorient_to(*small_head, "PIR")
    pair = nib.Nifti1Pair(arr, aff)
    pair.header.set_data_dtype(np.int16)
    pair.header.set_slope_inter(2.0, -10.0)
    nib.save(pair, tmp_path / "p.hdr")
    img = read_nibabel(tmp_path / "p.hdr")
    assert img.format == "NIfTI-1 pair" and img.affine_source == "sform"
    np.testing.assert_allclose(img.affine, aff)
    stored = img.load()
    assert stored.dtype == np.int16 and (img.slope, img.inter) == (2.0, -10.0)
    assert np.allclose(
        stored * img.slope + img.inter, np.asanyarray(nib.load(tmp_path / "p.hdr").dataobj)
    )


def test_truncated_img_is_refused_before_reading(
    tmp_path: Path, small_head: tuple[np.ndarray, np.ndarray]
) -> None:
    arr, aff = small_head
    path = write_nibabel(tmp_path / "v.hdr", arr, aff)
    data = tmp_path / "v.img"
    data.write_bytes(data.read_bytes()[:1000])
    with pytest.raises(InputError, match=r"truncated Analyze data in v\.img"):
        read_nibabel(path)
    data.unlink()
    with pytest.raises(InputError, match=r"data file is missing: v\.img"):
        read_nibabel(path)


def test_limits_are_checked_from_the_header(
    tmp_path: Path, small_head: tuple[np.ndarray, np.ndarray]
) -> None:
    arr, aff = small_head
    path = write_nibabel(tmp_path / "v.mgz", arr, aff)
    with pytest.raises(ResourceLimitError, match="over the limit"):
        read_nibabel(path, Limits(max_voxels=1000))


def test_minc1_4d_puts_time_last() -> None:
    path = NIBABEL_DATA / "minc1_4d.mnc"
    ref = nib.load(path)
    img = read_nibabel(path)
    assert img.format == "MINC1"
    assert ref.shape == (2, 10, 20, 20) and img.shape == (10, 20, 20, 2)
    np.testing.assert_allclose(img.affine, ref.affine)
    data = img.load()
    assert np.array_equal(data[..., 1], np.asanyarray(ref.dataobj)[1])
    assert img.dtype == data.dtype == np.float64  # per-slice scaling applied by nibabel


@pytest.mark.skipif(importlib.util.find_spec("h5py") is not None, reason="h5py is installed")
def test_minc2_without_h5py_says_what_to_install() -> None:
    with pytest.raises(InputError, match="MINC2 files need h5py"):
        read_nibabel(NIBABEL_DATA / "minc2_1_scale.mnc")


def test_parrec_with_one_scaling_keeps_stored_values() -> None:
    path = NIBABEL_DATA / "phantom_EPI_asc_CLEAR_2_1.PAR"
    ref = nib.load(path)
    img = read_nibabel(path)
    assert img.format == "PAR/REC" and img.shape == ref.shape == (64, 64, 9, 3)
    np.testing.assert_allclose(img.affine, ref.affine)
    stored = img.load()
    assert stored.dtype == np.uint16
    np.testing.assert_allclose(
        stored * img.slope + img.inter, np.asanyarray(ref.dataobj), rtol=1e-6
    )


def test_parrec_with_varying_scaling_is_scaled_by_nibabel() -> None:
    path = NIBABEL_DATA / "phantom_varscale.PAR"
    img = read_nibabel(path)
    assert (img.slope, img.inter) == (1.0, 0.0)
    assert np.array_equal(img.load(), np.asanyarray(nib.load(path).dataobj))


def test_truncated_parrec_is_one_line() -> None:
    with pytest.raises(InputError, match="not a readable image: Header inconsistency") as e:
        read_nibabel(NIBABEL_DATA / "phantom_truncated.PAR")
    assert "\n" not in str(e.value)


def test_a_folder_or_garbage_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "d.mgz").mkdir()
    with pytest.raises(InputError, match="directory"):
        read_nibabel(tmp_path / "d.mgz")
    (tmp_path / "x.mgh").write_bytes(b"garbage")
    with pytest.raises(InputError, match="not a readable image"):
        read_nibabel(tmp_path / "x.mgh")
