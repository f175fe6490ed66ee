"""DICOM series as the :class:`~.nifti.NiftiFile` the pipeline consumes.

A folder may hold several series, so a batch job names one: a :class:`DicomPart` (the series,
found when the inputs were discovered; picklable, so it travels to worker processes and Dask
tasks) or a :class:`DicomProblem` (an input that gives no volume, with its one-line reason).
``open_dicom`` is the reader :mod:`.dispatch` uses for a path (``info``, ``preview``,
``load``): a DICOM file, or a folder holding exactly one series.

The sidecar's ``source.dicom`` section records the series (UIDs, modality, number,
description, the files in slice order, the measured slice step, the first window); nothing that
identifies the patient, which stays in ``NiftiFile.identity`` for ``--keep-phi``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from ..types import Limits
from .dicom import read_series_volume, scan_dicom
from .dicom_header import syntax_name
from .dicom_series import DicomScan, DicomSeries, Problem
from .dicomdir import is_dicomdir, missing_reason, scan_dicomdir
from .digest import SourceDigests
from .nifti import NiftiFile
from .source import array_source


@dataclass(frozen=True)
class DicomPart:
    """One series of a DICOM input."""

    series: DicomSeries
    root: Path  # the input it was found in; files are recorded relative to it
    shown: str = ""  # how reports name it (the folder as the user gave it, and the series)

    @property
    def source(self) -> str:
        return self.shown or f"{self.series.folder} [{self.series.name}]"

    skip = False
    reason = ""

    def open(self, limits: Limits) -> NiftiFile:
        return series_source(self.series, self.root, limits)


@dataclass(frozen=True)
class DicomProblem:
    """A DICOM input that gives no volume. Objects that are not images (RT structure sets,
    SR, ...) are skipped with a warning; damaged or unusable images fail."""

    source: str
    reason: str
    skip: bool = False

    def open(self, limits: Limits) -> NiftiFile:
        raise InputError(self.reason)


def parts_of(found: DicomScan, root: Path) -> list[DicomPart | DicomProblem]:
    """Every series and every problem of a scan, in a stable order. A DICOMDIR beside the images
    it indexes is not a problem; a DICOMDIR alone is (its line says which files it misses)."""
    parts: list[DicomPart | DicomProblem] = [DicomPart(s, root) for s in found.series]
    for p in found.problems:
        reason = _dicomdir_reason(p, found) if p.kind == "dicomdir" else p.reason
        if reason:
            parts.append(DicomProblem(p.source, reason, skip=p.kind == "not-image"))
    return parts


def _dicomdir_reason(problem: Problem, found: DicomScan) -> str | None:
    """A DICOMDIR met in a folder: no line when the folder gave series or the files it lists
    are all there (they speak for themselves); else which of them are missing."""
    if found.series:
        return None
    path = Path(problem.source)
    if not path.is_file():  # several DICOMDIRs in one line ('... and 2 more files there')
        return problem.reason
    return missing_reason(path)


def series_source(series: DicomSeries, root: Path, limits: Limits = Limits()) -> NiftiFile:
    """The series described for the pipeline; its voxels are read when first asked for."""

    def loader(indices: Sequence[int]) -> Iterator[tuple[int, np.ndarray]]:
        for t in indices:
            yield t, read_series_volume(series.volume(t))

    nf = array_source(
        series.folder,
        fmt="dicom",
        shape=series.shape + ((series.n_volumes,) if series.n_volumes > 1 else ()),
        time_step=series.repetition_ms / 1000 if series.repetition_ms else None,
        dtype=series.dtype,
        affine=series.affine,
        loader=loader,
        limits=limits,
        slope=series.slope,
        inter=series.inter,
        rgb_channels=series.rgb_channels,
        facts={"dicom": dicom_facts(series, root)},
        warnings=series.warnings,
        identity=series.phi,
        file_size=sum(_size(p) for p in series.files),
        # pixels are read from the middle of each file: the files are hashed by a read of
        # their own, in slice order (see .digest)
        digests=SourceDigests(series.files, root),
    )
    # the modality tells the automatic window a CT (a preset in HU) from anything else
    return replace(nf, modality=series.modality or None)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _relative(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return os.path.abspath(path)


def dicom_facts(series: DicomSeries, root: Path) -> dict[str, Any]:
    """What the sidecar records about the series (de-identified)."""
    window = series.window
    return {
        "series_instance_uid": series.series_uid,
        "study_instance_uid": series.study_uid,
        "modality": series.modality,
        "series_number": series.series_number,
        "series_description": series.description,
        "files": [_relative(p, root) for p in series.files],
        "frames": [f.index for f in series.slices]
        if any(f.index is not None for f in series.slices)
        else None,
        "slice_step_mm": series.step_mm,
        "gantry_tilt_deg": series.tilt_deg,
        "window": {"center": window[0], "width": window[1]} if window else None,
        "rescale": {
            "slope": series.slope,
            "intercept": series.inter,
            "per_slice": series.per_slice_rescale,
        },
        "photometric": series.photometric,
        **(
            {"volumes": series.n_volumes, "volumes_by": series.volumes_by}
            if series.volumes_by
            else {}
        ),
        "transfer_syntaxes": [syntax_name(t) for t in series.transfer_syntaxes],
    }


def open_dicom(path: Path, limits: Limits = Limits()) -> NiftiFile:
    """A DICOM file, a folder holding exactly one series, or a DICOMDIR listing exactly one."""
    root = path if path.is_dir() else path.parent
    found = scan_dicomdir(path) if is_dicomdir(path) else scan_dicom([path])
    if len(found.series) == 1:
        nf = series_source(found.series[0], root, limits)
        missing = [str(p) for p in found.problems if p.source == str(path)]  # a DICOMDIR's
        return replace(nf, warnings=(*nf.warnings, *missing)) if missing else nf
    if found.series:
        names = ", ".join(s.name for s in found.series[:6])
        more = ", ..." if len(found.series) > 6 else ""
        raise InputError(
            f"holds {len(found.series)} DICOM series ({names}{more}); convert it "
            "(one output per series) or give one series' files"
        )
    problem = _first_problem(found.problems)
    raise InputError(str(problem) if problem else "no DICOM image found")


def _first_problem(problems: Sequence[Problem]) -> Problem | None:
    ranked = sorted(problems, key=lambda p: {"error": 0, "not-image": 1}.get(p.kind, 2))
    return ranked[0] if ranked else None
