"""Contact sheets: evenly spaced slices of one view in a grid, each tile labelled.

Tiles are the exported images themselves (same window, same pixels, true aspect); only images
smaller than :data:`MIN_TILE` pixels are enlarged, by a whole factor with nearest neighbour, so
that their labels stay readable. Text is drawn by :mod:`.drawing` (shared with the animations and
the preview): outlined, so slice numbers read on bright tissue too, and the caption is fitted to
the sheet's width with an ellipsis.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .._cv2 import cv2
from ..errors import OptionError
from .drawing import TextStyle, caption_strip, draw_letters, draw_text, text_scale

MIN_TILE = 96  # px: the shorter side of a tile (or animation frame) is at least this
_GAP = 4


def to_8bit(image: np.ndarray) -> np.ndarray:
    """Any exported image as 8-bit grey (H, W) or RGB (H, W, 3); 16-bit keeps the top byte."""
    img = image
    if img.dtype == np.uint16:
        img = (img >> 8).astype(np.uint8)
    elif img.dtype != np.uint8:
        img = np.clip(img, 0, 255).astype(np.uint8)
    return img if img.ndim == 2 else np.ascontiguousarray(img[:, :, :3])


def to_rgb8(image: np.ndarray) -> np.ndarray:
    """Any exported image (grey/RGB/RGBA, 8 or 16 bit) as 8-bit RGB."""
    img = to_8bit(image)
    return cv2.cvtColor(img, cv2.COLOR_GRAY2RGB) if img.ndim == 2 else img


def enlarge(image: np.ndarray, min_side: int = MIN_TILE) -> tuple[np.ndarray, int]:
    """The image enlarged by a whole factor (nearest neighbour) until its shorter side reaches
    ``min_side``; returns the image and the factor (1: unchanged). Keeps the aspect exactly."""
    short = min(image.shape[:2])
    factor = max(1, math.ceil(min_side / max(short, 1)))
    if factor == 1:
        return image, 1
    return np.repeat(np.repeat(image, factor, axis=0), factor, axis=1), factor


def label_image(image: np.ndarray, letters: dict[str, str], caption: str) -> np.ndarray:
    """A copy of an exported image (enlarged if tiny) with letters and a caption. Grey images
    stay grey (letters in white), so a GIF keeps every grey level exactly."""
    tile, _ = enlarge(to_8bit(image))
    tile = np.array(tile)
    style = TextStyle.of(text_scale(min(tile.shape[:2])))
    draw_letters(tile, letters, style)
    draw_text(tile, caption, (4, tile.shape[0] - 6), style)
    return tile


def evenly_spaced(indices: Sequence[int], count: int, content: Sequence[int] = ()) -> list[int]:
    """``count`` entries of ``indices`` spread evenly from the first to the last (all if fewer).

    With ``content`` (the indices whose image is not all background), the spread covers only the
    stretch from the first to the last slice with content, so a sheet is not wasted on empty
    slices beyond the head.
    """
    items = list(indices)
    if content:
        lo, hi = min(content), max(content)
        items = [k for k in items if lo <= k <= hi]
    if len(items) <= count:
        return items
    if count == 1:
        return [items[len(items) // 2]]
    picks = np.rint(np.linspace(0, len(items) - 1, count)).astype(int)
    return [items[i] for i in picks]


@dataclass(frozen=True)
class Tile:
    index: int  # slice index
    x: int  # top-left corner of the tile in the sheet, pixels
    y: int
    width: int
    height: int
    scale: int  # whole-number enlargement of the exported image (1: pixel for pixel)

    def to_json(self) -> dict[str, int]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class Montage:
    image: np.ndarray  # RGB uint8
    tiles: tuple[Tile, ...]


def build_montage(
    images: Sequence[tuple[int, np.ndarray]],
    letters: dict[str, str],
    caption: str,
    footer: np.ndarray | None = None,
) -> Montage:
    """A grid of ``(slice index, exported image)`` tiles, row by row, with a caption strip (and
    ``footer``, e.g. a colour bar, left-aligned) below. Each tile carries its slice index and the
    orientation letters."""
    if not images:
        raise OptionError("a montage needs at least one image")
    tiles_img = []
    factors = []
    for _, img in images:
        rgb, f = enlarge(to_rgb8(img))
        tiles_img.append(rgb)
        factors.append(f)
    th = max(t.shape[0] for t in tiles_img)
    tw = max(t.shape[1] for t in tiles_img)
    n = len(images)
    cols = min(n, max(1, round(math.sqrt(n * th / tw))))  # a roughly square sheet
    rows = math.ceil(n / cols)
    width = cols * tw + (cols + 1) * _GAP
    grid_h = rows * th + (rows + 1) * _GAP
    sheet = np.zeros((grid_h, width, 3), np.uint8)
    style = TextStyle.of(text_scale(min(th, tw)))
    placed = []
    for i, ((k, _), tile, f) in enumerate(zip(images, tiles_img, factors, strict=False)):
        r, c = divmod(i, cols)
        x, y = _GAP + c * (tw + _GAP), _GAP + r * (th + _GAP)
        h, w = tile.shape[:2]
        cell = sheet[y : y + h, x : x + w]
        cell[:] = tile
        draw_letters(cell, letters, style)
        draw_text(cell, str(k), (4, h - 6), style)
        placed.append(Tile(k, x, y, w, h, f))
    parts = [sheet, caption_strip([caption], width)]
    if footer is not None:
        bar = np.zeros((footer.shape[0], width, 3), np.uint8)
        bw = min(width, footer.shape[1])
        bar[:, :bw] = footer[:, :bw]
        parts.append(bar)
    return Montage(np.vstack(parts), tuple(placed))
