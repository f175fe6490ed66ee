"""Killed runs and concurrent runs (issue 11): SIGKILL leaves nothing the next run does not
clean up or restore, workers die with their batch, two runs never share an output folder.

Every run here is the real CLI in a child process, killed with SIGKILL (no handler runs), or a
child whose ``os.rename`` ends the process at the worst moment of ``--overwrite``.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import pty
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from conftest_malformed import TMP_PREFIX, Run, check_common, cli_command, leftover_tmp, tree
from nifti_bytes import gradient, header_for, nifti_file

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux processes")


def write_volume(path: Path, shape: tuple[int, ...], *, noise: bool = False) -> Path:
    if noise:
        arr = np.random.default_rng(0).integers(0, 256, size=shape, dtype=np.uint8)
    else:
        arr = gradient(shape, "i2")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(nifti_file(header_for(arr), arr))
    return path


def contents(root: Path) -> dict[str, str]:
    return {
        os.fsdecode(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def run(args: list[str], *, python: str | None = None, env: dict[str, str] | None = None) -> Run:
    """The CLI in a child; with ``python``, that code runs first (it may patch the library)."""
    cmd = cli_command(args)
    if python is not None:
        main = "\nfrom niftislice.cli import main\nraise SystemExit(main(sys.argv[1:]))\n"
        cmd = [sys.executable, "-c", python + main, *args]
    p = subprocess.run(
        cmd,
        capture_output=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
        env={**os.environ, **(env or {})},
    )
    return Run(p.returncode, p.stdout.decode(), p.stderr.decode("utf-8", "backslashreplace"))


def start(args: list[str], pipes: bool = True) -> subprocess.Popen[bytes]:
    """The CLI running in the background (without ``pipes``: output discarded, so that orphaned
    children holding them cannot block the test)."""
    out = subprocess.PIPE if pipes else subprocess.DEVNULL
    return subprocess.Popen(cli_command(args), stdout=out, stderr=out, stdin=subprocess.DEVNULL)


def wait_for_temporary_images(out: Path, proc: subprocess.Popen[bytes], n: int = 5) -> None:
    end = time.monotonic() + 60
    while time.monotonic() < end:
        if len([p for p in leftover_tmp(out) if p.endswith(".png")]) >= n:
            return
        assert proc.poll() is None, (proc.communicate()[1] or b"").decode()
        time.sleep(0.01)
    raise AssertionError("no images appeared in a temporary folder")


def in_progress(out: Path) -> set[str]:
    """Output names whose temporary folder is in ``out``."""
    return {
        n[len(TMP_PREFIX) :].rsplit("-", 1)[0] for n in os.listdir(out) if n.startswith(TMP_PREFIX)
    }


def children(pid: int) -> set[int]:
    """Processes whose parent is ``pid`` (from /proc)."""
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.add(int(entry))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.fixture
def big(tmp_path: Path) -> Path:
    """A volume that takes a few seconds to convert: time to act while it runs."""
    return write_volume(tmp_path / "in" / "big.nii", (192, 192, 160), noise=True)


@pytest.mark.slow
def test_a_second_run_is_refused_and_a_killed_runs_leftovers_go_with_the_next(
    tmp_path: Path, big: Path
) -> None:
    small = write_volume(tmp_path / "in" / "small.nii", (7, 6, 5))
    bigs = [str(big)] + [str(shutil.copy(big, big.with_name(f"big{i}.nii"))) for i in range(3)]
    out = tmp_path / "out"
    first = start(["convert", *bigs, "-o", str(out), "-j", "1"])  # 20 s or more
    try:
        wait_for_temporary_images(out, first)
        busy = in_progress(out)
        second = run(["convert", str(small), "-o", str(out), "--skip-existing"])
        check_common(second)
        assert second.rc == 1, second.stderr
        assert second.messages("error") == [
            f"{out} is in use by another niftislice run; nothing was converted "
            "(wait for it to finish, or write elsewhere)"
        ]
        assert not (out / "small").exists()
        for stem in busy:  # still being written, or finished since: never removed
            assert stem in in_progress(out) or (out / stem / f"{stem}.json").is_file(), stem
        first.send_signal(signal.SIGKILL)
        first.wait(30)
    finally:
        first.kill()
        first.communicate()
    third = run(
        ["convert", str(small), *bigs, "-o", str(out), "--skip-existing", "--slices", "middle"]
    )
    check_common(third)
    assert third.rc == 0, third.stderr
    assert "0 failed" in third.stderr
    assert not leftover_tmp(out), leftover_tmp(out)


@pytest.mark.slow
def test_another_holder_of_the_lock_is_respected(tmp_path: Path) -> None:
    """The lock is an advisory ``flock`` on OUT itself: any holder keeps a run out."""
    src = write_volume(tmp_path / "in" / "scan.nii", (7, 6, 5))
    out = tmp_path / "out"
    out.mkdir()
    (out / ".niftislice-tmp-scan-abcd1234").mkdir()  # someone's work in progress
    fd = os.open(out, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        refused = run(["convert", str(src), "-o", str(out)])
        assert refused.rc == 1 and "in use by another niftislice run" in refused.stderr
        assert tree(out) == [".niftislice-tmp-scan-abcd1234"]
    finally:
        os.close(fd)
    done = run(["convert", str(src), "-o", str(out)])
    assert done.rc == 0, done.stderr
    assert not leftover_tmp(out) and (out / "scan" / "scan.json").is_file()


def descendants(pid: int) -> set[int]:
    """Children of ``pid``, their children, and so on (from /proc)."""
    found, todo = set(), [pid]
    while todo:
        new = children(todo.pop()) - found
        found |= new
        todo += new
    return found


@contextlib.contextmanager
def on_a_terminal(args: list[str]) -> Iterator[subprocess.Popen[bytes]]:
    """The CLI running on a pseudo-terminal, as a user starts it: progress bars and their
    thread, hence a forkserver whose children the pool workers are (its output is drained)."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(cli_command(args), stdin=slave, stdout=slave, stderr=slave)
    os.close(slave)

    def drain() -> None:
        with contextlib.suppress(OSError):
            while os.read(master, 65536):
                pass

    threading.Thread(target=drain, daemon=True).start()
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait()
        os.close(master)


@pytest.mark.slow
@pytest.mark.parametrize("terminal", [False, True], ids=["output-discarded", "terminal"])
def test_pool_workers_die_with_a_killed_batch(tmp_path: Path, terminal: bool) -> None:
    """Every process the batch started (pool workers; on a terminal also the forkserver they
    come from, which lives as long as any of them) ends once the batch is SIGKILLed."""
    inputs = [
        str(write_volume(tmp_path / "in" / f"big{i}.nii", (192, 192, 160), noise=True))
        for i in range(2)
    ]
    out = tmp_path / "out"
    args = ["convert", *inputs, "-o", str(out), "-j", "2"]
    family: set[int] = set()
    with contextlib.ExitStack() as stack:
        batch = stack.enter_context(on_a_terminal(args)) if terminal else start(args, pipes=False)
        stack.callback(batch.wait)
        stack.callback(batch.kill)
        wait_for_temporary_images(out, batch)
        family = descendants(batch.pid)
        workers = family - children(batch.pid) if terminal else children(batch.pid)
        assert len(workers) >= 2, (family, workers)  # on a terminal: the forkserver's children
        batch.send_signal(signal.SIGKILL)
        batch.wait(30)
        # a worker stops at its next bytecode after SIGTERM and lets its encoder threads
        # finish their images (within 10 s: then an alarm ends it); under load that took
        # over 15 s once
        end = time.monotonic() + 60
        while any(map(alive, family)) and time.monotonic() < end:
            time.sleep(0.05)
        try:
            assert not any(map(alive, family)), f"outlived their batch: {survivors(family)}"
        finally:
            for pid in family:  # orphans (when this test fails) would convert on, then hang
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
    time.sleep(0.5)
    left = leftover_tmp(out)
    again = run(["convert", *inputs, "-o", str(out), "--skip-existing", "--slices", "middle"])
    assert again.rc == 0, again.stderr
    assert not leftover_tmp(out), (left, leftover_tmp(out))


# A batch of two files on a pool of two workers whose conversions ignore being stopped: each
# KeyboardInterrupt the worker's SIGTERM handler raises is lost (as in a C call that never
# returns, or a lock a killed sibling held), so only a hard deadline can end them.
STUBBORN_BATCH = """
import os, sys, time
from pathlib import Path
import niftislice.batch.run as run
from niftislice.batch.discover import Job
from niftislice.options import ConvertOptions
run._STOP_GRACE_S = 2
def stubborn(job, out, options, threads):
    (out / f"started-{os.getpid()}").touch()
    while True:
        try:
            time.sleep(0.05)
        except KeyboardInterrupt:
            pass
jobs = [Job(Path(f"in{i}.nii"), Path(), f"s{i}") for i in range(2)]
run._run_pool(jobs, Path(sys.argv[1]), ConvertOptions(), 2, 1, lambda i, r: None, task=stubborn)
"""


def survivors(pids: set[int]) -> str:
    """State and kernel wait channel of the processes of ``pids`` still alive."""
    rows = []
    for pid in sorted(filter(alive, pids)):
        with contextlib.suppress(OSError):
            stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
            rows.append(f"{pid} {stat} {Path(f'/proc/{pid}/wchan').read_text()}")
    return "; ".join(rows)


@pytest.mark.slow
def test_workers_that_ignore_the_stop_die_by_a_deadline(tmp_path: Path) -> None:
    """Today such workers outlive their killed batch for ever (converting on, then hanging)."""
    batch = subprocess.Popen(
        [sys.executable, "-c", STUBBORN_BATCH, str(tmp_path)], stdin=subprocess.DEVNULL
    )
    workers: set[int] = set()
    try:
        end = time.monotonic() + 60
        while len(list(tmp_path.glob("started-*"))) < 2:
            assert batch.poll() is None and time.monotonic() < end, "the workers did not start"
            time.sleep(0.02)
        workers = {int(p.name.split("-")[1]) for p in tmp_path.glob("started-*")}
        batch.send_signal(signal.SIGKILL)
        batch.wait(30)
        end = time.monotonic() + 30  # the deadline is 2 s here
        while any(map(alive, workers)) and time.monotonic() < end:
            time.sleep(0.05)
        assert not any(map(alive, workers)), f"workers outlived their batch: {survivors(workers)}"
    finally:
        batch.kill()
        batch.wait()
        for pid in workers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


# A pool worker's conversion (run as the pool runs it) told to stop twice: PR_SET_PDEATHSIG
# sends SIGTERM once per thread of a dying run, the second while the first one's cleanup runs.
STOPPED_TWICE = """
import os, signal, sys, threading, time
from pathlib import Path
import niftislice.batch.run as run
from niftislice.batch.discover import Job
from niftislice.options import ConvertOptions
out = Path(sys.argv[1])
def conversion(job, out, options, threads):
    tmp = out / ".niftislice-tmp-scan-abcd1234"
    tmp.mkdir()
    (tmp / "half.png").write_bytes(b"half")
    threading.Timer(0.05, os.kill, (os.getpid(), signal.SIGTERM)).start()
    try:
        time.sleep(30)
    except BaseException:
        threading.Timer(0.05, os.kill, (os.getpid(), signal.SIGTERM)).start()
        time.sleep(0.5)  # removing a few hundred images takes a moment
        (tmp / "half.png").unlink()
        tmp.rmdir()
        raise
run._init_worker(None)
try:
    run._queued(conversion, Job(Path("scan.nii"), Path(), "scan"), out, ConvertOptions(), 1)
except KeyboardInterrupt:
    sys.exit(3)
"""


@pytest.mark.slow
def test_a_second_stop_signal_does_not_cut_the_cleanup_short(tmp_path: Path) -> None:
    """Today the second SIGTERM raised a KeyboardInterrupt inside the cleanup of the first:
    the temporary folder stayed (one killed run in four left one)."""
    done = subprocess.run(
        [sys.executable, "-c", STOPPED_TWICE, str(tmp_path)], capture_output=True, timeout=60
    )
    assert done.returncode == 3, done.stderr.decode()
    assert tree(tmp_path) == [], tree(tmp_path)


# A child that converts with --overwrite and dies (as with SIGKILL: no cleanup) the moment a
# rename moves the existing output OUT/scan away: the first of the two renames of old.
DIE_ON_MOVING_THE_OUTPUT_AWAY = """
import os, sys
from pathlib import Path
import niftislice.files as files
FINAL = os.environ["DIE_ON_MOVING"]
if os.environ.get("NO_EXCHANGE"):
    files._RENAMEAT2 = None
real_rename = os.rename
def rename(src, dst, *a, **k):
    if os.path.abspath(src) == FINAL:
        real_rename(src, dst, *a, **k)
        os._exit(137)
    return real_rename(src, dst, *a, **k)
os.rename = rename
"""


@pytest.mark.slow
@pytest.mark.parametrize("exchange", [True, False], ids=["exchange", "two-renames"])
def test_overwrite_killed_midway_never_loses_the_output(tmp_path: Path, exchange: bool) -> None:
    src = write_volume(tmp_path / "in" / "scan.nii", (9, 8, 7))
    out = tmp_path / "out"
    assert run(["convert", str(src), "-o", str(out), "--slices", "middle"]).rc == 0
    before = contents(out)
    env = {"DIE_ON_MOVING": str((out / "scan").absolute()), "NO_EXCHANGE": "" if exchange else "1"}
    killed = run(
        ["convert", str(src), "-o", str(out), "--overwrite"],
        python=DIE_ON_MOVING_THE_OUTPUT_AWAY,
        env=env,
    )
    if exchange:  # one atomic step: nothing to die between
        assert killed.rc == 0, killed.stderr
        assert (out / "scan" / "scan.json").is_file()
        assert contents(out) != before and not leftover_tmp(out)
        return
    assert killed.rc == 137, killed.stderr
    assert not (out / "scan").exists() and leftover_tmp(out)  # the state a kill leaves
    resumed = run(["convert", str(src), "-o", str(out), "--skip-existing"])
    check_common(resumed)
    assert resumed.rc == 0, resumed.stderr
    assert "restored" in resumed.stderr and "1 skipped" in resumed.stderr
    assert contents(out) == before, "the previous output was not put back"
    assert not leftover_tmp(out)


@pytest.mark.slow
def test_scheduler_dying_mid_batch_reports_what_is_on_disk(tmp_path: Path) -> None:
    """Scheduler and worker are SIGKILLed once the first output is complete: that one is
    ``converted`` whether or not its result came back, the rest fail with one line each."""
    pytest.importorskip("distributed")
    inputs = [
        str(write_volume(tmp_path / "in" / f"v{i}.nii", (128, 128, 96), noise=True))
        for i in range(6)
    ]
    info = tmp_path / "scheduler.json"
    cluster = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "distributed.cli.dask_scheduler",
                "--scheduler-file",
                str(info),
                "--host",
                "127.0.0.1",
                "--no-dashboard",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    ]
    out, report = tmp_path / "out", tmp_path / "report.json"
    try:
        end = time.monotonic() + 60
        while not (info.exists() and info.stat().st_size) and time.monotonic() < end:
            time.sleep(0.1)
        cluster.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "distributed.cli.dask_worker",
                    "--scheduler-file",
                    str(info),
                    "--nworkers",
                    "1",
                    "--nthreads",
                    "1",
                    "--no-dashboard",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        address = json.loads(info.read_text())["address"]
        batch = start(
            ["convert", *inputs, "-o", str(out), "--scheduler", address, "--report", str(report)]
        )
        while not list(out.glob("v*/v*.json")):
            assert batch.poll() is None, batch.communicate()[1].decode()
            assert time.monotonic() < end + 120, "no output completed"
            time.sleep(0.02)
        for p in cluster:
            p.kill()
        _, err = batch.communicate(timeout=120)
    finally:
        for p in cluster:
            p.kill()
            p.wait()
    result = Run(batch.returncode, "", err.decode())
    check_common(result)
    assert result.rc == 1, result.stderr
    records = json.loads(report.read_text())["inputs"]
    on_disk = {p.parent.name for p in out.glob("v*/v*.json")}
    converted = {Path(r["source"]).stem for r in records if r["status"] == "converted"}
    assert converted == on_disk and on_disk, (converted, on_disk)
    failed = [r for r in records if r["status"] == "failed"]
    assert len(result.messages("error")) == len(failed) == len(inputs) - len(converted)
    again = run(["convert", *inputs, "-o", str(out), "--skip-existing", "--slices", "middle"])
    assert again.rc == 0 and f"{len(on_disk)} skipped" in again.stderr, again.stderr
    assert not leftover_tmp(out)


# A child that writes one file (a preview, a stack, a report) and, once that file is complete
# under its temporary name, sends itself the signal SIGNAL the moment it renames it onto TARGET:
# SIGKILL (dead: the temporary file stays, nothing cleans it) or SIGSTOP (a writer still alive).
SIGNAL_ON_RENAMING_ONTO = """
import os, sys
TARGET, SIGNAL = os.environ["TARGET"], int(os.environ["SIGNAL"])
real_replace = os.replace
def replace(src, dst, *a, **k):
    if os.path.abspath(dst) == TARGET:
        os.kill(os.getpid(), SIGNAL)
    return real_replace(src, dst, *a, **k)
os.replace = replace
"""


def anatomical() -> str:
    from nibabel.testing import data_path

    return os.path.join(data_path, "anatomical.nii")


def single_file_command(kind: str, tmp_path: Path) -> tuple[list[str], Path]:
    """The command that writes the one file ``tmp_path/out/<name>``, and that file."""
    out = tmp_path / "out"
    target = out / {"preview": "p.png", "stack": "b.nii.gz", "report": "r.json"}[kind]
    if kind == "preview":
        return ["preview", anatomical(), "-o", str(target)], target
    if kind == "stack":
        exported = run(["convert", anatomical(), "-o", str(tmp_path / "exp"), "--views", "axial"])
        assert exported.rc == 0, exported.stderr
        return ["stack", str(tmp_path / "exp" / "anatomical"), "-o", str(target)], target
    out.mkdir(parents=True)
    images = str(tmp_path / "images")
    return ["convert", anatomical(), "-o", images, "--slices", "middle", "--report", str(target)], (
        target
    )


def temporaries(target: Path) -> list[str]:
    """Temporary files beside ``target``."""
    return sorted(n for n in os.listdir(target.parent) if n.startswith(TMP_PREFIX))


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["preview", "stack", "report"])
def test_a_killed_runs_temporary_file_goes_with_the_next_write_of_that_file(
    tmp_path: Path, kind: str
) -> None:
    """Today the killed run's ``.niftislice-tmp-*`` file (a whole image, a whole volume) stays
    for ever: nothing tells it from a live run's."""
    args, target = single_file_command(kind, tmp_path)
    env = {"TARGET": str(target.absolute()), "SIGNAL": str(int(signal.SIGKILL))}
    killed = run(args, python=SIGNAL_ON_RENAMING_ONTO, env=env)
    assert killed.rc == -signal.SIGKILL, killed.stderr
    left = temporaries(target)
    assert len(left) == 1 and not target.exists(), left
    ext = target.name[target.name.index(".") :]
    mine = [  # the user's, and another output's a killed run left: never touched
        target.parent / f"{TMP_PREFIX}{target.name}-notes.txt",
        target.parent / f"{TMP_PREFIX}{target.name}-k1ll3d_x{ext}.bak",
        target.parent / f"{TMP_PREFIX}q{target.name}-k1ll3d_x{ext}",
    ]
    for p in mine:
        p.write_bytes(b"keep")
    again = run([*args, "--skip-existing"] if kind == "report" else args)
    check_common(again)
    assert again.rc == 0, again.stderr
    assert sorted(os.listdir(target.parent)) == sorted([target.name, *(p.name for p in mine)])
    assert all(p.read_bytes() == b"keep" for p in mine)
    if kind == "report":
        assert json.loads(target.read_text())["summary"]["skipped"] == 1
        return
    reference = tmp_path / "clean" / target.name  # what a run nobody killed writes
    assert run([a.replace(str(target), str(reference)) for a in args]).rc == 0
    assert target.read_bytes() == reference.read_bytes()


@pytest.mark.slow
def test_two_previews_into_one_folder_keep_each_others_temporary_file(tmp_path: Path) -> None:
    """A second run writing the same file while the first is still writing it removes nothing
    of the first's, which then completes."""
    args, target = single_file_command("preview", tmp_path)
    env = {"TARGET": str(target.absolute()), "SIGNAL": str(int(signal.SIGSTOP))}
    main = "\nfrom niftislice.cli import main\nraise SystemExit(main(sys.argv[1:]))\n"
    first = subprocess.Popen(
        [sys.executable, "-c", SIGNAL_ON_RENAMING_ONTO + main, *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, **env},
    )
    try:
        end = time.monotonic() + 60
        while Path(f"/proc/{first.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "T":
            assert first.poll() is None and time.monotonic() < end, "the first did not stop"
            time.sleep(0.02)
        writing = temporaries(target)
        assert len(writing) == 1 and not target.exists()
        second = run(args)
        check_common(second)
        assert second.rc == 0 and target.is_file(), second.stderr
        assert temporaries(target) == writing, "the live run's temporary file was removed"
        first.send_signal(signal.SIGCONT)
        _, err = first.communicate(timeout=60)
        assert first.returncode == 0, err.decode()
    finally:
        first.kill()
        first.wait()
    assert temporaries(target) == [] and sorted(os.listdir(target.parent)) == ["p.png"]
