"""``stack`` refuses geometry and scaling no volume can have, and stacks every real one.

A sidecar may be edited or damaged; before this check ``stack`` wrote NIfTI files from voxel sizes
of 0 or 1e30 mm, a singular sform, or an intensity scale of 1e-320 (a volume of zeros), which other
tools then choke on. Each bad value is one line naming the sidecar and the field, exit status 1
and no output file. Real data at the ends of what ``convert`` reads (voxels from 1e-6 to 1e6 mm:
electron microscopy, micro-CT at 1 um, whole-body at 10 mm) still comes back bit for bit.

Every export here is made by the CLI from a real volume (the MNI152 head, nibabel's 4D example).
"""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pytest
from _stack_helpers import small_template, stored
from conftest import NIBABEL_DATA

from niftislice.cli import main

Edit = Callable[[dict[str, Any]], None]

# numpy's overflow and underflow warnings are lines on a user's stderr too: here they fail a test
pytestmark = pytest.mark.filterwarnings("error::RuntimeWarning")


def _convert(src: Path, out: Path, *extra: str) -> Path:
    """``niftislice convert SRC -o OUT --lossless --spacing native``; returns the export folder."""
    rc = main(["convert", str(src), "-o", str(out), "--lossless", "--spacing", "native", *extra])
    assert rc == 0
    return out / src.name.split(".")[0]


def _head(tmp: Path, affine: np.ndarray | None = None) -> Path:
    """The MNI152 head at 4 mm (38 x 48 x 40 uint8), with its own affine or ``affine``."""
    head = small_template().slicer[::2, ::2, ::2]
    path = tmp / "head.nii.gz"
    nib.save(
        nib.Nifti1Image(np.asanyarray(head.dataobj), head.affine if affine is None else affine),
        path,
    )
    return path


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> tuple[Path, Path]:
    """(source, export folder): the head's axial images, lossless at native spacing."""
    tmp = tmp_path_factory.mktemp("record")
    src = _head(tmp)
    return src, _convert(src, tmp / "out", "--views", "axial")


@pytest.fixture(scope="module")
def exported_4d(tmp_path_factory) -> tuple[Path, Path]:
    """nibabel's example4d (128 x 96 x 24 x 2, TR 2 s), its time step set to 0 as many files
    have it (a 4th axis of echoes, directions or statistics, or a writer that left it unset)."""
    tmp = tmp_path_factory.mktemp("record4d")
    img = nib.load(NIBABEL_DATA / "example4d.nii.gz")
    img.header.set_zooms((*img.header.get_zooms()[:3], 0.0))
    src = tmp / "series.nii.gz"
    nib.save(img, src)
    return src, _convert(src, tmp / "out", "--views", "axial")


def _copy(folder: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(folder, tmp_path / "export" / folder.name))


def _edit(folder: Path, change: Edit) -> None:
    path = folder / f"{folder.name}.json"
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))  # NaN and Infinity as Python's json writes them


def _stack(folder: Path, capsys) -> tuple[int, str, Path]:
    out = folder.parent / "back.nii.gz"
    rc = main(["stack", str(folder), "-o", str(out)])
    return rc, capsys.readouterr().err, out


def _refused(rc: int, err: str, out: Path, folder: Path, field: str) -> None:
    """One line naming the sidecar and the field, exit status 1, nothing written."""
    assert rc == 1, err
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("niftislice: error: ") and "Traceback" not in err, err
    assert "internal error" not in err, err
    assert f"sidecar {folder.name}.json: {field}" in err, err
    assert not out.exists() and not list(out.parent.glob("*.nii*")), err


def _source(key: str, value: Any) -> Edit:
    return lambda d: d["source"].update({key: value})


def _voxel(axis: int, size: float) -> Edit:
    return lambda d: d["source"]["voxel_sizes"].__setitem__(axis, size)


def _column(key: str, axis: int, factor: float) -> Edit:
    """Scale one voxel axis (column) of the source's ``key`` matrix."""

    def change(d: dict[str, Any]) -> None:
        m = np.array(d["source"][key])
        m[:3, axis] *= factor
        d["source"][key] = m.tolist()

    return change


# ---------------------------------------------------------------------------------------------
# voxel sizes


BAD_SIZES = [0.0, -4.0, math.nan, math.inf, -math.inf, 1e-30, 1e30, 9e-7, 1.1e6, 5e-324]


@pytest.mark.parametrize("size", BAD_SIZES, ids=[repr(s) for s in BAD_SIZES])
@pytest.mark.parametrize("axis", [0, 2])
def test_voxel_size_no_volume_can_have_is_refused(size, axis, exported, tmp_path, capsys):
    folder = _copy(exported[1], tmp_path)
    _edit(folder, _voxel(axis, size))
    rc, err, out = _stack(folder, capsys)
    _refused(rc, err, out, folder, f"source.voxel_sizes[{axis}]")
    assert f"{size:g}" in err and "1e-06 to 1e+06" in err, err


@pytest.mark.parametrize("sizes", [[1e-6, 4, 4], [4, 1e6, 4], [1e-6, 1e6, 1.0]])
def test_voxel_sizes_at_the_ends_of_the_range_stack(sizes, exported, tmp_path, capsys):
    """The range convert reads (1e-6 to 1e6 mm) is the range stack writes: its ends pass."""
    folder = _copy(exported[1], tmp_path)
    _edit(folder, _source("voxel_sizes", sizes))
    rc, err, out = _stack(folder, capsys)
    assert rc == 0, err
    assert nib.load(out).header.get_zooms() == pytest.approx(sizes, rel=1e-7)


def _spacing_in_itk(path: Path) -> tuple[float, ...]:
    """Another tool reads the stacked file: ITK, which refuses a singular affine ("ITK only
    supports orthonormal direction cosines"), as stack wrote from a voxel size of 0."""
    import SimpleITK as sitk

    return tuple(sitk.ReadImage(str(path)).GetSpacing())


def _affine(size: float, oblique: bool) -> np.ndarray:
    """Voxels of ``size`` x 1.25 ``size`` x 0.8 ``size`` mm, tilted 12 degrees about x or not."""
    a = np.diag([size, 1.25 * size, 0.8 * size, 1.0])
    a[:3, 3] = [-19 * size, -30 * size, -16 * size]
    if oblique:
        t = np.deg2rad(12)
        a[:3, :3] = (
            np.array([[1, 0, 0], [0, np.cos(t), -np.sin(t)], [0, np.sin(t), np.cos(t)]]) @ a[:3, :3]
        )
    return a


REAL_SIZES = {
    "electron microscopy, 4 nm": 4e-6,
    "nano-CT, 10 nm": 1e-5,
    "micro-CT, 1 um": 1e-3,
    "clinical, 1 mm": 1.0,
    "whole-body, 10 mm": 10.0,
    "coarse, 0.5 m": 500.0,
}


@pytest.mark.parametrize("oblique", [False, True], ids=["straight", "oblique"])
@pytest.mark.parametrize("size", REAL_SIZES.values(), ids=list(REAL_SIZES))
def test_real_volumes_from_nanometres_to_metres_come_back(size, oblique, tmp_path, capsys):
    """convert then stack, on the real head with its voxel size set to ``size`` (10 nm voxels
    were refused as "singular": the check was on the determinant, 1e-15 mm^3 there)."""
    affine = _affine(size, oblique)
    src = _head(tmp_path, affine)
    folder = _convert(src, tmp_path / "out", "--views", "coronal")
    rc, err, out = _stack(folder, capsys)
    assert rc == 0, err
    np.testing.assert_array_equal(stored(out), stored(src))
    back = nib.load(out)
    np.testing.assert_allclose(back.affine, nib.load(src).affine, rtol=0, atol=1e-6 * size)
    assert abs(np.linalg.det(back.affine[:3, :3])) == pytest.approx(size**3, rel=1e-5)
    assert _spacing_in_itk(out) == pytest.approx([size, 1.25 * size, 0.8 * size], rel=1e-6)


@pytest.mark.parametrize("size", [1e-6, 1e6], ids=["1 nm", "1 km"])
def test_the_ends_of_the_range_go_round_and_round(size, tmp_path, capsys):
    """Isotropic voxels at either end (float32(1e-6) is 9.99999997e-07, which counts as 1e-6):
    convert, stack, and convert what stack wrote."""
    affine = np.diag([size, size, size, 1.0])
    affine[:3, 3] = -20 * size
    src = _head(tmp_path, affine)
    rc, err, out = _stack(_convert(src, tmp_path / "out", "--views", "sagittal"), capsys)
    assert rc == 0, err
    np.testing.assert_array_equal(stored(out), stored(src))
    assert _spacing_in_itk(out) == pytest.approx([size] * 3, rel=1e-6)
    assert main(["convert", str(out), "-o", str(tmp_path / "again"), "--views", "axial"]) == 0
    assert "warning" not in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------
# affines: the grid, the header's qform/sform, each slice's pixel_to_world


SINGULAR: dict[str, tuple[Edit, str]] = {
    "zero column": (_column("affine", 1, 0.0), "singular"),
    "1e-30 column": (_column("affine", 0, 1e-30), "4e-30, 4, 4 mm; expected 1e-06 to 1e+06"),
    "1e30 column": (_column("affine", 2, 1e30), "4e+30 mm"),
    "dependent columns": (
        lambda d: d["source"].update(
            affine=[[4, 4, 0, 0], [0, 1e-9, 0, 0], [0, 0, 4, 0], [0, 0, 0, 1]]
        ),
        "singular",
    ),
}


@pytest.mark.parametrize("case", SINGULAR, ids=list(SINGULAR))
def test_source_affine_that_cannot_place_voxels_is_refused(case, exported, tmp_path, capsys):
    change, word = SINGULAR[case]
    folder = _copy(exported[1], tmp_path)
    _edit(folder, change)
    rc, err, out = _stack(folder, capsys)
    _refused(rc, err, out, folder, "source.affine")
    assert word in err, err


@pytest.mark.parametrize("factor", [0.0, 1e-30, 1e30], ids=["zero", "1e-30", "1e30"])
def test_pixel_to_world_that_cannot_place_pixels_is_refused(factor, exported, tmp_path, capsys):
    folder = _copy(exported[1], tmp_path)

    def change(d: dict[str, Any]) -> None:
        entry = d["views"]["axial"]["slices"][3]
        m = np.array(entry["pixel_to_world"])
        m[:3, 0] *= factor
        entry["pixel_to_world"] = m.tolist()

    _edit(folder, change)
    rc, err, out = _stack(folder, capsys)
    _refused(rc, err, out, folder, "views.axial.slices[3].pixel_to_world")


@pytest.mark.parametrize("factor", [0.0, 1e-30], ids=["zero", "1e-30"])
def test_unusable_sform_is_not_written_back(factor, exported, tmp_path, capsys):
    """convert's reader ignores an sform that cannot place the voxels (and says so); stack writes
    it with sform_code 0 (and says so) instead of a file whose affine is singular."""
    folder = _copy(exported[1], tmp_path)
    _edit(folder, _column("sform", 1, factor))
    rc, err, out = _stack(folder, capsys)
    assert rc == 0, err
    assert "warning" in err and "source.sform" in err and "sform_code 0" in err, err
    back = nib.load(out)
    assert int(back.header["sform_code"]) == 0
    assert abs(np.linalg.det(back.affine[:3, :3])) > 1  # 4 mm voxels: 64 mm^3
    np.testing.assert_array_equal(stored(out), stored(exported[0]))


# ---------------------------------------------------------------------------------------------
# scaling


BAD_SLOPES = [1e-320, -1e-320, 1e-40, 1e-300, math.nan, math.inf]


@pytest.mark.parametrize("slope", BAD_SLOPES, ids=[repr(s) for s in BAD_SLOPES])
def test_slope_that_cannot_be_undone_is_refused(slope, exported, tmp_path, capsys):
    folder = _copy(exported[1], tmp_path)
    _edit(folder, _source("scl_slope_applied", slope))
    rc, err, out = _stack(folder, capsys)
    _refused(rc, err, out, folder, "source.scl_slope_applied")


def test_slope_zero_means_no_scaling_as_in_nifti(exported, tmp_path, capsys):
    """NIfTI-1: "If the scl_slope field is nonzero, then each voxel value in the dataset should
    be scaled"; slope 0 means no scaling, and scl_inter is then ignored (nibabel: (None, None))."""
    folder = _copy(exported[1], tmp_path)
    _edit(folder, _source("scl_slope_applied", 0))
    _edit(folder, _source("scl_inter_applied", -1024))
    rc, err, out = _stack(folder, capsys)
    assert rc == 0, err
    back = nib.load(out)
    assert back.header.get_slope_inter() == (None, None)  # nibabel: unscaled
    np.testing.assert_array_equal(np.asanyarray(back.dataobj), stored(exported[0]))


def test_smallest_normal_float32_slope_stacks(exported, tmp_path, capsys):
    folder = _copy(exported[1], tmp_path)
    tiny = float(np.finfo(np.float32).tiny)
    _edit(folder, _source("scl_slope_applied", tiny))
    rc, err, out = _stack(folder, capsys)
    assert rc == 0, err
    data = np.asanyarray(nib.load(out).dataobj)
    assert np.isfinite(data).all() and data.max() > 0


BAD_SCALES = [0.0, 1e-320, -5e-324, 2e-308, math.nan, math.inf, -math.inf]


@pytest.mark.parametrize("scale", BAD_SCALES, ids=[repr(s) for s in BAD_SCALES])
def test_intensity_scale_that_cannot_map_pixels_back_is_refused(scale, exported, tmp_path, capsys):
    """1e-320 used to give a volume of zeros, exit status 0."""
    folder = _copy(exported[1], tmp_path)
    _edit(folder, lambda d: d["intensity"]["pixel_to_data"].update(scale=scale))
    rc, err, out = _stack(folder, capsys)
    _refused(rc, err, out, folder, "intensity.pixel_to_data.scale")


# ---------------------------------------------------------------------------------------------
# the time step


@pytest.mark.parametrize("step", [-2.0, math.nan, math.inf], ids=["negative", "nan", "inf"])
def test_time_step_no_series_can_have_is_refused(step, exported_4d, tmp_path, capsys):
    folder = _copy(exported_4d[1], tmp_path)
    _edit(folder, _source("time_step", step))
    rc, err, out = _stack(folder, capsys)
    _refused(rc, err, out, folder, "source.time_step")


def test_time_step_zero_comes_back_zero(exported_4d, tmp_path, capsys):
    """pixdim[4] = 0 is common and valid (NIfTI reads pixdim[4] as a time step only when the
    4th axis is time); it used to come back as 1 s."""
    source, export = exported_4d
    folder = _copy(export, tmp_path)
    assert json.loads((folder / f"{folder.name}.json").read_text())["source"]["time_step"] == 0
    rc, err, out = _stack(folder, capsys)
    assert rc == 0, err
    back, src = nib.load(out), nib.load(source)
    assert back.header.get_zooms() == src.header.get_zooms()
    assert back.header.get_zooms()[3] == 0
    np.testing.assert_array_equal(stored(out), stored(source))
