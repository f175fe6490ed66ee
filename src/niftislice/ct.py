"""What the values say about the scan: outside-scan padding, and whether it is a CT in HU.

Both feed the automatic window (see :func:`.window.choose_window`); neither looks at anything but
the value statistics of :mod:`.stats` and, when the reader knows it, the DICOM modality.

**Padding.** Outside the reconstructed circle many scanners store a value far below air
(-3024 HU, -2048 HU, -2000 HU ...), often a third of the voxels. It is not anatomy, and kept in
the statistics it drags the low percentile down to it: a head CT comes out flat grey. It is
recognised as the minimum value when it is negative, holds at least :data:`PADDING_MIN_FRACTION`
of the finite voxels and lies apart from every other value (the gap up to the next value is at
least :data:`PADDING_MIN_GAP` of the range above it). Magnitude MR, PET and probability maps
have no negative values, so their windows never change; continuous signed data (phase, field
and statistical maps) have no such gap. A padding equal to air (-1024 HU stored as 0 in
unsigned data) is indistinguishable from air and stays; the CT rule below does not need it gone.

**CT.** A DICOM modality decides when the input has one (``CT`` is CT; anything else is not).
Otherwise the header text (NIfTI ``descrip``/``intent_name``) naming ``CT`` together with air
below -500, or the values alone: the lowest value (padding left out) is air, between -1200 and
-900 HU, with at least 5 % of the voxels in the air band and at least half of them in the air
and soft-tissue bands together (-1200..-900 and -200..200 HU). Uniform or continuous data never
gathers that much in two narrow bands; an MR volume has no values near -1000.

**Head or body.** A head CT is read in the brain window (level 40, width 80 HU: grey and white
matter, blood and oedema apart), everything else in the soft-tissue window (40/400 HU: organs,
fat and muscle apart, air black and bone white). A head is recognised by its tissue: among the
voxels from -200 to 3000 HU at least :data:`HEAD_MIN_BRAIN` lie from 10 to 50 HU (grey and
white matter) and under :data:`HEAD_MAX_FAT` are fat (-200..-30 HU). A trunk has far more fat;
muscle (50-60 HU) and organs mostly fall outside the brain band. Measured on pydicom-data's CT
slices: a head 63 % brain band and 6 % fat, a spine close-up 28 % and 6 %, an abdomen 13 % and
38 %; a limb close-up with little fat is the known weak case (it would get the brain window).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .stats import RawStats

PADDING_MIN_FRACTION = 0.01
PADDING_MIN_GAP = 0.05

AIR_HU = (-1200.0, -900.0)
TISSUE_HU = (-200.0, 200.0)
BODY_HU = (-200.0, 3000.0)
BRAIN_HU = (10.0, 50.0)
FAT_HU = (-200.0, -30.0)
CT_MIN_AIR = 0.05
CT_MIN_AIR_AND_TISSUE = 0.5
HEAD_MIN_BRAIN = 0.45
HEAD_MAX_FAT = 0.1

_CT_WORD = re.compile(r"(?<![A-Za-z])CT(?![A-Za-z])")


@dataclass(frozen=True)
class Padding:
    """Outside-scan padding: one value (data units) held by many voxels, left out of statistics."""

    value: float
    voxels: int
    fraction: float  # of the finite voxels

    def to_json(self) -> dict[str, object]:
        return {"value": self.value, "voxels": self.voxels, "fraction": round(self.fraction, 4)}


@dataclass(frozen=True)
class CtFinding:
    """A volume recognised as CT in Hounsfield units, and the preset chosen for it."""

    evidence: str  # why it is CT
    preset: str  # a key of window.CT_PRESETS
    anatomy: str  # why that preset

    def to_json(self) -> dict[str, object]:
        return {"evidence": self.evidence, "preset": self.preset, "anatomy": self.anatomy}


def _raw_band(band: tuple[float, float], slope: float, inter: float) -> tuple[float, float]:
    a, b = ((v - inter) / slope for v in band)
    return (a, b) if a <= b else (b, a)


def fraction_between(
    stats: RawStats, band: tuple[float, float], slope: float, inter: float
) -> float:
    """The fraction of finite voxels whose data value (raw * slope + inter) lies in ``band``."""
    if stats.count == 0 or slope == 0:
        return 0.0
    return stats.count_between(*_raw_band(band, slope, inter)) / stats.count


def find_padding(stats: RawStats, slope: float, inter: float) -> tuple[RawStats, Padding | None]:
    """The statistics without the outside-scan padding, and the padding (None: not found)."""
    if stats.count == 0 or slope == 0:
        return stats, None
    rest, n = stats.without_minimum()
    if n == 0 or n < PADDING_MIN_FRACTION * stats.count:
        return stats, None
    low, nxt, high = (v * slope + inter for v in (stats.vmin, rest.vmin, rest.vmax))
    if slope < 0:  # the raw minimum is the data maximum: padding is a low data value
        return stats, None
    if low >= 0 or nxt - low < PADDING_MIN_GAP * (high - nxt):
        return stats, None
    return rest, Padding(float(low), n, n / stats.count)


def recognise_ct(
    stats: RawStats, slope: float, inter: float, *, modality: str | None, description: str
) -> CtFinding | None:
    """A :class:`CtFinding` when the volume is CT in HU (``stats`` without padding), else None."""
    if stats.count == 0:
        return None
    low = min(stats.vmin * slope + inter, stats.vmax * slope + inter)
    air = fraction_between(stats, AIR_HU, slope, inter)
    if modality:
        if modality.strip().upper() != "CT":
            return None
        evidence = "DICOM modality CT"
    elif _CT_WORD.search(description) and low <= -500:
        evidence = f"the header description names CT ({description.strip()[:60]!r})"
    else:
        tissue = fraction_between(stats, TISSUE_HU, slope, inter)
        if not (AIR_HU[0] <= low <= AIR_HU[1] and air >= CT_MIN_AIR):
            return None
        if air + tissue < CT_MIN_AIR_AND_TISSUE:
            return None
        evidence = (
            f"values in Hounsfield units: lowest {low:g} (air), {air:.0%} of voxels in air "
            f"({AIR_HU[0]:g}..{AIR_HU[1]:g}) and {tissue:.0%} in soft tissue "
            f"({TISSUE_HU[0]:g}..{TISSUE_HU[1]:g})"
        )
    body = fraction_between(stats, BODY_HU, slope, inter)
    brain = fraction_between(stats, BRAIN_HU, slope, inter) / body if body else 0.0
    fat = fraction_between(stats, FAT_HU, slope, inter) / body if body else 0.0
    tissue_mix = (
        f"{brain:.0%} of the tissue at {BRAIN_HU[0]:g}..{BRAIN_HU[1]:g} HU, "
        f"{fat:.0%} fat ({FAT_HU[0]:g}..{FAT_HU[1]:g} HU)"
    )
    if brain >= HEAD_MIN_BRAIN and fat < HEAD_MAX_FAT:
        return CtFinding(evidence, "brain", f"head: {tissue_mix}")
    return CtFinding(evidence, "soft-tissue", f"not a head: {tissue_mix}")
