"""PNG writers on MRI slices: OpenCV's encoder against niftislice's (Up filter + libdeflate).

    python benchmarks/png_writer.py [--runs 5] [--scale 2]

Slices of the packaged MNI152 template (every 4th of each view, windowed to uint8, upsampled
``--scale`` times as a fine ``--spacing`` would) are encoded on one core by each writer in turn;
the table gives the median megapixels per second, the time relative to OpenCV and the total
size. When ``isal`` is installed, the same writer with ISA-L's deflate is timed for reference
(three times faster, but not the same bytes in every process; see ``niftislice/png.py``).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import cv2
import numpy as np

import niftislice
from niftislice import png
from niftislice._nib import nib


def slices(scale: float) -> list[np.ndarray]:
    data = np.asarray(nib.load(niftislice.sample_path()).dataobj, dtype=np.float32)
    image = (data * 255 / data.max()).astype(np.uint8)
    return [
        np.ascontiguousarray(cv2.resize(np.take(image, k, axis=ax), None, fx=scale, fy=scale))
        for ax in range(3)
        for k in range(10, image.shape[ax] - 10, 4)
    ]


def with_isal(image: np.ndarray) -> bytes:
    """niftislice's writer with ISA-L's deflate in place of libdeflate's."""
    from isal import isal_zlib

    real = png.deflate.zlib_compress
    png.deflate.zlib_compress = lambda data, level: isal_zlib.compress(data, level)
    try:
        return png.encode_png(image)
    finally:
        png.deflate.zlib_compress = real


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--scale", type=float, default=2.0)
    args = ap.parse_args()
    cv2.setNumThreads(1)
    images = slices(args.scale)
    megapixels = sum(i.size for i in images) / 1e6
    writers: dict[str, Callable[[np.ndarray], bytes]] = {
        "OpenCV (libpng, zlib level 1)": lambda i: cv2.imencode(".png", i)[1].tobytes(),
        "niftislice (Up + libdeflate 1)": png.encode_png,
    }
    try:
        import isal  # noqa: F401

        writers["reference: Up + ISA-L 1"] = with_isal
    except ImportError:
        pass
    times: dict[str, list[float]] = {name: [] for name in writers}
    sizes: dict[str, int] = {}
    for _ in range(args.runs):  # interleaved: every writer sees the same machine load
        for name, write in writers.items():
            start = time.perf_counter()
            out = [write(i) for i in images]
            times[name].append(time.perf_counter() - start)
            sizes[name] = sum(map(len, out))
    base = statistics.median(times["OpenCV (libpng, zlib level 1)"])
    print(f"{len(images)} slices, {megapixels:.1f} megapixels, medians of {args.runs} runs\n")
    print("| writer | megapixels/s | time vs OpenCV | size (MB) |")
    print("|---|---|---|---|")
    for name in writers:
        t = statistics.median(times[name])
        print(f"| {name} | {megapixels / t:.0f} | {t / base:.2f}x | {sizes[name] / 1e6:.2f} |")


if __name__ == "__main__":
    main()
