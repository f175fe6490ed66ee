"""OpenCV, imported for the whole package on first use, with its own log lines silenced.

``import cv2`` takes 0.03-0.06 s, and many runs need none of it: ``info``, PNG output whose
slices need no resizing, a stack of PNG files read back... Modules write
``from .._cv2 import cv2`` and call ``cv2.resize(...)`` as usual; OpenCV is imported when the
first attribute is looked up (then its names are copied here, so later look-ups cost what a
module's do). OpenCV's log level is set to silent then: our errors are raised as exceptions, and
its own log lines on stderr would break the one-line-per-error contract.
"""

from __future__ import annotations

import importlib
import types
from typing import TYPE_CHECKING, Any


def _load() -> types.ModuleType:
    real = importlib.import_module("cv2")
    real.utils.logging.setLogLevel(real.utils.logging.LOG_LEVEL_SILENT)
    return real


class _OnFirstUse(types.ModuleType):
    """Stands for ``cv2`` until the first attribute look-up imports it."""

    def __getattr__(self, name: str) -> Any:  # only for names not copied here yet
        if name.startswith("__"):  # introspection (pickle, inspect...) does not import OpenCV
            raise AttributeError(name)
        real = _load()
        own = {k: v for k, v in vars(real).items() if not k.startswith("__")}
        self.__dict__.update(own)
        return getattr(real, name)


if TYPE_CHECKING:
    import cv2
else:
    cv2 = _OnFirstUse("cv2", "OpenCV, imported on first use (niftislice._cv2)")
