"""The automatic window as a user meets it: a head CT in the brain window whatever its storage
(padding left out), MR and the sample exactly as before, and one window per 4D series in
``preview``, ``load`` and ``convert`` alike."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from _ct_helpers import PADDING_HU, STORAGES, head_ct_hu, save_ct
from conftest import NIBABEL_DATA, patch_header, save

import niftislice
from niftislice.cli import main
from niftislice.encoding import decode


def _convert(src: Path, out: Path, *args: str) -> dict:
    assert main(["convert", "-q", str(src), "-o", str(out), *args]) == 0
    stem = src.name.split(".")[0]
    return json.loads((out / stem / f"{stem}.json").read_text())


def _grey_and_white(vol: niftislice.api.Volume, k: int) -> tuple[float, float]:
    """Mean pixel of grey matter (36..44 HU) and white matter (24..32 HU) in axial slice k."""
    hu = vol.data()[:, :, k][::-1, ::-1].T  # display orientation of a radiological axial slice
    img = next(s.image for s in vol.slices("axial") if s.index == k).astype(np.float64)
    return float(img[(hu >= 36) & (hu <= 44)].mean()), float(img[(hu >= 24) & (hu <= 32)].mean())


@pytest.mark.slow
@pytest.mark.parametrize("storage", STORAGES)
def test_head_ct_is_shown_in_the_brain_window(tmp_path, storage):
    hu, aff = head_ct_hu(2)
    src = save_ct(tmp_path / f"head_{storage}.nii", hu, aff, storage)
    sc = _convert(src, tmp_path / "out", "--slices", "middle")
    assert (sc["intensity"]["low"], sc["intensity"]["high"]) == (0.0, 80.0)
    reason = sc["window"]["reason"]
    assert "CT recognised" in reason and "brain window" in reason
    assert sc["window"]["ct"]["preset"] == "brain"
    padding = sc["window"]["padding"]
    if storage == "uint16_inter":  # stored as 0, the air floor: nothing to tell apart
        assert padding is None
    else:
        assert padding["value"] == PADDING_HU and 0.15 < padding["fraction"] < 0.3
    # what a user sees: grey and white matter apart (today both are one flat grey)
    vol = niftislice.load(src, niftislice.ConvertOptions(spacing="native"))
    grey, white = _grey_and_white(vol, hu.shape[2] // 2)
    assert grey - white > 25
    # and the written image is that one
    png = next((tmp_path / "out" / src.name.split(".")[0] / "axial").iterdir())
    assert decode(png.read_bytes()).std() > 30


@pytest.mark.slow
def test_explicit_window_still_wins_on_ct(tmp_path):
    hu, aff = head_ct_hu(3)
    src = save_ct(tmp_path / "head.nii", hu, aff, "int16")
    sc = _convert(src, tmp_path / "out", "--slices", "middle", "--window", "bone")
    assert (sc["intensity"]["low"], sc["intensity"]["high"]) == (-500.0, 1300.0)
    assert "window" not in sc


def _numpy_auto(data: np.ndarray) -> tuple[float, float]:
    lo, hi = np.percentile(data[np.isfinite(data)], [0.5, 99.5])
    return float(lo), float(hi)


@pytest.mark.slow
@pytest.mark.parametrize(
    "path",
    [niftislice.sample_path(), NIBABEL_DATA / "anatomical.nii", NIBABEL_DATA / "example4d.nii.gz"],
    ids=["sample", "anatomical", "example4d"],
)
def test_mr_keeps_the_plain_percentile_window(tmp_path, path):
    """No rule applies to MR: the window is numpy's 0.5-99.5 percentiles of the series, the
    method text is unchanged and the sidecar has no ``window`` section."""
    sc = _convert(Path(path), tmp_path / "out", "--slices", "middle")
    data = np.asanyarray(nib.load(path).dataobj).astype(np.float64)
    assert (sc["intensity"]["low"], sc["intensity"]["high"]) == pytest.approx(_numpy_auto(data))
    assert sc["intensity"]["method"] == "auto (percentiles 0.5-99.5 of finite voxels)"
    assert "window" not in sc


def _series(tmp_path: Path, small_head) -> Path:
    """A 4D series whose brightness grows 4-fold over time (contrast arriving)."""
    data, aff = small_head
    series = np.stack([data * (1 + t) for t in range(4)], axis=-1).astype(np.int16)
    return save(tmp_path / "series.nii.gz", series, aff)


@pytest.mark.slow
@pytest.mark.parametrize("window", [None, "p2:p98", "0:300"])
def test_preview_load_and_convert_share_the_series_window(tmp_path, small_head, window):
    src = _series(tmp_path, small_head)
    extra = [] if window is None else ["--window", window]
    sc = _convert(src, tmp_path / "out", "--spacing", "native", *extra)
    expected = (sc["intensity"]["low"], sc["intensity"]["high"])
    opts = niftislice.ConvertOptions(spacing="native", window=window or "auto")
    for t in (0, 3):
        vol = niftislice.load(src, opts, volume=t)
        assert (vol.plan.window.low, vol.plan.window.high) == expected
        # the very images convert wrote for that volume
        k = vol.plan.geometries[niftislice.View.AXIAL].n_slices // 2
        img = next(s.image for s in vol.slices("axial") if s.index == k)
        written = tmp_path / "out" / "series" / "axial" / f"series_t{t:04d}_axial_{k:04d}.png"
        np.testing.assert_array_equal(img, decode(written.read_bytes()))
    if window is None:  # the whole series, not volume 0: four times brighter at the end
        data = np.asanyarray(nib.load(src).dataobj).astype(np.float64)
        assert expected == pytest.approx(_numpy_auto(data))
        assert expected[1] > 2 * _numpy_auto(data[..., 0])[1]
    # preview (a picture of volume 0) runs through the same plan
    assert main(["preview", "-q", str(src), "-o", str(tmp_path / "p.png"), *extra]) == 0


def test_preview_of_a_4d_series_shows_a_selected_volume_and_says_which(tmp_path, small_head):
    """With `--volumes 2:` convert writes volumes 2 and 3 in their window; the preview shows
    volume 2 in that window (today: volume 0, which is not selected), and says so."""
    from niftislice.pictures.preview import _caption, render_preview

    src = _series(tmp_path, small_head)
    sc = _convert(src, tmp_path / "out", "--volumes", "2:", "--views", "axial")
    assert main(["preview", "-q", str(src), "-o", str(tmp_path / "p.png"), "--volumes", "2:"]) == 0
    opts = niftislice.ConvertOptions(volumes="2:", slices="middle")
    shown = niftislice.api.Volume(src, opts, volume=None)
    assert shown.volume_index == 2
    assert (shown.plan.window.low, shown.plan.window.high) == (
        sc["intensity"]["low"],
        sc["intensity"]["high"],
    )
    np.testing.assert_array_equal(decode((tmp_path / "p.png").read_bytes()), render_preview(shown))
    window, names = _caption(shown)
    assert window.endswith(", set on 2 of the 4 volumes") and "volume 2 shown" in names


def _dicom_ct_as_nifti(tmp_path: Path, name: str) -> Path:
    """A real CT slice of pydicom-data, stored as dcm2niix would: the stored integers with the
    DICOM rescale as scl_slope/scl_inter (padding stays as the scanner wrote it)."""
    import data_store  # pydicom-data: real DICOM files, installed (no network at test time)
    import pydicom

    ds = pydicom.dcmread(Path(data_store.__file__).parent / "data" / f"{name}.dcm")
    assert ds.Modality == "CT"
    stored = ds.pixel_array.T[:, :, None]  # (columns, rows, 1)
    dx, dy = (float(v) for v in ds.PixelSpacing)
    path = save(tmp_path / f"{name}.nii", stored, np.diag([dy, dx, 5.0, 1.0]))
    slope, inter = float(ds.RescaleSlope), float(ds.RescaleIntercept)
    return patch_header(path, scl_slope=slope, scl_inter=inter)


@pytest.mark.slow
@pytest.mark.parametrize(
    "name,preset,padding",
    [
        ("693_UNCR", "brain", -3024.0),  # head (subdural haematoma); PixelPaddingValue -2000
        ("bad_sequence", "soft-tissue", None),  # a close-up of the spine and back muscles
        ("explicit_VR-UN", "soft-tissue", None),  # abdomen (pancreas)
    ],
)
def test_real_ct_slices_get_their_window(tmp_path, name, preset, padding):
    src = _dicom_ct_as_nifti(tmp_path, name)
    sc = _convert(src, tmp_path / "out")
    assert sc["window"]["ct"]["preset"] == preset
    assert (sc["window"]["padding"] or {}).get("value") == padding


def test_dicom_modality_decides(tmp_path, small_head):
    """The reader's modality hook: the same values are CT when the source says so, and never
    CT when it names another modality."""
    import dataclasses

    from niftislice.plan import make_plan
    from niftislice.read import iter_volumes, open_source

    hu, aff = head_ct_hu(3)
    path = save_ct(tmp_path / "head.nii", hu, aff, "int16")
    nf = open_source(path)
    opts = niftislice.ConvertOptions()
    for modality, ct in [(None, True), ("CT", True), ("MR", False)]:
        src = dataclasses.replace(nf, modality=modality)
        plan = make_plan(src, opts, lambda s=src: (a for _, a in iter_volumes(s)))
        assert (plan.window_reason is not None and plan.window_reason["ct"] is not None) == ct


def test_load_reads_a_series_once_for_its_window(tmp_path, small_head, monkeypatch):
    """The shown volume and the series' statistics come from one pass over the file."""
    import niftislice.plan
    import niftislice.volume

    src = _series(tmp_path, small_head)
    passes = []
    real = niftislice.plan.iter_volumes

    def counting(*args, **kwargs):
        passes.append(args[1] if len(args) > 1 else None)
        return real(*args, **kwargs)

    for module in (niftislice.plan, niftislice.volume):
        monkeypatch.setattr(module, "iter_volumes", counting)
    vol = niftislice.load(src, volume=2)
    assert len(passes) == 1
    data = np.asanyarray(nib.load(src).dataobj).astype(np.float64)
    assert (vol.plan.window.low, vol.plan.window.high) == pytest.approx(_numpy_auto(data))


@pytest.mark.parametrize("layout", ["files", "webdataset"])
def test_convert_reads_a_series_once_when_it_fits(tmp_path, small_head, monkeypatch, layout):
    """A series within ``HOLD_BYTES`` is decompressed once for its window and its images; a
    longer one twice (one volume at a time); the images, sidecar and shards are the same."""
    import niftislice.export
    import niftislice.plan

    src = _series(tmp_path, small_head)
    real = niftislice.export.iter_volumes
    outputs = {}
    passes: list[object] = []

    def counting(*args, **kwargs):
        passes.append(args[1] if len(args) > 1 else None)
        return real(*args, **kwargs)

    for module in (niftislice.plan, niftislice.export):
        monkeypatch.setattr(module, "iter_volumes", counting)
    for hold in (niftislice.export.HOLD_BYTES, 0):
        passes.clear()
        monkeypatch.setattr(niftislice.export, "HOLD_BYTES", hold)
        out = tmp_path / f"out{hold}"
        assert main(["convert", "-q", str(src), "-o", str(out), "--layout", layout]) == 0
        assert len(passes) == (1 if hold else 2)
        outputs[hold] = {
            p.relative_to(out): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()
        }
    assert outputs[0] and outputs[0] == outputs[niftislice.export.HOLD_BYTES]
