"""Views are cut slab by slab: the images do not depend on where the slabs end."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from _batch_helpers import write_nifti
from conftest import NIBABEL_DATA

import niftislice
from niftislice import ConvertOptions
from niftislice import plan as pipeline


def _snapshot(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


CASES = {
    "sample, montage, every 3rd slice": (None, {"slices": "::3", "montage": True}),
    "sample, skip empty": (None, {"skip_empty": True, "views": "sagittal"}),
    "sample, one slice": (None, {"slices": "middle"}),
    "4D": ("example4d.nii.gz", {}),
    "RGB": ("rgb", {}),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES, ids=list(CASES))
@pytest.mark.parametrize("slab_bytes", [1, 100_000])  # a slab per slice; about 2 slices
def test_images_and_sidecar_do_not_depend_on_slab_size(
    case, slab_bytes, tmp_path, monkeypatch, sample, template
):
    source, opts = CASES[case]
    if source is None:
        path = sample
    elif source == "rgb":
        data, aff = template
        rgb = np.zeros(data.shape, dtype=[("R", "u1"), ("G", "u1"), ("B", "u1")])
        rgb["R"], rgb["G"], rgb["B"] = data, data // 2, 255 - data
        path = write_nifti(tmp_path / "rgb.nii.gz", rgb[::2, ::2, ::2], aff)
    else:
        path = NIBABEL_DATA / source
    options = ConvertOptions.parse(jobs=1, **opts)
    one = niftislice.convert(path, tmp_path / "whole", options)
    monkeypatch.setattr(pipeline, "SLAB_BYTES", slab_bytes)  # 1: a slab per slice
    many = niftislice.convert(path, tmp_path / "slabs", options)
    assert one.ok and many.ok
    a, b = _snapshot(tmp_path / "whole"), _snapshot(tmp_path / "slabs")
    assert sorted(a) == sorted(b) and len(a) > 3
    for name in a:  # images, montages and sidecars alike
        assert a[name] == b[name], name
