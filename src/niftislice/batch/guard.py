"""One run per output folder, and nothing left behind by runs that failed or were killed.

- The output folder is locked for the whole run (:func:`~niftislice.files.locked_folder`):
  a second run on it is refused with one line instead of redoing or replacing the first's work.
- Holding the lock, the run removes the temporary folders that killed runs left beside its
  outputs (restoring a previous output that a killed ``--overwrite`` had moved aside): no live
  run can own them.
- Folders the run created for outputs that were never written are removed again: a run that
  writes nothing creates nothing.
- Pool workers die with the run (``PR_SET_PDEATHSIG`` on Linux, and a thread waiting on the
  run's sentinel where the worker's parent is a forkserver, or on other systems): killing the
  main process never leaves workers converting on their own.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from ..files import clean_leftovers, lexists, locked_folder, make_dirs, remove_empty

_PR_SET_PDEATHSIG = 1
_WATCHDOG_S = 1.0


@contextlib.contextmanager
def output_area(out: Path, finals: Sequence[Path]) -> Iterator[None]:
    """Hold ``out`` for a run that writes the output folders ``finals``: create and lock it,
    clean leftovers beside ``finals``, and on the way out remove the folders created here that
    stayed empty. An :class:`~niftislice.errors.OutputError` if another run holds ``out``."""
    parents = sorted({f.parent for f in finals})
    created = _missing(out, parents)
    make_dirs(out)
    try:
        with locked_folder(out):
            try:
                for folder in parents:
                    clean_leftovers(folder)
                yield
            finally:
                remove_empty(created)  # still locked: no other run is filling them
    finally:
        remove_empty(created)  # e.g. refused: another run holds the lock


def _missing(out: Path, folders: Sequence[Path]) -> list[Path]:
    """``out``, ``folders`` and their ancestors that do not exist yet, deepest first."""
    missing: set[Path] = set()
    for p in (out, *folders):
        while not lexists(p) and p != p.parent:
            missing.add(p)
            p = p.parent
    return sorted(missing, key=lambda p: len(p.absolute().parts), reverse=True)


def die_with_parent() -> None:
    """Have SIGTERM delivered to this (worker) process when the process that started it dies;
    the process's SIGTERM handler decides how to stop.

    A forked worker's parent is the run: ``PR_SET_PDEATHSIG`` (Linux). A forkserver's children
    (the pool's workers once the run has a thread, e.g. progress bars on a terminal) have the
    forkserver as parent, which lives as long as any of them does: a thread waits on
    multiprocessing's sentinel of the run (a pipe that closes when it dies).
    """
    import multiprocessing  # only workers get here

    parent = os.getppid()
    if sys.platform.startswith("linux") and _pdeathsig(signal.SIGTERM):
        if os.getppid() != parent:  # the parent died before the request took effect
            os.kill(os.getpid(), signal.SIGTERM)
    else:
        threading.Thread(target=_watch, args=(parent,), name="parent-watchdog", daemon=True).start()
    run = multiprocessing.parent_process()
    if run is not None and run.pid != parent:  # started through a forkserver
        threading.Thread(target=_wait_for, args=(run,), name="run-watchdog", daemon=True).start()


def orphaned(parent: int) -> bool:
    """In a worker whose parent was ``parent``: the run that started it has died."""
    if os.getppid() != parent:
        return True
    import multiprocessing

    run = multiprocessing.parent_process()
    return run is not None and not run.is_alive()


def _wait_for(run: Any) -> None:
    """SIGTERM to this process once ``run`` (a multiprocessing parent process) has died."""
    run.join()  # returns once the run's sentinel pipe closes
    os.kill(os.getpid(), signal.SIGTERM)


def _pdeathsig(sig: int) -> bool:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return bool(libc.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False


def _watch(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(_WATCHDOG_S)
    os.kill(os.getpid(), signal.SIGTERM)
