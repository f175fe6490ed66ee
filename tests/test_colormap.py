"""Colour maps: end colours, symmetric windows for diverging maps, exported pixels, colour bars."""

from __future__ import annotations

import numpy as np
import pytest
from _pictures_helpers import GM_MAP, save_nifti, sidecar, slice_image
from _pictures_helpers import convert as run_convert

import niftislice
from niftislice.errors import InputError, OptionError
from niftislice.options import ConvertOptions
from niftislice.pictures.colormap import COLORMAPS, colour_bar, get_colormap
from niftislice.pictures.preview import render_preview
from niftislice.window import Window

ENDS = {
    "gray": ((0, 0, 0), (255, 255, 255)),
    "viridis": ((68, 1, 84), (253, 231, 37)),
    "hot": ((0, 0, 0), (255, 255, 255)),
    "bwr": ((0, 0, 255), (255, 0, 0)),
    "coolwarm": ((59, 76, 192), (180, 4, 38)),
    "cold-hot": ((0, 255, 255), (255, 255, 0)),
}


@pytest.mark.parametrize("name", sorted(ENDS))
def test_end_colours(name):
    lut = get_colormap(name).lut
    assert lut.shape == (256, 3) and lut.dtype == np.uint8
    assert tuple(lut[0]) == ENDS[name][0]
    assert tuple(lut[255]) == ENDS[name][1]


def test_every_named_map_is_usable_and_names_are_checked():
    for name in COLORMAPS:
        assert get_colormap(name).apply(np.array([[0, 255]], np.uint8)).shape == (1, 2, 3)
    assert ConvertOptions.parse(colormap="Grey").pictures.colormap == "gray"
    with pytest.raises(OptionError, match="colormap: unknown colour map 'rainbowz'"):
        ConvertOptions.parse(colormap="rainbowz")
    with pytest.raises(OptionError, match="colormap: colours need 8-bit"):
        ConvertOptions.parse(colormap="hot", bit_depth=16)


def test_diverging_map_centres_zero(tmp_path):
    """A signed 'statistical map': the window becomes symmetric about 0, so -4 is pure blue, +4
    pure red and 0 the neutral middle, even though the window asked for was -2..4."""
    x = np.linspace(-6, 6, 25)  # 0.5 steps along x
    data = np.broadcast_to(x[:, None, None], (25, 8, 6)).astype(np.float32)
    path = save_nifti(tmp_path / "tmap.nii.gz", data, np.eye(4))
    out = run_convert(
        path,
        tmp_path / "o",
        views="axial",
        spacing="native",
        slices="2",
        window="-2:4",
        colormap="bwr",
    )
    meta = sidecar(out)
    assert (meta["intensity"]["low"], meta["intensity"]["high"]) == (-4.0, 4.0)
    assert meta["pictures"]["colormap"]["name"] == "bwr"
    rgb = slice_image(out, "axial", 2)
    col = {v: 24 - i for i, v in enumerate(x)}  # radiological: x increases to the image left
    assert tuple(rgb[3, col[-4.0]]) == (0, 0, 255)
    assert tuple(rgb[3, col[-6.0]]) == (0, 0, 255)  # clipped
    assert tuple(rgb[3, col[4.0]]) == (255, 0, 0)
    r, g, b = (int(v) for v in rgb[3, col[0.0]])
    assert r == 255 and g == b and g >= 250  # white, the faintest tint of the positive side
    assert rgb[3, col[-2.0]][2] == 255 and rgb[3, col[-2.0]][0] < 140  # half-strength blue
    assert rgb[3, col[2.0]][0] == 255 and rgb[3, col[2.0]][2] < 140


def test_sequential_map_colours_the_same_window(tmp_path):
    """The GM probability map in viridis is exactly the grey export looked up in the table."""
    grey = run_convert(GM_MAP, tmp_path / "g", views="coronal", slices="middle")
    colour = run_convert(
        GM_MAP, tmp_path / "c", views="coronal", slices="middle", colormap="viridis"
    )
    assert sidecar(grey)["intensity"]["high"] == sidecar(colour)["intensity"]["high"]
    k = sidecar(grey)["views"]["coronal"]["slices"][0]["index"]
    g, c = slice_image(grey, "coronal", k), slice_image(colour, "coronal", k)
    np.testing.assert_array_equal(c, get_colormap("viridis").lut[g])
    assert len(np.unique(g)) > 100


def test_colormap_on_a_label_map_is_refused(tmp_path):
    path = save_nifti(
        tmp_path / "labels.nii.gz",
        np.arange(60, dtype=np.uint8).reshape(3, 4, 5),
        np.eye(4),
        intent_code=1002,
    )
    with pytest.raises(InputError, match=r"colormap: labels\.nii\.gz is a label map"):
        run_convert(path, tmp_path / "o", colormap="hot")


def test_colour_bar_runs_from_low_to_high():
    cmap = get_colormap("hot")
    bar = colour_bar(cmap, Window(-1.0, 3.0, 255, "test"), 300)
    row = bar[8]  # inside the strip
    strip = row[8:292]
    assert tuple(strip[0]) == tuple(cmap.lut[0]) and tuple(strip[-1]) == tuple(cmap.lut[255])
    assert (bar[30:] > 200).any()  # the value labels are drawn under the strip


@pytest.mark.slow
def test_preview_shows_a_colour_bar_and_the_histogram(tmp_path):
    vol = niftislice.load(GM_MAP, ConvertOptions.parse(slices="middle", colormap="viridis"))
    img = render_preview(vol)
    lut = get_colormap("viridis").lut
    tiles_h = 320
    below = img[tiles_h:]
    colours = {tuple(c) for c in below.reshape(-1, 3)}
    assert tuple(lut[0]) in colours and tuple(lut[255]) in colours  # the colour bar's ends
    tiles = img[:tiles_h].reshape(-1, 3)
    assert {tuple(c) for c in tiles[::97]} & {tuple(c) for c in lut[60:200]}  # tiles in colour
