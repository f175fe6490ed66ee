"""Large voxel buffers whose memory can be given back piece by piece.

A conversion reads a volume into one buffer, windows it into a smaller pixel array and never reads
the raw values again. numpy cannot free part of an array, so without help the raw volume and its
windowed copy are resident together. Large buffers are therefore private anonymous memory maps,
and :func:`release` hands the pages under an already-windowed piece back to the operating system
(``madvise(MADV_DONTNEED)``): the raw volume shrinks as the windowed copy grows.
"""

from __future__ import annotations

import mmap

import numpy as np

#: Buffers from this size on are memory maps; smaller ones (a 4D series' volumes) are plain
#: arrays, which the allocator reuses from one volume to the next.
LARGE_BYTES = 16 << 20

_CAN_RELEASE = all(hasattr(mmap, n) for n in ("MADV_DONTNEED", "MAP_PRIVATE", "MAP_ANONYMOUS"))


def allocate(nbytes: int) -> np.ndarray:
    """A writable, uninitialised uint8 buffer of ``nbytes`` whose pages :func:`release` can free."""
    if nbytes < LARGE_BYTES or not _CAN_RELEASE:
        return np.empty(nbytes, dtype=np.uint8)
    # MAP_PRIVATE matters: pages of a shared anonymous map survive MADV_DONTNEED
    region = mmap.mmap(-1, nbytes, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    if hasattr(mmap, "MADV_HUGEPAGE"):
        region.madvise(mmap.MADV_HUGEPAGE)  # as numpy does for its large arrays: fewer faults
    return np.frombuffer(region, dtype=np.uint8)


def release(part: np.ndarray) -> None:
    """Give the whole pages under the contiguous array ``part`` back to the operating system.

    Only for arrays inside an :func:`allocate` memory map (others are left alone). The pages read
    as zeros afterwards: call this only on values that will never be read again.
    """
    region = _region(part)
    if region is None or not part.flags.contiguous or part.nbytes == 0:
        return
    start = part.ctypes.data - np.frombuffer(region, dtype=np.uint8).ctypes.data
    page = mmap.PAGESIZE
    first = -(-start // page) * page  # pages that lie wholly inside ``part``
    last = (start + part.nbytes) // page * page
    if last > first:
        region.madvise(mmap.MADV_DONTNEED, first, last - first)


def _region(arr: np.ndarray) -> mmap.mmap | None:
    base: object = arr
    while isinstance(base, np.ndarray):
        base = base.base
    if isinstance(base, memoryview):
        base = base.obj
    return base if isinstance(base, mmap.mmap) else None
