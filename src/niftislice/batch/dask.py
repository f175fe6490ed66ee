"""Running a batch on a Dask distributed cluster: one task per input file, results as locally.

Each task is :func:`.worker.run_one`, the same function the local process pool runs, so a
cluster converts, fails and reports exactly as one machine does. Workers need niftislice
installed and must see the inputs and the output folder at the same paths (a shared file system);
paths are made absolute before they are sent, since a worker's working folder is not ours.
Needs the optional extra ``niftislice[dask]``.
"""

from __future__ import annotations

import json
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
    _check_address(distributed, address)
    timeout = CONNECT_TIMEOUT_S if timeout is None else timeout
    try:
        return distributed.Client(address, timeout=timeout, set_as_default=False)
    except Exception as e:
        reason = " ".join(str(e).split()) or type(e).__name__
        if isinstance(e, OSError):  # unreachable: refused, timed out, no such host
            raise OptionError(
                f"scheduler: cannot connect to {address} within {timeout:g} s ({reason})"
            ) from None
        # refused by the transport at once: a port that is no number, no TLS setup...
        raise OptionError(f"scheduler: cannot use {address} ({reason})") from None


def _check_address(distributed: Any, address: str) -> None:
    """Refuse an address no Dask transport handles before a client is made: a failed client
    spends 10 s closing itself, then prints a traceback when it is collected."""
    try:
        scheme, location = distributed.comm.parse_address(address)
        distributed.comm.registry.get_backend(scheme)
    except (ValueError, TypeError) as e:
        raise OptionError(f"scheduler: {address!r} is not a scheduler address ({e})") from None
    if not location:
        raise OptionError(f"scheduler: {address!r} names no host (e.g. tcp://host:8786)")


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
        before = [_sidecar_stamp(job.output_dirs(out_root, options)[0]) for job in jobs]
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
                except Exception as e:  # a worker died or the scheduler was lost: what is on disk?
                    final = job.output_dirs(out_root, options)[0]
                    r = _on_disk(job, final, before[i], options.skip_existing) or ConvertResult(
                        job.source, "failed", error=_task_error(e, client)
                    )
                else:  # report paths as the caller gave them, as a local run does
                    local = r.output_dir and out_root / Path(r.output_dir).relative_to(out_abs)
                    r = replace(r, source=job.source, output_dir=str(local) if local else None)
                done_callback(i, r)
        except BaseException:
            client.cancel(futures)
            raise
    finally:
        client.close()


def _sidecar_stamp(folder: Path) -> tuple[int, int] | None:
    """The sidecar's identity (inode, modification time), None without one."""
    try:
        st = (folder / f"{folder.name}.json").stat()
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns


def _on_disk(
    job: Job, final: Path, before: tuple[int, int] | None, skip_existing: bool
) -> ConvertResult | None:
    """The result of a task whose answer never came back, from what is on disk: a complete
    output that was not there before the batch (or was replaced since) is ``converted``; one
    that was, with ``skip_existing``, is ``skipped``."""
    stamp = _sidecar_stamp(final)
    if stamp is None:
        return None
    if stamp == before:
        return ConvertResult(job.source, "skipped", str(final)) if skip_existing else None
    try:
        views = json.loads((final / f"{final.name}.json").read_text())["views"].values()
        images = sum(len(s.get("files", {"0": s.get("file")})) for v in views for s in v["slices"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        images = 0
    return ConvertResult(job.source, "converted", str(final), images)


def _task_error(e: Exception, client: Any) -> str:
    """One line for a task without a result."""
    if client.status != "running":
        return (
            "lost the Dask scheduler before this file was done "
            "(a worker may still finish it; run again with --skip-existing)"
        )
    reason = " ".join(str(e).split()) or type(e).__name__
    return f"worker failed: {type(e).__name__}: {reason}"
