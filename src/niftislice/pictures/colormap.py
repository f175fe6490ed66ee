"""Colour maps for non-anatomical data: a 256-entry RGB lookup table per 8-bit pixel value.

Sequential maps (viridis, hot, gray, ...) come from OpenCV's ``applyColorMap`` tables and suit
probabilities and other one-signed data. Diverging maps (``bwr``, ``coolwarm``, ``cold-hot``) suit
signed statistical maps: their window is made symmetric about 0 (``[-m, m]`` with ``m`` the larger
absolute end), so zero sits at the neutral middle colour and equal magnitudes get equal strength.

The table maps the 8-bit pixel value of the windowed image to a colour, so the sidecar's window
still turns a pixel value back into data units: ``pixel = index of the colour in the table``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._cv2 import cv2
from ..errors import OptionError
from ..types import COLORMAPS
from ..types import colormap_name as normalise_name
from ..window import Window

_OPENCV = {
    "viridis": cv2.COLORMAP_VIRIDIS,
    "hot": cv2.COLORMAP_HOT,
    "inferno": cv2.COLORMAP_INFERNO,
    "magma": cv2.COLORMAP_MAGMA,
    "plasma": cv2.COLORMAP_PLASMA,
    "cividis": cv2.COLORMAP_CIVIDIS,
    "parula": cv2.COLORMAP_PARULA,
    "turbo": cv2.COLORMAP_TURBO,
    "jet": cv2.COLORMAP_JET,
    "bone": cv2.COLORMAP_BONE,
    "pink": cv2.COLORMAP_PINK,
    "autumn": cv2.COLORMAP_AUTUMN,
    "winter": cv2.COLORMAP_WINTER,
    "cool": cv2.COLORMAP_COOL,
    "ocean": cv2.COLORMAP_OCEAN,
}

# Diverging maps as control points (position 0..1, RGB); negative values are the first colour.
_DIVERGING: dict[str, tuple[tuple[float, tuple[int, int, int]], ...]] = {
    "bwr": ((0.0, (0, 0, 255)), (0.5, (255, 255, 255)), (1.0, (255, 0, 0))),
    # Moreland's "cool to warm" (the matplotlib/ParaView coolwarm end and middle colours)
    "coolwarm": ((0.0, (59, 76, 192)), (0.5, (221, 221, 221)), (1.0, (180, 4, 38))),
    # the neuroimaging "cold hot": cyan-blue for negative, black at 0, red-yellow for positive
    "cold-hot": (
        (0.0, (0, 255, 255)),
        (0.25, (0, 0, 255)),
        (0.5, (0, 0, 0)),
        (0.75, (255, 0, 0)),
        (1.0, (255, 255, 0)),
    ),
}

# the names are validated with the options (types.COLORMAPS); the tables are built here
assert ("gray", *_OPENCV, *_DIVERGING) == COLORMAPS


@dataclass(frozen=True)
class Colormap:
    name: str
    diverging: bool
    lut: np.ndarray  # (256, 3) uint8 RGB, indexed by the 8-bit pixel value

    def apply(self, image: np.ndarray) -> np.ndarray:
        """An (H, W) uint8 image as (H, W, 3) RGB."""
        if image.dtype != np.uint8 or image.ndim != 2:
            raise OptionError(
                f"colormap: needs 8-bit grey images, got {image.dtype} with shape {image.shape}"
            )
        return self.lut[image]

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "kind": "diverging" if self.diverging else "sequential",
            "note": "colour = lut[pixel]; the intensity window turns pixel values into data units"
            + ("; the window is symmetric about 0" if self.diverging else ""),
            "lut": self.lut.tolist(),
        }


def _opencv_lut(code: int) -> np.ndarray:
    ramp = np.arange(256, dtype=np.uint8).reshape(256, 1)
    bgr = cv2.applyColorMap(ramp, code)
    return np.ascontiguousarray(bgr[:, 0, ::-1])


def _interpolated_lut(points: tuple[tuple[float, tuple[int, int, int]], ...]) -> np.ndarray:
    t = np.arange(256) / 255.0
    pos = [p for p, _ in points]
    channels = [np.interp(t, pos, [c[i] for _, c in points]) for i in range(3)]
    return np.rint(np.stack(channels, axis=1)).astype(np.uint8)


def get_colormap(name: str) -> Colormap:
    key = normalise_name(name)
    if key == "gray":
        ramp = np.arange(256, dtype=np.uint8)
        return Colormap(key, False, np.stack([ramp] * 3, axis=1))
    if key in _DIVERGING:
        return Colormap(key, True, _interpolated_lut(_DIVERGING[key]))
    return Colormap(key, False, _opencv_lut(_OPENCV[key]))


# --------------------------------------------------------------------------------------------
# colour bar

_FONT = cv2.FONT_HERSHEY_SIMPLEX


def colour_bar(cmap: Colormap, window: Window, width: int, height: int = 44) -> np.ndarray:
    """An RGB strip: the colours from ``window.low`` (left) to ``window.high`` (right), labelled
    with the data values at both ends (and 0 in the middle of a diverging map)."""
    width = max(width, 120)
    strip_h = max(8, height // 2 - 4)
    bar = np.zeros((height, width, 3), np.uint8)
    x0, x1 = 8, width - 8
    ramp = np.rint(np.linspace(0, 255, x1 - x0)).astype(np.uint8)
    bar[4 : 4 + strip_h, x0:x1] = cmap.lut[ramp][None, :, :]
    ticks = [(x0, window.low), (x1 - 1, window.high)]
    if cmap.diverging:
        ticks.append(((x0 + x1) // 2, 0.0))
    for x, value in ticks:
        text = f"{value:.4g}"
        (tw, th), _ = cv2.getTextSize(text, _FONT, 0.4, 1)
        tx = int(min(max(x - tw // 2, 2), width - tw - 2))
        cv2.line(bar, (x, 4 + strip_h), (x, 4 + strip_h + 3), (230, 230, 230), 1)
        cv2.putText(
            bar, text, (tx, 4 + strip_h + 5 + th), _FONT, 0.4, (230, 230, 230), 1, cv2.LINE_AA
        )
    return bar
