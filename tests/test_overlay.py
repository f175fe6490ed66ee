"""Label overlays on the anatomy, masks on other grids, and the paired image/mask export."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
from _pictures_helpers import (
    axial_radiological,
    box_mask,
    image,
    is_grey,
    phantom,
    save_nifti,
    sidecar,
    slice_image,
)
from _pictures_helpers import convert as run_convert
from conftest import reorient_to

from niftislice.cli import main
from niftislice.errors import InputError, OptionError
from niftislice.options import ConvertOptions
from niftislice.pictures.overlay import (
    LABEL_COLOURS,
    contour,
    label_colours,
    load_mask,
    paint_labels,
)
from niftislice.read.nifti import read_header

SHAPE = (30, 36, 24)
AFFINE = np.diag([1.0, 1.0, 1.0, 1.0])
AFFINE[:3, 3] = (-15, -18, -12)


@pytest.fixture
def volumes(tmp_path):
    """A phantom and a two-label box mask on the same grid, stored RAS."""
    anat = save_nifti(tmp_path / "anat.nii.gz", phantom(SHAPE), AFFINE)
    mask = save_nifti(tmp_path / "mask.nii.gz", box_mask(SHAPE), AFFINE)
    return anat, mask


def test_label_colours_are_fixed_and_distinct():
    assert len({tuple(c) for c in LABEL_COLOURS}) == len(LABEL_COLOURS)
    assert not np.any(is_grey(LABEL_COLOURS))  # never mistaken for anatomy
    assert label_colours(np.array([1, 17])).tolist() == [list(LABEL_COLOURS[0])] * 2


@pytest.mark.parametrize("axcodes", ["RAS", "LPS", "PIR"])
def test_overlay_colour_exactly_where_the_mask_is(tmp_path, axcodes):
    """Native spacing: every axial image is coloured on the mask's voxels and nowhere else, with
    the blended colour of the label; the same whatever order the two files are stored in."""
    data, aff = reorient_to(phantom(SHAPE), AFFINE, axcodes)
    labels, _ = reorient_to(box_mask(SHAPE), AFFINE, axcodes)
    anat = save_nifti(tmp_path / "anat.nii.gz", data, aff)
    mask = save_nifti(tmp_path / "mask.nii.gz", labels, aff)
    plain = run_convert(anat, tmp_path / "plain", views="axial", spacing="native")
    over = run_convert(anat, tmp_path / "over", views="axial", spacing="native", overlay=str(mask))
    truth = box_mask(SHAPE)
    for k in range(SHAPE[2]):
        grey = slice_image(plain, "axial", k)
        rgb = slice_image(over, "axial", k)
        expected = axial_radiological(truth, k)
        assert rgb.shape == (*grey.shape, 3)
        np.testing.assert_array_equal(~is_grey(rgb), expected > 0)
        inside = expected > 0
        colour = label_colours(expected[inside]).astype(float)
        blend = np.rint(0.6 * grey[inside][:, None] + 0.4 * colour)
        np.testing.assert_array_equal(rgb[inside], blend)
        np.testing.assert_array_equal(rgb[~inside][:, 0], grey[~inside])
    meta = sidecar(over)["pictures"]["overlay"]
    assert meta["resampled"] is False and meta["mode"] == "filled" and meta["alpha"] == 0.4
    assert set(meta["labels"]) == {"1", "3"}


def test_contour_mode_draws_outlines_only(volumes, tmp_path):
    anat, mask = volumes
    out = run_convert(
        anat,
        tmp_path / "o",
        views="axial",
        spacing="native",
        slices="5",
        overlay=str(mask),
        overlay_contour=True,
    )
    rgb = slice_image(out, "axial", 5)
    region = axial_radiological(box_mask(SHAPE), 5) == 1  # only label 1 crosses slice 5
    rows, cols = np.nonzero(region)
    outline = region.copy()
    outline[rows.min() + 1 : rows.max(), cols.min() + 1 : cols.max()] = False
    np.testing.assert_array_equal(~is_grey(rgb), outline)
    assert np.all(rgb[outline] == LABEL_COLOURS[0])  # full colour, whatever the alpha


def test_contour_of_touching_labels_and_image_edge():
    lab = np.zeros((6, 8), np.uint16)
    lab[:, :4] = 2
    lab[1:5, 4:7] = 5
    edge = contour(lab)
    assert edge[0, 0] and edge[2, 3] and edge[2, 4]  # image border, and both sides of 2|5
    assert not edge[2, 1] and not edge[2, 5] and not edge[0, 7]


def test_paint_labels_on_colour_images_keeps_unlabelled_pixels():
    img = np.full((4, 4, 3), (10, 20, 30), np.uint8)
    lab = np.zeros((4, 4), np.uint8)
    lab[1, 2] = 2
    out = paint_labels(img, lab, 1.0, False)
    assert out[1, 2].tolist() == LABEL_COLOURS[1].tolist()
    assert (out[0, 0] == (10, 20, 30)).all()


def test_mask_on_another_grid_is_resampled_by_its_affine(tmp_path):
    """A coarser, LAS-stored, shifted mask lands where its world coordinates say (compared with
    an independent nearest-neighbour resampling, scipy's via nibabel.processing)."""
    processing = pytest.importorskip("nibabel.processing")
    coarse = np.zeros((14, 16, 11), np.uint8)
    coarse[3:8, 4:10, 2:6] = 2
    coarse[9:12, 2:5, 6:10] = 7
    m_aff = np.diag([2.0, 2.0, 2.0, 1.0])
    m_aff[:3, 3] = (-14.3, -16.6, -10.2)  # not on the anatomy's half-voxel boundaries
    m_data, m_aff = reorient_to(coarse, m_aff, "LAS")
    mask_path = save_nifti(tmp_path / "coarse.nii.gz", m_data, m_aff)
    data, aff = reorient_to(phantom(SHAPE), AFFINE, "LPS")
    anat_path = save_nifti(tmp_path / "anat.nii.gz", data, aff)
    mask = load_mask(mask_path, read_header(anat_path))
    assert mask.resampled and mask.labels.shape == data.shape
    expected = processing.resample_from_to(nib.load(mask_path), (data.shape, aff), order=0)
    np.testing.assert_array_equal(mask.labels, np.asarray(expected.dataobj))
    assert mask.values == (2, 7)


def test_overlay_resampled_in_the_images(tmp_path, volumes):
    """The same mask stored at 2 mm still colours the right pixels of the 1 mm images."""
    anat, _ = volumes
    fine = np.zeros(SHAPE, np.uint8)
    fine[4:12, 6:16, 4:10] = 1  # even-aligned box: exactly representable at 2 mm
    coarse = fine[::2, ::2, ::2].copy()
    c_aff = np.diag([2.0, 2.0, 2.0, 1.0])
    c_aff[:3, 3] = AFFINE[:3, 3] + 0.5  # centre of each 2x2x2 block of fine voxels
    mask = save_nifti(tmp_path / "coarse.nii.gz", coarse, c_aff)
    out = run_convert(anat, tmp_path / "o", views="axial", spacing="native", overlay=str(mask))
    for k in (3, 4, 7, 9, 10):
        np.testing.assert_array_equal(
            ~is_grey(slice_image(out, "axial", k)), axial_radiological(fine, k) > 0
        )
    assert sidecar(out)["pictures"]["overlay"]["resampled"] is True


def test_mask_errors_name_the_file(tmp_path, volumes):
    anat, _ = volumes
    far = AFFINE.copy()
    far[:3, 3] += 5000
    away = save_nifti(tmp_path / "away.nii.gz", box_mask(SHAPE), far)
    with pytest.raises(InputError, match=r"overlay .*away\.nii\.gz.*does not overlap"):
        run_convert(anat, tmp_path / "o1", overlay=str(away), slices="middle")
    four_d = save_nifti(tmp_path / "fourd.nii.gz", np.zeros((*SHAPE, 2), np.uint8), AFFINE)
    with pytest.raises(InputError, match=r"fourd\.nii\.gz.*must be 3D"):
        run_convert(anat, tmp_path / "o2", overlay=str(four_d), slices="middle")
    frac = save_nifti(tmp_path / "frac.nii.gz", np.full(SHAPE, 0.5, np.float32), AFFINE)
    with pytest.raises(InputError, match=r"frac\.nii\.gz.*integer"):
        run_convert(anat, tmp_path / "o3", overlay=str(frac), slices="middle")
    assert not any(
        (tmp_path / d).exists() and any((tmp_path / d).iterdir()) for d in ("o1", "o2", "o3")
    )


def test_overlay_options_are_checked(tmp_path, volumes):
    _, mask = volumes
    with pytest.raises(OptionError, match="overlay: no such file"):
        ConvertOptions.parse(overlay=str(tmp_path / "missing.nii.gz"))
    with pytest.raises(OptionError, match="overlay-alpha"):
        ConvertOptions.parse(overlay=str(mask), overlay_alpha=1.5)
    with pytest.raises(OptionError, match="overlay-contour"):
        ConvertOptions.parse(overlay_contour=True)
    with pytest.raises(OptionError, match="overlay: colours need 8-bit"):
        ConvertOptions.parse(overlay=str(mask), bit_depth=16)
    with pytest.raises(OptionError, match="pair: masks need a lossless format"):
        ConvertOptions.parse(pair=str(mask), format="jpg")


def test_pair_exports_parallel_trees(tmp_path, volumes, capsys):
    """--pair: OUT/images/<stem>/... and OUT/masks/<stem>/... with the same names and sizes; the
    mask holds exact label values (nearest neighbour), here at 'finest' spacing, anisotropic."""
    anat, _ = volumes
    aniso = AFFINE.copy()
    aniso[2, 2] = 2.5
    anat = save_nifti(tmp_path / "aniso.nii.gz", phantom(SHAPE), aniso)
    mask = save_nifti(tmp_path / "aniso_mask.nii.gz", box_mask(SHAPE), aniso)
    out = tmp_path / "out"
    rc = main(["convert", str(anat), "-o", str(out), "--pair", str(mask), "-j", "1", "-q"])
    assert rc == 0, capsys.readouterr().err
    images, masks = out / "images" / "aniso", out / "masks" / "aniso"
    assert not (out / "aniso").exists()
    for view in ("axial", "coronal", "sagittal"):
        a = sorted(p.name for p in (images / view).iterdir())
        b = sorted(p.name for p in (masks / view).iterdir())
        assert a == b and len(a) > 0
    for name in sorted((images / "coronal").iterdir())[10:14]:
        img, lab = image(name), image(masks / "coronal" / name.name)
        assert img.shape == lab.shape and lab.dtype == np.uint8
        assert set(np.unique(lab)) <= {0, 1, 3}
    # coronal slice j = 8 crosses label 1 (z 3..9 at 2.5 mm, so rows are stretched 2.5x)
    lab = image(masks / "coronal" / sidecar(masks)["views"]["coronal"]["slices"][8]["file"])
    assert lab.shape == (round(24 * 2.5), 30)
    expected = box_mask(SHAPE)[::-1, 8, ::-1].T  # rows: superior first; columns: radiological
    centres = (np.arange(lab.shape[0]) + 0.5) / 2.5  # output row centres in native rows
    clear = centres % 1 != 0  # rows centred exactly between two native rows may take either
    np.testing.assert_array_equal(lab[clear], expected[np.floor(centres[clear]).astype(int)])
    assert sidecar(images)["pictures"]["pair"]["role"] == "image"
    assert sidecar(masks)["pictures"]["pair"]["role"] == "mask"
    assert sidecar(masks)["intensity"]["kind"] == "label"


def test_overlay_on_16_bit_label_images_is_refused(tmp_path, volumes):
    _, mask = volumes
    labels = (np.arange(np.prod(SHAPE)) % 400).reshape(SHAPE).astype(np.int16)
    anat = save_nifti(tmp_path / "atlas.nii.gz", labels, AFFINE, intent_code=1002)
    with pytest.raises(InputError, match=r"overlay: atlas\.nii\.gz is exported as 16-bit"):
        run_convert(anat, tmp_path / "o", overlay=str(mask), slices="middle")


def test_paired_masks_stack_back_into_the_mask_volume(tmp_path, volumes):
    """The masks tree is a complete export of its own: 'niftislice stack' rebuilds the labels."""
    anat, mask = volumes
    out = tmp_path / "out"
    assert (
        main(["convert", str(anat), "-o", str(out), "--pair", str(mask), "--views", "axial", "-q"])
        == 0
    )
    back = tmp_path / "back.nii.gz"
    assert main(["stack", str(out / "masks" / "anat"), "-o", str(back), "-q"]) == 0
    np.testing.assert_array_equal(np.asarray(nib.load(back).dataobj), box_mask(SHAPE))
