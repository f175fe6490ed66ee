"""niftislice: NIfTI volumes to anatomically correct image sequences.

The public API mirrors the command line::

    import niftislice
    niftislice.convert("scan.nii.gz", "out")            # images + sidecar on disk
    niftislice.info("scan.nii.gz")                      # header facts, no voxel data read
    vol = niftislice.load("scan.nii.gz")                # display-ready slices in memory
    for s in vol.slices("axial"):
        s.image, s.spacing_mm, s.pixel_to_world
    niftislice.stack("out/scan/axial", "back.nii.gz")   # images back onto the source grid
"""

from __future__ import annotations

from ._version import __version__
from .api import convert, info, load, sample_path, stack
from .errors import InputError, NiftisliceError, OptionError, OutputError
from .options import ConvertOptions, View

__all__ = [
    "ConvertOptions",
    "InputError",
    "NiftisliceError",
    "OptionError",
    "OutputError",
    "View",
    "__version__",
    "convert",
    "info",
    "load",
    "sample_path",
    "stack",
]
