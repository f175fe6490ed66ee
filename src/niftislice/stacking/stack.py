"""Images back into a NIfTI volume on the source grid (``niftislice stack``).

The sidecar says how every pixel maps to world space (:mod:`.stacking_geometry` inverts that),
which intensity mapping made the pixels, and the source's shape, affine, qform/sform codes, units
and dtype. Images may come from another program (a network's predicted masks, say) as long as they
keep the exported names (any image extension) and sizes.

Conventions:

- ``values="data"`` inverts the intensity mapping (``data = offset + pixel * scale``) and stores
  the source dtype when the values fit it (scl_slope/inter reset: values are in data units);
  ``values="pixel"`` keeps pixel values in the images' dtype.
- Label exports (and ``interp="nearest"``) are sampled by nearest neighbour, others linearly;
  native-spacing exports land on whole pixels and come back bit for bit either way.
- 4D exports give a 4D result holding the exported volumes in order (a 4D file of one volume
  comes back 4D, X x Y x Z x 1); ``volume=T`` gives the 3D volume ``T`` (the source's volume
  index, as in ``_t0003`` file names).
- Slices without an image are filled with ``fill`` (output units) and reported as a warning,
  except slices left out by ``--skip-empty``, which were blank (pixel 0) and come back as such.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .._nib import nib
from ..errors import InputError, OptionError, ResourceLimitError
from ..naming import sample_name
from ..types import Limits, View
from .geometry import PlaneMap, check_coverage, plane_map, sample, slice_matrices
from .output import check_output_path, nifti_image, output_values, save_atomically
from .record import Sidecar, ViewInfo
from .sources import ImageFinder, find_sidecar, load_sidecar, read_image

log = logging.getLogger(__name__)

_CHANNELS = {"r": 0, "g": 1, "b": 2, "a": 3, "red": 0, "green": 1, "blue": 2, "alpha": 3}


@dataclass(frozen=True)
class StackOptions:
    """How to stack; validated on construction (messages name the option and the value)."""

    view: View | str | None = None  # None: the only view, or the one the folder is named after
    values: str = "data"  # "data": invert the intensity mapping; "pixel": keep pixel values
    channel: int | str | None = None  # colour images: which channel (0-3 or r, g, b, a)
    fill: float = 0.0  # value for slices without an image, in output units
    volume: int | None = None  # 4D: one source volume index; None: every exported volume
    interp: str = "auto"  # auto (nearest for labels), nearest or linear
    overwrite: bool = False
    limits: Limits = Limits()  # the sidecar's declared sizes are checked against these

    def __post_init__(self) -> None:
        s = object.__setattr__
        if self.view is not None:
            try:
                s(self, "view", View(str(getattr(self.view, "value", self.view)).strip().lower()))
            except ValueError:
                raise OptionError(
                    f"view: expected axial, coronal or sagittal, got {self.view!r}"
                ) from None
        if self.values not in ("data", "pixel"):
            raise OptionError(f"values: expected data or pixel, got {self.values!r}")
        if self.interp not in ("auto", "nearest", "linear"):
            raise OptionError(f"interp: expected auto, nearest or linear, got {self.interp!r}")
        if self.channel is not None:
            s(self, "channel", _parse_channel(self.channel))
        try:
            fill = float(self.fill)
        except (TypeError, ValueError):
            fill = math.nan
        if not math.isfinite(fill):
            raise OptionError(f"fill: expected a finite number, got {self.fill!r}")
        s(self, "fill", fill)
        if self.volume is not None and (not isinstance(self.volume, int) or self.volume < 0):
            raise OptionError(f"volume: expected a volume index >= 0, got {self.volume!r}")
        if not isinstance(self.limits, Limits) or self.limits.max_voxels < 1:
            raise OptionError(f"max-voxels: expected a positive number, got {self.limits!r}")


def _parse_channel(value: int | str) -> int:
    t = str(value).strip().lower()
    if t in _CHANNELS:
        return _CHANNELS[t]
    if t.isdigit() and int(t) <= 3:
        return int(t)
    raise OptionError(f"channel: expected 0-3 or r, g, b, a, got {value!r}")


@dataclass(frozen=True)
class StackResult:
    image: nib.Nifti1Image
    path: Path | None
    view: View
    volumes: tuple[int, ...] | None  # source volume indices stacked (None: 3D source)
    images_read: int
    filled_slices: int
    warnings: tuple[str, ...]


def stack_folder(
    folder: str | os.PathLike[str],
    out_path: str | os.PathLike[str] | None = None,
    options: StackOptions = StackOptions(),
    *,
    sidecar: str | os.PathLike[str] | None = None,
) -> StackResult:
    """Stack one view's images in ``folder`` into a volume; write it to ``out_path`` if given."""
    root = Path(folder)
    if not root.is_dir():
        raise InputError("not a folder" if root.exists() else "folder not found")
    out = check_output_path(out_path, options.overwrite) if out_path is not None else None
    sc = load_sidecar(find_sidecar(root, Path(sidecar) if sidecar else None), options.limits)
    if options.values == "data" and sc.intensity.kind == "rgb":
        raise InputError(
            f"{sc.path.name}: a colour (RGB) source cannot be stacked as data; use --values pixel"
        )
    finder = ImageFinder(root)
    view = _choose_view(sc, root, options.view, finder)
    warnings = list(sc.source.notes)
    job = _plan(sc, sc.views[view], options, warnings)
    finder.add(root / job.view.folder)
    acc, holes, img_dtype, read = _read_planes(job, finder, root, options)
    if holes:
        warnings.append(_holes_message(holes, job, options.fill))
    bits = sc.output.bit_depth
    img_bits = img_dtype.itemsize * 8 if img_dtype.kind == "u" else bits
    if options.values == "data" and bits and img_bits != bits:
        warnings.append(
            f"the images are {img_bits}-bit but the export was {bits}-bit; "
            "--values data reads them on the export's pixel scale (--values pixel keeps them)"
        )
    fill = options.fill if holes else None
    data, slope, inter = output_values(
        acc, options.values, fill, sc.intensity, sc.source, img_dtype, warnings
    )
    for pos, k in holes:
        target = data[..., pos] if job.n_out else data
        np.moveaxis(target, job.axis, 0)[job.maps[k].index] = (options.fill - inter) / slope
    if job.volumes is None and options.volume is None:  # 2D, 3D, or 4D+ of one volume
        data = data.reshape(sc.source.shape)
    image = nifti_image(data, sc.source, view, options.values, (slope, inter))
    if out is not None:
        save_atomically(image, out)
    volumes = tuple(job.volumes) if job.volumes is not None else None
    return StackResult(image, out, view, volumes, read, len(holes), tuple(warnings))


@dataclass(frozen=True)
class _Job:
    """What to read for one view: where each slice's image lands, for which volumes."""

    view: ViewInfo
    shape: tuple[int, int, int]  # the source's spatial shape
    maps: list[PlaneMap]  # per slice index k
    axis: int  # the stored source axis the slices run along
    volumes: list[int] | None  # source volume indices to read (None: a 3D source)
    n_out: int  # volumes in the result (0: a 3D result)
    nearest: bool
    blank: frozenset[int]  # slices skipped as empty: no image, pixel 0


def _plan(sc: Sidecar, v: ViewInfo, options: StackOptions, warnings: list[str]) -> _Job:
    shape = sc.source.spatial
    mats = slice_matrices({k: e.pixel_to_world for k, e in v.slices.items()}, v.n_slices)
    where = v.view.value
    maps = [plane_map(mats[k], sc.source.affine, shape, f"{where} slice {k}") for k in mats]
    axis = check_coverage(maps, shape, where)
    volumes = _choose_volumes(sc.output.volumes, options.volume, warnings, sc.source.shape)
    nearest = options.interp == "nearest" or (
        options.interp == "auto" and (sc.output.label or sc.output.nearest)
    )
    n_out = len(volumes) if volumes is not None and options.volume is None else 0
    total = math.prod(shape) * max(n_out, 1)
    if total > options.limits.max_voxels:
        raise ResourceLimitError(
            f"the stacked volume would hold {total:,} voxels, over the limit of "
            f"{options.limits.max_voxels:,} (raise it with --max-voxels, or stack one --volume)"
        )
    blank = v.selected if sc.output.skip_empty else frozenset()
    return _Job(v, shape, maps, axis, volumes, n_out, nearest, blank)


def _read_planes(
    job: _Job, finder: ImageFinder, root: Path, options: StackOptions
) -> tuple[np.ndarray, list[tuple[int, int]], np.dtype, int]:
    """Sample every image onto its source plane: (float32 volume, holes, images' dtype, count).

    Holes are ``(volume position, slice k)`` without an image.
    """
    v = job.view
    acc = np.zeros(job.shape + ((job.n_out,) if job.n_out else ()), dtype=np.float32)
    holes: list[tuple[int, int]] = []
    img_dtype: np.dtype | None = None
    read = 0
    for pos, t in enumerate(job.volumes if job.volumes is not None else [None]):
        planes = np.moveaxis(acc[..., pos] if job.n_out else acc, job.axis, 0)  # writes land in acc
        for k, pm in enumerate(job.maps):
            entry = v.slices.get(k)
            name = entry.file_of(t) if entry is not None else None
            path = finder.find(name, sample_name(name, t)) if name is not None else None
            if path is None:
                if name is not None or k not in job.blank:  # blank: skipped as empty, stays 0
                    holes.append((pos, k))
                continue
            img = read_image(path, root, (v.width, v.height), options.channel)
            img_dtype = img.dtype if img_dtype is None else np.promote_types(img_dtype, img.dtype)
            planes[pm.index] = sample(img, pm, job.nearest)
            read += 1
    if read == 0 or img_dtype is None:
        first = next(iter(v.slices.values()))
        example = first.file_of(job.volumes[0] if job.volumes else None)
        raise InputError(
            f"no {v.view.value} images in this folder or its {v.folder}/ "
            f"sub-folder (looked for the sidecar's names, e.g. {example})"
        )
    return acc, holes, img_dtype, read


# --------------------------------------------------------------------------------------------
# choosing what to stack


def _choose_view(
    sc: Sidecar, root: Path, requested: View | str | None, finder: ImageFinder
) -> View:
    names = [v.value for v in sc.views]
    if requested is not None:
        v = View(requested)
        if v not in sc.views:
            raise OptionError(
                f"view: {v.value} was not exported (the sidecar has {', '.join(names)})"
            )
        return v
    if len(sc.views) == 1:
        return next(iter(sc.views))
    folders = {info.folder: view for view, info in sc.views.items()}
    if root.name in folders:
        return folders[root.name]
    present = [
        view
        for view, info in sc.views.items()
        if finder.has_any(root / info.folder, info.names() + info.sample_names())
    ]
    if len(present) == 1:
        return present[0]
    listed = ", ".join(v.value for v in present) if present else ", ".join(names)
    raise OptionError(f"view: {root} holds several views ({listed}); choose one with --view")


def _choose_volumes(
    exported: tuple[int, ...] | None,
    wanted: int | None,
    warnings: list[str],
    shape: tuple[int, ...],
) -> list[int] | None:
    if exported is None:
        if wanted not in (None, 0):
            raise OptionError(f"volume: the source is 3D, there is no volume {wanted}")
        return None
    if wanted is not None:
        if wanted not in exported:
            raise OptionError(f"volume: {wanted} was not exported (exported: {_ranges(exported)})")
        return [wanted]
    n_source = math.prod(shape[3:])
    if len(exported) != n_source:
        warnings.append(
            f"the export holds volumes {_ranges(exported)} of {n_source}; the result has these only"
        )
    if len(shape) > 4:
        warnings.append(
            f"{len(shape)}D source: dimensions beyond the 4th come back flattened into one"
        )
    return list(exported)


# --------------------------------------------------------------------------------------------
# messages


def _holes_message(holes: list[tuple[int, int]], job: _Job, fill: float) -> str:
    by_pos: dict[int, list[int]] = {}
    for pos, k in holes:
        by_pos.setdefault(pos, []).append(k)
    view = job.view.view.value
    if not job.n_out:
        ks = by_pos[next(iter(by_pos))]
        where = f"{len(ks)} of {job.view.n_slices} {view} slices have no image ({_ranges(ks)})"
    else:
        assert job.volumes is not None
        parts = [f"volume {job.volumes[pos]}: {_ranges(ks)}" for pos, ks in sorted(by_pos.items())]
        more = "; ..." if len(parts) > 8 else ""
        where = f"{len(holes)} {view} slice images are missing ({'; '.join(parts[:8])}{more})"
    return f"{where}; filled with {fill:g}"


def _ranges(values: Iterable[int], limit: int = 12) -> str:
    """``[0, 1, 2, 5, 7, 8]`` -> ``0-2, 5, 7-8`` (at most ``limit`` runs)."""
    runs: list[list[int]] = []
    for v in sorted(values):
        if runs and v == runs[-1][1] + 1:
            runs[-1][1] = v
        else:
            runs.append([v, v])
    text = [f"{a}" if a == b else f"{a}-{b}" for a, b in runs[:limit]]
    return ", ".join(text) + (", ..." if len(runs) > limit else "")
