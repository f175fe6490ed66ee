"""The per-file plan shared by conversion and the in-memory API.

A :class:`Plan` fixes, before any image is made, everything that must hold for the whole file:
the reorientation, the one intensity mapping, each view's geometry and output size. Rendering
then turns one 3D volume (stored order, native dtype) into display-ready images per view.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass

import numpy as np

from .encoding import resize
from .errors import InputError, OptionError
from .intensity import (
    RawStats,
    Window,
    apply_window,
    check_integral,
    identity_window,
    raw_stats,
    resolve_window,
)
from .options import ConvertOptions, Interp, View
from .orientation import Reorientation, reorientation
from .pictures.colormap import centre_window
from .read.nifti import NiftiFile
from .slicing import (
    Sampling,
    ViewGeometry,
    pixel_to_world,
    pixel_to_world_many,
    sampling,
    view_block,
    view_geometry,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Plan:
    nf: NiftiFile
    options: ConvertOptions
    reo: Reorientation
    label: bool
    window: Window | None  # None: RGB data, stored as is
    geometries: dict[View, ViewGeometry]
    samplings: dict[View, Sampling]
    volumes: tuple[int, ...]
    interp: Interp
    warnings: tuple[str, ...]

    @property
    def is_4d(self) -> bool:
        return self.nf.n_volumes > 1

    def slice_indices(self, view: View) -> range:
        return self.options.slices.indices(self.geometries[view].n_slices)  # type: ignore[union-attr]

    def pixel_to_world(self, view: View, k: int) -> np.ndarray:
        return pixel_to_world(
            self.geometries[view], self.samplings[view], k, self.reo.canonical_affine
        )

    def pixel_to_world_many(self, view: View, ks: Sequence[int]) -> np.ndarray:
        g, smp = self.geometries[view], self.samplings[view]
        return pixel_to_world_many(g, smp, ks, self.reo.canonical_affine)


VolumeSource = Callable[[], Iterable[np.ndarray]]


def is_label(nf: NiftiFile, options: ConvertOptions) -> bool:
    return nf.is_label if options.label is None else options.label


def needs_stats(nf: NiftiFile, options: ConvertOptions) -> bool:
    """Whether the plan needs statistics of the raw values (see :func:`make_plan`'s ``stats``)."""
    if nf.rgb_channels:
        return False
    return is_label(nf, options) or options.lossless or options.window.needs_stats  # type: ignore[union-attr]


def make_plan(
    nf: NiftiFile, options: ConvertOptions, volumes: VolumeSource, stats: RawStats | None = None
) -> Plan:
    """Decide everything file-wide. ``volumes()`` yields the selected raw volumes (maybe twice).

    ``stats``, when given, are the statistics of those volumes, already gathered while reading
    them; otherwise they are computed from ``volumes()`` if :func:`needs_stats`.
    """
    warnings = list(nf.warnings)
    selected = tuple(options.volumes.indices(nf.n_volumes))  # type: ignore[union-attr]
    if not selected:
        raise OptionError(f"volumes: {nf.n_volumes} volume(s) in the file, the selection is empty")
    label = is_label(nf, options)
    if label and nf.rgb_channels:
        raise InputError("an RGB volume cannot be a label map")
    reo = reorientation(nf.affine, nf.spatial_shape)
    if reo.is_oblique:
        warnings.append(
            f"oblique affine ({reo.obliquity_deg:.2f} degrees off the closest axes); "
            "images follow the closest canonical axes, not resampled"
        )
    spacing = reo.spacing_mm
    geometries = {
        v: view_geometry(v, reo.canonical_shape, spacing, options.neurological)
        for v in options.views
    }  # type: ignore[union-attr]
    samplings = {v: sampling(g, options.spacing) for v, g in geometries.items()}  # type: ignore[arg-type]
    interp = Interp.NEAREST if label else options.interp
    resampled = [
        v.value
        for v, g in geometries.items()
        if (samplings[v].width, samplings[v].height) != (g.n_cols, g.n_rows)
    ]
    if options.lossless and not label and interp is not Interp.NEAREST and resampled:
        warnings.append(
            f"lossless: {', '.join(resampled)} images are resampled to square pixels "
            f"({interp.value}), "
            "so their values are interpolated; use --spacing native for an exact copy"
        )
    window = _window(nf, options, label, volumes, stats, warnings)
    if window is not None and options.colormap and not label:
        window = centre_window(window, options.colormap)  # diverging maps: symmetric about 0
    if not any(len(options.slices.indices(g.n_slices)) for g in geometries.values()):  # type: ignore[union-attr]
        raise OptionError("slices: the selection is empty in every view")
    return Plan(
        nf, options, reo, label, window, geometries, samplings, selected, interp, tuple(warnings)
    )  # type: ignore[arg-type]


def _window(
    nf: NiftiFile,
    options: ConvertOptions,
    label: bool,
    volumes: VolumeSource,
    stats: RawStats | None,
    warnings: list[str],
) -> Window | None:
    if nf.rgb_channels:
        return None
    spec = options.window
    exact = label or options.lossless
    if not needs_stats(nf, options):
        stats = None
    elif stats is None:
        stats = raw_stats(volumes)
    if stats is not None:
        _check_scaling(nf, stats)
    if exact:
        purpose = "label" if label else "lossless"
        assert stats is not None
        try:
            if options.lossless and not label and _stored_integers_scaled(nf):
                return _stored_integer_window(stats, nf)
            if not stats.exact:
                for arr in volumes():
                    check_integral(arr, nf.slope, nf.inter, purpose)
            return identity_window(
                stats,
                nf.slope,
                nf.inter,
                purpose=purpose,
                bit_depth=16 if options.lossless else options.bit_depth,
            )
        except ValueError as e:
            raise InputError(str(e)) from None
    out_max = 255 if options.bit_depth == 8 else 65535
    window, notes = resolve_window(spec, stats, nf.slope, nf.inter, out_max)  # type: ignore[arg-type]
    warnings.extend(notes)
    if stats is not None and stats.nonfinite:
        warnings.append(
            f"{stats.nonfinite:,} NaN/Inf voxels (NaN and -Inf become 0, +Inf the maximum)"
        )
    return window


def _stored_integers_scaled(nf: NiftiFile) -> bool:
    """Integer voxels with a fractional scl_slope/scl_inter: data values are not whole numbers."""
    return nf.dtype.kind in "iu" and not (
        float(nf.slope).is_integer() and float(nf.inter).is_integer()
    )


def _stored_integer_window(stats: RawStats, nf: NiftiFile) -> Window:
    """Lossless for scaled integer data: ``pixel = stored - offset``, so the stored integers (and,
    through scl_slope/scl_inter, the data) are kept exactly; the window is expressed in data
    units."""
    raw = identity_window(stats, 1.0, 0.0, purpose="lossless (stored integers)", bit_depth=16)
    return Window(
        raw.low * nf.slope + nf.inter,
        raw.high * nf.slope + nf.inter,
        raw.out_max,
        f"lossless: pixel = stored - ({raw.low:g}), data = stored * {nf.slope:g} + {nf.inter:g}",
    )


def _check_scaling(nf: NiftiFile, stats: RawStats) -> None:
    if stats.count == 0 or not nf.is_scaled:
        return
    with np.errstate(over="ignore", invalid="ignore"):
        ends = np.array([stats.vmin, stats.vmax], dtype=np.float64) * nf.slope + nf.inter
    if not np.all(np.isfinite(ends)):
        raise InputError(
            f"scaling overflows: scl_slope {nf.slope:g}, scl_inter {nf.inter:g} take "
            f"raw {stats.vmin:g}..{stats.vmax:g} beyond the float range"
        )


def map_volume(
    plan: Plan, raw: np.ndarray, executor: Executor | None = None, *, consume: bool = False
) -> np.ndarray:
    """Pixel values for one raw volume (stored order), as uint8/uint16 (RGB: unchanged).

    ``consume``: ``raw`` is not needed afterwards; its memory is given back while mapping.
    """
    if plan.window is None:
        return raw
    window, slope, inter = plan.window, plan.nf.slope, plan.nf.inter
    return apply_window(raw, window, slope, inter, executor, consume=consume)


#: Upper bound on one slab of a view's display block (see :func:`view_slabs`).
SLAB_BYTES = 8 << 20


@dataclass(frozen=True)
class Slab:
    """Consecutive slices of a view, in display orientation: ``block[i]`` is slice ``start + i``."""

    start: int
    block: np.ndarray
    indices: list[int]  # the slices to export: the selection, after --skip-empty
    content: list[int]  # of those, the ones with a non-zero pixel (only when asked for)

    def native(self, k: int) -> np.ndarray:
        """Slice ``k`` at its native size (before resampling to the output pixel grid)."""
        return self.block[k - self.start]


def view_slabs(
    plan: Plan,
    mapped: np.ndarray,
    view: View,
    *,
    content: bool = False,
    max_bytes: int | None = None,
) -> Iterator[Slab]:
    """The view's selected slices in slabs of at most about ``max_bytes`` (default
    :data:`SLAB_BYTES`; at least one slice).

    Each slab is one contiguous block transpose; working slab by slab keeps a large volume from
    having a whole transposed copy per view in memory. ``content`` also lists the exported
    slices that are not blank (what a montage picks from).
    """
    g = plan.geometries[view]
    canonical = plan.reo.apply(mapped)
    wanted = list(plan.slice_indices(view))
    channels = mapped.shape[3] if mapped.ndim == 4 else 1
    per_slice = max(1, mapped.itemsize * g.n_rows * g.n_cols * channels)
    skip_empty = plan.options.skip_empty
    limit = SLAB_BYTES if max_bytes is None else max_bytes
    i = 0
    while i < len(wanted):
        start, j = wanted[i], i + 1
        while j < len(wanted) and (wanted[j] - start + 1) * per_slice <= limit:
            j += 1
        ks = wanted[i:j]
        block = view_block(canonical, g, start, ks[-1] + 1)
        filled = [k for k in ks if block[k - start].any()] if (content or skip_empty) else []
        yield Slab(start, block, filled if skip_empty else ks, filled if content else [])
        i = j


def output_image(plan: Plan, view: View, native: np.ndarray) -> np.ndarray:
    """A native slice resampled to the view's output pixel grid."""
    smp = plan.samplings[view]
    return resize(native, smp.width, smp.height, plan.interp)
