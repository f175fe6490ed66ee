"""Statistics of raw voxel values, gathered in one pass: extremes and a histogram for percentiles.

Statistics are computed from raw (unscaled, native dtype) voxels: integer volumes of up to 16 bits
through an exact histogram (no sort, no float copy), everything else through a histogram of the
top 20 bits of each value's float32 bit pattern (order-preserving), which places a percentile
within 0.05 % of its value and needs no first pass for the range.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace

import numpy as np

CHUNK = 1 << 20  # voxels per chunk: temporaries stay under ~10 MiB each
_KEY_BITS = 20  # float histogram: sign, exponent and 11 mantissa bits of float32
_KEY_SHIFT = 32 - _KEY_BITS


def is_small_int(dtype: np.dtype) -> bool:
    """Integer types of at most 16 bits: exact histograms and lookup tables."""
    return dtype.kind in "iu" and dtype.itemsize <= 2


def value_chunks(arr: np.ndarray) -> Iterator[np.ndarray]:
    """Flat pieces of at most :data:`CHUNK` values (views: no copy for contiguous arrays)."""
    flat = arr.reshape(-1, order="A")  # no copy for contiguous arrays
    for start in range(0, flat.size, CHUNK):
        yield flat[start : start + CHUNK]


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

    def count_between(self, lo: float, hi: float) -> int:
        """How many finite values lie in ``[lo, hi]`` (raw units); exact for small integer
        types, otherwise to the width of a bin (0.05 % of the value). Bounds beyond the data,
        infinite ones included (a band in data units divided by a tiny slope), are clamped."""
        lo, hi = max(lo, self.vmin), min(hi, self.vmax)  # NaN stays NaN and fails below
        if self.count == 0 or not hi >= lo:
            return 0
        if self.exact:
            i0 = max(0, math.ceil(lo - self.edges_lo))
            i1 = min(self.counts.size - 1, math.floor(hi - self.edges_lo))
            return int(self.counts[i0 : i1 + 1].sum()) if i1 >= i0 else 0
        k0, k1 = (int(k) for k in _float_keys(np.array([lo, hi], dtype=np.float64)))
        return int(self.counts[k0 : k1 + 1].sum())

    def without_minimum(self) -> tuple[RawStats, int]:
        """These statistics without their lowest value (for float histograms: its bin), and
        how many voxels held it. Unchanged (and 0) when fewer than two values are present."""
        populated = np.flatnonzero(self.counts)
        if populated.size < 2:
            return self, 0
        first, second = int(populated[0]), int(populated[1])
        counts = self.counts.copy()
        n = int(counts[first])
        counts[first] = 0
        vmin = self._bin_value(second, 0.0)
        return replace(self, vmin=vmin, count=self.count - n, counts=counts), n


def _float_keys(values: np.ndarray) -> np.ndarray:
    """Order-preserving 20-bit keys of float32 values (bigger value, bigger key)."""
    f32 = np.finfo(np.float32).max
    if values.dtype.itemsize > 4 or values.dtype.kind != "f":
        values = np.clip(values, -f32, f32)  # beyond float32: the outermost bins
    u = values.astype(np.float32, copy=False).view(np.uint32)
    # negative values get every bit flipped, the others their sign bit set: u ^ mask, with mask
    # all ones or the sign bit; in place, in one temporary (twice as fast as np.where)
    keys = u >> np.uint32(31)
    keys *= np.uint32(0x7FFFFFFF)
    keys |= np.uint32(0x80000000)
    keys ^= u
    keys >>= np.uint32(_KEY_SHIFT)
    return keys


def _add_keys(counts: np.ndarray, keys: np.ndarray) -> None:
    """Count ``keys`` into ``counts``. Binned from the smallest key up: real data fills a narrow
    band of the 2**20 bins, and a full-length ``bincount`` (8 MiB) per piece cost a 4D series of
    small volumes most of its statistics time."""
    lo, hi = int(keys.min()), int(keys.max())
    counts[lo : hi + 1] += np.bincount(keys - np.uint32(lo), minlength=hi - lo + 1)


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
        self.exact = is_small_int(self.dtype)
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
        for chunk in value_chunks(values):
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
        finite = np.isfinite(chunk) if chunk.dtype.kind == "f" else None
        fin = chunk if finite is None or finite.all() else chunk[finite]
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
            if self._buffered >= CHUNK:
                full, self._keys, self._buffered = self._keys, [], 0
        if full:
            keys = np.concatenate(full)
            with self._lock:
                _add_keys(self._counts, keys)

    def result(self) -> RawStats:
        """The statistics of everything added (call once every ``add`` has returned)."""
        if self._keys:
            _add_keys(self._counts, np.concatenate(self._keys))
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
