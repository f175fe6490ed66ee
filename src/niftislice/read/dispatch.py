"""Which reader opens a path: the first whose ``matches`` says yes; NIfTI otherwise.

Readers of other formats register here (``READERS``), each as a pair of functions: a cheap test
on the path (a suffix, a magic number; no voxel data read) and an opener returning the
:class:`~.nifti.NiftiFile` description (see :func:`.source.array_source`). A reader's module is
imported when a path first matches it: a NIfTI conversion never loads the NRRD, MetaImage or
nibabel-format readers (and pydicom only loads for DICOM input).
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from pathlib import Path

from ..errors import InputError
from ..types import Limits
from .dicom_sniff import is_dicom_input
from .nifti import NiftiFile, read_header

#: the input formats, as messages name them
FORMATS = "NIfTI, DICOM, NRRD, MetaImage, Analyze, MGH, MINC and PAR/REC"

Matcher = Callable[[Path], bool]
Opener = Callable[[Path, Limits], NiftiFile]


def has_suffix(suffixes: tuple[str, ...]) -> Matcher:
    """A matcher for file names ending in one of ``suffixes`` (lower case), in any case."""
    return lambda path: path.name.lower().endswith(suffixes)


def imported(module: str, name: str) -> Opener:
    """An opener that imports ``module`` (relative to this package) on its first call."""

    def opener(path: Path, limits: Limits) -> NiftiFile:
        real: Opener = getattr(importlib.import_module(module, __package__), name)
        return real(path, limits)

    return opener


#: ``(format name, matches, open)``, tried in order (DICOM last: it reads a file's first bytes).
#: The suffixes are the readers' own ``SUFFIXES`` (tests/test_read_nifti.py checks they agree).
READERS: list[tuple[str, Matcher, Opener]] = [
    ("NRRD", has_suffix((".nrrd", ".nhdr")), imported(".nrrd", "open_nrrd")),
    ("MetaImage", has_suffix((".mha", ".mhd")), imported(".metaimage", "open_metaimage")),
    (
        "nibabel",
        has_suffix((".hdr", ".img", ".mgh", ".mgz", ".mnc", ".par", ".rec")),
        imported(".nibabel_formats", "open_nibabel"),
    ),
    ("DICOM", is_dicom_input, imported(".dicom_source", "open_dicom")),
]


def open_source(path: str | os.PathLike[str], limits: Limits = Limits()) -> NiftiFile:
    """Read and check ``path``'s description (header, geometry, sizes); no voxel data yet."""
    p = Path(path)
    for _name, matches, opener in READERS:
        if matches(p):
            return opener(p, limits)
    try:
        return read_header(p, limits)
    except InputError as e:
        if p.name.lower().endswith((".nii", ".nii.gz")):
            raise
        # notes.txt named by mistake: say what was tried, not only NIfTI's complaint
        raise InputError(f"not a volume niftislice reads ({FORMATS}); as NIfTI: {e}") from e
