"""Run one child process and measure its wall time and memory.

Two memory figures, because a converter may use worker processes:

- ``peak_rss_mib``: ``ru_maxrss`` from ``os.wait4`` on the child. Linux reports the largest
  resident set of the child *or any descendant it waited for*, so with workers it is the biggest
  single process, not their sum.
- ``tree_rss_mib``: the largest sum of resident sets over the child and all its descendants,
  sampled from /proc every ``SAMPLE_INTERVAL_S``. It can miss short spikes; it catches workers
  that run side by side.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

SAMPLE_INTERVAL_S = 0.1
PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")
MIB = 1024 * 1024


@dataclass(frozen=True)
class ChildRun:
    wall_s: float
    peak_rss_mib: float
    tree_rss_mib: float
    returncode: int
    stdout: str
    stderr: str


def _children_by_parent() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:  # the process ended while we looked
            continue
        # "pid (comm) state ppid ...": comm may hold spaces or parentheses, so split after it.
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    return children


def _rss_bytes(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE_BYTES
    except (OSError, IndexError, ValueError):
        return 0


def tree_rss_bytes(root: int) -> int:
    """Summed resident set of ``root`` and all its descendants, now."""
    children = _children_by_parent()
    total, stack = 0, [root]
    while stack:
        pid = stack.pop()
        total += _rss_bytes(pid)
        stack.extend(children.get(pid, ()))
    return total


class _TreeRssSampler(threading.Thread):
    def __init__(self, root: int) -> None:
        super().__init__(daemon=True)
        self.root = root
        self.peak_bytes = 0
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.wait(SAMPLE_INTERVAL_S):
            self.peak_bytes = max(self.peak_bytes, tree_rss_bytes(self.root))

    def stop(self) -> None:
        self._done.set()
        self.join()


def run_child(argv: Sequence[str], log_dir: Path, env: dict[str, str] | None = None) -> ChildRun:
    """Run ``argv`` to completion; its stdout and stderr go to files in ``log_dir``."""
    log_dir.mkdir(parents=True, exist_ok=True)
    out_path, err_path = log_dir / "stdout.txt", log_dir / "stderr.txt"
    with out_path.open("wb") as out, err_path.open("wb") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(list(argv), stdout=out, stderr=err, env=env)
        sampler = _TreeRssSampler(proc.pid)
        sampler.start()
        _, status, usage = os.wait4(proc.pid, 0)
        wall_s = time.perf_counter() - start
        sampler.stop()
    # We reaped the child ourselves; tell Popen so it does not try again.
    proc.returncode = os.waitstatus_to_exitcode(status)
    return ChildRun(
        wall_s=wall_s,
        peak_rss_mib=usage.ru_maxrss * 1024 / MIB,  # ru_maxrss is in KiB on Linux
        tree_rss_mib=sampler.peak_bytes / MIB,
        returncode=proc.returncode,
        stdout=out_path.read_text(errors="replace"),
        stderr=err_path.read_text(errors="replace"),
    )
