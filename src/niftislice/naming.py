"""Names: output names from a safe character set, zero-padded so they sort in slice order; and
:func:`display_name`, the one way a name (or a message holding one) is shown to a person."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path

_UNSAFE = re.compile(r"[^A-Za-z0-9._+-]+")
#: input suffixes left out of output names (longest first where one ends another)
_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd", ".mgz", ".mgh", ".mnc")
_SUFFIXES += (".hdr", ".img", ".par", ".rec", ".gz")


def stem_of(path: str | Path) -> str:
    """``sub-01_T1w.nii.gz`` -> ``sub-01_T1w`` (also ``.nrrd``, ``.mha``, ``.mgz``... see
    ``_SUFFIXES``); unsafe characters become ``_``."""
    name = Path(path).name
    lower = name.lower()
    for suffix in _SUFFIXES:
        if lower.endswith(suffix) and len(name) > len(suffix):
            name = name[: -len(suffix)]
            break
    safe = _UNSAFE.sub("_", name).strip("_")
    if not safe or safe.startswith((".", "-")):
        safe = "_" + safe if safe else "volume"
    return safe[:200]


def safe_relative_dir(rel: Path) -> Path:
    """A relative folder made of safe parts only (no ``..``, no absolute anchors)."""
    parts = [stem_of(p) if p not in ("", ".") else "" for p in rel.parts if p not in ("..", "/")]
    return Path(*[p for p in parts if p]) if any(parts) else Path()


def display_name(text: str | os.PathLike[str], *, ascii_only: bool = False) -> str:
    """``text`` with every character a terminal, page or picture would misuse escaped.

    Control and format characters (``\\x1b``, ``\\n``, bidi overrides...) become Python-style
    escapes; bytes that were not valid UTF-8 (which Python keeps as lone surrogates) become
    ``\\xff``; printable text, non-ASCII included, stays. ``ascii_only`` escapes every
    non-ASCII character too (for OpenCV's fonts, which draw ASCII only). Escaping an already
    escaped name changes nothing.
    """
    s = os.fspath(text)
    if s.isascii() and s.isprintable():
        return s
    return "".join(_escape(c, ascii_only) for c in s)


def _escape(c: str, ascii_only: bool) -> str:
    if c.isprintable() and (c.isascii() or not ascii_only):
        return c
    n = ord(c)
    if 0xDC80 <= n <= 0xDCFF:  # an undecodable byte, as os.fsdecode keeps it
        return f"\\x{n - 0xDC00:02x}"
    if c in _SHORT:
        return _SHORT[c]
    return f"\\x{n:02x}" if n < 0x100 else f"\\u{n:04x}" if n < 0x10000 else f"\\U{n:08x}"


_SHORT = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def index_width(n: int) -> int:
    """Digits for zero-padding ``n`` items: at least 4."""
    return max(4, len(str(max(n - 1, 0))))


def image_name(
    stem: str,
    view: str,
    index: int,
    n_slices: int,
    ext: str,
    volume: int | None = None,
    n_volumes: int = 1,
) -> str:
    """``<stem>_<view>_0042.png`` or, for 4D, ``<stem>_t0003_<view>_0042.png``."""
    return image_names(stem, view, [index], n_slices, ext, volume, n_volumes)[index]


def image_names(
    stem: str,
    view: str,
    indices: Iterable[int],
    n_slices: int,
    ext: str,
    volume: int | None = None,
    n_volumes: int = 1,
) -> dict[int, str]:
    """:func:`image_name` of each slice in ``indices`` (the prefix and padding worked out once:
    a 4D series of small images names tens of thousands)."""
    t = f"_t{volume:0{index_width(n_volumes)}d}" if volume is not None else ""
    prefix, width = f"{stem}{t}_{view}_", index_width(n_slices)
    return {k: f"{prefix}{k:0{width}d}{ext}" for k in indices}


def sample_name(file_name: str, volume: int | None = None) -> str:
    """An exported image's name inside a WebDataset shard, below ``<case>/<view>/``:
    ``<stem>_axial_0042.png`` -> ``0042.png``, and for 4D (``volume`` given)
    ``<stem>_t0003_axial_0042.png`` -> ``t0003_0042.png``.

    The index keeps the file name's zero padding, so sample keys sort in slice order; there is
    no dot before the extension, as WebDataset takes everything after the first dot of a
    member's last part as its extension. ``stack`` looks for these names too, so a shard's
    case folder, unpacked, stacks like the files layout's."""
    rest, _, last = file_name.rpartition("_")
    if volume is None:
        return last
    t = rest.rsplit("_", 2)[-2]  # <stem>_t0003_<view>
    return f"{t}_{last}"
