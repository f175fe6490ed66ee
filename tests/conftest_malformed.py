"""Shared helpers for the bad-input tests: run the CLI (in process or in a measured child),
snapshot folders, and check the contract for one input.

The contract (issue 4): a bad input gives exit 1 and exactly one line
``niftislice: error: <path>: <message>`` on stderr, no traceback and nothing left in OUT; a
repairable input is converted with a ``niftislice: warning: <path>: ...`` line; temporary folders
(``.niftislice-tmp-*``) never outlive a run; nothing is written outside OUT.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import re
import stat
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

PYTHON = sys.executable
TMP_PREFIX = ".niftislice-tmp-"
MEMORY_LIMIT_MIB = 300

# A small stdlib-only parent: it starts the CLI, waits with os.wait4 and reports the child's
# peak RSS. (A child forked from the big pytest process would start from pytest's resident size.)
# RLIMIT_AS is a guard so a runaway allocation fails instead of taking the machine down.
LAUNCHER = r"""
import json, os, resource, subprocess, sys, threading, time
result_path, timeout, cwd = sys.argv[1], float(sys.argv[2]), sys.argv[3]
cmd = sys.argv[4:]
def limits():
    resource.setrlimit(resource.RLIMIT_AS, (8 << 30, 8 << 30))
killed = []
def kill():
    killed.append(True)
    p.kill()
t0 = time.monotonic()
with open(result_path + ".out", "wb") as so, open(result_path + ".err", "wb") as se:
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=so, stderr=se, cwd=cwd,
                         preexec_fn=limits)
    timer = threading.Timer(timeout, kill)
    timer.start()
    _, status, usage = os.wait4(p.pid, 0)
    timer.cancel()
    p.returncode = os.waitstatus_to_exitcode(status)
with open(result_path, "w") as f:
    json.dump({"rc": p.returncode, "maxrss_kib": usage.ru_maxrss,
               "seconds": time.monotonic() - t0, "timed_out": bool(killed)}, f)
"""


@dataclass
class Run:
    """The outcome of one CLI run."""

    rc: int
    stdout: str
    stderr: str
    maxrss_mib: float | None = None  # measured in a fresh child, None in process
    seconds: float = 0.0
    timed_out: bool = False
    python_warnings: list[str] = field(default_factory=list)  # in process only

    @property
    def lines(self) -> list[str]:
        return [ln for ln in self.stderr.splitlines() if ln.strip()]

    def messages(self, kind: str) -> list[str]:
        """``niftislice: <kind>: ...`` lines, prefix removed."""
        prefix = f"niftislice: {kind}: "
        return [ln[len(prefix) :] for ln in self.lines if ln.startswith(prefix)]


def cli_command(args: Sequence[str]) -> list[str]:
    return [PYTHON, "-m", "niftislice", *args]


def run_measured(args: Sequence[str], *, cwd: Path | None = None, timeout: float = 120.0) -> Run:
    """Run ``python -m niftislice ARGS`` from a small parent; report peak RSS of the child."""
    with tempfile.TemporaryDirectory(prefix="nsl-run-") as d:
        result = os.path.join(d, "result.json")
        subprocess.run(
            [
                PYTHON,
                "-c",
                LAUNCHER,
                result,
                str(timeout),
                str(cwd or os.getcwd()),
                *cli_command(args),
            ],
            check=True,
            timeout=timeout + 60,
            stdin=subprocess.DEVNULL,
        )
        with open(result) as f:
            info = json.load(f)
        out = Path(result + ".out").read_bytes().decode("utf-8", "backslashreplace")
        err = Path(result + ".err").read_bytes().decode("utf-8", "backslashreplace")
    return Run(info["rc"], out, err, info["maxrss_kib"] / 1024, info["seconds"], info["timed_out"])


def run_in_process(args: Sequence[str], capfd: pytest.CaptureFixture[str]) -> Run:
    """``niftislice.cli.main(ARGS)`` with stdout/stderr captured at the file-descriptor level.

    Python warnings are recorded rather than printed: any that is not a deprecation would be
    printed as a stray (two-line) message in a real run, so callers assert there are none.
    """
    from niftislice.cli import main

    # Garbage earlier tests left (a library's TemporaryDirectory, say) is finalised now, not
    # inside the run, where its ResourceWarning would be counted against the command.
    gc.collect()
    capfd.readouterr()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rc = main(list(args))
    out, err = capfd.readouterr()
    shown = [
        f"{w.category.__name__}: {w.message} ({w.filename}:{w.lineno})"
        for w in caught
        if not issubclass(w.category, (DeprecationWarning, PendingDeprecationWarning))
    ]
    return Run(rc, out, err, python_warnings=shown)


@contextlib.contextmanager
def chdir(path: Path) -> Iterator[None]:
    old = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


Snapshot = dict[str, tuple[int, int, int]]


def snapshot(root: Path, exclude: Path | None = None) -> Snapshot:
    """Every entry below ``root`` (not following links): mode, size, mtime. Never opens files,
    so fifos and device links are safe."""
    snap: Snapshot = {}
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        if exclude is not None:
            dirnames[:] = [d for d in dirnames if here / d != exclude]
        for name in dirnames + filenames:
            p = here / name
            st = os.lstat(p)
            size = st.st_size if stat.S_ISREG(st.st_mode) else 0
            mtime = st.st_mtime_ns if not stat.S_ISDIR(st.st_mode) else 0
            snap[os.fsdecode(p.relative_to(root))] = (st.st_mode, size, mtime)
    return snap


def tree(root: Path) -> list[str]:
    """All paths below ``root`` (relative), for assertion messages and emptiness checks."""
    if not root.exists():
        return []
    return sorted(os.fsdecode(p.relative_to(root)) for p in root.rglob("*"))


def leftover_tmp(root: Path) -> list[str]:
    return [p for p in tree(root) if TMP_PREFIX in p]


def printed_forms(path: Path | str) -> set[str]:
    """Ways a CLI may print ``path`` on one line (as is, or with control characters escaped)."""
    s = os.fspath(path)
    forms = {
        s,
        s.encode("unicode_escape").decode("ascii"),
        s.encode("utf-8", "backslashreplace").decode("utf-8"),
        s.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace"),
        s.encode("utf-8", "surrogateescape").decode("utf-8", "replace"),
        repr(s),
        repr(s)[1:-1],
    }
    return {f for f in forms if "\n" not in f}


def check_common(run: Run) -> None:
    """What holds for every run, whatever the input: no traceback, no stray output."""
    assert not run.timed_out, f"the CLI did not finish (blocked?)\n{run.stderr}"
    assert "Traceback" not in run.stderr + run.stdout, run.stderr
    assert "internal error" not in run.stderr, run.stderr
    stray = [ln for ln in run.lines if not ln.startswith("niftislice: ")]
    assert not stray, f"stderr lines not from niftislice: {stray}"
    assert not run.python_warnings, f"Python warnings would be printed: {run.python_warnings}"
    if run.maxrss_mib is not None:
        assert run.maxrss_mib < MEMORY_LIMIT_MIB, f"peak RSS {run.maxrss_mib:.0f} MiB"


def check_error(run: Run, path: Path | str, pattern: str, out: Path) -> str:
    """Exit 1, one error line naming ``path`` and matching ``pattern``, nothing in OUT."""
    check_common(run)
    assert run.rc == 1, f"exit {run.rc}, expected 1\n{run.stderr}"
    errors = run.messages("error")
    assert len(errors) == 1, run.stderr
    forms = printed_forms(path)
    named = [f for f in forms if errors[0].startswith(f + ": ")]
    assert named, f"error line does not start with the input path {forms}: {errors[0]!r}"
    message = errors[0][len(max(named, key=len)) + 2 :]
    assert re.search(pattern, message, re.IGNORECASE), f"{message!r} !~ /{pattern}/"
    assert tree(out) == [], f"output left behind for a failed input: {tree(out)}"
    return message


def check_converted(
    run: Run, out: Path, pattern: str | None = None, path: Path | str | None = None
) -> Path:
    """Exit 0, one complete output folder (sidecar and images); a warning matching ``pattern``
    when given. Returns the output folder."""
    check_common(run)
    assert run.rc == 0, f"exit {run.rc}, expected 0\n{run.stderr}"
    assert not run.messages("error"), run.stderr
    sidecars = sorted(out.glob("*/*.json"))
    assert len(sidecars) == 1, tree(out)
    folder = sidecars[0].parent
    assert sidecars[0].name == folder.name + ".json"
    json.loads(sidecars[0].read_text())
    assert list(folder.glob("*/*.png")), tree(out)
    assert not leftover_tmp(out), leftover_tmp(out)
    if pattern is not None:
        warns = run.messages("warning")
        assert any(re.search(pattern, w, re.IGNORECASE) for w in warns), (
            f"no warning matching /{pattern}/ in {warns}"
        )
        if path is not None:
            forms = printed_forms(path)
            assert all(any(w.startswith(f + ": ") for f in forms) for w in warns), warns
    return folder


@pytest.fixture(name="workdir")
def workdir_fixture(tmp_path: Path) -> Path:
    """A folder with ``in/`` for inputs; OUT is ``workdir/out`` (not created)."""
    (tmp_path / "in").mkdir()
    return tmp_path
