from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("niftislice")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"
