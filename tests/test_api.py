"""The Python API mirrors the CLI and serves ML code that never writes files."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
from conftest import NIBABEL_DATA

import niftislice
from niftislice import ConvertOptions, IndexRange, OptionError


def test_load_yields_the_images_convert_writes(tmp_path):
    src = NIBABEL_DATA / "anatomical.nii"
    opts = ConvertOptions(views="coronal")
    result = niftislice.convert(src, tmp_path, opts)
    assert result.ok and result.count("converted") == 1 and result.images == 41
    side = json.loads((tmp_path / "anatomical" / "anatomical.json").read_text())
    vol = niftislice.load(src, opts)
    for s, entry in zip(vol.slices("coronal"), side["views"]["coronal"]["slices"], strict=True):
        png = niftislice.encoding.decode(
            (tmp_path / "anatomical" / "coronal" / entry["file"]).read_bytes()
        )
        assert s.index == entry["index"]
        assert np.array_equal(s.image, png)
        assert np.allclose(s.pixel_to_world, entry["pixel_to_world"], atol=1e-6)


def test_volume_data_is_canonical_ras_in_data_units():
    src = NIBABEL_DATA / "anatomical.nii"
    vol = niftislice.load(src)
    ref = nib.as_closest_canonical(nib.load(src))
    assert np.array_equal(vol.data(), ref.get_fdata())
    assert np.allclose(vol.affine, ref.affine)
    assert vol.spacing_mm == pytest.approx((2.0, 2.0, 2.0))
    assert "LAS" in repr(vol)


def test_4d_load_picks_a_volume():
    src = NIBABEL_DATA / "example4d.nii.gz"
    v1 = niftislice.load(src, volume=1)
    ref = np.asanyarray(nib.as_closest_canonical(nib.load(src)).dataobj)[..., 1]
    assert v1.volume_index == 1 and np.array_equal(v1.data(), ref)


def test_options_reject_bad_values_by_name():
    for kwargs, word in [
        ({"views": "axial,top"}, "views"),
        ({"spacing": -1}, "spacing"),
        ({"spacing": "wide"}, "spacing"),
        ({"interp": "bilinear"}, "interp"),
        ({"bit_depth": 12}, "bit-depth"),
        ({"format": "bmp"}, "format"),
        ({"quality": 0, "format": "jpg"}, "quality"),
        ({"slices": "1:2:0"}, "slices"),
        ({"volumes": "x"}, "volumes"),
        ({"jobs": 0}, "jobs"),
        ({"overwrite": True, "skip_existing": True}, "overwrite"),
    ]:
        with pytest.raises(OptionError, match=word):
            ConvertOptions.parse(**kwargs)
    assert ConvertOptions(format="JPEG").format.value == "jpg"
    assert ConvertOptions(views=["sagittal", "axial"]).views[0].value == "sagittal"


@pytest.mark.parametrize("text", ["all", "middle", "3", "-1", "2:10", "::20", "1:9:2", ":5"])
def test_index_range_text_gives_the_range_back(text: str) -> None:
    """The command line's defaults are the options' values written back as text."""
    r = IndexRange.parse(text, "slices")
    assert IndexRange.parse(r.text, "slices") == r


@pytest.mark.parametrize(
    "text", ["auto", "minmax", "dicom", "brain", "40:80", "p2:p98", "-100:500", "40/400"]
)
def test_window_text_gives_the_window_back(text: str) -> None:
    spec = ConvertOptions(window=text).window
    assert ConvertOptions(window=spec.text).window == spec


def test_cli_defaults_are_the_options_defaults() -> None:
    from niftislice.cli.parser import DEFAULTS

    parsed = ConvertOptions.parse(**DEFAULTS)
    assert parsed == ConvertOptions() and DEFAULTS["window"] == "auto"
    assert DEFAULTS["slices"] == "all" and DEFAULTS["views"] == "axial,coronal,sagittal"
