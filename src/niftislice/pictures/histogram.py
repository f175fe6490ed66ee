"""The preview's histogram panel: the volume's voxel values with the chosen window marked.

Counts are drawn on a log scale (background voxels would flatten everything else). The x axis is
in data units (``scl_slope``/``scl_inter`` applied) and spans the window with a margin on each
side, within the data's range, so what the window clips is visible. With a colour map, a strip
under the axis shows the colour each value gets.
"""

from __future__ import annotations

import cv2
import numpy as np

from ..intensity import Window
from .colormap import Colormap

_FONT = cv2.FONT_HERSHEY_SIMPLEX
_CHUNK = 1 << 22
_GREY = (150, 150, 150)
_MARK = (255, 200, 0)
_TEXT = (225, 225, 225)


def value_histogram(
    raw: np.ndarray, slope: float, inter: float, window: Window, bins: int
) -> tuple[np.ndarray, float, float]:
    """Counts of finite voxel values (data units) in ``bins`` equal bins over the plotted range;
    returns the counts and the range ``(x0, x1)``. Works chunk by chunk, no full float copy."""
    flat = raw.reshape(-1, order="A")
    dmin, dmax = np.inf, -np.inf
    for start in range(0, flat.size, _CHUNK):
        c = flat[start : start + _CHUNK]
        if c.dtype.kind == "f":
            c = c[np.isfinite(c)]
        if c.size:
            dmin, dmax = min(dmin, float(c.min())), max(dmax, float(c.max()))
    if not np.isfinite(dmin):
        return np.zeros(bins, np.int64), window.low, window.high
    ends = sorted((dmin * slope + inter, dmax * slope + inter))
    margin = 0.25 * (window.high - window.low)
    x0 = min(window.low, max(ends[0], window.low - margin))
    x1 = max(window.high, min(ends[1], window.high + margin))
    if raw.dtype.kind in "iu" and float(slope).is_integer() and float(inter).is_integer():
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
    counts, x0, x1 = value_histogram(raw, slope, inter, window, plot_w)
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
    labels = [(xl, f"{window.low:.4g}", _MARK), (xh, f"{window.high:.4g}", _MARK)]
    for x, text, colour in labels:
        (tw, th), _ = cv2.getTextSize(text, _FONT, 0.4, 1)
        tx = int(min(max(x - tw // 2, 2), width - tw - 2))
        cv2.putText(panel, text, (tx, y + 6 + th), _FONT, 0.4, colour, 1, cv2.LINE_AA)
    half = (x1 - x0) / (2 * len(counts))  # first and last bin centres
    caption = f"values {x0 + half:.4g} .. {x1 - half:.4g} (log counts); window marked"
    (tw, th), _ = cv2.getTextSize(caption, _FONT, 0.38, 1)
    cv2.putText(
        panel, caption, (max(2, width - tw - pad), height - 5), _FONT, 0.38, _TEXT, 1, cv2.LINE_AA
    )
    return panel
