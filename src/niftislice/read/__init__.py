"""Readers: every input format ends as a checked :class:`NiftiFile` description plus a stream of
voxel volumes (:func:`iter_volumes`), handed to the same orientation/window/slicing steps.

- :mod:`.nifti`: NIfTI-1/2 (header checks, streaming read); :mod:`.validate`: its header fields.
- :mod:`.source`: other formats' arrays described the same way; :mod:`.dispatch`: which reader.
"""

from __future__ import annotations

from .dispatch import open_source
from .nifti import NiftiFile, ReadResult, iter_volumes

__all__ = ["NiftiFile", "ReadResult", "iter_volumes", "open_source"]
