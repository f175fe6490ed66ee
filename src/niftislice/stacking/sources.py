"""Finding what ``stack`` reads: the sidecar and the image files named in it.

A folder given to ``stack`` may be an export folder (``OUT/<stem>``, sidecar inside, one sub-folder
per view), one view's folder (sidecar in the parent), or a folder of images written by another
program with the exported names (the sidecar given explicitly). An image may have another image
extension than the export used (a network that writes PNG masks for JPEG inputs).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from ..encoding import decode
from ..errors import InputError, OptionError

IMAGE_SUFFIXES = (".png", ".tif", ".tiff", ".jpg", ".jpeg", ".webp")
_REQUIRED = {
    "source": ("shape", "affine", "dtype", "voxel_sizes"),
    "intensity": ("kind",),
    "output": (),
    "views": (),
}
_VIEW_REQUIRED = ("image_size", "n_slices_in_volume", "slices")


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
    raise InputError(
        "no niftislice sidecar (*.json) in this folder or its parent; give --sidecar FILE"
    )


def _is_sidecar(path: Path) -> bool:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and "niftislice" in data and "views" in data


def load_sidecar(path: Path) -> dict[str, Any]:
    """Parse and check the fields ``stack`` relies on."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise InputError(f"sidecar {path}: cannot read it ({e.strerror or e})") from None
    except ValueError as e:
        raise InputError(f"sidecar {path}: not valid JSON ({e})") from None
    if not isinstance(data, dict) or "niftislice" not in data:
        raise InputError(f"sidecar {path}: not a niftislice sidecar")
    for section, keys in _REQUIRED.items():
        part = data.get(section)
        if not isinstance(part, dict):
            raise InputError(f"sidecar {path.name}: missing section {section!r}")
        missing = [k for k in keys if k not in part]
        if missing:
            raise InputError(f"sidecar {path.name}: {section} lacks {', '.join(missing)}")
    if not data["views"]:
        raise InputError(f"sidecar {path.name}: no views were exported")
    for name, view in data["views"].items():
        missing = [k for k in _VIEW_REQUIRED if k not in view]
        if missing:
            raise InputError(f"sidecar {path.name}: view {name} lacks {', '.join(missing)}")
    if data["intensity"]["kind"] != "rgb" and "pixel_to_data" not in data["intensity"]:
        raise InputError(f"sidecar {path.name}: intensity lacks pixel_to_data")
    return data


class ImageFinder:
    """Looks up image files by their exported name, first in a view folder, then in ``root``."""

    def __init__(self, root: Path) -> None:
        self._dirs: list[Path] = [root]
        self._stems: dict[Path, dict[str, Path]] = {}

    def add(self, folder: Path) -> None:
        """Search ``folder`` before the others."""
        if folder.is_dir() and folder not in self._dirs:
            self._dirs.insert(0, folder)

    def find(self, name: str) -> Path | None:
        for d in self._dirs:
            p = d / name
            if p.is_file():
                return p
        stem = Path(name).stem.lower()
        for d in self._dirs:
            hit = self._index(d).get(stem)
            if hit is not None:
                return hit
        return None

    def has_any(self, folder: Path, names: Iterable[str]) -> bool:
        """Whether ``folder`` or ``root`` holds at least one of ``names`` (any image extension)."""
        stems = {Path(n).stem.lower() for n in names}
        dirs = [d for d in (folder, self._dirs[-1]) if d.is_dir()]
        return any(stems & set(self._index(d)) for d in dirs)

    def _index(self, folder: Path) -> dict[str, Path]:
        if folder not in self._stems:
            index: dict[str, Path] = {}
            for p in sorted(folder.iterdir()) if folder.is_dir() else []:
                if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file():
                    index.setdefault(p.stem.lower(), p)
            self._stems[folder] = index
        return self._stems[folder]


def read_image(path: Path, root: Path, size: tuple[int, int], channel: int | None) -> np.ndarray:
    rel = _rel(path, root)
    try:
        img = decode(path.read_bytes())
    except (OSError, ValueError) as e:
        raise InputError(
            f"{rel}: not a readable image ({getattr(e, 'strerror', None) or e})"
        ) from None
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if img.ndim == 3:
        n = img.shape[2]
        if channel is None:
            names = "r, g, b, a" if n == 4 else "r, g, b"
            raise InputError(
                f"{rel} is a colour image ({n} channels); "
                f"choose one with --channel (0-{n - 1} or {names})"
            )
        if channel >= n:
            raise OptionError(f"channel: {channel} is out of range, {rel} has {n} channels")
        img = img[:, :, channel]
    h, w = img.shape
    if (w, h) != size:
        raise InputError(
            f"{rel} is {w} x {h} pixels; the sidecar expects {size[0]} x {size[1]} (width x height)"
        )
    if img.dtype == np.bool_ or img.dtype.kind not in "uif":
        img = img.astype(np.uint8)
    return img


def _rel(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)
