"""A DICOMDIR as the input: the series of the files it lists, laid out as for its folder.

Real data: pydicom's ``dicomdirtests`` (a DICOMDIR made by DCMTK's dcmmkdir over small CT, MR
and CR series of three patients). Fixtures: a CD export written by pydicom's FileSet (upper-case
IDs such as ``PT000000/ST000000/SE000000/IM000000``), copied with lower-case names, and with a
file removed.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import pydicom
import pytest
from _dicom_helpers import AXIAL, SAGITTAL, small
from _dicom_helpers import write_series as write
from pydicom.data import get_testdata_file
from pydicom.fileset import FileSet

import niftislice
from niftislice.cli import main
from niftislice.read.dicom import scan_dicom
from niftislice.read.dicomdir import is_dicomdir, read_dicomdir, scan_dicomdir

DICOMDIR_TESTS = Path(get_testdata_file("DICOMDIR")).parent
PYDICOM_FILES = DICOMDIR_TESTS.parent


def run(capsys: pytest.CaptureFixture[str], *args: object) -> tuple[int, str, str]:
    rc = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return rc, out, err


def tree(folder: Path) -> dict[str, tuple[int, ...]]:
    """Every output file under ``folder`` and, for images, its size in pixels."""
    found = {}
    for f in sorted(folder.rglob("*")):
        if f.is_file():
            rel = f.relative_to(folder).as_posix()
            found[rel] = cv2.imread(str(f)).shape if f.suffix == ".png" else ()
    return found


def disc(files: list[Path], folder: Path) -> None:
    """``files`` written as a DICOM file-set (its DICOMDIR and upper-case IDs) into ``folder``."""
    fs = FileSet()
    for f in files:
        ds = pydicom.dcmread(f)
        ds.StudyID = "1"  # a STUDY record needs it
        fs.add(ds)
    fs.write(folder)


def cd_export(tmp_path: Path, *, lower: bool = False) -> Path:
    """Two series (axial CT, sagittal MR) written to a disc layout with its DICOMDIR."""
    src = tmp_path / "series"
    base = {"rows": 40, "columns": 36}
    write(src / "ct", small(**AXIAL, **base, slices=8, number=2))
    mr = small(**SAGITTAL, **base, slices=6, number=5, modality="MR", description="T1 sag")
    write(src / "mr", mr)
    cd = tmp_path / "cd"
    disc(sorted(src.rglob("IM*")), cd)
    if lower:
        for p in sorted(cd.rglob("*"), key=lambda p: -len(p.parts)):
            if p.name != "DICOMDIR":
                p.rename(p.with_name(p.name.lower()))
    return cd


def test_pydicom_dicomdir_gives_what_its_folder_gives(tmp_path: Path, capsys) -> None:
    """The DCMTK-made DICOMDIR: same series, names and image sizes as converting the folder
    (the folder also holds further DICOMDIRs and 50 non-image files, which it reports)."""
    rc, _, err = run(
        capsys, "convert", DICOMDIR_TESTS / "DICOMDIR", "-o", tmp_path / "a", "-j", "1"
    )
    assert rc == 1  # CR radiographs and a gapped CT series are refused, as for the folder
    assert "20 converted, 0 skipped, 4 failed" in err.strip().splitlines()[-1]
    rc, _, err = run(capsys, "convert", DICOMDIR_TESTS, "-o", tmp_path / "b", "-j", "1")
    assert "20 converted, 1 skipped, 4 failed" in err.strip().splitlines()[-1]
    a, b = tree(tmp_path / "a"), tree(tmp_path / "b")
    assert a == b and len(a) > 600
    assert "98892001/CT5N/0005_SmartScore_-_Gated_0.5_sec/axial/" in "".join(a)
    sidecar = next((tmp_path / "a").rglob("0005_SmartScore*/*.json"))
    facts = json.loads(sidecar.read_text())["source"]["dicom"]
    assert facts["files"][0] == "98892001/CT5N/3353"  # relative to the DICOMDIR's folder


@pytest.mark.parametrize(
    "variant", ["DICOMDIR-reordered", "DICOMDIR-bigEnd", "DICOMDIR-implicit", "DICOMDIR-nooffset"]
)
def test_dicomdir_variants_list_the_same_files(variant: str) -> None:
    reference = read_dicomdir(DICOMDIR_TESTS / "DICOMDIR")
    index = read_dicomdir(DICOMDIR_TESTS / variant)
    assert len(reference.listed) == 31 and not reference.missing
    assert sorted(i.file_id for i in index.listed) == sorted(i.file_id for i in reference.listed)
    uids = {i.file_id: i.series_uid for i in reference.listed}
    assert all(uids[i.file_id] == i.series_uid for i in index.listed)
    assert len(set(uids.values())) == 13  # the DICOMDIR's 13 SERIES records


def test_is_dicomdir_agrees_with_pydicom_on_every_test_file() -> None:
    files = [f for f in PYDICOM_FILES.rglob("*") if f.is_file()]
    assert len(files) > 100
    for f in files:
        try:
            meta = pydicom.filereader.read_file_meta_info(f)
            expected = meta.get("MediaStorageSOPClassUID") == "1.2.840.10008.1.3.10"
        except Exception:
            expected = False
        assert is_dicomdir(f) == expected, f


def test_a_named_dicom_file_is_read_without_pydicom(tmp_path: Path) -> None:
    """Asking whether a named file is a DICOMDIR does not import pydicom (0.4-0.7 s)."""
    write(
        tmp_path / "s",
        small(**AXIAL, rows=20, columns=18, slices=3),
    )  # type: ignore[arg-type]
    code = (
        "import sys\n"
        "from niftislice.cli import main\n"
        "assert main(['info', sys.argv[1]]) == 0\n"
        "print('pydicom.dataset' in sys.modules)\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "s" / "IM0001")],
        capture_output=True,
        text=True,
        check=True,
    )
    assert run.stdout.strip().splitlines()[-1] == "False", run.stdout + run.stderr


def test_is_dicomdir_by_content(tmp_path: Path) -> None:
    shutil.copy(DICOMDIR_TESTS / "DICOMDIR", tmp_path / "index.dcm")
    assert is_dicomdir(tmp_path / "index.dcm")
    assert not is_dicomdir(Path(get_testdata_file("CT_small.dcm")))
    assert not is_dicomdir(tmp_path)


def test_cd_export_with_lower_case_names(tmp_path: Path, capsys) -> None:
    """IDs are upper case, the copy lower case: found anyway, and laid out as for the folder."""
    cd = cd_export(tmp_path, lower=True)
    assert (cd / "pt000000").is_dir() and not (cd / "PT000000").exists()
    rc, _, err = run(capsys, "convert", cd / "DICOMDIR", "-o", tmp_path / "a")
    assert rc == 0, err
    rc, _, err = run(capsys, "convert", cd, "-o", tmp_path / "b")
    assert rc == 0, err
    a = tree(tmp_path / "a")
    assert a == tree(tmp_path / "b")
    folders = sorted({Path(k).parts[:4] for k in a})
    assert folders == [
        ("pt000000", "st000000", "se000000", "0002_Head_3mm"),
        ("pt000000", "st000000", "se000001", "0005_T1_sag"),
    ]
    # axial images: the CT's 8 slices, and the sagittal MR's 40 rows
    assert sum(k.endswith(".png") and "/axial/" in k for k in a) == 8 + 40


def test_missing_listed_file_is_one_line_and_the_rest_converts(tmp_path: Path, capsys) -> None:
    cd = cd_export(tmp_path)
    [gone] = [f for f in sorted(cd.rglob("IM*")) if f.parent.name == "SE000000"][3:4]
    gone.unlink()
    rc, _, err = run(capsys, "convert", cd / "DICOMDIR", "-o", tmp_path / "out")
    assert rc == 1
    lines = err.strip().splitlines()
    [line] = [ln for ln in lines if ": error: " in ln]
    assert str(cd / "DICOMDIR") in line
    assert "1 of 14 files this DICOMDIR lists are missing" in line
    assert "PT000000/ST000000/SE000000/IM000003" in line
    assert "not converted: series 2 (CT)" in line
    assert "1 converted, 0 skipped, 1 failed" in lines[-1]
    [folder] = [p for p in (tmp_path / "out").rglob("0005_T1_sag") if p.is_dir()]
    assert len(list((folder / "sagittal").glob("*.png"))) == 6
    assert not list((tmp_path / "out").rglob("0002_*"))  # never a silently shorter CT


def test_dicomdir_whose_files_are_all_missing(tmp_path: Path, capsys) -> None:
    (tmp_path / "cd").mkdir()
    shutil.copy(DICOMDIR_TESTS / "DICOMDIR", tmp_path / "cd" / "DICOMDIR")
    for given in (tmp_path / "cd" / "DICOMDIR", tmp_path / "cd"):
        rc, _, err = run(capsys, "convert", given, "-o", tmp_path / "out")
        assert rc == 1
        [line] = err.strip().splitlines()[:-1]
        assert "all 31 files this DICOMDIR lists are missing (77654033/CR1/6154" in line
        assert "and 28 more" in line and "copy the whole disc" in line


def test_info_preview_load_on_a_one_series_dicomdir(tmp_path: Path, capsys) -> None:
    cd = cd_export(tmp_path)
    shutil.rmtree(cd / "PT000000" / "ST000000" / "SE000001")  # drop the MR: its files go missing
    rc, out, err = run(capsys, "info", cd / "DICOMDIR")  # the CT that is whole, and a warning
    assert rc == 0 and 'DICOM series 2 "Head 3mm", CT, 8 files' in out
    assert "6 of 14 files this DICOMDIR lists are missing" in out + err
    single = tmp_path / "single"
    disc(sorted((cd / "PT000000").rglob("IM*")), single)
    rc, out, err = run(capsys, "info", single / "DICOMDIR")
    assert rc == 0, err
    assert 'DICOM series 2 "Head 3mm", CT, 8 files' in out
    assert "PID-4711" not in out and "Doe" not in out
    rc, _, err = run(capsys, "preview", single / "DICOMDIR", "-o", tmp_path / "p.png")
    assert rc == 0 and cv2.imread(str(tmp_path / "p.png")) is not None
    vol = niftislice.load(single / "DICOMDIR")
    assert vol.file.spatial_shape == (36, 40, 8) and vol.raw.shape == (36, 40, 8)
    assert niftislice.info(single / "DICOMDIR")["format"] == "dicom"


def test_scan_dicomdir_matches_the_folder_scan(tmp_path: Path) -> None:
    cd = cd_export(tmp_path)
    by_index, by_folder = scan_dicomdir(cd / "DICOMDIR"), scan_dicom([cd])
    assert [s.name for s in by_index.series] == [s.name for s in by_folder.series]
    assert [s.files for s in by_index.series] == [s.files for s in by_folder.series]
    assert not by_index.problems


@pytest.mark.filterwarnings("ignore:Invalid value for VR CS")
def test_file_ids_never_leave_the_dicomdir_folder(tmp_path: Path) -> None:
    """A hostile ID (``../secret``) is a missing file, not a read outside the disc."""
    cd = cd_export(tmp_path)
    ds = pydicom.dcmread(cd / "DICOMDIR")
    image = next(r for r in ds.DirectoryRecordSequence if r.DirectoryRecordType == "IMAGE")
    image.ReferencedFileID = ["..", "series", "ct", "IM0000"]
    ds.save_as(cd / "DICOMDIR")
    index = read_dicomdir(cd / "DICOMDIR")
    assert [m.file_id for m in index.missing] == ["../series/ct/IM0000"]
