"""In-memory access for code that never writes files (e.g. ML data loaders).

``niftislice.load(path)`` returns a :class:`Volume`; its :meth:`Volume.slices` yields the very
images ``convert`` would write, as arrays, with their geometry.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import OptionError
from .options import ConvertOptions
from .pictures.hooks import Pictures
from .plan import (
    Plan,
    make_plan,
    map_volume,
    output_image,
    read_shown_volume,
    series_volumes,
    view_slabs,
)
from .read import NiftiFile, ReadResult, iter_volumes, open_source
from .slicing import view_block
from .types import View


@dataclass(frozen=True)
class Slice:
    """One display-ready image and where its pixels are in the world."""

    view: View
    index: int  # slice index along the view's RAS+ axis
    volume: int  # index of the 3D volume in a 4D series (0 for 3D)
    image: np.ndarray  # (H, W) or (H, W, C); uint8/uint16 pixels
    spacing_mm: tuple[float, float]  # (column, row) mm per pixel
    pixel_to_world: np.ndarray  # 4x4: (column, row, 0, 1) -> world mm


class Volume:
    """One 3D volume of a NIfTI file, windowed once, ready to be sliced in any view."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        options: ConvertOptions = ConvertOptions(),
        volume: int | None = 0,
        *,
        plan: Plan | None = None,
        raw: np.ndarray | None = None,
    ) -> None:
        """``volume``: the index of the volume shown in a 4D series (negative from the end;
        None: the first one ``options.volumes`` selects). ``plan``: the plan of this file and
        these options, when the caller made it already
        (it reads every selected volume of a 4D series for the window), and the header it holds
        is not read again; with it, ``raw``: the volume's data, already read (as
        ``iter_volumes`` yields it), for a caller that reads a series once from start to end
        rather than the whole file for each volume."""
        self.path = Path(path)
        self.options = options
        self.file: NiftiFile = open_source(self.path, options.limits) if plan is None else plan.nf
        n = self.file.n_volumes
        if volume is None:  # the first volume the options select, as convert's first images
            volume = next(iter(options.volumes.indices(n)), 0)
        if not -n <= volume < n:
            raise OptionError(f"volume: {volume} is out of range (the file has {n} volume(s))")
        t = volume % n  # -1 is the last volume, as in Python
        read = ReadResult()
        if plan is None:
            # one window for the whole series, as convert makes it, whichever volume is shown;
            # its statistics are gathered while the shown volume is read
            self.raw, stats = read_shown_volume(self.file, options, t, read)
            volumes = series_volumes(self.file, options, {t: self.raw})
            plan = make_plan(self.file, options, volumes, stats)
        elif raw is not None:
            self.raw = raw
        else:
            self.raw = next(a for i, a in iter_volumes(self.file, [t], read) if i == t)
        self.volume_index = t
        self.sha256 = read.sha256
        self.plan: Plan = plan
        self._mapped = map_volume(self.plan, self.raw)
        # a view of the pixels in canonical order, for :meth:`slice`: made once, not per slice
        # (nibabel's apply_orientation, about 40 us a call, was 13 % of SliceDataset's time on
        # the benchmark's 4D series)
        self._canonical = self.plan.reo.apply(self._mapped)
        # colour map and overlay, exactly as convert applies them to the written images
        self.pictures = Pictures(self.plan)

    @property
    def affine(self) -> np.ndarray:
        """Affine of the canonical RAS+ grid (voxel index -> world mm)."""
        return self.plan.reo.canonical_affine

    @property
    def spacing_mm(self) -> tuple[float, float, float]:
        return self.plan.reo.spacing_mm

    def data(self) -> np.ndarray:
        """Voxel values in data units (scl_slope/scl_inter applied) on the canonical RAS+ grid."""
        arr = self.plan.reo.apply(self.raw)
        if self.file.is_scaled:
            return arr.astype(np.float32) * np.float32(self.file.slope) + np.float32(
                self.file.inter
            )
        return arr

    def slices(self, view: View | str) -> Iterator[Slice]:
        v = View(view)
        if v not in self.plan.geometries:
            raise OptionError(f"view {v.value} was not selected in the options")
        smp = self.plan.samplings[v]
        paint = self.pictures.painter(v)
        for slab in view_slabs(self.plan, self._mapped, v):
            for k in slab.indices:
                yield Slice(
                    v,
                    k,
                    self.volume_index,
                    paint(output_image(self.plan, v, slab.native(k)), k),
                    (smp.col_spacing, smp.row_spacing),
                    self.plan.pixel_to_world(v, k),
                )

    def slice(self, view: View | str, k: int) -> Slice:
        """Slice ``k`` (RAS+ index) of ``view`` alone, the same image :meth:`slices` yields."""
        v = View(view)
        if v not in self.plan.geometries:
            raise ValueError(f"view {v.value} was not selected in the options")
        g, smp = self.plan.geometries[v], self.plan.samplings[v]
        if not 0 <= k < g.n_slices:
            raise IndexError(f"{v.value} slice {k} is outside 0..{g.n_slices - 1}")
        native = view_block(self._canonical, g, k, k + 1)[0]
        return Slice(
            v,
            k,
            self.volume_index,
            self.pictures.painter(v)(output_image(self.plan, v, native), k),
            (smp.col_spacing, smp.row_spacing),
            self.plan.pixel_to_world(v, k),
        )

    def __repr__(self) -> str:
        shape = "x".join(map(str, self.plan.reo.canonical_shape))
        source = "".join(self.plan.reo.source_axcodes)
        return f"Volume({self.path.name!r}, RAS shape {shape}, source {source})"
