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


def _overlap(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


@pytest.mark.parametrize("name", list(VOLUMES))
def test_layout_one_scale_minimum_panels_text_clear_of_images(tmp_path, name):
    """Panels on one physical scale (the largest extent is TARGET px); every image box at
    least MIN_PANEL; no label overlaps another label or any image (today on 33 x 41 x 25 the
    slice label sat on the view name and the letters on the anatomy)."""
    from niftislice.pictures.preview import MIN_PANEL, TARGET, build_preview

    src = _volume(tmp_path, name)
    pv = build_preview(niftislice.load(src, niftislice.ConvertOptions(slices="middle")))
    assert [p.view for p in pv.panels] == ["axial", "coronal", "sagittal"]
    sizes = [(p.image_box[2] - p.image_box[0], p.image_box[3] - p.image_box[1]) for p in pv.panels]
    assert max(max(s) for s in sizes) == TARGET
    scales = [
        mm
        for p, (w, h) in zip(pv.panels, sizes, strict=True)
        for mm, n in zip(p.mm_per_px, (w, h), strict=True)
        if n >= 40  # whole-pixel rounding of thin slabs aside
    ]
    assert max(scales) / min(scales) < 1.03, scales
    # side by side, each image centred in a box of at least MIN_PANEL px each way
    for a, b in zip(pv.panels, pv.panels[1:], strict=False):
        wa, wb = a.image_box[2] - a.image_box[0], b.image_box[2] - b.image_box[0]
        gap = b.image_box[0] - a.image_box[2]
        assert gap >= (max(wa, MIN_PANEL) - wa) // 2 + (max(wb, MIN_PANEL) - wb) // 2
    lefts = [p.image_box[0] for p in pv.panels]
    assert lefts == sorted(lefts)
    h, w = pv.image.shape[:2]
    boxes = list(pv.text_boxes)
    assert len(boxes) == 3 * 5  # four letters and a title per panel
    for i, t in enumerate(boxes):
        assert 0 <= t[0] < t[2] <= w and 0 <= t[1] < t[3] <= h
        for other in boxes[i + 1 :]:
            assert not _overlap(t, other), (t, other)
        for p in pv.panels:
            assert not _overlap(t, p.image_box), (t, p)


def test_thin_slab_is_not_stretched(tmp_path):
    """Two 5 mm CT slices: the coronal image is as wide as the axial one and 10/256 as tall."""
    from niftislice.pictures.preview import MIN_PANEL, build_preview

    src = _volume(tmp_path, "ct_2_slices")
    pv = build_preview(niftislice.load(src, niftislice.ConvertOptions(slices="middle")))
    axial, coronal, _ = (p.image_box for p in pv.panels)
    assert coronal[2] - coronal[0] == axial[2] - axial[0] == 320
    assert coronal[3] - coronal[1] == round(320 * 10 / 256)
    # the panel around it is still MIN_PANEL tall: the histogram starts below that
    assert pv.image.shape[0] > MIN_PANEL + 100
