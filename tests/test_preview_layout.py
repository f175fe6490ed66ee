"""``preview`` on thin, tiny and huge volumes: panels laid out by physical size, a bounded
picture, every panel at least a minimum size, text that never overlaps."""

from __future__ import annotations

from pathlib import Path

import cv2
import nibabel as nib
import numpy as np
import pytest

import niftislice
from niftislice.cli import main

# (name, shape, voxel size mm): the volumes users met (issue 11)
VOLUMES = {
    "ct_2_slices": ((512, 512, 2), (0.5, 0.5, 5.0)),
    "one_slice": ((197, 233, 1), (1.0, 1.0, 1.0)),
    "mr_1024_one_slice": ((1024, 1024, 1), (0.25, 0.25, 3.0)),
    "small_33x41x25": ((33, 41, 25), (2.0, 2.0, 2.0)),
    "small_53x63x46": ((53, 63, 46), (3.0, 3.0, 3.0)),
    "sample": ((197, 233, 189), (1.0, 1.0, 1.0)),
}
MAX_SIDE = 1600  # px: a preview is something to glance at, whatever the volume


def _volume(tmp_path: Path, name: str) -> Path:
    """A head-like volume of the given shape and voxel size (the template, resampled)."""
    shape, zooms = VOLUMES[name]
    if name == "sample":
        return niftislice.sample_path()
    t = np.asanyarray(nib.load(niftislice.sample_path()).dataobj)
    idx = [np.linspace(0, t.shape[a] - 1, shape[a]).round().astype(int) for a in range(3)]
    if shape[2] <= 2:
        idx[2] = np.array([90, 92][: shape[2]])
    data = t[np.ix_(*idx)].astype(np.int16)
    img = nib.Nifti1Image(data, np.diag([*zooms, 1.0]))
    img.header.set_xyzt_units("mm")
    path = tmp_path / f"{name}.nii.gz"
    nib.save(img, path)
    return path


def _preview(tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str) -> np.ndarray:
    src = _volume(tmp_path, name)
    out = tmp_path / f"{name}.png"
    rc = main(["preview", str(src), "-o", str(out)])
    err = capsys.readouterr().err
    assert rc == 0, err
    img = cv2.imread(str(out))
    assert img is not None
    return img


@pytest.mark.parametrize("name", list(VOLUMES))
def test_preview_size_is_bounded_whatever_the_volume(tmp_path, capsys, name):
    img = _preview(tmp_path, capsys, name)
    h, w = img.shape[:2]
    # today: 16720 x 490 for two slices, 137887 x 490 for one slice
    assert w <= MAX_SIDE and h <= MAX_SIDE, (w, h)
    assert w <= 4 * h, (w, h)
    assert w >= 3 * 120 and h >= 120 + 100  # three panels of at least 120 px, a histogram

