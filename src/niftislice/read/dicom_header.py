"""Plain DICOM headers read without pydicom: the common case of a series scan, made cheap.

Why hand-written (measured on the 512 x 512 x 300 CT of ``benchmarks/dicom.py``, 300 files, on
2 cores shared with other work; medians of 7 interleaved passes): reading every file's header
with pydicom (``dcmread(stop_before_pixels=True)`` and the attribute look-ups) took 0.70-0.98 s,
this parser 0.15 s, the same attributes; and importing pydicom, which its pixel decoders make
pull in ``requests``, took 0.27 s on a quiet machine and up to 1.2 s under load
(``python -X importtime -c "import pydicom"``). Both were on the direct path's critical path,
which dcm2niix, the path it races, does not pay; with this parser a series of plain files is
converted without importing pydicom at all.

It only says yes to what it fully understands, and answers ``None`` for anything else, which
pydicom then reads as before: files without the ``DICM`` preamble, transfer syntaxes other than
implicit and explicit VR little endian (big endian, deflated, every compressed one), encapsulated
or float pixel data, multi-frame files and functional groups, DICOMDIRs, command sets, a VR that
differs from the one the standard gives an attribute we use, implicit data under an explicit
syntax (or the reverse), text that is not plain ASCII (character sets, ISO 2022 escapes),
multi-valued or malformed numbers and names, and any truncated or inconsistent structure.
Where it answers, the values are those pydicom gives (``tests/test_dicom_fast.py`` compares both
on every file pydicom ships and on awkward fixtures): text with trailing spaces and NULs dropped,
DS as float, IS and US as int, empty numbers as None and empty text as "".
"""

from __future__ import annotations

import re
import struct
from pathlib import Path
from typing import Any

IMPLICIT_LE = "1.2.840.10008.1.2"
EXPLICIT_LE = "1.2.840.10008.1.2.1"
#: pydicom's names of the syntaxes read here (for the sidecar, without importing pydicom)
SYNTAX_NAMES = {IMPLICIT_LE: "Implicit VR Little Endian", EXPLICIT_LE: "Explicit VR Little Endian"}

PIXEL_DATA = 0x7FE00010
_FIRST_READ = 16384  # bytes; a header is usually smaller, a larger one is read on demand
_UNDEFINED = 0xFFFFFFFF
_ITEM, _ITEM_END, _SEQUENCE_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
#: VRs whose explicit encoding has a 4-byte length (pydicom's EXPLICIT_VR_LENGTH_32)
LONG_VRS = frozenset(
    {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}
)
#: every VR of the standard (an unknown one is left to pydicom)
KNOWN_VRS = LONG_VRS | frozenset(
    {b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FD", b"FL", b"IS", b"LO"}
    | {b"LT", b"PN", b"SH", b"SL", b"SS", b"ST", b"TM", b"UI", b"UL", b"US"}
)

#: the attributes read (tag -> keyword, VR from the standard's data dictionary)
WANTED: dict[int, tuple[str, str]] = {
    0x00020002: ("MediaStorageSOPClassUID", "UI"),
    0x00020010: ("TransferSyntaxUID", "UI"),
    0x00080016: ("SOPClassUID", "UI"),
    0x00080020: ("StudyDate", "DA"),
    0x00080022: ("AcquisitionDate", "DA"),
    0x00080030: ("StudyTime", "TM"),
    0x00080050: ("AccessionNumber", "SH"),
    0x00080060: ("Modality", "CS"),
    0x00080080: ("InstitutionName", "LO"),
    0x00080090: ("ReferringPhysicianName", "PN"),
    0x0008103E: ("SeriesDescription", "LO"),
    0x00100010: ("PatientName", "PN"),
    0x00100020: ("PatientID", "LO"),
    0x00100030: ("PatientBirthDate", "DA"),
    0x00100040: ("PatientSex", "CS"),
    0x00101000: ("OtherPatientIDs", "LO"),
    0x00101010: ("PatientAge", "AS"),
    0x00180050: ("SliceThickness", "DS"),
    0x00180080: ("RepetitionTime", "DS"),
    0x00180086: ("EchoNumbers", "IS"),
    0x00180088: ("SpacingBetweenSlices", "DS"),
    0x0020000D: ("StudyInstanceUID", "UI"),
    0x0020000E: ("SeriesInstanceUID", "UI"),
    0x00200011: ("SeriesNumber", "IS"),
    0x00200012: ("AcquisitionNumber", "IS"),
    0x00200013: ("InstanceNumber", "IS"),
    0x00200032: ("ImagePositionPatient", "DS"),
    0x00200037: ("ImageOrientationPatient", "DS"),
    0x00200100: ("TemporalPositionIdentifier", "IS"),
    0x00280002: ("SamplesPerPixel", "US"),
    0x00280004: ("PhotometricInterpretation", "CS"),
    0x00280008: ("NumberOfFrames", "IS"),
    0x00280010: ("Rows", "US"),
    0x00280011: ("Columns", "US"),
    0x00280030: ("PixelSpacing", "DS"),
    0x00280100: ("BitsAllocated", "US"),
    0x00280101: ("BitsStored", "US"),
    0x00280103: ("PixelRepresentation", "US"),
    0x00281050: ("WindowCenter", "DS"),
    0x00281051: ("WindowWidth", "DS"),
    0x00281052: ("RescaleIntercept", "DS"),
    0x00281053: ("RescaleSlope", "DS"),
}
#: present at the top level: not a plain single-frame image, pydicom reads it
DECLINED = frozenset(
    {
        0x00041220,  # DirectoryRecordSequence (a DICOMDIR)
        0x00280009,  # FrameIncrementPointer (multi-frame)
        0x52009229,  # SharedFunctionalGroupsSequence
        0x52009230,  # PerFrameFunctionalGroupsSequence
        0x7FE00008,  # FloatPixelData
        0x7FE00009,  # DoubleFloatPixelData
    }
)

_DS = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
_IS = re.compile(r"[+-]?\d+")
_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_TAG = struct.Struct("<HH")


class _Declined(Exception):
    """Not a file this parser reads (pydicom will)."""


class Header:
    """The attributes of one file, looked up like a pydicom dataset (``get``, ``in``, attribute
    access, ``file_meta``), plus where its pixel data element starts."""

    def __init__(self, values: dict[str, Any], meta: dict[str, Any], pixel_at: int) -> None:
        self._values = values
        self.file_meta = meta
        self.pixel_at = pixel_at  # offset of the (7FE0,0010) tag in the file
        self.implicit = meta["TransferSyntaxUID"] == IMPLICIT_LE

    def get(self, keyword: str, default: Any = None) -> Any:
        return self._values.get(keyword, default)

    def __contains__(self, keyword: object) -> bool:
        return keyword in self._values

    def __getattr__(self, keyword: str) -> Any:
        try:
            return self.__dict__["_values"][keyword]
        except KeyError:
            raise AttributeError(keyword) from None


class _Buffer:
    """The start of a file, read further as the parser needs it."""

    def __init__(self, f: Any) -> None:
        self.f = f
        self.data = f.read(_FIRST_READ)

    def need(self, end: int) -> bytes:
        if end > len(self.data):
            more = self.f.read(max(end - len(self.data), len(self.data)))
            self.data += more
            if end > len(self.data):
                raise _Declined("truncated")
        return self.data


def read_plain_header(path: Path) -> Header | None:
    """The header of a plain file (see the module's docstring), or None for pydicom to read."""
    try:
        with open(path, "rb") as f:
            buf = _Buffer(f)
            data = buf.need(132)
            if data[128:132] != b"DICM":
                return None
            meta, pos = _elements(buf, 132, explicit=True, group=0x0002)
            syntax = meta.get("TransferSyntaxUID")
            if syntax not in SYNTAX_NAMES:
                return None
            explicit = syntax == EXPLICIT_LE
            vr = buf.need(pos + 6)[pos + 4 : pos + 6]
            if (0x40 < vr[0] < 0x5B and 0x40 < vr[1] < 0x5B) != explicit:
                return None  # pydicom would switch to the encoding the data really has
            values, pixel_at = _elements(buf, pos, explicit=explicit, group=None)
    except (_Declined, OSError, struct.error, IndexError, RecursionError):
        return None
    if values.get("NumberOfFrames") not in (None, 1):
        return None  # multi-frame: per-frame positions come from attributes not read here
    return Header(values, meta, pixel_at)


def syntax_name(uid: str) -> str:
    """A transfer syntax's name as pydicom gives it (pydicom is imported only for the rare
    syntaxes this module does not read itself)."""
    if uid in SYNTAX_NAMES:
        return SYNTAX_NAMES[uid]
    from pydicom.uid import UID

    return str(UID(uid).name or uid)


def _elements(buf: _Buffer, pos: int, *, explicit: bool, group: int | None) -> tuple[dict, int]:
    """The wanted values of consecutive top-level elements from ``pos``: the file meta group
    (``group`` 2, up to the first element of another group) or the dataset (up to the pixel
    data). Returns them and where the parse stopped."""
    values: dict[str, Any] = {}
    last = -1
    while True:
        data = buf.need(pos + 8)
        g, e = _TAG.unpack_from(data, pos)
        tag = g << 16 | e
        if group is not None and g != group:
            return values, pos
        if tag <= last or tag in DECLINED or (group is None and g <= 2):
            raise _Declined(f"tag {tag:08x}")
        last = tag
        vr, length, start = _element_header(buf, pos, explicit)
        if tag == PIXEL_DATA:
            if length == _UNDEFINED or (explicit and vr not in (b"OB", b"OW")):
                raise _Declined("encapsulated pixel data")
            return values, pos
        if length == _UNDEFINED:
            if explicit and vr != b"SQ":
                raise _Declined("undefined length")
            pos = _skip_sequence(buf, start, explicit)
            continue
        pos = start + length
        wanted = WANTED.get(tag)
        if wanted is not None:
            keyword, expected = wanted
            if explicit and vr != expected.encode():
                raise _Declined(f"{keyword} has VR {vr!r}")
            values[keyword] = _value(buf.need(pos)[start:pos], expected)


def _element_header(buf: _Buffer, pos: int, explicit: bool) -> tuple[bytes, int, int]:
    """(VR or b"", value length, where the value starts) of the element at ``pos``."""
    data = buf.need(pos + 12)
    if not explicit:
        return b"", _U32.unpack_from(data, pos + 4)[0], pos + 8
    vr = data[pos + 4 : pos + 6]
    if vr not in KNOWN_VRS:
        raise _Declined(f"VR {vr!r}")
    if vr in LONG_VRS:
        return vr, _U32.unpack_from(data, pos + 8)[0], pos + 12
    return vr, _U16.unpack_from(data, pos + 6)[0], pos + 8


def _skip_sequence(buf: _Buffer, pos: int, explicit: bool) -> int:
    """Past a sequence of undefined length whose items start at ``pos``."""
    while True:
        data = buf.need(pos + 8)
        g, e, length = struct.unpack_from("<HHI", data, pos)
        tag = g << 16 | e
        pos += 8
        if tag == _SEQUENCE_END:
            return pos
        if tag != _ITEM:
            raise _Declined("not an item")
        if length != _UNDEFINED:
            pos += length
            continue
        while True:  # the item's elements, up to its delimiter
            data = buf.need(pos + 8)
            g, e = _TAG.unpack_from(data, pos)
            if g << 16 | e == _ITEM_END:
                pos += 8
                break
            vr, length, start = _element_header(buf, pos, explicit)
            if length != _UNDEFINED:
                pos = start + length
            elif explicit and vr != b"SQ":
                raise _Declined("undefined length")
            else:
                pos = _skip_sequence(buf, start, explicit)


def _value(raw: bytes, vr: str) -> Any:
    """One value as pydicom gives it, or :class:`_Declined` where it might differ."""
    if vr == "US":
        if len(raw) == 0:
            return None
        if len(raw) != 2:
            raise _Declined("US value count")
        return _U16.unpack(raw)[0]
    if not raw.isascii() or b"\x1b" in raw:
        raise _Declined("text beyond ASCII")
    text = raw.decode("ascii")
    if vr in ("DS", "IS"):
        if not text.strip(" \x00"):
            if text:
                raise _Declined("blank number")
            return None
        items = [v.strip() for v in text.strip().rstrip(" \x00").split("\\")]
        pattern, kind = (_DS, float) if vr == "DS" else (_IS, int)
        if not all(pattern.fullmatch(v) for v in items):
            raise _Declined("malformed number")
        numbers = [kind(v) for v in items]
        return numbers[0] if len(numbers) == 1 else numbers
    text = text.rstrip("\x00 ")
    if "\\" in text or (vr == "PN" and "=" in text):
        raise _Declined("several values")
    return text
