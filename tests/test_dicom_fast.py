"""The DICOM reader's fast paths give exactly what pydicom gives.

Uncompressed slices are read straight into the volume, and plain headers are parsed without
pydicom (see ``read/dicom_header.py``); both must agree with pydicom on every real file it ships
and on fixture series with awkward values.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest
from _dicom_helpers import AXIAL, SeriesSpec, small, write_series
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import ImplicitVRLittleEndian

from niftislice.read.dicom import read_series_volume, scan_dicom
from niftislice.read.dicom_files import BadDicom, NotDicom, read_file
from niftislice.read.dicom_header import (
    KNOWN_VRS,
    LONG_VRS,
    SYNTAX_NAMES,
    WANTED,
    read_plain_header,
    syntax_name,
)


def tiny(**kw: object) -> SeriesSpec:
    """20 x 18 pixels, 5 slices: enough for header and pixel checks."""
    return small(**{"rows": 20, "columns": 18, "slices": 5, **kw})


def _pydicom_volume(files: tuple[Path, ...]) -> np.ndarray:
    """pydicom's pixel_array of each file, stacked as the reader stores a series."""
    return np.stack([pydicom.dcmread(f).pixel_array.T for f in files], axis=-1)


@pytest.mark.parametrize("signed", [True, False])
def test_bits_above_the_high_bit_are_dropped_as_pydicom_does(tmp_path: Path, signed: bool) -> None:
    """12 bits stored in 16 with junk in the top 4 bits (as some scanners write overlays there):
    signed values are sign-extended from bit 11, unsigned ones masked, as pydicom does."""
    spec = tiny(**AXIAL, signed=signed, bits_stored=12, intercept=0.0)
    write_series(tmp_path / "s", spec)
    rng = np.random.default_rng(3)
    for f in sorted((tmp_path / "s").iterdir()):
        ds = pydicom.dcmread(f)
        raw = np.frombuffer(ds.PixelData, "<u2").copy()
        raw = (raw & 0x0FFF) | (rng.integers(0, 16, raw.shape, dtype=np.uint16) << 12)
        raw[:5] = [0x0800, 0x07FF, 0xF800, 0x0FFF, 0xFFFF]  # extremes of 12 bits
        ds.PixelData = raw.tobytes()
        ds.save_as(f)
    [series] = scan_dicom([tmp_path / "s"]).series
    arr = read_series_volume(series)
    expected = _pydicom_volume(series.files)
    assert arr.dtype == expected.dtype
    np.testing.assert_array_equal(arr, expected)


PYDICOM_FILES = Path(get_testdata_file("CT_small.dcm")).parent


def _both_ways(path: Path) -> tuple[object, object]:
    """What read_file gives for ``path`` with the plain parser and with pydicom alone."""
    out = []
    for plain in (True, False):
        try:
            got = read_file(path, plain=plain)
            out.append((got, got.phi))
        except (NotDicom, BadDicom) as e:
            out.append((type(e).__name__, str(e), getattr(e, "kind", "")))
    return out[0], out[1]


def test_plain_headers_equal_pydicom_on_every_file_pydicom_ships() -> None:
    """Each of pydicom's ~170 test files (real scanner files of many vendors and syntaxes, and
    deliberately broken ones) is described identically by both readers, and the plain parser
    takes the plain ones itself."""
    files = sorted(p for p in PYDICOM_FILES.rglob("*") if p.is_file())
    assert len(files) > 100
    plain = []
    for path in files:
        fast, slow = _both_ways(path)
        assert fast == slow, path.relative_to(PYDICOM_FILES)
        if read_plain_header(path) is not None:
            plain.append(path.name)
    # real single-frame CT and MR files among them are read without pydicom
    assert {"CT_small.dcm", "MR_small.dcm", "MR_small_implicit.dcm"} - set(plain) == set()
    assert len(plain) >= 40, plain


def _nested_sequences(ds: Dataset) -> None:
    """Undefined-length sequences and items, nested, plus private and long elements."""
    inner = Dataset()
    inner.CodeValue, inner.CodingSchemeDesignator = "113691", "DCM"
    item = Dataset()
    item.ReferencedSOPInstanceUID = "1.2.3.4"
    item.PurposeOfReferenceCodeSequence = Sequence([inner])
    ds.ReferencedImageSequence = Sequence([item, Dataset()])
    for keyword in ("ReferencedImageSequence",):
        ds[keyword].is_undefined_length = True
        for it in ds[keyword].value:
            it.is_undefined_length_sequence_item = True
    ds.PurposeOfReferenceCodeSequence = Sequence([])  # empty, defined length
    block = ds.private_block(0x0029, "NIFTISLICE TEST", create=True)
    block.add_new(0x10, "OB", bytes(range(256)) * 80)  # larger than the first read
    block.add_new(0x11, "LO", "private text")


def _set(**values: object):
    def change(ds: Dataset) -> None:
        for k, v in values.items():
            setattr(ds, k, v)

    return change


def _raw_vr(keyword: str, vr: str):
    def change(ds: Dataset) -> None:
        ds[keyword].VR = vr
        if vr == "UN":
            ds[keyword].value = ds[keyword].value.to_bytes(2, "little")

    return change


# (name, change to one file, whether the plain parser reads it)
AWKWARD = [
    ("nested undefined-length sequences", _nested_sequences, True),
    ("implicit VR", "implicit", True),
    ("several windows", _set(WindowCenter=["40", "400"], WindowWidth=["80", "1500"]), True),
    ("empty window", _set(WindowCenter=None, WindowWidth=""), True),
    ("padded numbers", _set(RescaleIntercept=" -1.024E+03", InstanceNumber="+007"), True),
    ("trailing NUL in text", _set(SeriesDescription="Head\x00"), True),
    ("name with ideographic part", _set(PatientName="Yamada^Tarou=Y^T="), False),
    ("text beyond ASCII", _set(SpecificCharacterSet="ISO_IR 100", PatientName="Müller"), False),
    ("a backslash in a description", _set(SeriesDescription="a\\b"), False),
    ("decimal series number", _set(SeriesNumber="5.0"), False),
    ("Rows with VR UN", _raw_vr("Rows", "UN"), False),
    ("two frames", _set(NumberOfFrames="2"), False),
]


@pytest.mark.filterwarnings("ignore:Invalid value for VR IS")  # the decimal series number
@pytest.mark.parametrize(("name", "change", "plain"), AWKWARD, ids=[a[0] for a in AWKWARD])
def test_awkward_headers_read_as_pydicom_reads_them(
    tmp_path: Path, name: str, change: object, plain: bool
) -> None:
    write_series(tmp_path / "s", tiny(**AXIAL, slices=2))
    path = sorted((tmp_path / "s").iterdir())[0]
    ds = pydicom.dcmread(path)
    if change == "implicit":
        ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    else:
        change(ds)  # type: ignore[operator]
    ds.save_as(path, enforce_file_format=True)
    fast, slow = _both_ways(path)
    assert fast == slow
    assert (read_plain_header(path) is not None) == plain


def test_damaged_headers_are_left_to_pydicom(tmp_path: Path) -> None:
    """A header cut short, and explicit VR announced over implicit data: pydicom reads them
    (and says what is wrong) exactly as before."""
    write_series(tmp_path / "s", tiny(**AXIAL, slices=2))
    good = sorted((tmp_path / "s").iterdir())[0]
    data = good.read_bytes()
    (tmp_path / "cut").write_bytes(data[:700])
    ds = pydicom.dcmread(good)
    ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    ds.save_as(tmp_path / "implicit", enforce_file_format=True)
    implicit = b"\x10\x00UI\x12\x001.2.840.10008.1.2\x00"
    lying = (tmp_path / "implicit").read_bytes()
    assert lying.count(implicit) == 1
    lying = lying.replace(implicit, b"\x10\x00UI\x14\x001.2.840.10008.1.2.1\x00")
    (tmp_path / "lying").write_bytes(lying)
    for name in ("cut", "lying"):
        assert read_plain_header(tmp_path / name) is None, name
        fast, slow = _both_ways(tmp_path / name)
        assert fast == slow, name


def test_a_plain_series_converts_without_importing_pydicom(tmp_path: Path) -> None:
    """Importing pydicom costs about 0.3 s of every DICOM conversion (measured with
    ``-X importtime``); a series of plain files does not need it (the descriptions are the same
    either way: see the tests above)."""
    write_series(tmp_path / "s", tiny(**AXIAL))
    code = (
        "import runpy, sys\n"
        "sys.argv = ['niftislice', 'convert', sys.argv[1], '-o', sys.argv[2], '-q']\n"
        "try:\n"
        "    runpy.run_module('niftislice', run_name='__main__')\n"
        "except SystemExit as e:\n"
        "    assert not e.code, e.code\n"
        "print('pydicom.dataset' in sys.modules)\n"
    )
    out = tmp_path / "out"
    run = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "s"), str(out)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert run.stdout.strip().splitlines()[-1] == "False", run.stdout + run.stderr
    assert len(list(out.rglob("*.png"))) == 18 + 20 + 5  # sagittal, coronal, axial slices


def test_the_attribute_table_is_pydicoms_dictionary() -> None:
    """Each tag the plain parser reads has the keyword and VR of pydicom's data dictionary, its
    VR sets are pydicom's, and the syntax names in sidecars are pydicom's."""
    from pydicom.datadict import dictionary_VR, keyword_for_tag
    from pydicom.uid import UID
    from pydicom.valuerep import EXPLICIT_VR_LENGTH_32, VR

    assert {v.encode() for v in EXPLICIT_VR_LENGTH_32} == LONG_VRS
    assert {v.value.encode() for v in VR if " " not in v.value} == KNOWN_VRS

    for tag, (keyword, vr) in WANTED.items():
        assert (keyword_for_tag(tag), dictionary_VR(tag)) == (keyword, vr), hex(tag)
    for uid, name in SYNTAX_NAMES.items():
        assert UID(uid).name == name == syntax_name(uid)
    assert syntax_name("1.2.840.10008.1.2.4.50") == UID("1.2.840.10008.1.2.4.50").name
