"""Helpers for the picture tests (montage, animation, overlay, colour map, viewer page)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
from conftest import save as save_nifti  # noqa: F401  (re-exported: one NIfTI writer for the suite)

from niftislice.encoding import decode
from niftislice.export import convert_file
from niftislice.options import ConvertOptions

TESTS = Path(__file__).parent
GM_MAP = TESTS / "data" / "mni152_gm_1mm.nii.gz"
WM_MAP = TESTS / "data" / "mni152_wm_1mm.nii.gz"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]


def convert(src: Path, out: Path, **options: Any) -> Path:
    """Convert one file on one thread; returns its output folder (``OUT/<stem>``)."""
    opts = ConvertOptions.parse(jobs=1, **options)
    result = convert_file(src, out, opts, threads=1)
    assert result.output_dir is not None
    return Path(result.output_dir)


def sidecar(folder: Path) -> dict[str, Any]:
    return json.loads((folder / f"{folder.name}.json").read_text())


def image(path: Path) -> np.ndarray:
    return decode(path.read_bytes())


def slice_image(folder: Path, view: str, k: int) -> np.ndarray:
    """The exported image of slice ``k`` of ``view``, found through the sidecar."""
    entry = next(s for s in sidecar(folder)["views"][view]["slices"] if s["index"] == k)
    return image(folder / view / entry["file"])


def is_grey(rgb: np.ndarray) -> np.ndarray:
    """Pixels whose three channels are equal."""
    return (rgb[..., 0] == rgb[..., 1]) & (rgb[..., 1] == rgb[..., 2])


def axial_radiological(vol: np.ndarray, k: int) -> np.ndarray:
    """Axial slice ``k`` of a RAS-stored array as displayed (anterior up, patient right on the
    left), written out independently of the library: ``image[r, c] = vol[nx-1-c, ny-1-r, k]``."""
    return vol[::-1, ::-1, k].T


def centre(a: np.ndarray) -> np.ndarray:
    """The middle half of an image in each direction (clear of letters and labels)."""
    h, w = a.shape[:2]
    return a[h // 4 : 3 * h // 4, w // 4 : 3 * w // 4]


def phantom(shape: tuple[int, int, int] = (30, 36, 24)) -> np.ndarray:
    """A smooth int16 'anatomy': a bright ellipsoid on a ramp (no two neighbours alike)."""
    i, j, k = np.meshgrid(*(np.arange(n, dtype=np.float64) for n in shape), indexing="ij")
    c = [(n - 1) / 2 for n in shape]
    r2 = (
        ((i - c[0]) / (shape[0] / 2.5)) ** 2
        + ((j - c[1]) / (shape[1] / 2.5)) ** 2
        + ((k - c[2]) / (shape[2] / 2.5)) ** 2
    )
    return (200 * (r2 < 1) + 2 * i + j + 0.5 * k).astype(np.int16)


def box_mask(shape: tuple[int, int, int]) -> np.ndarray:
    """Two labels in boxes: 1 in one corner region, 3 in another (uint8)."""
    m = np.zeros(shape, np.uint8)
    m[4:12, 5:15, 3:10] = 1
    m[15:25, 18:30, 8:20] = 3
    return m


def chromium() -> str | None:
    """Path of a system Chromium (Debian's package), or None."""
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return "/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None
