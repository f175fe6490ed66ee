"""Which reader opens a path: the first whose ``matches`` says yes; NIfTI otherwise.

Readers of other formats register here (``READERS``), each as a pair of functions: a cheap test
on the path (a suffix, a magic number; no voxel data read) and an opener returning the
:class:`~.nifti.NiftiFile` description (see :func:`.source.array_source`).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from ..types import Limits
from . import metaimage, nibabel_formats, nrrd
from .nifti import NiftiFile, read_header

Matcher = Callable[[Path], bool]
Opener = Callable[[Path, Limits], NiftiFile]


def has_suffix(suffixes: tuple[str, ...]) -> Matcher:
    """A matcher for file names ending in one of ``suffixes`` (lower case), in any case."""
    return lambda path: path.name.lower().endswith(suffixes)


#: ``(format name, matches, open)``, tried in order.
READERS: list[tuple[str, Matcher, Opener]] = [
    ("NRRD", has_suffix(nrrd.SUFFIXES), nrrd.open_nrrd),
    ("MetaImage", has_suffix(metaimage.SUFFIXES), metaimage.open_metaimage),
    ("nibabel", has_suffix(nibabel_formats.SUFFIXES), nibabel_formats.open_nibabel),
]


def open_source(path: str | os.PathLike[str], limits: Limits = Limits()) -> NiftiFile:
    """Read and check ``path``'s description (header, geometry, sizes); no voxel data yet."""
    p = Path(path)
    for _name, matches, opener in READERS:
        if matches(p):
            return opener(p, limits)
    return read_header(p, limits)
