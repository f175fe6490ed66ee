"""One case's output in two files instead of one file per image.

While a case is converted for the ``webdataset`` layout, every file the conversion would write
(images, paired masks, the sidecar) is appended, as it comes from the thread pool, to
``spool.bin``; ``spool.json`` maps each relative path to its byte range. Creating thousands of
small files is what dominates a series of small images; appending to one open file is not.
The main process then reads the spool and appends the case's samples, in sorted order, to the
shards (see :mod:`.pack`).
"""

from __future__ import annotations

import contextlib
import json
import mmap
import os
import threading
from pathlib import Path, PurePath

from ..errors import OutputError

DATA_NAME = "spool.bin"
INDEX_NAME = "spool.json"


class SpoolWriter:
    """``write(rel, data)`` from any thread; :meth:`close` writes the index (the spool is
    complete only then).

    Files are appended to an in-memory buffer, written out in pieces of about
    :data:`FLUSH_BYTES`: one ``pwrite`` per small image cost 5-8 us of system time (and a
    release and re-take of the GIL) for images that take ~50 us to make, and a 4D series of
    small images has tens of thousands of them.
    """

    #: buffered bytes that make a write to the file; larger files are written directly
    FLUSH_BYTES = 4 << 20

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self._lock = threading.Lock()
        self._index: dict[str, tuple[int, int]] = {}
        self._end = 0  # bytes written or buffered: where the next file goes
        self._buffer = bytearray()
        self._buffer_at = 0  # offset in the file of the buffer's first byte
        try:
            self._fd = os.open(
                self.folder / DATA_NAME,
                os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0),
                0o666,
            )
        except OSError as e:
            raise OutputError(f"cannot create {self.folder / DATA_NAME}: {e.strerror}") from None

    def __call__(self, rel: str | PurePath, data: bytes) -> None:
        self.write(rel, data)

    def write(self, rel: str | PurePath, data: bytes) -> None:
        name = rel if isinstance(rel, str) else PurePath(rel).as_posix()
        size = len(data)
        with self._lock:
            offset = self._end
            self._end += size
            self._index[name] = (offset, size)
            if size < self.FLUSH_BYTES:
                self._buffer += data
                data = b""
            full = self._take() if len(self._buffer) >= self.FLUSH_BYTES or data else None
        if full is not None:  # threads write their own ranges: no shared file position
            self._pwrite(*full)
        if data:
            self._pwrite(data, offset)

    def _take(self) -> tuple[bytearray, int]:
        """The buffer and its offset, leaving an empty buffer after it (hold the lock)."""
        full = (self._buffer, self._buffer_at)
        self._buffer, self._buffer_at = bytearray(), self._end
        return full

    def _pwrite(self, data: bytes | bytearray, pos: int) -> None:
        try:
            view = memoryview(data)
            while view:
                n = os.pwrite(self._fd, view, pos)
                view, pos = view[n:], pos + n
        except OSError as e:
            raise OutputError(f"cannot write {self.folder / DATA_NAME}: {e.strerror}") from None

    def close(self) -> None:
        self._pwrite(*self._take())
        try:
            os.close(self._fd)
            (self.folder / INDEX_NAME).write_text(json.dumps(self._index))
        except OSError as e:
            raise OutputError(f"cannot write {self.folder / INDEX_NAME}: {e.strerror}") from None

    def abort(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self._fd)


class SpoolReader:
    """The files of a complete spool, by relative path."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        try:
            self.index: dict[str, list[int]] = json.loads((self.folder / INDEX_NAME).read_text())
            with open(self.folder / DATA_NAME, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                # mapped, not read: a large case's images need not all be in memory at once
                self._data = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) if size else b""
        except (OSError, ValueError) as e:
            raise OutputError(f"cannot read the converted case in {self.folder}: {e}") from None
        self._view = memoryview(self._data)  # one view, sliced for every member

    def __contains__(self, rel: str) -> bool:
        return rel in self.index

    def get(self, rel: str) -> memoryview:
        offset, size = self.index[rel]
        return self._view[offset : offset + size]

    def close(self) -> None:
        self._view.release()  # slices still alive keep the buffer until they go
        if isinstance(self._data, mmap.mmap):
            # a view still alive keeps the mapping; it goes with the view
            with contextlib.suppress(BufferError):
                self._data.close()
