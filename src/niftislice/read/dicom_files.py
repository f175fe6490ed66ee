"""DICOM files one at a time: recognise them, read their headers (never the pixels), and say
what each 2D frame is.

A file is DICOM when it carries the ``DICM`` marker after its 128-byte preamble, or (old files
without a preamble) when its first bytes are a group 0002/0008 tag and it parses as a dataset
holding image tags; the name and extension do not matter. Headers are read with
``stop_before_pixels``: the pixel data is only located (its offset, and whether the file holds
all of it) so a truncated file or one without pixel data is reported before anything is decoded.

Conventions kept from the standard: ``ImageOrientationPatient`` is ``(r, c)`` with ``r`` the
direction of increasing column index and ``c`` that of increasing row index, in LPS+ millimetres;
``PixelSpacing`` is ``[Δrow, Δcol]`` (distance between rows first).
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .dicom_header import Header, read_plain_header
from .dicom_sniff import has_dicm_marker, looks_like_dicom

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

log = logging.getLogger(__name__)

DICOMDIR_SOP = "1.2.840.10008.1.3.10"
_PIXEL_TAGS_LE = (b"\xe0\x7f\x10\x00", b"\xe0\x7f\x08\x00", b"\xe0\x7f\x09\x00")
_PIXEL_TAGS_BE = (b"\x7f\xe0\x00\x10", b"\x7f\xe0\x00\x08", b"\x7f\xe0\x00\x09")

# Identifying attributes: read only to be kept out of names, sidecars and viewers, unless the
# user asks for them (--keep-phi).
PHI_KEYWORDS = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "PatientAge",
    "OtherPatientIDs",
    "AccessionNumber",
    "InstitutionName",
    "ReferringPhysicianName",
    "StudyDate",
    "StudyTime",
    "AcquisitionDate",
)


class NotDicom(Exception):
    """The file is not DICOM at all (silently ignored when scanning folders)."""


class BadDicom(Exception):
    """A DICOM file that gives no image; the message is the one-line reason. ``kind`` is
    ``"error"`` (a damaged or incomplete image), ``"not-image"`` (an object that holds no image
    niftislice reads: RT structure set, SR, segmentation...) or ``"dicomdir"``."""

    def __init__(self, reason: str, kind: str = "error") -> None:
        super().__init__(reason)
        self.kind = kind


@dataclass(frozen=True)
class Frame:
    """One 2D image of a file: its geometry and value mapping (LPS+ mm, data units)."""

    path: Path
    index: int | None  # frame number in a multi-frame file, None for a single-frame file
    orientation: tuple[float, ...] | None  # (r, c): six direction cosines
    position: tuple[float, float, float] | None  # ImagePositionPatient of pixel (0, 0)
    spacing: tuple[float, float] | None  # PixelSpacing: (Δrow, Δcol) in mm
    slope: float
    inter: float
    window: tuple[float, float] | None  # first (WindowCenter, WindowWidth)
    instance: int | None  # InstanceNumber (tie-breaks only; never the slice order)
    transfer_syntax: str = ""  # of the file holding the frame
    #: where the frame's raw pixels start in the file (uncompressed, one sample per pixel,
    #: native integers), so they can be read without parsing the file again; -1 otherwise
    pixel_offset: int = -1
    big_endian: bool = False
    #: (TemporalPositionIdentifier, AcquisitionNumber): which volume of a 4D series it is in
    temporal: tuple[int | None, int | None] = (None, None)


@dataclass(frozen=True)
class DicomFile:
    """What a DICOM image file's header says; pixel data is located, not read."""

    path: Path
    series_uid: str
    study_uid: str
    modality: str
    series_number: int | None
    description: str
    rows: int
    columns: int
    samples: int  # SamplesPerPixel
    bits_allocated: int
    bits_stored: int
    signed: bool  # PixelRepresentation 1
    photometric: str
    transfer_syntax: str
    echo: float | None
    thickness: float | None  # SliceThickness, mm (a single slice's depth only)
    spacing_between: float | None  # SpacingBetweenSlices, mm (idem)
    frames: tuple[Frame, ...]
    phi: dict[str, str] = field(default_factory=dict, compare=False, repr=False)
    repetition_ms: float | None = None  # RepetitionTime: a 4D series' time step


@contextmanager
def lenient() -> Iterator[None]:
    """Read values as they are, without pydicom's per-value validation (and its warnings): we
    check what we use ourselves, and validation is 40 % of a header's read time."""
    import pydicom

    settings = pydicom.config.settings
    before = settings.reading_validation_mode
    settings.reading_validation_mode = pydicom.config.IGNORE
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        settings.reading_validation_mode = before


def read_file(path: Path, *, plain: bool = True) -> DicomFile:
    """Read one file's header. Raises :class:`NotDicom` for other files and :class:`BadDicom`
    (with a one-line reason) for DICOM files that hold no usable image. ``plain=False`` always
    reads with pydicom (the tests compare both ways)."""
    found = _read_plain(path) if plain else None
    if found is not None:
        return found
    with lenient():
        return _read_file(path)


def _read_plain(path: Path) -> DicomFile | None:
    """The file as :mod:`.dicom_header` reads it, without pydicom; None when pydicom must read
    it: anything unusual, and every file that gives an error (so errors read the same)."""
    head = read_plain_header(path)
    if head is None:
        return None
    try:
        _refuse_non_images(head)
        value_at = head.pixel_at + (8 if head.implicit else 12)
        return _describe(head, path, _raw_start(head, value_at, os.path.getsize(path), True))
    except (BadDicom, OSError, ValueError, TypeError, AttributeError, KeyError, IndexError):
        return None


def _read_file(path: Path) -> DicomFile:
    import pydicom
    from pydicom.errors import InvalidDicomError

    marker = has_dicm_marker(path)
    if not marker and not looks_like_dicom(path):
        raise NotDicom(str(path))
    try:
        with open(path, "rb") as f:
            ds = pydicom.dcmread(f, stop_before_pixels=True, force=not marker)
            pixel_at = f.tell()
        size = os.path.getsize(path)
    except (InvalidDicomError, EOFError, OSError, ValueError, KeyError, TypeError) as e:
        if not marker:
            raise NotDicom(str(path)) from None
        raise BadDicom(f"unreadable DICOM header ({_short(e)})") from None
    if not marker and "SOPClassUID" not in ds and "Rows" not in ds:
        raise NotDicom(str(path))
    try:
        _refuse_non_images(ds)
        raw_at = _check_pixel_data(ds, path, pixel_at, size)
        return _describe(ds, path, raw_at)
    except (ValueError, TypeError, AttributeError, KeyError, IndexError) as e:
        raise BadDicom(f"malformed header ({_short(e)})") from None


def _short(e: BaseException) -> str:
    text = str(e).splitlines()[0] if str(e) else type(e).__name__
    return text[:160]


def _sop_name(ds: Dataset | Header) -> str:
    uid = ds.get("SOPClassUID") or getattr(ds, "file_meta", {}).get("MediaStorageSOPClassUID")
    name = getattr(uid, "name", "") if uid else ""
    return str(name or uid or "unknown SOP class")


def _refuse_non_images(ds: Dataset | Header) -> None:
    meta = getattr(ds, "file_meta", {})
    if meta.get("MediaStorageSOPClassUID") == DICOMDIR_SOP or "DirectoryRecordSequence" in ds:
        raise BadDicom(
            "a DICOMDIR (the index of a DICOM disc, not an image); "
            "give the folder that holds it to read the images it lists",
            "dicomdir",
        )
    if "Rows" not in ds or "Columns" not in ds:
        raise BadDicom(f"not an image (no Rows/Columns): {_sop_name(ds)}", "not-image")
    if int(ds.get("BitsAllocated", 16)) == 1:
        raise BadDicom(f"1-bit pixel data ({_sop_name(ds)}) is not supported", "not-image")


def _check_pixel_data(ds: Dataset | Header, path: Path, pixel_at: int, size: int) -> int:
    """The file must hold a pixel data element and, if uncompressed, all of its bytes.
    Returns where raw integer pixels start (-1 when they need pydicom to be decoded)."""
    with open(path, "rb") as f:
        f.seek(pixel_at)
        tag = f.read(4)
    if tag not in _PIXEL_TAGS_LE + _PIXEL_TAGS_BE:
        raise BadDicom("no pixel data (the file ends before the image)")
    from pydicom.uid import UID

    ts = UID(str(ds.file_meta.get("TransferSyntaxUID", "1.2.840.10008.1.2")))
    if ts.is_compressed:
        return -1
    raw = tag in _PIXEL_TAGS_LE[:1] + _PIXEL_TAGS_BE[:1] and not ts.is_deflated
    return _raw_start(ds, pixel_at + (8 if ts.is_implicit_VR else 12), size, raw)


def _raw_start(ds: Dataset | Header, value_at: int, size: int, raw: bool) -> int:
    """The uncompressed pixel data starting at ``value_at`` must all be in the file (of
    ``size`` bytes). Returns ``value_at`` when they are raw integers (``raw``: native pixel
    data, not float, not deflated) of one sample per pixel, else -1."""
    expected = (
        int(ds.Rows)
        * int(ds.Columns)
        * int(ds.get("NumberOfFrames", 1) or 1)
        * int(ds.get("SamplesPerPixel", 1))
        * int(ds.get("BitsAllocated", 16))
        // 8
    )
    held = size - value_at
    if held < expected:
        raise BadDicom(
            f"truncated pixel data: {expected:,} bytes expected, the file holds {max(held, 0):,}"
        )
    raw = raw and int(ds.get("SamplesPerPixel", 1)) == 1
    return value_at if raw and int(ds.get("BitsAllocated", 16)) in (8, 16, 32) else -1


def _floats(value: Any, n: int) -> tuple[float, ...] | None:
    if value is None:
        return None
    try:
        out = tuple(float(v) for v in (value if isinstance(value, Sequence) else [value]))
    except (TypeError, ValueError):
        return None
    return out if len(out) == n else None


def _first_float(value: Any) -> float | None:
    if value is None or value == "":
        return None
    try:
        if isinstance(value, Sequence) and not isinstance(value, str):
            return float(value[0]) if len(value) else None
        return float(value)
    except (TypeError, ValueError):
        return None


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def _frame_values(
    sources: Sequence[Dataset | Header], path: Path, index: int | None, instance: int | None
) -> Frame:
    """A frame from the first of ``sources`` (per-frame group, shared group, top level) that
    holds each attribute."""

    def find(keyword: str) -> Any:
        for src in sources:
            value = src.get(keyword)
            if value not in (None, ""):
                return value
        return None

    center, width = _first_float(find("WindowCenter")), _first_float(find("WindowWidth"))
    slope = _first_float(find("RescaleSlope"))
    inter = _first_float(find("RescaleIntercept"))
    return Frame(
        path=path,
        index=index,
        orientation=_floats(find("ImageOrientationPatient"), 6),
        position=_floats(find("ImagePositionPatient"), 3),  # type: ignore[arg-type]
        spacing=_floats(find("PixelSpacing"), 2),  # type: ignore[arg-type]
        slope=1.0 if slope is None or slope == 0 else slope,
        inter=0.0 if inter is None else inter,
        window=(center, width) if center is not None and width and width > 0 else None,
        instance=instance,
        temporal=(
            _int_or_none(find("TemporalPositionIdentifier")),
            _int_or_none(find("AcquisitionNumber")),
        ),
    )


_GROUPS = (
    "PlanePositionSequence",
    "PlaneOrientationSequence",
    "PixelMeasuresSequence",
    "PixelValueTransformationSequence",
    "FrameVOILUTSequence",
)


def _group_items(fg: Dataset | None) -> list[Dataset]:
    """The items of one functional-group item's sequences (each holds a few attributes)."""
    if fg is None:
        return []
    return [fg[k][0] for k in _GROUPS if k in fg and len(fg[k].value)]


def _frames(ds: Dataset | Header, path: Path) -> tuple[Frame, ...]:
    instance = _int_or_none(ds.get("InstanceNumber"))
    n = _int_or_none(ds.get("NumberOfFrames")) or 1
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    if per_frame is not None and len(per_frame) == n:
        shared_seq = ds.get("SharedFunctionalGroupsSequence")
        shared = _group_items(shared_seq[0] if shared_seq else None)
        return tuple(
            _frame_values([*_group_items(item), *shared, ds], path, k, instance)
            for k, item in enumerate(per_frame)
        )
    if n == 1:
        return (_frame_values([ds], path, None, instance),)
    offsets = _floats(ds.get("GridFrameOffsetVector"), n)  # RT dose and similar
    base = _frame_values([ds], path, 0, instance)
    frames = []
    for k in range(n):
        position = None
        if offsets is not None and base.position is not None and base.orientation is not None:
            r, c = base.orientation[:3], base.orientation[3:]
            normal = (
                r[1] * c[2] - r[2] * c[1],
                r[2] * c[0] - r[0] * c[2],
                r[0] * c[1] - r[1] * c[0],
            )
            position = tuple(p + offsets[k] * v for p, v in zip(base.position, normal, strict=True))
        frames.append(replace(base, index=k, position=position))
    return tuple(frames)


def _located(
    frames: tuple[Frame, ...], ds: Dataset | Header, raw_at: int, syntax: str
) -> list[Frame]:
    """Frames with their transfer syntax and, for raw pixels, where each one starts."""
    frame_bytes = int(ds.Rows) * int(ds.Columns) * int(ds.get("BitsAllocated", 16)) // 8
    big = syntax == "1.2.840.10008.1.2.2"
    return [
        replace(
            f,
            transfer_syntax=syntax,
            pixel_offset=raw_at + (f.index or 0) * frame_bytes if raw_at >= 0 else -1,
            big_endian=big,
        )
        for f in frames
    ]


def _describe(ds: Dataset | Header, path: Path, raw_at: int = -1) -> DicomFile:
    meta = getattr(ds, "file_meta", {})
    echo = ds.get("EchoNumbers")
    syntax = str(meta.get("TransferSyntaxUID", "1.2.840.10008.1.2"))
    return DicomFile(
        path=path,
        series_uid=str(ds.get("SeriesInstanceUID", "")),
        study_uid=str(ds.get("StudyInstanceUID", "")),
        modality=str(ds.get("Modality", "")),
        series_number=_int_or_none(ds.get("SeriesNumber")),
        description=str(ds.get("SeriesDescription", "") or ""),
        rows=int(ds.Rows),
        columns=int(ds.Columns),
        samples=int(ds.get("SamplesPerPixel", 1) or 1),
        bits_allocated=int(ds.get("BitsAllocated", 16) or 16),
        bits_stored=int(ds.get("BitsStored", ds.get("BitsAllocated", 16)) or 16),
        signed=int(ds.get("PixelRepresentation", 0) or 0) == 1,
        photometric=str(ds.get("PhotometricInterpretation", "MONOCHROME2")).strip(),
        transfer_syntax=syntax,
        echo=_first_float(echo),
        thickness=_first_float(ds.get("SliceThickness")),
        spacing_between=_first_float(ds.get("SpacingBetweenSlices")),
        frames=tuple(_located(_frames(ds, path), ds, raw_at, syntax)),
        phi={k: str(v) for k in PHI_KEYWORDS if (v := ds.get(k)) not in (None, "")},
        repetition_ms=_first_float(ds.get("RepetitionTime")),
    )
