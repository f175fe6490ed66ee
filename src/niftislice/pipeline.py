"""The per-file plan shared by conversion and the in-memory API.

A :class:`Plan` fixes, before any image is made, everything that must hold for the whole file:
the reorientation, the one intensity mapping, each view's geometry and output size. Rendering
then turns one 3D volume (stored order, native dtype) into display-ready images per view.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass

import numpy as np

from .colormap import centre_window
from .errors import InputError, OptionError
from .intensity import RawStats, Window, apply_window, check_integral, identity_window, raw_stats, resolve_window
from .loading import NiftiFile
from .options import ConvertOptions, Interp, View
from .orientation import Reorientation, reorientation
from .slicing import (
    Sampling,
    ViewGeometry,
    pixel_to_world,
    pixel_to_world_many,
    sampling,
    view_block,
    view_geometry,
)
from .encoding import resize

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
        return pixel_to_world(self.geometries[view], self.samplings[view], k, self.reo.canonical_affine)

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
    geometries = {v: view_geometry(v, reo.canonical_shape, spacing, options.neurological) for v in options.views}  # type: ignore[union-attr]
    samplings = {v: sampling(g, options.spacing) for v, g in geometries.items()}  # type: ignore[arg-type]
    interp = Interp.NEAREST if label else options.interp
    resampled = [
        v.value for v, g in geometries.items()
        if (samplings[v].width, samplings[v].height) != (g.n_cols, g.n_rows)
    ]
    if options.lossless and not label and interp is not Interp.NEAREST and resampled:
        warnings.append(
            f"lossless: {', '.join(resampled)} images are resampled to square pixels ({interp.value}), "
            "so their values are interpolated; use --spacing native for an exact copy"
        )
    window = _window(nf, options, label, volumes, stats, warnings)
    if window is not None and options.colormap and not label:
        window = centre_window(window, options.colormap)  # diverging maps: symmetric about 0
    if not any(len(options.slices.indices(g.n_slices)) for g in geometries.values()):  # type: ignore[union-attr]
        raise OptionError("slices: the selection is empty in every view")
    return Plan(nf, options, reo, label, window, geometries, samplings, selected, interp, tuple(warnings))  # type: ignore[arg-type]


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
    if not (exact or spec.needs_stats):  # type: ignore[union-attr]
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
            return identity_window(stats, nf.slope, nf.inter, purpose=purpose, bit_depth=16 if options.lossless else options.bit_depth)
        except ValueError as e:
            raise InputError(str(e)) from None
    out_max = 255 if options.bit_depth == 8 else 65535
    window, notes = resolve_window(spec, stats, nf.slope, nf.inter, out_max)  # type: ignore[arg-type]
    warnings.extend(notes)
    if stats is not None and stats.nonfinite:
        warnings.append(f"{stats.nonfinite:,} NaN/Inf voxels (NaN and -Inf become 0, +Inf the maximum)")
    return window


def _stored_integers_scaled(nf: NiftiFile) -> bool:
    """Integer voxels with a fractional scl_slope/scl_inter: data values are not whole numbers."""
    return nf.dtype.kind in "iu" and not (float(nf.slope).is_integer() and float(nf.inter).is_integer())


def _stored_integer_window(stats: RawStats, nf: NiftiFile) -> Window:
    """Lossless for scaled integer data: ``pixel = stored - offset``, so the stored integers (and,
    through scl_slope/scl_inter, the data) are kept exactly; the window is expressed in data units."""
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


def map_volume(plan: Plan, raw: np.ndarray, executor: Executor | None = None) -> np.ndarray:
    """Pixel values for one raw volume (stored order), as uint8/uint16 (RGB: unchanged)."""
    if plan.window is None:
        return raw
    return apply_window(raw, plan.window, plan.nf.slope, plan.nf.inter, executor)


def render_view(
    plan: Plan, mapped: np.ndarray, view: View
) -> tuple[np.ndarray, list[int]]:
    """The view's native display block and the slice indices to export (after --skip-empty)."""
    g = plan.geometries[view]
    block = view_block(plan.reo.apply(mapped), g)
    indices = list(plan.slice_indices(view))
    if plan.options.skip_empty:
        flat = block.reshape(block.shape[0], -1)
        indices = [k for k in indices if flat[k].any()]
    return block, indices


def output_image(plan: Plan, block: np.ndarray, view: View, k: int) -> np.ndarray:
    smp = plan.samplings[view]
    return resize(block[k], smp.width, smp.height, plan.interp)
