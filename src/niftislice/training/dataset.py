"""``SliceDataset``: the exported images as a map-style dataset, without writing files.

Works as is with a PyTorch ``DataLoader`` (with worker processes) and never imports torch:
``len(ds)`` and ``ds[i]`` are all a map-style dataset needs. Items are numpy arrays::

    {"image": (H, W) uint8/uint16 (or (H, W, C)),   exactly the image ``convert`` writes
     "mask":  (H, W) uint8/uint16 label values,     only when masks are given
     "meta":  {"source", "case", "view", "index", "volume",
               "spacing_mm": (2,) float64, "pixel_to_world": (4, 4) float64}}

Only headers are read when the dataset is made (to count the slices); volumes are read when
first asked for and kept in a small LRU cache of each process (each ``DataLoader`` worker has its
own, and the cache is not pickled). Neighbouring indices are slices of the same volume, so a
sampler that keeps a volume's slices together reads each volume once. A 4D series is read as
``convert`` reads it (see :class:`SliceDataset` for its memory). A scan whose voxels cannot be
read fails only when one of its slices is asked for, with its path in the message.
"""

from __future__ import annotations

import dataclasses
import os
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .. import export
from ..batch.discover import check_jobs, discover
from ..errors import InputError, OptionError
from ..options import ConvertOptions
from ..orientation import reorientation
from ..plan import Plan, make_plan, needs_stats, series_volumes
from ..read import NiftiFile, iter_volumes, open_source
from ..slicing import view_geometry
from ..stats import StatsBuilder
from ..types import View
from ..volume import Volume
from .pairing import MaskIndex

PathLike = str | os.PathLike[str]
MasksArg = PathLike | Sequence[PathLike | None] | None
Transform = Callable[[dict[str, Any]], Any]


@dataclasses.dataclass(frozen=True)
class _Held:
    """A 4D series read whole: its plan and its selected volumes (stored order, as read)."""

    file: int
    plan: Plan
    volumes: dict[int, np.ndarray]


@dataclasses.dataclass(frozen=True)
class _Source:
    path: Path
    case: str  # relative case path, as in the exported tree
    mask: Path | None


class SliceDataset:
    """Every exported slice of ``paths`` (files or folders, searched as ``convert`` does).

    ``masks``: a folder of label maps paired by name as ``convert --masks`` pairs them, or one
    path (or None) per scan in discovery order. ``views`` overrides ``options.views``.
    ``cache_size``: volumes kept per process. ``transform``: applied to each item.

    A 4D series (fMRI, DWI...) has one window over all its selected volumes, as ``convert``
    makes it. When those volumes take at most ``niftislice.export.HOLD_BYTES`` (128 MiB, in
    their stored type) the series is decompressed once, on the first request for one of its
    slices, and its volumes are held for the window and every slice, in any order. At most one
    series is held per process (each ``DataLoader`` worker holds its own; nothing of it is
    pickled): it is dropped when another series is read. So memory is about one held series
    plus ``cache_size`` volumes and their pixels. A longer series is read twice, one volume at a
    time: once for its window, then front to back for its slices (going back to an earlier
    volume than the last one read starts a new read).
    """

    def __init__(
        self,
        paths: PathLike | Sequence[PathLike],
        masks: MasksArg = None,
        views: str | Sequence[str | View] | None = None,
        options: ConvertOptions | None = None,
        *,
        allow_missing_masks: bool = False,
        cache_size: int = 4,
        transform: Transform | None = None,
    ) -> None:
        opts = options or ConvertOptions()
        if views is not None:
            opts = dataclasses.replace(opts, views=views)
        if opts.skip_empty:
            raise OptionError("skip-empty: a SliceDataset has a fixed length; filter items instead")
        if opts.pictures.pair:
            raise OptionError("pair: give SliceDataset masks=... instead")
        if int(cache_size) < 1:
            raise OptionError(f"cache_size: expected a positive number, got {cache_size!r}")
        self.options = opts
        self.cache_size = int(cache_size)
        self.transform = transform
        items = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
        jobs = discover(items)
        check_jobs(jobs, items)
        self.sources = _pair(jobs, masks, allow_missing_masks)
        self._index = self._count()
        self._cache: OrderedDict[tuple[int, int], Volume] = OrderedDict()
        self._plans: OrderedDict[int, Plan] = OrderedDict()
        self._cursors: dict[int, tuple[int, Iterator[tuple[int, np.ndarray]]]] = {}
        self._held: _Held | None = None

    # -- the dataset protocol ----------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._index)

    def __getitem__(self, i: int) -> Any:
        if not -len(self) <= i < len(self):
            raise IndexError(f"index {i} out of range for {len(self)} slices")
        f, t, v, k = (int(x) for x in self._index[i])
        src = self.sources[f]
        try:
            item = self._item(f, t, v, k)
        except InputError as e:  # a DataLoader shows only the message: say which scan
            if str(src.path) in str(e):
                raise
            raise type(e)(f"{src.path}: {e}") from e
        return self.transform(item) if self.transform else item

    def _item(self, f: int, t: int, v: int, k: int) -> dict[str, Any]:
        view = self.options.views[v]
        vol = self._volume(f, t)
        s = vol.slice(view, k)
        src = self.sources[f]
        item: dict[str, Any] = {
            "image": s.image,
            "meta": {
                "source": str(src.path),
                "case": src.case,
                "view": view.value,
                "index": k,
                "volume": t,
                "spacing_mm": np.array(s.spacing_mm, dtype=np.float64),
                "pixel_to_world": np.asarray(s.pixel_to_world, dtype=np.float64),
            },
        }
        if src.mask is not None:
            item["mask"] = vol.pictures.painter(view).pair_labels(k)
        return item

    def __getstate__(self) -> dict[str, Any]:
        """Pickled for worker processes without the loaded volumes."""
        state = dict(self.__dict__)
        state["_cache"], state["_plans"], state["_cursors"] = OrderedDict(), OrderedDict(), {}
        state["_held"] = None
        return state

    def __repr__(self) -> str:
        views = ",".join(v.value for v in self.options.views)
        return f"SliceDataset({len(self.sources)} volumes, {len(self)} slices, views {views})"

    # -- helpers -------------------------------------------------------------------------------

    def _count(self) -> np.ndarray:
        """(file, volume, view, slice) of every item, from the headers alone."""
        opts = self.options
        rows: list[np.ndarray] = []
        for f, src in enumerate(self.sources):
            nf = open_source(src.path, opts.limits)
            reo = reorientation(nf.affine, nf.spatial_shape)
            for t in opts.volumes.indices(nf.n_volumes):
                for v, view in enumerate(opts.views):
                    g = view_geometry(view, reo.canonical_shape, reo.spacing_mm, opts.neurological)
                    ks = np.asarray(opts.slices.indices(g.n_slices), dtype=np.int64)
                    block = np.empty((len(ks), 4), dtype=np.int64)
                    block[:] = (f, t, v, 0)
                    block[:, 3] = ks
                    rows.append(block)
        return np.concatenate(rows) if rows else np.empty((0, 4), dtype=np.int64)

    def _options_for(self, f: int) -> ConvertOptions:
        mask = self.sources[f].mask
        if not mask:
            return self.options
        pictures = dataclasses.replace(self.options.pictures, pair=str(mask))
        return dataclasses.replace(self.options, pictures=pictures)

    def _volume(self, f: int, t: int) -> Volume:
        key = (f, t)
        vol = self._cache.get(key)
        if vol is not None:
            self._cache.move_to_end(key)
            return vol
        opts = self._options_for(f)
        path = self.sources[f].path
        plan = self._plans.get(f)  # a series planned already: its header is known
        nf = plan.nf if plan is not None else open_source(path, opts.limits)
        if nf.n_volumes > 1:  # a series: one window for all volumes
            held = self._hold(f, nf, opts)
            if held is not None:
                vol = Volume(path, opts, t, plan=held.plan, raw=held.volumes[t])
            else:  # too long to hold: read front to back
                plan = self._plan(f, nf, opts)
                vol = Volume(path, opts, t, plan=plan, raw=self._read(f, nf, opts, t))
        else:
            vol = Volume(path, opts, t)
        self._cache[key] = vol
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return vol

    def _read(self, f: int, nf: NiftiFile, opts: ConvertOptions, t: int) -> np.ndarray:
        """Volume ``t`` of a series from a read that goes on where the last one stopped (a
        gzip stream cannot seek: reading each volume from the start would cost the whole file
        every time); a volume behind the read starts a new one."""
        cursor = self._cursors.get(f)
        if cursor is None or cursor[0] >= t:
            later = [u for u in opts.volumes.indices(nf.n_volumes) if u >= t]
            cursor = (-1, iter_volumes(nf, later))
        self._cursors = {f: cursor}  # one series read at a time per process
        self._held = None
        last, reader = cursor
        while last < t:
            last, raw = next(reader)
        self._cursors[f] = (last, reader)
        return raw

    def _hold(self, f: int, nf: NiftiFile, opts: ConvertOptions) -> _Held | None:
        """Series ``f`` read whole (once: its window's statistics are gathered as it is
        decompressed, as convert gathers them), the one series this process holds; None when
        its selected volumes do not fit ``export.HOLD_BYTES``."""
        if self._held is not None and self._held.file == f:
            return self._held
        selected = list(opts.volumes.indices(nf.n_volumes))
        if len(selected) * nf.volume_bytes > export.HOLD_BYTES:
            return None
        self._held, self._cursors = None, {}  # the previous series goes before this one comes
        plan = self._plans.get(f)
        builder = StatsBuilder(nf.dtype) if plan is None and needs_stats(nf, opts) else None
        volumes = dict(iter_volumes(nf, selected, None, builder.add if builder else None))
        if plan is None:
            stats = builder.result() if builder else None
            plan = self._remember(f, make_plan(nf, opts, series_volumes(nf, opts, volumes), stats))
        self._held = _Held(f, plan, volumes)
        return self._held

    def _plan(self, f: int, nf: NiftiFile, opts: ConvertOptions) -> Plan:
        """A 4D series' plan, with one window over every selected volume (as convert does)."""
        plan = self._plans.get(f)
        if plan is None:
            plan = self._remember(f, make_plan(nf, opts, series_volumes(nf, opts)))
        return plan

    def _remember(self, f: int, plan: Plan) -> Plan:
        self._plans[f] = plan
        while len(self._plans) > 64:
            self._plans.popitem(last=False)
        return plan


def _pair(jobs: list[Any], masks: MasksArg, allow_missing: bool) -> list[_Source]:
    def case(job: Any) -> str:
        return (job.rel_dir / job.stem).as_posix()

    if masks is None:
        return [_Source(j.path, case(j), None) for j in jobs]
    if isinstance(masks, (str, os.PathLike)):
        index = MaskIndex(masks)
        out = []
        for j in jobs:
            m = index.find(j.path, j.rel_dir)
            if m.path is None and not allow_missing:
                raise InputError(f"{j.path}: {m.reason}")
            out.append(_Source(j.path, case(j), m.path))
        return out
    given = list(masks)
    if len(given) != len(jobs):
        raise OptionError(f"masks: {len(given)} masks for {len(jobs)} scans")
    return [
        _Source(j.path, case(j), Path(m) if m else None) for j, m in zip(jobs, given, strict=True)
    ]
