"""Running many inputs: refusal of existing output, resume, parallel workers, cleanup.

One bad input never stops the others. Files run in parallel processes (or as Dask tasks, see
:mod:`.dask`); the slices of one file run on threads inside
:func:`~niftislice.export.convert_file`. Inputs come from :mod:`.discover`; results go to
:mod:`.results`. The output folder is held by one run at a time, and what killed runs left
is cleaned up (:mod:`.guard`).
"""

from __future__ import annotations

import logging
import os
import re
import signal
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import OutputError
from ..export import ConvertResult
from ..files import TMP_PREFIX, lexists, remove_tree
from ..options import ConvertOptions
from .discover import Job
from .guard import die_with_parent, orphaned, output_area
from .results import BatchResult
from .worker import run_one

if TYPE_CHECKING:
    from concurrent.futures import Future

# multiprocessing and the process pool are imported when a pool starts (-j 2 or more): a
# one-worker batch, the usual single-file conversion, does not load them.

log = logging.getLogger(__name__)

#: ``done(job_index, result)``: called once per job, in the calling thread, as results arrive.
DoneFn = Callable[[int, ConvertResult], None]
ResultFn = Callable[[ConvertResult], None]
#: ``images(n)``: ``n`` more images were written (per image in-process, per file from workers).
ImagesFn = Callable[[int], None]


def check_outputs(
    jobs: Sequence[Job], out_root: str | os.PathLike[str], options: ConvertOptions
) -> None:
    """Refuse the whole batch, before anything is written, if some output exists already and
    neither ``overwrite`` nor ``skip_existing`` says what to do with it."""
    if options.overwrite or options.skip_existing:
        return
    out = Path(out_root)
    existing = [d for j in jobs for d in j.output_dirs(out, options) if lexists(d)]
    if existing:
        more = f" and {len(existing) - 1} more" if len(existing) > 1 else ""
        raise OutputError(
            f"output {existing[0]}{more} exists; nothing was converted "
            "(use --skip-existing to keep complete output and resume, --overwrite to replace it)"
        )


def run_batch(
    jobs: Sequence[Job],
    out_root: str | os.PathLike[str],
    options: ConvertOptions | None = None,
    *,
    on_result: ResultFn | None = None,
    on_images: ImagesFn | None = None,
    scheduler: str | None = None,
) -> BatchResult:
    """Convert every job: files on parallel processes (``options.jobs``, default all cores) or
    Dask workers (``scheduler``), the slices of a file on threads.

    Existing output is refused as a whole (:class:`OutputError`, nothing written) unless
    ``options.overwrite`` or ``options.skip_existing``, and so is an output folder another run
    is writing to. Jobs with an ``error`` (unreadable folders) fail without running.
    ``on_result`` sees each result as it arrives; the returned results are in job order.
    """
    start = time.perf_counter()
    options = options or ConvertOptions()
    out = Path(out_root)
    check_outputs(jobs, out, options)
    slots: list[ConvertResult | None] = [None] * len(jobs)

    def done(i: int, r: ConvertResult) -> None:
        slots[i] = r
        if on_result:
            on_result(r)

    todo = [i for i, job in enumerate(jobs) if job.error is None]
    for i, job in enumerate(jobs):
        if job.error is not None:  # a folder that could not be searched
            done(i, _failed(job, job.error))
    if todo:
        finals = [d for i in todo for d in jobs[i].output_dirs(out, options)]
        with output_area(out, finals):
            _dispatch(
                [jobs[i] for i in todo],
                out,
                options,
                scheduler,
                on_images,
                lambda k, r: done(todo[k], r),
            )
    results = [
        r or ConvertResult(str(j.path), "failed", error="not run")
        for j, r in zip(jobs, slots, strict=True)
    ]
    return BatchResult(results, time.perf_counter() - start)


def _dispatch(
    jobs: Sequence[Job],
    out: Path,
    options: ConvertOptions,
    scheduler: str | None,
    on_images: ImagesFn | None,
    done: DoneFn,
) -> None:
    """Run ``jobs`` in this process, on a process pool or on Dask; ``done`` sees each result."""

    def done_counting(i: int, r: ConvertResult) -> None:
        done(i, r)
        if on_images and r.images:
            on_images(r.images)

    if scheduler:
        from .dask import run_on_dask

        run_on_dask(jobs, out, options, scheduler, done_counting)
        return
    jobs_n = options.effective_jobs
    workers = min(jobs_n, len(jobs))
    if workers <= 1:
        for i, job in enumerate(jobs):
            done(i, run_one(job, out, options, jobs_n, on_images))
    else:
        _run_pool(jobs, out, options, workers, max(1, jobs_n // workers), done_counting)


Task = Callable[[Job, Path, ConvertOptions, int], ConvertResult]
_stop: Any = None  # in pool workers: a shared Event, set once the batch is interrupted
_parent = 0  # in pool workers: the process that started this one
_busy = False  # in pool workers: a file is being converted
_stopping = False  # in pool workers: a SIGTERM is being acted on
#: Seconds a worker told to stop may spend abandoning its file before SIGALRM ends it.
_STOP_GRACE_S = 10


def _init_worker(stop: Any) -> None:
    global _stop, _parent
    _stop, _parent = stop, os.getppid()
    signal.signal(signal.SIGTERM, _terminated)
    if hasattr(signal, "SIGALRM"):
        signal.signal(signal.SIGALRM, signal.SIG_DFL)  # the deadline: ends the process
    die_with_parent()  # a killed batch must not leave workers converting on their own


def _terminated(signum: int, frame: object) -> None:
    """SIGTERM in a worker (the batch was stopped, or its process died): a file in hand is
    abandoned as on Ctrl-C (its temporary folder removed); an idle worker just ends.

    Only the first SIGTERM is acted on: a dying run's ``PR_SET_PDEATHSIG`` comes once per
    thread of the run, and a second KeyboardInterrupt would cut the cleanup short (or escape it
    into the pool's loop, which then waits for work for ever). The KeyboardInterrupt reaches
    the conversion only at its next bytecode, and can be lost (a C call that never returns, a
    lock a killed sibling held): an alarm ends the process after ``_STOP_GRACE_S`` whatever it
    is doing (a next run removes what it left).
    """
    global _stopping
    if not _busy:
        os._exit(1)
    if _stopping:
        return
    _stopping = True
    if hasattr(signal, "alarm"):
        signal.alarm(_STOP_GRACE_S)
    raise KeyboardInterrupt


def _stand_down() -> None:
    """A stop that reached the pool's loop (the run lives on): no deadline any more, and a
    later SIGTERM counts again."""
    global _stopping
    if hasattr(signal, "alarm"):
        signal.alarm(0)
    _stopping = False


def _queued(
    task: Task, job: Job, out: Path, options: ConvertOptions, threads: int
) -> ConvertResult:
    """Run ``task`` in a worker unless the batch was interrupted while the job waited."""
    global _busy
    if _stop is not None and _stop.is_set():
        return _failed(job, "interrupted")
    _busy = True
    try:
        return task(job, out, options, threads)
    except KeyboardInterrupt:  # Ctrl-C reaches the whole process group: stop the queue too
        if orphaned(_parent):  # nobody is waiting for the result, and the stop event's
            os._exit(1)  # lock may be held by a sibling that died holding it
        if _stop is not None:
            _stop.set()
        _stand_down()
        raise
    finally:
        _busy = False


def _run_pool(
    jobs: Sequence[Job],
    out: Path,
    options: ConvertOptions,
    workers: int,
    threads: int,
    done: DoneFn,
    task: Task = run_one,
) -> None:
    """Worker processes, each converting one file at a time.

    A worker that dies (killed, out of memory) takes Python's pool down with every file in
    flight; those files are then retried one at a time in a process of their own, so only the
    file that kills its worker fails.
    """
    todo: list[int] = list(range(len(jobs)))
    while todo:
        lost, rest = _pool_pass(jobs, todo, out, options, workers, threads, done, task)
        for i in lost:  # alone now: nothing else of this batch is writing
            _remove_leftovers(jobs[i], out, options)
            if any(_pool_pass(jobs, [i], out, options, 1, threads, done, task)):
                _remove_leftovers(jobs[i], out, options)
                done(i, _failed(jobs[i], "the worker process died (killed, or out of memory?)"))
        if not lost and len(rest) == len(todo):  # no worker could be started at all
            for i in rest:
                done(i, _failed(jobs[i], "cannot start a worker process"))
            rest = []
        todo = rest


def _remove_leftovers(job: Job, out: Path, options: ConvertOptions) -> None:
    """Temporary folders a killed worker left for this job (their names are convert_file's)."""
    final = job.output_dirs(out, options)[0]
    name = re.compile(re.escape(f"{TMP_PREFIX}{final.name[:40]}-") + r"[a-z0-9_]{8}")
    if final.parent.is_dir():
        for d in final.parent.iterdir():
            if name.fullmatch(d.name) and d.is_dir() and not d.is_symlink():
                remove_tree(d)


def _failed(job: Job, error: str) -> ConvertResult:
    return ConvertResult(job.source, "failed", error=error)


def _pool_pass(
    jobs: Sequence[Job],
    todo: Sequence[int],
    out: Path,
    options: ConvertOptions,
    workers: int,
    threads: int,
    done: DoneFn,
    task: Task,
) -> tuple[list[int], list[int]]:
    """Run ``todo`` on a fresh pool; returns (jobs lost with a dead worker, jobs not started)."""
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    ctx = _mp_context()
    stop = ctx.Event()
    pool = ProcessPoolExecutor(
        max_workers=workers, mp_context=ctx, initializer=_init_worker, initargs=(stop,)
    )
    queue = list(todo)[::-1]
    lost: list[int] = []
    try:
        pending: dict[Future[ConvertResult], int] = {}
        while queue or pending:
            # at most two files per worker in flight: results stream back, memory stays bounded
            while queue and len(pending) < workers * 2 and not lost:
                i = queue[-1]
                try:
                    pending[pool.submit(_queued, task, jobs[i], out, options, threads)] = i
                except BrokenProcessPool:
                    break
                queue.pop()
            if not pending:
                break
            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
            for fut in finished:
                i = pending.pop(fut)
                try:
                    r = fut.result()
                except BrokenProcessPool:
                    lost.append(i)
                    continue
                except Exception as e:  # e.g. a result that could not be sent back
                    r = _failed(jobs[i], f"worker failed: {type(e).__name__}: {e}")
                done(i, r)
    except BaseException:
        # interrupted: queued jobs return at once; running ones clean up their temp folders
        stop.set()
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
    return sorted(lost), queue[::-1]


def _mp_context() -> Any:
    import multiprocessing

    if not hasattr(os, "fork"):
        return multiprocessing.get_context("spawn")
    if threading.active_count() == 1:
        # nothing else runs in this process (no progress-bar or Dask threads): forking is safe
        # and workers start at once, with niftislice already imported
        return multiprocessing.get_context("fork")
    ctx = multiprocessing.get_context("forkserver")
    # workers fork from a server that imported niftislice once, instead of each importing it
    ctx.set_forkserver_preload([__name__])
    return ctx
