"""Conversion options: frozen dataclasses whose fields hold normalised, typed values.

:class:`ConvertOptions` holds what shapes the images; :class:`PictureOptions`, nested in it as
``pictures``, what is made beside them (montages, animations, overlays, colour maps, a viewer
page). Both validate on construction and raise :class:`~niftislice.errors.OptionError` naming the
option and the value.

The constructors also take the command line's text for any field and normalise it
(``ConvertOptions(views="axial,coronal", spacing="1.5", window="40:80")`` holds
``(View.AXIAL, View.CORONAL)``, ``1.5`` and a :class:`WindowSpec`), so a field always reads
back typed. :meth:`ConvertOptions.parse` takes the command line's flat names (the picture options
and ``level``/``width`` among them), as the CLI does.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from enum import Enum
from typing import TYPE_CHECKING, Any, Literal

from .errors import OptionError
from .types import (
    ALL_VIEWS,
    ImageFormat,
    IndexRange,
    Interp,
    Layout,
    Limits,
    View,
    colormap_name,
)
from .window_spec import WindowSpec, parse_window

if TYPE_CHECKING:
    from .training.shards import ShardSize
    from .training.splits import SplitSpec

_FORMAT_ALIASES = {"jpeg": "jpg", "tiff": "tif"}
#: Output pixel size: mm, or "finest" (the finer in-plane voxel size) or "native" (no resampling)
Spacing = float | Literal["finest", "native"]
SpacingLike = float | int | str | None


def _parse_views(value: object) -> tuple[View, ...]:
    if isinstance(value, View):
        return (value,)
    items = value.split(",") if isinstance(value, str) else list(value)  # type: ignore[call-overload]
    views: list[View] = []
    for item in items:
        name = item.value if isinstance(item, View) else str(item).strip().lower()
        if name == "all":
            return ALL_VIEWS
        try:
            v = View(name)
        except ValueError:
            raise OptionError(
                f"views: unknown view {item!r} (choose from axial, coronal, sagittal)"
            ) from None
        if v not in views:
            views.append(v)
    if not views:
        raise OptionError("views: at least one view is needed")
    return tuple(views)


def _parse_spacing(value: SpacingLike) -> Spacing:
    if value is None:
        return "finest"
    if isinstance(value, str):
        t = value.strip().lower()
        if t == "finest" or t == "native":
            return t
        try:
            value = float(t)
        except ValueError:
            raise OptionError(
                f"spacing: expected a number of mm, 'finest' or 'native', got {value!r}"
            ) from None
    f = float(value)
    if not (f > 0 and f < 1e4):
        raise OptionError(f"spacing: must be a positive number of mm, got {value!r}")
    return f


def _enum(cls: type[Enum], value: object, option: str, aliases: dict[str, str] | None = None):
    if isinstance(value, cls):
        return value
    t = str(value).strip().lower()
    t = (aliases or {}).get(t, t)
    try:
        return cls(t)
    except ValueError:
        choices = ", ".join(m.value for m in cls)  # type: ignore[attr-defined]
        raise OptionError(f"{option}: expected one of {choices}, got {value!r}") from None


@dataclass(frozen=True)
class PictureOptions:
    """What is made beside the images (see :mod:`niftislice.pictures`)."""

    montage: bool = False  # one contact sheet per view
    montage_count: int = 16  # tiles of a montage, 1..1000
    gif: bool = False  # an animated GIF per view (Pillow, a core dependency)
    webp_anim: bool = False  # an animated WebP per view
    fps: float = 10.0  # animation frames per second, 0.1..50
    overlay: str | None = None  # label map painted on every image
    overlay_alpha: float = 0.4  # (0, 1]
    overlay_contour: bool = False  # outlines instead of filled labels
    pair: str | None = None  # label map exported into a parallel tree (OUT/images, OUT/masks)
    colormap: str | None = None  # a name of types.COLORMAPS, normalised ("Grey" -> "gray")
    html: bool = False  # a viewer page per input

    def __post_init__(self) -> None:
        s = object.__setattr__
        try:
            count, fps, alpha = int(self.montage_count), float(self.fps), float(self.overlay_alpha)
        except (TypeError, ValueError):
            raise OptionError(
                "montage-count/fps/overlay-alpha: expected numbers, got "
                f"{self.montage_count!r}, {self.fps!r}, {self.overlay_alpha!r}"
            ) from None
        if not 1 <= count <= 1000:
            raise OptionError(f"montage-count: expected 1..1000 tiles, got {self.montage_count!r}")
        if not 0.1 <= fps <= 50:
            raise OptionError(f"fps: expected 0.1..50 frames per second, got {self.fps!r}")
        if not 0 < alpha <= 1:
            raise OptionError(
                f"overlay-alpha: expected a number in (0, 1], got {self.overlay_alpha!r}"
            )
        s(self, "montage_count", count)
        s(self, "fps", fps)
        s(self, "overlay_alpha", alpha)
        for name in ("overlay", "pair"):
            value = getattr(self, name)
            if value is None:
                continue
            if not os.path.isfile(value):
                raise OptionError(f"{name}: no such file {str(value)!r}")
            s(self, name, os.fspath(value))
        if self.overlay_contour and self.overlay is None:
            raise OptionError("overlay-contour: needs --overlay MASK")
        if self.colormap is not None:
            s(self, "colormap", colormap_name(self.colormap))
        if self.gif or self.webp_anim:
            from .extras import require

            require("PIL.Image", "gif" if self.gif else "webp-anim", "an animation")

    @property
    def beside_images(self) -> tuple[str, ...]:
        """The options (command-line names) that write files beside the images."""
        wanted = (self.montage, self.gif, self.webp_anim, self.html)
        return tuple(
            n for n, w in zip(("montage", "gif", "webp-anim", "html"), wanted, strict=True) if w
        )


NO_PICTURES = PictureOptions()
_ALL = IndexRange()

#: PictureOptions' field names: :meth:`ConvertOptions.parse` takes them flat, as the CLI does.
PICTURE_FIELDS = frozenset(f.name for f in fields(PictureOptions))


@dataclass(frozen=True)
class ConvertOptions:
    """Everything that shapes a conversion. Units: mm for spacing, data units for windows."""

    views: tuple[View, ...] = ALL_VIEWS
    neurological: bool = False
    spacing: Spacing = "finest"
    interp: Interp = Interp.LINEAR
    label: bool | None = None  # None: auto-detect from the header intent
    window: WindowSpec = field(default_factory=lambda: parse_window("auto"))
    bit_depth: int = 8
    format: ImageFormat = ImageFormat.PNG
    quality: int | None = None
    slices: IndexRange = _ALL
    skip_empty: bool = False
    volumes: IndexRange = _ALL
    lossless: bool = False
    # run control, also keywords of convert(): they travel with the options to the workers
    jobs: int | None = None
    overwrite: bool = False
    skip_existing: bool = False
    # size limits a reader checks before allocating anything
    max_voxels: int = 2**31
    allow_many_slices: bool = False
    max_slices: int = 4096
    pictures: PictureOptions = NO_PICTURES
    # training sets (see niftislice.training): masks by name, splits, shards
    masks: str | None = None  # folder of label maps paired with the inputs by name
    allow_missing_masks: bool = False
    split: SplitSpec | None = None  # from "train=0.8,val=0.1,test=0.1"
    split_seed: int = 0
    layout: Layout = Layout.FILES
    # from "1GB", "2000" (samples), "500MB,2000"; a ShardSize (default 1 GB, 10000) for webdataset
    shard_size: ShardSize | None = None
    # DICOM: patient name, ID, birth date... go to the sidecar and info only when asked
    keep_phi: bool = False

    @classmethod
    def parse(cls, **values: Any) -> ConvertOptions:
        """Options from the command line's flat names: every field, the picture options
        (``gif=True``, ``overlay="mask.nii.gz"``) and ``level``/``width`` (folded into the
        window), as text or typed values."""
        pictures = {k: values.pop(k) for k in list(values) if k in PICTURE_FIELDS}
        level, width = values.pop("level", None), values.pop("width", None)
        if (level is None) != (width is None):
            raise OptionError("level/width: give both --level and --width, or neither")
        if level is not None:
            if parse_window(values.get("window", "auto")).kind != "auto":
                raise OptionError("level/width: cannot be combined with --window")
            values["window"] = parse_window(f"{level}/{width}", level_width=True)
        if pictures:
            values["pictures"] = PictureOptions(**pictures)
        return cls(**values)

    def __post_init__(self) -> None:
        s = object.__setattr__
        s(self, "views", _parse_views(self.views))
        s(self, "spacing", _parse_spacing(self.spacing))
        s(self, "interp", _enum(Interp, self.interp, "interp"))
        s(self, "format", _enum(ImageFormat, self.format, "format", _FORMAT_ALIASES))
        s(self, "slices", IndexRange.parse(self.slices, "slices"))
        s(self, "volumes", IndexRange.parse(self.volumes, "volumes"))
        s(self, "window", parse_window(self.window))
        if isinstance(self.pictures, Mapping):
            s(self, "pictures", PictureOptions(**self.pictures))
        elif not isinstance(self.pictures, PictureOptions):
            raise OptionError(f"pictures: expected PictureOptions, got {self.pictures!r}")
        if self.bit_depth not in (8, 16):
            raise OptionError(f"bit-depth: expected 8 or 16, got {self.bit_depth!r}")
        fmt = self.format
        if (self.bit_depth == 16 or self.lossless) and fmt not in (
            ImageFormat.PNG,
            ImageFormat.TIF,
        ):
            raise OptionError(f"format: {fmt.value} cannot store 16-bit images; use png or tif")
        if self.quality is not None:
            if not (1 <= int(self.quality) <= 100):
                raise OptionError(f"quality: expected 1..100, got {self.quality!r}")
            if fmt not in (ImageFormat.JPG, ImageFormat.WEBP):
                raise OptionError(f"quality: only applies to jpg and webp, not {fmt.value}")
        if self.jobs is not None and int(self.jobs) < 1:
            raise OptionError(f"jobs: expected a positive number, got {self.jobs!r}")
        if self.overwrite and self.skip_existing:
            raise OptionError("overwrite/skip-existing: choose one")
        if int(self.max_voxels) < 1:
            raise OptionError(f"max-voxels: expected a positive number, got {self.max_voxels!r}")
        _check_pictures(self)
        _check_training(self)

    @property
    def is_training(self) -> bool:
        """Whether a training-set option is set (masks, split or shards)."""
        return bool(self.masks or self.split or self.layout is not Layout.FILES)

    @property
    def effective_jobs(self) -> int:
        if self.jobs:
            return int(self.jobs)
        # the CPUs this process may run on (respects affinity and cpusets), not the machine's
        affinity = getattr(os, "sched_getaffinity", None)
        return len(affinity(0)) if affinity else (os.cpu_count() or 1)

    @property
    def limits(self) -> Limits:
        """The size limits a reader checks before allocating anything."""
        return Limits(self.max_voxels, self.max_slices, self.allow_many_slices)


def _check_pictures(o: ConvertOptions) -> None:
    """The picture options that depend on the image options of ``o``."""
    p = o.pictures
    not_8bit = f"colours need 8-bit images, not bit-depth {o.bit_depth} or --lossless"
    eight_bit = o.bit_depth == 8 and not o.lossless
    if p.colormap is not None and not eight_bit:
        raise OptionError(f"colormap: {not_8bit}")
    if p.overlay is not None and not eight_bit:
        raise OptionError(f"overlay: {not_8bit}")
    if p.pair is not None and o.format not in (ImageFormat.PNG, ImageFormat.TIF):
        raise OptionError(
            f"pair: masks need a lossless format; use --format png or tif, not {o.format.value}"
        )


def _check_training(o: ConvertOptions) -> None:
    """Validate (and normalise) the training-set options of ``o``."""
    s = object.__setattr__
    s(o, "layout", _enum(Layout, o.layout, "layout"))
    # the parsers are imported only when used: a plain conversion starts without them
    if o.shard_size is not None or o.layout is Layout.WEBDATASET:
        from .training.shards import ShardSize

        s(o, "shard_size", ShardSize.parse(o.shard_size))
    if o.split is not None:
        from .training.splits import SplitSpec

        s(o, "split", SplitSpec.parse(o.split))
    try:
        s(o, "split_seed", int(o.split_seed))
    except (TypeError, ValueError):
        raise OptionError(f"split-seed: expected an integer, got {o.split_seed!r}") from None
    if o.masks is not None:
        if not os.path.isdir(o.masks):
            raise OptionError(f"masks: no such folder {str(o.masks)!r}")
        s(o, "masks", os.fspath(o.masks))
        if o.pictures.pair is not None:
            raise OptionError("masks: --pair gives one mask for every input; use one or the other")
        if o.format not in (ImageFormat.PNG, ImageFormat.TIF):
            raise OptionError(
                f"masks: masks need a lossless format; use png or tif, not {o.format.value}"
            )
    elif o.allow_missing_masks:
        raise OptionError("allow-missing-masks: needs --masks FOLDER")
    beside = o.pictures.beside_images
    if o.layout is Layout.WEBDATASET and beside:
        raise OptionError(
            f"layout: --{beside[0]} makes pictures beside the image files; "
            "use it with --layout files"
        )
