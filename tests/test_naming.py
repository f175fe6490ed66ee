"""naming.py: safe stems and folders, and image names that sort in slice order."""

from __future__ import annotations

from pathlib import Path

import pytest

from niftislice.naming import image_name, image_names, index_width, safe_relative_dir, stem_of


@pytest.mark.parametrize(
    "name,stem",
    [
        ("sub-01_T1w.nii.gz", "sub-01_T1w"),
        ("SCAN.NII.GZ", "SCAN"),
        ("a b.nii", "a_b"),
        ("-rf.nii", "_-rf"),
        ("../../etc.nii", "etc"),
        ("tête.nii.gz", "t_te"),
        ("x.nii.gz.nii.gz", "x.nii.gz"),
        ("line\nbreak.nii", "line_break"),
        (".nii", "_.nii"),
    ],
)
def test_stems_are_safe(name, stem):
    assert stem_of(name) == stem


def test_names_pad_to_slice_count():
    assert index_width(10) == 4 and index_width(10001) == 5
    assert image_name("s", "axial", 7, 400, ".png") == "s_axial_0007.png"
    assert (
        image_name("s", "axial", 7, 400, ".png", volume=3, n_volumes=200)
        == "s_t0003_axial_0007.png"
    )
    assert image_names("s", "sagittal", [2, 0], 12, ".jpg", volume=11, n_volumes=12) == {
        2: "s_t0011_sagittal_0002.jpg",
        0: "s_t0011_sagittal_0000.jpg",
    }


@pytest.mark.parametrize(
    ("n_slices", "width"),
    [(1, 4), (10, 4), (9999, 4), (10000, 4), (10001, 5), (100000, 5), (100001, 6)],
)
def test_padding_is_at_least_four_digits_and_fits_the_last_index(n_slices, width):
    assert index_width(n_slices) == width
    last = image_name("s", "axial", n_slices - 1, n_slices, ".png")
    assert last == f"s_axial_{n_slices - 1:0{width}d}.png"


@pytest.mark.parametrize("n_slices", [3, 11, 101, 10001])
def test_names_sort_in_slice_order(n_slices):
    """A file browser or ``sorted(glob(...))`` lists slice 2 before slice 10."""
    names = [image_name("sub-01", "coronal", k, n_slices, ".png") for k in range(n_slices)]
    assert sorted(names) == names
    assert len({len(n) for n in names}) == 1


@pytest.mark.parametrize("n_volumes", [2, 12, 10001])
def test_4d_names_sort_by_volume_then_slice(n_volumes):
    ts = [0, 1, 9, n_volumes - 1] if n_volumes > 9 else [0, 1]
    names = [
        image_name("bold", "axial", k, 40, ".png", volume=t, n_volumes=n_volumes)
        for t in ts
        for k in (0, 9, 39)
    ]
    assert sorted(names) == names
    assert names[0] == f"bold_t{0:0{index_width(n_volumes)}d}_axial_0000.png"


@pytest.mark.parametrize(
    ("name", "stem"),
    [
        ("a.b.c.nii.gz", "a.b.c"),  # only the NIfTI suffix goes
        ("scan.NII", "scan"),
        ("mask.gz", "mask"),
        ("nii.gz", "nii"),  # nothing left but the suffix: kept
        (".hidden.nii", "_.hidden"),  # no hidden folders
        ("weird name (1).nii", "weird_name_1"),
        ("a" * 300 + ".nii", "a" * 200),  # long names are cut to 200 characters
    ],
)
def test_more_stems(name, stem):
    assert stem_of(name) == stem


@pytest.mark.parametrize(
    ("rel", "safe"),
    [
        ("../../etc", "etc"),
        ("/abs/x", "abs/x"),
        ("a/../b", "a/b"),
        ("sub 1/ses-1", "sub_1/ses-1"),
        ("a/./b", "a/b"),
        (".", "."),
    ],
)
def test_relative_folders_never_leave_the_output(rel, safe, tmp_path):
    out = safe_relative_dir(Path(rel))
    assert out == Path(safe) and not out.is_absolute() and ".." not in out.parts
    assert (tmp_path / out).resolve().is_relative_to(tmp_path.resolve())
