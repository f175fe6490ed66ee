"""``convert`` with training-set options: masks paired by name, splits by subject, and either
image files with ``metadata.jsonl`` or WebDataset shards.

Layouts (``S`` is ``OUT/<split>`` with ``--split``, else ``OUT``)::

    files:       S/images/<case>/<view>/*.png, S/masks/<case>/... (with masks; else S/<case>/...)
                 S/metadata.jsonl (with masks or a split), OUT/splits.json (with a split)
    webdataset:  S/<split>-000000.tar ... (``OUT/shard-000000.tar`` without a split),
                 OUT/splits.json (with a split)

Without any of these options :func:`run_convert` is exactly :func:`run_batch`.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from ..batch.discover import Job
from ..batch.results import BatchResult
from ..batch.run import ImagesFn, ResultFn, check_outputs, run_batch
from ..errors import OutputError
from ..export import CASES_DIR, ConvertResult
from ..files import make_dirs, replace_file
from ..options import ConvertOptions
from ..types import Layout

if TYPE_CHECKING:
    from .pack import SplitPacker
    from .shards import ShardSize
    from .splits import SplitSpec

# The training-set modules are imported by the step that uses them: a plain conversion (which
# goes through run_convert) loads none of them.

log = logging.getLogger(__name__)

SPLITS_NAME = "splits.json"


def case_key(job: Job) -> str:
    """A case's path below its split folder, as in the output tree (``sub-01/anat/T1w``)."""
    return (job.rel_dir / job.stem).as_posix()


def subject(job: Job) -> str:
    """The subject of ``job`` for ``--split``: the BIDS ``sub-<label>`` of its file name or of a
    folder below the input folder, else its case name. Folders above the input folder are not
    looked at: they say where a study is stored (``/data/sub-sampled/imagesTr``), and taking a
    subject from there would put every case of the study in one split."""
    from .splits import subject_of

    return subject_of(job.rel_dir / job.path.name)


def prepare_jobs(
    jobs: Sequence[Job], options: ConvertOptions
) -> tuple[list[Job], dict[int, ConvertResult]]:
    """Each job with its mask and split; inputs without a mask (unless allowed) are failures."""
    out = list(jobs)
    failed: dict[int, ConvertResult] = {}
    if options.masks:
        from .pairing import MaskIndex

        index = MaskIndex(options.masks)
        for i, job in enumerate(out):
            found = index.find(job.path, job.rel_dir)
            if found.path is not None:
                out[i] = replace(job, mask=found.path)
            elif not options.allow_missing_masks:
                error = f"{found.reason} (use --allow-missing-masks to convert it without)"
                failed[i] = ConvertResult(str(job.path), "failed", error=error)
    if options.split is not None:
        spec: SplitSpec = options.split
        out = [replace(j, split=spec.assign(subject(j), options.split_seed)) for j in out]
    return out, failed


def check_convert_outputs(
    jobs: Sequence[Job], out_root: str | os.PathLike[str], options: ConvertOptions
) -> None:
    """Refuse, before anything is written, output that exists and that neither ``overwrite`` nor
    ``skip_existing`` says what to do with (image folders, or shards)."""
    if not options.is_training:
        return check_outputs(jobs, out_root, options)
    prepared, _ = prepare_jobs(jobs, options)
    if options.layout is not Layout.WEBDATASET:
        return check_outputs(prepared, out_root, options)
    if options.overwrite or options.skip_existing:
        return None
    from .pack import check_no_shards

    for split in sorted({j.split or "" for j in prepared}):
        found = check_no_shards(Path(out_root) / split, split or None)
        if found is not None:
            raise OutputError(
                f"output {found} exists; nothing was converted "
                "(use --skip-existing to keep its cases and add the rest, --overwrite to replace)"
            )
    return None


def run_convert(
    jobs: Sequence[Job],
    out_root: str | os.PathLike[str],
    options: ConvertOptions | None = None,
    *,
    on_result: ResultFn | None = None,
    on_images: ImagesFn | None = None,
    scheduler: str | None = None,
) -> BatchResult:
    """Convert ``jobs`` into ``out_root`` with the training-set options of ``options``."""
    options = options or ConvertOptions()
    if not options.is_training:
        return run_batch(
            jobs, out_root, options, on_result=on_result, on_images=on_images, scheduler=scheduler
        )
    start = time.perf_counter()
    out = Path(out_root)
    check_convert_outputs(jobs, out, options)
    prepared, failed = prepare_jobs(jobs, options)
    for r in failed.values():
        if on_result:
            on_result(r)
    if options.layout is Layout.WEBDATASET:
        result = _run_shards(prepared, failed, out, options, on_result, on_images, scheduler)
    else:
        todo = [i for i in range(len(prepared)) if i not in failed]
        batch = run_batch(
            [prepared[i] for i in todo],
            out,
            options,
            on_result=on_result,
            on_images=on_images,
            scheduler=scheduler,
        )
        result = _merge(len(prepared), failed, dict(zip(todo, batch.results, strict=True)))
        _write_metadata(prepared, failed, out, options)
    _write_splits(prepared, out, options)
    result.seconds = time.perf_counter() - start
    return result


def _merge(n: int, failed: dict[int, ConvertResult], ran: dict[int, ConvertResult]) -> BatchResult:
    results = [failed.get(i) or ran[i] for i in range(n)]
    return BatchResult(results)


def _write_metadata(
    jobs: list[Job], failed: dict[int, ConvertResult], out: Path, options: ConvertOptions
) -> None:
    """``metadata.jsonl`` in each split folder (or ``OUT``), for Hugging Face ``imagefolder``."""
    if not (options.masks or options.split is not None):
        return
    from .metadata import CaseFiles, metadata_lines, write_metadata

    by_root: dict[Path, list[CaseFiles]] = {}
    for i, job in enumerate(jobs):
        if i in failed:
            continue
        root = job.root(out)
        dirs = job.output_dirs(out, options)
        rel = [d.relative_to(root).as_posix() for d in dirs]
        by_root.setdefault(root, []).append(
            CaseFiles(str(job.path), rel[0], rel[1] if len(rel) > 1 else None)
        )
    for root, cases in sorted(by_root.items()):
        split = root.name if options.split is not None else None
        write_metadata(root, metadata_lines(root, cases, split))


def _write_splits(jobs: list[Job], out: Path, options: ConvertOptions) -> None:
    if options.split is None:
        return
    from .splits import splits_json

    spec: SplitSpec = options.split
    text = splits_json(spec, options.split_seed, [(subject(j), j.split) for j in jobs])
    make_dirs(out)
    replace_file(out / SPLITS_NAME, text.encode())


def _packers(jobs: list[Job], out: Path, options: ConvertOptions) -> dict[Path, SplitPacker]:
    """One packer per split folder; spools a killed run left behind are removed first."""
    from .pack import SplitPacker, shard_prefix

    packers = {}
    for root in sorted({j.root(out) for j in jobs}):
        shutil.rmtree(root / CASES_DIR, ignore_errors=True)
        split = root.name if options.split is not None and root != out else None
        cases = [case_key(j) for j in jobs if j.root(out) == root]
        size = options.shard_size or ShardSize()  # set whenever the layout is webdataset
        resume = options.skip_existing
        packers[root] = SplitPacker(root, shard_prefix(split), size, split, cases, resume=resume)
    return packers


def _run_shards(
    jobs: list[Job],
    failed: dict[int, ConvertResult],
    out: Path,
    options: ConvertOptions,
    on_result: ResultFn | None,
    on_images: ImagesFn | None,
    scheduler: str | None,
) -> BatchResult:
    """Convert each case into a spool, and append finished cases to the shards in order."""
    packers = _packers(jobs, out, options)
    results: dict[int, ConvertResult] = {}
    todo: list[int] = []
    for i, job in enumerate(jobs):
        packer = packers[job.root(out)]
        if i in failed:
            packer.done(case_key(job), None)
        elif packer.kept(case_key(job)):
            results[i] = ConvertResult(str(job.path), "skipped", str(job.root(out)))
            if on_result:
                on_result(results[i])
        else:
            todo.append(i)
    pending = {str(jobs[i].output_dirs(out, options)[0]): i for i in todo}
    by_source = {str(jobs[i].path): i for i in todo}  # failures have no output folder

    def arrived(r: ConvertResult) -> None:
        i = pending.pop(r.output_dir) if r.output_dir in pending else by_source[r.source]
        job = jobs[i]
        spool = Path(r.output_dir) if r.status == "converted" and r.output_dir else None
        packers[job.root(out)].done(case_key(job), spool, job.stem, str(job.path))
        if on_result:
            on_result(r)

    try:
        batch = run_batch(
            [jobs[i] for i in todo], out, options, on_result=arrived, on_images=on_images,
            scheduler=scheduler,
        )  # fmt: skip
        for packer in packers.values():
            packer.finish()
    except BaseException:
        for packer in packers.values():
            packer.abort()
        raise
    finally:
        for root in packers:
            shutil.rmtree(root / CASES_DIR, ignore_errors=True)
    for i, r in zip(todo, batch.results, strict=True):
        results[i] = replace(r, output_dir=str(jobs[i].root(out))) if r.output_dir else r
    return _merge(len(jobs), failed, results)
