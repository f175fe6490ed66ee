"""Folders reached through symbolic links: searched, each real folder once, never in a loop.

Studies are often assembled from links (a study folder linking subjects on other disks,
``data -> /mnt/big/...``, datalad/BIDS derivatives). Every tree here is built from real small
volumes (nibabel's packaged files, the MNI152 template made small, DICOM series written from
it) and real symbolic links; runs go through the command line as a user's would, and the
assertions are on the output folders a user would list and the lines they would read.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from _dicom_helpers import AXIAL, small
from _dicom_helpers import write_series as write_dicom
from conftest import NIBABEL_DATA
from conftest_malformed import Run, check_common, cli_command, run_in_process, run_measured

import niftislice
from niftislice.batch.discover import discover
from niftislice.walk import walk

STANDARD = NIBABEL_DATA / "standard.nii.gz"  # 4 x 5 x 7, converts in a blink
ANATOMICAL = NIBABEL_DATA / "anatomical.nii"


def put(path: Path, source: Path = STANDARD) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, path)
    return path


def link(path: Path, target: str | Path) -> Path:
    """``path`` -> ``target`` (relative targets as ``ln -s`` takes them)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.symlink_to(target, target_is_directory=True)
    return path


def outputs(out: Path) -> list[str]:
    """The converted volumes, as ``rel/stem`` (one per sidecar), sorted: what ``ls`` shows."""
    return sorted(p.parent.relative_to(out).as_posix() for p in out.rglob("*.json"))


def convert(capfd: pytest.CaptureFixture[str], *args: object) -> Run:
    run = run_in_process(["convert", *map(str, args), "--spacing", "native", "-j", "1"], capfd)
    check_common(run)
    return run


def test_a_symlinked_subfolder_is_searched_and_mirrored_under_its_link_name(tmp_path, capfd):
    """``study/sub-02 -> ../disk2/sub-02``: its volume is converted to ``OUT/sub-02``, as if
    the folder were in the study; a symlinked file keeps working as before."""
    study = tmp_path / "study"
    put(study / "sub-01" / "anat" / "T1w.nii.gz")
    put(tmp_path / "disk2" / "sub-02" / "anat" / "T1w.nii", ANATOMICAL)
    link(study / "sub-02", "../disk2/sub-02")
    (study / "extra.nii.gz").symlink_to(STANDARD)
    out = tmp_path / "out"
    run = convert(capfd, study, "-o", out)
    assert run.rc == 0, run.stderr
    assert outputs(out) == ["extra", "sub-01/anat/T1w", "sub-02/anat/T1w"]
    assert not run.messages("warning"), run.stderr
    assert "3 converted, 0 skipped, 0 failed" in run.stderr


def test_a_link_to_an_ancestor_is_searched_once_with_one_warning(tmp_path, capfd):
    """``study/sub-01/up -> ..`` and ``study/sub-01/root -> /.../study``: the run ends, each
    volume is converted once, and each loop is one warning line naming the link and the
    folder it leads back to."""
    study = tmp_path / "study"
    put(study / "sub-01" / "T1w.nii.gz")
    link(study / "sub-01" / "up", "..")
    link(study / "sub-01" / "root", study)
    out = tmp_path / "out"
    run = convert(capfd, study, "-o", out)
    assert run.rc == 0, run.stderr
    assert outputs(out) == ["sub-01/T1w"]
    warnings = run.messages("warning")
    assert len(warnings) == 2, run.stderr
    for name, line in zip(("root", "up"), warnings, strict=True):
        assert line.startswith(f"{study / 'sub-01' / name}: ") and "loop" in line, line
        assert str(study) in line.split(": ", 1)[1], line


def test_a_cycle_of_links_outside_the_study_is_followed_once(tmp_path, capfd):
    """``study/ext -> ../ext``, ``ext/a/to_b -> ../b``, ``ext/b/to_a -> ../a`` and
    ``ext/a/deep/back -> ../..``: every folder of ``ext`` is searched once, under the first
    name the walk reaches it by, and the run ends."""
    ext = tmp_path / "ext"
    put(ext / "a" / "deep" / "x.nii.gz")
    put(ext / "b" / "y.nii", ANATOMICAL)
    link(ext / "a" / "to_b", "../b")
    link(ext / "b" / "to_a", "../a")
    link(ext / "a" / "deep" / "back", "../..")
    link(tmp_path / "study" / "ext", "../ext")
    out = tmp_path / "out"
    run = convert(capfd, tmp_path / "study", "-o", out)
    assert run.rc == 0, run.stderr
    assert outputs(out) == ["ext/a/deep/x", "ext/b/y"]
    assert len(run.messages("warning")) == 3, run.stderr  # to_b, to_a, back


def test_two_names_for_one_folder_convert_it_once_under_the_direct_name(tmp_path, capfd):
    """``study/sub-01`` plus ``study/a_latest -> sub-01`` (sorting before it) and
    ``study/z_copy -> sub-01``: converted once, to ``OUT/sub-01`` (the name a run without
    the links gives); two links to one outside folder: under the first link name. A rerun
    with ``--skip-existing`` converts nothing more: the names are stable."""
    study = tmp_path / "study"
    put(study / "sub-01" / "T1w.nii.gz")
    put(tmp_path / "shared" / "atlas.nii", ANATOMICAL)
    link(study / "a_latest", "sub-01")
    link(study / "z_copy", study / "sub-01")
    link(study / "m2", "../shared")
    link(study / "m1", tmp_path / "shared")
    out = tmp_path / "out"
    run = convert(capfd, study, "-o", out)
    assert run.rc == 0, run.stderr
    assert outputs(out) == ["m1/atlas", "sub-01/T1w"]
    warnings = run.messages("warning")
    assert sorted(w.split(": ")[0] for w in warnings) == [
        str(study / n) for n in ("a_latest", "m2", "z_copy")
    ], run.stderr
    assert all("same folder as" in w for w in warnings), warnings
    rerun = convert(capfd, study, "-o", out, "--skip-existing")
    assert rerun.rc == 0, rerun.stderr
    assert "0 converted, 2 skipped, 0 failed" in rerun.stderr
    assert outputs(out) == ["m1/atlas", "sub-01/T1w"]


def test_adding_a_link_to_a_converted_folder_moves_nothing(tmp_path, capfd):
    """Converted first without links, then ``study/0_latest -> sub-01`` (sorting first) and a
    link to a folder outside are added: ``--skip-existing`` skips ``sub-01`` (same name) and
    converts only the new folder."""
    study = tmp_path / "study"
    put(study / "sub-01" / "T1w.nii.gz")
    out = tmp_path / "out"
    assert convert(capfd, study, "-o", out).rc == 0
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    link(study / "0_latest", "sub-01")
    put(tmp_path / "disk2" / "sub-02" / "T1w.nii", ANATOMICAL)
    link(study / "sub-02", "../disk2/sub-02")
    run = convert(capfd, study, "-o", out, "--skip-existing")
    assert run.rc == 0, run.stderr
    assert "1 converted, 1 skipped, 0 failed" in run.stderr
    assert outputs(out) == ["sub-01/T1w", "sub-02/T1w"]
    assert {p: p.stat().st_mtime_ns for p in before} == before


def test_the_chosen_name_does_not_depend_on_creation_order(tmp_path):
    """The same tree built in two orders gives the same jobs, in tree order."""
    trees = []
    for order in ((0, 1, 2), (2, 1, 0)):
        root = tmp_path / f"t{order[0]}"
        steps = [
            lambda r: put(r / "real" / "v.nii.gz"),
            lambda r: link(r / "b", "real"),
            lambda r: link(r / "a", "real"),
        ]
        for i in order:
            steps[i](root)
        jobs = discover([root])
        trees.append([(j.rel_dir.as_posix(), j.stem, j.path.relative_to(root)) for j in jobs])
    assert trees[0] == trees[1] == [("real", "v", Path("real/v.nii.gz"))]


def test_a_dangling_link_is_one_warning_and_the_batch_goes_on(tmp_path, capfd):
    """``study/data -> /mnt/...`` (a disk not mounted) is one warning naming the link and its
    target; the rest converts, exit status 0. A dangling link named like a volume is an input
    that fails with its reason (exit 1), as before."""
    study = tmp_path / "study"
    put(study / "sub-01" / "T1w.nii.gz")
    missing = tmp_path / "mnt" / "big" / "data"
    link(study / "data", missing)
    out = tmp_path / "out"
    run = convert(capfd, study, "-o", out)
    assert run.rc == 0, run.stderr
    assert outputs(out) == ["sub-01/T1w"]
    (warning,) = run.messages("warning")
    assert warning.startswith(f"{study / 'data'}: ") and str(missing) in warning, warning
    assert "1 converted, 0 skipped, 0 failed" in run.stderr

    (study / "gone.nii.gz").symlink_to(tmp_path / "nowhere.nii.gz")
    run = convert(capfd, study, "-o", tmp_path / "out2")
    assert run.rc == 1, run.stderr
    (error,) = run.messages("error")
    assert error.startswith(f"{study / 'gone.nii.gz'}: "), error
    assert len(run.messages("warning")) == 1  # data, once; not gone.nii.gz again


def test_links_that_loop_on_themselves_are_one_warning_each(tmp_path, capfd):
    """``x -> y``, ``y -> x`` and ``self -> self`` can be neither listed nor read."""
    study = tmp_path / "study"
    put(study / "v.nii.gz")
    (study / "x").symlink_to("y")
    (study / "y").symlink_to("x")
    (study / "self").symlink_to("self")
    run = convert(capfd, study, "-o", tmp_path / "out")
    assert run.rc == 0, run.stderr
    assert outputs(tmp_path / "out") == ["v"]
    assert sorted(w.split(": ")[0] for w in run.messages("warning")) == [
        str(study / n) for n in ("self", "x", "y")
    ]


def test_an_unreadable_linked_folder_is_a_failed_input(tmp_path, capfd, monkeypatch):
    """A link to a folder that cannot be listed fails with the reason, like any unreadable
    folder (one error line, exit 1); the rest converts."""
    study = tmp_path / "study"
    put(study / "ok" / "a.nii.gz")
    put(tmp_path / "locked" / "b.nii.gz")
    link(study / "locked", "../locked")
    real = os.scandir

    def scandir(path="."):
        if Path(os.fsdecode(path)) == study / "locked":
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)
    run = convert(capfd, study, "-o", tmp_path / "out")
    assert run.rc == 1, run.stderr
    assert run.messages("error") == [f"{study / 'locked'}: cannot read folder: Permission denied"]
    assert "1 converted, 0 skipped, 1 failed" in run.stderr
    assert outputs(tmp_path / "out") == ["ok/a"]


def test_a_real_chmod_000_linked_folder_is_a_failed_input(tmp_path, unprivileged):
    """The same with a real ``chmod 000`` folder, in a child process that permissions bind."""
    study = tmp_path / "study"
    put(study / "ok" / "a.nii.gz")
    put(tmp_path / "locked" / "b.nii.gz")
    link(study / "locked", "../locked")
    (tmp_path / "locked").chmod(0)
    try:
        p = subprocess.run(
            [*unprivileged, *cli_command(["convert", str(study), "-o", str(tmp_path / "o")])],
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        (tmp_path / "locked").chmod(0o755)
    assert p.returncode == 1, p.stderr
    assert f"niftislice: error: {study / 'locked'}: cannot read folder: Permission denied" in (
        p.stderr.splitlines()
    )
    assert outputs(tmp_path / "o") == ["ok/a"]


def test_a_fifo_in_a_searched_folder_does_not_block_the_search(tmp_path, capfd):
    """A fifo (no input suffix) is not opened to sniff for DICOM: opening one blocks (in a
    child process, so that a regression fails instead of hanging the suite)."""
    study = tmp_path / "study"
    put(study / "v.nii.gz")
    os.mkfifo(study / "pipe")
    link(study / "piped", study)  # and the loop through a link does not reach it twice
    out = tmp_path / "out"
    run = run_measured(["convert", str(study), "-o", str(out), "--spacing", "native"], timeout=60)
    check_common(run)  # not timed out: it blocked forever before
    assert run.rc == 0, run.stderr
    assert outputs(tmp_path / "out") == ["v"]


def test_a_linked_dicom_series_folder_is_one_series(tmp_path, capfd):
    """DICOM discovery follows links the same way: a series folder linked twice and looped
    into (``pacs/ct/up -> ..``: ``study/ct/up/ct`` is ``study/ct`` again) is one series, not
    one with every slice twice, under the link's name; a series in the study itself beside a
    link to its own folder keeps its direct name."""
    write_dicom(tmp_path / "pacs" / "ct", small(**AXIAL, slices=5, number=3))
    study = tmp_path / "study"
    link(study / "ct", "../pacs/ct")
    link(study / "ct_again", "../pacs/ct")
    link(tmp_path / "pacs" / "ct" / "up", "..")
    write_dicom(study / "mr", small(**AXIAL, slices=4, number=7, description="T1", modality="MR"))
    link(study / "a_mr", "mr")
    out = tmp_path / "out"
    run = convert(capfd, study, "-o", out)
    assert run.rc == 0, run.stderr
    assert outputs(out) == ["ct/0003_Head_3mm", "mr/0007_T1"]
    warnings = run.messages("warning")
    assert sorted(w.split(": ")[0] for w in warnings) == [
        str(study / n) for n in ("a_mr", "ct/up/ct", "ct_again")
    ], run.stderr


def test_loading_a_folder_follows_links_to_its_series(tmp_path, caplog, monkeypatch):
    """``niftislice.load(folder)`` finds a DICOM series reached through two links: one
    series of 5 slices (not 10), and one warning for the second name."""
    write_dicom(tmp_path / "pacs" / "ct", small(**AXIAL, slices=5))
    study = tmp_path / "study"
    link(study / "ct", "../pacs/ct")
    link(study / "again", "../pacs/ct")
    # an in-process CLI run earlier left its stderr handler on the package logger
    monkeypatch.setattr(logging.getLogger("niftislice"), "handlers", [])
    monkeypatch.setattr(logging.getLogger("niftislice"), "propagate", True)
    with caplog.at_level(logging.WARNING, logger="niftislice"):
        volume = niftislice.load(study)
    assert volume.data().shape == (56, 60, 5)
    assert [r.getMessage() for r in caplog.records] == [
        f"{study / 'ct'}: same folder as {study / 'again'}, searched there only"
    ]


def test_masks_in_a_linked_folder_are_found(tmp_path, capfd):
    """``--masks`` searches the masks folder the same way (links followed, each folder once)."""
    put(tmp_path / "study" / "sub-01" / "T1w.nii.gz")
    put(tmp_path / "labels" / "sub-01" / "T1w.nii.gz")
    link(tmp_path / "masks" / "sub-01", "../labels/sub-01")
    link(tmp_path / "masks" / "again", "../labels")
    out = tmp_path / "out"
    run = convert(capfd, tmp_path / "study", "-o", out, "--masks", tmp_path / "masks")
    assert run.rc == 0, run.stderr
    assert "sub-01/T1w" in outputs(out / "images")


def test_walk_visits_each_real_folder_once_in_tree_order(tmp_path):
    """The walk itself: tree order, the direct name beats links, loops and repeats dropped."""
    put(tmp_path / "b" / "v.nii.gz")
    link(tmp_path / "a", "b")
    link(tmp_path / "b" / "c", "..")
    link(tmp_path / "d", tmp_path / "nowhere")
    folders = walk(tmp_path, warn=False)
    assert [f.rel.as_posix() for f in folders] == [".", "b"]
    assert folders[0].broken == ("d",)
    assert folders[1].files == ("v.nii.gz",)
