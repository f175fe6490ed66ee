"""``niftislice preview``: the three middle slices side by side, labelled.

Each tile keeps its true physical aspect (square pixels), carries orientation letters on its
edges, and the caption states the window and the display convention.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from ..encoding import encode
from ..errors import OutputError
from ..options import ALL_VIEWS, ConvertOptions, ImageFormat
from ..slicing import ViewGeometry
from ..volume import Volume
from .histogram import histogram_panel

_FONT = cv2.FONT_HERSHEY_SIMPLEX
_TILE_HEIGHT = 320
_PAD = 8


def _text(
    img: np.ndarray, text: str, org: tuple[int, int], scale: float, color: tuple[int, int, int]
) -> None:
    cv2.putText(img, text, org, _FONT, scale, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(img, text, org, _FONT, scale, color, 1, cv2.LINE_AA)


def _letters(tile: np.ndarray, g: ViewGeometry) -> None:
    h, w = tile.shape[:2]
    letters = g.edge_letters
    scale, yellow = 0.6, (255, 220, 0)
    (tw, th), _ = cv2.getTextSize("M", _FONT, scale, 1)
    _text(tile, letters["top"], (w // 2 - tw // 2, th + 4), scale, yellow)
    _text(tile, letters["bottom"], (w // 2 - tw // 2, h - 5), scale, yellow)
    _text(tile, letters["left"], (4, h // 2 + th // 2), scale, yellow)
    _text(tile, letters["right"], (w - tw - 4, h // 2 + th // 2), scale, yellow)


def _caption_bar(lines: list[str], width: int, scale: float = 0.45) -> np.ndarray:
    """Caption lines, each shortened with an ellipsis only if it cannot fit the width."""
    line_h = 20
    bar = np.zeros((line_h * len(lines) + 10, width, 3), np.uint8)
    for i, text in enumerate(lines):
        while len(text) > 4 and cv2.getTextSize(text, _FONT, scale, 1)[0][0] > width - 12:
            text = text[:-5] + "..."
        _text(bar, text, (6, line_h * (i + 1)), scale, (230, 230, 230))
    return bar


def render_preview(volume: Volume, height: int = _TILE_HEIGHT) -> np.ndarray:
    """An RGB uint8 image: three labelled middle slices, a histogram with the window, a caption."""
    tiles = []
    pictures = volume.pictures  # colour map and overlay are already applied to the slices
    for view in volume.plan.geometries:
        s = next(volume.slices(view))
        img = s.image
        if img.dtype == np.uint16:
            img = (img >> 8).astype(np.uint8)
        if img.ndim == 2:
            img = cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
        img = img[:, :, :3]
        scale = height / img.shape[0]
        w = max(1, round(img.shape[1] * scale))
        tile = cv2.resize(img, (w, height), interpolation=cv2.INTER_LINEAR)
        _letters(tile, volume.plan.geometries[view])
        _text(tile, f"{view.value} {s.index}", (4, height - 24), 0.45, (255, 255, 255))
        tiles.append(tile)
    gap = np.zeros((height, _PAD, 3), np.uint8)
    row = tiles[0]
    for t in tiles[1:]:
        row = np.hstack([row, gap, t])
    plan = volume.plan
    if plan.window is None:
        caption = "colour volume"
    else:
        caption = (
            f"window {plan.window.low:.4g} .. {plan.window.high:.4g} ({plan.window.description})"
        )
    bar = _caption_bar(
        [
            caption,
            ("neurological" if plan.options.neurological else "radiological")
            + f"   {volume.path.name}",
        ],
        row.shape[1],
    )
    parts = [row]
    if plan.window is not None:
        f = volume.file
        parts.append(
            histogram_panel(volume.raw, f.slope, f.inter, plan.window, row.shape[1], pictures.cmap)
        )
    return np.vstack([*parts, bar])


def preview(
    path: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    options: ConvertOptions | None = None,
    *,
    overwrite: bool = True,
) -> Path:
    """Write a preview PNG of ``path`` to ``out_path``."""
    opts = options or ConvertOptions(views=ALL_VIEWS, slices="middle")
    vol = Volume(path, opts)
    img = render_preview(vol)
    out = Path(out_path)
    if out.exists() and not overwrite:
        raise OutputError(f"{out} exists")
    fmt = ImageFormat(
        out.suffix.lower().lstrip(".").replace("jpeg", "jpg").replace("tiff", "tif") or "png"
    )
    data = encode(img, fmt)
    tmp = out.with_name(f".{out.name}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, out)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise OutputError(f"cannot write {out}: {e.strerror or e}") from None
    return out
