"""Everything niftislice writes goes through here: one file, one file replaced atomically, one
folder moved into place atomically, and the errors a user can act on.

Output folders are built under a temporary name (``.niftislice-tmp-*``) beside their final place
and renamed into it once complete. Replacing an existing folder is one atomic exchange where the
system has one (Linux ``renameat2(RENAME_EXCHANGE)``); elsewhere it is two renames, and a run
killed between them leaves ``.niftislice-tmp-old-*/<name>``, which :func:`clean_leftovers` puts
back. Leftovers are cleaned only by a run that holds the output folder's lock
(:func:`locked_folder`), so no live run ever loses its temporary folder.

A single file (``stack``'s NIfTI, a ``preview``, the ``--report``) is written as
``.niftislice-tmp-<name>-XXXXXXXX<suffix>`` beside ``<name>`` and renamed onto it. Its writer
holds an exclusive ``flock`` on the temporary file from creating it to renaming it, and the next
writer of ``<name>`` removes the ones whose lock it can take: their writer is dead (see
:func:`atomic_path`).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import logging
import os
import shutil
import stat
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from .errors import OutputError
from .naming import display_name
from .temp_files import TMP_PREFIX, create_temp, remove_dead_temps

log = logging.getLogger(__name__)

OLD_PREFIX = TMP_PREFIX + "old-"

_CREATE = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0)
_DISK_FULL = (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)


def _umask() -> int:
    mask = os.umask(0)  # the only way to read it; done once, at import, before any threads
    os.umask(mask)
    return mask


_UMASK = _umask()
DIR_MODE, FILE_MODE = 0o777 & ~_UMASK, 0o666 & ~_UMASK


def lexists(path: str | os.PathLike[str]) -> bool:
    """Whether anything is at ``path``: a file, a folder, or a symlink (even a dangling one)."""
    return os.path.lexists(path)


def output_error(e: OSError, action: str) -> OutputError:
    """One line for an operating-system error while trying to ``action`` (``"write x.png"``)."""
    reason = e.strerror or str(e)
    if e.errno in _DISK_FULL:
        where = e.filename if isinstance(e.filename, str) else None
        if e.errno == errno.ENOSPC and where and _no_free_inodes(where):
            return OutputError(
                f"no free inodes (file entries) left on the file system, cannot {action}: "
                f"{reason} (delete files there or write elsewhere)"
            )
        return OutputError(f"disk full, cannot {action}: {reason}")
    return OutputError(f"cannot {action}: {reason}")


def _no_free_inodes(path: str) -> bool:
    p = Path(path)
    for folder in (p.parent, *p.parent.parents):
        try:
            st = os.statvfs(folder)
        except OSError:
            continue
        return st.f_files > 0 and st.f_favail == 0
    return False


def write_file(path: Path, data: bytes) -> None:
    """Create (or truncate) ``path`` and write ``data``; failures become :class:`OutputError`.

    ``os.open``/``os.write`` rather than ``open()``: no buffered file object to build and tear
    down, which halves the per-file cost when a conversion writes thousands of small images.
    """
    try:
        _write(path, data)
    except OSError as e:
        raise output_error(e, f"write {path.name}") from None


def _write(path: Path, data: bytes) -> None:
    fd = os.open(path, _CREATE, 0o666)  # the umask applies, as with open()
    try:
        view = memoryview(data)
        while view:  # a regular file takes it all at once unless the disk fills up
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)


def make_folder(path: Path) -> None:
    """``mkdir`` with a one-line :class:`OutputError`."""
    try:
        path.mkdir()
    except OSError as e:
        raise output_error(e, f"create folder {path.name}") from None


@contextlib.contextmanager
def atomic_path(path: Path, suffix: str = "", label: str = "") -> Iterator[Path]:
    """A temporary path beside ``path`` for the block to write (raising ``OSError`` if it
    fails); moved onto ``path`` when the block succeeds, removed otherwise. Failures become
    one-line :class:`OutputError` naming ``path`` (after ``label``, e.g. ``"the report"``).
    A device, FIFO or descriptor link (``--report /dev/stdout``) is itself the path written.

    A run killed in the block (SIGKILL, power loss: no cleanup runs) leaves the temporary file;
    the next :func:`atomic_path` for the same ``path`` and ``suffix`` removes it. Whether its
    writer is dead is known from a lock, not a pid: the writer holds ``flock`` on the file until
    it is renamed or removed, and the kernel drops that lock when the process ends, however it
    ends. A pid (even with its start time) can be reused, belongs to one PID namespace (two
    containers sharing a folder see different ones) and one machine; the lock has none of these
    gaps and needs no extra file. What is removed: only regular files named exactly as this
    function names ``path``'s temporary files, whose lock was free; a file whose lock cannot be
    taken (a live writer, or a file system without locks) stays. NFS emulates ``flock`` with a
    POSIX lock that closing any descriptor of the file drops: there a concurrent writer of the
    same name can remove a live run's file, which then fails with one error, never losing data.
    """
    action = f"write {label} {path}" if label else f"write {path}"
    if _written_in_place(path):
        try:
            yield path
        except OSError as e:
            raise output_error(e, action) from None
        return
    try:
        remove_dead_temps(path, suffix)
        fd, tmp = create_temp(path, suffix)
    except OSError as e:
        raise output_error(e, action) from None
    try:
        os.chmod(tmp, FILE_MODE)  # mkstemp's file is private (0600); outputs get the umask's
        yield tmp
        os.replace(tmp, path)
    except OSError as e:
        raise output_error(e, action) from None
    finally:
        with contextlib.suppress(OSError):  # gone already, or a read-only folder
            tmp.unlink()
        os.close(fd)  # after the unlink: the file is never there unlocked


def _written_in_place(path: Path) -> bool:
    """``path`` is a device, FIFO or socket (``/dev/null``, a named pipe), or a link to an open
    descriptor (``/dev/stdout``): written where it is; replacing it would break it."""
    try:
        if path.is_symlink() and os.readlink(path).startswith(("/proc/", "/dev/fd/")):
            return True
        mode = path.stat().st_mode
    except OSError:
        return False
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))


def replace_file(path: Path, data: bytes, label: str = "") -> None:
    """Write ``path`` atomically: readers see the old content or the new, never half a file."""
    with atomic_path(path, path.suffix, label) as tmp:
        _write(tmp, data)


def make_dirs(path: Path) -> list[Path]:
    """Create ``path`` and missing parents; returns the folders created, deepest first."""
    missing: list[Path] = []
    p = path
    while not lexists(p) and p != p.parent:
        missing.append(p)
        p = p.parent
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        remove_empty(missing)
        raise output_error(e, f"create folder {path}") from None
    return missing


def remove_empty(folders: list[Path]) -> None:
    """Remove each folder that is empty (in order: give them deepest first)."""
    for folder in folders:
        with contextlib.suppress(OSError):
            folder.rmdir()


def temp_folder(final: Path) -> Path:
    """A new temporary folder beside ``final`` (same file system), with the usual mode."""
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{final.name[:40]}-", dir=final.parent))
        tmp.chmod(DIR_MODE)  # mkdtemp makes a private (0700) folder
    except OSError as e:
        raise output_error(e, f"create a folder in {final.parent}") from None
    return tmp


def remove_tree(path: Path) -> None:
    """Remove a folder and its content, or the symlink at ``path`` (never what it points to)."""
    if path.is_symlink():
        with contextlib.suppress(OSError):
            path.unlink()
    else:
        shutil.rmtree(path, ignore_errors=True)


# -- moving a folder into place ------------------------------------------------------------

_AT_FDCWD = -100
_RENAME_NOREPLACE, _RENAME_EXCHANGE = 1, 2


def _renameat2() -> object | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None
    return getattr(libc, "renameat2", None)


_RENAMEAT2 = _renameat2()


def _rename2(src: Path, dst: Path, flags: int) -> bool:
    """``renameat2``; False when the system or file system does not support ``flags``."""
    if _RENAMEAT2 is None:
        return False
    rc = _RENAMEAT2(_AT_FDCWD, os.fsencode(src), _AT_FDCWD, os.fsencode(dst), flags)  # type: ignore[operator]
    if rc == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
        return False
    raise OSError(err, os.strerror(err), str(src), None, str(dst))


def move_into_place(tmp: Path, final: Path, replace: bool) -> None:
    """Rename the complete folder ``tmp`` to ``final``; an existing ``final`` (a folder or a
    symlink, never followed) is refused unless ``replace``, then exchanged in one step where
    possible. ``tmp`` is gone afterwards on success."""
    try:
        if not lexists(final):
            if not _rename2(tmp, final, _RENAME_NOREPLACE):
                os.rename(tmp, final)
            return
    except OSError as e:
        if e.errno not in (errno.EEXIST, errno.ENOTEMPTY):
            raise output_error(e, f"move output into {final}") from None
    if not replace:  # appeared while we worked
        raise OutputError(f"output {final} exists (use --overwrite to replace it)")
    try:
        exchanged = _rename2(tmp, final, _RENAME_EXCHANGE)
    except OSError as e:
        raise output_error(e, f"move output into {final}") from None
    if exchanged:
        remove_tree(tmp)  # now the previous output
        return
    _replace_in_two_steps(tmp, final)


def _replace_in_two_steps(tmp: Path, final: Path) -> None:
    """Without an exchange: hide the previous output, move the new one in, drop the previous.
    A run killed in between leaves ``.niftislice-tmp-old-*/<name>`` for the next to restore."""
    try:
        old = Path(tempfile.mkdtemp(prefix=OLD_PREFIX, dir=final.parent))
    except OSError as e:
        raise output_error(e, f"move output into {final}") from None
    try:
        os.rename(final, old / final.name)
        try:
            os.rename(tmp, final)
        except OSError:
            os.rename(old / final.name, final)  # put the previous output back
            raise
    except OSError as e:
        raise output_error(e, f"move output into {final}") from None
    finally:
        remove_tree(old)


def clean_leftovers(folder: Path) -> int:
    """Remove the temporary folders a killed run left in ``folder``, first restoring any
    previous output that a killed ``--overwrite`` had moved aside; returns how many.

    Only for a caller holding ``folder``'s output lock: otherwise a live run's work is lost.
    """
    try:
        names = [
            e.name
            for e in os.scandir(folder)
            if e.name.startswith(TMP_PREFIX) and e.is_dir(follow_symlinks=False)
        ]  # temporary files are their next writer's to clean (atomic_path): it knows whose
    except OSError:
        return 0
    names.sort(key=lambda n: not n.startswith(OLD_PREFIX))  # restore before anything else
    for name in names:
        path = folder / name
        if name.startswith(OLD_PREFIX):
            _restore(path, folder)
        remove_tree(path)
    if names:
        log.info("removed %d temporary folder(s) left in %s", len(names), display_name(str(folder)))
    return len(names)


def _restore(old: Path, folder: Path) -> None:
    """Put back the previous outputs a killed two-step replacement left in ``old``."""
    for previous in old.iterdir():
        if not lexists(folder / previous.name):
            with contextlib.suppress(OSError):
                os.rename(previous, folder / previous.name)
                log.warning(
                    "restored %s, which an interrupted --overwrite had moved aside",
                    display_name(str(folder / previous.name)),
                )


# -- one run per output folder ---------------------------------------------------------------


@contextlib.contextmanager
def locked_folder(folder: Path) -> Iterator[None]:
    """Hold an advisory lock on ``folder`` (``flock`` on the folder itself: no lock file) for
    the block; another run holding it is refused with one line. Where the system or file
    system has no such lock, the block runs unlocked."""
    try:
        import fcntl
    except ImportError:  # not POSIX
        yield
        return
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | os.O_CLOEXEC)
    except OSError as e:
        raise output_error(e, f"open {folder}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise OutputError(
                f"{folder} is in use by another niftislice run; nothing was converted "
                "(wait for it to finish, or write elsewhere)"
            ) from None
        except OSError as e:  # e.g. a network file system without flock
            log.debug("no lock on %s: %s", display_name(str(folder)), e)
        yield
    finally:
        os.close(fd)  # releases the lock
