"""DICOM folders through the whole tool: convert, info, preview, load, stack, batches.

The reference is dcm2niix: niftislice on the DICOM folder and niftislice on dcm2niix's NIfTI
must give the same outputs (count, sizes) and the same pixels (within 2 grey levels on 99.5 %
of pixels; in practice identical), under the same window: by default a DICOM CT gets a CT
preset from its Modality, which a NIfTI file does not carry.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import nibabel as nib
import numpy as np
import pydicom
import pytest
from _dicom_helpers import (
    AXIAL,
    CORONAL,
    OBLIQUE,
    PHI,
    SAGITTAL_MR_DESCENDING,
    SAGITTAL_NON_SQUARE,
    SeriesSpec,
    canonical,
    dcm2niix,
    small,
)
from _dicom_helpers import write_series as write
from pydicom.data import get_testdata_file

import niftislice
from niftislice import ConvertOptions
from niftislice.cli import main

PYDICOM_FILES = Path(get_testdata_file("CT_small.dcm")).parent
VIEWS = ("axial", "coronal", "sagittal")


def run(capsys: pytest.CaptureFixture[str], *args: object) -> tuple[int, str, str]:
    rc = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return rc, out, err


def images(folder: Path) -> dict[str, list[Path]]:
    return {v: sorted((folder / v).glob("*.png")) for v in VIEWS if (folder / v).is_dir()}


def assert_same_images(ours: Path, theirs: Path) -> None:
    """Same views, counts and sizes; pixels within 2 grey levels on 99.5 % of each image."""
    a, b = images(ours), images(theirs)
    assert {v: len(f) for v, f in a.items()} == {v: len(f) for v, f in b.items()}
    for view in a:
        for fa, fb in zip(a[view], b[view], strict=True):
            ia = cv2.imread(str(fa), cv2.IMREAD_UNCHANGED)
            ib = cv2.imread(str(fb), cv2.IMREAD_UNCHANGED)
            assert ia.shape == ib.shape, (fa, fb)
            close = np.abs(ia.astype(int) - ib.astype(int)) <= 2
            assert close.mean() >= 0.995, (fa, fb, close.mean())


def only_output(root: Path) -> Path:
    [sidecar] = root.rglob("*.json")
    return sidecar.parent


@pytest.mark.parametrize(
    "spec",
    [
        pytest.param(small(**AXIAL, intercept=-1024.0), marks=pytest.mark.slow),
        small(**SAGITTAL_MR_DESCENDING),
        small(**OBLIQUE),
    ],
    ids=["axial-ct", "sagittal-mr-descending", "oblique"],
)
def test_images_equal_those_of_dcm2niix_nifti(tmp_path: Path, spec: SeriesSpec) -> None:
    write(tmp_path / "dicom", spec)
    [ref] = dcm2niix(tmp_path / "dicom", tmp_path / "ref")
    opts = ConvertOptions(jobs=1, window="minmax")
    assert niftislice.convert(tmp_path / "dicom", tmp_path / "ours", opts).ok
    assert niftislice.convert(ref, tmp_path / "theirs", opts).ok
    assert_same_images(only_output(tmp_path / "ours"), only_output(tmp_path / "theirs"))


@pytest.mark.parametrize("folder", ["enhanced", "CT5N"])
def test_real_series_images_equal_dcm2niix(tmp_path: Path, folder: str) -> None:
    src = tmp_path / "dicom"
    if folder == "enhanced":  # per-frame geometry in one multi-frame file
        src.mkdir()
        shutil.copy(get_testdata_file("eCT_Supplemental.dcm"), src / "ect")
    else:
        shutil.copytree(PYDICOM_FILES / "dicomdirtests" / "98892001" / "CT5N", src)
    [ref] = dcm2niix(src, tmp_path / "ref")
    opts = ConvertOptions(jobs=1, spacing="native", window="minmax")
    assert niftislice.convert(src, tmp_path / "ours", opts).ok
    assert niftislice.convert(ref, tmp_path / "theirs", opts).ok
    assert_same_images(only_output(tmp_path / "ours"), only_output(tmp_path / "theirs"))


def test_folder_tree_layout_names_and_sidecar(tmp_path: Path, capsys) -> None:
    study = tmp_path / "study"
    write(study / "scans", small(**AXIAL, number=2, description="Head/neck CT"))
    write(study / "scans" / "mr", small(**CORONAL, number=5, description="T2 cor", slices=8))
    rc, _, err = run(
        capsys, "convert", study, "-o", tmp_path / "out", "--report", tmp_path / "r.json"
    )
    assert rc == 0, err
    out = tmp_path / "out"
    ct = out / "scans" / "0002_Head_neck_CT"
    assert (ct / "axial" / "0002_Head_neck_CT_axial_0000.png").is_file()
    assert len(list((out / "scans" / "mr" / "0005_T2_cor" / "coronal").glob("*.png"))) == 8
    side = json.loads((ct / "0002_Head_neck_CT.json").read_text())
    dicom = side["source"]["dicom"]
    assert side["source"]["format"] == "dicom"
    assert dicom["series_number"] == 2 and dicom["modality"] == "CT"
    assert dicom["series_description"] == "Head/neck CT"
    assert dicom["files"] == [f"scans/IM{k:04d}" for k in range(40)]  # slice order
    assert len(dicom["series_instance_uid"]) > 10 and dicom["study_instance_uid"]
    assert dicom["window"] == {"center": 40.0, "width": 80.0}
    assert side["source"]["scl_inter_applied"] == -1024.0
    report = json.loads((tmp_path / "r.json").read_text())
    sources = sorted(r["source"] for r in report["inputs"])
    assert sources[0].endswith("scans [0002_Head_neck_CT]")


def test_ct_series_gets_a_ct_window_by_default(tmp_path: Path) -> None:
    write(tmp_path / "ct", small(**AXIAL, slices=6))
    assert niftislice.convert(tmp_path / "ct", tmp_path / "out", ConvertOptions(jobs=1)).ok
    side = json.loads(next((tmp_path / "out").rglob("*.json")).read_text())
    assert side["intensity"]["method"].startswith("CT preset")


def _auto_window(src: Path, out: Path) -> dict:
    """The sidecar's `window` section (why the auto window is what it is) for ``src``."""
    assert niftislice.convert(src, out, ConvertOptions(jobs=1, slices="middle")).ok
    return json.loads(next(out.rglob("*.json")).read_text()).get("window") or {}


def test_dicom_modality_decides_the_default_window(tmp_path):
    """The auto window asks a DICOM series' Modality before its values, and the sidecar says
    so. A CT whose values hold no air (0..1020 HU) gets a preset; a real head CT (pydicom-data,
    recognised by its values as a NIfTI) labelled MR does not."""
    write(tmp_path / "ct", small(**AXIAL, slices=6, intercept=0.0, window=None))
    ct = _auto_window(tmp_path / "ct", tmp_path / "out_ct")["ct"]
    assert (ct["evidence"], ct["preset"]) == ("DICOM modality CT", "soft-tissue")
    nii = dcm2niix(tmp_path / "ct", tmp_path / "ct_nii")[0]  # no modality: values alone
    assert _auto_window(nii, tmp_path / "out_ct_nii").get("ct") is None

    import data_store  # pydicom-data (test extra): real DICOM files, no network

    ds = pydicom.dcmread(Path(data_store.__file__).parent / "data" / "693_UNCR.dcm")
    (tmp_path / "mr").mkdir()
    ds.save_as(tmp_path / "mr" / "IM0001")
    head_nii = dcm2niix(tmp_path / "mr", tmp_path / "head_nii")[0]
    assert _auto_window(head_nii, tmp_path / "out_head_nii")["ct"]["preset"] == "brain"
    ds.Modality = "MR"
    ds.save_as(tmp_path / "mr" / "IM0001")
    window = _auto_window(tmp_path / "mr", tmp_path / "out_mr")
    assert window["ct"] is None and window["chosen"].startswith("auto (percentiles")


def test_no_patient_identity_anywhere_unless_asked(tmp_path: Path, capsys) -> None:
    write(tmp_path / "dicom", small(**AXIAL, slices=6))
    rc, _, err = run(capsys, "convert", tmp_path / "dicom", "-o", tmp_path / "out", "--html")
    assert rc == 0, err
    rc, info_out, _ = run(capsys, "info", tmp_path / "dicom", "--json")
    written = [p for p in (tmp_path / "out").rglob("*") if p.is_file()]
    assert any(p.suffix == ".html" for p in written)
    for p in written:
        data = p.read_bytes()
        for value in PHI.values():
            assert value.encode() not in data, p
    for value in PHI.values():
        assert value not in info_out
    rc, _, _ = run(capsys, "convert", tmp_path / "dicom", "-o", tmp_path / "kept", "--keep-phi")
    side = json.loads(next((tmp_path / "kept").rglob("*.json")).read_text())
    assert side["source"]["patient"]["PatientName"] == "Doe^Jane"
    rc, info_out, _ = run(capsys, "info", tmp_path / "dicom", "--keep-phi")
    assert "PatientID: PID-4711" in info_out


def test_window_dicom_uses_the_series_window(tmp_path: Path, capsys) -> None:
    write(tmp_path / "ct", small(**AXIAL, slices=6, window=(40.0, 80.0)))
    write(tmp_path / "mr", small(**AXIAL, slices=6, window=None, number=4, modality="MR"))
    rc, _, err = run(capsys, "convert", tmp_path, "-o", tmp_path / "out", "--window", "dicom")
    assert rc == 0, err
    ct = json.loads(next((tmp_path / "out" / "ct").rglob("*.json")).read_text())["intensity"]
    assert (ct["low"], ct["high"]) == (0.0, 80.0)
    assert "WindowCenter 40" in ct["method"]
    mr = json.loads(next((tmp_path / "out" / "mr").rglob("*.json")).read_text())["intensity"]
    assert mr["method"].startswith("auto")
    assert "no WindowCenter/WindowWidth; using auto" in err


def test_bad_dicom_one_line_each_and_the_batch_goes_on(tmp_path: Path, capsys) -> None:
    src = tmp_path / "export"
    write(src / "good", small(**AXIAL, slices=5))
    write(src / "gap", small(**AXIAL, number=9, slices=6), skip=(2,))
    data = Path(get_testdata_file("CT_small.dcm")).read_bytes()
    (src / "broken").mkdir()
    (src / "broken" / "cut.dcm").write_bytes(data[:-4000])
    shutil.copy(PYDICOM_FILES / "rtstruct.dcm", src / "good" / "RS.dcm")
    shutil.copy(PYDICOM_FILES / "test-SR.dcm", src / "good" / "SR")
    shutil.copy(PYDICOM_FILES / "dicomdirtests" / "DICOMDIR", src / "DICOMDIR")
    rc, _, err = run(capsys, "convert", src, "-o", tmp_path / "out", "-j", "2")
    assert rc == 1
    lines = err.strip().splitlines()
    errors = [ln for ln in lines if ": error: " in ln]
    assert len(errors) == 2, err
    assert any("cut.dcm: truncated pixel data" in ln for ln in errors)
    assert any('series 9 "Head 3mm"' in ln and "uneven slice spacing" in ln for ln in errors)
    assert any("RS.dcm" in ln and "RT Structure Set" in ln and "warning" in ln for ln in lines)
    assert any("Comprehensive SR" in ln and "warning" in ln for ln in lines)
    assert not any("DICOMDIR" in ln for ln in lines)  # the index beside its images is fine
    assert "1 converted, 2 skipped, 2 failed" in lines[-1]
    assert (tmp_path / "out" / "good" / "0003_Head_3mm").is_dir()


def test_dicomdir_alone_is_one_line(tmp_path: Path, capsys) -> None:
    (tmp_path / "cd").mkdir()
    shutil.copy(PYDICOM_FILES / "dicomdirtests" / "DICOMDIR", tmp_path / "cd" / "DICOMDIR")
    rc, _, err = run(capsys, "convert", tmp_path / "cd", "-o", tmp_path / "out")
    assert rc == 1
    [line] = err.strip().splitlines()[:-1]
    assert "DICOMDIR" in line and "all 31 files this DICOMDIR lists are missing" in line


def test_info_preview_and_load_on_a_series_folder(tmp_path: Path, capsys) -> None:
    spec = small(**SAGITTAL_NON_SQUARE)
    write(tmp_path / "mr", spec)
    rc, out, err = run(capsys, "info", tmp_path / "mr")
    assert rc == 0, err
    assert 'DICOM series 3 "Head 3mm", CT, 24 files' in out
    assert "axis codes  P-I-R" in out  # columns go posterior, rows inferior, slices to the right
    rc, _, err = run(capsys, "preview", tmp_path / "mr", "-o", tmp_path / "p.png")
    assert rc == 0 and cv2.imread(str(tmp_path / "p.png")) is not None
    vol = niftislice.load(tmp_path / "mr")
    sag = next(s for s in vol.slices("sagittal") if s.index == 12)
    assert sag.image.ndim == 2 and sag.image.max() > 0
    facts = niftislice.info(tmp_path / "mr")
    assert facts["format"] == "dicom" and facts["shape"] == [110, 70, 24]


def test_folder_with_two_series_refused_by_info(tmp_path: Path, capsys) -> None:
    write(tmp_path / "d", small(**AXIAL, slices=4, number=1))
    write(tmp_path / "e", small(**AXIAL, slices=4, number=2))
    for f in (tmp_path / "e").iterdir():
        f.rename(tmp_path / "d" / f"E{f.name}")
    rc, _, err = run(capsys, "info", tmp_path / "d")
    assert rc == 1 and "holds 2 DICOM series (0001_Head_3mm, 0002_Head_3mm)" in err


def test_stack_writes_a_nifti_on_the_series_grid(tmp_path: Path) -> None:
    spec = small(**SAGITTAL_NON_SQUARE)
    write(tmp_path / "dicom", spec)
    [ref] = dcm2niix(tmp_path / "dicom", tmp_path / "ref")
    opts = ConvertOptions(jobs=1, views="sagittal", spacing="native", lossless=True)
    assert niftislice.convert(tmp_path / "dicom", tmp_path / "out", opts).ok
    niftislice.stack(only_output(tmp_path / "out") / "sagittal", tmp_path / "back.nii.gz")
    back, theirs = nib.load(tmp_path / "back.nii.gz"), nib.load(ref)
    ours_data, ours_aff = canonical(back.get_fdata(), back.affine)
    ref_data, ref_aff = canonical(theirs.get_fdata(), theirs.affine)
    np.testing.assert_allclose(ours_aff, ref_aff, atol=1e-3)
    np.testing.assert_array_equal(ours_data.astype(float), ref_data)


def test_missing_decoder_in_a_batch_names_the_extra(tmp_path: Path, capsys, monkeypatch) -> None:
    from pydicom.pixels.decoders.base import Decoder

    monkeypatch.setattr(Decoder, "is_available", property(lambda self: False))
    (tmp_path / "j2k").mkdir()
    shutil.copy(PYDICOM_FILES / "MR_small_jp2klossless.dcm", tmp_path / "j2k" / "a")
    rc, _, err = run(capsys, "convert", tmp_path / "j2k", "-o", tmp_path / "out", "-j", "1")
    assert rc == 1 and "pip install 'niftislice[dicom-codecs]'" in err
