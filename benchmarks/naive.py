"""The naive NIfTI-to-PNG recipe that niftislice replaces: the benchmark's baseline.

    python benchmarks/naive.py INPUT... -o OUT

For each file: ``get_fdata()`` (float64 copy of everything), then for each raw array axis and
each index: take the slice, resize it to its physical size at 1 px/mm (``shape * pixdim``),
rotate it 90°, clip to 0..255 and cast to uint8 (what such scripts do to keep ``cv2.imwrite``
from failing on float64), and write ``OUT/<stem>/<view>/slice<idx>.png``. Raw axes 0, 1, 2 are
named sagittal, coronal, axial whatever the storage order, as these scripts assume. A 4D file is
looped over its last axis; its images are prefixed ``t<t>_`` so that volumes do not overwrite
each other and both sides write the same number of images.

It is deliberately as written in the wild, wrong orientation and saturated intensities included.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import cast

import cv2
import nibabel as nib
import numpy as np

RAW_AXIS_VIEWS = ("sagittal", "coronal", "axial")


def stem(path: Path) -> str:
    name = path.name
    for suffix in (".nii.gz", ".nii"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def write_views(volume: np.ndarray, pixdim: Sequence[float], out: Path, prefix: str = "") -> int:
    """Write every raw-axis slice of a 3D ``volume``; returns the number of images written."""
    written = 0
    for axis, view in enumerate(RAW_AXIS_VIEWS):
        view_dir = out / view
        view_dir.mkdir(parents=True, exist_ok=True)
        row_axis, col_axis = (a for a in range(3) if a != axis)
        planes = np.moveaxis(volume, axis, 0)  # planes[idx] is volume[idx, :, :] etc.
        for idx, plane in enumerate(planes):
            h, w = plane.shape
            size = (round(w * pixdim[col_axis]), round(h * pixdim[row_axis]))
            image = np.rot90(cv2.resize(plane, size))
            image = np.clip(image, 0, 255).astype(np.uint8)
            cv2.imwrite(str(view_dir / f"{prefix}slice{idx}.png"), image)
            written += 1
    return written


def convert(path: Path, out: Path) -> int:
    img = cast(nib.Nifti1Image, nib.load(path))
    data = img.get_fdata()
    pixdim = [float(z) for z in img.header.get_zooms()[:3]]
    target = out / stem(path)
    if data.ndim == 4:
        return sum(
            write_views(data[..., t], pixdim, target, f"t{t}_") for t in range(data.shape[3])
        )
    return write_views(data, pixdim, target)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("inputs", nargs="+", type=Path)
    parser.add_argument("-o", "--output", type=Path, required=True)
    args = parser.parse_args(argv)
    for path in args.inputs:
        convert(path, args.output)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
