"""DICOM inputs as batch jobs: one job per series, and one per input that gives no volume.

A folder's DICOM files are grouped into series together, wherever they sit under it (a series
spread over sub-folders is still one series); each series' output goes to
``OUT/<its folder, relative to the input>/<SeriesNumber>_<SeriesDescription>/``. DICOM files
named on their own are grouped together and go to the top of ``OUT``; a DICOMDIR named on its
own stands for the files it lists, laid out as if its folder had been given (see
:mod:`niftislice.read.dicomdir`). Paths inside the jobs are
absolute so that worker processes and Dask workers find the files.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from ..naming import safe_relative_dir, stem_of
from ..read.dicom import DicomScan, scan_dicom
from ..read.dicom_source import DicomPart, DicomProblem, parts_of
from ..read.dicomdir import is_dicomdir, scan_dicomdir

#: ``(path, rel_dir, stem, part)`` of one job; :mod:`.discover` makes the stems distinct
JobSpec = tuple[Path, Path, str, DicomPart | DicomProblem]


def dicom_jobs(folders: Sequence[tuple[Path, list[Path]]], files: Sequence[Path]) -> list[JobSpec]:
    """Jobs for each input folder's DICOM files and for the files named on their own."""
    jobs: list[JobSpec] = []
    indexes = [Path(f) for f in files if is_dicomdir(Path(f))]
    files = [f for f in files if Path(f) not in indexes]
    groups: list[tuple[Path, Sequence[Path] | Path, bool]] = [(r, f, True) for r, f in folders]
    groups += [(index.parent, index, True) for index in indexes]
    if files:
        common = Path(os.path.commonpath([str(Path(f).absolute().parent) for f in files]))
        groups.append((common, list(files), False))
    for root, found, mirror in groups:
        abs_root = root.absolute()
        for part in parts_of(_scan(found), abs_root):
            jobs.append(_job(part, root, abs_root, mirror))
    return jobs


def _scan(found: Sequence[Path] | Path) -> DicomScan:
    """A DICOMDIR's files, or the given ones."""
    if isinstance(found, Path):
        return scan_dicomdir(found.absolute())
    return scan_dicom([f.absolute() for f in found])


def _job(
    part: DicomPart | DicomProblem,
    root: Path,
    abs_root: Path,
    mirror: bool,
) -> JobSpec:
    if isinstance(part, DicomProblem):
        where = Path(part.source)
        shown = _shown(where, root, abs_root) if where.is_absolute() else part.source
        path = where if where.is_absolute() else abs_root
        return (path, Path(), stem_of(path), DicomProblem(shown, part.reason, part.skip))
    series = part.series
    rel = safe_relative_dir(series.folder.relative_to(abs_root)) if mirror else Path()
    shown = f"{_shown(series.folder, root, abs_root)} [{series.name}]"
    return (series.folder, rel, series.name, DicomPart(series, abs_root, shown))


def _shown(path: Path, root: Path, abs_root: Path) -> str:
    """``path`` as the user would write it: under the input as they gave it."""
    try:
        return str(root / path.relative_to(abs_root))
    except ValueError:
        return str(path)
