"""Writing one (array, RAS affine) in the other formats the way their own tools do: pynrrd for
NRRD, SimpleITK for MetaImage, nibabel for Analyze and MGH."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

LPS = np.diag([-1.0, -1.0, 1.0, 1.0])


def write_nrrd(
    path: Path,
    data: np.ndarray,
    affine: np.ndarray,
    space: str = "left-posterior-superior",
    **fields: Any,
) -> Path:
    """``data`` (x, y, z[, t]) on the RAS ``affine``, as pynrrd writes it in ``space``; a 4th
    axis is a ``list`` axis with a ``none`` direction. ``fields`` override header fields."""
    import nrrd

    flip = LPS if space.lower() in ("lps", "left-posterior-superior") else np.eye(4)
    world = flip @ affine
    directions = world[:3, :3].T  # pynrrd: one row per voxel axis
    kinds = ["domain"] * 3
    if data.ndim == 4:
        directions = np.vstack([directions, np.full(3, np.nan)])
        kinds.append("list")
    header: dict[str, Any] = {
        "space": space,
        "space directions": directions,
        "space origin": world[:3, 3],
        "kinds": kinds,
        "encoding": "gzip",
    }
    header.update(fields)
    detached = path.suffix == ".nhdr"
    nrrd.write(str(path), data, header, detached_header=detached, index_order="F")
    return path


def write_sitk(path: Path, data: np.ndarray, affine: np.ndarray, compress: bool = False) -> Path:
    """``data`` (x, y, z) on the RAS ``affine`` as SimpleITK writes a MetaImage (LPS)."""
    import SimpleITK as sitk

    img = sitk.GetImageFromArray(np.ascontiguousarray(data.T))
    world = LPS @ affine
    spacing = np.linalg.norm(world[:3, :3], axis=0)
    img.SetSpacing([float(s) for s in spacing])
    img.SetDirection([float(v) for v in (world[:3, :3] / spacing).ravel()])
    img.SetOrigin([float(v) for v in world[:3, 3]])
    sitk.WriteImage(img, str(path), useCompression=compress)
    return path


def sitk_geometry(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """What SimpleITK reads: the (x, y, z[, c]) array and the RAS affine."""
    import SimpleITK as sitk

    img = sitk.ReadImage(str(path))
    n = img.GetDimension()
    arr = sitk.GetArrayFromImage(img)
    arr = np.moveaxis(arr, -1, 0).T if img.GetNumberOfComponentsPerPixel() > 1 else arr.T
    direction = np.array(img.GetDirection()).reshape(n, n)[:3, :3]
    lps = np.eye(4)
    lps[:3, :3] = direction * np.array(img.GetSpacing())[:3]
    lps[:3, 3] = np.array(img.GetOrigin())[:3]
    return arr, LPS @ lps


def write_nibabel(path: Path, data: np.ndarray, affine: np.ndarray) -> Path:
    """Save with the nibabel image class that owns ``path``'s suffix (Analyze, MGH, pair)."""
    cls = {".hdr": nib.AnalyzeImage, ".mgh": nib.MGHImage, ".mgz": nib.MGHImage}[path.suffix]
    nib.save(cls(data, affine), path)
    return path
