"""Intensity windows: one linear mapping from data units to pixel values per volume.

A window ``[low, high]`` in data units (after ``scl_slope``/``scl_inter``) maps linearly to
``[0, out_max]``; values outside are clipped, NaN and -Inf become 0, +Inf becomes ``out_max``.
The inverse is ``data = low + pixel * (high - low) / out_max`` (exact to half a step).

Statistics are computed from raw (unscaled, native dtype) voxels in one pass: integer volumes of
up to 16 bits through an exact histogram (no sort, no float copy), everything else through a
histogram of the top 20 bits of each value's float32 bit pattern (order-preserving), which places
a percentile within 0.05 % of its value and needs no first pass for the range.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor
from dataclasses import dataclass

import numpy as np

from .buffers import release
from .errors import OptionError
from .types import CT_PRESETS

log = logging.getLogger(__name__)

#: Named CT windows in Hounsfield units, as (level, width).
_CHUNK = 1 << 20  # voxels per chunk: temporaries stay under ~10 MiB each
_KEY_BITS = 20  # float histogram: sign, exponent and 11 mantissa bits of float32
_KEY_SHIFT = 32 - _KEY_BITS


@dataclass(frozen=True)
class WindowSpec:
    """How to choose the window. ``kind`` is one of auto, minmax, range, percentile, preset."""

    kind: str
    a: float = 0.0
    b: float = 0.0
    name: str = ""

    @property
    def needs_stats(self) -> bool:
        return self.kind in ("auto", "minmax", "percentile")

    def describe(self) -> str:
        if self.kind == "auto":
            return "auto (percentiles 0.5-99.5 of finite voxels)"
        if self.kind == "percentile":
            return f"percentiles {self.a:g}-{self.b:g} of finite voxels"
        if self.kind == "minmax":
            return "minimum-maximum of finite voxels"
        if self.kind == "preset":
            level, width = CT_PRESETS[self.name]
            return f"CT preset {self.name} (level {level:g} HU, width {width:g} HU)"
        return f"explicit {self.a:g}:{self.b:g}"


def _numbers(t: str) -> tuple[str, float, float] | None:
    """``LEVEL/WIDTH``, ``pLOW:pHIGH`` or ``LOW:HIGH`` as (``/``, ``p:`` or ``:``, a, b)."""
    for sep in ("/", ":"):
        parts = t.split(sep)
        if len(parts) != 2:
            continue
        lo, hi = parts
        kind = sep
        if sep == ":" and lo.startswith("p") and hi.startswith("p"):
            lo, hi, kind = lo[1:], hi[1:], "p:"
        try:
            return kind, float(lo), float(hi)
        except ValueError:
            return None
    return None


def parse_window(text: str | WindowSpec, *, level_width: bool = False) -> WindowSpec:
    """Parse ``auto``, ``minmax``, ``LOW:HIGH``, ``pLOW:pHIGH``, ``LEVEL/WIDTH`` or a CT preset."""
    if isinstance(text, WindowSpec):
        return text
    t = str(text).strip().lower()
    if t == "auto":
        return WindowSpec("auto", 0.5, 99.5)
    if t in ("minmax", "min-max", "full"):
        return WindowSpec("minmax")
    if t in CT_PRESETS:
        level, width = CT_PRESETS[t]
        return WindowSpec("preset", level - width / 2, level + width / 2, name=t)
    numbers = _numbers(t)
    if numbers is not None:
        sep, a, b = numbers
        if sep == "/":
            if not (math.isfinite(a) and math.isfinite(b) and b > 0):
                raise OptionError(f"level/width: width must be positive and finite, got {text!r}")
            return WindowSpec("range", a - b / 2, a + b / 2)
        if sep == "p:":
            if not (0 <= a < b <= 100):
                raise OptionError(
                    f"window: percentiles need 0 <= LOW < HIGH <= 100 (low must be below high), "
                    f"got {text!r}"
                )
            return WindowSpec("percentile", a, b)
        if not (math.isfinite(a) and math.isfinite(b)):
            raise OptionError(f"window: LOW and HIGH must be finite, got {text!r}")
        if not a < b:
            raise OptionError(f"window: low must be below high in LOW:HIGH, got {text!r}")
        return WindowSpec("range", a, b)
    what = "level/width" if level_width else "window"
    presets = ", ".join(CT_PRESETS)
    raise OptionError(
        f"{what}: expected auto, minmax, LOW:HIGH, pLOW:pHIGH or a CT preset ({presets}), "
        f"got {text!r}"
    )


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
# statistics


def _small_int(dtype: np.dtype) -> bool:
    return dtype.kind in "iu" and dtype.itemsize <= 2


def _chunks(arr: np.ndarray) -> Iterator[np.ndarray]:
    flat = arr.reshape(-1, order="A")  # no copy for contiguous arrays
    for start in range(0, flat.size, _CHUNK):
        yield flat[start : start + _CHUNK]


@dataclass(frozen=True)
class RawStats:
    """Summary of finite raw values: extremes and a histogram for percentiles.

    ``exact`` histograms have one bin per integer from ``edges_lo``; otherwise bin ``i`` holds the
    float32 values whose order-preserving 32-bit key starts with the 20 bits ``i``.
    """

    vmin: float
    vmax: float
    count: int
    edges_lo: float  # value of bin 0 (exact histograms)
    counts: np.ndarray
    exact: bool
    nonfinite: int

    def _bin_value(self, i: int, within: float) -> float:
        """Value at fraction ``within`` (0..1) of bin ``i``."""
        if self.exact:
            return self.edges_lo + i
        lo = _key_value(i << _KEY_SHIFT)
        hi = _key_value(((i + 1) << _KEY_SHIFT) - 1)
        if not (math.isfinite(lo) and math.isfinite(hi)):  # the bins holding +-float32 max
            return lo if math.isfinite(lo) else hi
        return lo + within * (hi - lo)

    def percentile(self, q: float) -> float:
        """Like ``np.percentile(values, q)`` (linear method); exact for small integer types."""
        if self.count == 0:
            return float("nan")
        pos = q / 100.0 * (self.count - 1)
        cum = np.cumsum(self.counts)

        def at_rank(rank: int) -> float:
            if rank == 0:
                return self.vmin
            if rank == self.count - 1:
                return self.vmax
            i = int(np.searchsorted(cum, rank, side="right"))
            before = int(cum[i - 1]) if i else 0
            n = int(self.counts[i])
            return self._bin_value(i, (rank - before + 0.5) / n)

        lo_rank = math.floor(pos)
        v0 = at_rank(lo_rank)
        v1 = at_rank(min(lo_rank + 1, self.count - 1))
        return float(min(max(v0 + (pos - lo_rank) * (v1 - v0), self.vmin), self.vmax))


def _float_keys(values: np.ndarray) -> np.ndarray:
    """Order-preserving 20-bit keys of float32 values (bigger value, bigger key)."""
    f32 = np.finfo(np.float32).max
    if values.dtype.itemsize > 4 or values.dtype.kind != "f":
        values = np.clip(values, -f32, f32)  # beyond float32: the outermost bins
    u = values.astype(np.float32, copy=False).view(np.uint32)
    keys = np.where(u >> 31 == 1, ~u, u | np.uint32(0x80000000))
    return keys >> np.uint32(_KEY_SHIFT)


def _key_value(key: int) -> float:
    """The float32 value whose full 32-bit order-preserving key is ``key``."""
    u = key & 0x7FFFFFFF if key & 0x80000000 else ~key & 0xFFFFFFFF
    return float(np.array([u], dtype=np.uint32).view(np.float32)[0])


class StatsBuilder:
    """Builds :class:`RawStats` from raw values of one dtype, added in pieces in any order.

    ``add`` may run on several threads at once: each call bins its own values (numpy releases
    the GIL) and only the merge into the totals holds a lock, so statistics can be gathered on a
    thread pool while the rest of the file is still being decompressed.
    """

    def __init__(self, dtype: np.dtype) -> None:
        self.dtype = np.dtype(dtype).newbyteorder("=")
        self.exact = _small_int(self.dtype)
        bits = 8 * self.dtype.itemsize if self.exact else _KEY_BITS
        self._counts = np.zeros(1 << bits, dtype=np.int64)
        self._lock = threading.Lock()
        self._vmin, self._vmax, self._count, self._nonfinite = math.inf, -math.inf, 0, 0
        # float keys of small pieces (a 4D series' volumes) are binned together, not one by one
        self._keys: list[np.ndarray] = []
        self._buffered = 0

    def add(self, values: np.ndarray) -> None:
        """Count ``values`` (any shape, either byte order) in."""
        if values.dtype.newbyteorder("=") != self.dtype:
            raise ValueError(f"statistics of {self.dtype} values, not {values.dtype}")
        for chunk in _chunks(values):
            if not chunk.dtype.isnative:
                chunk = chunk.astype(self.dtype)
            if self.exact:
                keys = chunk.view(f"u{self.dtype.itemsize}")
                counts = np.bincount(keys, minlength=self._counts.size)
                with self._lock:
                    self._counts += counts
            else:
                self._add_float(chunk)

    def _add_float(self, chunk: np.ndarray) -> None:
        fin = chunk[np.isfinite(chunk)] if chunk.dtype.kind == "f" else chunk
        keys = _float_keys(fin) if fin.size else None
        full: list[np.ndarray] = []
        with self._lock:
            self._nonfinite += chunk.size - fin.size
            if keys is not None:
                self._vmin = min(self._vmin, float(fin.min()))
                self._vmax = max(self._vmax, float(fin.max()))
                self._count += fin.size
                self._keys.append(keys)
                self._buffered += keys.size
            if self._buffered >= _CHUNK:
                full, self._keys, self._buffered = self._keys, [], 0
        if full:
            counts = np.bincount(np.concatenate(full), minlength=self._counts.size)
            with self._lock:
                self._counts += counts

    def result(self) -> RawStats:
        """The statistics of everything added (call once every ``add`` has returned)."""
        if self._keys:
            self._counts += np.bincount(np.concatenate(self._keys), minlength=self._counts.size)
            self._keys, self._buffered = [], 0
        nan, nonfinite = float("nan"), self._nonfinite
        if not self.exact:
            if self._count == 0:
                return RawStats(nan, nan, 0, 0.0, np.zeros(1, np.int64), True, nonfinite)
            return RawStats(
                self._vmin, self._vmax, self._count, 0.0, self._counts, False, nonfinite
            )
        unsigned = np.dtype(f"u{self.dtype.itemsize}")
        values = np.arange(self._counts.size, dtype=unsigned).view(self.dtype)
        order = np.argsort(values, kind="stable")  # signed types: negative values first
        counts = self._counts[order]
        lo = int(values[order[0]])
        nz = np.nonzero(counts)[0]
        total = int(counts.sum())
        if total == 0:
            return RawStats(float("nan"), float("nan"), 0, 0.0, counts, True, 0)
        return RawStats(float(lo + nz[0]), float(lo + nz[-1]), total, float(lo), counts, True, 0)


def raw_stats(volumes: Callable[[], Iterable[np.ndarray]]) -> RawStats:
    """Statistics of finite raw values over every array ``volumes()`` yields, in one pass."""
    builder: StatsBuilder | None = None
    for arr in volumes():
        builder = builder or StatsBuilder(arr.dtype)
        builder.add(arr)
    if builder is None:
        raise ValueError("no volumes to compute statistics on")
    return builder.result()


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
    if _small_int(raw.dtype):
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
        part = slice(start, start + _CHUNK)
        map_part(part)
        if consume:
            release(raw_flat[part])

    starts = range(0, raw_flat.size, _CHUNK)
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
    integral = stats.exact and float(slope).is_integer() and float(inter).is_integer()
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
    if raw.dtype.kind in "iu" and float(slope).is_integer() and float(inter).is_integer():
        return
    for chunk in _chunks(raw):
        vals = chunk.astype(np.float64) * slope + inter
        fin = vals[np.isfinite(vals)]
        if fin.size and not np.all(fin == np.round(fin)):
            raise ValueError(f"{purpose} needs integer values; this volume has fractional values")
