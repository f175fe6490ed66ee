"""Running the README's commands as a user of a plain `pip install .` would, and the DICOM export
its "From DICOM" transcript converts.

Only the core dependencies: each command runs in a child interpreter whose imports of any
module that only an extra brings (`dask`, `test`, `dicom-codecs`: scipy, SimpleITK, distributed,
torch, pylibjpeg...) fail as if it were not installed, unless the README block installed that
extra first (`pip install 'niftislice[dask]'`). The sets come from pyproject.toml and the
installed distributions' metadata, so a new dependency is classified without editing this file.
"""

from __future__ import annotations

import importlib.metadata as md
import shutil
import sys
from collections.abc import Iterable
from functools import cache
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10: the backport (the test extra installs it there)
    import tomli as tomllib

ROOT = Path(__file__).parent.parent

#: Makes the modules named (comma-separated) in ``sys.argv[1]`` fail to import, as if they were
#: not installed. Run as ``python -c HOOK + code blocked ...``.
NOT_INSTALLED_HOOK = """
import importlib.abc, sys
blocked = frozenset(filter(None, sys.argv[1].split(",")))
class NotInstalled(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in blocked:
            message = f"No module named {name!r} (only an extra installs it)"
            raise ModuleNotFoundError(message, name=name)
        return None
sys.meta_path.insert(0, NotInstalled())
"""

#: ``python -c CORE_ONLY_RUNNER blocked ARGS...`` runs ``niftislice ARGS...`` under the hook.
CORE_ONLY_RUNNER = (
    NOT_INSTALLED_HOOK
    + """
import runpy
sys.argv = ["niftislice", *sys.argv[2:]]
runpy.run_module("niftislice", run_name="__main__", alter_sys=True)
"""
)


def _closure(requirements: Iterable[str]) -> set[str]:
    """The distributions ``requirements`` install, transitively (markers for this platform)."""
    seen: set[tuple[str, frozenset[str]]] = set()
    todo = [Requirement(r) for r in requirements]
    while todo:
        req = todo.pop()
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue
        key = (canonicalize_name(req.name), frozenset(req.extras))
        if key in seen:
            continue
        seen.add(key)
        try:
            needs = md.requires(req.name) or []
        except md.PackageNotFoundError:
            continue
        for text in needs:
            sub = Requirement(text)
            extras = ("", *req.extras)
            if sub.marker is None or any(sub.marker.evaluate({"extra": e}) for e in extras):
                sub.marker = None
                todo.append(sub)
    return {name for name, _ in seen}


@cache
def _project() -> dict:
    with (ROOT / "pyproject.toml").open("rb") as f:
        return tomllib.load(f)["project"]


@cache
def core_distributions() -> frozenset[str]:
    return frozenset(_closure(_project()["dependencies"]))


@cache
def extra_modules(extra: str | None = None) -> frozenset[str]:
    """Top-level modules installed only by ``extra`` (None: by any extra), not by the core."""
    extras = _project()["optional-dependencies"]
    names = [extra] if extra else list(extras)
    only = set().union(*(_closure(extras[n]) for n in names)) - core_distributions()
    return frozenset(
        module
        for module, dists in _packages_distributions().items()
        if dists and all(canonicalize_name(d) in only for d in dists)
    )


@cache
def _packages_distributions() -> dict[str, list[str]]:
    """``importlib.metadata.packages_distributions()`` as Python 3.11 computes it: a
    distribution's top-level modules come from ``top_level.txt`` or else from its ``.py`` files.
    Python 3.10 reads ``top_level.txt`` only, which meson-built wheels (scipy) do not ship."""
    found: dict[str, list[str]] = {}
    for dist in md.distributions():
        tops = set((dist.read_text("top_level.txt") or "").split()) or {
            f.parts[0] if len(f.parts) > 1 else f.with_suffix("").name
            for f in dist.files or ()
            if f.suffix == ".py"
        }
        for top in tops:
            found.setdefault(top, []).append(dist.metadata["Name"])
    return found


def blocked_modules(installed_extras: Iterable[str]) -> str:
    """The runner's block list: every extra's modules but those of ``installed_extras``."""
    allowed = set().union(set(), *(extra_modules(e) for e in installed_extras))
    return ",".join(sorted(extra_modules() - allowed))


def dicom_export(folder: Path) -> None:
    """What the "From DICOM" transcript converts: ``export/DICOM/S0001`` (a head CT, series 2,
    and an RT structure set) and ``export/DICOM/S0002`` (a sagittal T1 MR, series 5)."""
    from _dicom_helpers import AXIAL, SAGITTAL, small, write_series
    from pydicom.data import get_testdata_file

    root = folder / "export" / "DICOM"
    write_series(root / "S0001", small(**AXIAL, number=2, description="Head 2.5mm", slices=12))
    shutil.copy(get_testdata_file("rtstruct.dcm"), root / "S0001" / "RS0001")
    mr = small(**SAGITTAL, modality="MR", number=5, description="T1 SAG", intercept=0.0)
    write_series(root / "S0002", mr)
