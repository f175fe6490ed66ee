"""The viewer page's title is the file's name, substituted once, whatever the name holds; the
voxel size is labelled with the header's unit; the sample's header says mm."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

import niftislice
from niftislice.cli import main


def _page(tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str) -> tuple[str, Path]:
    src = tmp_path / name
    data = np.arange(12 * 14 * 10, dtype=np.int16).reshape(12, 14, 10)
    nib.save(nib.Nifti1Image(data, np.diag([2.0, 2.0, 2.0, 1.0])), src)
    out = tmp_path / "out"
    rc = main(["convert", str(src), "-o", str(out), "--html", "--views", "axial", "-q"])
    assert rc == 0, capsys.readouterr().err
    (page,) = out.glob("*/index.html")
    return page.read_text(encoding="utf-8"), page


def _title(page: str) -> str:
    return re.search(r"<title>(.*?)</title>", page, re.S).group(1)


def test_placeholder_in_a_name_is_not_substituted_again(tmp_path, capsys):
    """Today `{{DATA}}` in a name pulled the whole data JSON into <title>."""
    page, _ = _page(tmp_path, capsys, "scan{{DATA}}.nii.gz")
    assert _title(page) == "scan{{DATA}}.nii.gz · niftislice viewer"
    data = json.loads(re.search(r'id="data">(.*?)</script>', page, re.S).group(1))
    assert data["title"] == "scan{{DATA}}.nii.gz"


def test_text_before_a_backslash_is_kept(tmp_path, capsys):
    """A backslash is an ordinary character of a POSIX file name (today: 'b.nii.gz')."""
    page, _ = _page(tmp_path, capsys, "a\\b<i>.nii.gz")
    assert _title(page) == html.escape("a\\b<i>.nii.gz") + " · niftislice viewer"


def test_voxel_size_names_the_header_unit(tmp_path, capsys):
    page, _ = _page(tmp_path, capsys, "plain.nii.gz")  # nibabel writes unknown units
    assert "voxel size (unknown units, used as mm)" in page
    assert "voxel size (mm)" not in page


def test_the_sample_is_in_mm(tmp_path, capsys):
    """The sample said 'unknown' units (info) while the viewer printed '(mm)'."""
    assert nib.load(niftislice.sample_path()).header.get_xyzt_units()[0] == "mm"
    rc = main(["info", "--sample", "--json"])
    facts = json.loads(capsys.readouterr().out)
    assert rc == 0 and facts["units"]["space"] == "mm"
