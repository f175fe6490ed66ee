"""Every README picture option works after a plain `pip install .`; optional imports are
checked in one place."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from niftislice.errors import OptionError
from niftislice.extras import require
from niftislice.options import ConvertOptions

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10: the backport (the test extra installs it there)
    import tomli as tomllib

ROOT = Path(__file__).parent.parent


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_pillow_is_a_core_dependency():
    """`--gif` and `--webp-anim` need Pillow: today it was the `anim` extra, so the README's
    `niftislice convert --sample -o out --montage --gif --html` failed after `pip install .`."""
    project = _pyproject()["project"]
    names = [re.split(r"[<>=\[; ]", d, maxsplit=1)[0].lower() for d in project["dependencies"]]
    assert "pillow" in names
    # the old extra stays as an empty alias, so `pip install 'niftislice[anim]'` still works
    assert project["optional-dependencies"].get("anim", []) == []


def test_no_message_sends_users_to_the_anim_extra():
    for path in [ROOT / "README.md", *sorted((ROOT / "src").rglob("*.py"))]:
        assert "niftislice[anim]" not in path.read_text(), path


def test_one_helper_checks_optional_imports():
    """The 'X needs Y (pip install ...)' message is written once, in extras.py."""
    hits = [
        p.relative_to(ROOT).as_posix()
        for p in sorted((ROOT / "src" / "niftislice").rglob("*.py"))
        if "pip install" in p.read_text()
    ]
    assert hits == ["src/niftislice/extras.py"]


def test_missing_module_is_one_option_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "PIL.Image", None)  # import PIL.Image now fails
    with pytest.raises(OptionError, match=r"^gif: an animation needs Pillow \(pip install"):
        ConvertOptions.parse(gif=True)
    with pytest.raises(OptionError, match=r"^webp-anim: an animation needs Pillow"):
        ConvertOptions.parse(webp_anim=True)
    monkeypatch.setitem(sys.modules, "distributed", None)
    with pytest.raises(OptionError, match=r"^scheduler: .* needs Dask \(pip install 'niftislice"):
        require("distributed", "scheduler", "running on a Dask cluster")
