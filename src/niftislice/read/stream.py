"""Reading a file's bytes once, sequentially: gzip recognised by its magic bytes (not the
suffix), the sha256 of the file computed on the way, and the errors a user can act on.

Fifos, devices and directories are refused without being opened for reading.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import stat
import sys
import types
import zlib
from pathlib import Path
from typing import BinaryIO

from ..errors import InputError

# ISA-L's gzip reader decompresses about twice as fast as the standard library's (it verifies the
# CRC and length the same way); without it, the standard library is used.
_gzip: types.ModuleType
try:
    from isal import igzip as _gzip
    from isal import isal_zlib as _isal_zlib

    _ZLIB_ERRORS: tuple[type[BaseException], ...] = (zlib.error, _isal_zlib.error)
except ImportError:  # pragma: no cover - isal is a regular dependency
    _gzip = gzip
    _ZLIB_ERRORS = (zlib.error,)

GZIP_MAGIC = b"\x1f\x8b"
READ_BLOCK = 1 << 24  # bytes read at a time (a multiple of every itemsize)
SKIP_BLOCK = 1 << 16  # bytes a skip reads at first (see Stream.skip)


def open_regular(path: Path, name: str | None = None) -> BinaryIO:
    """Open a regular file for reading; fifos, devices, sockets and directories are refused
    without being opened for reading (and an open never blocks). Messages call the file
    ``name`` (a detached data file's own name, say), else "the file"."""
    subject = name or "the file"
    try:
        st = os.stat(path)  # follows symlinks: broken or looping links fail here
        if stat.S_ISDIR(st.st_mode):
            raise InputError(f"{subject} is a directory, not a file")
        if not stat.S_ISREG(st.st_mode):
            raise InputError(f"{subject} is {_NOT_REGULAR}")
        # O_NONBLOCK: should the path become a fifo after the check, opening it cannot block
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise InputError(f"{subject} does not exist") from None
    except OSError as e:
        raise InputError(f"cannot open {subject}: {e.strerror or e}") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise InputError(f"{subject} is {_NOT_REGULAR}")
    return os.fdopen(fd, "rb")


_NOT_REGULAR = "not a regular file (a device, fifo or socket); refusing to read it"


class _HashingReader(io.RawIOBase):
    """Passes reads through and hashes every byte, so one read serves gzip and sha256."""

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self.sha256 = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:  # type: ignore[override]
        n = self._raw.readinto(b)
        if n:
            self.sha256.update(memoryview(b)[:n])
        return n or 0

    def close(self) -> None:
        self._raw.close()
        super().close()


class Stream:
    """A sequential reader over the (decompressed) file content."""

    def __init__(self, path: Path) -> None:
        raw = open_regular(path)
        self.file_size = os.fstat(raw.fileno()).st_size
        head = raw.read(2)
        raw.seek(0)
        self.compressed = head == GZIP_MAGIC
        self.hasher = _HashingReader(raw)
        buffered = io.BufferedReader(self.hasher, buffer_size=1 << 20)
        self._f: BinaryIO = (
            _gzip.GzipFile(fileobj=buffered, mode="rb") if self.compressed else buffered  # type: ignore[assignment]
        )
        self.pos = 0

    def readinto(self, view: memoryview) -> int:
        total = 0
        try:
            while total < len(view):
                n = self._f.readinto(view[total : total + READ_BLOCK])
                if not n:
                    break
                total += n
        except (EOFError, OSError, *_ZLIB_ERRORS) as e:
            raise InputError(f"corrupt compressed data: {gzip_reason(e)}") from None
        self.pos += total
        return total

    def read(self, n: int) -> bytes:
        buf = bytearray(n)
        got = self.readinto(memoryview(buf))
        return bytes(buf[:got])

    def skip(self, n: int) -> int:
        """Read and discard up to ``n`` bytes; returns how many.

        The scratch buffer starts at :data:`SKIP_BLOCK` and doubles while it keeps filling, up to
        :data:`READ_BLOCK`: a gzip read asks for (and ISA-L allocates) as much as the buffer
        holds, and :meth:`drain`'s usual remainder is a few bytes. A 16 MiB buffer there cost
        20-35 ms per file, a 64 KiB one 0.05 ms (measured on a 4 x 5 x 7 ``.nii.gz``).
        """
        scratch = memoryview(bytearray(min(n, SKIP_BLOCK)))
        done = 0
        while done < n:
            got = self.readinto(scratch[: n - done])
            if not got:
                break
            done += got
            if got == len(scratch) and len(scratch) < READ_BLOCK and done < n:
                scratch = memoryview(bytearray(min(2 * len(scratch), READ_BLOCK, n - done)))
        return done

    def drain(self) -> int:
        """Read to the end (verifying the gzip CRC and length); returns the bytes left over."""
        return self.skip(sys.maxsize)

    def close(self) -> None:
        self._f.close()
        self.hasher.close()


def gzip_reason(e: BaseException) -> str:
    msg = str(e) or type(e).__name__
    if isinstance(e, EOFError):
        return "the gzip stream ends early (truncated file)"
    if "CRC" in msg:
        return "gzip CRC check failed (the file is damaged)"
    return f"gzip: {msg}"
