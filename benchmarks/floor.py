"""The floor: the least work any converter must do for a case, timed on one core.

    python benchmarks/floor.py --images DIR --out DIR INPUT...

Prints one JSON object: ``load_s`` (nibabel load of every input's raw data in its native dtype,
``np.asanyarray(img.dataobj)``), ``write_s`` (``cv2.imwrite`` at default settings of every image
found under ``--images``, decoded beforehand and written under ``--out`` with the same relative
paths), ``cpu_s`` (CPU time of both) and ``images``. Nothing else is timed: no windowing, no
reorientation, no resampling.

``write_ns_s`` times the same writes again with niftislice's own PNG writer
(``niftislice.png.encode_png``, then one ``write``) for PNG images and OpenCV for others: the
floor for the files niftislice actually writes.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import cast

import cv2
import nibabel as nib
import numpy as np

from niftislice.png import encode_png

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp"})


def image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)


def decode_all(folder: Path) -> list[tuple[Path, np.ndarray]]:
    """Every image under ``folder`` as (path relative to folder, pixels as stored)."""
    decoded = []
    for path in image_files(folder):
        pixels = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if pixels is None:
            raise SystemExit(f"floor: cannot decode {path}")
        decoded.append((path.relative_to(folder), pixels))
    return decoded


def time_load(inputs: Sequence[Path]) -> float:
    start = time.perf_counter()
    for path in inputs:
        data = np.asanyarray(cast(nib.Nifti1Image, nib.load(path)).dataobj)
        del data
    return time.perf_counter() - start


def time_write(images: Sequence[tuple[Path, np.ndarray]], out: Path) -> float:
    for folder in {out / rel.parent for rel, _ in images}:
        folder.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    for rel, pixels in images:
        if not cv2.imwrite(str(out / rel), pixels):
            raise SystemExit(f"floor: cannot write {out / rel}")
    return time.perf_counter() - start


def time_write_ns(images: Sequence[tuple[Path, np.ndarray]], out: Path) -> float:
    """Like :func:`time_write`, PNGs through niftislice's writer (colour decoded as BGR)."""
    start = time.perf_counter()
    for rel, pixels in images:
        if rel.suffix.lower() != ".png":
            cv2.imwrite(str(out / rel), pixels)
            continue
        if pixels.ndim == 3:
            pixels = pixels[:, :, 2::-1] if pixels.shape[2] == 3 else pixels[:, :, [2, 1, 0, 3]]
        (out / rel).write_bytes(encode_png(pixels))
    return time.perf_counter() - start


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("inputs", nargs="+", type=Path)
    parser.add_argument("--images", type=Path, required=True, help="images to re-encode")
    parser.add_argument("--out", type=Path, required=True, help="where to write them")
    args = parser.parse_args(argv)
    cv2.setNumThreads(1)
    images = decode_all(args.images)
    cpu_start = time.process_time()
    load_s = time_load(args.inputs)
    write_s = time_write(images, args.out)
    cpu_s = time.process_time() - cpu_start
    write_ns_s = time_write_ns(images, args.out)
    result = {
        "load_s": load_s, "write_s": write_s, "write_ns_s": write_ns_s, "cpu_s": cpu_s,
        "images": len(images),
    }  # fmt: skip
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
