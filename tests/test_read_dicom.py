"""The DICOM reader: series found and grouped, geometry and values as dcm2niix gives them.

Series are built from the MNI152 template with pydicom (known array and affine) and taken from
pydicom's real test files; dcm2niix is the reference: after both are brought to RAS+, the voxel
values (in data units) must be identical and the affines equal to 1e-4 mm.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from _dicom_helpers import (
    AXIAL,
    CORONAL,
    OBLIQUE,
    PHI,
    SAGITTAL_MR_DESCENDING,
    canonical,
    dcm2niix,
    small,
    write_series,
)
from pydicom.data import get_testdata_file

from niftislice.errors import InputError
from niftislice.read.dicom import CODECS_EXTRA, read_series_volume, scan_dicom
from niftislice.read.dicom_geometry import stack_geometry

PYDICOM_FILES = Path(get_testdata_file("CT_small.dcm")).parent
DICOMDIR_TESTS = PYDICOM_FILES / "dicomdirtests"


def data_units(series, arr: np.ndarray) -> np.ndarray:
    return arr.astype(np.float64) * series.slope + series.inter


def assert_same_as_dcm2niix(folder: Path, tmp_path: Path) -> None:
    """Every series niftislice finds in ``folder`` equals the NIfTI dcm2niix writes for it."""
    found = scan_dicom([folder])
    refs = dcm2niix(folder, tmp_path / "dcm2niix")
    assert len(found.series) == len(refs), (found.problems, refs)
    by_shape = {}
    for ref in refs:
        img = nib.load(ref)
        by_shape.setdefault(tuple(sorted(img.shape)), []).append(img)
    for series in found.series:
        ours, ours_aff = canonical(data_units(series, read_series_volume(series)), series.affine)
        candidates = by_shape[tuple(sorted(series.shape))]
        matches = [
            img
            for img in candidates
            if np.allclose(canonical(img.get_fdata(), img.affine)[1], ours_aff, atol=1e-3)
        ]
        assert matches, f"{series.name}: no dcm2niix output with the same grid"
        theirs, _ = canonical(matches[0].get_fdata(), matches[0].affine)
        np.testing.assert_array_equal(ours, theirs)


# ---- series built from the template -------------------------------------------------------


def test_axial_ct_is_in_hounsfield_units_on_the_right_grid(tmp_path: Path) -> None:
    spec = small(**AXIAL, intercept=-1024.0)
    stored = write_series(tmp_path / "ct", spec)
    [series] = scan_dicom([tmp_path / "ct"]).series
    arr = read_series_volume(series)
    assert arr.shape == (56, 60, 40) and arr.flags.f_contiguous and arr.dtype == np.int16
    np.testing.assert_array_equal(arr, stored)
    assert (series.slope, series.inter) == (1.0, -1024.0)
    assert data_units(series, arr).min() == -1024.0  # air outside the head
    np.testing.assert_allclose(series.affine, spec.ras_affine(), atol=1e-4)
    assert series.window == (40.0, 80.0)
    assert series.name == "0003_Head_3mm"
    assert_same_as_dcm2niix(tmp_path / "ct", tmp_path)


def test_sagittal_mr_descending_shuffled_non_square(tmp_path: Path) -> None:
    """Non-square pixels and a non-square image catch a swapped PixelSpacing or (r, c); the
    order comes from ImagePositionPatient, not from InstanceNumber or file names."""
    spec = small(**SAGITTAL_MR_DESCENDING, window=None)
    stored = write_series(tmp_path / "mr", spec)
    [series] = scan_dicom([tmp_path / "mr"]).series
    np.testing.assert_array_equal(read_series_volume(series), stored)
    np.testing.assert_allclose(series.affine, spec.ras_affine(), atol=1e-4)
    instances = [f.instance for f in series.slices]
    assert instances == sorted(instances, reverse=True)
    assert series.window is None
    assert_same_as_dcm2niix(tmp_path / "mr", tmp_path)


def test_oblique_series_matches_dcm2niix(tmp_path: Path) -> None:
    spec = small(**OBLIQUE)
    stored = write_series(tmp_path / "obl", spec)
    [series] = scan_dicom([tmp_path / "obl"]).series
    np.testing.assert_array_equal(read_series_volume(series), stored)
    np.testing.assert_allclose(series.affine, spec.ras_affine(), atol=1e-4)
    assert_same_as_dcm2niix(tmp_path / "obl", tmp_path)


@pytest.mark.slow
def test_two_series_in_one_folder_stay_apart(tmp_path: Path) -> None:
    a = small(**AXIAL, number=2, description="Head")
    b = small(**CORONAL, number=5, description="Head", spacing=(2.0, 2.5), step=4.0)
    write_series(tmp_path / "mixed", a)
    stored_b = write_series(tmp_path / "tmp_b", b)
    for f in (tmp_path / "tmp_b").iterdir():
        f.rename(tmp_path / "mixed" / f"B_{f.name}")
    found = scan_dicom([tmp_path / "mixed"])
    assert [s.name for s in found.series] == ["0002_Head", "0005_Head"]
    assert [s.shape[2] for s in found.series] == [40, 40]
    np.testing.assert_array_equal(read_series_volume(found.series[1]), stored_b)
    assert_same_as_dcm2niix(tmp_path / "mixed", tmp_path)


def test_same_number_and_description_get_distinct_names(tmp_path: Path) -> None:
    write_series(tmp_path / "x", small(**AXIAL, slices=6))
    write_series(tmp_path / "y", small(**AXIAL, slices=6))
    for f in (tmp_path / "y").iterdir():
        f.rename(tmp_path / "x" / f"Y{f.name}")
    names = [s.name for s in scan_dicom([tmp_path / "x"]).series]
    assert names == ["0003_Head_3mm", "0003_Head_3mm_2"]


def test_missing_slice_is_refused_with_the_series_named(tmp_path: Path) -> None:
    write_series(tmp_path / "gap", small(**AXIAL), skip=(17,))
    found = scan_dicom([tmp_path / "gap"])
    assert not found.series
    [problem] = found.problems
    assert 'series 3 "Head 3mm"' in problem.source and "39 files" in problem.source
    assert "uneven slice spacing" in problem.reason and "1 slice(s) missing" in problem.reason
    assert "\n" not in str(problem)


def test_gantry_tilt_keeps_every_voxel_in_place(tmp_path: Path) -> None:
    spec = small(**AXIAL, shear=(0.0, 0.6, 0.0))  # 0.6 mm along y per 3 mm slice: 11.3°
    stored = write_series(tmp_path / "tilt", spec)
    [series] = scan_dicom([tmp_path / "tilt"]).series
    np.testing.assert_array_equal(read_series_volume(series), stored)
    np.testing.assert_allclose(series.affine, spec.ras_affine(), atol=1e-4)
    assert series.tilt_deg == pytest.approx(11.31, abs=0.01)
    assert any("gantry tilt of 11.31°" in w for w in series.warnings)


def test_monochrome1_unsigned_12_bit_is_inverted(tmp_path: Path) -> None:
    spec = small(**AXIAL, signed=False, bits_stored=12, intercept=0.0, photometric="MONOCHROME1")
    stored = write_series(tmp_path / "m1", spec)
    [series] = scan_dicom([tmp_path / "m1"]).series
    arr = read_series_volume(series)
    assert arr.dtype == np.uint16
    np.testing.assert_array_equal(arr, 4095 - stored)


def test_rescale_varying_per_slice_reads_float_data_units(tmp_path: Path) -> None:
    spec = small(**AXIAL, slices=4, intercept=0.0, window=None)
    stored = write_series(tmp_path / "pet", spec)
    for n, f in enumerate(sorted((tmp_path / "pet").iterdir())):
        ds = pydicom.dcmread(f)
        ds.RescaleSlope = f"{0.5 * (n + 1):g}"
        ds.save_as(f)
    [series] = scan_dicom([tmp_path / "pet"]).series
    assert series.per_slice_rescale and series.dtype == np.float32
    arr = read_series_volume(series)
    for k in range(4):
        np.testing.assert_allclose(arr[:, :, k], stored[:, :, k] * 0.5 * (k + 1))
    assert any("varies between slices" in w for w in series.warnings)


def test_patient_identity_stays_out_of_names_and_warnings(tmp_path: Path) -> None:
    write_series(tmp_path / "id", small(**AXIAL, slices=3, shear=(0, 0.5, 0)))
    [series] = scan_dicom([tmp_path / "id"]).series
    public = " ".join([series.name, series.label, *series.warnings, series.description])
    for value in PHI.values():
        assert value not in public
    assert series.phi["PatientName"] == "Doe^Jane"  # kept apart, for --keep-phi only


def test_files_are_recognised_by_content_not_extension(tmp_path: Path) -> None:
    folder = tmp_path / "mixed"
    write_series(folder, small(**AXIAL, slices=3))
    (folder / "IM0000").rename(folder / "slice.dcm")
    (folder / "IM0001").rename(folder / "notes.txt")
    (folder / "README").write_text("not DICOM\n")
    (folder / "scan.nii").write_bytes(b"\x5c\x01\x00\x00" + bytes(400))
    found = scan_dicom([folder])
    assert [len(s.slices) for s in found.series] == [3] and not found.problems


# ---- pydicom's real scanner files ---------------------------------------------------------


def test_ct_small_geometry_and_hounsfield_units() -> None:
    [series] = scan_dicom([get_testdata_file("CT_small.dcm")]).series
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    arr = read_series_volume(series)
    np.testing.assert_array_equal(arr[:, :, 0], ds.pixel_array.T)
    assert series.inter == -1024.0 and series.modality == "CT"
    ipp = np.array([float(v) for v in ds.ImagePositionPatient])
    np.testing.assert_allclose(series.affine[:3, 3], ipp * [-1, -1, 1])
    np.testing.assert_allclose(np.diag(series.affine)[:2], [-0.661468, -0.661468])
    assert any("single slice" in w for w in series.warnings)


@pytest.mark.parametrize(
    "name",
    [
        "MR_small_RLE.dcm",
        "MR_small_jp2klossless.dcm",
        "MR_small_jpeg_ls_lossless.dcm",
        "MR_small_bigendian.dcm",
        "MR_small_implicit.dcm",
    ],
)
def test_compressed_and_other_syntaxes_give_the_same_voxels(name: str) -> None:
    [plain] = scan_dicom([get_testdata_file("MR_small.dcm")]).series
    [other] = scan_dicom([get_testdata_file(name)]).series
    np.testing.assert_array_equal(read_series_volume(other), read_series_volume(plain))
    np.testing.assert_allclose(other.affine, plain.affine)


def test_missing_decoder_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    from pydicom.pixels.decoders.base import Decoder

    monkeypatch.setattr(Decoder, "is_available", property(lambda self: False))
    found = scan_dicom([get_testdata_file("MR_small_jp2klossless.dcm")])
    [problem] = found.problems
    assert f"pip install 'niftislice[{CODECS_EXTRA}]'" in problem.reason
    assert "JPEG 2000" in problem.reason and not found.series


def test_enhanced_multiframe_uses_per_frame_geometry(tmp_path: Path) -> None:
    path = get_testdata_file("eCT_Supplemental.dcm")
    [series] = scan_dicom([path]).series
    assert series.shape == (512, 512, 2) and series.inter == -1024.0
    assert series.window == (49.0, 102.0)
    # r = (-1, 0, 0), c = (0, 1, 0): n = -z, so the frame at z = -149 comes first
    assert [f.index for f in series.slices] == [1, 0]
    shutil.copy(path, tmp_path / "ect")
    (tmp_path / "in").mkdir()
    shutil.move(tmp_path / "ect", tmp_path / "in" / "ect")
    assert_same_as_dcm2niix(tmp_path / "in", tmp_path)


def test_dicomdir_tree_real_series(tmp_path: Path) -> None:
    """CT5N: five slices stored head-first with rising InstanceNumber; as dcm2niix reads it."""
    shutil.copytree(DICOMDIR_TESTS / "98892001" / "CT5N", tmp_path / "CT5N")
    [series] = scan_dicom([tmp_path / "CT5N"]).series
    assert series.shape == (16, 16, 5) and series.step_mm == pytest.approx(2.5)
    assert [f.instance for f in series.slices] == [10, 9, 8, 7, 6]
    assert_same_as_dcm2niix(tmp_path / "CT5N", tmp_path)


def test_dicomdir_tree_problems_are_one_line_each() -> None:
    found = scan_dicom([DICOMDIR_TESTS])
    text = [str(p) for p in found.problems]
    assert all("\n" not in t for t in text)
    assert any("DICOMDIR" in t and "index of a DICOM disc" in t for t in text)
    assert any('"Routine Brain"' in t and "uneven slice spacing" in t for t in text)
    assert any("Cervical LAT" in t and "missing geometry tags" in t for t in text)
    # 50 files without image attributes make one line, not fifty
    assert sum("no Rows/Columns" in t for t in text) == 1
    localizers = [s for s in found.series if s.series_number == 2 and "PILOT" in s.description]
    assert len(localizers) == 6 and all(s.shape[2] == 1 for s in localizers)


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("MR_truncated.dcm", "truncated pixel data"),
        ("rtstruct.dcm", "RT Structure Set"),
        ("test-SR.dcm", "Comprehensive SR"),
        ("image_dfl.dcm", "no pixel data"),
        ("dicomdirtests/DICOMDIR", "DICOMDIR"),
    ],
)
def test_bad_dicom_files_are_one_line(name: str, reason: str) -> None:
    path = PYDICOM_FILES / name
    found = scan_dicom([path])
    [problem] = found.problems
    assert reason in problem.reason and problem.source == str(path) and not found.series


def test_truncated_copy_of_a_good_file(tmp_path: Path) -> None:
    data = Path(get_testdata_file("CT_small.dcm")).read_bytes()
    (tmp_path / "cut").write_bytes(data[: len(data) - 5000])
    [problem] = scan_dicom([tmp_path / "cut"]).problems
    assert "truncated pixel data" in problem.reason


def test_geometry_refusals() -> None:
    axial = (1, 0, 0, 0, 1, 0)
    with pytest.raises(InputError, match="share one position"):
        stack_geometry(axial, (1, 1), [(0, 0, 0), (0, 0, 0), (0, 0, 2)])
    with pytest.raises(InputError, match="not perpendicular"):
        stack_geometry((1, 0, 0, 0.5, 0.866, 0), (1, 1), [(0, 0, 0)])
    with pytest.raises(InputError, match="one line"):
        stack_geometry(axial, (1, 1), [(0, 0, 0), (0, 5, 2), (0, 0, 4)])
