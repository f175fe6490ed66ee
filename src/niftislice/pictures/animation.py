"""Animations through the slices of one view: animated GIF or WebP, one frame per slice.

OpenCV cannot write either, so this uses Pillow (a dependency, imported only when an animation
is asked for). Frames are the
exported images (one window for all of them), labelled with the slice index and the orientation
letters; the label also keeps consecutive frames distinct, which matters because GIF and WebP
encoders merge identical frames and a sequence must keep one frame per slice.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from types import ModuleType

import numpy as np

from ..errors import OptionError
from ..extras import require

FORMATS = ("gif", "webp")


def require_pillow(option: str = "gif") -> ModuleType:
    """``PIL.Image``, or :class:`OptionError` telling how to install it."""
    return require("PIL.Image", option, "an animation")


def frame_duration_ms(fps: float) -> int:
    """Milliseconds per frame; GIF stores hundredths of a second, so this is a multiple of 10."""
    return max(10, round(100.0 / fps) * 10)


def encode_animation(
    frames: Sequence[np.ndarray], fmt: str, fps: float, quality: int | None = None
) -> bytes:
    """An animated GIF or WebP (``fmt``) of 8-bit grey or RGB frames of equal size, looping."""
    if fmt not in FORMATS:
        raise OptionError(f"animation: format must be gif or webp, got {fmt!r}")
    if not frames:
        raise OptionError("an animation needs at least one frame")
    Image = require_pillow("gif" if fmt == "gif" else "webp-anim")
    pics = [Image.fromarray(np.ascontiguousarray(f)) for f in frames]
    buf = io.BytesIO()
    params: dict[str, object] = {
        "save_all": True,
        "append_images": pics[1:],
        "duration": frame_duration_ms(fps),
        "loop": 0,
    }
    if fmt == "gif":
        params["optimize"] = False
    else:
        params["quality"] = quality or 90
        params["method"] = 4
    pics[0].save(buf, format="GIF" if fmt == "gif" else "WEBP", **params)
    return buf.getvalue()
