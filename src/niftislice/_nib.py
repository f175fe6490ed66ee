"""nibabel, imported once for the whole package, without pydicom.

When pydicom is installed, ``nibabel.nifti1`` imports it at import time (to wrap DICOM header
extensions in datasets, which niftislice never asks nibabel for: it walks extensions itself).
That import measured 0.7 s of every start on this machine (``python -X importtime``: pydicom's
config loads its pixel handlers and its data manager), more than numpy and nibabel together, and
every worker process paid it. So nibabel is imported with pydicom hidden; pydicom itself is
imported, for real, only by the DICOM reader. If pydicom is already loaded, nothing is hidden.
"""

from __future__ import annotations

import sys
import types


def _load() -> types.ModuleType:
    hide = "nibabel" not in sys.modules and "pydicom" not in sys.modules
    if hide:
        sys.modules["pydicom"] = None  # type: ignore[assignment]  # import pydicom -> ImportError
    try:
        import nibabel
    finally:
        if hide and sys.modules.get("pydicom", False) is None:
            del sys.modules["pydicom"]
    return nibabel


nib = _load()
