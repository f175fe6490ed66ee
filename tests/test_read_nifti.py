"""The readers' common ground, called directly: read/nifti (header, geometry choice, streaming
read), read/validate (header fields), read/source.array_source (other formats' volumes) and
read/dispatch.open_source (which reader)."""

from __future__ import annotations

import gzip
import hashlib
import math
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from conftest import NIBABEL_DATA, save
from nifti_bytes import gradient, header_for, nifti_file

from niftislice.errors import InputError, ResourceLimitError
from niftislice.read import dispatch, validate
from niftislice.read import nifti as loading
from niftislice.read.nifti import ReadResult, check_limits, iter_volumes, read_header
from niftislice.read.source import array_source
from niftislice.types import Limits


@pytest.mark.parametrize("name", ["anatomical.nii", "example4d.nii.gz"])
def test_pieces_add_up_to_each_volume_in_native_order(name, monkeypatch):
    """anatomical.nii is big-endian int16, example4d little-endian, 2 volumes: every piece is
    native-endian and read-only, and the pieces of each volume concatenate to exactly it."""
    monkeypatch.setattr(loading, "READ_BLOCK", 1 << 12)  # many pieces per volume
    nf = read_header(NIBABEL_DATA / name)
    pieces: list[np.ndarray] = []
    expected = np.asanyarray(nib.load(NIBABEL_DATA / name).dataobj)
    for t, volume in iter_volumes(nf, None, None, pieces.append):
        assert volume.dtype.isnative
        assert all(p.dtype.isnative and not p.flags.writeable for p in pieces)
        got = np.concatenate(pieces)
        pieces.clear()
        ref = expected if expected.ndim == 3 else expected[..., t]
        np.testing.assert_array_equal(got, ref.reshape(-1, order="F"))
        np.testing.assert_array_equal(volume, ref)


def test_no_pieces_for_rgb(tmp_path):
    rgb = np.zeros((4, 5, 6), dtype=[("R", "u1"), ("G", "u1"), ("B", "u1")])
    path = save(tmp_path / "rgb.nii.gz", rgb, np.eye(4))
    pieces: list[np.ndarray] = []
    ((_, volume),) = iter_volumes(read_header(path), None, None, pieces.append)
    assert volume.shape == (4, 5, 6, 3) and pieces == []


# ------------------------------------------------------------------------------------------
# read/nifti: real files described and read as nibabel does

REAL = [
    "anatomical.nii",  # big-endian int16, qform and sform
    "example4d.nii.gz",  # 2 volumes, oblique quaternion, qfac -1
    "example_nifti2.nii.gz",  # NIfTI-2
    "functional.nii",  # 20 volumes
    "reoriented_anat_moved.nii",  # big-endian float32
    "standard.nii.gz",  # sform only
]


@pytest.mark.parametrize("name", REAL)
def test_real_files_are_described_as_nibabel_does(name):
    img = nib.load(NIBABEL_DATA / name)
    nf = read_header(NIBABEL_DATA / name)
    assert nf.data_shape == img.shape
    assert nf.n_volumes == math.prod(img.shape[3:])
    assert nf.dtype == img.get_data_dtype()
    np.testing.assert_allclose(nf.affine, img.affine, atol=1e-5)
    np.testing.assert_allclose(nf.zooms, img.header.get_zooms()[:3], rtol=1e-6)
    assert nf.nifti_version == (2 if "nifti2" in name else 1)
    assert nf.compressed == name.endswith(".gz")


@pytest.mark.parametrize("selected", [[1], [0, 1], [1, 0], []])
def test_selected_volumes_in_file_order(selected):
    path = NIBABEL_DATA / "example4d.nii.gz"
    data = np.asanyarray(nib.load(path).dataobj)
    got = list(iter_volumes(read_header(path), selected))
    assert [t for t, _ in got] == sorted(selected)
    for t, arr in got:
        np.testing.assert_array_equal(arr, data[..., t])


def test_gzip_is_recognised_by_content_and_the_file_is_hashed(tmp_path):
    """A compressed file named .nii reads the same; the sha256 is the file's own."""
    arr = gradient()
    raw = nifti_file(header_for(arr), arr)
    path = tmp_path / "misnamed.nii"
    path.write_bytes(gzip.compress(raw))
    nf = read_header(path)
    assert nf.compressed
    result = ReadResult()
    ((_, volume),) = iter_volumes(nf, None, result)
    np.testing.assert_array_equal(volume, arr)
    assert result.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize(
    ("spatial", "n_vol", "limits", "message"),
    [
        ((100, 100, 100), 1, Limits(max_voxels=999_999), r"1,000,000 voxels.*--max-voxels"),
        ((10, 10, 5000), 1, Limits(), r"5,000 slices.*--allow-many-slices"),
        ((2, 2, 2), 50, Limits(max_voxels=40), r"declared 50 volumes.*--max-voxels"),
        ((2**40, 2**40, 2**40), 1, Limits(), r"over the limit"),  # no wrap-around
    ],
)
def test_limits_refuse_with_the_option_that_lifts_them(spatial, n_vol, limits, message):
    with pytest.raises(ResourceLimitError, match=message):
        check_limits(spatial, n_vol, limits)


def test_limits_that_allow():
    check_limits((10, 10, 5000), 1, Limits(allow_many_slices=True))
    check_limits((100, 100, 100), 1, Limits(max_voxels=1_000_000))


def test_declared_sizes_are_checked_before_the_data_is_read(tmp_path):
    """A header declaring 2 GiB of voxels in a tiny file is refused by its limits, not read."""
    hdr = header_for(gradient()).with_shape((1024, 1024, 1024))
    path = tmp_path / "huge.nii"
    path.write_bytes(nifti_file(hdr, b"\0" * 64))
    with pytest.raises(ResourceLimitError, match="--max-voxels"):
        read_header(path, Limits(max_voxels=1 << 20))
    with pytest.raises(InputError, match="truncated voxel data"):
        read_header(path)


# ------------------------------------------------------------------------------------------
# read/nifti + read/validate: which affine is used


def _file(tmp_path, **fields) -> loading.NiftiFile:
    arr = gradient()
    path = tmp_path / "v.nii"
    path.write_bytes(nifti_file(header_for(arr, **fields), arr))
    return read_header(path)


SFORM = {
    "srow_x": (0.0, 0.0, 3.0, 1.0),
    "srow_y": (2.0, 0.0, 0.0, 2.0),
    "srow_z": (0.0, 2.0, 0.0, 3.0),
}


@pytest.mark.parametrize(
    ("fields", "source", "warning"),
    [
        ({}, "sform", None),  # both agree: the sform
        (SFORM, "sform", "qform and sform disagree"),
        ({"sform_code": 0}, "qform", None),
        ({"sform_code": 0, "qform_code": 0}, "pixdim", "no orientation"),
        ({"srow_x": (0.0, 0.0, 0.0, 1.0)}, "qform", "sform is singular"),
    ],
)
def test_affine_source_and_its_warning(tmp_path, fields, source, warning):
    nf = _file(tmp_path, **fields)
    assert nf.affine_source == source
    assert any(warning in w for w in nf.warnings) if warning else not nf.warnings
    if source == "pixdim":
        np.testing.assert_array_equal(nf.affine, np.diag([2.0, 2.0, 2.0, 1.0]))


# ------------------------------------------------------------------------------------------
# read/validate: header fields


def _quaternion(deg: float, axis: tuple[float, float, float]) -> tuple[float, float, float]:
    half = math.radians(deg) / 2
    n = np.asarray(axis, dtype=np.float64) / np.linalg.norm(axis)
    return tuple(float(v) for v in math.sin(half) * n)  # type: ignore[return-value]


@pytest.mark.parametrize(
    "bcd",
    [
        (0.0, 0.0, 0.0),
        (0.0, 0.0, 1.0),
        (1.0, 0.0, 0.0),
        _quaternion(30, (1, 2, 3)),
        _quaternion(179, (0, 1, 0)),
        _quaternion(-45, (1, 0, 1)),
    ],
)
@pytest.mark.parametrize("qfac", [1.0, -1.0])
def test_qform_matches_nibabel_on_valid_headers(bcd, qfac):
    hdr = nib.Nifti1Header()
    hdr["quatern_b"], hdr["quatern_c"], hdr["quatern_d"] = bcd
    hdr["pixdim"][:4] = (qfac, 0.8, 1.3, 2.5)
    hdr["qoffset_x"], hdr["qoffset_y"], hdr["qoffset_z"] = (-10.0, 4.5, 7.0)
    warnings: list[str] = []
    ours = validate.qform_of(hdr, (0.8, 1.3, 2.5), warnings)
    np.testing.assert_allclose(ours, hdr.get_qform(), atol=1e-6)
    assert validate.affine_problem(ours) is None and not warnings


def test_out_of_range_quaternion_is_normalised_where_nibabel_refuses():
    hdr = nib.Nifti1Header()
    hdr["quatern_b"], hdr["quatern_c"], hdr["quatern_d"] = (0.9, 0.9, 0.9)
    with pytest.raises(ValueError):
        hdr.get_qform()
    warnings: list[str] = []
    m = validate.qform_of(hdr, (1.0, 1.0, 1.0), warnings)
    np.testing.assert_allclose(m[:3, :3] @ m[:3, :3].T, np.eye(3), atol=1e-12)  # a rotation
    assert "normalised" in warnings[0]
    hdr["quatern_c"] = math.nan
    assert validate.affine_problem(validate.qform_of(hdr, (1.0, 1.0, 1.0), [])) == (
        "has non-finite values"
    )


@pytest.mark.parametrize(
    ("affine", "problem"),
    [
        (np.diag([1.0, 2.0, 3.0, 1.0]), None),
        (np.diag([1.0, 0.0, 3.0, 1.0]), "singular"),
        (np.array([[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1.0]]), "not independent"),
        (np.diag([1.0, np.inf, 1.0, 1.0]), "non-finite"),
        (np.diag([1e-9, 1.0, 1.0, 1.0]), "implausible voxel sizes"),
        (np.diag([1.0, 1.0, 1e7, 1.0]), "implausible voxel sizes"),
    ],
)
def test_affine_problems(affine, problem):
    found = validate.affine_problem(affine)
    assert found is None if problem is None else problem in found


@pytest.mark.parametrize(
    ("pixdim", "sform", "sizes", "warned"),
    [
        ((1.0, 0.5, 0.7, 3.0), None, (0.5, 0.7, 3.0), False),
        ((1.0, 0.0, 1.0, 1.0), None, (1.0, 1.0, 1.0), True),  # 0 -> 1 mm
        ((1.0, -2.0, 1.0, 1.0), None, (2.0, 1.0, 1.0), True),  # negative -> its magnitude
        ((1.0, math.nan, 1.0, 1.0), np.diag([4.0, 1.0, 1.0, 1.0]), (4.0, 1.0, 1.0), True),
    ],
)
def test_voxel_sizes_are_repaired_and_say_so(pixdim, sform, sizes, warned):
    hdr = nib.Nifti1Header()
    hdr["pixdim"][:4] = pixdim
    warnings: list[str] = []
    assert validate.voxel_sizes(hdr, 3, sform, warnings) == pytest.approx(sizes)
    assert bool(warnings) == warned


def test_unusable_voxel_size_without_sform_is_an_error():
    hdr = nib.Nifti1Header()
    hdr["pixdim"][:4] = (1.0, math.inf, 1.0, 1.0)
    with pytest.raises(InputError, match=r"pixdim\[1\] is inf"):
        validate.voxel_sizes(hdr, 3, None, [])


@pytest.mark.parametrize(
    ("slope", "inter", "applied", "warned"),
    [
        (0.0, 5.0, (1.0, 0.0), False),  # slope 0: unscaled, by the standard
        (math.nan, 0.0, (1.0, 0.0), False),
        (2.0, 3.0, (2.0, 3.0), False),
        (2.0, math.inf, (2.0, 0.0), True),
    ],
)
def test_scaling(slope, inter, applied, warned):
    hdr = nib.Nifti1Header()
    hdr["scl_slope"], hdr["scl_inter"] = slope, inter
    warnings: list[str] = []
    assert validate.scaling(hdr, warnings) == applied
    assert bool(warnings) == warned


def test_infinite_slope_is_an_error():
    hdr = nib.Nifti1Header()
    hdr["scl_slope"] = math.inf
    with pytest.raises(InputError, match="scl_slope"):
        validate.scaling(hdr, [])


# ------------------------------------------------------------------------------------------
# read/source.array_source: another reader's volume


def _never_called(indices):
    raise AssertionError("the loader must not be called to describe a volume")


RAS_2MM = np.diag([2.0, 2.0, 3.0, 1.0])


@pytest.mark.parametrize(
    "affine",
    [np.diag([1.0, 1.0, 0.0, 1.0]), np.full((4, 4), np.nan), np.eye(3)],
    ids=["singular", "nan", "3x3"],
)
def test_array_source_refuses_an_unusable_affine(tmp_path, affine):
    with pytest.raises(InputError, match="no usable voxel-to-world affine"):
        array_source(
            tmp_path / "x.nrrd",
            fmt="nrrd",
            shape=(4, 5, 6),
            dtype=np.int16,
            affine=affine,
            loader=_never_called,
        )


@pytest.mark.parametrize(
    ("shape", "limits"),
    [
        ((64, 64, 64), Limits(max_voxels=1000)),
        ((8, 8, 9000), Limits()),
        ((8, 8, 8, 5000), Limits(max_voxels=4096)),
    ],
)
def test_array_source_checks_limits_before_the_loader_runs(tmp_path, shape, limits):
    with pytest.raises(ResourceLimitError):
        array_source(
            tmp_path / "x.mha",
            fmt="metaimage",
            shape=shape,
            dtype=np.float32,
            affine=RAS_2MM,
            loader=_never_called,
            limits=limits,
        )


def test_array_source_describes_the_volume_as_a_nifti_header_would(tmp_path):
    lps = np.array([[-0.7, 0, 0, 50.0], [0, -0.7, 0, 60.0], [0, 0, 2.5, -30.0], [0, 0, 0, 1]])
    affine = np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps
    nf = array_source(
        tmp_path / "x.dcm",
        fmt="dicom",
        shape=(6, 5, 4, 3),
        dtype=">i2",
        affine=affine,
        loader=_never_called,
        slope=0.5,
        inter=-1024.0,
        time_step=2.0,
    )
    assert (nf.spatial_shape, nf.n_volumes) == ((6, 5, 4), 3)
    assert nf.dtype == np.dtype("int16") and nf.dtype.isnative
    assert nf.zooms == pytest.approx((0.7, 0.7, 2.5))
    assert nf.is_scaled and (nf.slope, nf.inter) == (0.5, -1024.0)
    np.testing.assert_allclose(nf.header.get_sform(), affine, atol=1e-5)
    np.testing.assert_allclose(nf.header.get_qform(), affine, atol=1e-5)
    assert nf.header.get_zooms() == pytest.approx((0.7, 0.7, 2.5, 2.0))
    assert nib.aff2axcodes(nf.affine) == ("R", "A", "S")


def test_array_source_volumes_come_from_its_loader(tmp_path):
    data = gradient((4, 5, 6, 3)).astype(np.float32)
    calls: list[list[int]] = []

    def loader(indices):
        calls.append(list(indices))
        for t in indices:
            yield t, data[..., t]

    nf = array_source(
        tmp_path / "x.nrrd",
        fmt="nrrd",
        shape=data.shape,
        dtype=data.dtype,
        affine=RAS_2MM,
        loader=loader,
    )
    pieces: list[np.ndarray] = []
    got = list(iter_volumes(nf, [2, 0], None, pieces.append))
    assert calls == [[0, 2]]  # asked once, in file order
    assert [t for t, _ in got] == [0, 2]
    np.testing.assert_array_equal(got[1][1], data[..., 2])
    assert len(pieces) == 2 and not any(p.flags.writeable for p in pieces)


# ------------------------------------------------------------------------------------------
# read/dispatch.open_source


def test_open_source_asks_each_reader_in_turn_then_nifti(tmp_path, monkeypatch):
    seen: list[tuple[str, Limits]] = []

    def opener(path, limits):
        seen.append((path.name, limits))
        return array_source(
            path, fmt="toy", shape=(2, 2, 2), dtype=np.uint8, affine=np.eye(4), loader=_never_called
        )

    readers = [
        ("never", lambda p: False, _never_called),
        ("toy", lambda p: p.suffix == ".toy", opener),
    ]
    monkeypatch.setattr(dispatch, "READERS", readers)
    limits = Limits(max_voxels=123)
    assert dispatch.open_source(tmp_path / "a.toy", limits).format == "toy"
    assert seen == [("a.toy", limits)]
    arr = gradient()
    (tmp_path / "b.nii").write_bytes(nifti_file(header_for(arr), arr))
    nf = dispatch.open_source(tmp_path / "b.nii")
    assert nf.format == "nifti" and nf.spatial_shape == arr.shape


@pytest.mark.parametrize(
    ("fmt", "module"),
    [("NRRD", "nrrd"), ("MetaImage", "metaimage"), ("nibabel", "nibabel_formats")],
)
def test_dispatch_suffixes_are_the_readers_own(fmt, module):
    import importlib

    reader = importlib.import_module(f"niftislice.read.{module}")
    matches = {name: m for name, m, _ in dispatch.READERS}[fmt]
    for suffix in reader.SUFFIXES:
        assert matches(Path(f"scan{suffix.upper()}")) and matches(Path(f"scan{suffix}"))
    assert not matches(Path("scan.nii.gz"))


@pytest.mark.parametrize("content", [b"hi\n", b"x" * 2000])
def test_a_file_of_no_known_format_says_what_niftislice_reads(tmp_path, content):
    path = tmp_path / "notes.txt"
    path.write_bytes(content)
    with pytest.raises(InputError, match=r"not a volume niftislice reads \(NIfTI, DICOM, NRRD"):
        dispatch.open_source(path)
    nii = tmp_path / "broken.nii"  # a NIfTI name keeps NIfTI's own complaint
    nii.write_bytes(content)
    with pytest.raises(InputError, match=r"^(truncated header|not a NIfTI file)"):
        dispatch.open_source(nii)
