"""Optional and lazily imported dependencies: one way to import them and to say what is missing.

Pillow (animations) is a regular dependency but imported only when an animation is asked for;
Dask (``--scheduler``) is the optional extra ``niftislice[dask]``; h5py is what nibabel needs for
MINC 2 files. A module that cannot be
imported becomes one :class:`~niftislice.errors.OptionError` naming the option, the package and
the command that installs it.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from .errors import OptionError

#: module -> (package to install, the pip command that brings it)
PACKAGES: dict[str, tuple[str, str]] = {
    "PIL.Image": ("Pillow", "pip install niftislice (Pillow is one of its dependencies)"),
    "distributed": ("Dask", "pip install 'niftislice[dask]'"),
    "h5py": ("h5py", "pip install h5py"),  # nibabel's MINC 2 reader
    # decoders of compressed DICOM pixel data (JPEG, JPEG-LS, JPEG 2000)
    "pylibjpeg": ("the DICOM decoders", "pip install 'niftislice[dicom-codecs]'"),
}


def install_hint(module: str) -> str:
    """The command that installs what ``module`` (a key of :data:`PACKAGES`) needs."""
    return PACKAGES[module][1]


def require(module: str, option: str, purpose: str) -> ModuleType:
    """``module`` imported, or :class:`OptionError` ``"<option>: <purpose> needs <package>
    (<install command>)"``. ``module`` is a key of :data:`PACKAGES`."""
    try:
        return importlib.import_module(module)
    except ImportError:
        package, install = PACKAGES[module]
        raise OptionError(f"{option}: {purpose} needs {package} ({install})") from None
