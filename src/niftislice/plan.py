"""The per-file plan shared by conversion and the in-memory API.

A :class:`Plan` fixes, before any image is made, everything that must hold for the whole file:
the reorientation, the one intensity mapping, each view's geometry and output size. Rendering
then turns one 3D volume (stored order, native dtype) into display-ready images per view.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, replace

import numpy as np

from .errors import InputError, OptionError
from .mapping import apply_window
from .options import ConvertOptions
from .orientation import Reorientation, reorientation
from .read.nifti import NiftiFile, ReadResult, iter_volumes
from .resample import Sampling, interpolation, resize, sampling
from .slicing import (
    ViewGeometry,
    pixel_to_world,
    pixel_to_world_many,
    view_block,
    view_geometry,
)
from .stats import RawStats, StatsBuilder, raw_stats
from .types import Interp, View
from .window import ValueFacts, Window, WindowChoice, check_integral, choose_window
from .window_spec import WindowSpec, parse_window

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
    window_reason: dict[str, object] | None = None  # why a rule chose the window (sidecar)

    @property
    def is_4d(self) -> bool:
        return self.nf.n_volumes > 1

    def slice_indices(self, view: View) -> range:
        return self.options.slices.indices(self.geometries[view].n_slices)

    def pixel_to_world(self, view: View, k: int) -> np.ndarray:
        return pixel_to_world(
            self.geometries[view], self.samplings[view], k, self.reo.canonical_affine
        )

    def pixel_to_world_many(self, view: View, ks: Sequence[int]) -> np.ndarray:
        g, smp = self.geometries[view], self.samplings[view]
        return pixel_to_world_many(g, smp, ks, self.reo.canonical_affine)


VolumeSource = Callable[[], Iterable[np.ndarray]]


def series_volumes(
    nf: NiftiFile, options: ConvertOptions, held: Mapping[int, np.ndarray] | None = None
) -> VolumeSource:
    """The selected volumes of the series, in file order: what its one window is computed over,
    whichever volume is shown. Volumes already in memory (``held``) are not read again."""
    selected = list(options.volumes.indices(nf.n_volumes))
    have = dict(held or {})

    def volumes() -> Iterator[np.ndarray]:
        missing = [t for t in selected if t not in have]
        reader = iter_volumes(nf, missing) if missing else iter(())
        for t in selected:
            yield have[t] if t in have else next(reader)[1]

    return volumes


def read_shown_volume(
    nf: NiftiFile, options: ConvertOptions, t: int, read: ReadResult | None = None
) -> tuple[np.ndarray, RawStats | None]:
    """Volume ``t`` of a 4D series and, gathered on the same pass over the file, the statistics
    of its selected volumes (what the series' window needs); None when the plan needs none, the
    file is 3D or ``t`` is not selected (the plan then reads what it needs itself)."""
    selected = list(options.volumes.indices(nf.n_volumes))
    if nf.n_volumes == 1 or t not in selected or not needs_stats(nf, options):
        return next(a for i, a in iter_volumes(nf, [t], read) if i == t), None
    builder = StatsBuilder(nf.dtype)
    shown = None
    for i, arr in iter_volumes(nf, selected, read, builder.add):
        if i == t:
            shown = arr
    assert shown is not None
    return shown, builder.result()


def is_label(nf: NiftiFile, options: ConvertOptions) -> bool:
    return nf.is_label if options.label is None else options.label


def needs_stats(nf: NiftiFile, options: ConvertOptions) -> bool:
    """Whether the plan needs statistics of the raw values (see :func:`make_plan`'s ``stats``)."""
    if nf.rgb_channels:
        return False
    return is_label(nf, options) or options.lossless or source_window(nf, options)[0].needs_stats


def source_window(nf: NiftiFile, options: ConvertOptions) -> tuple[WindowSpec, str | None]:
    """The window asked for; ``--window dicom`` becomes the series' first WindowCenter/Width
    (in data units, as DICOM defines them) or, for a source without one, ``auto`` and a
    warning (the second item)."""
    spec: WindowSpec = options.window
    if spec.kind != "source":
        return spec, None
    window = (nf.facts.get("dicom") or {}).get("window")
    if window:
        centre, width = float(window["center"]), float(window["width"])
        return WindowSpec("range", centre - width / 2, centre + width / 2, name="dicom"), None
    note = "--window dicom: the source has no WindowCenter/WindowWidth; using auto"
    return parse_window("auto"), note


def make_plan(
    nf: NiftiFile, options: ConvertOptions, volumes: VolumeSource, stats: RawStats | None = None
) -> Plan:
    """Decide everything file-wide. ``volumes()`` yields the selected raw volumes (maybe twice).

    ``stats``, when given, are the statistics of those volumes, already gathered while reading
    them; otherwise they are computed from ``volumes()`` if :func:`needs_stats`.
    """
    warnings = list(nf.warnings)
    selected = tuple(options.volumes.indices(nf.n_volumes))
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
    }
    samplings = {v: sampling(g, options.spacing) for v, g in geometries.items()}
    interp = interpolation(label, options.interp)
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
    choice = _window(nf, options, label, volumes, stats)
    if choice is not None:
        warnings.extend(choice.warnings)
    if not any(len(options.slices.indices(g.n_slices)) for g in geometries.values()):
        raise OptionError("slices: the selection is empty in every view")
    return Plan(
        nf,
        options,
        reo,
        label,
        None if choice is None else choice.window,
        geometries,
        samplings,
        selected,
        interp,
        tuple(warnings),
        None if choice is None else choice.reason,
    )


def _window(
    nf: NiftiFile,
    options: ConvertOptions,
    label: bool,
    volumes: VolumeSource,
    stats: RawStats | None,
) -> WindowChoice | None:
    """The series' one window (None: RGB data, stored as is); the rules are in :mod:`.window`."""
    if nf.rgb_channels:
        return None
    if not needs_stats(nf, options):
        stats = None
    elif stats is None:
        stats = raw_stats(volumes)
    mode = "label" if label else ("lossless" if options.lossless else "window")

    def check_values(purpose: str) -> None:
        for arr in volumes():
            check_integral(arr, nf.slope, nf.inter, purpose)

    spec, note = source_window(nf, options)
    choice = choose_window(
        spec,
        stats,
        value_facts(nf),
        mode=mode,
        out_max=65535 if options.lossless or options.bit_depth == 16 else 255,
        colormap=options.pictures.colormap,
        check_values=check_values,
    )
    return replace(choice, warnings=(*choice.warnings, note)) if note else choice


def value_facts(nf: NiftiFile) -> ValueFacts:
    """What the window rules need from the header: dtype, scaling, modality and description."""
    h = nf.header
    text = " ".join(
        bytes(h[k]).split(b"\x00")[0].decode("latin-1") for k in ("descrip", "intent_name")
    )
    return ValueFacts(nf.dtype, nf.slope, nf.inter, nf.modality, text.strip())


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
