"""The command line: a thin layer over the Python API (``niftislice.cli.main``)."""

from __future__ import annotations

from .main import entry, main

__all__ = ["entry", "main"]
