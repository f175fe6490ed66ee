"""Several volumes in one series (fMRI, perfusion, dynamic contrast): repeated slice positions
become a 4D volume, in the order dcm2niix gives them.

When every slice position of a stack holds the same number ``N > 1`` of frames, the frames are
``N`` volumes. The frames at each position are ranked by InstanceNumber (dcm2niix's order; ties
broken by TemporalPositionIdentifier, AcquisitionNumber, then file and frame), and the frame of
rank ``t`` belongs to volume ``t``.

The split is taken only when the series itself tells the volumes apart: every frame of a volume
carries the same TemporalPositionIdentifier (or, in files without one, the same
AcquisitionNumber) and no two volumes share one. Otherwise it is refused with one line, never
guessed: copies of the same images, magnitude and phase images of one acquisition, a series
whose InstanceNumbers disagree with its temporal positions. (dcm2niix also stacks volumes told
apart by nothing but InstanceNumber; niftislice refuses those.) Positions that hold different
numbers of frames (a volume cut short) are refused too. Enhanced multi-frame files with
temporal positions in their functional groups are not split (they are refused as before).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..errors import InputError
from .dicom_files import Frame
from .dicom_geometry import StackGeometry, orientation_vectors, stack_geometry

_SAME_POSITION_MM = 1e-3  # as dicom_geometry: closer slices are at one position
_KEYS = ("TemporalPositionIdentifier", "AcquisitionNumber")


def stacked(
    frames: Sequence[Frame], single_slice_step: float | None
) -> tuple[StackGeometry, tuple[Frame, ...], tuple[int, str]]:
    """The grid of a stack (of its first volume, for a 4D series), its frames in slice order
    (volume after volume), and ``(number of volumes, the attribute that told them apart)``."""
    split = split_volumes(frames)
    volumes, by = split if split else ([list(frames)], "")
    first = volumes[0]
    geom = stack_geometry(
        first[0].orientation,  # type: ignore[arg-type]
        first[0].spacing,  # type: ignore[arg-type]
        [f.position for f in first],  # type: ignore[misc]
        single_slice_step,
    )
    # every volume has a frame at each position, in the same (sorted) place
    ordered = tuple(v[i] for v in volumes for i in geom.order)
    return geom, ordered, (len(volumes), by)


def split_volumes(frames: Sequence[Frame]) -> tuple[list[list[Frame]], str] | None:
    """The frames as volumes (each a list in the given order, one frame per position) and the
    attribute that told them apart; None when no position holds more than one frame. Raises
    :class:`InputError` (one line) when positions repeat but do not make volumes."""
    first = frames[0]
    if first.orientation is None or any(f.position is None for f in frames):
        return None
    r, c = orientation_vectors(first.orientation)
    depth = np.asarray([f.position for f in frames], dtype=float) @ np.cross(r, c)
    order = np.argsort(depth, kind="stable")
    positions: list[list[Frame]] = []
    last = None
    for i in order:
        if last is None or depth[i] - last >= _SAME_POSITION_MM:
            positions.append([])
        positions[-1].append(frames[i])
        last = depth[i]
    counts = {len(p) for p in positions}
    if counts == {1}:
        return None
    if len(counts) > 1:
        raise InputError(
            f"slice positions repeat unevenly ({min(counts)} to {max(counts)} images at each of "
            f"{len(positions)} positions): not whole volumes; refusing to mix them"
        )
    n = counts.pop()
    ranked = [sorted(p, key=_rank) for p in positions]
    volumes = [[p[t] for p in ranked] for t in range(n)]
    return volumes, _told_apart(volumes, len(positions))


def _rank(f: Frame) -> tuple[int, int, int, str, int]:
    tpi, acquisition = f.temporal
    big = 1 << 62  # frames without a value sort last
    return (
        f.instance if f.instance is not None else big,
        tpi if tpi is not None else big,
        acquisition if acquisition is not None else big,
        str(f.path),
        f.index or 0,
    )


def _told_apart(volumes: list[list[Frame]], n_positions: int) -> str:
    """The attribute whose value is one per volume and differs between volumes."""
    for i, name in enumerate(_KEYS):
        values = [{f.temporal[i] for f in v} for v in volumes]
        if any(None in s for s in values):
            continue
        if all(len(s) == 1 for s in values) and len({min(s) for s in values}) == len(volumes):
            return name
        if len(set().union(*values)) == 1:  # one value for all: it tells nothing apart
            continue
        raise InputError(
            f"{len(volumes)} images at each of {n_positions} positions, but InstanceNumber and "
            f"{name} disagree on which belong to one volume; refusing to mix them"
        )
    raise InputError(
        f"{len(volumes)} images at each of {n_positions} positions that neither "
        "TemporalPositionIdentifier nor AcquisitionNumber tells apart (copies, or magnitude "
        "and phase images?); refusing to mix them"
    )
