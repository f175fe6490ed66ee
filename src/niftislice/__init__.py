"""niftislice: medical volumes to anatomically correct image sequences.

The public API mirrors the command line::

    import niftislice
    niftislice.convert("scan.nii.gz", "out")            # images + sidecar on disk
    niftislice.info("scan.nii.gz")                      # header facts, no voxel data read
    vol = niftislice.load("scan.nii.gz")                # display-ready slices in memory
    for s in vol.slices("axial"):
        s.image, s.spacing_mm, s.pixel_to_world
    niftislice.preview("scan.nii.gz", "scan.png")       # three middle slices on one picture
    niftislice.stack("out/scan/axial", "back.nii.gz")   # images back onto the source grid

Names are imported on first use (PEP 562), so ``import niftislice`` and ``niftislice --help``
do not pay for numpy, nibabel and OpenCV until a volume is actually read.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._version import __version__
from .errors import InputError, NiftisliceError, OptionError, OutputError

if TYPE_CHECKING:  # pragma: no cover - for type checkers and editors only
    from .api import convert, info, load, preview, sample_path, stack
    from .batch.results import BatchResult
    from .export import ConvertResult
    from .options import ConvertOptions, PictureOptions
    from .stacking.stack import StackOptions, StackResult
    from .training.dataset import SliceDataset
    from .types import ImageFormat, IndexRange, Interp, Layout, View
    from .volume import Slice, Volume
    from .window_spec import WindowSpec

#: public name -> the module that defines it
_LAZY = {
    "convert": "api",
    "info": "api",
    "load": "api",
    "preview": "api",
    "sample_path": "api",
    "stack": "api",
    "BatchResult": "batch.results",
    "ConvertResult": "export",
    "ConvertOptions": "options",
    "PictureOptions": "options",
    "StackOptions": "stacking.stack",
    "StackResult": "stacking.stack",
    "SliceDataset": "training.dataset",
    "ImageFormat": "types",
    "IndexRange": "types",
    "Interp": "types",
    "Layout": "types",
    "View": "types",
    "WindowSpec": "window_spec",
    "Slice": "volume",
    "Volume": "volume",
}

__all__ = [
    "BatchResult",
    "ConvertOptions",
    "ConvertResult",
    "ImageFormat",
    "IndexRange",
    "InputError",
    "Interp",
    "Layout",
    "NiftisliceError",
    "OptionError",
    "OutputError",
    "PictureOptions",
    "Slice",
    "SliceDataset",
    "StackOptions",
    "StackResult",
    "View",
    "Volume",
    "WindowSpec",
    "__version__",
    "convert",
    "info",
    "load",
    "preview",
    "sample_path",
    "stack",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value  # later lookups skip this function
        return value
    raise AttributeError(f"module 'niftislice' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
