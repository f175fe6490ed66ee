"""Command-line values as users type them: negative numbers, window order, preview outputs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import save

from niftislice.cli import main


def run(capsys: pytest.CaptureFixture[str], *args: object) -> tuple[int, str]:
    rc = main([str(a) for a in args])
    return rc, capsys.readouterr().err


@pytest.fixture
def head(tmp_path: Path, small_head) -> Path:
    return save(tmp_path / "h.nii.gz", *small_head)


def test_negative_window_as_typed(tmp_path, capsys, head):
    """The usual CT form, in HU, with a space: `--window -100:500` (today: 'expected one
    argument'; only `--window=-100:500` worked)."""
    rc, err = run(
        capsys, "convert", head, "-o", tmp_path / "o", "--slices", "middle", "--window", "-100:500"
    )
    assert rc == 0, err
    side = json.loads((tmp_path / "o" / "h" / "h.json").read_text())
    assert (side["intensity"]["low"], side["intensity"]["high"]) == (-100, 500)


@pytest.mark.parametrize(
    "args",
    [
        ["--level", "-50", "--width", "400"],
        ["--window", "-1000/400"],
        ["--window", "-.5:.5"],
        ["--slices", "-3:"],
    ],
)
def test_every_numeric_option_takes_a_negative_value(tmp_path, capsys, head, args):
    rc, err = run(capsys, "preview", head, "-o", tmp_path / "p.png", *args)
    assert rc == 0, err


def test_no_option_mistakes_a_negative_value_for_an_option():
    """Every option of every command that takes a value takes one starting with -digit or
    -.digit as typed (argparse alone says 'expected one argument' unless it is a plain number,
    so `--window -100:500` and `--slices -3:` failed)."""
    import argparse

    from niftislice.cli.parser import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    checked = []
    for name, command in sub.choices.items():
        required = ["-o", "x"] if name in ("convert", "preview", "stack") else []
        for action in command._actions:
            if not action.option_strings or action.nargs == 0 or action.choices:
                continue
            option = action.option_strings[-1]
            convert = action.type or str
            values = {int: ["-5"], float: ["-.5", "-600"]}.get(convert, ["-100:500", "-3:"])
            for value in values:
                args = ["in", *required, option, value]
                parsed = getattr(command.parse_args(args), action.dest)
                assert parsed == convert(value), (name, option, value)
            checked.append(f"{name} {option}")
    assert {"convert --window", "convert --level", "preview --slices", "stack --fill"} <= set(
        checked
    )


def test_negative_fill_for_stack(tmp_path, capsys, head):
    assert run(capsys, "convert", head, "-o", tmp_path / "o", "--views", "axial")[0] == 0
    rc, err = run(
        capsys, "stack", tmp_path / "o" / "h", "-o", tmp_path / "b.nii.gz", "--fill", "-1024"
    )
    assert rc == 0, err


@pytest.mark.parametrize("window", ["500:100", "100:100"])
def test_window_low_must_be_below_high(tmp_path, capsys, head, window):
    rc, err = run(capsys, "preview", head, "-o", tmp_path / "p.png", "--window", window)
    assert rc == 2
    assert "low must be below high" in err and window in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("name", "got"), [("p.gif", "got '.gif'"), ("p", "got a name without a suffix")]
)
def test_preview_unknown_suffix_is_a_usage_error(tmp_path, capsys, head, name, got):
    rc, err = run(capsys, "preview", head, "-o", tmp_path / name)
    assert rc == 2, err
    assert "internal error" not in err and err.rstrip().endswith(got)
    for suffix in (".png", ".jpg", ".tif", ".webp"):
        assert suffix in err
    assert not (tmp_path / name).exists()


def test_preview_keeps_an_existing_file_unless_overwrite(tmp_path, capsys, head):
    out = tmp_path / "p.png"
    out.write_bytes(b"mine")
    rc, err = run(capsys, "preview", head, "-o", out)
    assert rc == 1 and "exists" in err and "--overwrite" in err
    assert out.read_bytes() == b"mine"
    rc, err = run(capsys, "preview", head, "-o", out, "--overwrite")
    assert rc == 0, err
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_preview_creates_its_folder_like_convert(tmp_path, capsys, head):
    out = tmp_path / "new" / "deeper" / "p.png"
    rc, err = run(capsys, "preview", head, "-o", out)
    assert rc == 0, err
    assert out.is_file()
