"""NRRD/NHDR: the template written by pynrrd reads back as the same anatomy on the same RAS grid."""

from __future__ import annotations

import gzip
from pathlib import Path

import nrrd
import numpy as np
import pytest
from _formats_helpers import write_nrrd
from conftest import reorient_to

from niftislice.errors import InputError, ResourceLimitError
from niftislice.read.nifti import Limits
from niftislice.read.nrrd import read_nrrd


@pytest.fixture(scope="module")
def head(small_head: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The 3 mm template with anisotropic voxels (3 x 2.4 x 4.5 mm)."""
    data, aff = small_head
    return data, aff @ np.diag([1.0, 0.8, 1.5, 1.0])


@pytest.mark.parametrize("space", ["left-posterior-superior", "LPS", "RAS", "RAST"])
@pytest.mark.parametrize("axcodes", ["RAS", "LPS", "PIR", "ASL"])
def test_any_space_and_storage_gives_the_niftis_grid(
    tmp_path: Path, head: tuple[np.ndarray, np.ndarray], space: str, axcodes: str
) -> None:
    arr, aff = reorient_to(*head, axcodes)
    img = read_nrrd(write_nrrd(tmp_path / "v.nrrd", arr, aff, space=space))
    assert img.shape == arr.shape
    np.testing.assert_allclose(img.affine, aff, atol=1e-9)
    assert np.array_equal(img.load(), arr)
    assert img.warnings == ()
    assert img.format == "NRRD"


@pytest.mark.parametrize("encoding", ["raw", "gzip"])
@pytest.mark.parametrize("endian", ["little", "big"])
def test_detached_header_and_encodings(
    tmp_path: Path, head: tuple[np.ndarray, np.ndarray], encoding: str, endian: str
) -> None:
    arr, aff = head
    path = write_nrrd(tmp_path / "v.nhdr", arr, aff, encoding=encoding, endian=endian)
    img = read_nrrd(path)
    assert img.facts["data_file"] == ("v.raw" if encoding == "raw" else "v.raw.gz")
    assert img.facts["encoding"] == encoding
    assert np.array_equal(img.load(), arr)
    assert img.dtype == np.dtype(np.int16)  # native, whatever the file's byte order


@pytest.mark.parametrize("encoding", ["ascii", "bzip2"])
@pytest.mark.parametrize("name", ["v.nrrd", "v.nhdr"])
def test_ascii_and_bzip2_through_pynrrd(tmp_path: Path, encoding: str, name: str) -> None:
    data = (np.arange(60).reshape(3, 4, 5) * 3 - 20).astype(np.int16)
    img = read_nrrd(write_nrrd(tmp_path / name, data, np.diag([2.0, 3, 4, 1]), encoding=encoding))
    assert img.facts["encoding"] == encoding
    loaded = img.load()
    assert loaded.dtype == np.int16 and np.array_equal(loaded, data)


@pytest.mark.parametrize("dtype", ["i1", "u1", "u2", "i4", "u4", "i8", "f4", "f8"])
def test_scalar_types(tmp_path: Path, head: tuple[np.ndarray, np.ndarray], dtype: str) -> None:
    arr, aff = head
    data = arr.astype(dtype)
    img = read_nrrd(write_nrrd(tmp_path / "v.nrrd", data, aff, encoding="raw"))
    loaded = img.load()
    assert loaded.dtype == np.dtype(dtype) and img.dtype == loaded.dtype
    assert np.array_equal(loaded, data)


def test_list_axis_first_becomes_the_volume_axis(
    tmp_path: Path, head: tuple[np.ndarray, np.ndarray]
) -> None:
    """Slicer's vector volumes and DWI put the non-spatial axis first: it becomes t."""
    arr, aff = head
    series = np.stack([arr, arr + 1, arr * 2], axis=0)  # (3, x, y, z) in file order
    world = np.diag([-1.0, -1.0, 1.0, 1.0]) @ aff
    directions = np.vstack([np.full(3, np.nan), world[:3, :3].T])
    header = {
        "space": "LPS",
        "space directions": directions,
        "space origin": world[:3, 3],
        "kinds": ["vector", "domain", "domain", "domain"],
    }
    nrrd.write(str(tmp_path / "v.nrrd"), series, header, index_order="F")
    img = read_nrrd(tmp_path / "v.nrrd")
    assert img.shape == (*arr.shape, 3) and img.n_volumes == 3
    np.testing.assert_allclose(img.affine, aff, atol=1e-9)
    got = dict(img.volumes())
    assert np.array_equal(got[0], arr) and np.array_equal(got[2], arr * 2)
    assert got[1].flags.f_contiguous


def test_list_axis_last(tmp_path: Path, head: tuple[np.ndarray, np.ndarray]) -> None:
    arr, aff = head
    series = np.stack([arr, arr + 1], axis=-1)
    img = read_nrrd(write_nrrd(tmp_path / "v.nhdr", series, aff))
    assert img.shape == series.shape
    assert np.array_equal(dict(img.volumes([1]))[1], arr + 1)


def test_single_slice_gets_a_slice_axis(
    tmp_path: Path, head: tuple[np.ndarray, np.ndarray]
) -> None:
    arr, aff = head
    plane = arr[:, :, 20]
    header = {
        "space": "RAS",
        "space directions": aff[:3, :2].T,
        "space origin": aff[:3, 3],
    }
    nrrd.write(str(tmp_path / "s.nrrd"), plane, header, index_order="F")
    img = read_nrrd(tmp_path / "s.nrrd")
    assert img.shape == (*plane.shape, 1)
    np.testing.assert_allclose(img.affine[:3, :2], aff[:3, :2])
    np.testing.assert_allclose(img.affine[:3, 2], [0, 0, 1])  # 1 mm along the normal
    assert np.array_equal(img.load()[:, :, 0], plane)


@pytest.mark.parametrize("space", [None, "scanner-xyz", "3D-right-handed"])
def test_no_patient_space_warns_and_uses_the_spacings(
    tmp_path: Path, head: tuple[np.ndarray, np.ndarray], space: str | None
) -> None:
    arr, _ = head
    header: dict[str, object] = {"spacings": [3.0, 2.4, 4.5]}
    if space:
        header = {"space": space, "space directions": np.diag([3.0, 2.4, 4.5])}
    nrrd.write(str(tmp_path / "v.nrrd"), arr, header, index_order="F")
    img = read_nrrd(tmp_path / "v.nrrd")
    np.testing.assert_allclose(img.affine, np.diag([3.0, 2.4, 4.5, 1.0]))
    assert len(img.warnings) == 1 and "no patient space" in img.warnings[0]
    assert img.affine_source == "spacings"


def _header(tmp_path: Path, text: str, data: bytes = b"") -> Path:
    path = tmp_path / "bad.nrrd"
    path.write_bytes(b"NRRD0004\n" + text.strip().encode() + b"\n\n" + data)
    return path


_GOOD = "type: short\ndimension: 3\nsizes: 4 4 4\nendian: little\nencoding: raw\nspace: LPS\n"
_DIRS = "space directions: (1,0,0) (0,1,0) (0,0,1)\n"


@pytest.mark.parametrize(
    ("text", "data", "message"),
    [
        (_GOOD + _DIRS, b"\0" * 100, "truncated NRRD data"),
        (_GOOD.replace("LPS", "left-handed-nowhere") + _DIRS, b"\0" * 128, "not one niftislice"),
        (_GOOD.replace("short", "block") + _DIRS, b"\0" * 128, "not a scalar type"),
        (_GOOD.replace("endian: little\n", "") + _DIRS, b"\0" * 128, "needs 'endian"),
        (_GOOD + _DIRS + 'space units: "m" "m" "m"', b"\0" * 128, "not millimetres"),
        (_GOOD + _DIRS + "data file: LIST\n", b"", "several files"),
        (_GOOD + _DIRS.replace("(0,0,1)", "(0,1,0)"), b"\0" * 128, "singular"),
        (_GOOD.replace("4 4 4", "4 4") + _DIRS, b"\0" * 128, "dimension 3 but 2 sizes"),
        (_GOOD + "space directions: (1,0,0) none none\n", b"\0" * 128, "1 spatial axes"),
        (_GOOD + _DIRS + "data file: missing.raw\n", b"", "missing.raw does not exist"),
    ],
)
def test_bad_headers_are_one_line(tmp_path: Path, text: str, data: bytes, message: str) -> None:
    with pytest.raises(InputError, match=message) as e:
        read_nrrd(_header(tmp_path, text, data)).load()
    assert "\n" not in str(e.value)


def test_not_an_nrrd(tmp_path: Path) -> None:
    (tmp_path / "x.nrrd").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 64)
    with pytest.raises(InputError, match="NRRD magic"):
        read_nrrd(tmp_path / "x.nrrd")


def test_declared_size_is_checked_before_reading(tmp_path: Path) -> None:
    """A header declaring a huge volume is refused from its sizes, before any allocation."""
    text = _GOOD.replace("4 4 4", "5000 5000 5000") + _DIRS
    with pytest.raises(ResourceLimitError, match="over the limit"):
        read_nrrd(_header(tmp_path, text, b"\0" * 10))
    with pytest.raises(ResourceLimitError, match="slices"):
        read_nrrd(_header(tmp_path, _GOOD + _DIRS, b"\0" * 128), Limits(max_slices=3))


def test_damaged_gzip_is_refused(tmp_path: Path, head: tuple[np.ndarray, np.ndarray]) -> None:
    arr, aff = head
    path = write_nrrd(tmp_path / "v.nhdr", arr, aff)
    data = tmp_path / "v.raw.gz"
    raw = bytearray(data.read_bytes())
    raw[-6] ^= 0xFF  # the CRC
    data.write_bytes(bytes(raw))
    with pytest.raises(InputError, match="corrupt compressed data"):
        read_nrrd(path).load()
    data.write_bytes(bytes(raw[: len(raw) // 2]))
    with pytest.raises(InputError, match=r"truncated|ends early"):
        read_nrrd(path).load()


@pytest.mark.slow
def test_gzip_bomb_inflates_no_further_than_declared(tmp_path: Path) -> None:
    """Data longer than declared is not inflated into memory past the declared size."""
    bomb = gzip.compress(b"\0" * (64 << 20))
    path = _header(tmp_path, _GOOD.replace("raw", "gzip") + _DIRS, bomb)
    assert read_nrrd(path).load().shape == (4, 4, 4)
