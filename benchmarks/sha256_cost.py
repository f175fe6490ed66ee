"""Benchmark: what recording the source's sha256 costs, per format, on 100+ MB inputs.

    python benchmarks/sha256_cost.py [--runs 5] [--keep DIR]

Inputs (written once, then warm in the page cache, as a batch sees them after the scan):
a 512 x 512 x 256 int16 volume (128 MiB) as raw NRRD and as an Analyze .hdr/.img pair, and a
512 x 512 x 300 int16 CT series (300 files, 150 MiB, made by ``dicom.make_series``). Interleaved:

- NRRD (the reader streams the file): reading the voxels with the file hashed on the way
  vs. reading them without hashing;
- Analyze (nibabel reads the file itself): reading the voxels vs. the extra read + sha256 that
  records the digests;
- DICOM (pixels are read from the middle of each file): reading the series vs. the extra read +
  sha256 of its files.

Prints medians (ms) and the cost as a share of the read.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import nibabel as nib
import numpy as np

from niftislice.read import digest, nrrd
from niftislice.read.foreign import open_regular
from niftislice.read.nibabel_formats import read_nibabel


def _write_inputs(root: Path) -> tuple[Path, Path, Path]:
    import nrrd as pynrrd
    from dicom import make_series  # the DICOM benchmark's CT series (benchmarks/dicom.py)

    rng = np.random.default_rng(0)
    data = rng.integers(-1000, 2000, size=(512, 512, 256), dtype=np.int16)
    nrrd_path, hdr_path, dicom_dir = root / "v.nrrd", root / "v.hdr", root / "ct"
    if not nrrd_path.exists():
        pynrrd.write(str(nrrd_path), data, {"encoding": "raw"}, index_order="F")
        nib.save(nib.AnalyzeImage(data, np.eye(4)), hdr_path)
    if not dicom_dir.exists():
        make_series(dicom_dir, 512, 300)
    return nrrd_path, hdr_path, dicom_dir


def _time(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--keep", type=Path, help="folder for the inputs (kept between runs)")
    args = parser.parse_args()
    root = args.keep or Path(tempfile.mkdtemp())
    root.mkdir(parents=True, exist_ok=True)
    nrrd_path, hdr_path, dicom_dir = _write_inputs(root)

    from niftislice.read.dicom import read_series_volume, scan_dicom

    [series] = scan_dicom([dicom_dir]).series
    plain_open = digest.SourceDigests.open
    times: dict[str, list[float]] = {}

    def nrrd_read(hashing: bool) -> None:
        digest.SourceDigests.open = plain_open if hashing else (lambda self, p: open_regular(p))  # type: ignore[method-assign]
        try:
            nrrd.read_nrrd(nrrd_path).load()
        finally:
            digest.SourceDigests.open = plain_open  # type: ignore[method-assign]

    analyze = read_nibabel(hdr_path)
    files = digest.SourceDigests(tuple(sorted(dicom_dir.iterdir())), dicom_dir)
    cases: dict[str, Callable[[], object]] = {
        "nrrd read, hashed on the way": lambda: nrrd_read(True),
        "nrrd read, not hashed": lambda: nrrd_read(False),
        "analyze read": analyze.load,
        "analyze sha256 (extra read)": lambda: digest.SourceDigests(
            analyze.digests.files,  # type: ignore[union-attr]
            hdr_path.parent,
        ).summary(),
        "dicom read": lambda: read_series_volume(series),
        "dicom sha256 (extra read)": lambda: digest.SourceDigests(files.files, dicom_dir).summary(),
    }
    for fn in cases.values():  # warm the page cache
        fn()
    for _ in range(args.runs):
        for name, fn in cases.items():
            times.setdefault(name, []).append(_time(fn))
    med = {k: statistics.median(v) * 1e3 for k, v in times.items()}
    for name, ms in med.items():
        print(f"{name:34s} {ms:8.1f} ms")
    nrrd_cost = med["nrrd read, hashed on the way"] - med["nrrd read, not hashed"]
    print(f"NRRD: hashing adds {nrrd_cost:.0f} ms to a {med['nrrd read, not hashed']:.0f} ms read")
    for kind in ("analyze", "dicom"):
        extra, read = med[f"{kind} sha256 (extra read)"], med[f"{kind} read"]
        print(f"{kind}: digests add {extra:.0f} ms to a {read:.0f} ms read ({extra / read:.1f}x)")


if __name__ == "__main__":
    main()
