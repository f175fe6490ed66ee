"""Animations: one frame per exported slice, in slice order, one window, at the asked speed."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from _pictures_helpers import centre, phantom, save_nifti, sidecar, slice_image
from _pictures_helpers import convert as run_convert

from niftislice.cli import main
from niftislice.errors import OptionError
from niftislice.options import ConvertOptions
from niftislice.pictures.animation import encode_animation, frame_duration_ms, require_pillow

Image = pytest.importorskip("PIL.Image")


@pytest.fixture(scope="module")
def sample_gif(tmp_path_factory):
    out = tmp_path_factory.mktemp("a")
    rc = main(
        [
            "convert",
            "--sample",
            "-o",
            str(out),
            "--views",
            "coronal",
            "--gif",
            "--webp-anim",
            "--fps",
            "20",
            "--slices",
            "20:200:4",
            "-j",
            "1",
            "-q",
        ]
    )
    assert rc == 0
    return out / "mni152_t1_1mm"


@pytest.mark.slow
def test_gif_has_one_frame_per_slice_in_order(sample_gif):
    meta = sidecar(sample_gif)
    (gif,) = [a for a in meta["pictures"]["animations"] if a["format"] == "gif"]
    indices = [s["index"] for s in meta["views"]["coronal"]["slices"]]
    assert indices == list(range(20, 200, 4)) and gif["slices"] == indices
    with Image.open(sample_gif / gif["file"]) as im:
        assert im.n_frames == len(indices) == gif["frames"]
        assert im.info["loop"] == 0 and im.info["duration"] == 50  # 20 fps
        for pos in (0, 17, len(indices) - 1):  # frames are the exported images, grey levels exact
            im.seek(pos)
            frame = np.asarray(im.convert("L"))
            np.testing.assert_array_equal(
                centre(frame), centre(slice_image(sample_gif, "coronal", indices[pos]))
            )


def test_webp_animation_has_one_frame_per_slice(sample_gif):
    meta = sidecar(sample_gif)
    (webp,) = [a for a in meta["pictures"]["animations"] if a["format"] == "webp"]
    assert webp["file"] == "mni152_t1_1mm_coronal_animation.webp"
    with Image.open(sample_gif / webp["file"]) as im:
        assert im.n_frames == 45
        im.seek(22)
        frame = np.asarray(im.convert("L")).astype(int)
        exported = slice_image(sample_gif, "coronal", 20 + 4 * 22).astype(int)
        assert np.abs(centre(frame) - centre(exported)).mean() < 3  # lossy, but the same picture


def test_identical_slices_still_get_their_own_frames(tmp_path):
    """Empty slices look alike; encoders merge equal frames, the slice label keeps them apart."""
    data = np.zeros((12, 14, 10), np.int16)
    data[4:8, 4:9, 6] = 100
    path = save_nifti(tmp_path / "sparse.nii.gz", data, np.eye(4))
    out = run_convert(path, tmp_path / "o", views="axial", gif=True, webp_anim=True)
    for anim in sidecar(out)["pictures"]["animations"]:
        with Image.open(out / anim["file"]) as im:
            assert im.n_frames == 10
            assert im.size == (12 * 8, 14 * 8)  # tiny images enlarged by a whole factor


@pytest.mark.slow
def test_colour_frames(tmp_path):
    path = save_nifti(tmp_path / "ph.nii.gz", phantom(), np.eye(4))
    out = run_convert(path, tmp_path / "o", views="sagittal", gif=True, colormap="hot", fps=2)
    (anim,) = sidecar(out)["pictures"]["animations"]
    with Image.open(out / anim["file"]) as im:
        assert im.n_frames == 30 and im.info["duration"] == 500
        im.seek(15)
        rgb = np.asarray(im.convert("RGB")).astype(int)
    assert (rgb[..., 0] - rgb[..., 2]).max() > 100  # hot: red well above blue


def test_frame_duration_and_format_checks():
    assert (
        frame_duration_ms(10) == 100 and frame_duration_ms(3) == 330 and frame_duration_ms(50) == 20
    )
    with pytest.raises(OptionError, match="fps"):
        ConvertOptions.parse(gif=True, fps=0)
    with pytest.raises(OptionError, match="gif or webp"):
        encode_animation([np.zeros((4, 4), np.uint8)], "apng", 10)


def test_missing_pillow_says_what_to_install(monkeypatch):
    """Pillow is a dependency; a broken install still gets one line saying what to do (the
    options' own check: test_extras.test_missing_module_is_one_option_error)."""
    monkeypatch.setitem(sys.modules, "PIL.Image", None)  # import PIL.Image now fails
    with pytest.raises(OptionError, match=r"needs Pillow"):
        require_pillow()
