"""Many inputs: discovery, output layout, parallel workers and a per-input result.

Folders are searched recursively for ``.nii``/``.nii.gz`` (any case), skipping hidden and ``._*``
files; the input tree is mirrored under the output folder. One bad input never stops the others.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

from .convert import ConvertResult, convert_file
from .errors import NiftisliceError, OptionError
from .naming import safe_relative_dir, stem_of
from .options import ConvertOptions

log = logging.getLogger(__name__)

_NIFTI_SUFFIXES = (".nii", ".nii.gz")


@dataclass(frozen=True)
class Job:
    """One input file and where its output goes (``OUT/rel_dir/stem``)."""

    path: Path
    rel_dir: Path
    stem: str


@dataclass
class BatchResult:
    results: list[ConvertResult] = field(default_factory=list)
    seconds: float = 0.0

    def count(self, status: str) -> int:
        return sum(r.status == status for r in self.results)

    @property
    def images(self) -> int:
        return sum(r.images for r in self.results)

    @property
    def ok(self) -> bool:
        return all(r.status != "failed" for r in self.results)

    def summary(self) -> str:
        return (
            f"{self.count('converted')} converted, {self.count('skipped')} skipped, "
            f"{self.count('failed')} failed; {self.images} images in {self.seconds:.1f} s"
        )

    def to_json(self) -> dict[str, object]:
        return {
            "summary": {
                "converted": self.count("converted"),
                "skipped": self.count("skipped"),
                "failed": self.count("failed"),
                "images": self.images,
                "seconds": round(self.seconds, 3),
            },
            "inputs": [r.to_json() for r in self.results],
        }


def is_nifti_name(name: str) -> bool:
    low = name.lower()
    return low.endswith(_NIFTI_SUFFIXES) and not name.startswith((".", "._"))


def discover(inputs: Sequence[str | os.PathLike[str]]) -> list[Job]:
    """Expand folders recursively; files named explicitly are taken whatever their suffix."""
    found: list[tuple[Path, Path]] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir() and not p.name.lower().endswith(_NIFTI_SUFFIXES):
            for root, dirs, files in os.walk(p):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                for name in sorted(files):
                    if is_nifti_name(name):
                        f = Path(root) / name
                        found.append((f, f.parent.relative_to(p)))
        else:
            found.append((p, Path()))
    return _assign_stems(found)


def _assign_stems(found: Iterable[tuple[Path, Path]]) -> list[Job]:
    """Distinct output folders: inputs whose stems collide keep their suffix in the name."""
    items = list(found)
    keys = [(safe_relative_dir(rel), stem_of(p)) for p, rel in items]
    seen: dict[tuple[Path, str], int] = {}
    for k in keys:
        seen[k] = seen.get(k, 0) + 1
    jobs: list[Job] = []
    used: set[tuple[Path, str]] = set()
    for (p, _), (rel, stem) in zip(items, keys):
        if seen[(rel, stem)] > 1:
            stem = stem_of(p.name.replace(".", "_") + ".nii")
        base, n = stem, 2
        while (rel, stem) in used:  # the same file named twice, or a pathological clash
            stem, n = f"{base}_{n}", n + 1
        used.add((rel, stem))
        jobs.append(Job(p, rel, stem))
    return jobs


def _run_one(job: Job, out_root: Path, options: ConvertOptions, threads: int) -> ConvertResult:
    start = time.perf_counter()
    try:
        return convert_file(job.path, out_root, options, rel_dir=job.rel_dir, stem=job.stem, threads=threads)
    except NiftisliceError as e:
        return ConvertResult(str(job.path), "failed", error=str(e), seconds=time.perf_counter() - start)
    except MemoryError:
        return ConvertResult(str(job.path), "failed", error="out of memory", seconds=time.perf_counter() - start)
    except Exception as e:  # a bug: keep the batch going, keep the traceback in the log
        log.debug("unexpected error converting %s", job.path, exc_info=True)
        return ConvertResult(str(job.path), "failed", error=f"internal error: {type(e).__name__}: {e}",
                             seconds=time.perf_counter() - start)


ResultFn = Callable[[ConvertResult], None]


def run_batch(
    jobs: Sequence[Job],
    out_root: str | os.PathLike[str],
    options: ConvertOptions = ConvertOptions(),
    *,
    on_result: ResultFn | None = None,
    scheduler: str | None = None,
) -> BatchResult:
    """Convert every job; files in parallel processes, slices of one file on threads."""
    start = time.perf_counter()
    out = Path(out_root)
    batch = BatchResult()

    def done(r: ConvertResult) -> None:
        batch.results.append(r)
        if on_result:
            on_result(r)

    if scheduler:
        from .distributed import run_on_dask

        run_on_dask(jobs, out, options, scheduler, done)
    else:
        jobs_n = options.effective_jobs
        workers = min(jobs_n, len(jobs))
        if workers <= 1:
            for job in jobs:
                done(_run_one(job, out, options, jobs_n))
        else:
            _run_pool(jobs, out, options, workers, max(1, jobs_n // workers), done)
    order = {str(j.path): i for i, j in enumerate(jobs)}
    batch.results.sort(key=lambda r: order.get(r.source, 0))
    batch.seconds = time.perf_counter() - start
    return batch


def _run_pool(
    jobs: Sequence[Job], out: Path, options: ConvertOptions, workers: int, threads: int,
    done: ResultFn,
) -> None:
    ctx = multiprocessing.get_context("forkserver" if hasattr(os, "fork") else "spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        pending: dict[Future[ConvertResult], Job] = {}
        queue = list(jobs)[::-1]
        while queue or pending:
            while queue and len(pending) < workers * 2:
                job = queue.pop()
                pending[pool.submit(_run_one, job, out, options, threads)] = job
            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
            for fut in finished:
                job = pending.pop(fut)
                try:
                    done(fut.result())
                except Exception as e:  # a worker died (killed, out of memory)
                    done(ConvertResult(str(job.path), "failed", error=f"worker failed: {type(e).__name__}: {e}"))


def check_jobs(jobs: Sequence[Job]) -> None:
    if not jobs:
        raise OptionError("no NIfTI files found in the given inputs")
