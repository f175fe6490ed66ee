"""The one exception hierarchy of niftislice.

Every failure the library anticipates is a :class:`NiftisliceError`. The CLI catches it in one
place and prints one line; anything else is a bug and is logged with its traceback.
Subclasses also derive from the matching builtin so callers can catch either.
"""

from __future__ import annotations


class NiftisliceError(Exception):
    """Base class for every error niftislice raises on purpose."""


class OptionError(NiftisliceError, ValueError):
    """An option has a bad value (the message names the option and the value)."""


class InputError(NiftisliceError, ValueError):
    """An input file cannot be read as a usable NIfTI volume."""


class OutputError(NiftisliceError, OSError):
    """Output cannot be written (exists already, disk full, unsafe path...)."""


class ResourceLimitError(InputError):
    """A declared size exceeds a configured limit; nothing was allocated."""
