"""The preview's histogram panel: the volume's voxel values with the chosen window marked.

Counts are drawn on a log scale (background voxels would flatten everything else). The x axis is
in data units (``scl_slope``/``scl_inter`` applied) and spans the window with a margin of a
quarter of its width on each side, within the data's range, so what the window clips is visible.
The window's ends are marked and labelled; the caption gives the data's whole range and, when
the axis shows less of it, the part shown. With a colour map, a strip under the axis shows the
colour each value gets.
"""

from __future__ import annotations

import math

import numpy as np

from .._cv2 import cv2
from ..read.validate import integral_scaling
from ..window import Window
from .colormap import Colormap
from .drawing import TextStyle, draw_text, fit_text, text_box_size

_CHUNK = 1 << 22
_GREY = (150, 150, 150)
_MARK = (255, 200, 0)
_TEXT = (225, 225, 225)


def data_range(raw: np.ndarray, slope: float, inter: float) -> tuple[float, float] | None:
    """The smallest and largest finite value in data units (None when there is none), chunk by
    chunk, without a full float copy."""
    flat = raw.reshape(-1, order="A")
    dmin, dmax = np.inf, -np.inf
    for start in range(0, flat.size, _CHUNK):
        c = flat[start : start + _CHUNK]
        if c.dtype.kind == "f":
            c = c[np.isfinite(c)]
        if c.size:
            dmin, dmax = min(dmin, float(c.min())), max(dmax, float(c.max()))
    if not np.isfinite(dmin):
        return None
    lo, hi = sorted((dmin * slope + inter, dmax * slope + inter))
    return lo, hi


def value_histogram(
    raw: np.ndarray,
    slope: float,
    inter: float,
    window: Window,
    bins: int,
    extent: tuple[float, float] | None = None,
) -> tuple[np.ndarray, float, float]:
    """Counts of finite voxel values (data units) in ``bins`` equal bins over the plotted range;
    returns the counts and the range ``(x0, x1)``. ``extent`` is the data range when known
    (:func:`data_range`). Works chunk by chunk, no full float copy."""
    flat = raw.reshape(-1, order="A")
    ends = extent if extent is not None else data_range(raw, slope, inter)
    if ends is None:
        return np.zeros(bins, np.int64), window.low, window.high
    margin = 0.25 * (window.high - window.low)
    x0 = min(window.low, max(ends[0], window.low - margin))
    x1 = max(window.high, min(ends[1], window.high + margin))
    if raw.dtype.kind in "iu" and integral_scaling(slope, inter):
        # whole numbers: one bin per value when they fit, so 8-bit data shows no comb of gaps
        x0, x1 = float(np.floor(x0)), float(np.ceil(x1))
        if x1 - x0 + 1 <= bins:
            bins = int(x1 - x0) + 1
            x0, x1 = x0 - 0.5, x1 + 0.5
    counts = np.zeros(bins, np.int64)
    for start in range(0, flat.size, _CHUNK):
        c = flat[start : start + _CHUNK]
        vals = c.astype(np.float64) * slope + inter
        if c.dtype.kind == "f":
            vals = vals[np.isfinite(vals)]
        counts += np.histogram(vals, bins=bins, range=(x0, x1))[0]
    return counts, x0, x1


def histogram_panel(
    raw: np.ndarray,
    slope: float,
    inter: float,
    window: Window,
    width: int,
    cmap: Colormap | None = None,
    height: int = 120,
) -> np.ndarray:
    """An RGB panel ``width`` pixels wide: log-count histogram, window ends marked and labelled."""
    pad = 12
    plot_w = max(40, width - 2 * pad)
    plot_h = height - 40 - (12 if cmap else 0)
    extent = data_range(raw, slope, inter)
    counts, x0, x1 = value_histogram(raw, slope, inter, window, plot_w, extent)
    panel = np.zeros((height, width, 3), np.uint8)
    top = 8

    def x_of(value: float) -> int:
        return pad + round((value - x0) / (x1 - x0) * (plot_w - 1)) if x1 > x0 else pad

    xl, xh = x_of(window.low), x_of(window.high)
    panel[top : top + plot_h, xl : xh + 1] = (34, 34, 34)  # the window, shaded
    scaled = np.log1p(counts) / max(np.log1p(counts.max()), 1e-9)
    heights = np.rint(scaled * (plot_h - 1)).astype(int)
    base = top + plot_h
    edges = pad + np.rint(np.linspace(0, plot_w, len(counts) + 1)).astype(int)
    for i, h in enumerate(heights):
        if h > 0:
            panel[base - h : base, edges[i] : max(edges[i + 1], edges[i] + 1)] = _GREY
    for x in (xl, xh):
        cv2.line(panel, (x, top), (x, base - 1), _MARK, 1)
    y = base
    if cmap is not None:  # the colour each value gets
        xs = np.linspace(x0, x1, plot_w)
        idx = np.clip(np.rint((xs - window.low) / (window.high - window.low) * 255), 0, 255).astype(
            int
        )
        panel[base + 2 : base + 12, pad : pad + plot_w] = cmap.lut[idx][None, :, :]
        y = base + 12
    style = TextStyle.of(0.4)
    for x, value in ((xl, window.low), (xh, window.high)):
        text = number(value)
        tw, above, _ = text_box_size(text, style)
        tx = int(min(max(x - tw // 2, 2), width - tw - 2))
        draw_text(panel, text, (tx, y + 4 + above), style, _MARK)
    half = (x1 - x0) / (2 * len(counts))  # first and last bin centres
    caption = fit_text(axis_caption(extent, x0, x1, half), width - 2 * pad, style)
    tw, _, below = text_box_size(caption, style)
    draw_text(panel, caption, (max(2, width - tw - pad), height - below - 1), style, _TEXT)
    return panel


def number(value: float) -> str:
    """A value for a label: whole numbers in full (30393, not 3.039e+04), others to 4
    significant digits; scientific notation only below 0.001 or from 10^7 on."""
    v = float(value)
    if v == 0 or not math.isfinite(v):
        return f"{v:g}" if v else "0"
    if abs(v) >= 1e7 or abs(v) < 1e-3:
        return f"{v:.3e}"
    if v.is_integer() or abs(v) >= 1000:
        return str(round(v))
    digits = max(0, 3 - math.floor(math.log10(abs(v))))
    return f"{v:.{digits}f}".rstrip("0").rstrip(".")


def axis_caption(extent: tuple[float, float] | None, x0: float, x1: float, half: float) -> str:
    """What the histogram shows: the data's range and, when the x axis (``x0`` .. ``x1``, bins
    ``2 * half`` wide) covers less of it, the part on the axis (first and last bin centres)."""
    if extent is None:
        return "no finite values"
    data = f"data {number(extent[0])} .. {number(extent[1])}"
    if x0 <= extent[0] and x1 >= extent[1]:
        return f"{data}, all on the axis (log counts; window marked)"
    return f"{data}; axis {number(x0 + half)} .. {number(x1 - half)} (log counts; window marked)"
