"""Which bytes a volume was read from: the sha256 of every file behind it.

The sidecar's ``source.sha256`` lets a user check that the pixels came from the bytes they hold.
NIfTI files are hashed by :mod:`.stream` while they are read. Other formats list their files in a
:class:`SourceDigests`: a reader that streams a file opens it with :meth:`SourceDigests.open`,
which hashes every byte read or skipped on the way and the rest of the file when it is closed
(the voxels are read once); files a library reads itself (nibabel's formats, the header of a
detached pair, DICOM files, whose pixels are read from their middle) are hashed by reading them
once more when the digests are asked for.

One file: ``sha256`` is that file's digest. Several files (``.nhdr`` + data, ``.mhd`` + ``.raw``,
Analyze ``.hdr`` + ``.img``, PAR + REC, the files of a DICOM series in slice order):
``sha256_files`` lists each file's digest, and ``sha256`` is the sha256 of those digests written
as lowercase hex, one per line, each followed by a newline, in that order; as a shell line::

    sha256sum FILES... | cut -d' ' -f1 | sha256sum
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import stream

_SKIP_BLOCK = 1 << 20  # bytes read at a time when skipping (hashed all the same)
COMBINED_NOTE = (
    "sha256 of the sha256_files digests as lowercase hex, one per line with a newline each, "
    "in this order (sha256sum FILES... | cut -d' ' -f1 | sha256sum)"
)


def file_sha256(path: Path) -> str:
    """The sha256 of a file's bytes (read once, in blocks; hashlib.file_digest is 3.11+)."""
    h = hashlib.sha256()
    buf = bytearray(_SKIP_BLOCK)
    view = memoryview(buf)
    with stream.open_regular(path, path.name) as f:
        while n := f.readinto(view):  # type: ignore[attr-defined]
            h.update(view[:n])
    return h.hexdigest()


def combined_sha256(digests: Sequence[str]) -> str:
    """The sha256 of ``digests`` (lowercase hex), one per line, each ending in a newline."""
    return hashlib.sha256("".join(f"{d}\n" for d in digests).encode()).hexdigest()


class HashingFile:
    """A file read forwards whose every byte, read or skipped, goes into a sha256; closing it
    hashes the rest of the file and hands the digest to ``done``. A backward seek (no reader
    here needs one) gives up: the file is then hashed separately."""

    def __init__(self, path: Path, done: Callable[[str], None]) -> None:
        self._f = stream.open_regular(path, path.name)
        self._hash = hashlib.sha256()
        self._pos = 0
        self._done: Callable[[str], None] | None = done

    def readinto(self, b: Any) -> int:
        n = self._f.readinto(b) or 0  # type: ignore[attr-defined]
        self._hash.update(memoryview(b)[:n])
        self._pos += n
        return n

    def read(self, n: int = -1) -> bytes:
        data = self._f.read(n)
        self._hash.update(data)
        self._pos += len(data)
        return data

    def readline(self, limit: int = -1) -> bytes:
        data = self._f.readline(limit)
        self._hash.update(data)
        self._pos += len(data)
        return data

    def tell(self) -> int:
        return self._pos

    def fileno(self) -> int:
        return self._f.fileno()

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        """Forward seeks read (and hash) what they pass over; backward ones give up hashing."""
        if whence == os.SEEK_CUR:
            offset += self._pos
        elif whence == os.SEEK_END:
            offset += os.fstat(self._f.fileno()).st_size
        while self._pos < offset and self.read(min(offset - self._pos, _SKIP_BLOCK)):
            pass
        if offset < self._pos:
            self._done = None
            self._pos = self._f.seek(offset)
        return self._pos

    def close(self, complete: bool = True) -> None:
        """Hash the rest and report the digest (unless ``complete`` is False: an error)."""
        try:
            if complete and self._done is not None:
                while self.read(_SKIP_BLOCK):
                    pass
                self._done(self._hash.hexdigest())
        finally:
            self._f.close()

    def __enter__(self) -> HashingFile:
        return self

    def __exit__(self, kind: object, *_: object) -> None:
        self.close(complete=kind is None)


@dataclass
class SourceDigests:
    """The files one volume is read from (in the order the sidecar lists them) and their
    sha256, filled in as they are read. ``root``: names are recorded relative to it."""

    files: tuple[Path, ...]
    root: Path
    found: dict[Path, str] = field(default_factory=dict)

    def open(self, path: Path) -> HashingFile:
        """``path`` opened for reading, hashed on the way (see :class:`HashingFile`)."""
        return HashingFile(path, lambda digest: self.found.__setitem__(path, digest))

    def summary(self) -> tuple[str, list[dict[str, str]] | None]:
        """``(sha256, sha256_files)``: the file's digest and None for one file; the combined
        digest and one ``{"path", "sha256"}`` per file for several. Files not hashed while
        they were read are read now."""
        for path in self.files:
            if path not in self.found:
                self.found[path] = file_sha256(path)
        if len(self.files) == 1:
            return self.found[self.files[0]], None
        listed = [{"path": _relative(p, self.root), "sha256": self.found[p]} for p in self.files]
        return combined_sha256([item["sha256"] for item in listed]), listed


def _relative(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return os.path.abspath(path)


def distinct(paths: Sequence[Path]) -> tuple[Path, ...]:
    """``paths`` without repeats (a header that holds its own data is listed once)."""
    return tuple(dict.fromkeys(paths))
