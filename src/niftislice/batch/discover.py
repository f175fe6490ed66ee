"""Finding the inputs: folders searched recursively, one :class:`Job` per input volume.

Folders are searched for the input formats (any case): ``.nii``/``.nii.gz``; ``.nrrd``/``.nhdr``;
``.mha``/``.mhd``; ``.mgh``/``.mgz``; ``.mnc``; ``.hdr`` beside an ``.img`` and ``.par`` beside a
``.rec`` (the header of each pair; a lone ``.hdr`` may be anything); and DICOM files, recognised
by their content whatever their name (see :mod:`.discover_dicom`: one job per series). Hidden
and ``._*`` files and hidden folders are skipped; the input tree is mirrored under the output
folder, and output folder names are made distinct (also on case-insensitive file systems). A
folder that cannot be read is a job of its own that fails with the reason, never silently
skipped.

Symlinked folders are searched as if they were in the tree, each real folder once, under the
name a search without the extra links would give it (see :mod:`niftislice.walk`: a loop or a
second name for a folder is one warning line); a broken link is one warning line, or, named
like an input, an input that fails with its reason.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..errors import OptionError
from ..export import output_dir_for, output_roots
from ..naming import display_name, safe_relative_dir, stem_of
from ..options import ConvertOptions
from ..read.dicom_sniff import looks_like_dicom
from ..read.dispatch import FORMATS
from ..walk import broken_link_reason, walk

log = logging.getLogger(__name__)

_NIFTI_SUFFIXES = (".nii", ".nii.gz")
_SINGLE_FILE_SUFFIXES = (*_NIFTI_SUFFIXES, ".nrrd", ".nhdr", ".mha", ".mhd", ".mgh", ".mgz", ".mnc")
_PAIRED_SUFFIXES = {".hdr": ".img", ".par": ".rec"}  # header -> data file that must be beside it
_OTHER_DATA_SUFFIXES = (".img", ".rec", ".raw", ".zraw", ".img.gz", ".raw.gz")


@dataclass(frozen=True)
class Job:
    """One input file and where its output goes (``OUT[/split]/rel_dir/stem``); or, with
    ``error``, a folder that could not be searched (it fails with that reason, nothing is
    written).

    ``part``, for inputs that hold several volumes (a folder of DICOM series), names the one
    this job converts: an object with ``source`` (how reports name it), ``skip`` (skip it with
    a warning instead of converting), ``reason`` (when skipped) and ``open(limits)`` returning
    the :class:`~niftislice.read.NiftiFile` (see :mod:`niftislice.read.dicom_source`).
    """

    path: Path
    rel_dir: Path
    stem: str
    mask: Path | None = None  # its own label map (``--masks``), exported as ``--pair`` does
    split: str | None = None  # its split (``--split``): output under ``OUT/<split>``
    error: str | None = None  # an unreadable folder: why
    part: Any = None

    @property
    def source(self) -> str:
        return str(self.path) if self.part is None else str(self.part.source)

    def output_dir(self, out_root: Path) -> Path:
        return output_dir_for(self.path, out_root, self.rel_dir, self.stem)

    def root(self, out_root: Path) -> Path:
        """The output folder of this job's split."""
        return out_root / self.split if self.split else out_root

    def options_for(self, options: ConvertOptions) -> ConvertOptions:
        """The batch's options with this job's own mask as ``pair``."""
        if self.mask is None:
            return options
        pictures = replace(options.pictures, pair=str(self.mask))
        return replace(options, pictures=pictures, masks=None, allow_missing_masks=False)

    def output_dirs(self, out_root: Path, options: ConvertOptions) -> list[Path]:
        """The image folder (holding the sidecar) and, with a mask, the mask folder."""
        images, masks = output_roots(self.root(out_root), self.options_for(options))
        return [self.output_dir(images)] + ([self.output_dir(masks)] if masks else [])


def is_nifti_name(name: str) -> bool:
    """``.nii``/``.nii.gz`` in any case; hidden files and macOS ``._*`` resource forks are not."""
    return name.lower().endswith(_NIFTI_SUFFIXES) and not name.startswith(".")


def _maybe_dicom(name: str) -> bool:
    """DICOM is told by content; the raw data files of other formats are not even opened."""
    return not name.startswith(".") and not name.lower().endswith(_OTHER_DATA_SUFFIXES)


def is_input_name(name: str, siblings: frozenset[str] = frozenset()) -> bool:
    """A file a folder search takes: a NIfTI (:func:`is_nifti_name`) or another input format;
    a pair's header only when its data file is among ``siblings`` (lower-cased names)."""
    lower = name.lower()
    if name.startswith(".") or not lower.endswith((*_SINGLE_FILE_SUFFIXES, *_PAIRED_SUFFIXES)):
        return False
    for header, data in _PAIRED_SUFFIXES.items():
        if lower.endswith(header):
            return lower[: -len(header)] + data in siblings
    return True


#: A file with its folder relative to the searched folder, or an unreadable folder with the reason.
_Found = tuple[Path, "Path | str"]


def discover(inputs: Sequence[str | os.PathLike[str]]) -> list[Job]:
    """Expand folders recursively (sorted, hidden folders skipped); files named explicitly are
    taken whatever their name and go to the top of the output folder. An unreadable folder is
    a job with an ``error``, in its place in the order."""
    found: list[_Found] = []
    dicom: list[tuple[Path, list[Path]]] = []  # (input folder, its DICOM files)
    dicom_files: list[Path] = []  # named on their own: scanned together, output at the top
    for item in inputs:
        p = Path(item)
        if p.is_dir() and not p.name.lower().endswith(_NIFTI_SUFFIXES):
            candidates: list[Path] = []
            found += _search(p, candidates)
            if candidates:
                dicom.append((p, candidates))
        elif p.is_file() and not is_input_name(p.name) and looks_like_dicom(p):
            dicom_files.append(p)
        else:
            found.append((p, Path()))
    entries = _unique(found)
    jobs = iter(_assign_stems([(p, rel) for p, rel in entries if isinstance(rel, Path)]))
    out = [
        next(jobs)
        if isinstance(rel, Path)
        else Job(p, Path(), "", error=f"cannot read folder: {rel}")
        for p, rel in entries
    ]
    return out + _dicom_jobs(dicom, dicom_files, {_fold(j.rel_dir, j.stem) for j in out})


def _dicom_jobs(
    folders: list[tuple[Path, list[Path]]], files: list[Path], used: set[tuple[str, str]]
) -> list[Job]:
    """One job per DICOM series (and per DICOM input that gives none), names made distinct."""
    if not folders and not files:
        return []
    from .discover_dicom import dicom_jobs  # pydicom is imported only for DICOM inputs

    jobs = []
    for path, rel, base, part in dicom_jobs(folders, files):
        stem, n = base, 2
        while _fold(rel, stem) in used:
            stem, n = f"{base}_{n}", n + 1
        used.add(_fold(rel, stem))
        jobs.append(Job(path, rel, stem, part=part))
    return jobs


def _search(top: Path, dicom: list[Path]) -> list[_Found]:
    """Every input file below ``top`` and every folder there that cannot be read, in order;
    regular files that start like DICOM are added to ``dicom``. Symlinked folders are
    followed, each real folder once (see :func:`niftislice.walk.walk`); a broken link that
    is not named like an input is one warning line."""
    found: list[_Found] = []
    for folder in walk(top):
        if folder.error is not None:
            found.append((folder.path, folder.error))
            continue
        siblings = frozenset(n.lower() for n in folder.files)
        for name in folder.files:
            f = folder.path / name
            if is_input_name(name, siblings):
                found.append((f, folder.rel))
            elif name in folder.broken:
                log.warning("%s: %s: skipped", f, broken_link_reason(f))
            elif _maybe_dicom(name) and f.is_file() and looks_like_dicom(f):
                dicom.append(f)  # a regular file only: opening a fifo would block
    return found


def _unique(found: Iterable[_Found]) -> list[_Found]:
    """Drop a file named twice for the same place (``a.nii a.nii``, or a folder given twice)."""
    seen: set[tuple[str, Path | str]] = set()
    out: list[_Found] = []
    for p, rel in found:
        key = (os.path.normcase(os.path.abspath(p)), rel)
        if key not in seen:
            seen.add(key)
            out.append((p, rel))
    return out


def _assign_stems(found: Iterable[tuple[Path, Path]]) -> list[Job]:
    """Distinct output folders, also on case-insensitive file systems.

    Inputs whose stems collide (``a.nii`` beside ``a.nii.gz``, ``A.nii`` beside ``a.nii``) keep
    their suffix in the folder name (``a_nii``, ``a_nii_gz``); identical names (the same file
    name from two folders given explicitly) are numbered (``a``, ``a_2``).
    """
    items = list(found)
    keys = [(safe_relative_dir(rel), stem_of(p)) for p, rel in items]
    groups: dict[tuple[str, str], list[int]] = {}
    for i, (rel, stem) in enumerate(keys):
        groups.setdefault(_fold(rel, stem), []).append(i)
    jobs: list[Job] = []
    used: set[tuple[str, str]] = set()
    for (p, _), (rel, stem) in zip(items, keys, strict=True):
        group = groups[_fold(rel, stem)]
        names = {items[j][0].name for j in group}
        if len(group) > 1 and len(names) == len(group):
            stem = stem_of(p.name.replace(".", "_") + ".nii")
        base, n = stem, 2
        while _fold(rel, stem) in used:
            stem, n = f"{base}_{n}", n + 1
        used.add(_fold(rel, stem))
        jobs.append(Job(p, rel, stem))
    return jobs


def _fold(rel: Path, stem: str) -> tuple[str, str]:
    return rel.as_posix().casefold(), stem.casefold()


def check_jobs(jobs: Sequence[Job], inputs: Sequence[str | os.PathLike[str]] = ()) -> None:
    """Refuse a batch with nothing to do, naming the folders that were searched."""
    if not jobs:
        searched = ", ".join(display_name(str(p)) for p in inputs) or "the given inputs"
        raise OptionError(f"no input volumes found in {searched} (searched for {FORMATS} files)")
