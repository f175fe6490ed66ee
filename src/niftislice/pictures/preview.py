"""``niftislice preview``: the three middle slices side by side, labelled.

Layout (every size in pixels of the preview):

- the panels share one physical scale: the largest extent of any view, in mm, is drawn
  :data:`TARGET` pixels long, so a 256 x 10 mm coronal slab of a two-slice CT is as wide as its
  256 x 256 mm axial slice and 1/25 as tall (never stretched to the axial's height);
- each slice sits centred in a box at least :data:`MIN_PANEL` pixels each way, so thin and tiny
  views still get a panel, and the picture stays within about 1300 x 700 whatever the volume;
- the orientation letters are drawn just outside the image, in a margin, and the view name and
  slice index in a title line above it: text never covers anatomy or other text;
- below: the histogram of the volume with the window marked, and a caption (window, display
  convention, file name) fitted to the width.

Text size follows the panels (:func:`.drawing.text_scale`), drawn by :mod:`.drawing`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .._cv2 import cv2
from ..encoding import encode
from ..errors import OutputError
from ..files import lexists, make_dirs, remove_empty, replace_file
from ..naming import display_name
from ..options import ConvertOptions
from ..types import ALL_VIEWS, preview_format
from ..volume import Volume
from .drawing import (
    Box,
    TextStyle,
    caption_strip,
    draw_letters,
    draw_text,
    fit_text,
    letter_margin,
    line_height,
    text_box_size,
    text_scale,
)
from .histogram import histogram_panel, number
from .montage import to_rgb8

TARGET = 320  # px: the largest physical extent among the views
MIN_PANEL = 120  # px: a panel's box is at least this wide and tall
MAX_TEXT_SCALE = 0.6
_GAP = 8  # px between panels


@dataclass(frozen=True)
class Panel:
    """Where one view's slice is drawn: its image's box in the preview and its scale."""

    view: str
    index: int  # slice index along the view's RAS+ axis
    image_box: Box  # (x0, y0, x1, y1), exclusive ends
    mm_per_px: tuple[float, float]  # (horizontal, vertical) mm per preview pixel


@dataclass(frozen=True)
class Preview:
    image: np.ndarray  # RGB uint8
    panels: tuple[Panel, ...]
    text_boxes: tuple[Box, ...]  # every label drawn over the panels (letters, titles)


def _scaled(img: np.ndarray, width: int, height: int, label: bool) -> np.ndarray:
    if (width, height) == img.shape[1::-1]:
        return img
    if label:
        interp = cv2.INTER_NEAREST
    elif width < img.shape[1] and height < img.shape[0]:
        interp = cv2.INTER_AREA
    else:
        interp = cv2.INTER_LINEAR
    return cv2.resize(img, (width, height), interpolation=interp)


def build_preview(volume: Volume, target: int = TARGET) -> Preview:
    """The preview of ``volume``: panels on one physical scale, histogram, caption."""
    plan = volume.plan
    shots = []  # (view, index, rgb image, width mm, height mm)
    for view in plan.geometries:
        s = next(volume.slices(view))
        img = to_rgb8(s.image)
        h, w = img.shape[:2]
        shots.append((view, s.index, img, w * s.spacing_mm[0], h * s.spacing_mm[1]))
    extent = max(max(wmm, hmm) for *_, wmm, hmm in shots)
    px_per_mm = target / extent if extent > 0 else 1.0
    sizes = [
        (max(1, round(wmm * px_per_mm)), max(1, round(hmm * px_per_mm))) for *_, wmm, hmm in shots
    ]
    boxes = [(max(w, MIN_PANEL), max(h, MIN_PANEL)) for w, h in sizes]
    # one text size for the picture, from its largest panel (every panel can hold it)
    style = TextStyle.of(min(text_scale(max(min(b) for b in boxes)), MAX_TEXT_SCALE))
    margin = letter_margin(style)
    title_h = line_height(style)
    _, title_above, _ = text_box_size("Ag", style)
    row_box_h = max(bh for _, bh in boxes)
    height = title_h + row_box_h + 2 * margin
    width = sum(bw + 2 * margin for bw, _ in boxes) + _GAP * (len(boxes) - 1)
    row = np.zeros((height, width, 3), np.uint8)
    panels, text_boxes = [], []
    x = 0
    for (view, index, img, wmm, hmm), (w, h), (bw, _) in zip(shots, sizes, boxes, strict=True):
        ix = x + margin + (bw - w) // 2
        iy = title_h + margin + (row_box_h - h) // 2
        row[iy : iy + h, ix : ix + w] = _scaled(img, w, h, bool(plan.label))
        rect = (ix, iy, ix + w, iy + h)
        text_boxes += draw_letters(
            row, plan.geometries[view].edge_letters, style, rect, outside=True
        )
        title = fit_text(f"{view.value} {index}", bw + 2 * margin - 4, style)
        text_boxes.append(draw_text(row, title, (x + 2, title_above), style))
        panels.append(Panel(view.value, index, rect, (wmm / w, hmm / h)))
        x += bw + 2 * margin + _GAP
    parts = [row]
    if plan.window is not None:
        f = volume.file
        parts.append(
            histogram_panel(volume.raw, f.slope, f.inter, plan.window, width, volume.pictures.cmap)
        )
    parts.append(caption_strip(_caption(volume), width))
    return Preview(np.vstack(parts), tuple(panels), tuple(text_boxes))


def _caption(volume: Volume) -> list[str]:
    plan = volume.plan
    if plan.window is None:
        window = "colour volume"
    else:
        w = plan.window
        window = f"window {number(w.low)} .. {number(w.high)} ({w.description})"
    display = "neurological" if plan.options.neurological else "radiological"
    n = volume.file.n_volumes
    if n > 1 and plan.window is not None:  # slices and histogram: one volume; window: series
        k = len(plan.options.volumes.indices(n))
        window += f", set on {k} of the {n} volumes"
    shown = f"volume {volume.volume_index} shown   " if n > 1 else ""
    return [window, f"{display}   {shown}{display_name(volume.path.name, ascii_only=True)}"]


def render_preview(volume: Volume, height: int = TARGET) -> np.ndarray:
    """An RGB uint8 image: three labelled middle slices, a histogram with the window, a caption
    (see the module docstring for the layout)."""
    return build_preview(volume, height).image


def preview(
    path: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    options: ConvertOptions | None = None,
    *,
    overwrite: bool = False,
) -> Path:
    """Write a preview image of ``path`` to ``out_path`` (its suffix chooses the format).

    Like ``convert``: an existing file is kept (:class:`OutputError`) unless ``overwrite``, and
    a missing folder is created. The file is written under a temporary name and renamed.
    """
    out = Path(out_path)
    fmt = preview_format(out)
    if lexists(out) and not overwrite:
        raise OutputError(f"{out} exists; use --overwrite to replace it")
    opts = options or ConvertOptions(views=ALL_VIEWS, slices="middle")
    data = encode(render_preview(Volume(path, opts, volume=None)), fmt)
    created = make_dirs(out.parent)
    try:
        replace_file(out, data)
    except OutputError:
        remove_empty(created)  # a failed preview leaves no folder behind
        raise
    return out
