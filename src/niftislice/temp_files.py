"""The temporary file a single output is written to before its rename, and the ones killed runs
left: how they are named, how their writer holds them, and how a dead writer's are recognised.

``<folder>/<name>`` is written as ``<folder>/.niftislice-tmp-<name>-XXXXXXXX<suffix>`` (the
``X`` are ``tempfile.mkstemp``'s), locked with ``flock`` by its writer until renamed or removed.
Why a lock and not a pid: see :func:`niftislice.files.atomic_path`.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import tempfile
from pathlib import Path

from .naming import display_name

log = logging.getLogger(__name__)

TMP_PREFIX = ".niftislice-tmp-"

_RANDOM = "[a-z0-9_]{8}"  # the random part of a tempfile.mkstemp name
_NAME_MAX = 255  # bytes in a file name (Linux, macOS, Windows)


def _temp_prefix(path: Path, suffix: str) -> str:
    """``.niftislice-tmp-<name>-``: the start of ``path``'s temporary file names. ``<name>`` is
    ``path``'s whole name where the temporary name fits in 255 bytes, else its first 40
    characters, ``~`` and a hash of the whole name."""
    tag = path.name
    if len(os.fsencode(f"{TMP_PREFIX}{tag}-12345678{suffix}")) > _NAME_MAX:
        import hashlib  # only for names over ~230 bytes

        tag = f"{tag[:40]}~{hashlib.sha256(os.fsencode(tag)).hexdigest()[:16]}"
    return f"{TMP_PREFIX}{tag}-"


def create_temp(path: Path, suffix: str) -> tuple[int, Path]:
    """A new temporary file for ``path``, locked; its descriptor (the lock) and its path."""
    prefix = _temp_prefix(path, suffix)
    for _ in range(10):
        fd, name = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=path.parent)
        try:  # a writer cleaning dead ones may have found it before it was locked: then again
            if _lock(fd) is not False and os.path.samestat(os.fstat(fd), os.lstat(name)):
                return fd, Path(name)
        except FileNotFoundError:
            pass
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)
    raise OSError(errno.EAGAIN, "its temporary files keep being removed", str(path.parent))


def _lock(fd: int) -> bool | None:
    """``flock`` ``fd`` without waiting: True, False when another holds it, None where the
    system or file system has no such lock."""
    try:
        import fcntl
    except ImportError:  # not POSIX
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError:  # e.g. ENOLCK on a file system without locks
        return None
    return True


def remove_dead_temps(path: Path, suffix: str) -> int:
    """Remove the temporary files of ``path`` (those :func:`create_temp` makes with ``suffix``)
    whose writer is dead: their lock is free. Returns how many."""
    prefix = _temp_prefix(path, suffix)
    name = re.compile(re.escape(prefix) + _RANDOM + re.escape(suffix))
    try:
        with os.scandir(path.parent) as entries:  # among 10,000 other files: 5-10 ms
            found = [
                e.path
                for e in entries
                if e.name.startswith(prefix)
                and name.fullmatch(e.name)
                and e.is_file(follow_symlinks=False)
            ]
    except OSError:
        return 0
    removed = sum(map(_remove_unlocked, found))
    if removed:
        log.info(
            "removed %d temporary file(s) a killed run left for %s",
            removed,
            display_name(str(path)),
        )
    return removed


_PEEK = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)


def _remove_unlocked(name: str) -> bool:
    """Remove the file ``name`` if its lock can be taken (nobody is writing it)."""
    try:
        fd = os.open(name, _PEEK)
    except OSError:
        return False
    try:
        if _lock(fd) and os.path.samestat(os.fstat(fd), os.lstat(name)):
            os.unlink(name)  # still locked: a new writer cannot have taken this name meanwhile
            return True
    except OSError:
        pass
    finally:
        os.close(fd)
    return False
