"""Applying the window: raw voxels to uint8/uint16 pixels, once per volume.

The mapping is the one :class:`~.window.Window` describes: ``pixel = rint((data - low) * out_max /
(high - low))`` clipped to ``[0, out_max]``, with ``data = raw * slope + inter``; NaN and -Inf
become 0 and +Inf ``out_max``. Small integer types go through a lookup table of every possible
raw value, others are mapped chunk by chunk in float64.
"""

from __future__ import annotations

from concurrent.futures import Executor

import numpy as np

from .buffers import release
from .stats import CHUNK, is_small_int
from .window import Window


def apply_window(
    raw: np.ndarray,
    window: Window,
    slope: float,
    inter: float,
    executor: Executor | None = None,
    *,
    consume: bool = False,
) -> np.ndarray:
    """Map raw voxels to uint8/uint16 pixels, keeping the input's memory order and shape.

    Small integer types go through a lookup table (one pass, no float copy); others are mapped
    chunk by chunk in float64 so temporaries stay small. Chunks run on ``executor`` when given
    (numpy releases the GIL here, so threads scale). With ``consume``, each chunk of ``raw`` is
    given back to the operating system once mapped (see :mod:`.buffers`), so the raw volume and
    its pixels are not resident together; ``raw`` must not be read afterwards.
    """
    out_dtype = np.uint8 if window.out_max <= 255 else np.uint16
    order = "F" if raw.flags.f_contiguous and not raw.flags.c_contiguous else "C"
    raw = np.asarray(raw, order=order)
    out = np.empty(raw.shape, dtype=out_dtype, order=order)
    raw_flat, out_flat = raw.reshape(-1, order="A"), out.reshape(-1, order="A")
    # halves keep (high - low) finite even for windows spanning most of the float64 range
    scale = (window.out_max / 2) / (window.high / 2 - window.low / 2)
    if is_small_int(raw.dtype):
        unsigned = np.dtype(f"u{raw.dtype.itemsize}")
        values = np.arange(1 << (8 * raw.dtype.itemsize), dtype=unsigned).view(
            raw.dtype.newbyteorder("=")
        )
        lut = _map_values(
            values.astype(np.float64) * slope + inter, window.low, scale, window.out_max
        )
        lut = lut.astype(out_dtype)

        def map_part(part: slice) -> None:
            # the raw bits read as unsigned always index inside the table: "clip" skips the
            # bounds checks
            np.take(lut, raw_flat[part].view(unsigned), out=out_flat[part], mode="clip")
    else:

        def map_part(part: slice) -> None:
            vals = raw_flat[part].astype(np.float64) * slope + inter
            out_flat[part] = _map_values(vals, window.low, scale, window.out_max)

    def map_chunk(start: int) -> None:
        part = slice(start, start + CHUNK)
        map_part(part)
        if consume:
            release(raw_flat[part])

    starts = range(0, raw_flat.size, CHUNK)
    # a one-chunk volume (a 4D series' small volumes) is mapped here: on the executor it would
    # wait behind the images still queued there
    parallel = executor is not None and len(starts) > 1
    for _ in executor.map(map_chunk, starts) if parallel else map(map_chunk, starts):  # type: ignore[union-attr]
        pass
    return out


def _map_values(vals: np.ndarray, low: float, scale: float, out_max: int) -> np.ndarray:
    with np.errstate(invalid="ignore", over="ignore"):
        mapped = vals * scale - low * scale  # not (vals - low) * scale: that overflows at extremes
        np.clip(mapped, 0, out_max, out=mapped)
        np.rint(mapped, out=mapped)
    mapped[np.isnan(mapped)] = 0
    return mapped
