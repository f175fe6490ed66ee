"""Output safety: existing output is never lost or overwritten by accident, interrupted and failed
runs leave no temporary folders or partial output, a full disk is one clear error.

Interruption and disk-full run the real CLI in a child process: SIGINT arrives while images are
being written; file-size limits (RLIMIT_FSIZE with SIGXFSZ ignored) make writes fail with EFBIG,
as on a full disk.
"""

from __future__ import annotations

import hashlib
import os
import resource
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from conftest_malformed import (
    TMP_PREFIX,
    Run,
    check_common,
    check_converted,
    cli_command,
    leftover_tmp,
    run_in_process,
    tree,
    workdir_fixture,  # noqa: F401 - provides the workdir fixture
)
from nifti_bytes import gradient, header_for, nifti_file, valid_volume


def contents(root: Path) -> dict[str, str]:
    """Every file below ``root`` with the sha256 of its bytes."""
    return {
        os.fsdecode(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def write_volume(path: Path, shape: tuple[int, ...], *, noise: bool = False, seed: int = 0) -> Path:
    if noise:
        arr = np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)
    else:
        arr = gradient(shape, "i2") * (seed + 1)
    path.write_bytes(nifti_file(header_for(arr), arr))
    return path


def run_child(args: list[str], *, fsize: int | None = None, timeout: float = 120) -> Run:
    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
        if fsize is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))

    p = subprocess.run(
        cli_command(args),
        capture_output=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        preexec_fn=limit,
    )
    return Run(
        p.returncode,
        p.stdout.decode("utf-8", "backslashreplace"),
        p.stderr.decode("utf-8", "backslashreplace"),
    )


# ------------------------------------------------------------------ existing output


@pytest.fixture
def converted(
    workdir: Path, capfd: pytest.CaptureFixture[str]
) -> tuple[Path, Path, dict[str, str]]:
    """``in/scan.nii`` converted once into ``out``; returns (input, out, contents of out)."""
    inp = write_volume(workdir / "in" / "scan.nii", (7, 6, 5))
    out = workdir / "out"
    check_converted(run_in_process(["convert", str(inp), "-o", str(out)], capfd), out)
    return inp, out, contents(out)


def test_existing_output_is_kept_without_overwrite(converted, capfd) -> None:
    inp, out, before = converted
    write_volume(inp, (7, 6, 5), seed=3)  # new content, same name
    run = run_in_process(["convert", str(inp), "-o", str(out)], capfd)
    check_common(run)
    assert run.rc == 1
    errors = run.messages("error")
    # one line naming the input, or the output folder when the whole batch is refused up front
    assert len(errors) == 1 and "--overwrite" in errors[0], run.stderr
    assert errors[0].startswith((f"{inp}: ", f"output {out / 'scan'} exists")), errors
    assert contents(out) == before
    assert not leftover_tmp(out)


def test_skip_existing_keeps_output(converted, capfd) -> None:
    inp, out, before = converted
    write_volume(inp, (7, 6, 5), seed=3)
    run = run_in_process(["convert", str(inp), "-o", str(out), "--skip-existing"], capfd)
    check_common(run)
    assert run.rc == 0 and not run.messages("error")
    assert contents(out) == before


def test_overwrite_replaces_output_whole(converted, capfd) -> None:
    inp, out, before = converted
    write_volume(inp, (9, 8, 4), seed=3)  # different shape: different file names too
    run = run_in_process(["convert", str(inp), "-o", str(out), "--overwrite"], capfd)
    check_converted(run, out)
    after = contents(out)
    assert after != before
    fresh = inp.parent.parent / "fresh"
    check_converted(run_in_process(["convert", str(inp), "-o", str(fresh)], capfd), fresh)
    assert set(after) == set(contents(fresh)), "files of the previous output survived"


def test_overwrite_does_not_follow_a_symlink_out_of_out(workdir: Path, capfd) -> None:
    """OUT/scan is a symlink to a folder outside OUT: --overwrite never writes through it."""
    inp = write_volume(workdir / "in" / "scan.nii", (7, 6, 5))
    outside = workdir / "elsewhere"
    outside.mkdir()
    (outside / "keep.txt").write_text("precious")
    out = workdir / "out"
    out.mkdir()
    (out / "scan").symlink_to(outside, target_is_directory=True)
    run = run_in_process(["convert", str(inp), "-o", str(out), "--overwrite"], capfd)
    check_common(run)
    assert run.rc in (0, 1)
    assert tree(outside) == ["keep.txt"] and (outside / "keep.txt").read_text() == "precious"
    assert not leftover_tmp(out)


def test_output_path_that_is_a_file(workdir: Path, capfd) -> None:
    inp = write_volume(workdir / "in" / "scan.nii", (7, 6, 5))
    out = workdir / "out"
    out.write_text("not a folder")
    run = run_in_process(["convert", str(inp), "-o", str(out)], capfd)
    check_common(run)
    assert run.rc in (1, 2) and len(run.messages("error")) == 1, run.stderr
    assert out.read_text() == "not a folder"


# ------------------------------------------------------------------ interruption


def _wait_for_images(
    out: Path, proc: subprocess.Popen[bytes], at_least: int = 5, timeout: float = 60
) -> list[str]:
    """Poll until the temporary folder in ``out`` holds ``at_least`` images."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        pngs = [p for p in tree(out) if TMP_PREFIX in p and p.endswith(".png")]
        if len(pngs) >= at_least:
            return pngs
        assert proc.poll() is None, "the conversion ended before it could be interrupted"
        time.sleep(0.01)
    raise AssertionError("no images appeared in a temporary folder")


@pytest.mark.slow
@pytest.mark.parametrize("overwrite", [False, True], ids=["fresh", "overwrite"])
def test_sigint_mid_volume_leaves_earlier_output_intact(workdir: Path, overwrite: bool) -> None:
    src = workdir / "in"
    small = write_volume(src / "earlier.nii", (7, 6, 5))
    big = write_volume(src / "big.nii", (192, 192, 160), noise=True)
    out = workdir / "out"
    first = run_child(["convert", str(small), "-o", str(out)])
    assert first.rc == 0, first.stderr
    if overwrite:  # a previous, complete output of the same input
        again = run_child(["convert", str(big), "-o", str(out), "--slices", "middle"])
        assert again.rc == 0, again.stderr
    before = contents(out)
    args = ["convert", str(big), "-o", str(out), "-j", "1"] + (["--overwrite"] if overwrite else [])
    proc = subprocess.Popen(
        cli_command(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL
    )
    try:
        pngs = _wait_for_images(out, proc)
        if not overwrite:
            assert not (out / "big").exists(), "images written outside the temporary folder"
        assert all(p.startswith(TMP_PREFIX) for p in pngs)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    err = stderr.decode("utf-8", "backslashreplace")
    run = Run(proc.returncode, stdout.decode(), err)
    check_common(run)
    assert proc.returncode == 130, err
    assert contents(out) == before, "an interrupted run changed existing output"
    assert not leftover_tmp(out), leftover_tmp(out)


@pytest.mark.slow
def test_sigterm_cleans_up_too(workdir: Path) -> None:
    """A run stopped with SIGTERM (a job scheduler, `kill`) leaves no temporary folder."""
    big = write_volume(workdir / "in" / "big.nii", (192, 192, 160), noise=True)
    out = workdir / "out"
    proc = subprocess.Popen(
        cli_command(["convert", str(big), "-o", str(out), "-j", "1"]),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    )
    try:
        _wait_for_images(out, proc)
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode != 0
    assert "Traceback" not in stderr.decode("utf-8", "backslashreplace")
    assert tree(out) == [], tree(out)


# ------------------------------------------------------------------ full disk


@pytest.mark.slow
def test_disk_full_is_one_error_and_keeps_earlier_output(workdir: Path) -> None:
    """Writes past 64 KiB fail (EFBIG): the big input fails with one clear line, the small one
    in the same batch converts, the previous output of the big one is untouched."""
    src = workdir / "in"
    small = write_volume(src / "small.nii", (7, 6, 5))
    big = write_volume(src / "big.nii", (300, 300, 6), noise=True)  # each axial PNG > 64 KiB
    out = workdir / "out"
    previous = run_child(["convert", str(big), "-o", str(out), "--views", "coronal"])
    assert previous.rc == 0, previous.stderr
    before = contents(out)
    run = run_child(
        ["convert", str(small), str(big), "-o", str(out), "--overwrite", "-j", "1"], fsize=64 << 10
    )
    check_common(run)
    assert run.rc == 1, run.stderr
    errors = run.messages("error")
    assert len(errors) == 1 and errors[0].startswith(f"{big}: "), run.stderr
    assert any(w in errors[0].lower() for w in ("disk full", "file too large", "no space")), errors
    assert {k: v for k, v in contents(out).items() if k.startswith("big/")} == before
    assert (out / "small" / "small.json").is_file()
    assert not leftover_tmp(out), leftover_tmp(out)


@pytest.mark.slow
def test_disk_full_while_writing_the_sidecar(workdir: Path) -> None:
    """Images fit, the sidecar does not: still one error and no partial output."""
    inp = workdir / "in" / "tiny.nii"
    inp.write_bytes(valid_volume((3, 3, 3), "u1").to_bytes())
    out = workdir / "out"
    probe = run_child(["convert", str(inp), "-o", str(workdir / "probe")])
    assert probe.rc == 0, probe.stderr
    sizes = {p.suffix: p.stat().st_size for p in (workdir / "probe").rglob("*.*")}
    biggest_png = max(p.stat().st_size for p in (workdir / "probe").rglob("*.png"))
    assert sizes[".json"] > biggest_png
    run = run_child(["convert", str(inp), "-o", str(out)], fsize=biggest_png)
    check_common(run)
    assert run.rc == 1 and len(run.messages("error")) == 1, run.stderr
    assert tree(out) == [], tree(out)
