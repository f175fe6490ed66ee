"""Is this DICOM? A cheap test on a file's first 132 bytes (pydicom is not imported here, so
asking costs nothing at start-up for inputs that are not DICOM).

A file is DICOM when it carries ``DICM`` after its 128-byte preamble, or, for old files written
without a preamble, when it starts with a group 0002 or 0008 tag (little-endian); the name and
extension do not matter. The second kind is confirmed later by parsing the header.
"""

from __future__ import annotations

from pathlib import Path

from ..walk import walk

_FIRST_GROUPS = (b"\x02\x00", b"\x08\x00")  # file meta or identifying group, little-endian
_NIFTI_SUFFIXES = (".nii", ".nii.gz")


def _head(path: Path) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read(132)
    except OSError:
        return b""


def has_dicm_marker(path: Path) -> bool:
    """True if the file has the 128-byte preamble followed by ``DICM``."""
    head = _head(path)
    return len(head) == 132 and head[128:] == b"DICM"


def looks_like_dicom(path: Path) -> bool:
    """The marker, or a plausible first tag (never true for NIfTI, NRRD or MetaImage files)."""
    head = _head(path)
    if len(head) == 132 and head[128:] == b"DICM":
        return True
    element = int.from_bytes(head[2:4], "little")
    return len(head) >= 8 and head[:2] in _FIRST_GROUPS and element < 0x1000


def is_dicom_input(path: Path) -> bool:
    """A DICOM file, or a folder holding at least one (searched recursively as
    :func:`niftislice.walk.walk` searches, hidden skipped; fifos and devices are not opened)."""
    if path.is_file():
        return not path.name.lower().endswith(_NIFTI_SUFFIXES) and looks_like_dicom(path)
    if not path.is_dir():
        return False
    for folder in walk(path, warn=False):  # a first look: the search proper warns
        for name in folder.files:
            f = folder.path / name
            candidate = not name.lower().endswith(_NIFTI_SUFFIXES) and name not in folder.broken
            if candidate and f.is_file() and looks_like_dicom(f):
                return True
    return False
