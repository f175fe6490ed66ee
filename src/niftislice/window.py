"""Intensity windows: one linear mapping from data units to pixel values per volume.

A window ``[low, high]`` in data units (after ``scl_slope``/``scl_inter``) maps linearly to
``[0, out_max]``; values outside are clipped, NaN and -Inf become 0, +Inf becomes ``out_max``.
The inverse is ``data = low + pixel * (high - low) / out_max`` (exact to half a step).

This module holds the window specifications (``--window``), the CT presets, how a window is
chosen from a specification and the statistics of :mod:`.stats`, and how it is applied.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from .ct import CtFinding, Padding, find_padding, recognise_ct
from .errors import InputError
from .read.validate import integral_scaling
from .stats import RawStats, value_chunks
from .types import CT_PRESETS
from .window_spec import WindowSpec, parse_window

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Window:
    """A resolved window in data units and the output range it maps onto."""

    low: float
    high: float
    out_max: int
    description: str

    def to_json(self) -> dict[str, object]:
        step = self.high / self.out_max - self.low / self.out_max  # no overflow at float extremes
        return {
            "low": self.low,
            "high": self.high,
            "out_min": 0,
            "out_max": self.out_max,
            "method": self.description,
            "pixel_to_data": {"scale": step, "offset": self.low},
            "inverse": "data = offset + pixel * scale (values outside [low, high] were clipped)",
            "nan": 0,
            "posinf": self.out_max,
            "neginf": 0,
        }


# --------------------------------------------------------------------------------------------
# resolving and applying


def resolve_window(
    spec: WindowSpec,
    stats: RawStats | None,
    slope: float,
    inter: float,
    out_max: int,
) -> tuple[Window, list[str]]:
    """Turn a spec into a window in data units; returns warnings for degenerate cases."""
    warnings: list[str] = []
    if not spec.needs_stats:
        return Window(spec.a, spec.b, out_max, spec.describe()), warnings
    assert stats is not None
    if stats.count == 0:
        warnings.append("no finite voxel values; every pixel is 0")
        return Window(0.0, 1.0, out_max, "no finite values"), warnings
    if spec.kind == "minmax":
        r0, r1 = stats.vmin, stats.vmax
    else:
        r0, r1 = stats.percentile(spec.a), stats.percentile(spec.b)
    lo, hi = sorted((r0 * slope + inter, r1 * slope + inter))
    desc = spec.describe()
    if hi <= lo and spec.kind != "minmax":
        lo, hi = sorted((stats.vmin * slope + inter, stats.vmax * slope + inter))
        if hi > lo:
            warnings.append(f"the {desc} window is empty; using the full range instead")
            desc = "minimum-maximum of finite voxels (percentile window was empty)"
    if hi <= lo:
        warnings.append(f"constant volume (every finite voxel is {lo:g}); it maps to mid-grey")
        half = max(0.5, abs(lo) * 2**-40)  # at |lo| > 2**52, lo +- 0.5 would equal lo
        return Window(lo - half, lo + half, out_max, "constant volume"), warnings
    return Window(lo, hi, out_max, desc), warnings


def identity_window(
    stats: RawStats, slope: float, inter: float, *, purpose: str, bit_depth: int
) -> Window:
    """Store data values exactly (labels, lossless): ``pixel = data - offset``.

    Raises :class:`ValueError` with a message naming the range when the values are not integers
    or do not fit the output type.
    """
    if stats.count == 0:
        return Window(
            0.0, 255.0 if bit_depth == 8 else 65535.0, 255 if bit_depth == 8 else 65535, purpose
        )
    lo, hi = sorted((stats.vmin * slope + inter, stats.vmax * slope + inter))
    integral = stats.exact and integral_scaling(slope, inter)
    if not integral and not (float(lo).is_integer() and float(hi).is_integer()):
        raise ValueError(f"{purpose} needs integer values, found {lo:g} to {hi:g}")
    offset = 0.0 if lo >= 0 else lo
    span = hi - offset
    if purpose == "label" and bit_depth == 8 and span <= 255 and offset == 0:
        out_max = 255
    elif span <= 65535:
        out_max = 65535
    else:
        raise ValueError(
            f"{purpose} values {lo:g} to {hi:g} span {span:g}, more than 16 bits can hold"
        )
    desc = f"{purpose}: pixel = data - ({offset:g})"
    return Window(offset, offset + out_max, out_max, desc)


def check_integral(raw: np.ndarray, slope: float, inter: float, purpose: str) -> None:
    """Raise ValueError if scaled float data is not whole numbers (chunked, no full copy)."""
    if raw.dtype.kind in "iu" and integral_scaling(slope, inter):
        return
    for chunk in value_chunks(raw):
        vals = chunk.astype(np.float64) * slope + inter
        fin = vals[np.isfinite(vals)]
        if fin.size and not np.all(fin == np.round(fin)):
            raise ValueError(f"{purpose} needs integer values; this volume has fractional values")


# --------------------------------------------------------------------------------------------
# which window: every rule in one place


#: Colour maps whose window is symmetric about 0 (zero at the neutral middle colour); the
#: colours themselves are drawn in :mod:`.pictures.colormap`.
DIVERGING_COLORMAPS = frozenset({"bwr", "coolwarm", "cold-hot"})


@dataclass(frozen=True)
class ValueFacts:
    """What the window rules need to know about the voxels besides their statistics.

    ``modality`` is the DICOM Modality when the reader has one (``"CT"``, ``"MR"``, ...); None
    for formats that do not say. ``description`` is free header text (NIfTI ``descrip`` and
    ``intent_name``).
    """

    dtype: np.dtype  # the stored dtype
    slope: float
    inter: float
    modality: str | None = None
    description: str = ""


@dataclass(frozen=True)
class WindowChoice:
    """The window, the warnings its choice raised, and why it was chosen when a rule beyond the
    plain specification decided (CT preset, padding left out): the sidecar's ``window`` section."""

    window: Window
    warnings: tuple[str, ...] = ()
    reason: dict[str, object] | None = None


def choose_window(
    spec: WindowSpec,
    stats: RawStats | None,
    facts: ValueFacts,
    *,
    mode: str,
    out_max: int,
    colormap: str | None = None,
    check_values: Callable[[str], None] | None = None,
) -> WindowChoice:
    """The one window of a series.

    ``mode`` is ``"window"`` (display), ``"label"`` or ``"lossless"`` (values stored exactly;
    ``check_values(purpose)`` raises :class:`ValueError` when float data has fractional values).
    ``stats`` are those of every selected volume (None when ``spec`` needs none). With the
    default ``auto`` spec, outside-scan padding is left out of the statistics and a CT gets a
    preset (see :mod:`.ct`); a diverging ``colormap`` makes the window symmetric about 0.
    """
    slope, inter = facts.slope, facts.inter
    if stats is not None:
        check_scaling(stats, slope, inter)
    if mode != "window":
        assert stats is not None
        try:
            return WindowChoice(_exact_window(stats, facts, mode, out_max, check_values))
        except ValueError as e:
            raise InputError(str(e)) from None
    reason: dict[str, object] | None = None
    suffix = ""
    if stats is not None and spec.kind in ("auto", "percentile"):
        stats, padding = find_padding(stats, slope, inter)
        ct = None
        if spec.kind == "auto":
            ct = recognise_ct(
                stats, slope, inter, modality=facts.modality, description=facts.description
            )
        if ct is not None:
            spec = parse_window(ct.preset)
            suffix = f"auto: CT, {ct.anatomy.split(':')[0]}"
        elif padding is not None:
            suffix = f"padding {padding.value:g} left out"
        if ct is not None or padding is not None:
            reason = _reason(ct, padding)
    window, warnings = resolve_window(spec, stats, slope, inter, out_max)
    if suffix:
        window = replace(window, description=f"{window.description}; {suffix}")
        reason = {"chosen": window.description, **(reason or {})}
    if stats is not None and stats.nonfinite:
        warnings.append(
            f"{stats.nonfinite:,} NaN/Inf voxels (NaN and -Inf become 0, +Inf the maximum)"
        )
    if colormap in DIVERGING_COLORMAPS:
        window = symmetric_about_zero(window)
    return WindowChoice(window, tuple(warnings), reason)


def _reason(ct: CtFinding | None, padding: Padding | None) -> dict[str, object]:
    parts = []
    if ct is not None:
        level, width = CT_PRESETS[ct.preset]
        parts.append(
            f"CT recognised ({ct.evidence}); {ct.anatomy}: the {ct.preset} window "
            f"(level {level:g}, width {width:g} HU) instead of percentiles"
        )
    if padding is not None:
        parts.append(
            f"{padding.fraction:.1%} of the voxels hold {padding.value:g}, far below every other "
            "value: outside-scan padding, left out of the statistics"
        )
    return {
        "reason": "; ".join(parts),
        "ct": None if ct is None else ct.to_json(),
        "padding": None if padding is None else padding.to_json(),
    }


def symmetric_about_zero(window: Window) -> Window:
    """The window made symmetric about 0 (``[-m, m]``, ``m`` the larger absolute end)."""
    m = max(abs(window.low), abs(window.high))
    if m == 0:
        m = 1.0
    return Window(
        -m, m, window.out_max, f"{window.description}; symmetric about 0 (diverging colour map)"
    )


def check_scaling(stats: RawStats, slope: float, inter: float) -> None:
    """Refuse a scaling that takes the raw extremes beyond the float range."""
    if stats.count == 0 or (slope == 1.0 and inter == 0.0):
        return
    with np.errstate(over="ignore", invalid="ignore"):
        ends = np.array([stats.vmin, stats.vmax], dtype=np.float64) * slope + inter
    if not np.all(np.isfinite(ends)):
        raise InputError(
            f"scaling overflows: scl_slope {slope:g}, scl_inter {inter:g} take "
            f"raw {stats.vmin:g}..{stats.vmax:g} beyond the float range"
        )


def _exact_window(
    stats: RawStats,
    facts: ValueFacts,
    mode: str,
    out_max: int,
    check_values: Callable[[str], None] | None,
) -> Window:
    if mode == "lossless" and stored_integers_scaled(facts.dtype, facts.slope, facts.inter):
        # any scaling, integral or not: stack gives back the same dtype, integers and scaling
        return stored_integer_window(stats, facts.slope, facts.inter)
    if not stats.exact and check_values is not None:
        check_values(mode)
    return identity_window(
        stats,
        facts.slope,
        facts.inter,
        purpose=mode,
        bit_depth=16 if mode == "lossless" or out_max > 255 else 8,
    )


def stored_integers_scaled(dtype: np.dtype, slope: float, inter: float) -> bool:
    """Integer voxels under a scl_slope/scl_inter other than (1, 0), integral or not."""
    return dtype.kind in "iu" and (slope, inter) != (1.0, 0.0)


def stored_integer_window(stats: RawStats, slope: float, inter: float) -> Window:
    """Lossless for scaled integer data, whatever the scaling: ``pixel = stored - offset``, so the
    stored integers (and, through scl_slope/scl_inter, the data) are kept exactly and ``stack``
    gives back the same dtype and scaling (a CT's uint16 with scl_inter -1024 stays uint16). The
    window is expressed in data units."""
    raw = identity_window(stats, 1.0, 0.0, purpose="lossless (stored integers)", bit_depth=16)
    return Window(
        raw.low * slope + inter,
        raw.high * slope + inter,
        raw.out_max,
        f"lossless: pixel = stored - ({raw.low:g}), data = stored * {slope:g} + {inter:g}",
    )
