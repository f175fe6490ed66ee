"""DICOM series: find the files, group their frames, and describe each group as a volume.

Frames are grouped by SeriesInstanceUID, then by geometry (orientation, pixel spacing,
rows x columns) and echo number, so a localizer or a second series in the same folder becomes
its own output and is never mixed in. A series whose frames have several geometries (a three-plane
localizer, a series of radial slices) becomes one output per geometry, with a warning.

Nothing identifying the patient goes into a :class:`DicomSeries`' name, description or warnings;
the identifying attributes are kept apart in ``phi`` for callers that were asked to keep them.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..walk import broken_link_reason, walk
from .dicom_files import BadDicom, DicomFile, Frame, NotDicom, read_file
from .dicom_sniff import looks_like_dicom
from .dicom_volumes import stacked

log = logging.getLogger(__name__)

_UNSAFE = re.compile(r"[^A-Za-z0-9._+-]+")
_ORIENTATION_TOLERANCE = 1e-3  # direction cosines that differ less are the same orientation
_SPACING_TOLERANCE = 1e-3  # relative
NAME_DIGITS = 4  # series numbers are zero-padded so folders sort in acquisition order


@dataclass(frozen=True)
class Problem:
    """An input that gives no volume: a file or a series, and the one-line reason."""

    source: str  # a file path, or a series label such as 'series 5 "CT HEAD" (4 files in CT2)'
    reason: str
    kind: str = "error"  # or "not-image", "dicomdir" (see dicom_files.BadDicom)

    def __str__(self) -> str:
        return f"{self.source}: {self.reason}"


@dataclass(frozen=True)
class DicomSeries:
    """One stack of frames that makes one regular 3D volume.

    The voxel array is ``shape = (columns, rows, slices)``: x is the column index ``i``, y the row
    index ``j``, z the slice index ``k`` in increasing ``IPP · n`` (as dcm2niix stores it, in
    Fortran order like NIfTI data); ``affine`` maps it to RAS+ mm. Values in data units are
    ``stored * slope + inter`` (CT in HU).
    """

    name: str  # folder name: <SeriesNumber>_<SeriesDescription>, safe characters, distinct
    folder: Path  # the deepest folder holding all its files
    series_uid: str
    study_uid: str
    modality: str
    series_number: int | None
    description: str
    slices: tuple[Frame, ...]  # in slice order (k); a 4D series' volumes one after the other
    shape: tuple[int, int, int]
    dtype: np.dtype  # stored values (float32 when the rescale varies between slices)
    rgb_channels: int  # 0, or 3 for colour frames
    slope: float
    inter: float
    per_slice_rescale: bool  # values are rescaled per slice into float32 while reading
    window: tuple[float, float] | None  # first (WindowCenter, WindowWidth), data units
    photometric: str
    bits_allocated: int
    bits_stored: int
    signed: bool
    transfer_syntaxes: tuple[str, ...]
    affine: np.ndarray
    step_mm: float
    tilt_deg: float
    warnings: tuple[str, ...]
    phi: dict[str, str] = field(default_factory=dict, compare=False, repr=False)
    n_volumes: int = 1  # several for a 4D series (see .dicom_volumes)
    volumes_by: str = ""  # the attribute that tells its volumes apart
    repetition_ms: float | None = None  # RepetitionTime

    def volume(self, t: int) -> DicomSeries:
        """Volume ``t`` of a 4D series as a 3D series of its own (``self`` for a 3D one)."""
        if self.n_volumes == 1:
            return self
        nz = self.shape[2]
        return replace(self, slices=self.slices[t * nz : (t + 1) * nz], n_volumes=1)

    @property
    def files(self) -> tuple[Path, ...]:
        """The files, each once, in slice order."""
        return tuple(dict.fromkeys(f.path for f in self.slices))

    @property
    def label(self) -> str:
        return _label(self.series_number, self.description, len(self.files), self.folder)


@dataclass(frozen=True)
class DicomScan:
    """What a set of files holds: the series that make volumes and the inputs that do not."""

    series: tuple[DicomSeries, ...]
    problems: tuple[Problem, ...]
    n_files: int  # DICOM files seen (images or not)


def find_dicom_files(folder: Path) -> list[Path]:
    """Files under ``folder`` (recursively, sorted, hidden and ``._*`` skipped, symlinked
    folders followed once each: see :mod:`niftislice.walk`) that start like DICOM; the
    extension does not matter."""
    found: list[Path] = []
    for where in walk(folder):
        for name in where.files:
            path = where.path / name
            if name in where.broken:
                log.warning("%s: %s: skipped", path, broken_link_reason(path))
            elif path.is_file() and looks_like_dicom(path):
                found.append(path)
    return found


def scan(paths: Iterable[Path]) -> DicomScan:
    """Read every file's header and group the frames into series (no pixels are read)."""
    files: list[DicomFile] = []
    problems: list[Problem] = []
    seen = 0
    for path in paths:
        try:
            files.append(read_file(path))
        except NotDicom:
            log.debug("%s: not DICOM", path)
            continue
        except BadDicom as e:
            problems.append(Problem(str(path), str(e), e.kind))
        seen += 1
    problems = _collapse(problems)
    series: list[DicomSeries] = []
    groups = _group(files)
    parts: dict[str, int] = {}
    for head, _ in groups:
        parts[head.series_uid] = parts.get(head.series_uid, 0) + 1
    for head, frames in groups:
        try:
            series.append(_describe(head, frames, parts[head.series_uid]))
        except InputError as e:
            folder = _common_folder([f.path for f in frames])
            n_files = len({f.path for f in frames})
            problems.append(
                Problem(_label(head.series_number, head.description, n_files, folder), str(e))
            )
    return DicomScan(tuple(_distinct_names(series)), tuple(problems), seen)


def _collapse(problems: Sequence[Problem]) -> list[Problem]:
    """Files of one folder failing for the same reason make one line, not one per file."""
    by_key: dict[tuple[str, str, str], list[Problem]] = {}
    for p in problems:
        by_key.setdefault((str(Path(p.source).parent), p.reason, p.kind), []).append(p)
    out = []
    for same in by_key.values():
        first = same[0]
        if len(same) > 1:
            more = f"{first.source} and {len(same) - 1} more files there"
            first = Problem(more, first.reason, first.kind)
        out.append(first)
    return out


def _same_geometry(a: Frame, b: Frame) -> bool:
    if (a.orientation is None) != (b.orientation is None) or (a.spacing is None) != (
        b.spacing is None
    ):
        return False
    if (
        a.orientation is not None
        and b.orientation is not None
        and max(abs(x - y) for x, y in zip(a.orientation, b.orientation, strict=True))
        > _ORIENTATION_TOLERANCE
    ):
        return False
    if a.spacing is not None and b.spacing is not None:
        return all(
            abs(x - y) <= _SPACING_TOLERANCE * max(abs(x), abs(y))
            for x, y in zip(a.spacing, b.spacing, strict=True)
        )
    return True


def _group(files: Sequence[DicomFile]) -> list[tuple[DicomFile, list[Frame]]]:
    """Frames grouped by series, pixel format, echo and geometry, in a stable order."""
    groups: list[tuple[DicomFile, list[Frame]]] = []
    index: dict[tuple[object, ...], list[int]] = {}
    for f in files:
        key = (
            f.series_uid,
            f.rows,
            f.columns,
            f.samples,
            f.bits_allocated,
            f.signed,
            f.photometric,
            f.echo,
        )
        candidates = index.setdefault(key, [])
        for frame in f.frames:
            for g in candidates:
                if _same_geometry(groups[g][1][0], frame):
                    groups[g][1].append(frame)
                    break
            else:
                candidates.append(len(groups))
                groups.append((f, [frame]))
    groups.sort(
        key=lambda g: (
            g[0].study_uid,
            g[0].series_number if g[0].series_number is not None else -1,
            g[0].series_uid,
            str(g[1][0].path),
        )
    )
    return groups


def _label(number: int | None, description: str, n_files: int, folder: Path) -> str:
    num = f"series {number}" if number is not None else "series"
    desc = f' "{description}"' if description else ""
    where = folder.name or str(folder)
    return f"{num}{desc} ({n_files} file{'s' if n_files != 1 else ''} in {where})"


def _common_folder(paths: Sequence[Path]) -> Path:
    return Path(os.path.commonpath([str(p.parent) for p in paths])) if paths else Path()


def _missing_geometry(frames: Sequence[Frame]) -> str | None:
    names = [
        name
        for name, attr in (
            ("ImageOrientationPatient", "orientation"),
            ("ImagePositionPatient", "position"),
            ("PixelSpacing", "spacing"),
        )
        if any(getattr(f, attr) is None for f in frames)
    ]
    if not names:
        return None
    return (
        f"missing geometry tags: {', '.join(names)} (a projection radiograph or a "
        "secondary capture has no 3D position)"
    )


def _stored_dtype(head: DicomFile) -> np.dtype:
    if head.bits_allocated not in (8, 16, 32):
        raise InputError(f"{head.bits_allocated}-bit pixel data is not supported")
    kind = "i" if head.signed else "u"
    return np.dtype(f"{kind}{head.bits_allocated // 8}")


def _describe(head: DicomFile, frames: list[Frame], n_parts: int) -> DicomSeries:
    missing = _missing_geometry(frames)
    if missing:
        raise InputError(missing)
    if head.samples not in (1, 3) or (head.samples == 3 and head.bits_allocated != 8):
        raise InputError(
            f"{head.samples} samples of {head.bits_allocated} bits per pixel is not supported"
        )
    if head.photometric.startswith("PALETTE"):
        raise InputError("palette colour images are not supported")
    geom, ordered, (n_volumes, volumes_by) = stacked(frames, head.spacing_between or head.thickness)
    warnings = list(geom.warnings)
    if n_parts > 1:
        warnings.append(
            f"the series holds {n_parts} stacks of different geometry (orientation, pixel "
            "spacing, size or echo); each is converted on its own"
        )
    rescales = {(f.slope, f.inter) for f in ordered}
    per_slice = len(rescales) > 1
    slope, inter = (1.0, 0.0) if per_slice else rescales.pop()
    if per_slice:
        warnings.append("the rescale slope/intercept varies between slices; values read as float32")
    dtype = np.dtype(np.float32) if per_slice else _stored_dtype(head)
    syntaxes = tuple(sorted({f.transfer_syntax for f in ordered}))
    window = next((f.window for f in ordered if f.window is not None), None)
    return DicomSeries(
        name="",
        folder=_common_folder([f.path for f in ordered]),
        series_uid=head.series_uid,
        study_uid=head.study_uid,
        modality=head.modality,
        series_number=head.series_number,
        description=head.description,
        slices=ordered,
        shape=(head.columns, head.rows, len(ordered) // n_volumes),
        dtype=dtype,
        rgb_channels=3 if head.samples == 3 else 0,
        slope=float(slope),
        inter=float(inter),
        per_slice_rescale=per_slice,
        window=window,
        photometric=head.photometric,
        bits_allocated=head.bits_allocated,
        bits_stored=head.bits_stored,
        signed=head.signed,
        transfer_syntaxes=syntaxes,
        affine=geom.affine,
        step_mm=geom.step_mm,
        tilt_deg=geom.tilt_deg,
        warnings=tuple(warnings),
        phi=dict(head.phi),
        n_volumes=n_volumes,
        volumes_by=volumes_by,
        repetition_ms=head.repetition_ms,
    )


def safe_name(number: int | None, description: str, modality: str) -> str:
    """``<SeriesNumber>_<SeriesDescription>``: zero-padded number, safe characters only."""
    num = f"{number:0{NAME_DIGITS}d}" if number is not None and number >= 0 else "series"
    desc = _UNSAFE.sub("_", description).strip("_.-")[:80] or _UNSAFE.sub("_", modality)
    return f"{num}_{desc}" if desc else num


def _distinct_names(series: Sequence[DicomSeries]) -> list[DicomSeries]:
    """Give each series a name, distinct (case-insensitively) within its folder."""
    out: list[DicomSeries] = []
    taken: set[tuple[Path, str]] = set()
    for s in series:
        base = safe_name(s.series_number, s.description, s.modality)
        name, n = base, 1
        while (s.folder, name.lower()) in taken:
            n += 1
            name = f"{base}_{n}"
        taken.add((s.folder, name.lower()))
        out.append(replace(s, name=name))
    return out
