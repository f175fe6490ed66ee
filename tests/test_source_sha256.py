"""The sidecar's ``source.sha256`` names the bytes that were read, for every input format.

One file: its sha256, as ``sha256sum`` prints it. Several files (a detached header and its data,
the files of a DICOM series): each file's sha256 in ``source.sha256_files`` (header first, DICOM
files in slice order) and ``source.sha256`` = ``sha256sum FILES | cut -d' ' -f1 | sha256sum``.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from _dicom_helpers import AXIAL, PHI, small, write_series
from _formats_helpers import write_nibabel, write_nrrd, write_sitk
from conftest import NIBABEL_DATA
from pydicom.data import get_testdata_file

import niftislice
from niftislice.read.digest import SourceDigests, combined_sha256
from niftislice.read.nrrd import read_nrrd

Volume = tuple[np.ndarray, np.ndarray]


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def source_of(out: Path) -> dict:
    [sidecar] = list(out.rglob("*.json"))
    return json.loads(sidecar.read_text())["source"]


def convert(src: Path, out: Path) -> dict:
    result = niftislice.convert(src, out)
    assert result.ok, [r.error for r in result.results]
    return source_of(out)


@pytest.fixture(scope="module")
def head() -> Volume:
    data = np.arange(24 * 20 * 16, dtype=np.int16).reshape(24, 20, 16) % 300
    return data, np.diag([2.0, 2.5, 3.0, 1.0])


def _nrrd(name: str, **fields: object) -> Callable[[Path, Volume], Path]:
    return lambda d, v: write_nrrd(d / name, *v, **fields)


ONE_FILE: dict[str, Callable[[Path, Volume], Path]] = {
    "nrrd-raw": _nrrd("v.nrrd", encoding="raw"),
    "nrrd-gzip": _nrrd("v.nrrd"),
    "nrrd-ascii": _nrrd("v.nrrd", encoding="ascii"),
    "mha": lambda d, v: write_sitk(d / "v.mha", *v),
    "mha-compressed": lambda d, v: write_sitk(d / "v.mha", *v, True),
    "mgz": lambda d, v: write_nibabel(d / "v.mgz", *v),
    "mgh": lambda d, v: write_nibabel(d / "v.mgh", *v),
}
# name: (writer, the files in the order the sidecar lists them)
TWO_FILES: dict[str, tuple[Callable[[Path, Volume], Path], tuple[str, str]]] = {
    "nhdr-raw": (_nrrd("v.nhdr", encoding="raw"), ("v.nhdr", "v.raw")),
    "nhdr-gzip": (_nrrd("v.nhdr"), ("v.nhdr", "v.raw.gz")),
    "mhd-raw": (lambda d, v: write_sitk(d / "v.mhd", *v), ("v.mhd", "v.raw")),
    "mhd-zraw": (lambda d, v: write_sitk(d / "v.mhd", *v, True), ("v.mhd", "v.zraw")),
    "analyze": (lambda d, v: write_nibabel(d / "v.hdr", *v), ("v.hdr", "v.img")),
}


@pytest.mark.parametrize("case", list(ONE_FILE))
def test_one_file_formats_record_the_files_sha256(tmp_path: Path, head: Volume, case: str) -> None:
    src = ONE_FILE[case](tmp_path, head)
    source = convert(src, tmp_path / "out")
    assert source["sha256"] == sha(src)
    assert "sha256_files" not in source


@pytest.mark.parametrize("case", list(TWO_FILES))
def test_two_file_formats_record_each_file(tmp_path: Path, head: Volume, case: str) -> None:
    writer, names = TWO_FILES[case]
    (tmp_path / "in").mkdir()
    src = writer(tmp_path / "in", head)
    assert sorted(p.name for p in (tmp_path / "in").iterdir()) == sorted(names)
    source = convert(src, tmp_path / "out")
    files = [tmp_path / "in" / n for n in names]
    assert source["sha256_files"] == [{"path": f.name, "sha256": sha(f)} for f in files]
    assert source["sha256"] == combined_sha256([sha(f) for f in files])
    assert "sha256sum" in source["sha256_combined"]


def test_combined_digest_is_the_documented_shell_line(tmp_path: Path) -> None:
    for name, text in (("a", b"first"), ("b", b"second\n")):
        (tmp_path / name).write_bytes(text)
    if not shutil.which("sha256sum"):
        pytest.skip("sha256sum is not installed")
    line = "sha256sum a b | cut -d' ' -f1 | sha256sum"
    shell = subprocess.run(line, shell=True, cwd=tmp_path, capture_output=True, text=True)
    expected = shell.stdout.split()[0]
    assert combined_sha256([sha(tmp_path / "a"), sha(tmp_path / "b")]) == expected


@pytest.mark.parametrize(
    ("name", "pair"),
    [("minc1_1_scale.mnc", None), ("phantom_EPI_asc_CLEAR_2_1.PAR", ".REC")],
)
def test_nibabel_test_files(tmp_path: Path, name: str, pair: str | None) -> None:
    src = NIBABEL_DATA / name
    source = convert(src, tmp_path / "out")
    if pair is None:
        assert source["sha256"] == sha(src) and "sha256_files" not in source
    else:
        data = src.with_suffix(pair)
        assert [f["sha256"] for f in source["sha256_files"]] == [sha(src), sha(data)]
        assert source["sha256"] == combined_sha256([sha(src), sha(data)])


def test_dicom_series_digest_over_its_files_in_slice_order(tmp_path: Path) -> None:
    """Files named against slice order (descending InstanceNumber, shuffled names): the list
    follows the slices, paths are relative to the input, and no patient attribute appears."""
    spec = small(**AXIAL, rows=20, columns=18, slices=6)
    spec.shuffle_names = True
    write_series(tmp_path / "in" / "ct", spec)
    source = convert(tmp_path / "in", tmp_path / "out")
    order = source["dicom"]["files"]
    assert [f["path"] for f in source["sha256_files"]] == order
    digests = [sha(tmp_path / "in" / p) for p in order]
    assert [f["sha256"] for f in source["sha256_files"]] == digests
    assert source["sha256"] == combined_sha256(digests)
    text = json.dumps(source)
    assert not any(value in text for value in PHI.values())


def test_single_dicom_file_is_its_own_sha256(tmp_path: Path) -> None:
    src = Path(get_testdata_file("eCT_Supplemental.dcm"))  # one file, two frames
    source = convert(src, tmp_path / "out")
    assert source["sha256"] == sha(src) and "sha256_files" not in source


def test_nifti_is_unchanged(tmp_path: Path, head: Volume) -> None:
    nib.save(nib.Nifti1Image(*head), tmp_path / "v.nii.gz")
    source = convert(tmp_path / "v.nii.gz", tmp_path / "out")
    assert source["sha256"] == sha(tmp_path / "v.nii.gz") and "sha256_files" not in source


def test_streamed_files_are_hashed_while_read(tmp_path: Path, head: Volume) -> None:
    """A raw NRRD's digest is known once its voxels are read: the file is not read again."""
    src = write_nrrd(tmp_path / "v.nrrd", *head, encoding="raw", **{"byte skip": -1})
    image = read_nrrd(src)
    assert image.digests is not None and not image.digests.found
    image.load()
    assert image.digests.found == {src: sha(src)}


def test_hashing_file_skips_forward_and_gives_up_backward(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(bytes(range(256)) * 100)
    digests = SourceDigests((tmp_path / "f",), tmp_path)
    with digests.open(tmp_path / "f") as f:
        f.seek(1000)
        assert f.read(10) == bytes(range(232, 242)) and f.tell() == 1010
        f.seek(-5, 2)
    assert digests.found[tmp_path / "f"] == sha(tmp_path / "f")
    digests = SourceDigests((tmp_path / "f",), tmp_path)
    with digests.open(tmp_path / "f") as f:
        f.seek(1000)
        f.seek(10)
    assert not digests.found  # hashed on its own when asked
    assert digests.summary() == (sha(tmp_path / "f"), None)
    with pytest.raises(ValueError), digests.open(tmp_path / "f"):
        raise ValueError
