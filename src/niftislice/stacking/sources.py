"""Finding what ``stack`` reads: the sidecar and the image files named in it.

A folder given to ``stack`` may be an export folder (``OUT/<stem>``, sidecar inside, one sub-folder
per view), one view's folder (sidecar in the parent), or a folder of images written by another
program with the exported names (the sidecar given explicitly). An image may have another image
extension than the export used (a network that writes PNG masks for JPEG inputs). A case folder
of an unpacked WebDataset shard works too: its sidecar is ``sidecar.json`` and its images are
named as in the shard (``axial/0042.png``, see :func:`niftislice.naming.sample_name`).

Nothing outside that folder is read: the sidecar's names are plain names (see :mod:`.record`) and
every image found, links resolved, must lie inside the folder. Nothing is read or decoded beyond
what the sidecar declares: a sidecar over :data:`MAX_SIDECAR_BYTES` is refused unread, an image
file larger than its declared pixels can need is refused unread, and an image whose header
declares another size than the sidecar's is refused before it is decoded.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from .._cv2 import cv2
from ..encoding import decode
from ..errors import InputError, OptionError
from ..read.stream import open_regular
from ..types import Limits
from .imagesize import declared_size
from .record import Sidecar, parse_sidecar

IMAGE_SUFFIXES = (".png", ".tif", ".tiff", ".jpg", ".jpeg", ".webp")
MAX_SIDECAR_BYTES = 256 << 20
_MIB = float(1 << 20)


def find_sidecar(root: Path, given: Path | None) -> Path:
    """The sidecar to use: ``given``, else the one in ``root``, else the one in its parent."""
    if given is not None:
        if not given.is_file():
            raise InputError(f"sidecar {given}: not found")
        return given
    for folder in (root, root.parent):
        found = [p for p in sorted(folder.glob("*.json")) if _is_sidecar(p)]
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            names = ", ".join(p.name for p in found[:5])
            raise InputError(f"{folder}: several sidecars ({names}); choose one with --sidecar")
    for folder in (root, root.parent):  # the export's own sidecar, unreadable: say why
        named = folder / f"{folder.name}.json"
        if named.is_file():
            return named
    raise InputError(
        "no niftislice sidecar (*.json) in this folder or its parent; give --sidecar FILE"
    )


def _is_sidecar(path: Path) -> bool:
    try:
        data = _parse_json(path)
    except InputError:
        return False
    return isinstance(data, dict) and "niftislice" in data and "views" in data


def load_sidecar(path: Path, limits: Limits = Limits()) -> Sidecar:
    """Read, parse and check the sidecar (see :func:`.record.parse_sidecar`)."""
    return parse_sidecar(_parse_json(path), path, limits)


def _parse_json(path: Path) -> Any:
    try:
        with open_regular(path, str(path)) as f:
            size = os.fstat(f.fileno()).st_size
            if size > MAX_SIDECAR_BYTES:
                raise InputError(
                    f"sidecar {path}: {size / _MIB:,.0f} MiB, over the limit of "
                    f"{MAX_SIDECAR_BYTES / _MIB:.0f} MiB; refusing to read it"
                )
            text = f.read(MAX_SIDECAR_BYTES + 1).decode("utf-8")
    except OSError as e:
        raise InputError(f"sidecar {path}: cannot read it ({e.strerror or e})") from None
    except UnicodeDecodeError:
        raise InputError(f"sidecar {path}: not UTF-8 text") from None
    try:
        return json.loads(text)
    except ValueError as e:
        raise InputError(f"sidecar {path}: not valid JSON ({e})") from None
    except RecursionError:
        raise InputError(f"sidecar {path}: nested too deeply to be a sidecar") from None


class ImageFinder:
    """Looks up image files by their exported name, first in a view folder, then in ``root``.

    Every path it returns lies inside ``root`` once links are resolved; a name that resolves
    elsewhere is refused.
    """

    def __init__(self, root: Path) -> None:
        self._root = root
        self._real_root = root.resolve()
        self._dirs: list[Path] = [root]
        self._stems: dict[Path, dict[str, Path]] = {}

    def add(self, folder: Path) -> None:
        """Search ``folder`` (a plain name inside ``root``) before the others."""
        if folder.is_dir() and folder not in self._dirs:
            self._inside(folder)
            self._dirs.insert(0, folder)

    def find(self, name: str, *aliases: str) -> Path | None:
        """The image named ``name`` (any image extension), else the first of ``aliases`` found
        (such as the name an unpacked shard gives it)."""
        for wanted in (name, *aliases):
            for d in self._dirs:
                p = d / wanted
                if p.is_file():
                    return self._inside(p)
            stem = Path(wanted).stem.lower()
            for d in self._dirs:
                hit = self._index(d).get(stem)
                if hit is not None:
                    return self._inside(hit)
        return None

    def has_any(self, folder: Path, names: Iterable[str]) -> bool:
        """Whether ``folder`` or ``root`` holds at least one of ``names`` (any image extension)."""
        stems = {Path(n).stem.lower() for n in names}
        dirs = [d for d in (folder, self._dirs[-1]) if d.is_dir()]
        return any(stems & set(self._index(d)) for d in dirs)

    def _inside(self, path: Path) -> Path:
        real = path.resolve()
        if real != self._real_root and self._real_root not in real.parents:
            raise InputError(
                f"{relative(path, self._root)} leads outside {self._root} (to {real}); "
                "refusing to read it"
            )
        return path

    def _index(self, folder: Path) -> dict[str, Path]:
        if folder not in self._stems:
            index: dict[str, Path] = {}
            for p in sorted(folder.iterdir()) if folder.is_dir() else []:
                if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file():
                    index.setdefault(p.stem.lower(), p)
            self._stems[folder] = index
        return self._stems[folder]


def max_file_bytes(width: int, height: int) -> int:
    """The most an image file of ``width`` x ``height`` pixels can reasonably take: uncompressed
    16-bit RGBA (8 bytes a pixel), PNG/TIFF framing, and 1 MiB of metadata."""
    return 9 * width * height + 8 * height + (1 << 20)


def read_image(path: Path, root: Path, size: tuple[int, int], channel: int | None) -> np.ndarray:
    """One image as a 2D array of ``size`` (width, height): checked, bounded, then decoded."""
    rel = relative(path, root)
    data = _read_bounded(path, rel, size)
    declared = declared_size(data)
    if declared is None:
        raise InputError(f"{rel}: not a readable image (not PNG, JPEG, TIFF or WebP)")
    _check_size(rel, declared, size)
    try:
        img = decode(data)
    except (ValueError, cv2.error):
        raise InputError(f"{rel}: not a readable image") from None
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if img.ndim == 3:
        img = _channel(img, rel, channel)
    _check_size(rel, (img.shape[1], img.shape[0]), size)
    if img.dtype == np.bool_ or img.dtype.kind not in "uif":
        img = img.astype(np.uint8)
    return img


def _read_bounded(path: Path, rel: str, size: tuple[int, int]) -> bytes:
    limit = max_file_bytes(*size)
    try:
        with open_regular(path, str(path)) as f:
            n = os.fstat(f.fileno()).st_size
            if n > limit:
                raise InputError(
                    f"{rel} is {n / _MIB:,.1f} MiB, more than a {size[0]} x {size[1]} image can "
                    f"need ({limit / _MIB:.1f} MiB); refusing to read it"
                )
            return f.read(limit + 1)  # type: ignore[no-any-return]
    except OSError as e:
        raise InputError(f"{rel}: not a readable image ({e.strerror or e})") from None


def _check_size(rel: str, found: tuple[int, int], size: tuple[int, int]) -> None:
    if found != size:
        raise InputError(
            f"{rel} is {found[0]} x {found[1]} pixels; the sidecar expects {size[0]} x {size[1]} "
            "(width x height)"
        )


def _channel(img: np.ndarray, rel: str, channel: int | None) -> np.ndarray:
    n = img.shape[2]
    if channel is None:
        names = "r, g, b, a" if n == 4 else "r, g, b"
        raise InputError(
            f"{rel} is a colour image ({n} channels); "
            f"choose one with --channel (0-{n - 1} or {names})"
        )
    if channel >= n:
        raise OptionError(f"channel: {channel} is out of range, {rel} has {n} channels")
    return img[:, :, channel]


def relative(path: Path, root: Path) -> str:
    """``path`` as the user would name it: relative to ``root`` when inside it."""
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)
