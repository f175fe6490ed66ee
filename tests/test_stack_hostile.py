"""``stack`` on sidecars and images that are wrong or hostile: one line on stderr, exit status 1,
nothing read outside the folder, nothing decoded or allocated beyond what the sidecar declares."""

from __future__ import annotations

import json
import shutil
import struct
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import nibabel as nib
import numpy as np
import pytest
from _stack_helpers import export, small_template, stored
from conftest import NIBABEL_DATA

from niftislice.cli import main

Edit = Callable[[dict[str, Any]], None]

# numpy's overflow warnings are lines on a user's stderr too: here they fail the test
pytestmark = pytest.mark.filterwarnings("error::RuntimeWarning")


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> tuple[Path, Path]:
    """The MNI152 head at 4 mm (38 x 48 x 40 uint8), axial images only: (source, folder)."""
    tmp = tmp_path_factory.mktemp("hostile")
    head = small_template().slicer[::2, ::2, ::2]
    src = tmp / "head.nii.gz"
    nib.save(nib.Nifti1Image(np.asanyarray(head.dataobj), head.affine), src)
    return src, export(src, tmp / "out", lossless=True, spacing="native", views="axial")


@pytest.fixture
def folder(exported, tmp_path) -> Path:
    """A fresh copy of the export, inside ``tmp_path/export``."""
    return Path(shutil.copytree(exported[1], tmp_path / "export" / exported[1].name))


def _edit(folder: Path, change: Edit) -> None:
    path = folder / f"{folder.name}.json"
    data = json.loads(path.read_text())
    change(data)
    deep = "[" * 100_000 + "0" + "]" * 100_000  # json.dumps itself cannot nest this deep
    path.write_text(json.dumps(data).replace(json.dumps(_DEEP), deep))


def _stack(folder: Path, capsys, *extra: str) -> tuple[int, str, Path]:
    out = folder.parent / "back.nii.gz"
    rc = main(["stack", str(folder), "-o", str(out), *extra])
    return rc, capsys.readouterr().err, out


def _refused(rc: int, err: str, out: Path) -> None:
    """The user sees one line, no internal error, and no output file."""
    assert rc == 1, err
    assert len(err.strip().splitlines()) == 1, err
    assert "internal error" not in err and "Traceback" not in err
    assert not out.exists()


def _png_header(width: int, height: int) -> bytes:
    """A PNG whose header declares ``width`` x ``height`` 8-bit grey pixels; its data is one row."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * (width + 1))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def _first_slice(data: dict[str, Any]) -> dict[str, Any]:
    return data["views"]["axial"]["slices"][0]  # type: ignore[no-any-return]


# ---------------------------------------------------------------------------------------------
# nothing outside the folder is read


def _outside_image(folder: Path) -> Path:
    """A valid image of the right size next to the export, that must never be stacked."""
    first = sorted((folder / "axial").glob("*.png"))[0]
    img = cv2.imread(str(first), cv2.IMREAD_UNCHANGED)
    secret = folder.parent.parent / "secret.png"
    cv2.imwrite(str(secret), np.full_like(img, 77))
    return secret


@pytest.mark.parametrize("kind", ["relative", "absolute", "nested"])
def test_file_entries_that_leave_the_folder_are_refused(kind, folder, capsys):
    secret = _outside_image(folder)
    name = {
        "relative": "../../../secret.png",  # from export/head/axial/ up to tmp_path
        "absolute": str(secret),
        "nested": "sub/../../../../secret.png",
    }[kind]
    _edit(folder, lambda d: _first_slice(d).update(file=name))
    rc, err, out = _stack(folder, capsys)
    _refused(rc, err, out)
    assert "secret.png" in err or "file" in err


def test_view_folder_that_leaves_the_export_is_refused(folder, capsys):
    elsewhere = folder.parent.parent / "elsewhere"
    shutil.copytree(folder / "axial", elsewhere)
    _edit(folder, lambda d: d["views"]["axial"].update(folder="../../elsewhere"))
    shutil.rmtree(folder / "axial")
    rc, err, out = _stack(folder, capsys)
    _refused(rc, err, out)
    assert "folder" in err


def test_image_linked_from_outside_the_folder_is_refused(folder, capsys):
    secret = _outside_image(folder)
    victim = sorted((folder / "axial").glob("*.png"))[4]
    victim.unlink()
    victim.symlink_to(secret)
    rc, err, out = _stack(folder, capsys)
    _refused(rc, err, out)
    assert victim.name in err and "outside" in err


def test_links_inside_the_folder_are_followed(exported, folder, capsys):
    """A link that stays inside the folder is an ordinary image (a copied or renamed export)."""
    images = sorted((folder / "axial").glob("*.png"))
    spare = folder / "spare.png"
    shutil.copyfile(images[4], spare)
    images[4].unlink()
    images[4].symlink_to(Path("..") / spare.name)
    rc, err, out = _stack(folder, capsys)
    assert rc == 0, err
    np.testing.assert_array_equal(stored(out), stored(exported[0]))


# ---------------------------------------------------------------------------------------------
# declared sizes are checked before anything is allocated or decoded


def test_a_billion_slices_is_refused_at_once(folder, capsys):
    _edit(folder, lambda d: d["views"]["axial"].update(n_slices_in_volume=1e9))
    start = time.perf_counter()
    rc, err, out = _stack(folder, capsys)
    assert time.perf_counter() - start < 5
    _refused(rc, err, out)
    assert "n_slices_in_volume" in err


@pytest.mark.parametrize("side", [30000, 100000])
def test_image_declaring_a_huge_size_is_refused_before_decoding(side, folder, capsys):
    victim = sorted((folder / "axial").glob("*.png"))[7]
    victim.write_bytes(_png_header(side, side))
    start = time.perf_counter()
    rc, err, out = _stack(folder, capsys)
    assert time.perf_counter() - start < 5
    _refused(rc, err, out)
    assert f"{side} x {side}" in err and victim.name in err


def test_image_file_far_larger_than_its_pixels_is_not_read(folder, capsys):
    victim = sorted((folder / "axial").glob("*.png"))[7]
    with open(victim, "r+b") as f:  # sparse: costs no disk
        f.truncate(256 << 20)
    rc, err, out = _stack(folder, capsys)
    _refused(rc, err, out)
    assert victim.name in err and "MiB" in err


def test_huge_source_shape_is_refused_before_allocating(folder, capsys):
    _edit(folder, lambda d: d["source"].update(shape=[40000, 40000, 40]))
    rc, err, out = _stack(folder, capsys)
    _refused(rc, err, out)
    assert "voxels" in err


def test_max_voxels_bounds_the_stacked_series(tmp_path, capsys):
    """nibabel's example4d.nii.gz: 128 x 96 x 24 x 2 = 589,824 voxels stacked at once."""
    folder = export(NIBABEL_DATA / "example4d.nii.gz", tmp_path / "out", views="axial")
    out = tmp_path / "back.nii.gz"
    rc = main(["stack", str(folder), "-o", str(out), "--max-voxels", "400000"])
    err = capsys.readouterr().err
    _refused(rc, err, out)
    assert "589,824 voxels" in err and "--volume" in err
    rc = main(["stack", str(folder), "-o", str(out), "--max-voxels", "400000", "--volume", "1"])
    assert rc == 0, capsys.readouterr().err
    assert nib.load(out).shape == (128, 96, 24)


# ---------------------------------------------------------------------------------------------
# malformed sidecars: one clear line each


def _set(section: str, key: str, value: Any) -> Edit:
    return lambda d: d[section].update({key: value})


def _set_view(key: str, value: Any) -> Edit:
    return lambda d: d["views"]["axial"].update({key: value})


def _set_slice(key: str, value: Any) -> Edit:
    return lambda d: _first_slice(d).update({key: value})


_DEEP = "<100000 nested lists>"


def _nest(d: dict[str, Any]) -> None:
    d["views"]["axial"]["slices"] = _DEEP


def _slices_as_dict(d: dict[str, Any]) -> None:
    view = d["views"]["axial"]
    view["slices"] = {str(e["index"]): e for e in view["slices"]}


def _scale(value: Any) -> Edit:
    return lambda d: d["intensity"]["pixel_to_data"].update(scale=value)


MALFORMED: dict[str, tuple[Edit, str]] = {
    "negative shape": (_set("source", "shape", [38, -48, 40]), "shape"),
    "zero shape": (_set("source", "shape", [38, 0, 40]), "shape"),
    "string shape": (_set("source", "shape", ["38", "x", 40]), "shape"),
    "shape not a list": (_set("source", "shape", "38x48x40"), "shape"),
    "fractional shape": (_set("source", "shape", [38.5, 48, 40]), "shape"),
    "nan affine": (_set("source", "affine", [[float("nan")] * 4] * 4), "affine"),
    "string affine": (_set("source", "affine", [["a", "b", "c", "d"]] * 4), "affine"),
    "3x3 affine": (_set("source", "affine", [[1, 0, 0], [0, 1, 0], [0, 0, 1]]), "affine"),
    "singular affine": (_set("source", "affine", [[0] * 4] * 4), "affine"),
    "bogus dtype": (_set("source", "dtype", "quaternion128"), "dtype"),
    "object dtype": (_set("source", "dtype", "object"), "dtype"),
    "string voxel sizes": (_set("source", "voxel_sizes", ["a", 1, 1]), "voxel_sizes"),
    "string qform code": (_set("source", "qform_code", "one"), "qform_code"),
    "nan sform": (_set("source", "sform", [[float("nan")] * 4] * 4), "sform"),
    "slices as a dict": (_slices_as_dict, "slices"),
    "deep nesting": (_nest, "nested too deeply"),
    "nan pixel_to_world": (
        _set_slice("pixel_to_world", [[float("nan")] * 4] * 4),
        "pixel_to_world",
    ),
    "string pixel_to_world": (_set_slice("pixel_to_world", "identity"), "pixel_to_world"),
    "string index": (_set_slice("index", "first"), "index"),
    "duplicate index": (lambda d: _first_slice(d).update(index=1), "index"),
    "index beyond the slices": (_set_slice("index", 4000), "index"),
    "file not a string": (_set_slice("file", 42), "file"),
    "negative image size": (_set_view("image_size", [-38, 48]), "image_size"),
    "string image size": (_set_view("image_size", "38x48"), "image_size"),
    "string slice count": (_set_view("n_slices_in_volume", "forty"), "n_slices_in_volume"),
    "zero slice count": (_set_view("n_slices_in_volume", 0), "n_slices_in_volume"),
    "views as a list": (lambda d: d.update(views=[d["views"]["axial"]]), "views"),
    "unknown view": (lambda d: d["views"].update(oblique=d["views"]["axial"]), "oblique"),
    "scale zero": (_scale(0), "scale"),
    "scale nan string": (_scale("NaN"), "scale"),
    "offset string": (lambda d: d["intensity"]["pixel_to_data"].update(offset="x"), "offset"),
    "intensity kind": (_set("intensity", "kind", "magic"), "kind"),
    "string volumes": (_set("output", "volumes", "all"), "volumes"),
    "bit depth": (_set("output", "bit_depth", "deep"), "bit_depth"),
    # header fields are float32 in a NIfTI file: beyond its range they cannot be written back
    "huge affine": (_set("source", "affine", np.diag([1e200, 1e200, 1e200, 1]).tolist()), "affine"),
    "huge sform": (_set("source", "sform", np.diag([1e300, 1e300, 1e300, 1]).tolist()), "sform"),
    "huge voxel size": (_set("source", "voxel_sizes", [1e308, 4, 4]), "voxel_sizes"),
    "huge time step": (_set("source", "time_step", 1e300), "time_step"),
    "huge qform field": (_set("source", "qform_unused", {"quatern_b": 1e300}), "qform_unused"),
    "tiny scl_slope": (_set("source", "scl_slope_applied", 1e-300), "scl_slope_applied"),
    "huge pixel_to_world": (
        _set_slice("pixel_to_world", np.diag([1e300, 1e300, 1e300, 1]).tolist()),
        "pixel_to_world",
    ),
    "scale overflowing": (_scale(1e308), "scale"),
    "4D shape, no volumes": (_set("source", "shape", [38, 48, 40, 1000000]), "volumes"),
    "rgb source, grey kind": (_set("source", "dtype", "rgb"), "kind"),
}


@pytest.mark.parametrize("case", MALFORMED, ids=list(MALFORMED))
def test_malformed_sidecar_is_one_clear_line(case, folder, capsys):
    change, word = MALFORMED[case]
    _edit(folder, change)
    rc, err, out = _stack(folder, capsys)
    _refused(rc, err, out)
    assert word in err, err


def test_sidecar_that_is_not_an_object_or_is_huge(folder, capsys):
    path = folder / f"{folder.name}.json"
    path.with_name("list.json").write_text("[1, 2, 3]")
    rc, err, out = _stack(folder, capsys, "--sidecar", str(path.with_name("list.json")))
    _refused(rc, err, out)
    assert "sidecar" in err
    with open(path, "r+b") as f:  # 300 MiB, sparse: costs no disk, and is never read
        f.truncate(300 << 20)
    rc, err, out = _stack(folder, capsys, "--sidecar", str(path))
    _refused(rc, err, out)
    assert "MiB" in err


def _no_python_warnings(err: str) -> None:
    assert "Warning" not in err and "internal error" not in err, err


@pytest.mark.parametrize(
    ("scale", "offset"), [(1e20, 0.0), (-1e30, 5.0), (1.0, 1e300)], ids=["1e20", "-1e30", "+1e300"]
)
def test_data_beyond_64_bit_integers_comes_back_as_float64(scale, offset, folder, capsys):
    """Today: internal error (numpy picks an object dtype). The values are what the sidecar says."""
    _edit(folder, _scale(scale))
    _edit(folder, lambda d: d["intensity"]["pixel_to_data"].update(offset=offset))
    rc, err, out = _stack(folder, capsys)
    assert rc == 0, err
    _no_python_warnings(err)
    assert "float64" in err and len(err.strip().splitlines()) == 2, err  # a warning, "wrote"
    data = np.asanyarray(nib.load(out).dataobj)
    assert data.dtype == np.float64
    pixel_out = folder.parent / "pixels.nii.gz"
    assert main(["stack", str(folder), "-o", str(pixel_out), "--values", "pixel"]) == 0
    pixels = np.asanyarray(nib.load(pixel_out).dataobj).astype(np.float64)
    np.testing.assert_allclose(data, offset + pixels * scale, rtol=1e-12)


def test_float_data_beyond_float32_comes_back_as_float64(folder, capsys):
    """Today: inf in a float32 volume and numpy's RuntimeWarning lines on stderr."""
    _edit(folder, lambda d: d["source"].update(dtype="float32"))
    _edit(folder, _scale(1e40))
    rc, err, out = _stack(folder, capsys)
    assert rc == 0, err
    _no_python_warnings(err)
    data = np.asanyarray(nib.load(out).dataobj)
    assert data.dtype == np.float64 and np.isfinite(data).all() and data.max() > 1e40


def test_stored_integers_that_do_not_fit_without_a_fill(folder, capsys):
    """Today: internal error (a None fill formatted into the warning)."""
    _edit(folder, lambda d: d["source"].update(scl_slope_applied=1e-30))
    rc, err, _ = _stack(folder, capsys)
    assert rc == 0, err
    _no_python_warnings(err)
    assert "float32" in err and "--fill" not in err, err
