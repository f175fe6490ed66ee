"""The command line: a thin layer over the Python API (the commands in :mod:`.commands`, their
options in :mod:`.parser`); :func:`main` runs one, :func:`entry` is the console script."""

from __future__ import annotations

from .commands import entry, main

__all__ = ["entry", "main"]
