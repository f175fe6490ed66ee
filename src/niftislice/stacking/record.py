"""The sidecar as ``stack`` reads it: checked once, on load, into frozen dataclasses.

Every field ``stack`` uses is validated here, with a message naming the field and the bad value,
so the rest of the stacking code works on typed values (ints, finite float matrices, numpy dtypes,
plain file names) and a malformed or hostile sidecar is one line, never an internal error.
Declared sizes are checked against :class:`~niftislice.types.Limits` (the same limits as
``convert``) before anything is allocated: voxels per volume, slices along an axis, and image
sizes (the exporter's own bounds); ``stack`` checks the whole result once it knows the volumes.

Geometry and scaling are those a volume can have, as ``convert`` reads a NIfTI header: voxel sizes
within :data:`~niftislice.read.validate.VOXEL_MM` (1 nm to 1 km), matrices that place voxels
(:func:`~niftislice.read.validate.affine_problem`: scale-free, so 10 nm voxels pass), slopes that
are normal numbers (scl_slope 0 means no scaling, as in NIfTI-1), a time step >= 0 (0 is common:
"not a time axis"). A qform/sform that cannot place the voxels is left out with a warning, as
``convert`` ignores it; everything else is refused with one line naming the field.

Conventions: ``shape`` is the source's as declared (dims beyond the 3rd included); ``spatial`` its
first three, padded with 1; matrices are 4 x 4 float64 in mm; file names are plain names (no
folder part) looked up in the view's folder or the folder given to ``stack``.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError, ResourceLimitError
from ..naming import sample_name
from ..read.nifti import check_limits
from ..read.validate import affine_problem
from ..resample import MAX_IMAGE_PIXELS, MAX_IMAGE_SIDE
from ..types import Limits, View
from .fields import HEADER_TINY, FieldReader, show

KINDS = ("window", "lossless", "label", "rgb")
_QFORM_FIELDS = ("quatern_b", "quatern_c", "quatern_d", "qoffset_x", "qoffset_y", "qoffset_z")


@dataclass(frozen=True)
class SourceInfo:
    """What the source file was: shape, grid, dtype and the header fields ``stack`` restores."""

    shape: tuple[int, ...]
    spatial: tuple[int, int, int]
    affine: np.ndarray
    dtype: np.dtype | None  # None: a colour (RGB/RGBA) source
    voxel_sizes: tuple[float, ...]  # mm
    time_step: float | None
    units: tuple[str | None, str | None]  # space, time: names as the sidecar gives them
    qform_code: int
    sform_code: int
    qform: np.ndarray | None
    sform: np.ndarray | None
    qform_unused: Mapping[str, float]  # qform_code 0: quaternion fields and qfac as stored
    slope: float  # scl_slope/scl_inter the exporter applied: data = stored * slope + inter
    inter: float
    intent: int
    nifti_version: int
    big_endian: bool
    notes: tuple[str, ...] = ()  # repairs made (a qform/sform left out): warnings for the user

    @property
    def n_volumes(self) -> int:
        return math.prod(self.shape[3:])


@dataclass(frozen=True)
class IntensityInfo:
    """How pixels were made: ``data = offset + pixel * scale`` (window: clipped to low..high)."""

    kind: str  # window, lossless, label or rgb
    scale: float
    offset: float
    low: float | None
    high: float | None


@dataclass(frozen=True)
class OutputInfo:
    volumes: tuple[int, ...] | None  # 4D: the source volumes exported; None: one volume
    label: bool
    nearest: bool  # the export sampled by nearest neighbour
    skip_empty: bool
    bit_depth: int  # 8 or 16; 0 when not recorded


@dataclass(frozen=True)
class SliceInfo:
    index: int  # along the view's RAS+ axis
    pixel_to_world: np.ndarray
    file: str | None  # 3D sources
    files: Mapping[int, str]  # 4D sources: volume index -> file name

    def file_of(self, volume: int | None) -> str | None:
        return self.file if volume is None else self.files.get(volume)


@dataclass(frozen=True)
class ViewInfo:
    view: View
    folder: str
    width: int  # pixels
    height: int
    n_slices: int
    selected: frozenset[int]  # slices asked for (with skip_empty: those without a file were blank)
    slices: Mapping[int, SliceInfo]

    def names(self) -> list[str]:
        """Every image file name the view lists."""
        return [n for s in self.slices.values() for n in ([s.file] if s.file else s.files.values())]

    def sample_names(self) -> list[str]:
        """The same images as an unpacked WebDataset shard names them (``0042.png``)."""
        out = [sample_name(s.file) for s in self.slices.values() if s.file]
        return out + [sample_name(n, t) for s in self.slices.values() for t, n in s.files.items()]


@dataclass(frozen=True)
class Sidecar:
    path: Path
    source: SourceInfo
    intensity: IntensityInfo
    output: OutputInfo
    views: Mapping[View, ViewInfo]


def parse_sidecar(data: object, path: Path, limits: Limits = Limits()) -> Sidecar:
    """Check a parsed sidecar (``json.loads`` output) and return it typed; InputError otherwise."""
    r = FieldReader(path.name)
    top = r.obj(data, "the file")
    if "niftislice" not in top:
        raise InputError(f"sidecar {path}: not a niftislice sidecar")
    source = _source(r, r.obj(top.get("source"), "source"), limits)
    intensity = _intensity(r, r.obj(top.get("intensity"), "intensity"))
    if source.dtype is None and intensity.kind != "rgb":
        raise r.error("intensity.kind", f"{intensity.kind!r} for a colour (rgb) source")
    output = _output(r, top.get("output", {}), source)
    views_raw = r.obj(top.get("views"), "views")
    if not views_raw:
        raise InputError(f"sidecar {path.name}: no views were exported")
    views = {}
    for name, entry in views_raw.items():
        try:
            view = View(name)
        except ValueError:
            raise r.error("views", f"unknown view {show(name)}") from None
        views[view] = _view(r, view, r.obj(entry, f"views.{name}"), source, output)
    return Sidecar(path, source, intensity, output, views)


# --------------------------------------------------------------------------------------------
# sections


def _source(r: FieldReader, s: dict[str, Any], limits: Limits) -> SourceInfo:
    for key in ("shape", "affine", "dtype", "voxel_sizes"):
        if key not in s:
            raise r.error("source", f"lacks {key}")
    raw_shape = r.items(s["shape"], "source.shape", 1, 7)
    shape = tuple(r.whole(v, "source.shape", 1, 2**31 - 1) for v in raw_shape)
    spatial = (*shape[:3], 1, 1)[:3]
    _check_sizes(shape, spatial, limits)
    qform_unused = s.get("qform_unused") or {}
    time = s.get("time_step")
    notes: list[str] = []
    (qform_code, qform), (sform_code, sform) = (_xform(r, s, n, notes) for n in ("qform", "sform"))
    return SourceInfo(
        shape=shape,
        spatial=spatial,  # type: ignore[arg-type]
        affine=r.matrix(s["affine"], "source.affine", invertible=True),
        dtype=_dtype(r, s["dtype"]),
        voxel_sizes=_voxel_sizes(r, s["voxel_sizes"], len(shape)),
        time_step=None if time is None else r.number(time, "source.time_step", 0.0, header=True),
        units=_units(r, s.get("units")),
        qform_code=qform_code,
        sform_code=sform_code,
        qform=qform,
        sform=sform,
        qform_unused={
            k: r.number(v, f"source.qform_unused.{k}", header=True)
            for k, v in r.obj(qform_unused, "source.qform_unused").items()
            if k in (*_QFORM_FIELDS, "qfac") and v is not None
        },
        **_scaling(r, s),
        intent=r.whole(s.get("intent") or 0, "source.intent", 0, 32767),
        nifti_version=r.whole(s.get("nifti_version", 1), "source.nifti_version", 1, 2),
        big_endian=s.get("byte_order") == "big",
        notes=tuple(notes),
    )


def _voxel_sizes(r: FieldReader, value: object, ndim: int) -> tuple[float, ...]:
    """The spatial sizes (the first ``min(ndim, 3)``) within :data:`VOXEL_MM`, as ``convert``
    reads them, so the result is a volume it (and any tool) can place; later entries (unused:
    the time step is its own field) finite and >= 0."""
    sizes = r.items(value, "source.voxel_sizes", min(ndim, 3), 7)
    n = min(ndim, 3)
    return tuple(
        r.voxel_size(v, f"source.voxel_sizes[{i}]")
        if i < n
        else r.number(v, "source.voxel_sizes", 0.0, header=True)
        for i, v in enumerate(sizes)
    )


def _scaling(r: FieldReader, s: dict[str, Any]) -> dict[str, float]:
    """``slope`` and ``inter`` as NIfTI-1 reads scl_slope/scl_inter: "if the scl_slope field is
    nonzero, then each voxel value in the dataset should be scaled", so 0 means no scaling and
    scl_inter is ignored (nibabel: ``get_slope_inter() == (None, None)``). A subnormal slope
    (non-zero, below float32's smallest normal 1.2e-38) is refused: float32 arithmetic flushes it
    to 0 and the stored integers could not be recovered (``convert`` refuses such a file too)."""
    where = "source.scl_slope_applied"
    slope = r.number(s.get("scl_slope_applied", 1.0), where, header=True)
    inter = r.number(s.get("scl_inter_applied", 0.0), "source.scl_inter_applied", header=True)
    if slope == 0:
        return {"slope": 1.0, "inter": 0.0}
    if abs(slope) < HEADER_TINY:
        raise r.error(
            where,
            f"{slope!r} is subnormal (non-zero, below {HEADER_TINY:.3g}, the smallest normal "
            "float32): stored values cannot be recovered through it (0 would mean no scaling)",
        )
    return {"slope": slope, "inter": inter}


def _xform(r: FieldReader, s: dict[str, Any], name: str, notes: list[str]) -> tuple[int, Any]:
    """``(code, matrix)`` of the qform or sform. One in use (code > 0) that cannot place the
    voxels (singular, or voxel sizes outside :data:`VOXEL_MM`) is left out (code 0) with a note,
    as ``convert``'s reader ignores it: a file with a singular sform is one tools choke on."""
    code = r.whole(s.get(f"{name}_code") or 0, f"source.{name}_code", 0, 32767)
    matrix = None if s.get(name) is None else r.matrix(s[name], f"source.{name}")
    problem = affine_problem(matrix) if code > 0 and matrix is not None else None
    if problem is not None:
        notes.append(
            f"the sidecar's source.{name} {problem}; written with {name}_code 0 "
            "(readers then place the volume by the other form, or pixdim)"
        )
        return 0, None
    return code, matrix


def _check_sizes(shape: tuple[int, ...], spatial: tuple[int, int, int], limits: Limits) -> None:
    """The limits ``convert`` checks, before anything is allocated for the stacked volume."""
    try:
        check_limits(spatial, math.prod(shape[3:]), limits)
    except ResourceLimitError as e:
        raise ResourceLimitError(f"the sidecar's source: {e}") from None


def _dtype(r: FieldReader, value: object) -> np.dtype | None:
    if value in ("rgb", "rgba"):
        return None
    try:
        dtype = np.dtype(str(value)) if isinstance(value, str) else None
    except TypeError:
        dtype = None
    if dtype is None or dtype.kind not in "iuf" or dtype.itemsize > 8:
        raise r.error("source.dtype", f"expected a numeric type such as int16, got {show(value)}")
    return dtype


def _units(r: FieldReader, value: object) -> tuple[str | None, str | None]:
    units = r.obj(value or {}, "source.units")
    names = [units.get("space"), units.get("time")]
    for name in names:
        if name is not None and not isinstance(name, str):
            raise r.error("source.units", f"expected unit names, got {show(name)}")
    return names[0], names[1]


def _intensity(r: FieldReader, s: dict[str, Any]) -> IntensityInfo:
    kind = s.get("kind")
    if kind not in KINDS:
        raise r.error("intensity.kind", f"expected one of {', '.join(KINDS)}, got {show(kind)}")
    if kind == "rgb":
        return IntensityInfo("rgb", 1.0, 0.0, None, None)
    if "pixel_to_data" not in s:
        raise r.error("intensity", "lacks pixel_to_data")
    p2d = r.obj(s["pixel_to_data"], "intensity.pixel_to_data")
    where = "intensity.pixel_to_data.scale"
    scale = r.number(p2d.get("scale"), where)
    if scale == 0:
        raise r.error(where, "0 maps every pixel to one value")
    if abs(scale) < sys.float_info.min:  # pixel * scale would underflow: a volume of zeros
        raise r.error(
            where,
            f"{scale!r} is subnormal (non-zero, below {sys.float_info.min:.3g}, the smallest "
            "normal float64): pixels cannot be mapped back through it",
        )
    low, high = s.get("low"), s.get("high")
    return IntensityInfo(
        kind,
        scale,
        r.number(p2d.get("offset"), "intensity.pixel_to_data.offset"),
        None if low is None else r.number(low, "intensity.low"),
        None if high is None else r.number(high, "intensity.high"),
    )


def _output(r: FieldReader, value: object, source: SourceInfo) -> OutputInfo:
    s = r.obj(value, "output")
    volumes = None
    if s.get("volumes") is not None:
        listed = r.items(s["volumes"], "output.volumes", 1, source.n_volumes)
        n = source.n_volumes
        volumes = tuple(r.whole(t, "output.volumes", 0, n - 1) for t in listed)
        if len(set(volumes)) != len(volumes):
            raise r.error("output.volumes", "lists a volume twice")
    elif source.n_volumes > 1:
        raise r.error("output.volumes", f"missing for a source of {source.n_volumes:,} volumes")
    bits = s.get("bit_depth")
    if bits not in (None, 8, 16):
        raise r.error("output.bit_depth", f"expected 8 or 16, got {show(bits)}")
    for key in ("label", "skip_empty"):
        if s.get(key) not in (None, True, False):
            raise r.error(f"output.{key}", f"expected true or false, got {show(s[key])}")
    return OutputInfo(
        volumes=volumes,
        label=bool(s.get("label")),
        nearest=s.get("interpolation") == "nearest",
        skip_empty=bool(s.get("skip_empty")),
        bit_depth=int(bits or 0),
    )


def _view(
    r: FieldReader, view: View, v: dict[str, Any], source: SourceInfo, output: OutputInfo
) -> ViewInfo:
    where = f"views.{view.value}"
    for key in ("image_size", "n_slices_in_volume", "slices"):
        if key not in v:
            raise r.error(where, f"lacks {key}")
    size = r.items(v["image_size"], f"{where}.image_size", 2, 2)
    width, height = (r.whole(n, f"{where}.image_size", 1, MAX_IMAGE_SIDE) for n in size)
    if width * height > MAX_IMAGE_PIXELS:
        raise r.error(f"{where}.image_size", f"{width} x {height} pixels is over the limit")
    n = r.whole(v["n_slices_in_volume"], f"{where}.n_slices_in_volume", 1, 2**31 - 1)
    if n not in source.spatial:
        dims = " x ".join(map(str, source.spatial))
        raise r.error(f"{where}.n_slices_in_volume", f"{n} is not one of the source's {dims}")
    slices: dict[int, SliceInfo] = {}
    for i, raw in enumerate(r.items(v["slices"], f"{where}.slices", 0, n)):
        entry = _slice(r, r.obj(raw, f"{where}.slices[{i}]"), f"{where}.slices[{i}]", n, output)
        if entry.index in slices:
            raise r.error(f"{where}.slices[{i}].index", f"{entry.index} is listed twice")
        slices[entry.index] = entry
    if not slices:
        raise r.error(f"{where}.slices", "no slices are listed")
    return ViewInfo(
        view,
        r.name(v.get("folder", view.value), f"{where}.folder"),
        width,
        height,
        n,
        _selected(r, v.get("selected_slices"), f"{where}.selected_slices", n),
        slices,
    )


def _slice(r: FieldReader, e: dict[str, Any], where: str, n: int, output: OutputInfo) -> SliceInfo:
    index = r.whole(e.get("index"), f"{where}.index", 0, n - 1)
    matrix = r.matrix(e.get("pixel_to_world"), f"{where}.pixel_to_world", invertible=True)
    if output.volumes is None:
        return SliceInfo(index, matrix, r.name(e.get("file"), f"{where}.file"), {})
    files = {
        r.whole(_int_key(t), f"{where}.files", 0, 2**31 - 1): r.name(name, f"{where}.files")
        for t, name in r.obj(e.get("files"), f"{where}.files").items()
    }
    return SliceInfo(index, matrix, None, files)


def _int_key(key: str) -> object:
    return int(key) if key.isdigit() else key


def _selected(r: FieldReader, value: object, where: str, n: int) -> frozenset[int]:
    if value is None:
        return frozenset()
    s = r.obj(value, where)
    start, stop, step = (r.whole(s.get(k), where, -n - 1, n + 1) for k in ("start", "stop", "step"))
    if step == 0:
        raise r.error(where, "step is 0")
    return frozenset(k for k in range(start, stop, step) if 0 <= k < n)
