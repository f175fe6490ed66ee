"""One job, converted in whichever process runs it (local pool worker, Dask worker or the
main process); it never raises: a failure is a ``failed`` result with a one-line error."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from ..errors import NiftisliceError
from ..export import ConvertResult, convert_file, is_complete
from ..files import lexists
from ..options import ConvertOptions
from .discover import Job

log = logging.getLogger(__name__)

#: ``images(n)``: ``n`` more images were written.
ImagesFn = Callable[[int], None]


def run_one(
    job: Job,
    out_root: Path,
    options: ConvertOptions,
    threads: int,
    progress: ImagesFn | None = None,
) -> ConvertResult:
    """Convert one job, never raising: failures become a ``failed`` result with one-line error."""
    start = time.perf_counter()
    try:
        opts = resume_options(job.output_dirs(out_root, options), job.options_for(options))
        return convert_file(
            job.path,
            job.root(out_root),
            opts,
            rel_dir=job.rel_dir,
            stem=job.stem,
            threads=threads,
            progress=progress,
        )
    except NiftisliceError as e:
        error = str(e)
    except MemoryError:
        error = "out of memory"
    except Exception as e:  # a bug: keep the batch going, keep the traceback in the log
        log.debug("unexpected error converting %s", job.path, exc_info=True)
        error = f"internal error: {type(e).__name__}: {e}"
    return ConvertResult(str(job.path), "failed", error=error, seconds=time.perf_counter() - start)


def resume_options(finals: list[Path], options: ConvertOptions) -> ConvertOptions:
    """With ``skip_existing``, output without its sidecar is incomplete: convert it again,
    replacing it (atomically, as ``overwrite`` does)."""
    if not options.skip_existing or not any(map(lexists, finals)) or is_complete(finals[0]):
        return options
    log.info("%s has no sidecar (incomplete); converting again", finals[0])
    return replace(options, overwrite=True, skip_existing=False)
