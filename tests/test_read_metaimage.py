"""MetaImage: our parser reads exactly what SimpleITK reads (voxels and geometry), for files
SimpleITK writes and for hand-written headers with the fields it rarely writes."""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
import pytest
from _formats_helpers import sitk_geometry, write_sitk
from conftest import reorient_to

from niftislice.errors import InputError, ResourceLimitError
from niftislice.read.metaimage import read_metaimage
from niftislice.read.nifti import Limits

sitk = pytest.importorskip("SimpleITK")


@pytest.fixture(scope="module")
def head(small_head: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The 3 mm template with anisotropic voxels (3 x 2.4 x 4.5 mm)."""
    data, aff = small_head
    return data, aff @ np.diag([1.0, 0.8, 1.5, 1.0])


def _same_as_sitk(path: Path) -> np.ndarray:
    img = read_metaimage(path)
    ref, ref_affine = sitk_geometry(path)
    loaded = img.load()
    assert loaded.shape == img.shape == ref.shape
    assert loaded.dtype == ref.dtype
    assert np.array_equal(loaded, ref)
    np.testing.assert_allclose(img.affine, ref_affine, atol=1e-9)
    return loaded


@pytest.mark.parametrize("suffix", [".mha", ".mhd"])
@pytest.mark.parametrize("compress", [False, True])
@pytest.mark.parametrize("axcodes", ["RAS", "LPS", "PIR", "ILA"])
def test_sitk_files_give_the_niftis_grid(
    tmp_path: Path, head: tuple[np.ndarray, np.ndarray], suffix: str, compress: bool, axcodes: str
) -> None:
    arr, aff = reorient_to(*head, axcodes)
    path = write_sitk(tmp_path / f"v{suffix}", arr, aff, compress)
    loaded = _same_as_sitk(path)
    assert np.array_equal(loaded, arr)
    np.testing.assert_allclose(read_metaimage(path).affine, aff, atol=1e-6)


def test_oblique_direction_is_column_major(
    tmp_path: Path, head: tuple[np.ndarray, np.ndarray]
) -> None:
    arr, aff = head
    c, s = np.cos(0.3), np.sin(0.3)
    tilt = np.array([[1, 0, 0, 0], [0, c, -s, 0], [0, s, c, 0], [0, 0, 0, 1.0]])
    path = write_sitk(tmp_path / "o.mha", arr, tilt @ aff)
    _same_as_sitk(path)
    np.testing.assert_allclose(read_metaimage(path).affine, tilt @ aff, atol=1e-6)


@pytest.mark.parametrize("dtype", ["i1", "u1", "i2", "u2", "i4", "u4", "i8", "u8", "f4", "f8"])
def test_element_types(tmp_path: Path, head: tuple[np.ndarray, np.ndarray], dtype: str) -> None:
    arr, aff = head
    _same_as_sitk(write_sitk(tmp_path / "v.mha", arr.astype(dtype), aff))


def _write(tmp_path: Path, header: str, data: bytes, name: str = "h.mha") -> Path:
    path = tmp_path / name
    path.write_bytes(header.strip().encode() + b"\n" + data)
    return path


_HEAD = (
    "ObjectType = Image\nNDims = 3\nBinaryData = True\nDimSize = 4 3 2\n"
    "TransformMatrix = 0 1 0 0 0 1 1 0 0\nOffset = 1 2 3\nElementSpacing = 0.5 2 3\n"
)


@pytest.mark.parametrize(
    ("fields", "dtype"),
    [
        ("ElementType = MET_LONG\nBinaryDataByteOrderMSB = False", "<i4"),
        ("ElementType = MET_ULONG\nElementByteOrderMSB = True", ">u4"),
        ("ElementType = MET_SHORT\nBinaryDataByteOrderMSB = True", ">i2"),
        ("ElementType = MET_FLOAT\nBinaryDataByteOrderMSB = True", ">f4"),
    ],
)
def test_byte_order_and_long_types_as_sitk(tmp_path: Path, fields: str, dtype: str) -> None:
    values = np.arange(24, dtype=dtype) * 3 - 7
    path = _write(tmp_path, _HEAD + fields + "\nElementDataFile = LOCAL", values.tobytes())
    _same_as_sitk(path)


@pytest.mark.parametrize("header_size", ["-1", "16"])
def test_detached_data_after_a_header_size(tmp_path: Path, header_size: str) -> None:
    values = np.arange(24, dtype="<u2")
    (tmp_path / "d.raw").write_bytes(b"x" * 16 + values.tobytes())
    text = _HEAD + f"ElementType = MET_USHORT\nHeaderSize = {header_size}\nElementDataFile = d.raw"
    loaded = _same_as_sitk(_write(tmp_path, text, b"", "h.mhd"))
    assert loaded[1, 0, 0] == 1


def test_synonyms_of_transform_and_offset(tmp_path: Path) -> None:
    text = _HEAD.replace("TransformMatrix", "Orientation").replace("Offset", "Position")
    path = _write(tmp_path, text + "ElementType = MET_UCHAR\nElementDataFile = LOCAL", bytes(24))
    _same_as_sitk(path)


def test_components_become_volumes(tmp_path: Path) -> None:
    vec = np.arange(72, dtype=np.uint16).reshape(2, 3, 4, 3)  # (z, y, x, c) as SimpleITK wants
    sitk.WriteImage(sitk.GetImageFromArray(vec, isVector=True), str(tmp_path / "c.mha"))
    img = read_metaimage(tmp_path / "c.mha")
    assert img.shape == (4, 3, 2, 3) and img.n_volumes == 3 and img.rgb_channels == 0
    ref, _ = sitk_geometry(tmp_path / "c.mha")  # (x, y, z, c)
    assert np.array_equal(img.load(), ref)
    assert "3 components" in img.warnings[0]


@pytest.mark.parametrize("channels", [3, 4])
def test_unsigned_char_channels_are_colour(tmp_path: Path, channels: int) -> None:
    rgb = np.arange(24 * channels, dtype=np.uint8).reshape(2, 3, 4, channels)
    sitk.WriteImage(sitk.GetImageFromArray(rgb, isVector=True), str(tmp_path / "c.mha"))
    img = read_metaimage(tmp_path / "c.mha")
    assert img.shape == (4, 3, 2) and img.rgb_channels == channels and img.warnings == ()
    ref, _ = sitk_geometry(tmp_path / "c.mha")
    ((t, colour),) = img.volumes()
    assert t == 0 and colour.shape == (4, 3, 2, channels) and np.array_equal(colour, ref)


def test_four_dimensions(tmp_path: Path, head: tuple[np.ndarray, np.ndarray]) -> None:
    arr = head[0]
    series = sitk.JoinSeries(
        [sitk.GetImageFromArray(np.ascontiguousarray(v.T)) for v in (arr, arr + 5)]
    )
    sitk.WriteImage(series, str(tmp_path / "t.mha"))
    img = read_metaimage(tmp_path / "t.mha")
    assert img.shape == (*arr.shape, 2)
    assert np.array_equal(dict(img.volumes([1]))[1], arr + 5)


def test_two_dimensions(tmp_path: Path) -> None:
    plane = np.arange(12, dtype=np.int16).reshape(3, 4)
    img2 = sitk.GetImageFromArray(plane)
    img2.SetSpacing([0.7, 0.9])
    sitk.WriteImage(img2, str(tmp_path / "p.mha"))
    img = read_metaimage(tmp_path / "p.mha")
    assert img.shape == (4, 3, 1)
    np.testing.assert_allclose(img.affine, np.diag([-0.7, -0.9, 1.0, 1.0]))


_OK = _HEAD + "ElementType = MET_SHORT\n"


@pytest.mark.parametrize(
    ("text", "data", "message"),
    [
        (_OK + "ElementDataFile = LOCAL", bytes(40), "truncated MetaImage data"),
        (_OK + "ElementDataFile = gone.raw", b"", "gone.raw does not exist"),
        (_OK + "ElementDataFile = LIST", b"", "several files"),
        (
            _OK.replace("MET_SHORT", "MET_SHORT_ARRAY") + "ElementDataFile = LOCAL",
            bytes(48),
            "ElementType",
        ),
        (
            _OK.replace("BinaryData = True", "BinaryData = False") + "ElementDataFile = LOCAL",
            b"1 2",
            "ASCII",
        ),
        (_OK.replace("NDims = 3", "NDims = 5") + "ElementDataFile = LOCAL", bytes(48), "NDims = 5"),
        (_OK.replace("0.5 2 3", "0.5 2") + "ElementDataFile = LOCAL", bytes(48), "ElementSpacing"),
        (
            _OK.replace("0 1 0 0 0 1 1 0 0", "1 0 0 1 0 0 0 0 1") + "ElementDataFile = LOCAL",
            bytes(48),
            "singular",
        ),
        (_OK, b"", "no ElementDataFile"),
        (_OK + "CompressedData = True\nElementDataFile = LOCAL", b"not zlib", "corrupt compressed"),
        (
            _OK + "CompressedData = True\nElementDataFile = LOCAL",
            zlib.compress(bytes(48))[:-6],
            "ends early|truncated",
        ),
    ],
)
def test_bad_files_are_one_line(tmp_path: Path, text: str, data: bytes, message: str) -> None:
    with pytest.raises(InputError, match=message) as e:
        read_metaimage(_write(tmp_path, text, data)).load()
    assert "\n" not in str(e.value)


def test_not_a_metaimage(tmp_path: Path) -> None:
    (tmp_path / "x.mha").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))
    with pytest.raises(InputError, match="not a MetaImage header"):
        read_metaimage(tmp_path / "x.mha")


def test_declared_size_is_checked_before_reading(tmp_path: Path) -> None:
    text = _OK.replace("4 3 2", "5000 5000 5000") + "ElementDataFile = LOCAL"
    with pytest.raises(ResourceLimitError, match="over the limit"):
        read_metaimage(_write(tmp_path, text, bytes(10)))
    with pytest.raises(ResourceLimitError, match="slices"):
        read_metaimage(
            _write(tmp_path, _OK + "ElementDataFile = LOCAL", bytes(48)), Limits(max_slices=3)
        )
