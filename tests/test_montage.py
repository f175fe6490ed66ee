"""Contact sheets: tiles are the slices they name, evenly spaced, labelled; and the preview's
histogram with the window marked."""

from __future__ import annotations

import numpy as np
import pytest
from _pictures_helpers import centre, image, phantom, save_nifti, sidecar, slice_image
from _pictures_helpers import convert as run_convert

import niftislice
from niftislice.cli import main
from niftislice.options import ConvertOptions
from niftislice.pictures.colormap import get_colormap
from niftislice.pictures.histogram import value_histogram
from niftislice.pictures.montage import evenly_spaced
from niftislice.pictures.preview import render_preview


@pytest.fixture(scope="module")
def sample_sheet(tmp_path_factory):
    out = tmp_path_factory.mktemp("m")
    rc = main(
        [
            "convert",
            "--sample",
            "-o",
            str(out),
            "--views",
            "axial,sagittal",
            "--montage",
            "-j",
            "1",
            "-q",
        ]
    )
    assert rc == 0
    return out / "mni152_t1_1mm"


@pytest.mark.slow
def test_tiles_are_the_slices_they_name(sample_sheet):
    meta = sidecar(sample_sheet)["pictures"]["montages"]
    assert [m["view"] for m in meta] == ["axial", "sagittal"]
    for m in meta:
        sheet = image(sample_sheet / m["file"])
        assert m["file"] == f"mni152_t1_1mm_{m['view']}_montage.png"
        assert len(m["tiles"]) == 16
        for t in m["tiles"]:
            exported = slice_image(sample_sheet, m["view"], t["index"])
            assert t["scale"] == 1 and (t["height"], t["width"]) == exported.shape
            tile = sheet[t["y"] : t["y"] + t["height"], t["x"] : t["x"] + t["width"]]
            np.testing.assert_array_equal(centre(tile)[..., 0], centre(exported))
            assert np.all(centre(tile)[..., 0] == centre(tile)[..., 2])  # grey stays grey


def test_tiles_are_evenly_spaced_over_the_head(sample_sheet):
    axial = sidecar(sample_sheet)["pictures"]["montages"][0]["tiles"]
    ks = [t["index"] for t in axial]
    steps = np.diff(ks)
    assert ks == sorted(ks) and steps.max() - steps.min() <= 1
    # the head spans the sheet: first and last tiles hold anatomy, empty slices are left out
    first, last = (slice_image(sample_sheet, "axial", k) for k in (ks[0], ks[-1]))
    assert first.any() and last.any()
    assert ks[-1] - ks[0] > 150
    # a roughly square grid: 4 x 4 for 16 axial tiles
    assert len({t["x"] for t in axial}) == 4 and len({t["y"] for t in axial}) == 4


def test_evenly_spaced_picks():
    assert evenly_spaced(range(10), 16) == list(range(10))
    assert evenly_spaced(range(101), 5) == [0, 25, 50, 75, 100]
    assert evenly_spaced(range(101), 3, content=range(20, 41)) == [20, 30, 40]
    assert evenly_spaced([7, 9], 1) == [9]


def test_small_images_are_enlarged_whole(tmp_path):
    """A 30 x 36 phantom: tiles are enlarged by a whole factor, pixel for pixel, and a sheet
    with fewer slices than tiles asked for shows every slice."""
    path = save_nifti(tmp_path / "ph.nii.gz", phantom(), np.eye(4))
    out = run_convert(
        path,
        tmp_path / "o",
        views="axial",
        spacing="native",
        slices="4:9",
        montage=True,
        montage_count=8,
    )
    (m,) = sidecar(out)["pictures"]["montages"]
    assert [t["index"] for t in m["tiles"]] == [4, 5, 6, 7, 8]
    sheet = image(out / m["file"])
    for t in m["tiles"]:
        assert t["scale"] == 4  # 30 px -> at least 96 px
        big = np.repeat(np.repeat(slice_image(out, "axial", t["index"]), 4, 0), 4, 1)
        tile = sheet[t["y"] : t["y"] + t["height"], t["x"] : t["x"] + t["width"], 0]
        np.testing.assert_array_equal(centre(tile), centre(big))


def test_colour_bar_under_a_colour_montage(tmp_path):
    path = save_nifti(tmp_path / "ph.nii.gz", phantom(), np.eye(4))
    out = run_convert(path, tmp_path / "o", views="coronal", montage=True, colormap="hot")
    (m,) = sidecar(out)["pictures"]["montages"]
    sheet = image(out / m["file"])
    bottom = max(t["y"] + t["height"] for t in m["tiles"])
    below = {tuple(c) for c in sheet[bottom:].reshape(-1, 3)}
    lut = get_colormap("hot").lut
    assert sum(tuple(c) in below for c in lut) > 200  # the whole ramp is drawn


def test_4d_sheets_per_volume(tmp_path):
    data = np.stack([phantom((20, 22, 12)) * (t + 1) for t in range(3)], axis=-1)
    path = save_nifti(tmp_path / "series.nii.gz", data, np.eye(4))
    out = run_convert(path, tmp_path / "o", views="axial", volumes="0:3:2", montage=True)
    names = sorted(m["file"] for m in sidecar(out)["pictures"]["montages"])
    assert names == ["series_t0000_axial_montage.png", "series_t0002_axial_montage.png"]
    assert all((out / n).is_file() for n in names)


@pytest.mark.slow
def test_preview_histogram_marks_the_window(sample):
    """Below the tiles: the histogram of the volume, with the window's ends as two marker lines
    placed in proportion to the values they stand for."""
    vol = niftislice.load(sample, ConvertOptions(slices="middle", window="20:180"))
    img = render_preview(vol)
    panel = img[320:-30]
    marker = np.all(panel == (255, 200, 0), axis=-1)
    cols = np.nonzero(marker.sum(axis=0) > 40)[0]  # full-height lines
    assert len(cols) == 2
    pad, plot_w = 12, img.shape[1] - 24
    _, x0, x1 = value_histogram(vol.raw, 1.0, 0.0, vol.plan.window, plot_w)
    expected = [pad + round((v - x0) / (x1 - x0) * (plot_w - 1)) for v in (20.0, 180.0)]
    assert list(cols) == expected
    grey_bars = np.all(panel == (150, 150, 150), axis=-1).any(axis=0)
    assert grey_bars[cols[0] : cols[1]].mean() > 0.9  # data under the whole window


def test_value_histogram_counts_integers_exactly(template):
    data, _ = template
    counts, x0, x1 = value_histogram(
        data, 1.0, 0.0, niftislice.window.Window(0, 228, 255, ""), 2000
    )
    assert (x0, x1) == (-0.5, 255.5) and len(counts) == 256
    np.testing.assert_array_equal(counts, np.bincount(data.ravel(), minlength=256))
