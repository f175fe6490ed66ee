"""Converting many files: discovery, tree mirroring, resume, refusal, report, parallel workers."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from _batch_helpers import (
    NOT_NIFTI,
    killed_for_kill_files,
    make_tree,
    mtimes,
    sidecar_dirs,
    snapshot,
    tiny_head,
    write_nifti,
)

import niftislice
from niftislice.batch.discover import discover
from niftislice.batch.run import _run_pool, run_batch
from niftislice.cli import main
from niftislice.options import ConvertOptions

# one image per view and no process pool: fast, and every volume is still read whole
MIDDLE = ("--slices", "middle", "-j", "1")


def run(capsys, *args: object) -> tuple[int, str]:
    rc = main([str(a) for a in args])
    return rc, capsys.readouterr().err


def error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if ": error: " in line]


@pytest.fixture
def tree(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    root = tmp_path / "study"
    return root, make_tree(root)


def test_folders_are_searched_recursively_and_mirrored(tree, tmp_path, capsys):
    root, expected = tree
    # sorted walk, files before sub-folders; hidden files and folders and ._ forks left out
    assert [j.path.relative_to(root).as_posix() for j in discover([root])] == [
        "top.Nii",
        "pair/a.nii",
        "pair/a.nii.gz",
        "sub-01/anat/sub-01_T1w.nii.gz",
        "sub-02/anat/sub-02_T1w.NII.GZ",
        "sub-02/func/bold.nii.gz",
    ]
    out = tmp_path / "out"
    rc, err = run(capsys, "convert", root, "-o", out, *MIDDLE)
    assert rc == 0, err
    assert sidecar_dirs(out) == set(expected.values())
    for src, dst in expected.items():
        side = json.loads((out / dst / f"{Path(dst).name}.json").read_text())
        assert Path(side["source"]["path"]) == (root / src).absolute()
    # the 4D series keeps its volumes apart inside its own mirrored folder
    assert len(list((out / "sub-02/func/bold/axial").glob("bold_t000?_axial_*.png"))) == 3
    assert not list(out.rglob(".niftislice-tmp-*"))
    assert "6 converted, 0 skipped, 0 failed" in err


def test_inputs_never_share_an_output_folder(tmp_path):
    data, aff = tiny_head()
    x = write_nifti(tmp_path / "x" / "a.nii.gz", data, aff)
    y = write_nifti(tmp_path / "y" / "a.nii.gz", data, aff)
    upper = write_nifti(tmp_path / "z" / "A.nii", data, aff)
    lower = write_nifti(tmp_path / "z" / "a.nii", data, aff)
    # the same name from two folders, given explicitly: numbered; the same file twice: once
    assert [(j.path, j.stem) for j in discover([x, y, x])] == [(x, "a"), (y, "a_2")]
    # A.nii beside a.nii would share a folder on a case-insensitive file system
    stems = [j.stem for j in discover([tmp_path / "z"])]
    assert len(stems) == 2 and len({s.casefold() for s in stems}) == 2
    # a file given on its own and again through its folder is converted once
    assert [j.path for j in discover([tmp_path / "x", tmp_path / "x"])] == [x]
    assert upper.exists() and lower.exists()


def test_refused_run_changes_nothing_and_skip_existing_resumes(tree, tmp_path, capsys):
    root, expected = tree
    out = tmp_path / "out"
    assert run(capsys, "convert", root, "-o", out, *MIDDLE)[0] == 0
    before, before_m = snapshot(out), mtimes(out)

    # again, without --skip-existing or --overwrite: one line, nothing written or touched
    rc, err = run(capsys, "convert", root, "-o", out, *MIDDLE)
    assert rc == 1 and len(err.strip().splitlines()) == 1
    assert "exists" in err and "--skip-existing" in err and "--overwrite" in err
    assert snapshot(out) == before and mtimes(out) == before_m
    with pytest.raises(niftislice.OutputError):
        niftislice.convert(root, out, ConvertOptions(slices="middle"))
    assert mtimes(out) == before_m

    # an interrupted copy left sub-01 without its sidecar; a new subject arrived
    incomplete = out / expected["sub-01/anat/sub-01_T1w.nii.gz"]
    (incomplete / "sub-01_T1w.json").unlink()
    (incomplete / "stray.png").write_bytes(b"half-written")
    data, aff = tiny_head()
    write_nifti(root / "sub-03/anat/sub-03_T1w.nii.gz", data, aff)
    kept = {k: v for k, v in mtimes(out).items() if not k.startswith("sub-01/")}

    report = tmp_path / "resume.json"
    rc, err = run(
        capsys, "convert", root, "-o", out, *MIDDLE, "--skip-existing", "--report", report
    )
    assert rc == 0, err
    assert "2 converted, 5 skipped, 0 failed" in err
    assert {k: v for k, v in mtimes(out).items() if k in kept} == kept  # complete output untouched
    assert sidecar_dirs(out) == {*expected.values(), "sub-03/anat/sub-03_T1w"}
    assert not (incomplete / "stray.png").exists()
    redone = "sub-01/anat/sub-01_T1w/sub-01_T1w.json"
    assert snapshot(out)[redone] == before[redone]
    status = {
        Path(r["source"]).relative_to(root).as_posix(): r["status"]
        for r in json.loads(report.read_text())["inputs"]
    }
    assert status == {
        **dict.fromkeys(expected, "skipped"),
        "sub-01/anat/sub-01_T1w.nii.gz": "converted",
        "sub-03/anat/sub-03_T1w.nii.gz": "converted",
    }


def test_resume_and_refusal_cover_the_paired_mask_tree(tmp_path, capsys):
    data, aff = tiny_head()
    src = write_nifti(tmp_path / "head.nii.gz", data, aff)
    mask = write_nifti(tmp_path / "brain.nii.gz", (data > 60).astype("uint8"), aff)
    out = tmp_path / "out"
    args = ("convert", src, "-o", out, *MIDDLE, "--pair", mask)
    assert run(capsys, *args)[0] == 0
    assert sidecar_dirs(out) >= {"images/head"} and (out / "masks" / "head").is_dir()
    before = mtimes(out)
    rc, err = run(capsys, *args)
    assert rc == 1 and "images/head" in err and mtimes(out) == before
    rc, err = run(capsys, *args, "--skip-existing")
    assert rc == 0 and "0 converted, 1 skipped" in err and mtimes(out) == before
    (out / "images" / "head" / "head.json").unlink()  # incomplete: both trees are redone
    rc, err = run(capsys, *args, "--skip-existing")
    assert rc == 0 and "1 converted, 0 skipped" in err and (out / "images/head/head.json").is_file()


@pytest.mark.slow
def test_a_bad_file_in_the_middle_fails_alone_and_is_reported(tmp_path, capsys):
    data, aff = tiny_head()
    first = write_nifti(tmp_path / "first.nii.gz", data, aff)
    bad = tmp_path / "broken.nii.gz"
    bad.write_bytes(NOT_NIFTI)
    last = write_nifti(tmp_path / "last.nii.gz", data[::-1], aff)
    out, report = tmp_path / "out", tmp_path / "report.json"

    rc, err = run(capsys, "convert", first, bad, last, "-o", out, "-j", "2", "--report", report)
    assert rc == 1
    assert len(error_lines(err)) == 1 and str(bad) in error_lines(err)[0] and "Traceback" not in err
    assert sidecar_dirs(out) == {"first", "last"} and not (out / "broken").exists()

    rep = json.loads(report.read_text())
    records = rep["inputs"]
    assert [(r["source"], r["status"]) for r in records] == [
        (str(first), "converted"),
        (str(bad), "failed"),
        (str(last), "converted"),
    ]
    assert records[1]["output_dir"] is None and records[1]["images"] == 0
    assert "not a NIfTI file" in records[1]["error"] and records[1]["error"] in error_lines(err)[0]
    for r in (records[0], records[2]):
        assert r["error"] is None
        assert r["images"] == len(list(Path(r["output_dir"]).rglob("*.png"))) == 33 + 39 + 32
    counts = {k: rep["summary"][k] for k in ("converted", "skipped", "failed", "images")}
    assert counts == {"converted": 2, "skipped": 0, "failed": 1, "images": 2 * 104}
    assert "2 converted, 0 skipped, 1 failed; 208 images" in err

    # a report that cannot be written is a usage error found before any work
    rc, err = run(
        capsys, "convert", first, "-o", tmp_path / "o2", "--report", tmp_path / "no" / "r.json"
    )
    assert rc == 2 and "report" in err and not (tmp_path / "o2").exists()


@pytest.mark.slow
def test_a_killed_worker_fails_only_its_own_file(tmp_path):
    data, aff = tiny_head()
    paths = [write_nifti(tmp_path / f"{n}.nii.gz", data, aff) for n in ("a", "kill", "b", "c", "d")]
    out, results = tmp_path / "out", {}
    _run_pool(
        discover(paths),
        out,
        ConvertOptions(slices="middle"),
        2,
        1,
        results.__setitem__,
        task=killed_for_kill_files,
    )
    assert {i: r.status for i, r in results.items()} == {
        0: "converted",
        1: "failed",
        2: "converted",
        3: "converted",
        4: "converted",
    }
    assert "worker process died" in results[1].error
    assert sidecar_dirs(out) == {"a", "b", "c", "d"}
    assert sorted(p.name for p in out.iterdir()) == ["a", "b", "c", "d"]  # no temp folder left


@pytest.mark.slow
def test_one_and_two_workers_write_identical_output(tree, tmp_path, capsys):
    root, _ = tree
    one, two = tmp_path / "j1", tmp_path / "j2"
    assert run(capsys, "convert", root, "-o", one, "-j", "1")[0] == 0
    assert run(capsys, "convert", root, "-o", two, "-j", "2")[0] == 0
    a, b = snapshot(one), snapshot(two)
    assert len([k for k in a if k.endswith(".png")]) == 5 * 104 + 3 * 104
    assert a.keys() == b.keys()
    assert [k for k in a if a[k] != b[k]] == []  # images and sidecars, byte for byte


@pytest.mark.slow
@pytest.mark.parametrize("jobs", [1, 2])
def test_image_progress_adds_up_to_the_images_written(tmp_path, jobs):
    data, aff = tiny_head()
    paths = [write_nifti(tmp_path / f"{n}.nii.gz", data, aff) for n in ("p", "q")]
    seen: list[int] = []
    result = run_batch(
        discover(paths),
        tmp_path / "out",
        ConvertOptions(jobs=jobs, views="axial"),
        on_images=seen.append,
    )
    assert result.ok and sum(seen) == result.images == 2 * 32
    assert len(list((tmp_path / "out").rglob("*.png"))) == 64


@pytest.mark.slow
def test_progress_bars_on_a_terminal_only(tmp_path, capsys, monkeypatch):
    data, aff = tiny_head()
    paths = [write_nifti(tmp_path / f"{n}.nii.gz", data, aff) for n in ("p", "q")]
    rc, err = run(capsys, "convert", *paths, "-o", tmp_path / "piped", *MIDDLE)
    assert rc == 0 and len(err.splitlines()) == 1  # the summary line, no bar
    assert err.startswith("niftislice: 2 converted, 0 skipped, 0 failed; 6 images in ")
    rc, err = run(capsys, "convert", *paths, "-o", tmp_path / "quiet", *MIDDLE, "--quiet")
    assert rc == 0 and err == ""
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    rc, err = run(capsys, "convert", *paths, "-o", tmp_path / "tty", *MIDDLE)
    assert rc == 0 and "files" in err and "2/2" in err and "images" in err
    assert err.rstrip().endswith("images in " + err.split(" images in ")[-1].strip())
