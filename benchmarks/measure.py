"""Run one command and measure its wall time, CPU time and memory.

Linux charges a process, in ``ru_maxrss``, with the resident set of whatever it was before
``exec`` too, so a command started straight from the benchmark (which holds images and arrays)
would inherit the benchmark's size. ``run_child`` therefore starts this file as a small launcher
(a bare Python, about 13 MiB) that starts the command, waits for it and writes the figures to a
JSON report. The launcher is a child subreaper: worker processes orphaned by the command (a
forkserver's, say) are re-parented to it and reaped by it, so their usage is counted too.

- ``wall_s``: from just before the command starts until it has been reaped.
- ``cpu_s``: user + system CPU time of the command and all its descendants
  (``getrusage(RUSAGE_CHILDREN)`` delta of the launcher). Far less sensitive to a busy machine
  than wall time.
- ``peak_rss_mib``: the largest ``ru_maxrss`` of the command or any descendant: with worker
  processes it is the biggest single process, not their sum.
- ``tree_rss_mib``: the largest sum of resident sets over the command and all its descendants,
  sampled from /proc every ``SAMPLE_INTERVAL_S``. It can miss short spikes; it catches workers
  that run side by side.

    python benchmarks/measure.py --report REPORT.json -- COMMAND...
"""

from __future__ import annotations

import ctypes
import json
import os
import resource
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

SAMPLE_INTERVAL_S = 0.1
PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")
MIB = 1024 * 1024
PR_SET_CHILD_SUBREAPER = 36


@dataclass(frozen=True)
class Measurement:
    wall_s: float
    cpu_s: float
    peak_rss_mib: float
    tree_rss_mib: float
    returncode: int


@dataclass(frozen=True)
class ChildRun:
    measurement: Measurement
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


def _become_subreaper() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER) failed")


def _reap_orphans() -> None:
    """Wait for descendants re-parented to us after the command ended."""
    while True:
        try:
            os.wait()
        except ChildProcessError:
            return


def measure(argv: Sequence[str]) -> Measurement:
    """Run ``argv`` (inheriting stdio) to completion and measure it and its descendants."""
    _become_subreaper()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.Popen(list(argv))
    sampler = _TreeRssSampler(proc.pid)
    sampler.start()
    _, status, _ = os.wait4(proc.pid, 0)
    wall_s = time.perf_counter() - start
    sampler.stop()
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here; Popen must not wait
    _reap_orphans()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_s = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Measurement(
        wall_s=wall_s,
        cpu_s=cpu_s,
        peak_rss_mib=after.ru_maxrss * 1024 / MIB,  # ru_maxrss is in KiB on Linux
        tree_rss_mib=sampler.peak_bytes / MIB,
        returncode=proc.returncode,
    )


def run_child(argv: Sequence[str], log_dir: Path) -> ChildRun:
    """Measure ``argv`` through the launcher; its stdout and stderr are kept in ``log_dir``."""
    log_dir.mkdir(parents=True, exist_ok=True)
    out_path, err_path = log_dir / "stdout.txt", log_dir / "stderr.txt"
    report = log_dir / "measurement.json"
    report.unlink(missing_ok=True)
    launcher = [sys.executable, __file__, "--report", str(report), "--", *argv]
    with out_path.open("wb") as out, err_path.open("wb") as err:
        subprocess.run(launcher, stdout=out, stderr=err, check=True)
    return ChildRun(
        measurement=Measurement(**json.loads(report.read_text())),
        stdout=out_path.read_text(errors="replace"),
        stderr=err_path.read_text(errors="replace"),
    )


def main(argv: Sequence[str]) -> int:
    if len(argv) < 4 or argv[0] != "--report" or argv[2] != "--":
        print(__doc__.rsplit("\n\n", 1)[-1], file=sys.stderr)
        return 2
    Path(argv[1]).write_text(json.dumps(asdict(measure(argv[3:]))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
