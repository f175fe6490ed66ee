"""Running a batch on a Dask distributed cluster: one task per input file, results as locally.

Each task is :func:`.worker.run_one`, the same function the local process pool runs, so a
cluster converts, fails and reports exactly as one machine does. Workers need niftislice
installed and must see the inputs and the output folder at the same paths (a shared file system);
paths are made absolute before they are sent, since a worker's working folder is not ours.
Needs the optional extra ``niftislice[dask]``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import OptionError
from ..export import ConvertResult
from ..extras import require
from ..options import ConvertOptions

if TYPE_CHECKING:
    from .discover import Job

log = logging.getLogger(__name__)

#: Seconds to wait for the scheduler before giving up with one line.
CONNECT_TIMEOUT_S = 5.0


def _distributed() -> Any:
    return require("distributed", "scheduler", "running on a Dask cluster")


def connect(address: str, timeout: float | None = None) -> Any:
    """A ``distributed.Client`` for ``address``; an unreachable or bad address is an OptionError."""
    distributed = _distributed()
    timeout = CONNECT_TIMEOUT_S if timeout is None else timeout
    try:
        return distributed.Client(address, timeout=timeout, set_as_default=False)
    except Exception as e:
        reason = " ".join(str(e).split()) or type(e).__name__
        raise OptionError(
            f"scheduler: cannot connect to {address} within {timeout:g} s ({reason})"
        ) from None


def run_on_dask(
    jobs: Sequence[Job],
    out_root: Path,
    options: ConvertOptions,
    address: str,
    done_callback: Callable[[int, ConvertResult], None],
    *,
    connect_timeout: float | None = None,
) -> None:
    """Submit one task per job to the scheduler at ``address``; ``done_callback(index, result)``
    is called in this thread as tasks finish. Each task converts on ``options.jobs`` threads
    (default 1: the cluster's parallelism comes from its worker threads)."""
    from .worker import run_one

    distributed = _distributed()
    client = connect(address, connect_timeout)
    try:
        if not client.scheduler_info().get("workers"):
            log.warning("the scheduler at %s has no workers yet; tasks wait for one", address)
        out_abs = out_root.absolute()
        threads = int(options.jobs or 1)
        index: dict[str, int] = {}
        futures = []
        for i, job in enumerate(jobs):
            mask = job.mask.absolute() if job.mask else None
            remote = replace(job, path=job.path.absolute(), mask=mask)
            fut = client.submit(run_one, remote, out_abs, options, threads, pure=False)
            index[fut.key] = i
            futures.append(fut)
        try:
            for fut in distributed.as_completed(futures, loop=client.loop):
                i = index[fut.key]
                job = jobs[i]
                try:
                    r: ConvertResult = fut.result()
                except Exception as e:  # the task itself failed: a worker died, lost, killed
                    error = f"worker failed: {type(e).__name__}: {e}"
                    r = ConvertResult(str(job.path), "failed", error=error)
                else:  # report paths as the caller gave them, as a local run does
                    local = r.output_dir and out_root / Path(r.output_dir).relative_to(out_abs)
                    r = replace(r, source=str(job.path), output_dir=str(local) if local else None)
                done_callback(i, r)
        except BaseException:
            client.cancel(futures)
            raise
    finally:
        client.close()
