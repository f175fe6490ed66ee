"""files.py, the one home for writing: atomic files and folders, leftovers, the output lock."""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

import pytest

from niftislice import files, temp_files
from niftislice.errors import OutputError


def test_replace_file_is_atomic_and_gets_the_umask_mode(tmp_path: Path) -> None:
    target = tmp_path / "report.json"
    target.write_text("old")
    files.replace_file(target, b"new")
    assert target.read_bytes() == b"new"
    assert stat.S_IMODE(target.stat().st_mode) == files.FILE_MODE  # not mkstemp's 0600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json"]


def test_replace_file_into_a_missing_folder_is_one_error(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match=r"cannot write the report .*: No such file"):
        files.replace_file(tmp_path / "nowhere" / "r.json", b"x", label="the report")


def test_a_failed_block_leaves_no_temporary_file(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), files.atomic_path(tmp_path / "out.nii") as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("the writer failed")
    assert list(tmp_path.iterdir()) == []


def folder(path: Path, content: str) -> Path:
    path.mkdir()
    (path / "a.txt").write_text(content)
    return path


@pytest.mark.parametrize("exchange", [True, False], ids=["exchange", "two-renames"])
def test_move_into_place_replaces_whole_or_refuses(tmp_path, monkeypatch, exchange) -> None:
    if not exchange:
        monkeypatch.setattr(files, "_RENAMEAT2", None)
    final = folder(tmp_path / "scan", "old")
    with pytest.raises(OutputError, match="exists"):
        files.move_into_place(folder(tmp_path / "tmp1", "new"), final, replace=False)
    assert (final / "a.txt").read_text() == "old"
    files.move_into_place(tmp_path / "tmp1", final, replace=True)
    assert (final / "a.txt").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scan"]


def test_a_symlinked_output_is_replaced_not_followed(tmp_path: Path) -> None:
    outside = folder(tmp_path / "elsewhere", "precious")
    final = tmp_path / "out" / "scan"
    final.parent.mkdir()
    final.symlink_to(outside, target_is_directory=True)
    files.move_into_place(folder(tmp_path / "out" / "tmp", "new"), final, replace=True)
    assert not final.is_symlink() and (final / "a.txt").read_text() == "new"
    assert (outside / "a.txt").read_text() == "precious"
    assert sorted(p.name for p in final.parent.iterdir()) == ["scan"]


def test_clean_leftovers_restores_a_previous_output_first(tmp_path: Path) -> None:
    """What a run killed between the two renames leaves: the old output aside, the new one
    stranded; and a killed run's half-written folder."""
    old = tmp_path / f"{files.OLD_PREFIX}k1ll3d_x"
    old.mkdir()
    folder(old / "scan", "previous")
    folder(tmp_path / f"{files.TMP_PREFIX}scan-abcd1234", "new, complete")
    folder(tmp_path / f"{files.TMP_PREFIX}other-abcd1234", "half")
    (tmp_path / f"{files.TMP_PREFIX}stack.nii.gz").write_bytes(b"a file: not ours to remove")
    folder(tmp_path / "kept", "untouched")
    assert files.clean_leftovers(tmp_path) == 3
    assert (tmp_path / "scan" / "a.txt").read_text() == "previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        f"{files.TMP_PREFIX}stack.nii.gz",
        "kept",
        "scan",
    ]


def test_make_dirs_reports_what_it_created(tmp_path: Path) -> None:
    created = files.make_dirs(tmp_path / "a" / "b" / "c")
    assert created == [tmp_path / "a" / "b" / "c", tmp_path / "a" / "b", tmp_path / "a"]
    (tmp_path / "a" / "keep.txt").write_text("x")
    files.remove_empty(created)
    assert sorted(os.listdir(tmp_path / "a")) == ["keep.txt"]


def test_one_holder_of_a_folder_lock_at_a_time(tmp_path: Path) -> None:
    raises = pytest.raises(OutputError, match="in use by another niftislice run")
    with files.locked_folder(tmp_path), raises, files.locked_folder(tmp_path):
        pass
    with files.locked_folder(tmp_path):  # released
        pass


def killed_writer(path: Path, suffix: str) -> Path:
    """The temporary file a run killed while writing ``path`` leaves: complete, and unlocked
    (the kernel drops a dead process's locks)."""
    fd, tmp = temp_files.create_temp(path, suffix)
    os.write(fd, b"half")
    os.close(fd)
    return tmp


def test_the_next_write_of_a_file_removes_what_dead_writers_left_for_it(tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    dead = [killed_writer(report, ".json") for _ in range(2)]
    fd, live = temp_files.create_temp(report, ".json")  # a run still writing it
    others = [
        killed_writer(tmp_path / "other.json", ".json"),  # another file's: its writer cleans it
        tmp_path / f"{files.TMP_PREFIX}report.json-notes.json",  # the user's, however named
        tmp_path / f"{files.TMP_PREFIX}report.json-abcd1234.json.bak",
        tmp_path / f"{files.TMP_PREFIX}abcd1234.json",  # written before names carried theirs
    ]
    for p in others[1:]:
        p.write_bytes(b"keep")
    folder(tmp_path / f"{files.TMP_PREFIX}report.json-abcd1234.json", "a folder")
    precious = tmp_path / "precious.json"
    precious.write_bytes(b"precious")
    link = tmp_path / f"{files.TMP_PREFIX}report.json-l1nk3d_x.json"
    link.symlink_to(precious)
    try:
        files.replace_file(report, b"new")
        assert report.read_bytes() == b"new"
        assert not any(p.exists() for p in dead)
        assert live.read_bytes() == b"" and all(p.exists() for p in others)
        assert precious.read_bytes() == b"precious" and link.is_symlink()
        assert len(list(tmp_path.iterdir())) == 1 + 1 + len(others) + 3
    finally:
        os.close(fd)


def test_a_cleaner_that_takes_a_new_file_before_its_writer_locks_it(tmp_path, monkeypatch):
    """Another run's cleaning can find a new temporary file in the instant between its creation
    and its lock, and remove it: the writer notices and takes another name."""
    made: list[str] = []
    mkstemp = tempfile.mkstemp

    def mkstemp_then_a_cleaner_runs(*args: object, **kwargs: object) -> tuple[int, str]:
        fd, name = mkstemp(*args, **kwargs)  # type: ignore[call-overload]
        made.append(name)
        if len(made) == 1:
            assert temp_files.remove_dead_temps(tmp_path / "p.png", ".png") == 1
        return fd, name

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp_then_a_cleaner_runs)
    files.replace_file(tmp_path / "p.png", b"image")
    assert len(made) == 2 and (tmp_path / "p.png").read_bytes() == b"image"
    assert sorted(os.listdir(tmp_path)) == ["p.png"]


def test_a_name_too_long_to_carry_whole_is_hashed_and_still_cleaned(tmp_path: Path) -> None:
    long = tmp_path / ("é" * 115 + ".nii.gz")  # 237 bytes: with the prefix and random part, 269
    twin = tmp_path / ("é" * 115 + "x.nii.gz")  # the same first 40 characters
    dead, other = killed_writer(long, ".nii.gz"), killed_writer(twin, ".nii.gz")
    assert len(os.fsencode(dead.name)) <= 255 and "~" in dead.name
    assert dead.name.startswith(files.TMP_PREFIX + "é" * 40) and dead.name[:-16] != other.name[:-16]
    with files.atomic_path(long, ".nii.gz") as tmp:
        tmp.write_bytes(b"volume")
    assert long.read_bytes() == b"volume" and not dead.exists() and other.exists()
