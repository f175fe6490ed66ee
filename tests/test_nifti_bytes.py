"""The byte-level builder writes what nibabel reads: offsets, values, data, both byte orders."""

from __future__ import annotations

import gzip
import io
from dataclasses import replace

import nibabel as nib
import numpy as np
import pytest
from nifti_bytes import (
    DATATYPES,
    Extension,
    field_offsets,
    flip_byte,
    gzip_bytes,
    gzip_stream,
    layout,
    nifti_file,
    valid_volume,
)

NIB_HEADER = {1: nib.Nifti1Header, 2: nib.Nifti2Header}
NIB_IMAGE = {1: nib.Nifti1Image, 2: nib.Nifti2Image}


@pytest.mark.parametrize("version", [1, 2])
def test_field_offsets_match_nibabel(version: int) -> None:
    dtype = NIB_HEADER[version].template_dtype
    ours = field_offsets(version)
    theirs = {name: dtype.fields[name][1] for name in dtype.names}
    if version == 2:  # nibabel splits the 8-byte magic into magic + eol_check
        theirs.pop("eol_check")
    assert ours == theirs
    assert dtype.itemsize == (348 if version == 1 else 540)
    assert [name for name, _ in layout(version)] == list(theirs)


@pytest.mark.parametrize("endian", ["<", ">"])
@pytest.mark.parametrize("version", [1, 2])
def test_header_round_trips_through_nibabel(version: int, endian: str) -> None:
    vol = valid_volume(
        version=version,
        endian=endian,
        intent_code=1002,
        qform_code=2,
        sform_code=4,
        quatern_b=0.5,
        quatern_c=0.5,
        quatern_d=0.5,
        scl_slope=2.0,
        scl_inter=-3.0,
        descrip=b"hello",
        intent_name=b"labels",
        slice_duration=0.25,
        cal_max=9.0,
    )
    block = vol.header.pack()
    hdr = NIB_HEADER[version](binaryblock=block, check=True)
    assert hdr.endianness == endian
    assert hdr["sizeof_hdr"] == (348 if version == 1 else 540)
    assert bytes(hdr["magic"]).rstrip(b"\0") == b"n+%d" % version
    assert hdr.get_data_shape() == (7, 6, 5)
    assert hdr.get_data_dtype() == np.dtype(endian + "i2")
    assert hdr["bitpix"] == 16
    assert hdr["intent_code"] == 1002
    assert (int(hdr["qform_code"]), int(hdr["sform_code"])) == (2, 4)
    assert np.allclose(hdr["pixdim"][:4], [1, 2, 2, 2])
    assert np.allclose([hdr["quatern_b"], hdr["quatern_c"], hdr["quatern_d"]], 0.5)
    assert hdr.get_slope_inter() == (2.0, -3.0)
    assert bytes(hdr["descrip"]).rstrip(b"\0") == b"hello"
    assert np.allclose(hdr.get_sform(), [[2, 0, 0, -6], [0, 2, 0, -5], [0, 0, 2, -4], [0, 0, 0, 1]])
    assert int(hdr["vox_offset"]) == (352 if version == 1 else 544)


@pytest.mark.parametrize("dtype", [v[2] for v in DATATYPES.values() if v[2] and v[2][0] != "c"])
@pytest.mark.parametrize("endian", ["<", ">"])
@pytest.mark.parametrize("version", [1, 2])
def test_file_round_trips_data(version: int, endian: str, dtype: str) -> None:
    vol = valid_volume((4, 3, 2, 2), dtype, version=version, endian=endian)
    raw = vol.to_bytes()
    img = NIB_IMAGE[version].from_bytes(raw)
    assert np.array_equal(np.asarray(img.dataobj), vol.array)
    assert np.asarray(img.dataobj).dtype == np.dtype(endian + dtype)
    assert np.allclose(img.affine, [[2, 0, 0, -6], [0, 2, 0, -5], [0, 0, 2, -4], [0, 0, 0, 1]])


def test_extensions_are_read_by_nibabel() -> None:
    vol = valid_volume()
    raw = nifti_file(vol.header, vol.array, extensions=[Extension(6, b"a comment")])
    img = nib.Nifti1Image.from_bytes(raw)
    assert img.dataobj.offset == 352 + 32
    assert [(e.get_code(), e.get_content().rstrip(b"\0")) for e in img.header.extensions] == [
        (6, b"a comment")
    ]
    assert np.array_equal(np.asarray(img.dataobj), vol.array)


def test_explicit_vox_offset_pads_and_bad_fields_are_kept_verbatim() -> None:
    vol = valid_volume()
    raw = nifti_file(replace(vol.header, vox_offset=400, sizeof_hdr=1000, bitpix=3), vol.array)
    assert len(raw) == 400 + vol.array.nbytes
    hdr = np.frombuffer(raw[:348], NIB_HEADER[1].template_dtype)[0]
    assert (int(hdr["sizeof_hdr"]), int(hdr["bitpix"]), float(hdr["vox_offset"])) == (1000, 3, 400)


def test_gzip_helpers() -> None:
    raw = valid_volume().to_bytes()
    gz = gzip_bytes(raw)
    assert gz[:2] == b"\x1f\x8b" and gzip.decompress(gz) == raw
    assert gzip_bytes(raw) == gz  # deterministic
    with pytest.raises(gzip.BadGzipFile):
        gzip.decompress(flip_byte(gz, -8))  # CRC
    streamed = gzip_stream([raw[:100], raw[100:]])
    assert gzip.GzipFile(fileobj=io.BytesIO(streamed)).read() == raw
