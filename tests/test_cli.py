"""The command line as a user meets it: layout, selection options, 4D, formats, exit status."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import NIBABEL_DATA, save

import niftislice
from niftislice.cli import main


def run(capsys, *args: str) -> tuple[int, str, str]:
    rc = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return rc, out, err


def files(root: Path, pattern: str = "*.png") -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob(pattern))


@pytest.mark.slow
def test_sample_layout_and_sidecar(tmp_path, capsys):
    rc, _, err = run(capsys, "convert", "--sample", "-o", tmp_path)
    assert rc == 0, err
    stem = "mni152_t1_1mm"
    root = tmp_path / stem
    counts = {v: len(list((root / v).glob("*.png"))) for v in ("axial", "coronal", "sagittal")}
    assert counts == {"axial": 189, "coronal": 233, "sagittal": 197}
    assert (root / "axial" / f"{stem}_axial_0000.png").is_file()
    assert (root / "axial" / f"{stem}_axial_0188.png").is_file()
    side = json.loads((root / f"{stem}.json").read_text())
    assert side["source"]["shape"] == [197, 233, 189] and side["source"]["axcodes"] == "RAS"
    assert len(side["source"]["sha256"]) == 64
    assert side["intensity"]["kind"] == "window" and side["intensity"]["out_max"] == 255
    assert side["views"]["axial"]["image_size"] == [197, 233]
    assert len(side["views"]["coronal"]["slices"]) == 233
    img = cv2.imread(str(root / "sagittal" / f"{stem}_sagittal_0098.png"), cv2.IMREAD_UNCHANGED)
    assert img.shape == (189, 233) and img.dtype == np.uint8 and img.max() > 200
    assert not list(tmp_path.glob(".niftislice-tmp-*"))


def test_names_sort_in_slice_order(tmp_path, capsys, small_head):
    data, aff = small_head
    path = save(tmp_path / "h.nii.gz", data, aff)
    assert run(capsys, "convert", path, "-o", tmp_path / "o", "--views", "axial")[0] == 0
    names = [p.name for p in (tmp_path / "o" / "h" / "axial").iterdir()]
    assert sorted(names) == [f"h_axial_{k:04d}.png" for k in range(data.shape[2])]


@pytest.mark.parametrize(
    "spec,expected",
    [
        ("middle", [31]),
        ("10:13", [10, 11, 12]),
        ("0:63:20", [0, 20, 40, 60]),
        ("-2:", [61, 62]),
        ("5", [5]),
    ],
)
def test_slices_select_exactly(tmp_path, capsys, small_head, spec, expected):
    data, aff = small_head  # 66 x 78 x 63
    path = save(tmp_path / "h.nii.gz", data, aff)
    rc, _, err = run(
        capsys, "convert", path, "-o", tmp_path / "o", "--views", "axial", f"--slices={spec}"
    )
    assert rc == 0, err
    got = sorted(int(p.stem.rsplit("_", 1)[1]) for p in (tmp_path / "o" / "h" / "axial").iterdir())
    assert got == expected
    assert not (tmp_path / "o" / "h" / "coronal").exists()


@pytest.mark.slow
def test_views_subset(tmp_path, capsys, small_head):
    path = save(tmp_path / "h.nii.gz", *small_head)
    assert run(capsys, "convert", path, "-o", tmp_path / "o", "--views", "sagittal,coronal")[0] == 0
    assert sorted(p.name for p in (tmp_path / "o" / "h").iterdir() if p.is_dir()) == [
        "coronal",
        "sagittal",
    ]


def test_skip_empty_drops_only_background_slices(tmp_path, capsys):
    data = np.zeros((10, 10, 12), np.int16)
    data[4:6, 4:6, 3:7] = 500
    path = save(tmp_path / "e.nii.gz", data, np.eye(4))
    assert (
        run(capsys, "convert", path, "-o", tmp_path / "o", "--skip-empty", "--views", "axial")[0]
        == 0
    )
    got = sorted(int(p.stem.rsplit("_", 1)[1]) for p in (tmp_path / "o" / "e" / "axial").iterdir())
    assert got == [3, 4, 5, 6]


def test_4d_names_never_collide(tmp_path, capsys):
    src = NIBABEL_DATA / "example4d.nii.gz"  # 128 x 96 x 24 x 2
    rc, _, err = run(capsys, "convert", src, "-o", tmp_path, "--views", "axial,sagittal")
    assert rc == 0, err
    names = files(tmp_path)
    assert len(names) == len(set(names)) == 2 * (24 + 128)
    assert "example4d/axial/example4d_t0001_axial_0023.png" in names
    side = json.loads((tmp_path / "example4d" / "example4d.json").read_text())
    assert side["output"]["volumes"] == [0, 1]
    assert side["views"]["axial"]["slices"][3]["files"]["1"] == "example4d_t0001_axial_0003.png"
    rc, _, _ = run(
        capsys, "convert", src, "-o", tmp_path / "one", "--volumes", "1", "--views", "axial"
    )
    assert files(tmp_path / "one")[0] == "example4d/axial/example4d_t0001_axial_0000.png"
    assert len(files(tmp_path / "one")) == 24


def test_nifti2_and_big_endian_files(tmp_path, capsys):
    for name in ("example_nifti2.nii.gz", "anatomical.nii"):
        rc, _, err = run(
            capsys, "convert", NIBABEL_DATA / name, "-o", tmp_path / name, "--slices", "middle"
        )
        assert rc == 0, (name, err)


def test_rgb_volume_becomes_colour_images(tmp_path, capsys):
    import nibabel as nib

    rgb = np.zeros((8, 9, 5), dtype=[("R", "u1"), ("G", "u1"), ("B", "u1")])
    rgb["R"][:4] = 255  # left half red (x < 4 = patient left)
    rgb["B"][4:] = 255  # right half blue
    nib.save(nib.Nifti1Image(rgb, np.eye(4)), tmp_path / "c.nii")
    assert (
        run(capsys, "convert", tmp_path / "c.nii", "-o", tmp_path / "o", "--spacing", "native")[0]
        == 0
    )
    img = cv2.imread(str(tmp_path / "o" / "c" / "axial" / "c_axial_0002.png"))  # BGR
    assert img.shape == (9, 8, 3)
    assert tuple(img[4, 0]) == (255, 0, 0)  # image left = patient right = blue
    assert tuple(img[4, 7]) == (0, 0, 255)  # image right = patient left = red


@pytest.mark.parametrize(
    "fmt,ext", [("jpg", ".jpg"), ("tif", ".tif"), ("webp", ".webp"), ("png", ".png")]
)
def test_formats(tmp_path, capsys, small_head, fmt, ext):
    path = save(tmp_path / "h.nii.gz", *small_head)
    rc, _, err = run(
        capsys, "convert", path, "-o", tmp_path / "o", "--format", fmt, "--slices", "middle"
    )
    assert rc == 0, err
    out = list((tmp_path / "o" / "h" / "axial").iterdir())
    assert [p.suffix for p in out] == [ext]
    assert cv2.imread(str(out[0]), cv2.IMREAD_UNCHANGED) is not None


def test_16_bit_png(tmp_path, capsys, small_head):
    path = save(tmp_path / "h.nii.gz", *small_head)
    assert (
        run(
            capsys, "convert", path, "-o", tmp_path / "o", "--bit-depth", "16", "--slices", "middle"
        )[0]
        == 0
    )
    img = cv2.imread(str(next((tmp_path / "o" / "h" / "axial").iterdir())), cv2.IMREAD_UNCHANGED)
    assert img.dtype == np.uint16 and img.max() > 60000


@pytest.mark.slow
def test_exit_status_and_one_line_errors(tmp_path, capsys, small_head):
    good = save(tmp_path / "good.nii.gz", *small_head)
    bad = tmp_path / "bad.nii.gz"
    bad.write_bytes(b"this is not a nifti file at all" * 20)
    rc, _, err = run(capsys, "convert", good, bad, "-o", tmp_path / "o", "--slices", "middle")
    assert rc == 1
    lines = [line for line in err.splitlines() if "error" in line]
    assert len(lines) == 1 and str(bad) in lines[0] and "Traceback" not in err
    assert (tmp_path / "o" / "good" / "good.json").is_file()
    assert not (tmp_path / "o" / "bad").exists()
    # usage errors: exit 2, nothing written
    assert run(capsys, "convert", good, "-o", tmp_path / "u", "--window", "banana")[0] == 2
    assert run(capsys, "convert", good, "-o", tmp_path / "u", "--views", "oblique")[0] == 2
    assert run(capsys, "convert", good)[0] == 2
    assert run(capsys, "frobnicate")[0] == 2
    assert (
        run(capsys, "convert", good, "-o", tmp_path / "u", "--format", "jpg", "--bit-depth", "16")[
            0
        ]
        == 2
    )
    assert not (tmp_path / "u").exists()
    rc, _, err = run(capsys, "convert", tmp_path / "missing.nii", "-o", tmp_path / "m")
    assert (
        rc == 1 and "missing.nii" in err and len(err.strip().splitlines()) == 2
    )  # error + summary


def test_existing_output_is_kept_unless_overwrite(tmp_path, capsys, small_head):
    path = save(tmp_path / "h.nii.gz", *small_head)
    args = ["convert", path, "-o", tmp_path / "o", "--slices", "middle"]
    assert run(capsys, *args)[0] == 0
    marker = tmp_path / "o" / "h" / "axial" / "h_axial_0031.png"
    before = marker.read_bytes()
    rc, _, err = run(capsys, *args, "--window", "0:50")
    assert rc == 1 and "exists" in err and marker.read_bytes() == before
    assert run(capsys, *args, "--window", "0:50", "--overwrite")[0] == 0
    assert marker.read_bytes() != before


def test_info_text_json_and_header(tmp_path, capsys):
    src = NIBABEL_DATA / "anatomical.nii"
    rc, out, _ = run(capsys, "info", src)
    assert rc == 0
    assert (
        "L-A-S" in out
        and "2 x 2 x 2 mm" in out
        and "qform_code  2" in out
        and "using: sform" in out
    )
    assert "axial        25 images of 33 x 41 px" in out
    rc, out, _ = run(capsys, "info", src, "--json", "--header")
    facts = json.loads(out)
    assert facts["axcodes"] == "LAS" and facts["data_range"] == [-610, 30393]
    assert (
        facts["views"]["coronal"]["images"] == 41 and "header" in facts and "dim" in facts["header"]
    )
    rc, out, _ = run(capsys, "info", "--sample")
    # nibabel shows nan for scl_slope after loading; info shows what the file really holds
    import nibabel as nib

    assert np.isnan(nib.load(niftislice.sample_path()).header["scl_slope"])
    assert "scl_slope 1, scl_inter 0 on disk" in out


@pytest.mark.slow
def test_preview(tmp_path, capsys):
    out = tmp_path / "p.png"
    rc, _, err = run(capsys, "preview", "--sample", "-o", out)
    assert rc == 0, err
    img = cv2.imread(str(out))
    # three panels side by side above the histogram and caption
    assert img is not None and img.shape[1] > 1.5 * img.shape[0]


def test_main_leaves_a_callers_logging_as_it_was(tmp_path, capsys):
    """``main`` in a caller's process (a notebook, a test, a script) sets up its own stderr lines
    for the run, then puts the ``niftislice`` logger back: library calls after it log through
    the caller's handlers again, not to a stream the run held (pytest's, maybe closed by now)."""
    import logging

    from niftislice.cli import main

    logger = logging.getLogger("niftislice")
    mine = logging.NullHandler()
    logger.handlers[:] = [mine]
    logger.setLevel(logging.NOTSET)
    logger.propagate = True
    try:
        out = tmp_path / "out"
        assert main(["convert", "--sample", "-o", str(out), "-q", "--views", "axial"]) == 0
        assert main(["convert", "--sample", "-o", str(out), "-v"]) == 1  # exists: one error line
        assert "niftislice: error:" in capsys.readouterr().err
        assert logger.handlers == [mine]
        assert logger.level == logging.NOTSET and logger.propagate
    finally:
        logger.handlers[:] = []
