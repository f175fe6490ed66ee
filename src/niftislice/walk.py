"""Searching a folder tree: symlinked sub-folders are followed, each real folder is searched once.

Studies are routinely assembled from links: a study folder linking subjects on other disks,
``data -> /mnt/big/...``, datalad and BIDS derivatives. A search that skips symlinked folders
(``os.walk`` and ``pathlib.Path.rglob`` in Python 3.11 do) converts part of such a study and
says nothing; one that follows them blindly (``os.walk(followlinks=True)``, ``glob``'s ``**``)
never ends on a link to an ancestor. ``find -L`` follows links and reports loops, but searches
a folder once per name it has. :func:`walk` follows links and searches each real folder (told
by ``(st_dev, st_ino)``) once:

- **Which name wins.** A folder reachable by several paths is searched under the one with the
  fewest symlinked folders on it, then the first in sorted order (by path component). So a
  folder that is in the tree itself keeps the name a search without the links would give it
  (``study/sub-01``, not ``study/latest -> sub-01``), and the choice does not depend on the
  order the file system lists entries in: reruns and ``--skip-existing`` find the same names.
- **Loops and repeats** (a link to an ancestor, a cycle of links, two links to one folder) are
  searched once; each later path is one warning line naming it and the path searched.
- **Broken links** (dangling, or looping on themselves) are listed among the files, and named
  in :attr:`Folder.broken` so the caller can say so; a folder that cannot be listed comes back
  with the reason in :attr:`Folder.error`, for the caller to report.
- Hidden entries (names starting with ``.``) are skipped, folders and files alike.

Symlinked *files* are not merged: each is an input under its own name (git-annex datasets
point many names at one stored object, and each name is a different scan of the study).
"""

from __future__ import annotations

import heapq
import logging
import os
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

#: A folder's identity: (st_dev, st_ino), the same whatever path reaches it.
_Identity = tuple[int, int]


@dataclass(frozen=True)
class Folder:
    """One folder searched: its path as reached (``top/rel``, links not resolved), its
    non-hidden entries that are not folders (sorted names), and why it could not be listed."""

    path: Path
    rel: Path
    files: tuple[str, ...] = ()
    broken: tuple[str, ...] = ()  # names among ``files`` that are broken symbolic links
    error: str | None = None  # the folder could not be listed: the reason (``strerror``)


@dataclass(order=True, frozen=True)
class _Reached:
    """A folder path waiting to be searched; ordered as the walk prefers names."""

    links: int  # symlinked folders on the path below ``top``
    parts: tuple[str, ...]  # the path below ``top``
    ancestors: tuple[_Identity, ...]  # the folders it was reached through, ``top`` first


def walk(top: str | os.PathLike[str], *, warn: bool = True) -> list[Folder]:
    """Every folder under ``top`` (``top`` included), each real folder once, in tree order
    (sorted by path component: a folder comes before what it holds). ``warn`` logs one
    warning per folder path not searched again (a loop or a second name)."""
    root = Path(top)
    seen: dict[_Identity, Path] = {}
    found: list[tuple[tuple[str, ...], Folder]] = []
    waiting = [_Reached(0, (), ())]
    while waiting:
        item = heapq.heappop(waiting)
        path = root.joinpath(*item.parts)
        try:
            st = os.stat(path)
        except OSError as e:  # gone since it was listed
            found.append((item.parts, Folder(path, Path(*item.parts), error=_reason(e))))
            continue
        identity = (st.st_dev, st.st_ino)
        if identity in seen:
            if warn:
                _warn_again(path, seen[identity], identity in item.ancestors)
            continue
        seen[identity] = path
        folder, subfolders = _list(path, Path(*item.parts))
        found.append((item.parts, folder))
        ancestors = (*item.ancestors, identity)
        for name, is_link in subfolders:
            heapq.heappush(waiting, _Reached(item.links + is_link, (*item.parts, name), ancestors))
    return [folder for _, folder in sorted(found, key=lambda f: f[0])]


def _list(path: Path, rel: Path) -> tuple[Folder, list[tuple[str, bool]]]:
    """The folder's files and its sub-folders as ``(name, is a symbolic link)``."""
    try:
        with os.scandir(path) as entries:
            listed = sorted(entries, key=lambda e: e.name)
    except OSError as e:
        return Folder(path, rel, error=_reason(e)), []
    files: list[str] = []
    broken: list[str] = []
    subfolders: list[tuple[str, bool]] = []
    for entry in listed:
        if entry.name.startswith("."):
            continue
        try:
            is_dir = entry.is_dir()  # follows a link
        except OSError:  # a link looping on itself (ELOOP)
            is_dir = False
        if is_dir:
            subfolders.append((entry.name, entry.is_symlink()))
            continue
        files.append(entry.name)
        if entry.is_symlink() and not os.path.exists(entry.path):
            broken.append(entry.name)
    return Folder(path, rel, tuple(files), tuple(broken)), subfolders


def _reason(e: OSError) -> str:
    return e.strerror or str(e)


def _warn_again(path: Path, searched: Path, loop: bool) -> None:
    if loop:
        log.warning("%s: a loop of symbolic links back to %s, searched once", path, searched)
    else:
        log.warning("%s: same folder as %s, searched there only", path, searched)


def broken_link_reason(path: Path) -> str:
    """Why a broken symbolic link cannot be followed, naming its target, for one log line:
    ``broken symbolic link to /mnt/big/data (No such file or directory)``."""
    try:
        target = os.readlink(path)
    except OSError:
        target = "?"
    try:
        os.stat(path)
        reason = "no longer broken"
    except OSError as e:
        reason = _reason(e)
    return f"broken symbolic link to {target} ({reason})"
