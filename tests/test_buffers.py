"""Large buffers give their memory back piece by piece; small ones are plain arrays."""

from __future__ import annotations

import mmap

import numpy as np
import pytest

from niftislice import buffers


def _rss_kib() -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS"))


def test_small_buffers_are_plain_arrays():
    buf = buffers.allocate(1000)
    assert buf.dtype == np.uint8 and buf.shape == (1000,) and buf.flags.writeable
    buffers.release(buf)  # not a memory map: left alone
    buf[:] = 7
    assert (buf == 7).all()


@pytest.mark.skipif(not buffers._CAN_RELEASE, reason="no private anonymous maps here")
def test_released_pieces_leave_the_resident_set_and_the_rest_is_intact():
    n = 64 << 20
    buf = buffers.allocate(n)
    assert buf.flags.writeable and buf.nbytes == n
    buf[:] = 1
    before = _rss_kib()
    values = buf.view(np.int16)  # released through a view of another dtype, as when windowing
    half = values.size // 2
    for start in range(0, half, 1 << 20):
        buffers.release(values[start : start + (1 << 20)])
    freed_mib = (before - _rss_kib()) / 1024
    assert freed_mib > 28, freed_mib  # 32 MiB given back (minus whatever else moved)
    assert (buf[n // 2 :] == 1).all()  # the other half is untouched
    assert (buf[: n // 2 : 4096] == 0).all()  # released pages read as zeros


@pytest.mark.skipif(not buffers._CAN_RELEASE, reason="no private anonymous maps here")
def test_only_whole_pages_inside_the_piece_are_released():
    buf = buffers.allocate(32 << 20)
    buf[:] = 1
    page = mmap.PAGESIZE
    buffers.release(buf[page // 2 : 3 * page + 5])  # pages 1 and 2 lie wholly inside
    assert buf[page - 1] == 1 and buf[page // 2] == 1  # page 0 is shared with the outside
    assert (buf[page : 3 * page] == 0).all()
    assert buf[3 * page] == 1
