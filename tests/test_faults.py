"""Faults and hostile input (issue 11): names that are not text, unreadable folders, runs that
write nothing, read-only and inode-starved file systems, a bad scheduler address.

Runs that could crash the interpreter (a name reaching OpenCV) use a child process. Unreadable
folders are real ``chmod 000`` folders; as root the child drops the capabilities that bypass
permissions (``setpriv``). Read-only and inode-starved file systems are small tmpfs mounts,
skipped where mounting is not allowed.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from _batch_helpers import NOT_NIFTI, tiny_head, write_nifti
from conftest_malformed import Run, check_common, cli_command, leftover_tmp, run_in_process, tree

BAD_UTF8 = b"bad\xff\xfe"  # not valid UTF-8: Python sees lone surrogates (\udcff\udcfe)
ESCAPES = "esc\x1b]0;PWNED\x07\t"  # sets a terminal's title, rings its bell
RAW_CONTROL = ("\x1b", "\x07", "\t", "\udcff")


def run_child(args: list[str], *, prefix: list[str] | None = None, timeout: float = 120) -> Run:
    p = subprocess.run(
        [*(prefix or []), *cli_command(args)],
        capture_output=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    return Run(
        p.returncode,
        p.stdout.decode("utf-8", "surrogateescape"),
        p.stderr.decode("utf-8", "surrogateescape"),
    )


def volume(path: Path | bytes) -> Path:
    data, aff = tiny_head()
    return write_nifti(Path(os.fsdecode(path)), data, aff)


def assert_printable(text: str) -> None:
    """No control character or undecodable byte reaches the terminal."""
    bad = [c for c in RAW_CONTROL if c in text]
    assert not bad, f"raw control characters {bad} in {text!r}"


# ------------------------------------------------------------------ names


def test_display_name_escapes_control_characters_and_undecodable_bytes() -> None:
    from niftislice.naming import display_name

    assert display_name(os.fsdecode(BAD_UTF8 + b".nii")) == "bad\\xff\\xfe.nii"
    assert display_name(ESCAPES) == "esc\\x1b]0;PWNED\\x07\\t"
    assert display_name("a\nb\u202ec") == "a\\nb\\u202ec"  # bidi override: reorders a terminal
    assert display_name("sub-01 café.nii.gz") == "sub-01 café.nii.gz"  # printable text stays
    assert display_name("café", ascii_only=True) == "caf\\xe9"  # for OpenCV's ASCII fonts
    weird = os.fsdecode(BAD_UTF8) + ESCAPES + "\u202e"
    assert display_name(display_name(weird)) == display_name(weird)


@pytest.mark.slow
def test_undecodable_and_escaping_names_convert_with_every_picture(tmp_path: Path) -> None:
    """Montage and viewer carry the name: once a crash (SIGSEGV in cv2.putText) and a
    UnicodeEncodeError; now both files convert and every picture is written."""
    src = tmp_path / "in"
    volume(os.fsencode(src) + b"/" + BAD_UTF8 + b".nii.gz")
    volume(src / f"{ESCAPES}.nii.gz")
    out = tmp_path / "out"
    run = run_child(["convert", str(src), "-o", str(out), "--montage", "--html", "-j", "1"])
    check_common(run)
    assert run.rc == 0, run.stderr
    assert "2 converted, 0 skipped, 0 failed" in run.stderr
    assert_printable(run.stderr)
    folders = sorted(p for p in out.iterdir() if p.is_dir())
    assert [p.name for p in folders] == ["bad", "esc_0_PWNED"]
    for folder in folders:
        assert len(list(folder.glob("*_montage.png"))) == 3
        page = (folder / "index.html").read_bytes().decode("utf-8")  # strict: valid UTF-8
        assert_printable(page)
        sidecar = (folder / f"{folder.name}.json").read_bytes().decode("ascii")
        assert "\\ud" not in sidecar  # no lone surrogate escapes: strict JSON readers refuse them
    page = (out / "bad" / "index.html").read_text()
    assert "<title>bad\\xff\\xfe.nii.gz" in page
    assert not leftover_tmp(out)


@pytest.mark.slow
def test_preview_of_an_undecodable_name(tmp_path: Path) -> None:
    src = volume(os.fsencode(tmp_path) + b"/" + BAD_UTF8 + b".nii.gz")
    out = tmp_path / "p.png"
    run = run_child(["preview", str(src), "-o", str(out)])
    check_common(run)
    assert run.rc == 0, run.stderr
    assert out.stat().st_size > 1000
    assert_printable(run.stderr)


def test_control_characters_are_escaped_in_every_message(tmp_path: Path, capfd) -> None:
    """Errors, warnings and the summary name files without handing the terminal raw escapes."""
    junk = tmp_path / f"{ESCAPES}.nii"
    junk.write_bytes(NOT_NIFTI)
    undecodable = Path(os.fsdecode(os.fsencode(tmp_path) + b"/" + BAD_UTF8 + b".nii"))
    undecodable.write_bytes(NOT_NIFTI)
    out = tmp_path / f"out{ESCAPES}"
    for args in (
        ["convert", str(junk), str(undecodable), "-o", str(out)],
        ["info", str(junk)],
        ["preview", str(undecodable), "-o", str(tmp_path / "p.png")],
        ["convert", str(tmp_path / f"missing{ESCAPES}"), "-o", str(out)],
    ):
        run = run_in_process(args, capfd)
        assert run.rc in (1, 2), run.stderr
        check_common(run)
        assert_printable(run.stderr)
        assert "\\x1b]0;PWNED\\x07\\t" in run.stderr or "bad\\xff\\xfe" in run.stderr, run.stderr
    (out / "esc").mkdir(parents=True)  # an existing output named in the refusal
    run = run_in_process(["convert", str(volume(tmp_path / "esc.nii")), "-o", str(out)], capfd)
    assert run.rc == 1 and "exists" in run.stderr
    assert_printable(run.stderr)


def test_log_lines_and_debug_tracebacks_are_printable(tmp_path: Path, capfd, monkeypatch) -> None:
    """-vv shows an unexpected error's traceback: its lines name the file too (today raw).
    Log lines say their level as every other line does (``warning:``, not ``WARNING:``)."""
    import niftislice.batch.worker as worker

    def broken(path, *args, **kwargs):
        raise RuntimeError(f"cannot handle {path}")

    monkeypatch.setattr(worker, "convert_file", broken)
    src = volume(tmp_path / f"{ESCAPES}.nii")
    out = tmp_path / "out"
    run = run_in_process(["convert", str(src), "-o", str(out), "-vv"], capfd)
    assert run.rc == 1
    assert "Traceback" in run.stderr and "RuntimeError: cannot handle" in run.stderr
    assert_printable(run.stderr)
    (out / ".niftislice-tmp-old-abcd1234").mkdir(parents=True)  # a killed run's, restored
    (out / ".niftislice-tmp-old-abcd1234" / "esc_0_PWNED.json").write_text("{}")
    monkeypatch.undo()
    run = run_in_process(["convert", str(src), "-o", str(out), "--skip-existing"], capfd)
    assert run.rc == 0, run.stderr
    assert [m for m in run.messages("warning") if "restored" in m], run.stderr


def test_an_unreadable_folder_without_privileges_to_drop(study: Path, tmp_path, capfd, monkeypatch):
    """The folder refusals the tests above get from the kernel, made in Python (for a root
    that cannot drop its capabilities, where those tests skip)."""
    real = os.scandir

    def scandir(path="."):
        if Path(os.fsdecode(path)) == study / "locked":
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)
    run = run_in_process(["convert", str(study), "-o", str(tmp_path / "out")], capfd)
    check_common(run)
    assert run.rc == 1, run.stderr
    assert run.messages("error") == [f"{study / 'locked'}: cannot read folder: Permission denied"]
    assert "1 converted, 0 skipped, 1 failed" in run.stderr


def test_report_names_are_printable(tmp_path: Path, capfd) -> None:
    junk = Path(os.fsdecode(os.fsencode(tmp_path) + b"/" + BAD_UTF8 + b".nii"))
    junk.write_bytes(NOT_NIFTI)
    report = tmp_path / "report.json"
    run = run_in_process(
        ["convert", str(junk), "-o", str(tmp_path / "out"), "--report", str(report)], capfd
    )
    assert run.rc == 1
    text = report.read_bytes().decode("ascii")
    assert "\\ud" not in text
    (record,) = json.loads(text)["inputs"]
    assert record["source"].endswith("bad\\xff\\xfe.nii")


def _report_to(target: Path, tmp_path: Path, capfd) -> Run:
    src = volume(tmp_path / "in" / "scan.nii.gz")
    args = ["convert", str(src), "-o", str(tmp_path / "out"), "--skip-existing", "-q"]
    return run_in_process([*args, "--report", str(target)], capfd)


def test_a_report_to_a_pipe_or_descriptor_is_written_there_not_replaced(tmp_path: Path, capfd):
    """Today the report's atomic replace put a regular file in place of a named pipe or of a
    link to a descriptor (``/dev/stdout``; as root, ``--report /dev/null`` replaced /dev/null)."""
    fifo = tmp_path / "report.fifo"
    os.mkfifo(fifo)
    got: list[bytes] = []

    def read() -> None:
        with open(fifo, "rb") as f:
            got.append(f.read())

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    run = _report_to(fifo, tmp_path, capfd)
    assert run.rc == 0, run.stderr
    assert stat.S_ISFIFO(fifo.lstat().st_mode)
    reader.join(10)
    assert got and json.loads(got[0])["summary"]["converted"] == 1
    stdout = tmp_path / "stdout"  # as /dev/stdout is
    stdout.symlink_to("/proc/self/fd/1")
    run = _report_to(stdout, tmp_path, capfd)
    assert run.rc == 0, run.stderr
    assert stdout.is_symlink() and json.loads(run.stdout)["summary"]["skipped"] == 1


def test_a_report_to_a_device_is_written_there_not_replaced(tmp_path: Path, capfd):
    """Twins of /dev/null and /dev/full (made here: replacing the real ones would break the
    machine, which is what happened as root)."""
    devices = {}
    for name, minor in (("null", 3), ("full", 7)):
        try:
            os.mknod(tmp_path / name, 0o666 | stat.S_IFCHR, os.makedev(1, minor))
            os.close(os.open(tmp_path / name, os.O_WRONLY))
        except OSError as e:  # not root, or a file system mounted nodev
            pytest.skip(f"cannot make a device node here: {e}")
        devices[name] = tmp_path / name
    run = _report_to(devices["null"], tmp_path, capfd)
    assert run.rc == 0, run.stderr
    run = _report_to(devices["full"], tmp_path, capfd)
    assert run.rc == 1
    (error,) = run.messages("error")
    assert str(devices["full"]) in error and "No space left" in error, error
    for path in devices.values():
        assert stat.S_ISCHR(path.lstat().st_mode), path
    assert not leftover_tmp(tmp_path)


# ------------------------------------------------------------------ unreadable folders


@pytest.fixture
def study(tmp_path: Path) -> Iterator[Path]:
    """``study/ok/a.nii.gz`` readable, ``study/locked`` (holding a volume) mode 000."""
    root = tmp_path / "study"
    volume(root / "ok" / "a.nii.gz")
    volume(root / "locked" / "b.nii.gz")
    (root / "locked").chmod(0)
    try:
        yield root
    finally:
        (root / "locked").chmod(0o755)
        root.chmod(0o755)


@pytest.mark.slow
def test_an_unreadable_subfolder_is_a_failed_input(study: Path, unprivileged, tmp_path) -> None:
    out, report = tmp_path / "out", tmp_path / "report.json"
    run = run_child(
        ["convert", str(study), "-o", str(out), "--report", str(report)], prefix=unprivileged
    )
    check_common(run)
    assert run.rc == 1, run.stderr
    assert "1 converted, 0 skipped, 1 failed" in run.stderr
    assert run.messages("error") == [f"{study / 'locked'}: cannot read folder: Permission denied"]
    assert (out / "ok" / "a" / "a.json").is_file()
    records = json.loads(report.read_text())["inputs"]
    assert [(r["source"], r["status"]) for r in records] == [
        (str(study / "locked"), "failed"),
        (str(study / "ok" / "a.nii.gz"), "converted"),
    ]


@pytest.mark.slow
def test_an_unreadable_top_folder_is_a_failed_input(study: Path, unprivileged, tmp_path) -> None:
    study.chmod(0)
    out = tmp_path / "out"
    run = run_child(["convert", str(study), "-o", str(out)], prefix=unprivileged)
    check_common(run)
    assert run.rc == 1, run.stderr
    assert run.messages("error") == [f"{study}: cannot read folder: Permission denied"]
    assert "no input volumes" not in run.stderr
    assert not out.exists()


def test_no_nifti_found_names_the_folders_searched(tmp_path: Path, capfd) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "readme.txt").write_text("no images here\n")
    out = tmp_path / "out"
    run = run_in_process(
        ["convert", str(tmp_path / "empty"), str(tmp_path / "notes"), "-o", str(out)], capfd
    )
    assert run.rc == 2
    (error,) = run.messages("error")
    # every format a folder search takes, not NIfTI alone
    searched = f"{tmp_path / 'empty'}, {tmp_path / 'notes'}"
    assert error == (
        f"no input volumes found in {searched} (searched for NIfTI, DICOM, NRRD, MetaImage, "
        "Analyze, MGH, MINC and PAR/REC files)"
    )
    assert not out.exists()


# ------------------------------------------------------------------ runs that write nothing


def test_a_run_that_writes_nothing_creates_nothing(tmp_path: Path, capfd) -> None:
    src = volume(tmp_path / "in" / "scan.nii.gz")  # 33 x 39 x 32 voxels
    for out in (tmp_path / "out", tmp_path / "deep" / "er" / "out"):
        run = run_in_process(["convert", str(src), "-o", str(out), "--slices", "100"], capfd)
        check_common(run)
        assert run.rc == 1 and "selection is empty" in run.stderr, run.stderr
        assert not out.exists() and not (tmp_path / "deep").exists(), tree(tmp_path)
    # a nested input that fails leaves no empty mirrored folders beside a converted one
    volume(tmp_path / "study" / "good" / "a.nii.gz")
    bad = tmp_path / "study" / "sub" / "deeper" / "b.nii.gz"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(NOT_NIFTI)
    out = tmp_path / "out"
    run = run_in_process(["convert", str(tmp_path / "study"), "-o", str(out), "-j", "1"], capfd)
    assert run.rc == 1
    assert sorted(p.name for p in out.iterdir()) == ["good"], tree(out)


# ------------------------------------------------------------------ small file systems


@contextlib.contextmanager
def tmpfs(where: Path, options: str) -> Iterator[Path]:
    where.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


@pytest.mark.slow
@pytest.mark.parametrize("inodes", [3, 4, 6, 40])
def test_running_out_of_inodes_is_one_line(tmp_path: Path, inodes: int) -> None:
    src = volume(tmp_path / "in" / "scan.nii.gz")
    with tmpfs(tmp_path / "fs", f"size=8m,nr_inodes={inodes}") as fs:
        run = run_child(["convert", str(src), "-o", str(fs / "a" / "out"), "--montage", "--html"])
        check_common(run)
        assert run.rc == 1, run.stderr
        (error,) = run.messages("error")
        assert error.startswith(f"{src}: ") and "inode" in error, error
        assert tree(fs) == [], tree(fs)


def test_report_on_a_read_only_file_system_is_one_line(tmp_path: Path) -> None:
    src = volume(tmp_path / "in" / "scan.nii.gz")
    with tmpfs(tmp_path / "ro", "ro,size=1m") as ro:
        run = run_child(
            ["convert", str(src), "-o", str(tmp_path / "out"), "--report", str(ro / "r.json")]
        )
        check_common(run)
        assert run.rc == 1, run.stderr
        (error,) = run.messages("error")
        assert error == f"cannot write the report {ro / 'r.json'}: Read-only file system"
        assert (tmp_path / "out" / "scan" / "scan.json").is_file()  # the conversion stands


@pytest.mark.slow
def test_a_nonsense_scheduler_address_is_one_quick_line(tmp_path: Path) -> None:
    pytest.importorskip("distributed")
    src = volume(tmp_path / "scan.nii.gz")
    start = time.monotonic()
    run = run_child(
        ["convert", str(src), "-o", str(tmp_path / "out"), "--scheduler", "nonsense://"]
    )
    seconds = time.monotonic() - start
    check_common(run)
    assert run.rc == 2, run.stderr
    (error,) = run.messages("error")
    assert error.startswith("scheduler: ") and "not a scheduler address" in error, error
    assert seconds < 10, f"{seconds:.1f} s"  # importing Dask takes 2-6 s; a failed client 10 more
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
@pytest.mark.parametrize("address", ["x", "tcp://host:notaport", "inproc://x"])
def test_an_unusable_scheduler_address_is_not_a_timeout(tmp_path: Path, address: str) -> None:
    """Today: 'cannot connect to x within 5 s' for an address refused at once."""
    pytest.importorskip("distributed")
    src = volume(tmp_path / "scan.nii.gz")
    start = time.monotonic()
    run = run_child(["convert", str(src), "-o", str(tmp_path / "out"), "--scheduler", address])
    seconds = time.monotonic() - start
    check_common(run)
    assert run.rc == 2, run.stderr
    (error,) = run.messages("error")
    assert error.startswith(f"scheduler: cannot use {address} (") and "within" not in error, error
    assert seconds < 10, f"{seconds:.1f} s"
    assert not (tmp_path / "out").exists()
