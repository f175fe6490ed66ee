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
from .nifti import NiftiFile, read_header

Matcher = Callable[[Path], bool]
Opener = Callable[[Path, Limits], NiftiFile]

#: ``(format name, matches, open)``, tried in order.
READERS: list[tuple[str, Matcher, Opener]] = []


def open_source(path: str | os.PathLike[str], limits: Limits = Limits()) -> NiftiFile:
    """Read and check ``path``'s description (header, geometry, sizes); no voxel data yet."""
    p = Path(path)
    for _name, matches, opener in READERS:
        if matches(p):
            return opener(p, limits)
    return read_header(p, limits)
