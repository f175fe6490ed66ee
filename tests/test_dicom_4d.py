"""4D DICOM: several volumes of one series (repeated slice positions) become one 4D volume,
in dcm2niix's order (by InstanceNumber), when the series tells the volumes apart; otherwise one
line naming the series and the reason. Palette colour series are refused the same way.

Reference: niftislice on the DICOM folder and niftislice on dcm2niix's 4D NIfTI give the same
images (count, sizes, pixels within 2 grey levels on 99.5 %), volume by volume.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from _dicom_helpers import AXIAL, dcm2niix, small, write_series
from pydicom.uid import generate_uid
from test_dicom_convert import assert_same_images, only_output, run

import niftislice
from niftislice import ConvertOptions

#: (volume t, slice k) -> attributes to set on that file
Tags = Callable[[int, int], dict[str, object]]


def write_4d(folder: Path, tags: Tags, volumes: int = 3, skip: tuple[int, int] | None = None):
    """``volumes`` volumes of an 8-slice axial MR series, one file per slice, values scaled
    by 1 + t so each volume differs; InstanceNumber runs on through the volumes unless
    ``tags`` says otherwise. ``skip``: a (t, k) file left out."""
    uid = generate_uid()
    base = {"rows": 40, "columns": 36, "slices": 8}
    for t in range(volumes):
        spec = small(**AXIAL, **base, modality="MR", series_uid=uid, intercept=0.0)
        spec.scale, spec.number, spec.description = 1.0 + t, 7, "fMRI"
        write_series(folder / f"v{t}", spec)
        for f in sorted((folder / f"v{t}").iterdir()):
            ds = pydicom.dcmread(f)
            k = int(ds.InstanceNumber) - 1
            ds.InstanceNumber = t * 8 + k + 1
            ds.RepetitionTime = "2000"
            for key, value in tags(t, k).items():
                setattr(ds, key, value)
            if skip != (t, k):
                ds.save_as(folder / f"T{t}_{f.name}")
            f.unlink()
        (folder / f"v{t}").rmdir()


CASES: dict[str, Tags] = {
    "temporal-position": lambda t, k: {"TemporalPositionIdentifier": t + 1},
    "acquisition-number": lambda t, k: {"AcquisitionNumber": t + 1},
    # InstanceNumber counts the volumes backwards: dcm2niix follows it, so does niftislice
    "instance-against-acquisition": lambda t, k: {
        "AcquisitionNumber": t + 1,
        "InstanceNumber": (2 - t) * 8 + k + 1,
    },
}


@pytest.mark.parametrize("case", list(CASES))
def test_4d_series_equals_dcm2niix(tmp_path: Path, case: str) -> None:
    write_4d(tmp_path / "dicom", CASES[case])
    [ref] = dcm2niix(tmp_path / "dicom", tmp_path / "ref")
    assert nib.load(ref).shape == (36, 40, 8, 3)
    opts = ConvertOptions(jobs=1)
    assert niftislice.convert(tmp_path / "dicom", tmp_path / "ours", opts).ok
    assert niftislice.convert(ref, tmp_path / "theirs", opts).ok
    ours = only_output(tmp_path / "ours")
    assert len(list((ours / "axial").glob("*_t0002_axial_*.png"))) == 8
    assert_same_images(ours, only_output(tmp_path / "theirs"))
    source = json.loads(next(ours.glob("*.json")).read_text())["source"]
    assert source["shape"] == [36, 40, 8, 3] and source["time_step"] == 2.0
    assert source["dicom"]["volumes"] == 3 and len(source["dicom"]["files"]) == 24
    assert source["dicom"]["volumes_by"] in ("TemporalPositionIdentifier", "AcquisitionNumber")


@pytest.mark.parametrize("restart", [False, True])
def test_load_and_info_pick_volumes(tmp_path: Path, restart: bool) -> None:
    """With InstanceNumber restarting in each volume, the temporal position breaks the ties (and
    each volume stays whole; dcm2niix v1.0.20260724 mixes slices of different volumes there)."""
    tags = CASES["temporal-position"]
    if restart:
        tags = lambda t, k: {"TemporalPositionIdentifier": t + 1, "InstanceNumber": k + 1}  # noqa: E731
    write_4d(tmp_path / "dicom", tags)
    facts = niftislice.info(tmp_path / "dicom")
    assert facts["shape"] == [36, 40, 8, 3]
    first = niftislice.load(tmp_path / "dicom", volume=0).raw
    last = niftislice.load(tmp_path / "dicom", volume=-1).raw
    assert first.shape == last.shape == (36, 40, 8)
    assert np.array_equal(last, first * 3)  # stored values are scaled by 1 + t
    middle = niftislice.load(tmp_path / "dicom", volume=1).raw
    assert np.array_equal(middle, first * 2)


@pytest.mark.parametrize(
    ("tags", "skip", "reason"),
    [
        (lambda t, k: {}, None, "neither TemporalPositionIdentifier nor AcquisitionNumber"),
        (
            lambda t, k: {"TemporalPositionIdentifier": (t + k) % 3 + 1},
            None,
            "InstanceNumber and TemporalPositionIdentifier disagree",
        ),
        (lambda t, k: {"TemporalPositionIdentifier": t + 1}, (1, 4), "repeat unevenly"),
    ],
    ids=["copies", "disagreeing", "volume-cut-short"],
)
def test_volumes_not_told_apart_are_one_line(
    tmp_path: Path, capsys, tags: Tags, skip: tuple[int, int] | None, reason: str
) -> None:
    write_4d(tmp_path / "dicom", tags, skip=skip)
    rc, _, err = run(capsys, "convert", tmp_path / "dicom", "-o", tmp_path / "out")
    assert rc == 1
    [line] = err.strip().splitlines()[:-1]
    assert 'series 7 "fMRI"' in line and reason in line, line


def test_palette_colour_is_one_line_naming_the_series(tmp_path: Path, capsys) -> None:
    spec = small(**AXIAL, rows=20, columns=18, slices=4)
    spec.signed, spec.intercept = False, 0.0
    write_series(tmp_path / "dicom", spec)
    for f in (tmp_path / "dicom").iterdir():
        ds = pydicom.dcmread(f)
        ds.PhotometricInterpretation = "PALETTE COLOR"
        ds.save_as(f)
    rc, _, err = run(capsys, "convert", tmp_path / "dicom", "-o", tmp_path / "out")
    assert rc == 1
    [line] = err.strip().splitlines()[:-1]
    assert 'series 3 "Head 3mm" (4 files in dicom)' in line
    assert "palette colour images are not supported" in line
