"""Words on pictures: readable on bright tissue, captions fitted with an ellipsis, one drawing
module for the preview, the contact sheets and the animations."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import nibabel as nib
import numpy as np
import pytest

from niftislice.cli import main
from niftislice.pictures.drawing import (
    ELLIPSIS,
    TextStyle,
    caption_strip,
    draw_text,
    drawable,
    fit_text,
    text_box_size,
)


def _bright_montage(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[np.ndarray, dict]:
    """A contact sheet of a volume that is bright tissue everywhere (pixel value 200)."""
    src = tmp_path / "bright.nii.gz"
    nib.save(nib.Nifti1Image(np.full((60, 70, 50), 200, np.int16), np.eye(4)), src)
    out = tmp_path / "o"
    args = ["convert", src, "-o", out, "--montage", "--views", "axial", "--window", "0:255"]
    rc = main([str(a) for a in args] + ["--montage-count", "4"])
    assert rc == 0, capsys.readouterr().err
    sheet = cv2.imread(str(out / "bright" / "bright_axial_montage.png"))
    sheet = cv2.cvtColor(sheet, cv2.COLOR_BGR2RGB)
    side = json.loads((out / "bright" / "bright.json").read_text())
    return sheet, side


def test_slice_numbers_read_on_bright_tissue(tmp_path, capsys):
    """White numbers on a light outline-less background vanish (today: 0-1 white pixels and no
    dark pixel in the label); outlined text has a light fill ringed by dark pixels."""
    sheet, side = _bright_montage(tmp_path, capsys)
    tiles = side["pictures"]["montages"][0]["tiles"]
    assert len(tiles) == 4
    for t in tiles:
        x, y, h = t["x"], t["y"], t["height"]
        label = sheet[y + h - 24 : y + h, x : x + 36]
        fill = label.min(axis=2) >= 235  # white glyph pixels (tissue is 200)
        dark = label.max(axis=2) <= 60
        assert fill.sum() >= 5 and dark.sum() >= 12, (t["index"], fill.sum(), dark.sum())
        # every glyph pixel touches the outline within 2 px: the tissue never meets the glyph
        near_dark = cv2.dilate(dark.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
        assert (fill & ~near_dark).sum() == 0


def test_montage_caption_is_fitted_with_an_ellipsis(tmp_path, capsys):
    """The caption of a narrow sheet ends with '...' after a whole word (today: 'window 0.')."""
    sheet, _ = _bright_montage(tmp_path, capsys)
    style = TextStyle.of(0.45)
    caption = "bright.nii.gz  axial  window 0..255  radiological"
    fitted = fit_text(caption, sheet.shape[1] - 12, style)
    assert fitted.endswith(ELLIPSIS) and text_box_size(fitted, style)[0] <= sheet.shape[1] - 12
    assert caption.startswith(fitted[: -len(ELLIPSIS)])
    assert fitted[: -len(ELLIPSIS)].split()[-1] in caption.split()  # cut after a whole word
    # and that fitted caption is what the sheet carries at its foot
    strip = caption_strip([caption], sheet.shape[1])
    np.testing.assert_array_equal(sheet[-strip.shape[0] :], strip)


def test_fit_text_keeps_what_fits_and_cuts_long_words():
    style = TextStyle.of(0.45)
    assert fit_text("short", 500, style) == "short"
    long_word = "x" * 200
    fitted = fit_text(long_word, 100, style)
    assert fitted.endswith(ELLIPSIS) and text_box_size(fitted, style)[0] <= 100
    assert fit_text("anything", 2, style) == ""


def test_outline_under_fill_not_an_offset_shadow():
    """A shadow offset to one side doubles strokes ('coronal' read 'ccronal'); an outline is
    the same on both sides of every glyph."""
    img = np.full((50, 220, 3), 128, np.uint8)
    x0, y0, x1, y1 = draw_text(img, "coronal", (10, 34), 0.8)
    dark = img.max(axis=2) <= 60
    cols = np.nonzero(dark.any(axis=0))[0]
    rows = np.nonzero(dark.any(axis=1))[0]
    fill = img.min(axis=2) >= 200
    fcols = np.nonzero(fill.any(axis=0))[0]
    frows = np.nonzero(fill.any(axis=1))[0]
    # the dark ring extends equally (within a pixel) beyond the fill on the left and right,
    # above and below
    assert abs((fcols[0] - cols[0]) - (cols[-1] - fcols[-1])) <= 1
    assert abs((frows[0] - rows[0]) - (rows[-1] - frows[-1])) <= 1
    assert x0 <= cols[0] and cols[-1] < x1 and y0 <= rows[0] and rows[-1] < y1


def test_names_the_font_cannot_draw_become_question_marks():
    """Hershey fonts draw printable ASCII only; cv2.putText crashes on lone surrogates."""
    name = b"scan\xff\xfe\x1b]0;x\x07.nii".decode("utf-8", "surrogateescape")
    assert drawable(name) == "scan??" + "?]0;x?.nii"
    img = np.zeros((30, 200), np.uint8)
    draw_text(img, name, (2, 20), 0.5)  # grey image: drawn, no crash
    assert img.max() == 255


def test_preview_and_montage_share_the_drawing_module():
    """One module draws text and letters (issue 10): neither the preview nor the contact sheet
    calls cv2.putText itself."""
    from niftislice.pictures import histogram, montage, preview

    for mod in (montage, preview, histogram):
        assert "putText" not in Path(mod.__file__).read_text(), mod.__name__


def test_histogram_caption_says_what_it_shows():
    """anatomical.nii holds -610 .. 30393; the histogram's axis stops at the window + 25 %.
    Today the caption read 'values -603 .. 1.607e+04', which looked like the data's range."""
    from conftest import NIBABEL_DATA

    from niftislice.pictures.histogram import axis_caption, data_range, number, value_histogram

    vol = niftislice_load(NIBABEL_DATA / "anatomical.nii")
    f = vol.file
    extent = data_range(vol.raw, f.slope, f.inter)
    assert extent == (-610.0, 30393.0)
    counts, x0, x1 = value_histogram(vol.raw, f.slope, f.inter, vol.plan.window, 900, extent)
    caption = axis_caption(extent, x0, x1, (x1 - x0) / (2 * len(counts)))
    assert caption.startswith("data -610 .. 30393; axis ")
    assert "e+" not in caption and "log counts" in caption
    assert [number(v) for v in (16072.4, -603.2, 0.25, 1e-5, 0)] == [
        "16072",
        "-603.2",
        "0.25",
        "1.000e-05",
        "0",
    ]


def niftislice_load(path: Path):
    import niftislice

    return niftislice.load(path, niftislice.ConvertOptions(slices="middle"))
