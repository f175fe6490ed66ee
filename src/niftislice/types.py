"""The small vocabulary every step shares: views, interpolations, image formats, index ranges
and the size limits a reader checks before allocating. No imports from the rest of the package
but :mod:`.errors`, so any step may use them."""

from __future__ import annotations

import os
from dataclasses import dataclass
from enum import Enum
from pathlib import PurePath

from .errors import OptionError


class View(str, Enum):
    """Anatomical views; slices run along the RAS+ axis named in the comment."""

    AXIAL = "axial"  # along z, inferior to superior
    CORONAL = "coronal"  # along y, posterior to anterior
    SAGITTAL = "sagittal"  # along x, left to right


class Interp(str, Enum):
    LINEAR = "linear"
    NEAREST = "nearest"
    CUBIC = "cubic"
    AREA = "area"
    LANCZOS = "lanczos"


class Layout(str, Enum):
    """How a conversion's images are stored: one file each, or WebDataset tar shards."""

    FILES = "files"
    WEBDATASET = "webdataset"


class ImageFormat(str, Enum):
    PNG = "png"
    JPG = "jpg"
    TIF = "tif"
    WEBP = "webp"


#: Output suffixes ``preview`` writes, and the format of each.
PREVIEW_SUFFIXES = {
    ".png": ImageFormat.PNG,
    ".jpg": ImageFormat.JPG,
    ".jpeg": ImageFormat.JPG,
    ".tif": ImageFormat.TIF,
    ".tiff": ImageFormat.TIF,
    ".webp": ImageFormat.WEBP,
}


def preview_format(out_path: str | os.PathLike[str]) -> ImageFormat:
    """The image format for a preview file's suffix; :class:`OptionError` for any other suffix.
    Here, not in ``pictures.preview``, so the command line checks it before anything heavy
    is imported."""
    suffix = PurePath(out_path).suffix.lower()
    if suffix not in PREVIEW_SUFFIXES:
        known = ", ".join(PREVIEW_SUFFIXES)
        got = f"{suffix!r}" if suffix else "a name without a suffix"
        raise OptionError(f"output: a preview is an image ({known}); got {got}")
    return PREVIEW_SUFFIXES[suffix]


ALL_VIEWS: tuple[View, ...] = (View.AXIAL, View.CORONAL, View.SAGITTAL)


@dataclass(frozen=True)
class IndexRange:
    """A Python-style half-open range ``start:stop:step``; ``None`` ends mean the full extent.

    ``middle`` selects the single middle index. Negative values count from the end.
    """

    start: int | None = None
    stop: int | None = None
    step: int = 1
    middle: bool = False

    @classmethod
    def parse(cls, text: str | int | IndexRange, option: str) -> IndexRange:
        if isinstance(text, IndexRange):
            return text
        if isinstance(text, int):
            return cls(text, text + 1 if text != -1 else None)
        t = str(text).strip().lower()
        if t in ("all", ""):
            return cls()
        if t == "middle":
            return cls(middle=True)
        parts = t.split(":")
        try:
            if len(parts) == 1:
                i = int(parts[0])
                return cls(i, i + 1 if i != -1 else None)
            if len(parts) in (2, 3):
                vals = [int(p) if p.strip() else None for p in parts]
                step = vals[2] if len(vals) == 3 and vals[2] is not None else 1
                if step <= 0:
                    raise OptionError(f"{option}: step must be positive, got {text!r}")
                return cls(vals[0], vals[1], step)
        except ValueError:
            pass
        raise OptionError(f"{option}: expected 'all', 'middle', N or A:B[:STEP], got {text!r}")

    @property
    def text(self) -> str:
        """The range as ``--slices`` takes it (:meth:`parse` of it gives it back)."""
        if self.middle:
            return "middle"
        if self.start is None and self.stop is None and self.step == 1:
            return "all"
        ends = ["" if v is None else str(v) for v in (self.start, self.stop)]
        return ":".join(ends) if self.step == 1 else ":".join([*ends, str(self.step)])

    def indices(self, n: int) -> range:
        """The selected indices among ``n`` (empty when the range selects nothing)."""
        if self.middle:
            return range(n // 2, n // 2 + 1) if n else range(0)
        return range(n)[slice(self.start, self.stop, self.step)]


@dataclass(frozen=True)
class Limits:
    """Refuse inputs beyond these before allocating anything."""

    max_voxels: int = 2**31  # per 3D volume
    max_slices: int = 4096  # along any spatial axis
    allow_many_slices: bool = False


#: Named CT windows as (level, width) in Hounsfield units.
CT_PRESETS: dict[str, tuple[float, float]] = {
    "brain": (40.0, 80.0),
    "subdural": (75.0, 215.0),
    "stroke": (32.0, 8.0),
    "bone": (400.0, 1800.0),
    "lung": (-600.0, 1500.0),
    "soft-tissue": (40.0, 400.0),
    "liver": (60.0, 160.0),
    "mediastinum": (50.0, 350.0),
    "abdomen": (40.0, 350.0),
    "temporal-bone": (600.0, 2800.0),
}


#: Colour maps (sequential from OpenCV's tables, then diverging); see :mod:`.pictures.colormap`.
COLORMAPS: tuple[str, ...] = (
    "gray",
    "viridis",
    "hot",
    "inferno",
    "magma",
    "plasma",
    "cividis",
    "parula",
    "turbo",
    "jet",
    "bone",
    "pink",
    "autumn",
    "winter",
    "cool",
    "ocean",
    "bwr",
    "coolwarm",
    "cold-hot",
)
_COLORMAP_ALIASES = {
    "grey": "gray",
    "cold_hot": "cold-hot",
    "coldhot": "cold-hot",
    "seismic": "bwr",
}


def colormap_name(name: object) -> str:
    """The canonical colour map name, or :class:`OptionError` naming the choices."""
    t = str(name).strip().lower()
    t = _COLORMAP_ALIASES.get(t, t)
    if t not in COLORMAPS:
        raise OptionError(
            f"colormap: unknown colour map {name!r} (choose from {', '.join(COLORMAPS)})"
        )
    return t
