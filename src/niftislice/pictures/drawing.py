"""Text on pictures: outlined labels, captions fitted to a width, orientation letters.

One place for every word drawn by the preview, the contact sheets and the animations, so they
all read the same way:

- text is drawn light on a dark outline (the glyphs' own shape grown by a few pixels, composited
  under the fill), so it stays readable on black background and on bright tissue alike;
- sizes follow the picture: :func:`text_scale` maps a panel's size in pixels to an OpenCV font
  scale, and the outline and stroke widths follow the scale;
- a caption longer than its width is cut at a word boundary and ends with ``...``;
- OpenCV's Hershey fonts draw printable ASCII only (and crash on lone surrogates), so anything
  else is drawn as ``?``.

Coordinates are pixels, ``(x, y)`` with ``y`` down; ``org`` is the left end of the baseline, as
in ``cv2.putText``. Boxes are ``(x0, y0, x1, y1)`` with exclusive ends.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._cv2 import cv2

FONT = cv2.FONT_HERSHEY_SIMPLEX
TEXT_COLOUR = (255, 255, 255)
CAPTION_COLOUR = (230, 230, 230)
LETTER_COLOUR = (255, 220, 0)
ELLIPSIS = "..."
MIN_SCALE, MAX_SCALE = 0.4, 0.8

Box = tuple[int, int, int, int]


@dataclass(frozen=True)
class TextStyle:
    """How big text is: OpenCV font ``scale``, glyph ``thickness`` and ``outline`` width (px)."""

    scale: float
    thickness: int
    outline: int

    @classmethod
    def of(cls, scale: float) -> TextStyle:
        thickness = 1 if scale < 0.7 else 2
        return cls(float(scale), thickness, 2 if scale >= 0.45 else 1)


def text_scale(size_px: int) -> float:
    """The font scale for a panel whose shorter side is ``size_px`` pixels (0.4 .. 0.8)."""
    return float(min(max(size_px / 450.0, MIN_SCALE), MAX_SCALE))


def drawable(text: str) -> str:
    """``text`` with every character the font cannot draw (not printable ASCII) as ``?``."""
    return "".join(c if " " <= c <= "~" else "?" for c in str(text))


def text_box_size(text: str, style: TextStyle) -> tuple[int, int, int]:
    """``(width, height above the baseline, depth below it)`` in pixels, outline included."""
    (w, h), base = cv2.getTextSize(drawable(text), FONT, style.scale, style.thickness)
    o = style.outline
    return w + 2 * o, h + o, base + o


def line_height(style: TextStyle) -> int:
    """Pixels from one baseline to the next for lines of this style."""
    _, above, below = text_box_size("Ag", style)
    return above + below + 2


def fit_text(text: str, width: int, style: TextStyle) -> str:
    """``text`` if it fits in ``width`` pixels, else its longest start that fits with ``...``
    appended, cut after a whole word when one fits (else mid-word)."""
    text = drawable(text)
    if text_box_size(text, style)[0] <= width:
        return text
    words = text.split(" ")
    for n in range(len(words) - 1, 0, -1):
        candidate = " ".join(words[:n]).rstrip(" ,;:") + ELLIPSIS
        if text_box_size(candidate, style)[0] <= width:
            return candidate
    for n in range(len(text) - 1, 0, -1):
        if text_box_size(text[:n] + ELLIPSIS, style)[0] <= width:
            return text[:n] + ELLIPSIS
    return ELLIPSIS if text_box_size(ELLIPSIS, style)[0] <= width else ""


def draw_text(
    img: np.ndarray,
    text: str,
    org: tuple[int, int],
    style: TextStyle | float,
    colour: tuple[int, int, int] = TEXT_COLOUR,
) -> Box:
    """Draw ``text`` with its baseline starting at ``org``: a black outline ``style.outline``
    pixels wide under the light fill. Works on grey (H, W) images (the fill is then the
    colour's brightest channel) and RGB (H, W, 3) ones, in place; returns the box drawn over
    (clipped to the image)."""
    st = style if isinstance(style, TextStyle) else TextStyle.of(style)
    text = drawable(text)
    w, above, below = text_box_size(text, st)
    o = st.outline
    x0, y0 = org[0] - o, org[1] - above
    mask = np.zeros((above + below, w), np.uint8)
    cv2.putText(mask, text, (o, above), FONT, st.scale, 255, st.thickness, cv2.LINE_AA)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * o + 1, 2 * o + 1))
    halo = cv2.dilate(mask, kernel)
    # the part of the text box inside the image
    ih, iw = img.shape[:2]
    cx0, cy0 = max(x0, 0), max(y0, 0)
    cx1, cy1 = min(x0 + w, iw), min(y0 + above + below, ih)
    if cx1 <= cx0 or cy1 <= cy0:
        return (cx0, cy0, cx0, cy0)
    sub = (slice(cy0 - y0, cy1 - y0), slice(cx0 - x0, cx1 - x0))
    fill = mask[sub].astype(np.float32) / 255.0
    dark = halo[sub].astype(np.float32) / 255.0
    region = img[cy0:cy1, cx0:cx1].astype(np.float32)
    if img.ndim == 3:
        fill, dark = fill[:, :, None], dark[:, :, None]
        ink = np.asarray(colour[: img.shape[2]], np.float32)
    else:
        ink = np.float32(max(colour))
    region = region * (1.0 - dark)
    region = region * (1.0 - fill) + ink * fill
    img[cy0:cy1, cx0:cx1] = np.clip(np.rint(region), 0, 255).astype(img.dtype)
    return (cx0, cy0, cx1, cy1)


def draw_letters(
    img: np.ndarray,
    letters: dict[str, str],
    style: TextStyle | float,
    rect: Box | None = None,
    *,
    outside: bool = False,
) -> list[Box]:
    """Orientation letters (``top``, ``bottom``, ``left``, ``right``) at the middle of each edge
    of ``rect`` (default: the whole image), just inside it, or just outside with ``outside``
    (in a margin left for them). Returns the four boxes drawn."""
    st = style if isinstance(style, TextStyle) else TextStyle.of(style)
    x0, y0, x1, y1 = rect if rect is not None else (0, 0, img.shape[1], img.shape[0])
    cx, cy = (x0 + x1) // 2, (y0 + y1) // 2
    gap = 4 if outside else 2
    boxes = []
    for edge in ("top", "bottom", "left", "right"):
        text = letters[edge]
        w, above, below = text_box_size(text, st)
        o = st.outline
        if edge in ("top", "bottom"):
            x = cx - w // 2 + o
            if edge == "top":
                y = y0 - gap - below if outside else y0 + gap + above
            else:
                y = y1 + gap + above if outside else y1 - gap - below
        else:
            y = cy + (above - below) // 2
            if edge == "left":
                x = x0 - gap - w + o if outside else x0 + gap + o
            else:
                x = x1 + gap + o if outside else x1 - gap - w + o
        boxes.append(draw_text(img, text, (x, y), st, LETTER_COLOUR))
    return boxes


def letter_margin(style: TextStyle) -> int:
    """Pixels to leave around an image for :func:`draw_letters` with ``outside=True``."""
    w, above, below = text_box_size("M", style)
    return max(w, above + below) + 4


def caption_strip(lines: list[str], width: int, style: TextStyle | float = 0.45) -> np.ndarray:
    """A black RGB strip ``width`` pixels wide with one fitted caption line per entry."""
    st = style if isinstance(style, TextStyle) else TextStyle.of(style)
    step = line_height(st)
    _, above, _ = text_box_size("Ag", st)
    strip = np.zeros((step * len(lines) + 6, width, 3), np.uint8)
    for i, line in enumerate(lines):
        text = fit_text(line, width - 12, st)
        draw_text(strip, text, (6, 3 + above + i * step), st, CAPTION_COLOUR)
    return strip
