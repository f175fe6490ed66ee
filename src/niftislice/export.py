"""Converting one file: plan, render every selected volume and view, write atomically.

Images go to a temporary folder inside the output folder and are moved into place only when all
of them (and the sidecar, written last) succeeded; existing output is kept unless ``overwrite``.
Slices are resampled, encoded and written on a thread pool (OpenCV releases the GIL).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .encoding import EXTENSIONS, encode
from .errors import OutputError
from .files import (
    lexists,
    make_dirs,
    make_folder,
    move_into_place,
    output_error,
    remove_tree,
    temp_folder,
    write_file,
)
from .naming import display_name, image_names, stem_of
from .options import ConvertOptions
from .pictures.hooks import PAIR_TMP, Pictures, pair_roots
from .plan import (
    Plan,
    Slab,
    make_plan,
    map_volume,
    needs_stats,
    output_image,
    series_volumes,
    view_slabs,
)
from .read import NiftiFile, ReadResult, iter_volumes, open_source
from .sidecar import build_sidecar
from .sidecar import dumps as sidecar_dumps
from .stats import RawStats, StatsBuilder
from .types import Layout, View

log = logging.getLogger(__name__)

#: ``--layout webdataset``: where each converted case waits (as a spool) to go into the shards
CASES_DIR = ".niftislice-cases"
ProgressFn = Callable[[int], None]
#: ``write(relative_path, data)``: one output file of a case, relative to its output folder
WriteFn = Callable[[str, bytes], None]


@dataclass
class ConvertResult:
    """What happened to one input."""

    source: str
    status: str  # "converted", "skipped" or "failed"
    output_dir: str | None = None
    images: int = 0
    seconds: float = 0.0
    error: str | None = None
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, object]:
        """A record for the report: names and messages printable (see ``display_name``)."""
        text = {
            "source": display_name(self.source),
            "output_dir": self.output_dir and display_name(self.output_dir),
            "error": self.error and display_name(self.error),
            "warnings": [display_name(w) for w in self.warnings],
        }
        return {**self.__dict__, **text}


def output_roots(out_root: Path, options: ConvertOptions) -> tuple[Path, Path | None]:
    """Where a case's folder goes, and its paired masks' folder (``--pair``/``--masks``)."""
    if options.layout is Layout.WEBDATASET:
        return out_root / CASES_DIR, None  # masks go into the case's spool
    return pair_roots(out_root, options)


def output_dir_for(
    path: Path, out_root: Path, rel_dir: Path = Path(), stem: str | None = None
) -> Path:
    return out_root / rel_dir / (stem or stem_of(path))


def is_complete(out_dir: Path) -> bool:
    """Output is complete when its sidecar exists (the sidecar is written last)."""
    return (out_dir / f"{out_dir.name}.json").is_file()


def convert_file(
    path: str | os.PathLike[str],
    out_root: str | os.PathLike[str],
    options: ConvertOptions = ConvertOptions(),
    *,
    rel_dir: Path = Path(),
    stem: str | None = None,
    threads: int | None = None,
    progress: ProgressFn | None = None,
    part: Any = None,
) -> ConvertResult:
    """Convert one file; raises :class:`NiftisliceError` on failure (nothing is left behind).

    ``part`` names one volume of an input that holds several (a DICOM series of a folder, see
    :class:`~niftislice.batch.discover.Job`); its ``open(limits)`` replaces reading ``path``.
    """
    start = time.perf_counter()
    src = Path(path)
    source = str(src) if part is None else str(part.source)
    out_root, masks_root = output_roots(Path(out_root), options)  # --pair: OUT/images, OUT/masks
    final = output_dir_for(src, out_root, rel_dir, stem)
    masks_final = output_dir_for(src, masks_root, rel_dir, stem) if masks_root else None
    if _keep_existing(final, masks_final, options):
        return ConvertResult(source, "skipped", str(final))
    nf = open_source(src, options.limits) if part is None else part.open(options.limits)
    make_dirs(final.parent)  # the batch removes folders it made for nothing
    tmp = temp_folder(final)
    replace = options.overwrite or options.skip_existing
    try:
        plan, n_images = _write_all(
            nf, options, tmp, final.name, threads or options.effective_jobs, progress
        )
        if masks_final is not None:
            make_dirs(masks_final.parent)
            move_into_place(tmp / PAIR_TMP, masks_final, replace)
        move_into_place(tmp, final, replace)
    except OSError as e:  # not wrapped where it happened (reading back a picture, ...)
        remove_tree(tmp)
        raise output_error(e, f"write {final}") from None
    except BaseException:
        remove_tree(tmp)
        raise
    return ConvertResult(
        source,
        "converted",
        str(final),
        n_images,
        time.perf_counter() - start,
        warnings=list(plan.warnings),
    )


def _keep_existing(final: Path, masks_final: Path | None, options: ConvertOptions) -> bool:
    """True when complete output is kept (``skip_existing``); refuses existing output unless
    ``overwrite`` or ``skip_existing`` (an incomplete output, without its sidecar, is redone)."""
    replace = options.overwrite or options.skip_existing
    if lexists(final):
        if options.skip_existing and is_complete(final):
            return True
        if not replace:
            raise OutputError(
                f"output {final} exists (use --overwrite to replace it, --skip-existing to keep it)"
            )
    if masks_final is not None and lexists(masks_final) and not replace:
        raise OutputError(f"output {masks_final} exists (use --overwrite to replace it)")
    return False


def _write_all(
    nf: NiftiFile,
    options: ConvertOptions,
    tmp: Path,
    stem: str,
    threads: int,
    progress: ProgressFn | None,
) -> tuple[Plan, int]:
    spool = None
    if options.layout is Layout.WEBDATASET:
        from .training.spool import SpoolWriter  # one file per case, not one per image

        spool = SpoolWriter(tmp)
    write = spool.write if spool else lambda rel, data: write_file(tmp / rel, data)
    pool = ThreadPoolExecutor(max_workers=threads)
    try:
        result = _Render(pool, nf, options, tmp, stem, progress, write).run()
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)
        if spool is not None:
            spool.abort()
        raise
    pool.shutdown(wait=True)
    if spool is not None:
        spool.close()
    return result


#: A 4D series whose selected volumes take at most this many bytes (in their stored type) is
#: read once, its volumes kept from the statistics pass to the images; a larger one is read
#: twice, holding one volume at a time. Reading is mostly decompression: 1.1-1.3 s of the
#: 200 gzip'd 64 x 64 x 36 float32 volumes (113 MiB) of ``benchmarks/`` case (c).
HOLD_BYTES = 128 << 20


def _read_held(
    pool: ThreadPoolExecutor,
    nf: NiftiFile,
    options: ConvertOptions,
    read: ReadResult,
    selected: list[int],
) -> tuple[list[np.ndarray], RawStats | None] | None:
    """Read a file's ``selected`` volumes once, keeping them, with their statistics (when the plan
    needs them) gathered on the pool meanwhile, piece by piece as the data is decompressed (both
    release the GIL). None for a 4D series that needs no statistics (it is read once anyway) or
    does not fit :data:`HOLD_BYTES`."""
    stats = needs_stats(nf, options)
    indices = None if nf.n_volumes == 1 else selected
    if indices is not None and (not stats or len(indices) * nf.volume_bytes > HOLD_BYTES):
        return None
    if not stats:
        return [volume for _, volume in iter_volumes(nf, indices, read)], None
    builder = StatsBuilder(nf.dtype)
    pieces: list[Future[None]] = []

    def gather(values: np.ndarray) -> None:
        pieces.append(pool.submit(builder.add, values))

    volumes = [volume for _, volume in iter_volumes(nf, indices, read, gather)]
    for piece in pieces:
        piece.result()
    return volumes, builder.result()


#: Slabs whose images may still be in the thread pool's queue while the next one is built.
_PENDING_SLABS = 2


@dataclass
class _SlabBatch:
    """The images of one slab of one view of one volume, submitted to the thread pool."""

    view: View
    t: int
    names: dict[int, str]
    futures: dict[tuple[int, ...], Future[None]]  # slice indices of a task -> its future
    view_done: tuple[dict[int, str], list[int]] | None  # last slab of its view: all names, content


class _Render:
    """Every selected volume and view of one file, rendered into the temporary folder ``tmp``.

    The main thread reads volumes and cuts slabs; the pool resamples, paints, encodes and
    writes each slab's images, while the next slab is built (at most ``_PENDING_SLABS`` wait).
    """

    def __init__(
        self,
        pool: ThreadPoolExecutor,
        nf: NiftiFile,
        options: ConvertOptions,
        tmp: Path,
        stem: str,
        progress: ProgressFn | None,
        write: WriteFn,
    ) -> None:
        self.pool, self.nf, self.options, self.tmp, self.stem = pool, nf, options, tmp, stem
        self.write = write  # images, masks and the sidecar, by path relative to ``tmp``
        self.progress = progress
        self.read = ReadResult()
        self.count = 0
        self.pending: list[_SlabBatch] = []

    def run(self) -> tuple[Plan, int]:
        volumes = self._start()
        plan = self.plan
        for view in plan.geometries:
            make_folder(self.tmp / view.value)
        self.pictures = Pictures(plan)  # colour map, overlay, pair, montage, animation, html
        self.pictures.prepare(self.tmp)
        for t, raw in volumes:
            mapped = map_volume(plan, raw, self.pool, consume=True)  # raw's pages go back
            del raw
            for view in plan.geometries:
                self._render_view(mapped, view, t)
            del mapped
        while self.pending:
            self._finish(self.pending.pop(0))
        if self.read.warnings:  # found only by reading the data (e.g. bytes after gzip)
            plan = dataclasses.replace(plan, warnings=(*plan.warnings, *self.read.warnings))
        sidecar = build_sidecar(plan, self.nf.path, self.read.sha256, self.files, self.read.files)
        sidecar.update(self.pictures.sidecar_fields())
        self.pictures.finish(self.tmp, self.stem, sidecar)
        self.write(f"{self.stem}.json", sidecar_dumps(sidecar).encode())
        return plan, self.count

    def _start(self) -> Iterator[tuple[int, np.ndarray]]:
        """Make the plan (window statistics included); the volumes to render, in order."""
        nf, options = self.nf, self.options
        selected = list(options.volumes.indices(nf.n_volumes))
        held = _read_held(self.pool, nf, options, self.read, selected)
        if held is not None:
            # a 3D volume, or a series that fits: read once for both statistics and images
            kept, stats = held
            del held
            self.plan = make_plan(nf, options, lambda: kept, stats)
            volumes = _handover(selected if nf.n_volumes > 1 else [0], kept)
        else:
            self.plan = make_plan(nf, options, series_volumes(nf, options))
            volumes = iter_volumes(nf, selected, self.read)
        self.ext = EXTENSIONS[options.format]
        self.files: dict[View, dict[int, dict[int, str]]] = {v: {} for v in self.plan.geometries}
        return volumes

    def _render_view(self, mapped: np.ndarray, view: View, t: int) -> None:
        plan, pictures = self.plan, self.pictures
        t_or_none = t if plan.is_4d else None
        view_names: dict[int, str] = {}
        view_content: list[int] = []
        slabs = view_slabs(plan, mapped, view, content=pictures.needs_content)
        slab = next(slabs, None)
        if slab is None:  # nothing selected in this view
            pictures.finish_view(self.tmp, self.stem, view, t_or_none, {}, [])
        while slab is not None:
            n = plan.geometries[view].n_slices
            names = image_names(
                self.stem, view.value, slab.indices, n, self.ext, t_or_none, self.nf.n_volumes
            )
            view_names.update(names)
            view_content += slab.content
            futures = self._submit(view, slab, names)
            slab = next(slabs, None)
            done = (view_names, view_content) if slab is None else None
            self.pending.append(_SlabBatch(view, t, names, futures, done))
            # Keep the workers busy while the next slab is built: finish all but the newest
            # batches (at most three slabs are alive at once, each at most SLAB_BYTES).
            while len(self.pending) > _PENDING_SLABS:
                self._finish(self.pending.pop(0))

    def _submit(
        self, view: View, slab: Slab, names: dict[int, str]
    ) -> dict[tuple[int, ...], Future[None]]:
        plan, options, write = self.plan, self.options, self.write
        paint = self.pictures.painter(view)

        def job(group: tuple[int, ...]) -> None:
            for k in group:
                image = paint(output_image(plan, view, slab.native(k)), k)
                data = encode(image, options.format, options.quality)
                write(f"{view.value}/{names[k]}", data)
                for rel, extra in paint.extra_files(k, names[k]):
                    write(rel.as_posix(), extra)

        smp = plan.samplings[view]
        return {g: self.pool.submit(job, g) for g in _groups(slab.indices, smp.width * smp.height)}

    def _finish(self, batch: _SlabBatch) -> None:
        for group, fut in batch.futures.items():
            fut.result()
            for k in group:
                self.files[batch.view].setdefault(k, {})[batch.t] = batch.names[k]
            self.count += len(group)
            if self.progress:
                self.progress(len(group))
        if batch.view_done is not None:
            names, content = batch.view_done
            t = batch.t if self.plan.is_4d else None
            self.pictures.finish_view(self.tmp, self.stem, batch.view, t, names, content)


def _groups(indices: list[int], pixels: int) -> list[tuple[int, ...]]:
    """Slices per thread-pool task: small images go in groups, so that per-task overhead stays
    small next to encoding (about 128 k pixels a task, at most 16 images)."""
    size = max(1, min(16, (1 << 17) // max(1, pixels)))
    return [tuple(indices[i : i + size]) for i in range(0, len(indices), size)]


def _handover(indices: list[int], kept: list[np.ndarray]) -> Iterator[tuple[int, np.ndarray]]:
    """Yield the volumes already read, ``(indices[i], kept[i])``, keeping no reference to one
    once it is handed out (its memory goes as soon as it is rendered)."""
    kept.reverse()
    for t in indices:
        yield t, kept.pop()
