"""A DICOMDIR as an input: the series of the files it lists, as if their folder had been given.

A DICOMDIR (the index a DICOM disc or CD export carries at its top) lists every file of the
file-set by a *Referenced File ID*: up to eight path components relative to the DICOMDIR's own
folder, usually upper case (``IMAGES/IM0001``) even when the copy on disk is lower case. Files
are found case-insensitively (and an ISO 9660 version suffix such as ``;1`` is ignored). IDs
that leave the DICOMDIR's folder (``..``, absolute paths) are not followed.

The listed files are then scanned exactly as a folder scan reads them (headers only, grouped by
SeriesInstanceUID and geometry; see :func:`.dicom.scan_dicom`), so a DICOMDIR gives the same
series, names and volumes as its folder. A listed file that is missing makes one
:class:`~.dicom_series.Problem` naming how many and which; the series it belongs to (by the
DICOMDIR's SERIES record) is not converted, since it would be silently incomplete, and the other
series are.

Why the folder scan stays the default for a folder that holds a DICOMDIR: every file's header
must be read either way (geometry is not in the DICOMDIR), so the index saves only the walk and
the 132-byte sniff of each file, which is small beside the header reads; and a folder scan also
finds files a stale DICOMDIR does not list.

Nothing identifying the patient (PATIENT records) is read into messages: only file IDs, series
numbers and modalities.
"""

from __future__ import annotations

import logging
import os
import re
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .dicom import scan_dicom
from .dicom_files import DICOMDIR_SOP, lenient
from .dicom_header import LONG_VRS
from .dicom_series import DicomScan, Problem

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

log = logging.getLogger(__name__)

_SHOWN_IDS = 3  # missing files named in a message; the rest are counted
_ISO_VERSION = re.compile(r"\.?;\d+$")  # 'IM0001;1', 'IM0001.;1' as ISO 9660 discs show names


@dataclass(frozen=True)
class Listed:
    """One file the DICOMDIR lists."""

    file_id: str  # the Referenced File ID as written, components joined by '/'
    path: Path | None  # where it was found; None when missing (or the ID leaves the folder)
    series_uid: str  # of its SERIES record ('' when it has none)
    series_label: str  # 'series 5 (CT)', for messages


@dataclass(frozen=True)
class DicomdirIndex:
    """What a DICOMDIR lists, and which of those files are on disk."""

    path: Path
    listed: tuple[Listed, ...]

    @property
    def missing(self) -> tuple[Listed, ...]:
        return tuple(item for item in self.listed if item.path is None)

    def usable_files(self) -> list[Path]:
        """The files of every series that is complete on disk, in the DICOMDIR's order."""
        broken = {item.series_uid for item in self.missing if item.series_uid}
        return [
            item.path
            for item in self.listed
            if item.path is not None and (not item.series_uid or item.series_uid not in broken)
        ]

    def problem(self) -> Problem | None:
        """One line for the missing files (how many, the first few, the series left out)."""
        missing = self.missing
        if not missing:
            return None
        shown = ", ".join(item.file_id for item in missing[:_SHOWN_IDS])
        more = f" and {len(missing) - _SHOWN_IDS} more" if len(missing) > _SHOWN_IDS else ""
        if len(missing) == len(self.listed):
            return Problem(
                str(self.path),
                f"all {len(missing)} files this DICOMDIR lists are missing ({shown}{more}); "
                "copy the whole disc, not only its DICOMDIR",
            )
        left_out = list(dict.fromkeys(i.series_label for i in missing if i.series_uid))
        tail = f"; not converted: {', '.join(left_out)}" if left_out else ""
        return Problem(
            str(self.path),
            f"{len(missing)} of {len(self.listed)} files this DICOMDIR lists are missing "
            f"({shown}{more}){tail}",
        )


def is_dicomdir(path: Path) -> bool:
    """True for a DICOMDIR file, told by the Media Storage SOP Class in its file meta group,
    whatever the file's name.

    Read here from the file's first bytes, not with pydicom: this is asked of every DICOM file
    named on its own (``info IM0001``, ``convert *.dcm``), and importing pydicom for it made
    the first answer take 400-700 ms (3 fresh processes; the read itself is under 1 ms)."""
    return _media_storage_class(path) == DICOMDIR_SOP


def _media_storage_class(path: Path) -> str | None:
    """(0002,0002) of a file with the ``DICM`` preamble (the file meta group is always
    explicit VR little endian), or None."""
    try:
        with open(path, "rb") as f:
            head = f.read(4096)
    except OSError:
        return None
    if head[128:132] != b"DICM":
        return None
    pos = 132
    try:
        while True:
            group, element = struct.unpack_from("<HH", head, pos)
            if group != 2:
                return None
            if head[pos + 4 : pos + 6] in LONG_VRS:
                (length,), start = struct.unpack_from("<I", head, pos + 8), pos + 12
            else:
                (length,), start = struct.unpack_from("<H", head, pos + 6), pos + 8
            if element == 2:
                return head[start : start + length].rstrip(b"\0 ").decode("ascii", "replace")
            pos = start + length
    except struct.error:  # the group runs past what was read: not a file meta group we know
        return None


def read_dicomdir(path: Path) -> DicomdirIndex:
    """The files ``path`` lists, each found (or not) under its folder. Raises ``ValueError``
    with a one-line reason when the DICOMDIR cannot be read."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        with lenient():
            ds = pydicom.dcmread(path)
            records = list(ds.get("DirectoryRecordSequence") or [])
            entries = list(_referenced(ds, records))
    except (InvalidDicomError, EOFError, OSError, ValueError, KeyError, TypeError) as e:
        text = str(e).splitlines()[0][:160] if str(e) else type(e).__name__
        raise ValueError(f"unreadable DICOMDIR ({text})") from None
    finder = _Finder(path.parent)
    listed = tuple(
        Listed("/".join(parts), finder.find(parts), uid, label) for parts, uid, label in entries
    )
    return DicomdirIndex(path, listed)


def scan_dicomdir(path: Path) -> DicomScan:
    """The series of the files ``path`` lists (see the module notes), and its problems."""
    try:
        index = read_dicomdir(path)
    except ValueError as e:
        return DicomScan((), (Problem(str(path), str(e)),), 1)
    found = scan_dicom(index.usable_files())
    problem = index.problem()
    if problem is None and not index.listed:
        problem = Problem(str(path), "a DICOMDIR that lists no files")
    problems = found.problems + ((problem,) if problem else ())
    return DicomScan(found.series, problems, found.n_files + 1)


def missing_reason(path: Path) -> str | None:
    """Why a DICOMDIR found in a folder gave no images: files it lists are missing, or it lists
    none; None when they are all there."""
    try:
        index = read_dicomdir(path)
    except ValueError as e:
        return str(e)
    problem = index.problem()
    if problem is None and not index.listed:
        return "a DICOMDIR that lists no files"
    return problem.reason if problem else None


_Entry = tuple[list[str], str, str]  # (file ID components, series UID, series label)


def _referenced(ds: Dataset, records: list[Dataset]) -> Iterator[_Entry]:
    """Every record holding a Referenced File ID, with its SERIES record, in directory order.

    The hierarchy is followed by the records' offsets (as the standard defines it, so reordered
    records are read right); records the walk does not reach are still listed, in sequence order.
    """
    by_offset = {r.seq_item_tell: r for r in records if getattr(r, "seq_item_tell", None)}
    seen: set[int] = set()

    def walk(offset: int, series: Dataset | None) -> Iterator[_Entry]:
        while offset and offset in by_offset and offset not in seen:
            seen.add(offset)
            record = by_offset[offset]
            here = record if _kind(record) == "SERIES" else series
            entry = _entry(record, here)
            if entry:
                yield entry
            yield from walk(_int(record.get("OffsetOfReferencedLowerLevelDirectoryEntity")), here)
            offset = _int(record.get("OffsetOfTheNextDirectoryRecord"))

    first = "OffsetOfTheFirstDirectoryRecordOfTheRootDirectoryEntity"
    yield from walk(_int(ds.get(first)), None)
    for record in records:
        if getattr(record, "seq_item_tell", None) not in seen:
            entry = _entry(record, None)
            if entry:
                yield entry


def _kind(record: Dataset) -> str:
    return str(record.get("DirectoryRecordType", "")).strip().upper()


def _int(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def _entry(record: Dataset, series: Dataset | None) -> _Entry | None:
    file_id = record.get("ReferencedFileID")
    if not file_id:
        return None
    parts = [file_id] if isinstance(file_id, str) else [str(p) for p in file_id]
    parts = [p.strip() for p in parts if p and p.strip()]
    if not parts:
        return None
    if series is None:
        return parts, "", ""
    number = series.get("SeriesNumber")
    modality = str(series.get("Modality", "") or "").strip()
    label = f"series {number}" if number not in (None, "") else "a series"
    return parts, str(series.get("SeriesInstanceUID", "")), f"{label} ({modality or '?'})"


class _Finder:
    """Finds file IDs under a folder: exact names first, then case-insensitively (listing each
    folder once)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.listings: dict[Path, dict[str, str]] = {}

    def find(self, parts: list[str]) -> Path | None:
        here = self.root
        for part in parts:
            if part in ("..", ".") or "/" in part or os.path.isabs(part):
                return None  # the standard's IDs never leave the DICOMDIR's folder
            exact = here / part
            if exact.exists():
                here = exact
                continue
            name = self._listing(here).get(_fold(part))
            if name is None:
                return None
            here = here / name
        return here if here.is_file() else None

    def _listing(self, folder: Path) -> dict[str, str]:
        if folder not in self.listings:
            try:
                names = sorted(os.listdir(folder))
            except OSError:
                names = []
            self.listings[folder] = {_fold(n): n for n in reversed(names)}
        return self.listings[folder]


def _fold(name: str) -> str:
    return _ISO_VERSION.sub("", name).casefold()
