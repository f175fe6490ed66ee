"""Round trip: images back into a NIfTI volume on the source grid (``niftislice stack``)."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import nibabel as nib
import numpy as np
import pytest
from _stack_helpers import (
    VIEWS,
    dice,
    export,
    label_map,
    max_affine_error,
    sidecar,
    small_template,
    stored,
)
from conftest import NIBABEL_DATA, reorient_to, save
from scipy import ndimage

import niftislice
from niftislice import StackOptions
from niftislice.cli import main


def run(capsys, *args: object) -> tuple[int, str, str]:
    rc = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.fixture(scope="module")
def small() -> nib.Nifti1Image:
    return small_template()


@pytest.fixture(scope="module")
def native_export(small, tmp_path_factory) -> tuple[Path, Path]:
    """The small template stored P-I-R, exported lossless at native spacing: (source, folder)."""
    tmp = tmp_path_factory.mktemp("native")
    arr, aff = reorient_to(np.asanyarray(small.dataobj), small.affine, "PIR")
    src = save(tmp / "head_PIR.nii.gz", arr, aff)
    return src, export(src, tmp / "out", lossless=True, spacing="native")


# ---------------------------------------------------------------------------------------------
# exact round trips


@pytest.mark.slow
@pytest.mark.parametrize("axcodes", ["RAS", "PIR", "LPS", "ASL", "ILA"])
def test_lossless_native_round_trip_is_exact_in_every_view(axcodes, small, tmp_path):
    arr, aff = reorient_to(np.asanyarray(small.dataobj), small.affine, axcodes)
    src = save(tmp_path / f"head_{axcodes}.nii.gz", arr, aff)
    folder = export(src, tmp_path / "out", lossless=True, spacing="native")
    assert sidecar(folder)["intensity"]["kind"] == "lossless"
    source = nib.load(src)
    for view in VIEWS:
        out = tmp_path / f"{view}.nii.gz"
        niftislice.stack(folder, out, StackOptions(view=view))
        back = nib.load(out)
        assert back.shape == source.shape and back.get_data_dtype() == source.get_data_dtype()
        np.testing.assert_array_equal(stored(out), stored(src), err_msg=f"{axcodes} {view}")
        assert max_affine_error(back, source) < 1e-6
        assert int(back.header["qform_code"]) == 1 and int(back.header["sform_code"]) == 1
        assert nib.aff2axcodes(back.affine) == tuple(axcodes)


def test_anatomical_big_endian_negative_values_round_trip_through_tiff(tmp_path):
    """nibabel's anatomical.nii: LAS, big-endian int16, values -610..30393 (offset recorded)."""
    src = NIBABEL_DATA / "anatomical.nii"
    folder = export(src, tmp_path / "out", lossless=True, spacing="native", format="tif")
    side = sidecar(folder)
    assert (
        side["intensity"]["kind"] == "lossless"
        and side["intensity"]["pixel_to_data"]["offset"] == -610
    )
    assert side["output"]["bit_depth"] == 16
    assert (
        cv2.imread(str(next((folder / "axial").glob("*.tif"))), cv2.IMREAD_UNCHANGED).dtype
        == np.uint16
    )
    source = nib.load(src)
    for view in VIEWS:
        out = tmp_path / f"{view}.nii"
        img = niftislice.stack(folder, out, StackOptions(view=view)).image
        assert isinstance(img, nib.Nifti1Image)
        back = nib.load(out)
        np.testing.assert_array_equal(stored(out), stored(src))
        assert back.get_data_dtype() == np.dtype(">i2")  # dtype and byte order kept
        assert max_affine_error(back, source) < 1e-6
        assert (int(back.header["qform_code"]), int(back.header["sform_code"])) == (2, 2)
        assert back.header.get_xyzt_units() == source.header.get_xyzt_units() == ("mm", "sec")


def test_oblique_and_scaled_integer_sources_round_trip_exactly(small, tmp_path):
    """An oblique affine (not resampled, so the grid comes back as stored) and int16 voxels with a
    fractional scl_slope/scl_inter (kept: the stored integers and the scaling come back)."""
    raw = np.asanyarray(small.dataobj)[::2, ::2, ::2].astype(np.int16) - 40
    c, s = np.cos(np.radians(15)), np.sin(np.radians(15))
    tilt = np.array([[1, 0, 0, 0], [0, c, -s, 0], [0, s, c, 0], [0, 0, 0, 1]])
    img = nib.Nifti1Image(raw, tilt @ np.diag([4.0, 4.0, 4.0, 1.0]))
    img.header.set_slope_inter(0.25, -3.5)
    img.set_qform(img.affine, code=1)
    img.set_sform(img.affine, code=4)
    src = tmp_path / "tilted_scaled.nii.gz"
    nib.save(img, src)
    folder = export(src, tmp_path / "out", lossless=True, spacing="native")
    assert sidecar(folder)["orientation"]["oblique"]
    for view in VIEWS:
        out = tmp_path / f"{view}.nii.gz"
        niftislice.stack(folder, out, StackOptions(view=view))
        back = nib.load(out)
        np.testing.assert_array_equal(stored(out), raw)
        assert (back.dataobj.slope, back.dataobj.inter) == (0.25, -3.5)
        assert max_affine_error(back, nib.load(src)) < 1e-6
        assert (int(back.header["qform_code"]), int(back.header["sform_code"])) == (1, 4)


def test_lossless_refuses_data_beyond_16_bits_naming_the_range(tmp_path, capsys):
    data = np.zeros((6, 7, 5), np.int32)
    data[0, 0, 0], data[-1, -1, -1] = -40000, 40000
    src = save(tmp_path / "wide.nii.gz", data, np.eye(4))
    rc, _, err = run(capsys, "convert", src, "-o", tmp_path / "out", "--lossless")
    assert rc == 1
    assert len(err.strip().splitlines()) == 2  # the error and the summary
    assert "-40000 to 40000" in err and "16 bits" in err
    assert not (tmp_path / "out" / "wide").exists()


def test_lossless_export_that_resamples_says_values_are_interpolated(tmp_path):
    data = (np.arange(8 * 9 * 6).reshape(8, 9, 6) % 50).astype(np.int16)
    src = save(tmp_path / "aniso.nii.gz", data, np.diag([1.0, 1.0, 2.5, 1.0]))
    res = niftislice.convert(src, tmp_path / "out", niftislice.ConvertOptions(lossless=True))
    (warning,) = [w for w in res.results[0].warnings if "lossless" in w]
    assert "coronal, sagittal" in warning and "--spacing native" in warning
    res = niftislice.convert(
        src, tmp_path / "native", niftislice.ConvertOptions(lossless=True, spacing="native")
    )
    assert not [w for w in res.results[0].warnings if "lossless" in w]


def test_values_pixel_keeps_the_images_values(native_export, tmp_path):
    src, folder = native_export
    img = niftislice.stack(folder, None, StackOptions(view="coronal", values="pixel")).image
    assert img.get_data_dtype() == np.uint16  # lossless images are 16-bit; offset 0 here
    np.testing.assert_array_equal(np.asanyarray(img.dataobj), stored(src))


def test_windowed_8bit_export_comes_back_within_one_step(small, tmp_path):
    src = save(tmp_path / "head.nii.gz", np.asanyarray(small.dataobj), small.affine)
    folder = export(src, tmp_path / "out")  # default: 8-bit, auto window, square pixels
    win = sidecar(folder)["intensity"]
    out = tmp_path / "back.nii.gz"
    rc = main(["stack", str(folder), "-o", str(out), "--view", "axial"])
    assert rc == 0
    back, ref = stored(out).astype(float), stored(src).astype(float)
    inside = (ref >= win["low"]) & (ref <= win["high"])
    assert np.abs(back - ref)[inside].max() <= win["pixel_to_data"]["scale"] / 2 + 0.5


# ---------------------------------------------------------------------------------------------
# label maps


@pytest.fixture(scope="module")
def labels() -> tuple[np.ndarray, np.ndarray]:
    return label_map()


@pytest.mark.slow
@pytest.mark.parametrize(("zooms", "axcodes"), [((2.0, 1.0, 3.0), "RAS"), ((2.0, 2.0, 2.6), "PIR")])
def test_resampled_label_map_comes_back_per_label(zooms, axcodes, labels, tmp_path):
    lab, aff = labels
    crop = lab[30:170, 30:200, 20:170]
    aniso = ndimage.zoom(crop, [1 / z for z in zooms], order=0)
    a = aff.copy()
    a[:3, :3] = np.diag(zooms)
    arr, a = reorient_to(aniso, a, axcodes)
    src = save(tmp_path / "labels.nii.gz", arr, a, intent_code=1002)
    folder = export(src, tmp_path / "out")  # label intent: nearest neighbour, square pixels
    side = sidecar(folder)
    assert side["output"]["label"] and side["output"]["interpolation"] == "nearest"
    assert any(v["image_size"] != v["geometry"]["native_size"] for v in side["views"].values())
    for view in VIEWS:
        back = np.asanyarray(
            niftislice.stack(folder, options=StackOptions(view=view)).image.dataobj
        )
        assert back.dtype == np.uint8
        for label in (1, 2):
            assert dice(back, arr, label) >= 0.99, (view, label)
    native = export(src, tmp_path / "native", spacing="native")
    for view in VIEWS:
        np.testing.assert_array_equal(
            np.asanyarray(niftislice.stack(native, options=StackOptions(view=view)).image.dataobj),
            arr,
        )


# ---------------------------------------------------------------------------------------------
# images edited outside the tool


def _blank_masks(folder: Path, view: str, dest: Path, ext: str = ".png") -> dict[int, Path]:
    """All-zero 8-bit masks with the exported names (and another extension), like a network's."""
    side = sidecar(folder)
    w, h = side["views"][view]["image_size"]
    dest.mkdir(parents=True)
    paths = {}
    for e in side["views"][view]["slices"]:
        p = dest / (Path(e["file"]).stem + ext)
        cv2.imwrite(str(p), np.zeros((h, w), np.uint8))
        paths[e["index"]] = p
    return paths


def test_square_drawn_on_one_slice_lands_on_the_right_voxels(native_export, tmp_path):
    src, folder = native_export
    paths = _blank_masks(folder, "axial", tmp_path / "masks")
    k, (c0, r0, c1, r1) = 40, (20, 30, 34, 41)
    mask = cv2.imread(str(paths[k]), cv2.IMREAD_UNCHANGED)
    cv2.rectangle(mask, (c0, r0), (c1, r1), color=1, thickness=-1)
    cv2.imwrite(str(paths[k]), mask)

    img = niftislice.stack(
        tmp_path / "masks",
        tmp_path / "mask.nii.gz",
        StackOptions(values="pixel"),
        sidecar=folder / f"{folder.name}.json",
    ).image
    got = {tuple(v) for v in np.argwhere(np.asanyarray(img.dataobj) == 1)}

    side = sidecar(folder)
    p2w = np.array(
        next(e for e in side["views"]["axial"]["slices"] if e["index"] == k)["pixel_to_world"]
    )
    world_to_voxel = np.linalg.inv(nib.load(src).affine)
    cols, rows = np.meshgrid(np.arange(c0, c1 + 1), np.arange(r0, r1 + 1))
    pix = np.stack([cols.ravel(), rows.ravel(), np.zeros(cols.size), np.ones(cols.size)])
    expected = {tuple(v) for v in np.rint(world_to_voxel @ p2w @ pix)[:3].T.astype(int)}
    assert len(expected) == (c1 - c0 + 1) * (r1 - r0 + 1)
    assert got == expected


def test_square_on_resampled_slices_covers_the_voxels_whose_centres_it_contains(small, tmp_path):
    arr = ndimage.zoom(np.asanyarray(small.dataobj), (1, 1, 1 / 1.5), order=1)
    aff = small.affine.copy()
    aff[:3, 2] *= 1.5
    arr, aff = reorient_to(arr, aff, "LPS")
    src = save(tmp_path / "head.nii.gz", arr, aff)
    folder = export(src, tmp_path / "out", views="coronal", format="jpg")
    side = sidecar(folder)["views"]["coronal"]
    assert side["image_size"] != side["geometry"]["native_size"]  # 2 x 3 mm became 2 x 2 mm
    paths = _blank_masks(folder, "coronal", tmp_path / "masks")
    k, (c0, r0, c1, r1) = 30, (10, 12, 25, 20)
    mask = cv2.imread(str(paths[k]), cv2.IMREAD_UNCHANGED)
    cv2.rectangle(mask, (c0, r0), (c1, r1), color=255, thickness=-1)
    cv2.imwrite(str(paths[k]), mask)
    rc = main(
        [
            "stack",
            str(tmp_path / "masks"),
            "-o",
            str(tmp_path / "m.nii.gz"),
            "--sidecar",
            str(folder / f"{folder.name}.json"),
            "--values",
            "pixel",
            "--interp",
            "nearest",
        ]
    )
    assert rc == 0
    got = np.asanyarray(nib.load(tmp_path / "m.nii.gz").dataobj) == 255
    # every voxel centre, mapped into slice k's pixel grid, is marked iff it falls in the square
    p2w = np.array(next(e for e in side["slices"] if e["index"] == k)["pixel_to_world"])
    vox = np.indices(arr.shape).reshape(3, -1)
    pix = np.linalg.inv(p2w) @ aff @ np.vstack([vox, np.ones(vox.shape[1])])
    on_slice = np.abs(pix[2]) < 1e-6
    inside = (
        on_slice
        & (np.abs(pix[0] - (c0 + c1) / 2) < (c1 - c0 + 1) / 2)
        & (np.abs(pix[1] - (r0 + r1) / 2) < (r1 - r0 + 1) / 2)
    )
    np.testing.assert_array_equal(got.reshape(-1), inside)
    assert inside.sum() > 50


# ---------------------------------------------------------------------------------------------
# 4D and skipped slices


def test_4d_export_stacks_to_4d_or_one_volume(small, tmp_path):
    base = np.asanyarray(small.dataobj)[::2, ::2, ::2].astype(np.int16)
    data = np.stack([base - 100 * t for t in range(3)], axis=-1)
    src = save(tmp_path / "series.nii.gz", data, small.affine, pixdim=[1, 4, 4, 4, 2.5, 1, 1, 1])
    folder = export(src, tmp_path / "out", lossless=True, spacing="native", views="sagittal")
    all_back = niftislice.stack(folder).image
    assert all_back.shape == data.shape
    np.testing.assert_array_equal(np.asanyarray(all_back.dataobj), data)
    assert all_back.header.get_zooms()[3] == pytest.approx(2.5)
    one = niftislice.stack(folder, options=StackOptions(volume=1)).image
    assert one.shape == data.shape[:3]
    np.testing.assert_array_equal(np.asanyarray(one.dataobj), data[..., 1])


def test_skip_empty_slices_come_back_as_background(tmp_path, capsys):
    vol = np.zeros((20, 22, 18), np.uint8)
    vol[5:15, 6:16, 4:12] = np.arange(10 * 10 * 8).reshape(10, 10, 8) % 7 + 1
    src = save(tmp_path / "blob.nii.gz", vol, np.diag([1.0, 1.2, 1.5, 1.0]))
    folder = export(src, tmp_path / "out", label=True, skip_empty=True, spacing="native")
    assert len(list((folder / "axial").glob("*.png"))) == 8
    rc, _, err = run(capsys, "stack", folder, "-o", tmp_path / "b.nii.gz", "--view", "axial")
    assert rc == 0 and "warning" not in err
    np.testing.assert_array_equal(stored(tmp_path / "b.nii.gz"), vol)


# ---------------------------------------------------------------------------------------------
# what goes wrong, and how it is reported


def _copy(folder: Path, dest: Path) -> Path:
    shutil.copytree(folder, dest)
    return dest


def test_missing_slices_are_filled_and_listed_in_one_warning(native_export, tmp_path, capsys):
    src, folder = native_export[0], _copy(native_export[1], tmp_path / "exp")
    names = sorted((folder / "axial").glob("*.png"))
    for k in (3, 10, 11):
        names[k].unlink()
    out = tmp_path / "back.nii.gz"
    rc, _, err = run(capsys, "stack", folder, "-o", out, "--view", "axial", "--fill", "7")
    assert rc == 0, err
    warnings = [ln for ln in err.splitlines() if "warning" in ln]
    assert (
        len(warnings) == 1
        and "3 of" in warnings[0]
        and "3, 10-11" in warnings[0]
        and "7" in warnings[0]
    )
    back = np.asanyarray(nib.load(out).dataobj)
    ras_back = nib.as_closest_canonical(nib.Nifti1Image(back, nib.load(src).affine)).get_fdata()
    ras_src = nib.as_closest_canonical(nib.load(src)).get_fdata()
    assert np.all(ras_back[:, :, [3, 10, 11]] == 7)
    keep = [z for z in range(ras_src.shape[2]) if z not in (3, 10, 11)]
    np.testing.assert_array_equal(ras_back[:, :, keep], ras_src[:, :, keep])


def test_image_of_the_wrong_size_is_a_one_line_error(native_export, tmp_path, capsys):
    folder = _copy(native_export[1], tmp_path / "exp")
    victim = sorted((folder / "coronal").glob("*.png"))[5]
    img = cv2.imread(str(victim), cv2.IMREAD_UNCHANGED)
    cv2.imwrite(str(victim), cv2.resize(img, (img.shape[1] + 4, img.shape[0])))
    rc, _, err = run(capsys, "stack", folder / "coronal", "-o", tmp_path / "b.nii.gz")
    assert rc == 1 and len(err.strip().splitlines()) == 1
    assert victim.name in err and f"{img.shape[1] + 4} x {img.shape[0]}" in err and "expects" in err
    assert not (tmp_path / "b.nii.gz").exists()


def test_colour_images_need_a_channel(native_export, tmp_path, capsys):
    src, folder = native_export[0], _copy(native_export[1], tmp_path / "exp")
    for p in (folder / "sagittal").glob("*.png"):
        grey = cv2.imread(str(p), cv2.IMREAD_UNCHANGED)
        cv2.imwrite(str(p), cv2.merge([grey, grey, grey]))
    rc, _, err = run(capsys, "stack", folder, "-o", tmp_path / "b.nii.gz", "--view", "sagittal")
    assert rc == 1 and len(err.strip().splitlines()) == 1 and "--channel" in err and "colour" in err
    rc, _, err = run(
        capsys, "stack", folder, "-o", tmp_path / "b.nii.gz", "--view", "sagittal", "--channel", "g"
    )
    assert rc == 0, err
    np.testing.assert_array_equal(stored(tmp_path / "b.nii.gz"), stored(src))


def test_missing_sidecar_is_a_one_line_error_and_sidecar_option_fixes_it(
    native_export, tmp_path, capsys
):
    src, folder = native_export
    images = _copy(folder / "axial", tmp_path / "loose" / "axial")
    rc, _, err = run(capsys, "stack", images, "-o", tmp_path / "b.nii.gz")
    assert rc == 1 and len(err.strip().splitlines()) == 1 and "--sidecar" in err
    rc, _, err = run(
        capsys,
        "stack",
        images,
        "-o",
        tmp_path / "b.nii.gz",
        "--sidecar",
        folder / f"{folder.name}.json",
    )
    assert rc == 0, err
    np.testing.assert_array_equal(stored(tmp_path / "b.nii.gz"), stored(src))


def test_usage_errors(native_export, tmp_path, capsys):
    _, folder = native_export
    rc, _, err = run(capsys, "stack", folder, "-o", tmp_path / "b.nii.gz")
    assert rc == 2 and "--view" in err  # several views, none chosen
    rc, _, err = run(capsys, "stack", folder, "-o", tmp_path / "b.png", "--view", "axial")
    assert rc == 2 and ".nii" in err
    (tmp_path / "b.nii.gz").write_bytes(b"keep me")
    rc, _, err = run(capsys, "stack", folder, "-o", tmp_path / "b.nii.gz", "--view", "axial")
    assert rc == 1 and "--overwrite" in err and (tmp_path / "b.nii.gz").read_bytes() == b"keep me"
