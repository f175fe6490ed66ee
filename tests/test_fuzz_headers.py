"""Property tests (hypothesis): mutate the header fields, header bytes and compressed bytes of a
valid file and convert it.

Whatever the mutation: ``main()`` returns 0 or 1 and never raises, no traceback or stray line
reaches stderr, a failure is one line and leaves nothing in OUT, a success leaves one complete
output folder. And no corrupt file is accepted silently: an independent oracle (numpy and the
standard library, not niftislice) says which mutations make the file unreadable, and those must
fail; mutations of fields that do not affect reading must succeed.

Examples are derandomised and no example database is used, so every run tries the same inputs.
"""

from __future__ import annotations

import gzip
import io
import math
import os
import struct
import tempfile
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from conftest_malformed import check_converted, check_error, run_in_process
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nifti_bytes import (
    DATATYPES,
    NIFTI1_MAGIC,
    NIFTI2_MAGIC,
    field_offsets,
    gzip_bytes,
    layout,
    valid_volume,
)

FUZZ = settings(
    deadline=None,
    derandomize=True,
    database=None,
    print_blob=False,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

SHAPE = (5, 4, 3)
BASE = {v: valid_volume(SHAPE, "i2", version=v).to_bytes() for v in (1, 2)}
BASE_GZ = {v: gzip_bytes(raw) for v, raw in BASE.items()}
HEADER_SIZE = {1: 348, 2: 540}
SUPPORTED = {2, 4, 8, 16, 64, 128, 256, 512, 768, 1024, 1280, 2304}

# Fields that say nothing about where or how voxel data is stored, or where it is in space:
# any value must still convert.
IRRELEVANT = {
    "data_type",
    "db_name",
    "extents",
    "session_error",
    "regular",
    "dim_info",
    "intent_p1",
    "intent_p2",
    "intent_p3",
    "slice_start",
    "slice_end",
    "slice_code",
    "slice_duration",
    "toffset",
    "cal_max",
    "cal_min",
    "glmax",
    "glmin",
    "descrip",
    "aux_file",
    "intent_name",
    "unused_str",
    "xyzt_units",
}
_INTERESTING_INTS = [
    0,
    1,
    -1,
    2,
    3,
    4,
    7,
    8,
    16,
    255,
    256,
    348,
    352,
    540,
    544,
    1002,
    3006,
    32767,
    -32768,
    2**31 - 1,
    -(2**31),
    2**40,
    -(2**62),
]
_INTERESTING_FLOATS = [
    0.0,
    -0.0,
    1.0,
    -1.0,
    2.0,
    math.nan,
    math.inf,
    -math.inf,
    1e-30,
    1e30,
    352.0,
    352.5,
    544.0,
    3.0e38,
    -3.0e38,
]
_INT_RANGE = {"b": 8, "B": 8, "h": 16, "i": 32, "q": 64}


def _value_strategy(code: str) -> st.SearchStrategy[object]:
    kind = code[-1]
    if kind == "s":
        return st.binary(min_size=0, max_size=int(code[:-1]))
    if kind in "fd":
        width = 32 if kind == "f" else 64
        return st.one_of(st.sampled_from(_INTERESTING_FLOATS), st.floats(width=width))
    bits = _INT_RANGE[kind]
    lo, hi = (0, 2**bits - 1) if kind == "B" else (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
    return st.one_of(
        st.sampled_from([v for v in _INTERESTING_INTS if lo <= v <= hi]), st.integers(lo, hi)
    )


@st.composite
def field_mutations(draw: st.DrawFn) -> tuple[int, str, int, bytes]:
    """(version, field name, element index, packed little-endian bytes of the new value)."""
    version = draw(st.sampled_from([1, 2]))
    name, code = draw(st.sampled_from(layout(version)))
    count = int(code[:-1]) if code[:-1] and code[-1] != "s" else 1
    index = draw(st.integers(0, count - 1))
    value = draw(_value_strategy(code))
    if code[-1] == "s":
        packed = struct.pack(f"<{code}", value)  # padded with zeros to the field size
    else:
        packed = struct.pack("<" + code[-1], value)
    return version, name, index, packed


def _content(raw: bytes) -> bytes | None:
    """What a gzip reader makes of ``raw`` (None: not decodable); plain files as they are."""
    if raw[:2] != b"\x1f\x8b":
        return raw
    try:
        return gzip.GzipFile(fileobj=io.BytesIO(raw)).read()
    except (OSError, EOFError, ValueError, Exception):  # zlib.error is not an OSError
        return None


def unreadable(content: bytes | None, version: int) -> str | None:
    """Why a correct reader must refuse ``content`` (None: nothing obliges it to)."""
    if content is None:
        return "damaged gzip stream"
    size = HEADER_SIZE[version]
    if len(content) < size:
        return "truncated header"
    hdr = np.frombuffer(
        content[:size],
        dtype=(nib.Nifti1Header if version == 1 else nib.Nifti2Header).template_dtype,
    )[0]
    if int(hdr["sizeof_hdr"]) != size:
        return "sizeof_hdr"
    magic = content[344:348] if version == 1 else content[4:12]
    if magic != (NIFTI1_MAGIC if version == 1 else NIFTI2_MAGIC):
        return "magic"
    dim = [int(d) for d in hdr["dim"]]
    if not 2 <= dim[0] <= 7 or any(d < 1 for d in dim[1 : dim[0] + 1]):
        return "dim"
    code = int(hdr["datatype"])
    if code not in SUPPORTED:
        return "datatype"
    intent = int(hdr["intent_code"])
    if 3000 <= intent <= 3099 or intent in (1008, 1009):
        return "intent"
    if math.isinf(float(hdr["scl_slope"])):
        return "scl_slope"
    vox = float(hdr["vox_offset"])
    if not math.isfinite(vox) or vox != int(vox):
        return "vox_offset"
    offset = size + 4 if (vox == 0 and version == 1) else int(vox)
    if offset < size + 4:
        return "vox_offset"
    nbytes = math.prod(dim[1 : dim[0] + 1]) * DATATYPES[code][1] // 8
    if offset + nbytes > len(content):
        return "data past the end of the file"
    return None


def _convert(raw: bytes, name: str, capfd: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """Convert ``raw`` and check the invariants that hold for any input; returns
    ``(exit status, stderr)``."""
    with tempfile.TemporaryDirectory(prefix="nsl-fuzz-") as d:
        inp = Path(d) / name
        inp.write_bytes(raw)
        out = Path(d) / "out"
        run = run_in_process(["convert", str(inp), "-o", str(out)], capfd)
        assert run.rc in (0, 1), run.stderr
        if run.rc == 1:
            check_error(run, str(inp), ".", out)
        else:
            check_converted(run, out)
        assert sorted(os.listdir(d)) == sorted({name, "out"} if out.exists() else {name})
        return run.rc, run.stderr


def _expect(raw: bytes, version: int, rc: int, stderr: str, *, must_convert: bool = False) -> None:
    reason = unreadable(_content(raw), version)
    if reason is not None:
        assert rc == 1, f"corrupt file accepted ({reason}):\n{stderr}"
    elif must_convert:
        assert rc == 0, f"a harmless change was refused:\n{stderr}"


@pytest.mark.slow
@settings(FUZZ, max_examples=220)
@given(mutation=field_mutations(), compress=st.booleans())
def test_header_field_mutations(
    mutation: tuple[int, str, int, bytes], compress: bool, capfd: pytest.CaptureFixture[str]
) -> None:
    version, name, index, packed = mutation
    raw = bytearray(BASE[version])
    offset = field_offsets(version)[name] + index * len(packed)  # index is 0 for byte strings
    raw[offset : offset + len(packed)] = packed
    data = gzip_bytes(bytes(raw)) if compress else bytes(raw)
    rc, err = _convert(data, "mutated.nii.gz" if compress else "mutated.nii", capfd)
    _expect(bytes(raw), version, rc, err, must_convert=name in IRRELEVANT)
    if (
        rc == 0
        and name.startswith("srow")
        and not math.isfinite(struct.unpack("<" + ("f" if version == 1 else "d"), packed)[0])
    ):
        assert "sform" in err, f"a non-finite sform was used silently:\n{err}"


@pytest.mark.slow
@settings(FUZZ, max_examples=80)
@given(
    version=st.sampled_from([1, 2]),
    edits=st.lists(st.tuples(st.integers(0, 543), st.integers(0, 255)), min_size=1, max_size=4),
)
def test_random_header_bytes(
    version: int, edits: list[tuple[int, int]], capfd: pytest.CaptureFixture[str]
) -> None:
    raw = bytearray(BASE[version])
    for pos, value in edits:
        raw[pos % (HEADER_SIZE[version] + 4)] = value
    rc, err = _convert(bytes(raw), "bytes.nii", capfd)
    _expect(bytes(raw), version, rc, err)


@pytest.mark.slow
@settings(FUZZ, max_examples=120)
@given(
    version=st.sampled_from([1, 2]),
    where=st.floats(0, 1, exclude_max=True),
    mask=st.integers(1, 255),
)
def test_flipped_gzip_byte_is_never_accepted(
    version: int, where: float, mask: int, capfd: pytest.CaptureFixture[str]
) -> None:
    """A changed byte anywhere in a .nii.gz: refused unless the stream still decodes to the very
    same bytes (e.g. the gzip header's time stamp, or unused padding bits)."""
    gz = bytearray(BASE_GZ[version])
    pos = int(where * len(gz))
    gz[pos] ^= mask
    rc, err = _convert(bytes(gz), "flipped.nii.gz", capfd)
    if _content(bytes(gz)) == BASE[version]:
        assert rc == 0, f"byte {pos} ^ {mask:#x} leaves the data intact, yet:\n{err}"
    else:
        assert rc == 1, f"byte {pos} of {len(gz)} ^ {mask:#x} changed the data, accepted:\n{err}"


@pytest.mark.slow
@settings(FUZZ, max_examples=60)
@given(
    version=st.sampled_from([1, 2]), compress=st.booleans(), where=st.floats(0, 1, exclude_max=True)
)
def test_truncated_file_is_never_accepted(
    version: int, compress: bool, where: float, capfd: pytest.CaptureFixture[str]
) -> None:
    full = BASE_GZ[version] if compress else BASE[version]
    cut = full[: int(where * len(full))]
    rc, err = _convert(cut, "cut.nii.gz" if compress else "cut.nii", capfd)
    assert rc == 1, f"{len(cut)} of {len(full)} bytes accepted:\n{err}"


@pytest.mark.slow
@settings(FUZZ, max_examples=30)
@given(
    version=st.sampled_from([1, 2]),
    compress=st.booleans(),
    extra=st.binary(min_size=1, max_size=64),
)
def test_appended_bytes(
    version: int, compress: bool, extra: bytes, capfd: pytest.CaptureFixture[str]
) -> None:
    """Bytes after the data of a plain file: converted with a warning. After a gzip stream: the
    stream is damaged unless a gzip reader still decodes the original (zero padding)."""
    raw = (BASE_GZ[version] if compress else BASE[version]) + extra
    rc, err = _convert(raw, "appended.nii.gz" if compress else "appended.nii", capfd)
    content = _content(raw)
    if not compress:
        assert rc == 0 and f"{len(extra)} bytes after the voxel data" in err, err
    elif content == BASE[version]:
        assert rc == 0, err
    else:
        assert rc == 1, f"gzip with {len(extra)} bytes of trailing garbage accepted:\n{err}"
